//! Strata's benchmarks. `strata-bench` (`make bench`) measures ingest,
//! archiving, storage, queries and memory against baselines on the same
//! data in one run (see [`run`]); `benches/micro.rs` holds the Criterion
//! micro-benchmarks of the inner loops.

pub mod accounts;
pub mod data;
pub mod error;
pub mod load;
pub mod peer;
pub mod procs;
pub mod queries;
pub mod report;
pub mod run;

pub use data::{events, ingest_body};
pub use error::BenchError;
pub use run::{BenchConfig, S3Env, run};
