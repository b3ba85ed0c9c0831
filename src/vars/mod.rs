//! Variables: where they are written, how they override each other, and how templates in them
//! are resolved per host.
//!
//! Precedence, lowest to highest: role defaults < group `all` < parent groups < child groups <
//! host vars < `-e` extra vars. Within one level, vars written in the inventory are overridden
//! by the matching `group_vars/` or `host_vars/` file. A var replaces a lower one whole; mappings
//! are not deep-merged (Ansible's default `hash_behaviour=replace`).

pub mod extra;
pub mod files;
pub mod resolve;
pub mod schema;
pub mod secret;
pub mod template;

use indexmap::IndexMap;

use crate::error::InputError;
use crate::inventory::Inventory;
use crate::yaml::Node;

/// Vars as written in one place: name to YAML node (the node knows its file and position).
pub type VarMap = IndexMap<String, Node>;

/// Ansible's connection variable names and the names `provision` uses for them.
pub const ALIASES: [(&str, &str); 8] = [
    ("ansible_host", "address"),
    ("ansible_ssh_host", "address"),
    ("ansible_user", "user"),
    ("ansible_ssh_user", "user"),
    ("ansible_port", "port"),
    ("ansible_ssh_port", "port"),
    ("ansible_ssh_private_key_file", "ssh_key"),
    ("ansible_become", "become"),
];

/// The `provision` name for a var, translating Ansible aliases.
pub fn canonical_name(name: &str) -> &str {
    ALIASES.iter().find(|(alias, _)| *alias == name).map_or(name, |(_, canon)| canon)
}

/// Reads a mapping of vars, translating Ansible aliases; `what` names the place for errors.
pub fn map_from_node(node: &Node, what: &str) -> Result<VarMap, InputError> {
    let mut out = VarMap::new();
    if node.is_null() {
        return Ok(out);
    }
    let mut spelled: IndexMap<String, &str> = IndexMap::new();
    for (key, value) in node.as_map(what)? {
        let canon = canonical_name(&key.name);
        if let Some(first) = spelled.get(canon) {
            return Err(InputError::at(key.span, format!("`{}` and `{first}` both set `{canon}` in {what}", key.name), "second spelling")
                .with_help("keep one of them"));
        }
        spelled.insert(canon.to_string(), &key.name);
        out.insert(canon.to_string(), value.clone());
    }
    Ok(out)
}

/// One level of the precedence order, with a label for `provision inventory --explain`-style
/// output and error messages.
#[derive(Debug, Clone)]
pub struct Layer {
    /// Where these vars come from, e.g. `group_vars/slave.yaml`.
    pub label: String,
    /// The vars.
    pub vars: VarMap,
}

/// Every var source found for an inventory: its own vars plus the vars files beside it.
#[derive(Debug, Clone, Default)]
pub struct VarSources {
    /// `group_vars/<group>` files, by group.
    pub group_files: IndexMap<String, Vec<Layer>>,
    /// `host_vars/<host>` files, by host.
    pub host_files: IndexMap<String, Vec<Layer>>,
    /// `-e` extra vars, in command-line order.
    pub extra: Vec<Layer>,
    /// Role defaults (lowest precedence).
    pub defaults: VarMap,
}

/// The layers that apply to `host`, lowest precedence first.
pub fn layers_for(inv: &Inventory, sources: &VarSources, host: &str) -> Vec<Layer> {
    let mut layers = vec![Layer { label: "role defaults".into(), vars: sources.defaults.clone() }];
    for group in inv.host_groups(host) {
        let g = &inv.groups[&group];
        if !g.vars.is_empty() {
            layers.push(Layer { label: format!("inventory vars of group {group}"), vars: g.vars.clone() });
        }
        layers.extend(sources.group_files.get(&group).into_iter().flatten().cloned());
    }
    let h = &inv.hosts[host];
    if !h.vars.is_empty() {
        layers.push(Layer { label: format!("inventory vars of host {host}"), vars: h.vars.clone() });
    }
    layers.extend(sources.host_files.get(host).into_iter().flatten().cloned());
    layers.extend(sources.extra.iter().cloned());
    layers
}

/// Merges layers: a later layer's var replaces an earlier one whole.
pub fn merge(layers: &[Layer]) -> VarMap {
    let mut out = VarMap::new();
    for layer in layers {
        for (k, v) in &layer.vars {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}
