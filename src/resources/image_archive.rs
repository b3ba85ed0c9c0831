//! What image a local `docker save` archive holds, read from its `manifest.json` without
//! unpacking it (only the tar headers are walked), so an archive whose content changed under
//! the same tag is loaded again.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::digest::{self, ArchivedImage, DigestError};

/// The image id (`sha256:...`) of `reference` in the archive at `path`; `None` when the archive
/// has no manifest entry for it. Remembered per path, size and mtime (see [`digest`]).
pub fn image_id(path: &Path, reference: &str) -> Result<Option<String>, DigestError> {
    Ok(pick(&images(path)?, reference))
}

/// The images the archive's `manifest.json` names (none without a readable manifest).
pub fn images(path: &Path) -> Result<Vec<ArchivedImage>, DigestError> {
    let facts = digest::facts(
        path,
        |f| f.images.is_some(),
        |path, f| {
            let io = |source| DigestError::Io { path: path.to_path_buf(), source };
            let manifest = read_member(&mut std::fs::File::open(path).map_err(io)?, "manifest.json").map_err(io)?;
            f.images = Some(manifest.as_deref().map(parse_manifest).unwrap_or_default());
            Ok(())
        },
    )?;
    Ok(facts.images.unwrap_or_default())
}

/// The images of a `docker save` manifest (none when it is not one).
fn parse_manifest(manifest: &[u8]) -> Vec<ArchivedImage> {
    let entries: Vec<serde_json::Value> = serde_json::from_slice(manifest).unwrap_or_default();
    entries
        .iter()
        .map(|e| ArchivedImage {
            tags: e["RepoTags"].as_array().into_iter().flatten().filter_map(|t| t.as_str().map(str::to_string)).collect(),
            id: e["Config"].as_str().and_then(config_id),
        })
        .collect()
}

/// `<hex>.json` (docker's classic layout) or `blobs/sha256/<hex>` (OCI layout) as an image id.
fn config_id(config: &str) -> Option<String> {
    let hex = config.rsplit('/').next()?.trim_end_matches(".json");
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| format!("sha256:{hex}"))
}

/// The image id for `reference`: the entry tagged with it, else the only entry.
fn pick(images: &[ArchivedImage], reference: &str) -> Option<String> {
    let tagged = images.iter().find(|i| i.tags.iter().any(|t| same_reference(t, reference)));
    tagged.or_else(|| (images.len() == 1).then(|| &images[0]))?.id.clone()
}

/// The image id for `reference` in a `docker save` manifest.
#[cfg(test)]
fn id_in_manifest(manifest: &[u8], reference: &str) -> Option<String> {
    pick(&parse_manifest(manifest), reference)
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

/// A tar of `members` (name, content), for tests.
#[cfg(test)]
pub(crate) fn test_tar(members: &[(&str, &[u8])]) -> Vec<u8> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn tar(members: &[(&str, &[u8])]) -> Vec<u8> {
        test_tar(members)
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
