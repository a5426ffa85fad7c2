//! Data moving between tiers or leaving them: the archive handoff
//! (hot to cold), swaps of a day's cold files (compaction, erasure),
//! erasures and retention.

pub(crate) mod erasure;
pub(crate) mod handoff;
pub(crate) mod retention;
pub(crate) mod swap;
