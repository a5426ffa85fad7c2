//! The `meta` block of every stats response: which tier answered which days,
//! what each read and how long it took.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use serde::Serialize;
use utoipa::ToSchema;

/// An inclusive run of consecutive days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct DayRangeMeta {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

/// Consecutive days of `days` folded into ranges.
pub(crate) fn ranges(days: &BTreeSet<NaiveDate>) -> Vec<DayRangeMeta> {
    let mut out: Vec<DayRangeMeta> = Vec::new();
    for &d in days {
        match out.last_mut() {
            Some(r) if r.to.succ_opt() == Some(d) => r.to = d,
            _ => out.push(DayRangeMeta { from: d, to: d }),
        }
    }
    out
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct HotMeta {
    /// Days of the request that have a hot chunk.
    pub days: usize,
    pub day_ranges: Vec<DayRangeMeta>,
    /// Hot events read as rows (a sealed day's rollup stands for the rest).
    pub rows: u64,
    pub ms: u64,
    /// Hot days answered from their rollups (sealed once the day was over)
    /// plus the late events recorded since.
    pub rollups: RollupMeta,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct CacheMeta {
    /// `file://` stores are read in place, without the cache.
    pub in_place: bool,
    pub hits: u64,
    pub misses: u64,
    pub fetched_bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct ColdMeta {
    /// Days of the request that have cold files.
    pub days: usize,
    pub day_ranges: Vec<DayRangeMeta>,
    pub files: u64,
    /// Rows in the files read.
    pub rows: u64,
    pub bytes: u64,
    pub ms: u64,
    pub cache: CacheMeta,
    /// Cold days answered from their exact rollups instead of their files.
    pub rollups: RollupMeta,
}

/// Days answered from rollups (ADR-027, ADR-028).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct RollupMeta {
    pub days: usize,
    pub day_ranges: Vec<DayRangeMeta>,
    /// Bytes of the user sets read.
    pub bytes: u64,
}

/// The project's retention policy, as it limited a request (ADR-031).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct RetentionMeta {
    /// Days of events the project keeps, today included.
    pub days: u32,
    /// The first day kept; earlier days of the range have expired.
    pub expired_before: NaiveDate,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Meta {
    pub hot: HotMeta,
    pub cold: ColdMeta,
    /// Days both tiers hold (late events), merged without double counting.
    pub both_days: Vec<NaiveDate>,
    /// Present when the range reaches before the project's retention
    /// horizon: days before `expired_before` are not answered (zero in DAU,
    /// absent from the counts and from the cohorts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionMeta>,
    /// Whole request, including planning.
    pub ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_consecutive_days() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let days: BTreeSet<_> = ["2026-02-27", "2026-02-28", "2026-03-01", "2026-03-05"]
            .into_iter()
            .map(d)
            .collect();
        assert_eq!(
            ranges(&days),
            vec![
                DayRangeMeta {
                    from: d("2026-02-27"),
                    to: d("2026-03-01")
                },
                DayRangeMeta {
                    from: d("2026-03-05"),
                    to: d("2026-03-05")
                },
            ]
        );
        assert!(ranges(&BTreeSet::new()).is_empty());
    }
}
