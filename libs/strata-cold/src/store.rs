//! Object stores selected by `STRATA_COLD_URL`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

use crate::ColdError;

/// S3 settings beyond the URL. Unset fields fall back to the standard
/// `AWS_*` environment variables (`AWS_ENDPOINT`, `AWS_REGION`,
/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, …). Debug output redacts
/// the secret key.
#[derive(Clone, Default)]
pub struct S3Options {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// `bucket.host` addressing instead of path-style `host/bucket`.
    pub virtual_hosted_style: bool,
    /// Per-request timeout; a slow store fails the chunk, which stays hot.
    pub request_timeout: Option<Duration>,
}

impl std::fmt::Debug for S3Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Options")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "***"),
            )
            .field("virtual_hosted_style", &self.virtual_hosted_style)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

/// Handle to the cold tier. Cheap to clone. Its Debug output names the URL
/// only: the object store's own would print the S3 credentials.
#[derive(Clone)]
pub struct ColdStore {
    store: Arc<dyn ObjectStore>,
    url: String,
    local_root: Option<PathBuf>,
    /// Every path fsynced by [`ColdStore::make_durable`], in order, when
    /// recording was asked for (tests prove durability before commit).
    sync_log: Option<Arc<std::sync::Mutex<Vec<PathBuf>>>>,
}

