//! What image a local `docker save` archive holds, read from its `manifest.json` without
//! unpacking it (only the tar headers are walked), so an archive whose content changed under
//! the same tag is loaded again.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// The image id (`sha256:...`) of `reference` in the archive at `path`; `None` when the archive
/// has no manifest entry for it. Remembered per path, size and mtime.
pub fn image_id(path: &Path, reference: &str) -> std::io::Result<Option<String>> {
    use std::collections::HashMap;
    use std::sync::Mutex;
    type Key = (std::path::PathBuf, u64, std::time::SystemTime, String);
    static MEMO: Mutex<Option<HashMap<Key, Option<String>>>> = Mutex::new(None);
    let meta = std::fs::metadata(path)?;
    let key = (path.to_path_buf(), meta.len(), meta.modified()?, reference.to_string());
    if let Some(id) = MEMO.lock().expect("archive memo").get_or_insert_with(HashMap::new).get(&key) {
        return Ok(id.clone());
    }
    let manifest = read_member(&mut std::fs::File::open(path)?, "manifest.json")?;
    let id = manifest.as_deref().and_then(|m| id_in_manifest(m, reference));
    MEMO.lock().expect("archive memo").get_or_insert_with(HashMap::new).insert(key, id.clone());
    Ok(id)
}

/// The image id for `reference` in a `docker save` manifest: the entry tagged with it, else the
/// only entry.
fn id_in_manifest(manifest: &[u8], reference: &str) -> Option<String> {
    let entries: Vec<serde_json::Value> = serde_json::from_slice(manifest).ok()?;
    let tagged = |e: &&serde_json::Value| {
        e["RepoTags"].as_array().is_some_and(|tags| tags.iter().any(|t| t.as_str().is_some_and(|t| same_reference(t, reference))))
    };
    let entry = entries.iter().find(tagged).or_else(|| (entries.len() == 1).then(|| &entries[0]))?;
    let config = entry["Config"].as_str()?;
    // `<hex>.json` (docker's classic layout) or `blobs/sha256/<hex>` (OCI layout).
    let hex = config.rsplit('/').next()?.trim_end_matches(".json");
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| format!("sha256:{hex}"))
}

/// `registry:2`, `library/registry:2` and `docker.io/library/registry:2` name one image.
fn same_reference(a: &str, b: &str) -> bool {
    fn norm(r: &str) -> &str {
        let r = r.strip_prefix("docker.io/").unwrap_or(r);
        r.strip_prefix("library/").unwrap_or(r)
    }
    norm(a) == norm(b)
}

/// The content of the member `name` of a tar stream, skipping over every other member.
fn read_member(f: &mut (impl Read + Seek), name: &str) -> std::io::Result<Option<Vec<u8>>> {
    let mut header = [0u8; 512];
    loop {
        if f.read(&mut header[..1])? == 0 {
            return Ok(None);
        }
        f.read_exact(&mut header[1..])?;
        if header.iter().all(|&b| b == 0) {
            return Ok(None);
        }
        let field = |r: std::ops::Range<usize>| {
            let raw = &header[r];
            String::from_utf8_lossy(&raw[..raw.iter().position(|&b| b == 0).unwrap_or(raw.len())]).into_owned()
        };
        let size = u64::from_str_radix(field(124..136).trim(), 8)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not a tar archive"))?;
        let prefix = field(345..500);
        let member = if prefix.is_empty() { field(0..100) } else { format!("{prefix}/{}", field(0..100)) };
        if member.trim_start_matches("./") == name {
            let mut buf = vec![0; usize::try_from(size).unwrap_or(0)];
            f.read_exact(&mut buf)?;
            return Ok(Some(buf));
        }
        f.seek(SeekFrom::Current(size.div_ceil(512) as i64 * 512))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, data) in members {
            let mut h = [0u8; 512];
            h[..name.len()].copy_from_slice(name.as_bytes());
            h[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
            out.extend_from_slice(&h);
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
        out.extend_from_slice(&[0u8; 1024]);
        out
    }

    #[test]
    fn finds_the_tagged_image_id_past_other_members() {
        let id = "a".repeat(64);
        let manifest = format!(
            r#"[{{"Config":"{id}.json","RepoTags":["registry:2"]}},{{"Config":"blobs/sha256/{}","RepoTags":["x:1"]}}]"#,
            "b".repeat(64)
        );
        let t = tar(&[("layer/layer.tar", &[7u8; 1500]), ("manifest.json", manifest.as_bytes())]);
        let m = read_member(&mut std::io::Cursor::new(&t), "manifest.json").unwrap().unwrap();
        assert_eq!(id_in_manifest(&m, "docker.io/library/registry:2"), Some(format!("sha256:{id}")));
        assert_eq!(id_in_manifest(&m, "x:1"), Some(format!("sha256:{}", "b".repeat(64))));
        assert_eq!(id_in_manifest(&m, "other:1"), None, "two entries, none tagged: unknown");
        assert_eq!(read_member(&mut std::io::Cursor::new(&t), "absent.json").unwrap(), None);
        assert!(read_member(&mut std::io::Cursor::new(b"garbage that is not a tar".repeat(40)), "manifest.json").is_err());
    }
}
