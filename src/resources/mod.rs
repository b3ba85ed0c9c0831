//! Generic, idempotent resources the engine converges: files, directories, systemd units and
//! their state. Each reads its state with one sh snippet, compares locally, and converges with
//! another; every interpolated value is shell-quoted.

pub mod directory;
pub mod docker;
pub mod file;
pub mod image_archive;
pub mod netlink;
pub mod package;
pub mod service;

use crate::vars::template::shell_quote as q;

/// Splits a probe's output into its first line and the rest.
pub(crate) fn first_line(state: &str) -> (&str, &str) {
    let mut it = state.splitn(2, '\n');
    (it.next().unwrap_or("").trim(), it.next().unwrap_or(""))
}

/// Parses an octal mode as `stat -c %a` prints it (`644`) or as written in vars (`0644`).
pub fn parse_mode(mode: &str) -> Result<u32, String> {
    let m = mode.trim().trim_start_matches("0o");
    u32::from_str_radix(m, 8).ok().filter(|m| *m <= 0o7777).ok_or_else(|| format!("`{mode}` is not an octal file mode like 0644"))
}

/// Formats a mode the way users write it.
pub fn fmt_mode(mode: u32) -> String {
    format!("{mode:04o}")
}

/// sh that sets owner, group and mode of `path` (a variable reference or quoted path).
pub(crate) fn set_meta(path: &str, owner: &str, group: &str, mode: u32) -> String {
    format!("chown {} {path}\nchmod {} {path}\n", q(&format!("{owner}:{group}")), fmt_mode(mode))
}

/// The sha256 of a local file (hex), streamed, and remembered per path, size and mtime: large
/// archives are hashed once per run, not once per host.
pub fn file_digest(path: &std::path::Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    use std::collections::HashMap;
    use std::sync::Mutex;
    type Key = (std::path::PathBuf, u64, std::time::SystemTime);
    static MEMO: Mutex<Option<HashMap<Key, String>>> = Mutex::new(None);
    let meta = std::fs::metadata(path)?;
    let key = (path.to_path_buf(), meta.len(), meta.modified()?);
    if let Some(d) = MEMO.lock().expect("digest memo").get_or_insert_with(HashMap::new).get(&key) {
        return Ok(d.clone());
    }
    let mut hasher = Sha256::new();
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = std::io::Read::read(&mut file, &mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let digest = hex::encode(hasher.finalize());
    MEMO.lock().expect("digest memo").get_or_insert_with(HashMap::new).insert(key, digest.clone());
    Ok(digest)
}
