//! `group_vars/` and `host_vars/` beside the inventory, found as Ansible's `host_group_vars`
//! plugin finds them.
//!
//! For a group or host NAME, the first of `NAME`, `NAME.yml`, `NAME.yaml`, `NAME.json` that
//! exists is used. When it is a directory, every file in it is loaded, in name order, descending
//! into subdirectories (whose names have no extension); files must have no extension or one of
//! `.yml`, `.yaml`, `.json`; hidden files and backups (`~`) are skipped. Later files override
//! earlier ones. A whole file may be vault-encrypted.

use std::path::{Path, PathBuf};

use super::{Layer, VarSources, map_from_node, vault};
use crate::error::InputError;
use crate::source::{did_you_mean, display_path};

const EXTENSIONS: [&str; 3] = ["yml", "yaml", "json"];

/// What was found beside the inventory, and warnings about vars files for groups or hosts the
/// inventory does not have (Ansible ignores those silently: they are often meant for a dynamic
/// inventory's groups; a likely typo gets a did-you-mean).
#[derive(Debug, Default)]
pub struct Found {
    /// The vars files, as layers.
    pub sources: VarSources,
    /// One line per ignored file.
    pub warnings: Vec<String>,
}

/// Loads the vars files in `dir` for `groups` and `hosts`.
pub fn load(dir: &Path, groups: &[String], hosts: &[String]) -> Result<Found, Vec<InputError>> {
    let mut found = Found::default();
    let mut errors = Vec::new();
    for (kind, names) in [("group_vars", groups), ("host_vars", hosts)] {
        let base = dir.join(kind);
        if !base.is_dir() {
            continue;
        }
        for (path, name) in strays(&base, names) {
            let what = if kind == "group_vars" { "group" } else { "host" };
            let mut w = format!("{} is for {what} `{name}`, which the inventory does not have; it is ignored", display_path(&path));
            if let Some(s) = did_you_mean(&name, names.iter().map(String::as_str)) {
                w.push_str(&format!(" (did you mean `{s}`?)"));
            }
            found.warnings.push(w);
        }
        for name in names {
            let mut layers = Vec::new();
            for path in files_for(&base, name) {
                match load_layer(&path) {
                    Ok(layer) => layers.push(layer),
                    Err(e) => errors.push(e),
                }
            }
            if !layers.is_empty() {
                let target = if kind == "group_vars" { &mut found.sources.group_files } else { &mut found.sources.host_files };
                target.insert(name.clone(), layers);
            }
        }
    }
    if errors.is_empty() { Ok(found) } else { Err(errors) }
}

/// Reads one vars file (YAML or JSON, possibly vault-encrypted) into a layer labelled with its
/// path. Every value of an encrypted file is secret.
pub fn load_layer(path: &Path) -> Result<Layer, InputError> {
    let label = display_path(path);
    let text = std::fs::read_to_string(path).map_err(|e| InputError::plain(format!("cannot read {label}: {e}")))?;
    if !vault::is_vault(&text) {
        let id = crate::source::register(path, text.clone());
        let node = crate::yaml::parse(id, &text)?;
        return Ok(Layer { vars: map_from_node(&node, &label)?, label });
    }
    let plain = vault::decrypt(&text, &label).map_err(|e| InputError::plain(e.to_string()))?;
    let id = crate::source::register_named(format!("{label} (decrypted)"), plain.clone());
    let node = crate::yaml::parse(id, &plain)?;
    let mut vars = map_from_node(&node, &label)?;
    for v in vars.values_mut() {
        // Marked secret (not `!vault`: the value is already plain text).
        v.tag.get_or_insert_with(|| super::secret::TAG.to_string());
    }
    Ok(Layer { label, vars })
}

fn ext_of(p: &Path) -> Option<&str> {
    p.extension().and_then(|e| e.to_str())
}

fn files_for(base: &Path, name: &str) -> Vec<PathBuf> {
    let candidates = std::iter::once(base.join(name)).chain(EXTENSIONS.iter().map(|e| base.join(format!("{name}.{e}"))));
    for p in candidates {
        if p.is_dir() {
            return dir_files(&p);
        }
        if p.is_file() {
            return vec![p];
        }
    }
    Vec::new()
}

fn dir_files(dir: &Path) -> Vec<PathBuf> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).into_iter().flatten().flatten().filter_map(|e| e.file_name().to_str().map(str::to_string)).collect();
    names.sort();
    let mut out = Vec::new();
    for n in names {
        if n.starts_with('.') || n.ends_with('~') {
            continue;
        }
        let p = dir.join(&n);
        let ext = ext_of(Path::new(&n));
        if p.is_dir() && ext.is_none() {
            out.extend(dir_files(&p));
        } else if p.is_file() && ext.is_none_or(|e| EXTENSIONS.contains(&e)) {
            out.push(p);
        }
    }
    out
}

/// Entries of `base` that name no known group/host: (path, the name it implies).
fn strays(base: &Path, names: &[String]) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(base) else { return out };
    let mut entries: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        let file_name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        if file_name.starts_with('.') || file_name.ends_with('~') || file_name.eq_ignore_ascii_case("README.md") {
            continue;
        }
        let stem = match ext_of(&p) {
            Some(e) if EXTENSIONS.contains(&e) => p.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string(),
            _ => file_name,
        };
        if !names.contains(&stem) {
            out.push((p, stem));
        }
    }
    out
}
