//! A day's exact rollup as a value: events and a Roaring bitmap of user
//! ordinals per event type, and the bitmaps' stored form (ADR-027). The
//! tables that keep rollups are in `rollups.rs` and `seal.rs`.

use std::collections::BTreeMap;

use roaring::RoaringBitmap;

use crate::StoreError;

/// `event_type` of the row covering every event type of a day (no event
/// can have an empty type).
pub const ALL_TYPES: &str = "";

/// One event type's part of a day (or [`ALL_TYPES`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TypeRollup {
    pub events: i64,
    pub users: RoaringBitmap,
}

impl TypeRollup {
    pub fn add(&mut self, other: &TypeRollup) {
        self.events += other.events;
        self.users |= &other.users;
    }
}

/// A day's rollup: by event type, [`ALL_TYPES`] included.
pub type DayRollup = BTreeMap<String, TypeRollup>;

/// What a day's rollup covers: the day's cold files, counted, and their rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RollupSource {
    pub cold_files: i64,
    pub cold_rows: i64,
}

/// Bitmaps as stored (Roaring's portable format).
pub fn encode(users: &RoaringBitmap) -> Vec<u8> {
    let mut out = Vec::with_capacity(users.serialized_size());
    // Writing into a Vec cannot fail.
    let _ = users.serialize_into(&mut out);
    out
}

pub fn decode(bytes: &[u8]) -> Result<RoaringBitmap, StoreError> {
    RoaringBitmap::deserialize_from(bytes)
        .map_err(|e| StoreError::Unexpected(format!("unreadable rollup bitmap: {e}")))
}

pub(crate) fn ordinal(o: i64) -> Result<u32, StoreError> {
    u32::try_from(o).map_err(|_| StoreError::Unexpected(format!("user ordinal {o} out of range")))
}

/// Builds a day rollup from `(event_type, events, sorted distinct user
/// ordinals)` per type; the [`ALL_TYPES`] row is one of them.
pub(crate) fn from_rows(rows: Vec<(String, i64, Vec<i64>)>) -> Result<DayRollup, StoreError> {
    let mut out = DayRollup::new();
    for (event_type, events, ordinals) in rows {
        let users = ordinals
            .into_iter()
            .map(ordinal)
            .collect::<Result<RoaringBitmap, _>>()?;
        out.insert(event_type, TypeRollup { events, users });
    }
    Ok(out)
}
