//! A day's exact rollup as a value: events and a Roaring bitmap of user
//! ordinals per event type, and per value of each declared property
//! (ADR-043), and the bitmaps' stored form (ADR-027). The tables that keep
//! rollups are in `rollups.rs` and `seal.rs`.

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

/// One declared property's part of a day: by (value, event type), the
/// value as [`strata_model::property_text`] gives it (`None`: null or a
/// missing key), the event type [`ALL_TYPES`] for every type.
pub type ValueRollups = BTreeMap<(Option<String>, String), TypeRollup>;

/// A day's rollup: by event type ([`ALL_TYPES`] included) and, for each
/// declared property it was computed for (and only those: a property
/// declared later is not here until the day is rolled up again), by value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DayRollup {
    pub types: BTreeMap<String, TypeRollup>,
    pub properties: BTreeMap<String, ValueRollups>,
}

impl DayRollup {
    /// The rows it is stored as: its type rows and its value rows.
    pub fn rows(&self) -> usize {
        self.types.len() + self.value_rows()
    }

    pub fn value_rows(&self) -> usize {
        self.properties.values().map(BTreeMap::len).sum()
    }

    /// Adds `other` (the rows of other events of the same day): types and
    /// values summed and unioned. A property only one side holds cannot be
    /// known for the sum and is dropped.
    pub fn add(&mut self, other: &DayRollup) {
        for (t, r) in &other.types {
            self.types.entry(t.clone()).or_default().add(r);
        }
        self.properties
            .retain(|p, _| other.properties.contains_key(p));
        for (p, values) in &mut self.properties {
            for (k, r) in &other.properties[p] {
                values.entry(k.clone()).or_default().add(r);
            }
        }
    }
}

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

/// User ordinals as PostgreSQL's `array_agg` gives them, as a set.
pub(crate) fn ordinal_set(ordinals: Vec<i64>) -> Result<RoaringBitmap, StoreError> {
    ordinals.into_iter().map(ordinal).collect()
}

/// Where a stored rollup row belongs: an event type's row (`property`
/// empty) or a value's of a declared property.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct RowKey {
    pub property: String,
    pub value: Option<String>,
    pub event_type: String,
}

impl DayRollup {
    /// Puts one stored row in its place; `false` when a type row comes
    /// twice.
    pub(crate) fn put(&mut self, key: RowKey, r: TypeRollup) -> bool {
        if key.property.is_empty() {
            return self.types.insert(key.event_type, r).is_none();
        }
        self.properties
            .entry(key.property)
            .or_default()
            .insert((key.value, key.event_type), r)
            .is_none()
    }

    /// Its rows as stored.
    pub(crate) fn stored_rows(&self) -> impl Iterator<Item = (RowKey, &TypeRollup)> {
        let types = self.types.iter().map(|(t, r)| {
            let key = RowKey {
                property: String::new(),
                value: None,
                event_type: t.clone(),
            };
            (key, r)
        });
        let values = self.properties.iter().flat_map(|(p, values)| {
            values.iter().map(move |((v, t), r)| {
                let key = RowKey {
                    property: p.clone(),
                    value: v.clone(),
                    event_type: t.clone(),
                };
                (key, r)
            })
        });
        types.chain(values)
    }
}

/// Builds a day rollup from `(key, events, sorted distinct user ordinals)`
/// per row; `declared`: the properties it was computed for, each of which
/// has its rows even when it has none (no events).
pub(crate) fn from_rows(
    rows: Vec<(RowKey, i64, Vec<i64>)>,
    declared: &[String],
) -> Result<DayRollup, StoreError> {
    let mut out = DayRollup::default();
    for p in declared {
        out.properties.entry(p.clone()).or_default();
    }
    for (key, events, ordinals) in rows {
        let users = ordinal_set(ordinals)?;
        out.put(key, TypeRollup { events, users });
    }
    Ok(out)
}
