//! Ansible's YAML inventory shape: groups with `hosts:`, `vars:` and `children:`.
//!
//! ```yaml
//! all:
//!   vars: {ansible_user: root}
//!   children:
//!     master:
//!       hosts:
//!         ci-master: {ansible_host: 203.0.113.10}
//! ```

use std::path::Path;

use super::{Inventory, did_you_mean, expand_host_range};
use crate::error::InputError;
use crate::vars;
use crate::yaml::{Key, Node, Value};

const GROUP_KEYS: [&str; 3] = ["hosts", "vars", "children"];

/// Builds an inventory from a parsed YAML document.
pub fn from_node(path: &Path, root: &Node) -> Result<Inventory, InputError> {
    let mut inv = Inventory::new(path.to_path_buf());
    if root.is_null() {
        return Err(InputError::at(root.span, "the inventory is empty", "expected `all:` with hosts or children"));
    }
    let entries = root.as_map("the inventory")?;
    if let Some((key, _)) = entries.iter().find(|(k, _)| k.name == "plugin") {
        return Err(InputError::at(key.span, "dynamic inventories are not supported", "an inventory plugin configuration")
            .with_help("provision reads static inventories only: export one with `ansible-inventory -i THIS --list -y > inventory.yaml`"));
    }
    for (key, body) in entries {
        if GROUP_KEYS.contains(&key.name.as_str()) {
            return Err(InputError::at(key.span, format!("`{}` must be inside a group", key.name), "not a group")
                .with_help(format!("put it under `all:`, e.g.\nall:\n  {}: ...", key.name)));
        }
        group(&mut inv, key, body)?;
    }
    inv.finish()?;
    Ok(inv)
}

fn group(inv: &mut Inventory, key: &Key, body: &Node) -> Result<(), InputError> {
    let name = key.name.as_str();
    inv.group_mut(name, Some(key.span));
    if body.is_null() {
        return Ok(());
    }
    let entries = body.as_map(&format!("group `{name}`"))?;
    for (k, v) in entries {
        match k.name.as_str() {
            "hosts" => hosts(inv, name, v)?,
            "vars" => {
                let vars = vars::map_from_node(v, &format!("vars of group `{name}`"))?;
                inv.group_mut(name, None).vars.extend(vars);
            }
            "children" => {
                if v.is_null() {
                    continue;
                }
                for (child_key, child_body) in v.as_map(&format!("children of group `{name}`"))? {
                    if inv.hosts.contains_key(&child_key.name) {
                        return Err(InputError::at(
                            child_key.span,
                            format!("`{}` is a host, not a group", child_key.name),
                            "listed as a child group",
                        ));
                    }
                    group(inv, child_key, child_body)?;
                    inv.add_child(name, &child_key.name);
                }
            }
            other => {
                let mut e = InputError::at(k.span, format!("unknown key `{other}` in group `{name}`"), "unknown key")
                    .with_help("a group may only have `hosts`, `vars` and `children`");
                if let Some(s) = did_you_mean(other, GROUP_KEYS) {
                    e = e.with_help(format!("did you mean `{s}`? (a group may only have `hosts`, `vars` and `children`)"));
                }
                return Err(e);
            }
        }
    }
    Ok(())
}

fn hosts(inv: &mut Inventory, group: &str, node: &Node) -> Result<(), InputError> {
    if node.is_null() {
        return Ok(());
    }
    if let Value::Seq(_) = node.value {
        return Err(node
            .type_error(&format!("hosts of group `{group}`"), "a mapping of host names")
            .with_help("write each host as a key: `hosts:\n  ci-master:\n  ci-slave:`"));
    }
    for (key, vars_node) in node.as_map(&format!("hosts of group `{group}`"))? {
        if inv.groups.contains_key(&key.name) && !inv.hosts.contains_key(&key.name) {
            return Err(InputError::at(key.span, format!("`{}` is already a group name", key.name), "host named like a group"));
        }
        let mut vars = vars::VarMap::new();
        // `host:port` sets the port, as Ansible's YAML inventory does; vars written for the host win.
        let (pattern, port) = super::ini::split_port(&key.name);
        if let Some(p) = port {
            vars.insert("ansible_port".into(), crate::yaml::Node { value: Value::Int(p), span: key.span, tag: None });
        }
        if !vars_node.is_null() {
            vars.extend(vars::map_from_node(vars_node, &format!("host `{}`", key.name))?);
        }
        let names = expand_host_range(pattern).map_err(|m| InputError::at(key.span, m, "bad host range"))?;
        for name in names {
            inv.add_host(group, &name, key.span, vars.clone());
        }
    }
    Ok(())
}
