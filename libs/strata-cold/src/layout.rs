//! Object keys of the cold tier: Hive-style partition folders.

use chrono::NaiveDate;
use object_store::path::Path;

/// Top-level folder of event files inside the cold URL.
pub const EVENTS_PREFIX: &str = "events";

/// The key of one event file:
/// `events/project_id=<id>/date=YYYY-MM-DD/part-NNNNN-rRUN.parquet`. `seq`
/// is one more than the highest seq committed for this project and day (a
/// later chunk of late events, or a rewrite of the day's files by an
/// erasure or a compaction, gets the next number); `run` is
/// the archive run that wrote it, so two runs never write the same key — a
/// run that lost the job (fenced, ADR-024) can never overwrite what its
/// successor committed, and whatever it leaves is an orphan the next run
/// deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ObjectKey {
    pub project_id: i64,
    pub day: NaiveDate,
    pub seq: u32,
    pub run: i64,
}

impl ObjectKey {
    /// The object's path in the store.
    pub fn path(&self) -> Path {
        Path::from(self.to_string())
    }

    /// The key of an event file, or `None` for any other object.
    pub fn parse(path: &Path) -> Option<Self> {
        let mut parts = path.parts();
        if parts.next()?.as_ref() != EVENTS_PREFIX {
            return None;
        }
        let project_id = parts
            .next()?
            .as_ref()
            .strip_prefix("project_id=")?
            .parse()
            .ok()?;
        let day =
            NaiveDate::parse_from_str(parts.next()?.as_ref().strip_prefix("date=")?, "%Y-%m-%d")
                .ok()?;
        let file = parts.next()?;
        if parts.next().is_some() {
            return None;
        }
        let (seq, run) = file
            .as_ref()
            .strip_prefix("part-")?
            .strip_suffix(".parquet")?
            .split_once("-r")?;
        let key = Self {
            project_id,
            day,
            seq: seq.parse().ok()?,
            run: run.parse().ok()?,
        };
        // Only the canonical spelling (`part-00001`, not `part-1`).
        (key.path() == *path).then_some(key)
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{EVENTS_PREFIX}/project_id={}/date={}/part-{:05}-r{}.parquet",
            self.project_id,
            self.day.format("%Y-%m-%d"),
            self.seq,
            self.run
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let d = NaiveDate::from_ymd_opt(2026, 1, 5).unwrap();
        let k = ObjectKey {
            project_id: 7,
            day: d,
            seq: 1,
            run: 42,
        };
        assert_eq!(
            k.path().as_ref(),
            "events/project_id=7/date=2026-01-05/part-00001-r42.parquet"
        );
        assert_eq!(ObjectKey::parse(&k.path()), Some(k));
        assert_eq!(ObjectKey::parse(&Path::from("events/x.parquet")), None);
        assert_eq!(
            ObjectKey::parse(&Path::from(
                "events/project_id=7/date=2026-01-05/part-1-r42.parquet"
            )),
            None
        );
    }
}
