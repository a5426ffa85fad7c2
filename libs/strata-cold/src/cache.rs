//! Local files for DuckDB to read.
//!
//! `file://` stores are read in place. Remote stores are read through a
//! bounded on-disk cache: each object is downloaded to a temporary name,
//! checked (its size equals the manifest's, it starts and ends with the
//! Parquet magic `PAR1`), then renamed into place under its object key, so a
//! reader never sees a partial file and the Hive layout
//! (`events/project_id=…/date=…/`) survives on disk. A cached file that fails
//! the same check later (truncated, overwritten) is fetched again.
//!
//! Files in use by a query are pinned by its [`Lease`]; when the cache holds
//! more than its budget, the least recently used unpinned files are deleted.
//! A single query that needs more than the whole budget still runs (its
//! files stay until its lease ends).

use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;
use futures::StreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;

use crate::{ColdError, ColdStore};

const MAGIC: &[u8; 4] = b"PAR1";
const PARALLEL_FETCHES: usize = 8;

/// One file a query needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedFile {
    pub day: NaiveDate,
    pub key: String,
    /// Size the manifest recorded.
    pub bytes: u64,
}

/// Local paths for a query, valid while this value lives.
#[derive(Debug)]
pub struct Lease {
    pub paths: Vec<PathBuf>,
    pub hits: u64,
    pub misses: u64,
    pub fetched_bytes: u64,
    /// False for `file://` stores, read in place.
    pub cached: bool,
    pins: Vec<String>,
    cache: Option<Arc<Inner>>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(inner) = &self.cache {
            inner.unpin(&self.pins);
        }
    }
}

#[derive(Debug)]
struct Entry {
    bytes: u64,
    last_used: u64,
    pins: u32,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<String, Entry>,
    total: u64,
    tick: u64,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    max_bytes: u64,
    state: Mutex<State>,
}

/// The cold files reader: in place for `file://`, cached otherwise.
#[derive(Debug, Clone)]
pub struct ColdReadCache {
    store: ColdStore,
    cache: Option<Arc<Inner>>,
}

