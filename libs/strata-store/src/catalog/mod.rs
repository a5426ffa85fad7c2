//! The cold tier's catalog: the manifest of committed Parquet files (and
//! those awaiting deletion), archive runs and their lease.

pub mod manifest;
pub mod runs;
