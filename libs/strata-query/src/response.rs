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
    /// Every user, whatever the group.
    pub days: Vec<DauPoint>,
    /// With `group_by`: as requested.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_by: Option<String>,
    /// With `group_by`: the largest groups by `total`, then "other".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<DauGroup>>,
    pub meta: Meta,
}

/// Which events a group holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GroupKind {
    /// The property has `value`.
    Value,
    /// The property is missing or null.
    Missing,
    /// Every value not shown as its own group.
    Other,
}

/// A group of a breakdown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct GroupKey {
    pub kind: GroupKind,
    /// The property's value as text (`value` groups only): a string as
    /// itself, anything else as compact JSON.
    pub value: Option<String>,
    /// How many values the `other` group holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<u64>,
}

impl GroupKey {
    pub(crate) fn value(value: Option<String>) -> Self {
        Self {
            kind: if value.is_some() {
                GroupKind::Value
            } else {
                GroupKind::Missing
            },
            value,
            values: None,
        }
    }

    pub(crate) fn other(values: u64) -> Self {
        Self {
            kind: GroupKind::Other,
            value: None,
            values: Some(values),
        }
    }
}

/// One group's DAU: each user counted once a day in each group they had
/// an event in.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DauGroup {
    #[serde(flatten)]
    pub group: GroupKey,
    /// The sum of `days` (user-days), which orders the groups.
    pub total: u64,
    pub days: Vec<DauPoint>,
}

/// One group's top events.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TopEventsGroup {
    #[serde(flatten)]
    pub group: GroupKey,
    /// The group's events, which orders the groups.
    pub total: u64,
    pub events: Vec<TopEvent>,
}

/// One group's funnel: chains whose first step's event has the group's
/// value.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FunnelGroup {
    #[serde(flatten)]
    pub group: GroupKey,
    pub steps: Vec<FunnelStep>,
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
    /// Every event, whatever the group.
    pub events: Vec<TopEvent>,
    /// With `group_by`: as requested.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_by: Option<String>,
    /// With `group_by`: the largest groups by `total`, then "other".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<TopEventsGroup>>,
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

/// One step of a funnel.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct FunnelStep {
    pub event_type: String,
    /// Users whose level is at least this step.
    pub users: u64,
    /// `users` over the previous step's (step 1: over itself); null when
    /// that is 0.
    pub conversion_from_previous: Option<f64>,
    /// `users` over step 1's; null when that is 0.
    pub conversion_from_first: Option<f64>,
}

impl FunnelStep {
    /// The steps of `steps` with `users[i]` users at least at step i+1.
    pub(crate) fn list(steps: &strata_model::FunnelSteps, users: &[u64]) -> Vec<Self> {
        let ratio = |n: u64, d: u64| (d > 0).then(|| n as f64 / d as f64);
        steps
            .types()
            .iter()
            .zip(users)
            .enumerate()
            .map(|(i, (t, &n))| Self {
                event_type: t.as_str().to_owned(),
                users: n,
                conversion_from_previous: ratio(n, users[i.saturating_sub(1)]),
                conversion_from_first: ratio(n, users[0]),
            })
            .collect()
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FunnelResponse {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub window_seconds: u64,
    /// The last day whose events were read: a chain may end up to the
    /// window after `to`.
    pub read_to: NaiveDate,
    /// Every chain, whatever the group.
    pub steps: Vec<FunnelStep>,
    /// With `group_by`: as requested.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_by: Option<String>,
    /// With `group_by`: the groups of the most users at step 1, then
    /// "other".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<FunnelGroup>>,
    pub meta: Meta,
}
