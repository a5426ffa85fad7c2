//! The cold store's survey and the orphan sweep (ADR-037). Before a run is
//! recorded, the store is claimed for this deployment (its owner marker)
//! and its event objects are listed; the run's id is then issued above the
//! highest run any object names. The sweep deletes only objects that this
//! database's own earlier runs wrote and never committed (leftovers of runs
//! that died between writing and committing). Anything else not in the
//! manifest (objects of runs this database never recorded: a restore older
//! than the cold tier) is left in place and reported.

use std::time::Duration;

use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use strata_cold::ObjectKey;
use strata_cold::layout::EVENTS_PREFIX;

use crate::{ArchiveError, Archiver};

/// The event objects of the cold store, as a run found them before it
/// started.
#[derive(Debug)]
pub(crate) struct Survey {
    objects: Vec<(Path, ObjectKey)>,
    /// The highest run id any object names (0: none).
    pub max_run: i64,
}

impl Archiver {
    /// Claims the cold store for this database's deployment (an error
    /// naming the owner when another deployment holds it) and lists its
    /// event objects.
    pub(crate) async fn survey(&self) -> Result<Survey, ArchiveError> {
        let deployment = self.hot.runs().deployment().await?;
        self.cold.claim(deployment).await?;
        let prefix = Path::from(EVENTS_PREFIX);
        let objects: Vec<(Path, ObjectKey)> = self
            .cold
            .object_store()
            .list(Some(&prefix))
            .map_ok(|o| o.location)
            .try_collect::<Vec<_>>()
            .await
            .map_err(strata_cold::ColdError::from)?
            .into_iter()
            .filter_map(|p| ObjectKey::parse(&p).map(|k| (p, k)))
            .collect();
        let max_run = objects.iter().map(|(_, k)| k.run).max().unwrap_or(0);
        Ok(Survey { objects, max_run })
    }

    /// Deletes the surveyed objects that no manifest row lists and that a
    /// run of this database before `run_id` wrote. Runs under the archiver
    /// lock, so nothing of this deployment is being written meanwhile.
    pub(crate) async fn remove_orphans(
        &self,
        survey: &Survey,
        run_id: i64,
    ) -> Result<usize, ArchiveError> {
        // Committed, or replaced and waiting out its grace period.
        let kept = self.hot.manifest().kept_keys().await?;
        let ours = self.hot.runs().ids_before(run_id).await?;
        let store = self.cold.object_store();
        let (mut removed, mut foreign) = (0, 0usize);
        for (path, key) in &survey.objects {
            if kept.contains(path.as_ref()) {
                continue;
            }
            if !ours.contains(&key.run) {
                foreign += 1;
                continue;
            }
            tracing::warn!(key = %path, "removing uncommitted object left by a crashed run");
            store
                .delete(path)
                .await
                .map_err(strata_cold::ColdError::from)?;
            removed += 1;
        }
        if foreign > 0 {
            tracing::warn!(
                objects = foreign,
                "objects under events/ that this database neither lists nor wrote are left in place \
                 (a restore of PostgreSQL older than the cold tier?): see docs/operations.md, Backup and restore"
            );
        }
        Ok(removed)
    }
}

/// Replaced objects deleted per batch (one manifest update each).
const DELETE_BATCH: i64 = 1_000;

impl Archiver {
    /// The wait for a swap's locks, and how long the objects it replaces
    /// stay: the grace period for requests planned before it, and the lake
    /// catalog's history too unless the swap is an erasure's (ADR-041).
    pub(crate) fn swap_waits(&self, erasing: bool) -> (Duration, Duration) {
        let grace = self.config.cold_delete_grace;
        let keep = if erasing {
            grace
        } else {
            grace.max(self.config.lake_history)
        };
        (self.config.commit_lock_timeout, keep)
    }

    /// Deletes the replaced objects whose grace period has passed (ADR-037)
    /// and marks `done` the erasures left with nothing to delete. An object
    /// that cannot be deleted now stays recorded for the next run. Returns
    /// how many were deleted.
    pub(crate) async fn delete_due(&self) -> Result<usize, ArchiveError> {
        let expired = self.hot.expire_lake(self.config.lake_history).await?;
        if expired.snapshots > 0 {
            tracing::info!(
                snapshots = expired.snapshots,
                files = expired.files,
                "expired lake snapshots"
            );
        }
        let store = self.cold.object_store();
        let mut deleted = 0;
        loop {
            let due = self.hot.due_deletes(DELETE_BATCH).await?;
            let mut gone = Vec::with_capacity(due.len());
            for key in &due {
                match store.delete(&Path::from(key.as_str())).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => gone.push(key.clone()),
                    Err(e) => {
                        tracing::warn!(key, error = %e, "replaced object not deleted; the next run tries again");
                    }
                }
            }
            self.hot.deleted(&gone).await?;
            deleted += gone.len();
            if gone.len() < due.len() || due.len() < DELETE_BATCH as usize {
                return Ok(deleted);
            }
        }
    }
}
