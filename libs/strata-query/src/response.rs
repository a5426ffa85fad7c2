//! What the three stats answer (the JSON bodies of `/v1/stats/*`).

use chrono::NaiveDate;
use serde::Serialize;
use utoipa::ToSchema;

use crate::meta::Meta;
use crate::plan::u;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct DauPoint {
    pub date: NaiveDate,
    pub users: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DauResponse {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub days: Vec<DauPoint>,
    pub meta: Meta,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct TopEvent {
    pub event_type: String,
    pub count: u64,
    pub users: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TopEventsResponse {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub events: Vec<TopEvent>,
    pub meta: Meta,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Cohort {
    /// First day of the cohort's period (a Monday for weeks).
    pub cohort: NaiveDate,
    pub size: u64,
    /// `retained[k]` for k = 0 … periods−1: cohort users active in period
    /// cohort+k (`retained[0]` = `size`); periods that have not started yet
    /// are left out, so a recent cohort has fewer than `periods` values.
    pub retained: Vec<u64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RetentionResponse {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub period: &'static str,
    /// Periods tracked per cohort: the length of a complete `retained`.
    pub periods: u32,
    /// Cohorts whose period has started, oldest first; a period in the
    /// future forms no cohort, even for users whose first event is dated
    /// in it.
    pub cohorts: Vec<Cohort>,
    pub meta: Meta,
}

impl RetentionResponse {
    pub(crate) fn new(
        range: strata_model::DayRange,
        (period, periods): (strata_model::Period, u32),
        mut cohorts: Vec<Cohort>,
        meta: Meta,
    ) -> Self {
        // A cohort whose period starts before the retention horizon has
        // lost activity to expiry: it is left out, not answered in part.
        if let Some(r) = meta.retention {
            cohorts.retain(|c| c.cohort >= r.expired_before);
        }
        Self {
            from: range.from(),
            to: range.to(),
            period: period.as_str(),
            periods,
            cohorts,
            meta,
        }
    }
}

pub(crate) fn top_event(event_type: String, count: i64, users: i64) -> TopEvent {
    TopEvent {
        event_type,
        count: u(count),
        users: u(users),
    }
}