impl ColdReadCache {
    /// `dir` holds the cache of a remote store (created if missing; files
    /// already there are adopted, oldest first evicted); unused for `file://`.
    pub fn new(store: ColdStore, dir: &FsPath, max_bytes: u64) -> Result<Self, ColdError> {
        if store.is_local() {
            return Ok(Self { store, cache: None });
        }
        std::fs::create_dir_all(dir)?;
        let dir = dir.canonicalize()?;
        let tmp = dir.join("tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp)?;
        let mut found = Vec::new();
        collect_files(&dir.join(crate::layout::EVENTS_PREFIX), &mut found)?;
        found.sort_by_key(|(_, _, modified)| *modified);
        let mut state = State::default();
        for (path, bytes, _) in found {
            let Ok(rel) = path.strip_prefix(&dir) else {
                continue;
            };
            let key = rel
                .to_string_lossy()
                .replace(std::path::MAIN_SEPARATOR, "/");
            state.tick += 1;
            state.total += bytes;
            state.entries.insert(
                key,
                Entry {
                    bytes,
                    last_used: state.tick,
                    pins: 0,
                },
            );
        }
        let inner = Arc::new(Inner {
            dir,
            max_bytes,
            state: Mutex::new(state),
        });
        inner.evict();
        Ok(Self {
            store,
            cache: Some(inner),
        })
    }

    pub fn store(&self) -> &ColdStore {
        &self.store
    }

    /// True when files are read in place (`file://`).
    pub fn is_local(&self) -> bool {
        self.cache.is_none()
    }

    /// Bytes currently cached (0 for `file://`).
    pub fn cached_bytes(&self) -> u64 {
        self.cache.as_ref().map_or(0, |c| c.lock().total)
    }

    /// The object keys of the files cached now.
    pub fn cached_keys(&self) -> Vec<String> {
        self.cache.as_ref().map_or_else(Vec::new, |c| {
            c.lock()
                .entries
                .iter()
                .filter(|(_, e)| e.bytes > 0)
                .map(|(k, _)| k.clone())
                .collect()
        })
    }

    /// Deletes the cached files of `keys` that no query is reading (those
    /// are left for a later call); returns how many were deleted.
    pub fn drop_keys(&self, keys: &[String]) -> usize {
        self.cache.as_ref().map_or(0, |c| c.forget(keys, 0))
    }

    /// Makes `files` readable locally. Fails, naming every day affected,
    /// when any file cannot be fetched or is not the file the manifest
    /// recorded.
    pub async fn materialize(&self, files: &[WantedFile]) -> Result<Lease, ColdError> {
        let Some(inner) = &self.cache else {
            return self.in_place(files);
        };
        let mut lease = Lease {
            paths: Vec::with_capacity(files.len()),
            hits: 0,
            misses: 0,
            fetched_bytes: 0,
            cached: true,
            pins: Vec::with_capacity(files.len()),
            cache: Some(Arc::clone(inner)),
        };
        let mut to_fetch = Vec::new();
        for f in files {
            let path = inner.path_of(&f.key);
            // Pin first, so that eviction cannot remove a file we checked.
            let known = inner.pin(&f.key);
            lease.pins.push(f.key.clone());
            if known && looks_complete(&path, f.bytes) {
                lease.hits += 1;
            } else {
                to_fetch.push(f);
            }
            lease.paths.push(path);
        }
        lease.misses = to_fetch.len() as u64;
        let store = self.store.object_store();
        let results: Vec<(WantedFile, Result<(), String>)> =
            futures::stream::iter(to_fetch.into_iter().cloned())
                .map(|f| {
                    let store = Arc::clone(&store);
                    let inner = Arc::clone(inner);
                    async move {
                        let r = fetch(store, inner, &f).await;
                        (f, r)
                    }
                })
                .buffer_unordered(PARALLEL_FETCHES)
                .collect()
                .await;
        let mut failed = BTreeSet::new();
        let mut reason = String::new();
        for (f, r) in results {
            match r {
                Ok(()) => {
                    lease.fetched_bytes += f.bytes;
                    inner.record(&f.key, f.bytes);
                }
                Err(e) => {
                    failed.insert(f.day);
                    if reason.is_empty() {
                        reason = e;
                    }
                }
            }
        }
        if !failed.is_empty() {
            return Err(ColdError::Unreadable {
                days: failed,
                reason,
            });
        }
        inner.evict();
        Ok(lease)
    }

    fn in_place(&self, files: &[WantedFile]) -> Result<Lease, ColdError> {
        let mut paths = Vec::with_capacity(files.len());
        let mut failed = BTreeSet::new();
        for f in files {
            let path = self
                .store
                .local_path(&Path::from(f.key.as_str()))
                .unwrap_or_default();
            if !looks_complete(&path, f.bytes) {
                failed.insert(f.day);
            }
            paths.push(path);
        }
        if !failed.is_empty() {
            return Err(ColdError::Unreadable {
                days: failed,
                reason: "a file the manifest lists is missing or not the size it recorded".into(),
            });
        }
        Ok(Lease {
            paths,
            hits: 0,
            misses: 0,
            fetched_bytes: 0,
            cached: false,
            pins: Vec::new(),
            cache: None,
        })
    }
}

impl Lease {
    /// Deletes this lease's cached files (they failed to read), so the next
    /// query fetches them again.
    pub fn invalidate(&self) {
        if let Some(inner) = &self.cache {
            inner.invalidate(&self.pins);
        }
    }
}

/// Streams `f` into a temporary file (memory: one network chunk at a time,
/// whatever the object's size), checks it, renames it into place.
async fn fetch(
    store: Arc<dyn object_store::ObjectStore>,
    inner: Arc<Inner>,
    f: &WantedFile,
) -> Result<(), String> {
    use futures::TryStreamExt;
    use tokio::io::AsyncWriteExt;
    let dest = inner.path_of(&f.key);
    let tmp = inner
        .dir
        .join("tmp")
        .join(uuid::Uuid::new_v4().simple().to_string());
    let download = async {
        let mut stream = store
            .get(&Path::from(f.key.as_str()))
            .await
            .map_err(|e| format!("object store: {e}"))?
            .into_stream();
        let mut file = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| format!("writing the cache: {e}"))?;
        let mut written = 0u64;
        while let Some(piece) = stream
            .try_next()
            .await
            .map_err(|e| format!("object store: {e}"))?
        {
            written += piece.len() as u64;
            if written > f.bytes {
                break;
            }
            file.write_all(&piece)
                .await
                .map_err(|e| format!("writing the cache: {e}"))?;
        }
        file.flush()
            .await
            .map_err(|e| format!("writing the cache: {e}"))?;
        drop(file);
        if written != f.bytes || !looks_complete(&tmp, f.bytes) {
            return Err(format!(
                "{} is {written} bytes or not Parquet; the manifest recorded {} bytes",
                f.key, f.bytes
            ));
        }
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| format!("writing the cache: {e}"))?;
        }
        tokio::fs::rename(&tmp, &dest)
            .await
            .map_err(|e| format!("writing the cache: {e}"))
    };
    let result = download.await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    result
}

