//! Erasing a user (ADR-032): this module owns `erasures`, each request's
//! progress and audit record, and the erasure's last transaction.
//!
//! The archive run does the work (`strata-archive`'s `erase.rs`): first the
//! user's cold files are rewritten, one fenced swap per day (`swap.rs`);
//! then one transaction, [`Store::finish_erasure`], deletes the user's
//! first-seen record and hot rows, re-seals the hot days that held them,
//! bumps the project's `ordinals_epoch` and closes the record, clearing the
//! user id (only its hash stays).
//!
//! That last transaction holds the archive-day locks of every hot day (no
//! late event lands in a day while it is re-sealed), deletes the user's
//! rows and seals the days again, and only then takes the project's users
//! lock exclusively (`locks.rs`), for its last statements: a batch of the
//! user's events either commits before that, and is erased with the rest
//! (the rows are deleted again under the lock), or after it, and then
//! reads the new epoch and writes a new first-seen record (a new ordinal:
//! the user counts as new from then on). Event ids stay in the dedup
//! records, so a replay of the erased events is still a duplicate.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use strata_model::ProjectId;

use crate::{Store, StoreError, shared::locks};

/// An erasure request: progress while it runs, the audit record after.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct ErasureRecord {
    pub id: i64,
    pub project_id: i64,
    /// Hex HMAC-SHA256 of the user id under the project's own key
    /// (ADR-037; the id itself is not kept once done).
    pub user_hash: String,
    /// The key (or command line) that asked.
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    /// `pending`, `running`, `deleting` (the user is gone from the manifest,
    /// the hot tier and every answer; objects the erasure replaced wait out
    /// the grace period before they are deleted, `objects_pending`) or
    /// `done` (nothing of the user is left in the store).
    pub status: String,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Cold days that may hold the user (known once running).
    pub days_total: Option<i32>,
    /// Of those, the days rewritten (or found without the user) so far.
    pub days_done: i32,
    pub files_rewritten: i32,
    /// Rows of the rewritten files (read, and written again but the user's).
    pub rows_rewritten: i64,
    /// Rows removed from the hot tier.
    pub hot_rows: i64,
    /// Rows removed from the cold tier.
    pub cold_rows: i64,
    /// Why the last attempt failed (the next archive run tries again).
    pub error: Option<String>,
    /// Replaced objects that still hold the user, to be deleted once their
    /// grace period has passed (ADR-037).
    pub objects_pending: i32,
}

const COLUMNS: &str = "id, project_id, user_hash, requested_by, requested_at, status, \
    started_at, finished_at, days_total, days_done, files_rewritten, rows_rewritten, hot_rows, \
    cold_rows, error, \
    (SELECT count(*)::int4 FROM cold_deletes d WHERE d.erasure_id = erasures.id) AS objects_pending";

/// An erasure still to do, with the user id it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenErasure {
    pub id: i64,
    pub project: ProjectId,
    pub user_id: String,
}

impl Store {
    /// Records a request to erase `user_id` from `project`; returns it and
    /// whether it is new (an open request for the same user is returned
    /// as it is).
    pub async fn request_erasure(
        &self,
        project: ProjectId,
        user_id: &str,
        requested_by: &str,
    ) -> Result<(ErasureRecord, bool), StoreError> {
        let key: Vec<u8> = sqlx::query_scalar("SELECT erasure_key FROM projects WHERE id = $1")
            .bind(project.0)
            .fetch_one(&self.pool)
            .await?;
        let hash = strata_model::user_hash(&key, user_id);
        // Two tries: the open request found conflicting may finish between.
        for _ in 0..2 {
            let created: Option<ErasureRecord> = sqlx::query_as(&format!(
                "INSERT INTO erasures (project_id, user_id, user_hash, requested_by)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (project_id, user_hash) WHERE status IN ('pending', 'running') DO NOTHING
                 RETURNING {COLUMNS}"
            ))
            .bind(project.0)
            .bind(user_id)
            .bind(&hash)
            .bind(requested_by)
            .fetch_optional(&self.pool)
            .await?;
            if let Some(record) = created {
                return Ok((record, true));
            }
            let open: Option<ErasureRecord> = sqlx::query_as(&format!(
                "SELECT {COLUMNS} FROM erasures
                  WHERE project_id = $1 AND user_hash = $2 AND status IN ('pending', 'running')"
            ))
            .bind(project.0)
            .bind(&hash)
            .fetch_optional(&self.pool)
            .await?;
            if let Some(record) = open {
                return Ok((record, false));
            }
        }
        Err(StoreError::Changed(
            "an erasure of this user finished while this one was requested; ask again".into(),
        ))
    }

