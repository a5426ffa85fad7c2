//! Retention policies (ADR-031): per project, how many UTC days of events
//! are kept. This module owns `projects.retention_days` and the expiry
//! transaction.
//!
//! Two rules make a policy exact the moment it commits, before anything is
//! deleted: every stats snapshot reads the project's horizon in the same
//! snapshot and never reads a day before it ([`crate::ReadSnapshot::horizon`]),
//! and the expiry only ever deletes days before a horizon computed at an
//! earlier instant (the archiver's clock held back by
//! [`crate::shared::locks::CLOSED_DAY_MARGIN`]), so it never takes a day that a
//! snapshot whose clock is slightly behind still answers from.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::NaiveDate;
use strata_model::{ProjectId, RetentionDays};

use crate::shared::days::day_start;
use crate::{Store, StoreError};

/// What one expiry deleted, for the run history and the object deletes
/// that follow its commit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expired {
    /// Object keys of the cold files removed from the manifest, recorded
    /// for deletion once the lake catalog's history no longer shows them
    /// ([`Store::due_deletes`]).
    pub object_keys: Vec<String>,
    pub cold_rows: i64,
    pub hot_rows: i64,
    /// Per project with a policy: its horizon (the first day kept).
    pub horizons: Vec<(ProjectId, NaiveDate)>,
}

pub(crate) fn policy(days: Option<i32>) -> Result<Option<RetentionDays>, StoreError> {
    days.map(|d| {
        u32::try_from(d)
            .ok()
            .and_then(|d| RetentionDays::new(d).ok())
            .ok_or_else(|| StoreError::Unexpected(format!("stored retention {d} is out of range")))
    })
    .transpose()
}

/// `project`'s stored policy and the epoch of its users' ordinals
/// (`ordinals.rs`; `None`: no such project).
pub(crate) async fn stored(
    conn: &mut sqlx::PgConnection,
    project: ProjectId,
) -> Result<Option<(Option<i32>, i64)>, StoreError> {
    Ok(
        sqlx::query_as("SELECT retention_days, ordinals_epoch FROM projects WHERE id = $1")
            .bind(project.0)
            .fetch_optional(conn)
            .await?,
    )
}

impl Store {
    /// Sets (or, with `None`, removes) `project`'s retention. Stats honour
    /// it from the commit on; the archiver's next run deletes what expired.
    pub async fn set_retention(
        &self,
        project: ProjectId,
        days: Option<RetentionDays>,
    ) -> Result<(), StoreError> {
        let days = days.map(|d| i32::try_from(d.days()).unwrap_or(i32::MAX));
        let updated = sqlx::query("UPDATE projects SET retention_days = $2 WHERE id = $1")
            .bind(project.0)
            .bind(days)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if updated == 0 {
            return Err(StoreError::NotFound(format!(
                "project {project} does not exist"
            )));
        }
        Ok(())
    }

    /// `project`'s retention (`None`: forever).
    pub async fn retention(&self, project: ProjectId) -> Result<Option<RetentionDays>, StoreError> {
        let (days, _) = stored(&mut *self.pool.acquire().await?, project)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("project {project} does not exist")))?;
        policy(days)
    }

    /// Deletes, for every project with a policy, everything before its
    /// horizon on `today`: cold files from the manifest (ended in the lake
    /// catalog's next snapshot, and recorded for deletion after `keep`), the rollups of
    /// those days, and the hot rows with their seals and late events. One
    /// transaction, committed only while the archive lease names `run_id`
    /// (`Ok(Err(holder))` otherwise, with nothing deleted); the hot days
    /// touched are locked as the archive commit locks them, so no late
    /// event lands in a day while its rows and seal go.
    pub async fn expire(
        &self,
        run_id: i64,
        today: NaiveDate,
        (lock_timeout, keep): (Duration, Duration),
    ) -> Result<Result<Expired, Option<i64>>, StoreError> {
        let policies: Vec<(i64, Option<i32>)> = sqlx::query_as(
            "SELECT id, retention_days FROM projects WHERE retention_days IS NOT NULL ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut horizons = Vec::new();
        for (id, days) in policies {
            if let Some(days) = policy(days)? {
                horizons.push((ProjectId(id), days.horizon(today)));
            }
        }
        let mut out = Expired::default();
        if horizons.is_empty() {
            return Ok(Ok(out));
        }
        let latest = horizons.iter().map(|h| h.1).max().unwrap_or(today);
        let hot_days: BTreeSet<NaiveDate> = self
            .list_chunks()
            .await?
            .iter()
            .map(|c| c.day())
            .filter(|d| *d < latest)
            .collect();
        let mut tx =
            match crate::catalog::runs::begin_fenced(&self.pool, run_id, &hot_days, lock_timeout)
                .await?
            {
                Ok(tx) => tx,
                Err(holder) => return Ok(Err(holder)),
            };
        for &(project, horizon) in &horizons {
            let files: Vec<(String, i64)> = sqlx::query_as(
                "WITH gone AS (
                     DELETE FROM cold_files WHERE project_id = $1 AND day < $2
                     RETURNING object_key, rows, project_id, day),
                 kept AS (
                     INSERT INTO cold_deletes (object_key, delete_after, project_id, day)
                     SELECT object_key, now() + make_interval(secs => $3), project_id, day
                       FROM gone
                     ON CONFLICT (object_key) DO NOTHING)
                 SELECT object_key, rows FROM gone",
            )
            .bind(project.0)
            .bind(horizon)
            .bind(keep.as_secs_f64())
            .fetch_all(&mut *tx)
            .await?;
            for table in [
                "day_rollups",
                "day_rollup_sources",
                "hot_rollups",
                "hot_rollup_seals",
                "hot_late_events",
            ] {
                sqlx::query(&format!(
                    "DELETE FROM {table} WHERE project_id = $1 AND day < $2"
                ))
                .bind(project.0)
                .bind(horizon)
                .execute(&mut *tx)
                .await?;
            }
            let hot = sqlx::query("DELETE FROM events WHERE project_id = $1 AND ts < $2")
                .bind(project.0)
                .bind(day_start(horizon))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            out.cold_rows += files.iter().map(|f| f.1).sum::<i64>();
            out.object_keys.extend(files.into_iter().map(|f| f.0));
            out.hot_rows += i64::try_from(hot).unwrap_or(i64::MAX);
        }
        crate::catalog::lake::commit(&mut tx, &[], &out.object_keys, "retention").await?;
        tx.commit().await?;
        out.horizons = horizons;
        Ok(Ok(out))
    }
}