impl std::fmt::Debug for ColdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColdStore")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl ColdStore {
    /// `file:///abs/path`, `file://./relative/path` or `s3://bucket[/prefix]`.
    pub fn from_url(url: &str, s3: &S3Options) -> Result<Self, ColdError> {
        let bad = |reason: &str| ColdError::BadUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        if let Some(path) = url.strip_prefix("file://") {
            if path.is_empty() {
                return Err(bad("file:// needs a path"));
            }
            let root = PathBuf::from(path);
            std::fs::create_dir_all(&root)?;
            let root = root.canonicalize()?;
            let store = LocalFileSystem::new_with_prefix(&root)?;
            return Ok(Self {
                store: Arc::new(store),
                url: url.to_owned(),
                local_root: Some(root),
                sync_log: None,
            });
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("s3:// needs a bucket"));
            }
            let timeout = s3.request_timeout.unwrap_or(Duration::from_secs(30));
            let mut b = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_virtual_hosted_style_request(s3.virtual_hosted_style)
                .with_client_options(
                    ClientOptions::new()
                        .with_timeout(timeout)
                        .with_connect_timeout(Duration::from_secs(5))
                        .with_allow_http(true),
                )
                .with_retry(RetryConfig {
                    backoff: BackoffConfig::default(),
                    max_retries: 3,
                    retry_timeout: timeout * 2,
                });
            if let Some(e) = &s3.endpoint {
                b = b.with_endpoint(e);
            }
            if let Some(r) = &s3.region {
                b = b.with_region(r);
            }
            if let Some(k) = &s3.access_key_id {
                b = b.with_access_key_id(k);
            }
            if let Some(k) = &s3.secret_access_key {
                b = b.with_secret_access_key(k);
            }
            let s3_store = b.build()?;
            let prefix = prefix.trim_matches('/');
            let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
                Arc::new(s3_store)
            } else {
                Arc::new(PrefixStore::new(s3_store, Path::from(prefix)))
            };
            return Ok(Self {
                store,
                url: url.to_owned(),
                local_root: None,
                sync_log: None,
            });
        }
        Err(bad("expected file:///path or s3://bucket/prefix"))
    }

    /// The same store, recording every fsync it makes (see [`Self::synced`]).
    pub fn recording_syncs(mut self) -> Self {
        self.sync_log = Some(Arc::default());
        self
    }

    /// The paths fsynced so far, in order (empty unless recording).
    pub fn synced(&self) -> Vec<PathBuf> {
        self.sync_log.as_ref().map_or_else(Vec::new, |l| {
            l.lock().unwrap_or_else(|p| p.into_inner()).clone()
        })
    }

    /// Makes a completed object survive a power cut before anything that
    /// depends on it commits. For `file://` stores the object store writes
    /// a staging file and renames it into place without syncing, so this
    /// fsyncs the file, then every folder from its own up to the store's
    /// root (new `project_id=`/`date=` folders, and the rename's entry).
    /// S3 needs nothing: a completed PUT or multipart upload is durable
    /// when the store answers.
    pub async fn make_durable(&self, key: &Path) -> Result<(), ColdError> {
        let (Some(root), Some(file)) = (self.local_root.clone(), self.local_path(key)) else {
            return Ok(());
        };
        let log = self.sync_log.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let record = |p: &std::path::Path| {
                if let Some(l) = &log {
                    l.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(p.to_owned());
                }
            };
            std::fs::File::open(&file)?.sync_all()?;
            record(&file);
            let mut dir = file.parent();
            while let Some(d) = dir {
                // Directories are opened read-only to fsync their entries.
                std::fs::File::open(d)?.sync_all()?;
                record(d);
                if d == root {
                    break;
                }
                dir = d.parent();
            }
            Ok(())
        })
        .await
        .map_err(|e| ColdError::Io(std::io::Error::other(e)))??;
        Ok(())
    }

    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.store)
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The store's root as outside readers name it, with a trailing slash:
    /// the absolute folder of a `file://` store, `s3://bucket/prefix/` of
    /// an S3 one (the lake catalog's `data_path`, ADR-041).
    pub fn reader_root(&self) -> String {
        let root = match &self.local_root {
            Some(root) => root.display().to_string(),
            None => self.url.trim_end_matches('/').to_owned(),
        };
        format!("{}/", root.trim_end_matches('/'))
    }

    /// Deletes every object under this store's URL; how many. For fixtures
    /// (tests, benchmarks) that own their prefix: never point it at a
    /// deployment's cold tier.
    pub async fn delete_all(&self) -> Result<usize, ColdError> {
        use futures::TryStreamExt;
        use object_store::ObjectStoreExt;
        let keys: Vec<Path> = self
            .store
            .list(None)
            .map_ok(|m| m.location)
            .try_collect()
            .await?;
        for k in &keys {
            self.store.delete(k).await?;
        }
        Ok(keys.len())
    }

    /// Lists at most one object under `events/`, as a reachability check.
    pub async fn check(&self, timeout: Duration) -> Result<(), ColdError> {
        use futures::StreamExt;
        let mut list = self
            .store
            .list(Some(&Path::from(crate::layout::EVENTS_PREFIX)));
        match tokio::time::timeout(timeout, list.next()).await {
            Ok(Some(Err(e))) => Err(e.into()),
            Ok(_) => Ok(()),
            Err(_) => Err(ColdError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {timeout:?}"),
            ))),
        }
    }

    /// True for `file://` stores (read in place, never cached).
    pub fn is_local(&self) -> bool {
        self.local_root.is_some()
    }

    /// For `file://` stores, the local path of a key (read in place).
    pub fn local_path(&self, key: &Path) -> Option<PathBuf> {
        self.local_root.as_ref().map(|root| {
            key.parts()
                .fold(root.clone(), |p, part| p.join(part.as_ref()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_s3_credentials() {
        let s3 = S3Options {
            endpoint: Some("http://127.0.0.1:3900".into()),
            region: Some("garage".into()),
            access_key_id: Some("GKexamplekeyid".into()),
            secret_access_key: Some("very-secret-value".into()),
            ..S3Options::default()
        };
        let store = ColdStore::from_url("s3://bucket/prefix", &s3).unwrap();
        for shown in [format!("{store:?}"), format!("{s3:?}")] {
            assert!(!shown.contains("very-secret-value"), "{shown}");
        }
        assert!(format!("{store:?}").contains("s3://bucket/prefix"));
    }
}
