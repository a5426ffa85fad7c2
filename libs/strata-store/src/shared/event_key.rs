//! An event's identity across projects.

use uuid::Uuid;

/// An event's identity: ids are unique per project only, so two projects
/// may hold the same id on the same day (mirrored projects, dual writes).
pub type EventKey = (i64, Uuid);

/// Keys as two parallel arrays, for `unnest($1::int8[], $2::uuid[])`.
pub(crate) fn split_keys(keys: &[EventKey]) -> (Vec<i64>, Vec<Uuid>) {
    keys.iter().copied().unzip()
}
