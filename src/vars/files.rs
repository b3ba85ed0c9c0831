//! `group_vars/` and `host_vars/` beside the inventory.
//!
//! For a group or host NAME, each of these is read if present: `NAME.yaml`, `NAME.yml`,
//! `NAME.json`, `NAME` (no extension), and every `*.yaml`/`*.yml`/`*.json` file in a directory
//! `NAME/`, in name order (later files override earlier ones).

use std::path::{Path, PathBuf};

use super::{Layer, VarSources, map_from_node};
use crate::error::InputError;
use crate::inventory::Inventory;
use crate::source::display_path;

/// Loads every vars file for the inventory's groups and hosts. A file for a group or host the
/// inventory does not have is an error: it is almost always a typo, and silently ignoring it
/// would leave the intended hosts unconfigured.
pub fn load(inv: &Inventory) -> Result<VarSources, Vec<InputError>> {
    let dir = inv.dir();
    let mut sources = VarSources::default();
    let mut errors = Vec::new();
    for (kind, names) in
        [("group_vars", inv.groups.keys().cloned().collect::<Vec<_>>()), ("host_vars", inv.hosts.keys().cloned().collect())]
    {
        let base = dir.join(kind);
        if !base.is_dir() {
            continue;
        }
        for stray in strays(&base, &names) {
            let what = if kind == "group_vars" { "group" } else { "host" };
            let mut e =
                InputError::plain(format!("{} is for {what} `{}`, which the inventory does not have", display_path(&stray.0), stray.1));
            if let Some(s) = crate::inventory::did_you_mean(&stray.1, names.iter().map(String::as_str)) {
                e = e.with_help(format!("did you mean `{s}`?"));
            }
            errors.push(e);
        }
        for name in &names {
            let mut layers = Vec::new();
            for path in files_for(&base, name) {
                match load_layer(&path) {
                    Ok(layer) => layers.push(layer),
                    Err(e) => errors.push(e),
                }
            }
            if !layers.is_empty() {
                let target = if kind == "group_vars" { &mut sources.group_files } else { &mut sources.host_files };
                target.insert(name.clone(), layers);
            }
        }
    }
    if errors.is_empty() { Ok(sources) } else { Err(errors) }
}

/// Reads one vars file (YAML or JSON) into a layer labelled with its path.
pub fn load_layer(path: &Path) -> Result<Layer, InputError> {
    let node = crate::yaml::load_file(path)?;
    let label = display_path(path);
    let vars = map_from_node(&node, &label)?;
    Ok(Layer { label, vars })
}

fn is_vars_ext(p: &Path) -> bool {
    matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json"))
}

fn files_for(base: &Path, name: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for candidate in [format!("{name}.yaml"), format!("{name}.yml"), format!("{name}.json"), name.to_string()] {
        let p = base.join(candidate);
        if p.is_file() {
            out.push(p);
        }
    }
    let d = base.join(name);
    if d.is_dir() {
        let mut inner: Vec<PathBuf> =
            std::fs::read_dir(&d).into_iter().flatten().flatten().map(|e| e.path()).filter(|p| p.is_file() && is_vars_ext(p)).collect();
        inner.sort();
        out.extend(inner);
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
        let stem =
            if p.is_file() && is_vars_ext(&p) { p.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string() } else { file_name };
        if !names.contains(&stem) {
            out.push((p, stem));
        }
    }
    out
}
