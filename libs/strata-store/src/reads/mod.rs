//! Reads across the tiers: the stats snapshot and the admin views of
//! sizes and tiers.

pub(crate) mod admin;
pub(crate) mod snapshot;
