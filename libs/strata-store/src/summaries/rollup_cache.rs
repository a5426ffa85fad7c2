//! Decoded rollups kept by the process (ADR-030).
//!
//! A day's rollup rows are written only together with a new version of
//! their source row (`day_rollup_sources`, `hot_rollup_seals`), from a
//! sequence that never repeats. A snapshot reads the versions of the days
//! it plans; a day whose version equals the one remembered is taken from
//! memory, the others are read (and remembered). So a request reads from
//! PostgreSQL only the rollups written since the process last read them,
//! and answers exactly what it would have read.
//!
//! The memory is bounded by the bytes of the bitmaps: when a day would
//! exceed the budget, the least recently used half is dropped.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;

use crate::summaries::rollup::DayRollup;

/// Bytes of decoded bitmaps kept per process by default.
pub const ROLLUP_CACHE_BYTES: usize = 128 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    /// `day_rollups` or `hot_rollups`.
    table: &'static str,
    project: i64,
    day: NaiveDate,
}

#[derive(Debug)]
struct Entry {
    version: i64,
    rollup: Arc<DayRollup>,
    bytes: usize,
    used: u64,
}

#[derive(Debug, Default)]
struct Kept {
    entries: HashMap<Key, Entry>,
    bytes: usize,
    tick: u64,
}

#[derive(Debug)]
pub(crate) struct RollupCache {
    kept: Mutex<Kept>,
    budget: usize,
}

impl Default for RollupCache {
    fn default() -> Self {
        Self::new(ROLLUP_CACHE_BYTES)
    }
}

impl RollupCache {
    pub(crate) fn new(budget: usize) -> Self {
        Self {
            kept: Mutex::default(),
            budget,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The remembered rollup of `day` if it is of `version`.
    #[cfg(test)]
    fn get(
        &self,
        table: &'static str,
        project: i64,
        day: NaiveDate,
        version: i64,
    ) -> Option<Arc<DayRollup>> {
        self.recall(table, project, [(day, version)])
            .0
            .into_values()
            .next()
    }

    /// The remembered rollups of `days` (each with the version the
    /// snapshot shows) that are of that version, and the other days; one
    /// lock for all of them.
    pub(crate) fn recall(
        &self,
        table: &'static str,
        project: i64,
        days: impl IntoIterator<Item = (NaiveDate, i64)>,
    ) -> (BTreeMap<NaiveDate, Arc<DayRollup>>, Vec<NaiveDate>) {
        let mut kept = self.lock();
        kept.tick += 1;
        let tick = kept.tick;
        let (mut found, mut missing) = (BTreeMap::new(), Vec::new());
        for (day, version) in days {
            let key = Key {
                table,
                project,
                day,
            };
            match kept.entries.get_mut(&key) {
                Some(e) if e.version == version => {
                    e.used = tick;
                    found.insert(day, Arc::clone(&e.rollup));
                }
                _ => missing.push(day),
            }
        }
        (found, missing)
    }

    /// Remembers `rollup` as `day`'s of `version` (`bytes`: its bitmaps'
    /// serialized size).
    pub(crate) fn put(
        &self,
        table: &'static str,
        project: i64,
        day: NaiveDate,
        version: i64,
        rollup: Arc<DayRollup>,
        bytes: usize,
    ) {
        if bytes > self.budget {
            return;
        }
        let mut kept = self.lock();
        kept.tick += 1;
        let used = kept.tick;
        let key = Key {
            table,
            project,
            day,
        };
        if let Some(old) = kept.entries.remove(&key) {
            kept.bytes -= old.bytes;
        }
        if kept.bytes + bytes > self.budget {
            // Drop the least recently used half (by bytes).
            let mut by_use: Vec<(u64, Key, usize)> = kept
                .entries
                .iter()
                .map(|(k, e)| (e.used, *k, e.bytes))
                .collect();
            by_use.sort_unstable_by_key(|(used, _, _)| *used);
            let target = kept.bytes / 2;
            for (_, k, b) in by_use {
                if kept.bytes <= target && kept.bytes + bytes <= self.budget {
                    break;
                }
                kept.entries.remove(&k);
                kept.bytes -= b;
            }
        }
        kept.bytes += bytes;
        kept.entries.insert(
            key,
            Entry {
                version,
                rollup,
                bytes,
                used,
            },
        );
    }

    /// Forgets everything (as a new process would start).
    pub(crate) fn clear(&self) {
        *self.lock() = Kept::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(n: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 1, n).unwrap()
    }

    #[test]
    fn a_day_is_reused_only_at_the_version_it_was_read() {
        let c = RollupCache::new(1000);
        let r = Arc::new(DayRollup::default());
        c.put("day_rollups", 1, day(1), 7, Arc::clone(&r), 10);
        assert!(c.get("day_rollups", 1, day(1), 7).is_some());
        assert!(c.get("day_rollups", 1, day(1), 8).is_none(), "rewritten");
        assert!(c.get("hot_rollups", 1, day(1), 7).is_none(), "other table");
        assert!(
            c.get("day_rollups", 2, day(1), 7).is_none(),
            "other project"
        );
        c.put("day_rollups", 1, day(1), 8, r, 10);
        assert!(c.get("day_rollups", 1, day(1), 7).is_none());
        assert_eq!(c.lock().bytes, 10, "the old version's bytes went with it");
        c.clear();
        assert!(c.get("day_rollups", 1, day(1), 8).is_none());
    }

    #[test]
    fn over_budget_the_least_recently_used_go_first() {
        let c = RollupCache::new(100);
        for d in 1..=10 {
            c.put("day_rollups", 1, day(d), 1, Arc::default(), 10);
        }
        // Day 1 is used again: it is now the most recent.
        assert!(c.get("day_rollups", 1, day(1), 1).is_some());
        c.put("day_rollups", 1, day(11), 1, Arc::default(), 10);
        let kept = c.lock();
        assert!(kept.bytes <= 100, "{}", kept.bytes);
        let days: Vec<u32> = {
            let mut v: Vec<u32> = kept
                .entries
                .keys()
                .map(|k| chrono::Datelike::day(&k.day))
                .collect();
            v.sort_unstable();
            v
        };
        assert!(days.contains(&1) && days.contains(&11), "{days:?}");
        assert!(!days.contains(&2), "{days:?}");
        assert_eq!(kept.bytes, days.len() * 10);
        drop(kept);
        c.put("day_rollups", 1, day(12), 1, Arc::default(), 101);
        assert!(
            c.get("day_rollups", 1, day(12), 1).is_none(),
            "too big to keep"
        );
    }
}
