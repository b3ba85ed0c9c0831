//! Variables: where they are written, how they override each other, and how templates in them
//! are resolved per host.
//!
//! Precedence, lowest to highest, as Ansible's defaults: role defaults < inventory vars of group
//! `all` < inventory vars of the other groups < `group_vars/all` < `group_vars/<group>` <
//! inventory vars of the host < `host_vars/<host>` < `-e` extra vars. Groups apply in Ansible's
//! order: by depth, then `ansible_group_priority`, then name. A var replaces a lower one whole;
//! mappings are not deep-merged (Ansible's default `hash_behaviour=replace`).
//!
//! This module knows nothing of the inventory's shape: the caller ([`crate::project`]) lists the
//! layers that apply to a host, and [`resolve`] renders them.

pub mod extra;
pub mod files;
pub mod filters;
pub mod resolve;
pub mod schema;
pub mod secret;
pub mod shlex;
pub mod template;
pub mod vault;

use indexmap::IndexMap;

use crate::error::InputError;
use crate::yaml::Node;

/// Vars as written in one place: name to YAML node (the node knows its file and position).
pub type VarMap = IndexMap<String, Node>;

/// Reads a mapping of vars; `what` names the place for errors. Names are kept as written, so
/// Ansible's `ansible_host` is readable in templates under that name.
pub fn map_from_node(node: &Node, what: &str) -> Result<VarMap, InputError> {
    let mut out = VarMap::new();
    if node.is_null() {
        return Ok(out);
    }
    for (key, value) in node.as_map(what)? {
        out.insert(key.name.clone(), value.clone());
    }
    Ok(out)
}

/// One level of the precedence order, with a label for error messages.
#[derive(Debug, Clone)]
pub struct Layer {
    /// Where these vars come from, e.g. `group_vars/slave.yaml`.
    pub label: String,
    /// The vars.
    pub vars: VarMap,
}

/// Every var source found beside an inventory.
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

/// A merged var: its node and the index of the layer it came from (higher wins).
pub type Ranked = IndexMap<String, (Node, usize)>;

/// Merges layers: a later layer's var replaces an earlier one whole.
pub fn merge(layers: &[Layer]) -> Ranked {
    let mut out = Ranked::new();
    for (rank, layer) in layers.iter().enumerate() {
        for (k, v) in &layer.vars {
            out.insert(k.clone(), (v.clone(), rank));
        }
    }
    out
}
