//! Local file-system helpers shared by every module: one way to expand a user-written path and
//! one way to replace a file atomically.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Expands a leading `~/` (or a lone `~`) to `$HOME`, then anchors a relative path at `base`
/// (the inventory's directory): how every path written in the inventory or vars is read.
pub fn expand_path(path: &str, base: &Path) -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let p = match (path, path.strip_prefix("~/"), home) {
        ("~", _, Some(h)) => h,
        (_, Some(rest), Some(h)) => h.join(rest),
        _ => PathBuf::from(path),
    };
    if p.is_absolute() { p } else { base.join(p) }
}

/// Writes `data` to `path` atomically with `mode`: a new temp file beside it (created
/// exclusively, with its final mode before a byte is written), synced, then renamed over.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    for attempt in 0..16u32 {
        let tmp = dir.join(format!(".{name}.{}.{attempt}.tmp", std::process::id()));
        let mut f = match std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        };
        let res = f.write_all(data).and_then(|()| f.sync_all()).and_then(|()| std::fs::rename(&tmp, path));
        if res.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        return res;
    }
    Err(std::io::Error::new(std::io::ErrorKind::AlreadyExists, "no free temp name"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_expand_home_and_anchor_relative() {
        let base = Path::new("/inv");
        assert_eq!(expand_path("keys/id", base), PathBuf::from("/inv/keys/id"));
        assert_eq!(expand_path("/abs", base), PathBuf::from("/abs"));
        if let Some(h) = std::env::var_os("HOME") {
            assert_eq!(expand_path("~/.ssh/id", base), PathBuf::from(h).join(".ssh/id"));
        }
    }

    #[test]
    fn atomic_write_replaces_whole_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        write_atomic(&p, b"one", 0o600).unwrap();
        write_atomic(&p, b"two", 0o600).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1, "no temp file left");
    }
}
