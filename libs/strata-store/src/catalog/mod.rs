//! The cold tier's catalog: the manifest of committed Parquet files (and
//! those awaiting deletion), its publication as a DuckLake table, archive
//! runs and their lease.

pub mod lake;
pub mod manifest;
pub mod runs;
