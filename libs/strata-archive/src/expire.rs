//! Retention policies enforced by the archive run (ADR-031): the manifest
//! rows, rollups and hot rows before each project's horizon go in one
//! transaction; the objects are deleted after it commits, and any that a
//! crash leaves are orphans for the next run's sweep.

use chrono::Utc;
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
            .expire(run_id, today, self.swap_waits(false))
            .await?
        {
            Ok(expired) => expired,
            Err(holder) => return Err(ArchiveError::Fenced { run_id, holder }),
        };
        self.failpoint("expired_committed");
        if !expired.object_keys.is_empty() || expired.hot_rows > 0 {
            tracing::info!(
                run_id,
                files = expired.object_keys.len(),
                cold_rows = expired.cold_rows,
                hot_rows = expired.hot_rows,
                "expired events past their projects' retention"
            );
        }
        Ok(expired)
    }
}
