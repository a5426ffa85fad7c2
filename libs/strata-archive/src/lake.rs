//! Keeping the lake catalog (ADR-041) showing exactly the manifest: every
//! manifest transaction writes the catalog too, so this only matters for a
//! deployment from before the catalog (its first run registers every cold
//! file) or a catalog someone mended by hand (`strata-archiver lake
//! rebuild`).

use strata_store::catalog::lake::LakeSync;

use crate::{ArchiveError, Archiver};

impl Archiver {
    /// Publishes the manifest's files the catalog lacks (with the column
    /// statistics of their footers, read from the store), ends the
    /// catalog's files the manifest no longer lists, and records the cold
    /// store's root as the catalog's `data_path`.
    pub async fn sync_lake(&self) -> Result<LakeSync, ArchiveError> {
        let mut files = self.hot.unpublished_files().await?;
        for f in &mut files {
            f.columns = strata_cold::read_column_stats(&self.cold, &f.object_key).await?;
        }
        Ok(self.hot.sync_lake(&files, &self.cold.reader_root()).await?)
    }
}
