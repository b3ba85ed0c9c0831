//! Facts about large local files that resources upload (an image archive's sha256, the images
//! its manifest names), remembered on disk by path, size and mtime: a plan does not re-read a
//! 385 MB archive every run. Hashing checks a cancellation flag between chunks, so Ctrl-C is
//! answered within one chunk.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Set to stop every hash in progress (the command running the engine sets it on Ctrl-C
/// through [`cancel`]); a cancelled hash fails with [`DigestError::Cancelled`].
pub static CANCEL: AtomicBool = AtomicBool::new(false);

/// Stops every hash in progress and any started later in this process.
pub fn cancel() {
    CANCEL.store(true, Ordering::SeqCst);
}

/// Bytes read between two looks at the cancellation flag.
const CHUNK: usize = 1 << 20;
/// Entries the cache file keeps (the newest).
const MAX_ENTRIES: usize = 64;

/// Why a local file's facts could not be had.
#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    /// Reading the file failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// [`CANCEL`] was set.
    #[error("cancelled while reading {0}")]
    Cancelled(PathBuf),
}

/// What a file is, as far as the cache can tell without reading it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct Key {
    path: PathBuf,
    size: u64,
    mtime_ns: u128,
}

impl Key {
    fn of(path: &Path) -> Result<Key, DigestError> {
        let io = |source| DigestError::Io { path: path.to_path_buf(), source };
        let meta = std::fs::metadata(path).map_err(io)?;
        let mtime = meta.modified().map_err(io)?;
        let mtime_ns = mtime.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let path = std::fs::canonicalize(path).map_err(io)?;
        Ok(Key { path, size: meta.len(), mtime_ns })
    }
}

/// One image a `docker save` manifest names: its tags and image id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchivedImage {
    /// `RepoTags` as written in the manifest.
    pub tags: Vec<String>,
    /// `sha256:<hex>` of the image's config, when the manifest names one.
    pub id: Option<String>,
}

/// What is remembered of one file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveFacts {
    /// Hex sha256 of the whole file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The images of a `docker save` archive (`None`: not read yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<Vec<ArchivedImage>>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CacheFile {
    entries: Vec<(Key, ArchiveFacts)>,
}

/// The on-disk cache: one small JSON file in a private directory.
#[derive(Debug, Clone)]
pub struct Cache {
    file: PathBuf,
}

impl Cache {
    /// The user's cache (`$XDG_CACHE_HOME/provision`, else `~/.cache/provision`), or `None`
    /// without a home.
    pub fn user() -> Option<Cache> {
        let base = match std::env::var_os("XDG_CACHE_HOME") {
            Some(d) if !d.is_empty() => PathBuf::from(d),
            _ => PathBuf::from(std::env::var_os("HOME").filter(|h| !h.is_empty())?).join(".cache"),
        };
        Some(Cache::at(&base.join("provision")))
    }

    /// A cache in `dir` (created 0700 when first written).
    pub fn at(dir: &Path) -> Cache {
        Cache { file: dir.join("archives.json") }
    }

    fn load(&self) -> CacheFile {
        // A missing or damaged cache is only a cache: start over.
        std::fs::read(&self.file).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
    }

    fn get(&self, key: &Key) -> ArchiveFacts {
        self.load().entries.into_iter().find(|(k, _)| k == key).map(|(_, f)| f).unwrap_or_default()
    }

    /// Records `facts` for `key`; failures are ignored (the next run hashes again).
    fn put(&self, key: &Key, facts: &ArchiveFacts) {
        let mut all = self.load();
        all.entries.retain(|(k, _)| k.path != key.path);
        all.entries.push((key.clone(), facts.clone()));
        let excess = all.entries.len().saturating_sub(MAX_ENTRIES);
        all.entries.drain(..excess);
        if let Ok(bytes) = serde_json::to_vec(&all) {
            let _ = write_private(&self.file, &bytes);
        }
    }
}

