//! Retention policies enforced by the archive run (ADR-031): the manifest
//! rows, rollups and hot rows before each project's horizon go in one
//! transaction; the objects are deleted after it commits, and any that a
//! crash leaves are orphans for the next run's sweep.

use chrono::Utc;
use object_store::ObjectStoreExt;
use strata_store::Expired;
use strata_store::shared::locks::CLOSED_DAY_MARGIN;

use crate::{ArchiveError, Archiver};

impl Archiver {
    pub(crate) async fn expire(&self, run_id: i64) -> Result<Expired, ArchiveError> {
        // Held back by the margin: never a day that a stats process whose
        // clock is a little behind still answers from.
        let today = (Utc::now() - CLOSED_DAY_MARGIN).date_naive();
        let expired = match self
            .hot
            .expire(run_id, today, self.config.commit_lock_timeout)
            .await?
        {
            Ok(expired) => expired,
            Err(holder) => return Err(ArchiveError::Fenced { run_id, holder }),
        };
        self.failpoint("expired_committed");
        let store = self.cold.object_store();
        let mut left = 0;
        for key in &expired.object_keys {
            let path = object_store::path::Path::from(key.as_str());
            match store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => {
                    left += 1;
                    tracing::warn!(key, error = %e, "expired object not deleted; the next run's sweep removes it");
                }
            }
        }
        if !expired.object_keys.is_empty() || expired.hot_rows > 0 {
            tracing::info!(
                run_id,
                files = expired.object_keys.len(),
                cold_rows = expired.cold_rows,
                hot_rows = expired.hot_rows,
                objects_left = left,
                "expired events past their projects' retention"
            );
        }
        Ok(expired)
    }
}
