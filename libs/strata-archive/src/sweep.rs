//! The orphan sweep: objects under `events/` that no manifest row lists are
//! leftovers of runs that died between writing and committing.

use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use strata_cold::ObjectKey;
use strata_cold::layout::EVENTS_PREFIX;

use crate::{ArchiveError, Archiver};

impl Archiver {
    /// Deletes event objects that no manifest row lists. Runs under the
    /// archiver lock, so nothing is being written meanwhile.
    pub(crate) async fn remove_orphans(&self) -> Result<usize, ArchiveError> {
        let committed = self.hot.manifest().object_keys().await?;
        let store = self.cold.object_store();
        let prefix = object_store::path::Path::from(EVENTS_PREFIX);
        let objects: Vec<_> = store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(strata_cold::ColdError::from)?;
        let mut removed = 0;
        for o in objects {
            if ObjectKey::parse(&o.location).is_some() && !committed.contains(o.location.as_ref()) {
                tracing::warn!(key = %o.location, "removing uncommitted object left by a crashed run");
                store
                    .delete(&o.location)
                    .await
                    .map_err(strata_cold::ColdError::from)?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}