/// Writes `bytes` to `file` through a fresh temp file beside it and a rename, in a directory
/// created 0700.
fn write_private(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = file.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let tmp = dir.join(format!(".archives.{:016x}.tmp", rand::random::<u64>()));
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    let written = f.write_all(bytes).and_then(|_| f.sync_all()).and_then(|_| std::fs::rename(&tmp, file));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Facts already computed in this process, by file.
static MEMO: Mutex<Option<HashMap<Key, ArchiveFacts>>> = Mutex::new(None);
/// Held while a file is read, so hosts planned at once read a shared archive once.
static READING: Mutex<()> = Mutex::new(());

/// The sha256 (hex) of a local file: from this process's memory, the user's cache, or read in
/// chunks (stopping when [`CANCEL`] is set) and remembered in both.
pub fn sha256(path: &Path) -> Result<String, DigestError> {
    let facts = facts(
        path,
        |f| f.sha256.is_some(),
        |path, f| {
            f.sha256 = Some(sha256_with(path, &CANCEL)?);
            Ok(())
        },
    )?;
    Ok(facts.sha256.unwrap_or_default())
}

/// The facts of `path`, completed by `fill` when `has` says they lack something.
pub(crate) fn facts(
    path: &Path,
    has: impl Fn(&ArchiveFacts) -> bool,
    fill: impl FnOnce(&Path, &mut ArchiveFacts) -> Result<(), DigestError>,
) -> Result<ArchiveFacts, DigestError> {
    let key = Key::of(path)?;
    let remembered = |key: &Key| MEMO.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(HashMap::new).get(key).cloned();
    if let Some(f) = remembered(&key).filter(&has) {
        return Ok(f);
    }
    let _reading = READING.lock().unwrap_or_else(|e| e.into_inner());
    let cache = Cache::user();
    let mut f = remembered(&key).unwrap_or_else(|| cache.as_ref().map(|c| c.get(&key)).unwrap_or_default());
    if !has(&f) {
        fill(path, &mut f)?;
        if let Some(c) = &cache {
            c.put(&key, &f);
        }
    }
    MEMO.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(HashMap::new).insert(key, f.clone());
    Ok(f)
}

/// The sha256 (hex) of `path`, read in chunks; fails with [`DigestError::Cancelled`] as soon
/// as `cancel` is set.
pub fn sha256_with(path: &Path, cancel: &AtomicBool) -> Result<String, DigestError> {
    let io = |source| DigestError::Io { path: path.to_path_buf(), source };
    let mut hasher = Sha256::new();
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut buf = vec![0u8; CHUNK];
    loop {
        if cancel.load(Ordering::SeqCst) {
            return Err(DigestError::Cancelled(path.to_path_buf()));
        }
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// The sha256 of `path` through the cache in `cache` (a test seam for [`sha256`], which uses
/// the user's cache and this process's memory).
pub fn cached_sha256(path: &Path, cache: &Cache, cancel: &AtomicBool) -> Result<String, DigestError> {
    let key = Key::of(path)?;
    let mut f = cache.get(&key);
    if let Some(h) = &f.sha256 {
        return Ok(h.clone());
    }
    let h = sha256_with(path, cancel)?;
    f.sha256 = Some(h.clone());
    cache.put(&key, &f);
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_is_read_once_then_remembered_by_size_and_mtime() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(&dir.path().join("cache"));
        let file = dir.path().join("a.tar");
        std::fs::write(&file, b"first").unwrap();
        let never = AtomicBool::new(false);
        let first = cached_sha256(&file, &cache, &never).unwrap();
        assert_eq!(first, hex::encode(Sha256::digest(b"first")));
        let on_disk = std::fs::read_to_string(dir.path().join("cache/archives.json")).unwrap();
        assert!(on_disk.contains(&first), "remembered across runs: {on_disk}");
        // Same size and mtime: the cache answers without reading (the content is not looked at).
        let mtime = std::fs::metadata(&file).unwrap().modified().unwrap();
        std::fs::write(&file, b"other").unwrap();
        std::fs::File::options().write(true).open(&file).unwrap().set_modified(mtime).unwrap();
        assert_eq!(cached_sha256(&file, &cache, &never).unwrap(), first, "answered from the cache");
        // A new mtime is a new file.
        std::fs::File::options().write(true).open(&file).unwrap().set_modified(mtime + std::time::Duration::from_secs(1)).unwrap();
        assert_eq!(cached_sha256(&file, &cache, &never).unwrap(), hex::encode(Sha256::digest(b"other")));
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(dir.path().join("cache")).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o700, "the cache directory is private");
    }

    #[test]
    fn hashing_stops_when_cancelled() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("big.tar");
        std::fs::write(&file, vec![0u8; 3 * CHUNK]).unwrap();
        let cancelled = AtomicBool::new(true);
        assert!(matches!(sha256_with(&file, &cancelled), Err(DigestError::Cancelled(_))));
        let cache = Cache::at(dir.path());
        assert!(matches!(cached_sha256(&file, &cache, &cancelled), Err(DigestError::Cancelled(_))));
        assert!(cached_sha256(&file, &cache, &AtomicBool::new(false)).is_ok(), "nothing wrong was remembered");
    }
}
