//! Exact summaries of closed days: rollups (cold days) and seals (hot
//! days), the user ordinals their bitmaps hold, and the process memory of
//! decoded rollups.

pub mod declared;
pub(crate) mod ordinals;
pub mod rollup;
pub(crate) mod rollup_cache;
pub mod rollups;
pub(crate) mod seal;
