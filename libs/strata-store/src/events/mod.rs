//! The hot events and their upkeep: the layout (hypertable or native
//! partitions), day tables and chunks, the idempotency records (claims),
//! first-seen users, the event-type registry.

pub(crate) mod chunks;
pub(crate) mod claims;
pub(crate) mod day_tables;
pub(crate) mod event_types;
pub mod fill;
pub(crate) mod first_seen;
pub(crate) mod layout;