/// Size as recorded and the Parquet magic at both ends.
fn looks_complete(path: &FsPath, bytes: u64) -> bool {
    let check = || -> std::io::Result<bool> {
        let mut file = std::fs::File::open(path)?;
        if file.metadata()?.len() != bytes || bytes < 8 {
            return Ok(false);
        }
        let mut head = [0u8; 4];
        file.read_exact(&mut head)?;
        let mut tail = [0u8; 4];
        file.seek(SeekFrom::End(-4))?;
        file.read_exact(&mut tail)?;
        Ok(&head == MAGIC && &tail == MAGIC)
    };
    check().unwrap_or(false)
}

fn collect_files(
    dir: &FsPath,
    out: &mut Vec<(PathBuf, u64, std::time::SystemTime)>,
) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_dir() {
            collect_files(&entry.path(), out)?;
        } else {
            out.push((entry.path(), meta.len(), meta.modified()?));
        }
    }
    Ok(())
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn path_of(&self, key: &str) -> PathBuf {
        key.split('/')
            .fold(self.dir.clone(), |p, part| p.join(part))
    }

    /// Pins `key` (creating a placeholder entry); true when it was cached.
    fn pin(&self, key: &str) -> bool {
        let mut s = self.lock();
        s.tick += 1;
        let tick = s.tick;
        match s.entries.get_mut(key) {
            Some(e) => {
                e.pins += 1;
                e.last_used = tick;
                e.bytes > 0
            }
            None => {
                s.entries.insert(
                    key.to_owned(),
                    Entry {
                        bytes: 0,
                        last_used: tick,
                        pins: 1,
                    },
                );
                false
            }
        }
    }

    /// Records the size of a file just fetched.
    fn record(&self, key: &str, bytes: u64) {
        let mut s = self.lock();
        let old = match s.entries.get_mut(key) {
            Some(e) => std::mem::replace(&mut e.bytes, bytes),
            None => return,
        };
        s.total = s.total - old + bytes;
    }

    fn unpin(&self, keys: &[String]) {
        {
            let mut s = self.lock();
            for k in keys {
                if let Some(e) = s.entries.get_mut(k) {
                    e.pins = e.pins.saturating_sub(1);
                }
            }
            // Placeholders of failed fetches leave no file behind.
            s.entries.retain(|_, e| e.bytes > 0 || e.pins > 0);
        }
        self.evict();
    }

    /// Deletes least recently used unpinned files until within budget.
    /// Files are deleted under the lock, so a concurrent fetch of the same
    /// key (which pins first) cannot have its fresh file deleted.
    fn evict(&self) {
        let mut s = self.lock();
        if s.total <= self.max_bytes {
            return;
        }
        let mut candidates: Vec<(u64, String, u64)> = s
            .entries
            .iter()
            .filter(|(_, e)| e.pins == 0 && e.bytes > 0)
            .map(|(k, e)| (e.last_used, k.clone(), e.bytes))
            .collect();
        candidates.sort_unstable();
        for (_, key, bytes) in candidates {
            if s.total <= self.max_bytes {
                break;
            }
            s.entries.remove(&key);
            s.total -= bytes;
            if let Err(e) = std::fs::remove_file(self.path_of(&key)) {
                tracing::warn!(key, error = %e, "could not delete an evicted cache file");
            }
        }
    }

    /// Forgets and deletes the cached files of `keys` pinned by at most
    /// `max_pins` leases (their entries stay, empty, for those leases to
    /// unpin); returns how many were deleted.
    fn forget(&self, keys: &[String], max_pins: u32) -> usize {
        let mut s = self.lock();
        let mut dropped = 0;
        for key in keys {
            let Some(e) = s
                .entries
                .get_mut(key)
                .filter(|e| e.pins <= max_pins && e.bytes > 0)
            else {
                continue;
            };
            let bytes = std::mem::take(&mut e.bytes);
            s.total -= bytes;
            let _ = std::fs::remove_file(self.path_of(key));
            dropped += 1;
        }
        s.entries.retain(|_, e| e.bytes > 0 || e.pins > 0);
        dropped
    }

    /// Forgets and deletes `keys` unless pinned by another lease than the
    /// caller's.
    fn invalidate(&self, keys: &[String]) {
        self.forget(keys, 1);
    }
}