    /// Erasures `project` asked for since `since` (the rate limit of
    /// `POST /v1/admin/erasures`).
    pub async fn erasures_requested_since(
        &self,
        project: ProjectId,
        since: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM erasures WHERE project_id = $1 AND requested_at >= $2",
        )
        .bind(project.0)
        .bind(since)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Erasure `id` (of `project` only, when given).
    pub async fn erasure(
        &self,
        project: Option<ProjectId>,
        id: i64,
    ) -> Result<Option<ErasureRecord>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM erasures WHERE id = $1 AND ($2::int8 IS NULL OR project_id = $2)"
        ))
        .bind(id)
        .bind(project.map(|p| p.0))
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Erasures not done yet, oldest first.
    pub async fn open_erasures(&self) -> Result<Vec<OpenErasure>, StoreError> {
        let rows: Vec<(i64, i64, String)> = sqlx::query_as(
            "SELECT id, project_id, user_id FROM erasures WHERE status IN ('pending', 'running') ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, p, user_id)| OpenErasure {
                id,
                project: ProjectId(p),
                user_id,
            })
            .collect())
    }

    /// Marks erasure `id` running in `run_id`, with `days_total` cold days
    /// to look at (days done so far count again from zero).
    pub async fn start_erasure(
        &self,
        id: i64,
        run_id: i64,
        days_total: usize,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE erasures SET status = 'running', run_id = $2,
                    started_at = coalesce(started_at, now()), days_total = $3, days_done = 0
              WHERE id = $1 AND status IN ('pending', 'running')",
        )
        .bind(id)
        .bind(run_id)
        .bind(i32::try_from(days_total).unwrap_or(i32::MAX))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Counts a cold day found without the user toward the progress.
    pub async fn erasure_day_skipped(&self, id: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE erasures SET days_done = days_done + 1 WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records why the attempt failed; the next run tries again.
    pub async fn erasure_failed(&self, id: i64, error: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE erasures SET error = $2 WHERE id = $1")
            .bind(id)
            .bind(error)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The user's ordinal (`None`: no first-seen record).
    pub async fn user_ordinal(
        &self,
        project: ProjectId,
        user_id: &str,
    ) -> Result<Option<u32>, StoreError> {
        let ordinal: Option<i64> = sqlx::query_scalar(
            "SELECT ordinal FROM user_first_seen WHERE project_id = $1 AND user_id = $2",
        )
        .bind(project.0)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        ordinal.map(crate::summaries::rollup::ordinal).transpose()
    }

    /// The erasure's last transaction (see the module docs), committed
    /// only while the archive lease names `run_id` (`Ok(Err(holder))`
    /// otherwise, nothing written). Returns the hot rows removed.
    pub async fn finish_erasure(
        &self,
        run_id: i64,
        erasure: &OpenErasure,
        lock_timeout: Duration,
    ) -> Result<Result<i64, Option<i64>>, StoreError> {
        let (project, user) = (erasure.project, erasure.user_id.as_str());
        let hot_days: BTreeSet<NaiveDate> =
            self.list_chunks().await?.iter().map(|c| c.day()).collect();
        let mut tx =
            match crate::catalog::runs::begin_fenced(&self.pool, run_id, &hot_days, lock_timeout)
                .await?
            {
                Ok(tx) => tx,
                Err(holder) => return Ok(Err(holder)),
            };
        // The closed days first: no row can arrive in them now, so their
        // rollups can be sealed again from what is left (every project's:
        // a seal is per day).
        let mut days = delete_hot_rows(&mut tx, project, user).await?;
        sqlx::query("DELETE FROM hot_late_events WHERE project_id = $1 AND user_id = $2")
            .bind(project.0)
            .bind(user)
            .execute(&mut *tx)
            .await?;
        let touched: Vec<NaiveDate> = days.iter().map(|d| d.0).collect();
        let sealed: Vec<NaiveDate> =
            sqlx::query_scalar("SELECT day FROM hot_sealed_days WHERE day = ANY($1) ORDER BY day")
                .bind(&touched)
                .fetch_all(&mut *tx)
                .await?;
        for day in sealed {
            crate::summaries::seal::seal_day_in(&mut tx, day).await?;
        }
        // Then, briefly holding the project's ingest: the first-seen record
        // and the rows committed meanwhile (only into open days, never
        // sealed ones).
        sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
            .bind(locks::PROJECT_USERS)
            .bind(locks::project_key(project))
            .execute(&mut *tx)
            .await?;
        let first_seen =
            sqlx::query("DELETE FROM user_first_seen WHERE project_id = $1 AND user_id = $2")
                .bind(project.0)
                .bind(user)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        days.extend(delete_hot_rows(&mut tx, project, user).await?);
        // Only a user who had an ordinal can be remembered by a process: a
        // user who never existed leaves every process's memory valid.
        if first_seen > 0 {
            sqlx::query("UPDATE projects SET ordinals_epoch = ordinals_epoch + 1 WHERE id = $1")
                .bind(project.0)
                .execute(&mut *tx)
                .await?;
        }
        let hot_rows: i64 = days.iter().map(|d| d.1).sum();
        sqlx::query(
            "UPDATE erasures SET user_id = NULL, finished_at = now(),
                    status = CASE WHEN EXISTS (SELECT 1 FROM cold_deletes WHERE erasure_id = $1)
                                  THEN 'deleting' ELSE 'done' END,
                    hot_rows = hot_rows + $2, error = NULL, run_id = $3
              WHERE id = $1",
        )
        .bind(erasure.id)
        .bind(hot_rows)
        .bind(run_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Ok(hot_rows))
    }
}

/// Deletes the user's hot rows; returns how many per day.
async fn delete_hot_rows(
    tx: &mut sqlx::PgConnection,
    project: ProjectId,
    user: &str,
) -> Result<Vec<(NaiveDate, i64)>, StoreError> {
    Ok(sqlx::query_as(
        "WITH gone AS (DELETE FROM events WHERE project_id = $1 AND user_id = $2 RETURNING ts)
         SELECT (ts AT TIME ZONE 'UTC')::date, count(*) FROM gone GROUP BY 1",
    )
    .bind(project.0)
    .bind(user)
    .fetch_all(tx)
    .await?)
}
