//! Object keys of the cold tier: Hive-style partition folders.

use chrono::NaiveDate;
use object_store::path::Path;

/// Top-level folder of event files inside the cold URL.
pub const EVENTS_PREFIX: &str = "events";

/// `events/project_id=<id>/date=YYYY-MM-DD/part-NNNNN-rRUN.parquet`. `seq`
/// is the number of files already committed for this project and day (a
/// later chunk of late events for the day gets the next number); `run` is
/// the archive run that wrote it, so two runs never write the same key — a
/// run that lost the job (fenced, ADR-024) can never overwrite what its
/// successor committed, and whatever it leaves is an orphan the next run
/// deletes.
pub fn file_key(project_id: i64, day: NaiveDate, seq: u32, run: i64) -> Path {
    Path::from(format!(
        "{EVENTS_PREFIX}/project_id={project_id}/date={}/part-{seq:05}-r{run}.parquet",
        day.format("%Y-%m-%d")
    ))
}

/// The (project, day) folder of a key, if it is an event file key.
pub fn parse_file_key(key: &Path) -> Option<(i64, NaiveDate)> {
    let mut parts = key.parts();
    if parts.next()?.as_ref() != EVENTS_PREFIX {
        return None;
    }
    let project = parts
        .next()?
        .as_ref()
        .strip_prefix("project_id=")?
        .parse()
        .ok()?;
    let day = NaiveDate::parse_from_str(parts.next()?.as_ref().strip_prefix("date=")?, "%Y-%m-%d")
        .ok()?;
    let file = parts.next()?;
    (file.as_ref().ends_with(".parquet") && parts.next().is_none()).then_some((project, day))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let d = NaiveDate::from_ymd_opt(2026, 1, 5).unwrap();
        let k = file_key(7, d, 1, 42);
        assert_eq!(
            k.as_ref(),
            "events/project_id=7/date=2026-01-05/part-00001-r42.parquet"
        );
        assert_eq!(parse_file_key(&k), Some((7, d)));
        assert_eq!(parse_file_key(&Path::from("events/x.parquet")), None);
    }
}
