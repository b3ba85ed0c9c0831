//! Types of the vars `provision` itself reads. A wrong type is an error pointing at the place the
//! value is written; strings that clearly mean a number or boolean (`-e port=2222`,
//! `become=yes`) are converted, as Ansible does.

use serde_json::Value as Json;

use super::resolve::HostVars;
use crate::error::InputError;

/// The first key of `map` not in `known`, with a hint for the user: the closest known key, or
/// the list of them.
pub fn unknown_key(map: &serde_json::Map<String, Json>, known: &[&str]) -> Option<(String, String)> {
    let key = map.keys().find(|k| !known.contains(&k.as_str()))?;
    let help = match crate::source::did_you_mean(key, known.iter().copied()) {
        Some(h) => format!("did you mean `{h}`?"),
        None => format!("known keys: {}", known.join(", ")),
    };
    Some((key.clone(), help))
}

/// The type a known var must have.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// Any string (numbers are accepted and turned into strings).
    Str,
    /// An integer within bounds (inclusive).
    Int {
        /// Smallest allowed value.
        min: i64,
        /// Largest allowed value.
        max: i64,
    },
    /// A boolean (`yes`/`no`/`true`/`false` strings accepted).
    Bool,
    /// A boolean or one of these words.
    BoolOr(&'static [&'static str]),
    /// A list.
    List,
    /// A mapping.
    Map,
}

/// A var `provision` knows, with its type and a one-line description.
#[derive(Debug, Clone, Copy)]
pub struct VarSpec {
    /// Var name.
    pub name: &'static str,
    /// Required type.
    pub kind: Kind,
    /// What it does (shown in docs and `provision inventory --explain`).
    pub doc: &'static str,
}

/// Connection vars, valid on any host: provision's `ssh_` names and Ansible's spellings of
/// them (see [`crate::transport::connection::FAMILIES`] for which wins).
pub const CONNECTION: &[VarSpec] = &[
    VarSpec { name: "ssh_host", kind: Kind::Str, doc: "address ssh connects to (default: the inventory name); Ansible: ansible_host" },
    VarSpec { name: "ansible_host", kind: Kind::Str, doc: "Ansible's name for ssh_host" },
    VarSpec { name: "ansible_ssh_host", kind: Kind::Str, doc: "Ansible's name for ssh_host" },
    VarSpec { name: "private_address", kind: Kind::Str, doc: "address other hosts use to reach this one (default: ssh_host)" },
    VarSpec { name: "ssh_user", kind: Kind::Str, doc: "ssh user (default: your ssh config); Ansible: ansible_user" },
    VarSpec { name: "ansible_user", kind: Kind::Str, doc: "Ansible's name for ssh_user" },
    VarSpec { name: "ansible_ssh_user", kind: Kind::Str, doc: "Ansible's name for ssh_user" },
    VarSpec {
        name: "ssh_port",
        kind: Kind::Int { min: 1, max: 65535 },
        doc: "ssh port (default: your ssh config, else 22); Ansible: ansible_port",
    },
    VarSpec { name: "ansible_port", kind: Kind::Int { min: 1, max: 65535 }, doc: "Ansible's name for ssh_port" },
    VarSpec { name: "ansible_ssh_port", kind: Kind::Int { min: 1, max: 65535 }, doc: "Ansible's name for ssh_port" },
    VarSpec { name: "ssh_key", kind: Kind::Str, doc: "private key file; Ansible: ansible_ssh_private_key_file" },
    VarSpec { name: "ansible_ssh_private_key_file", kind: Kind::Str, doc: "Ansible's name for ssh_key" },
    VarSpec { name: "ansible_private_key_file", kind: Kind::Str, doc: "Ansible's name for ssh_key" },
    VarSpec { name: "ssh_become", kind: Kind::Bool, doc: "run commands through sudo (default: true when the user is set and not root)" },
    VarSpec { name: "ansible_become", kind: Kind::Bool, doc: "Ansible's name for ssh_become" },
    VarSpec {
        name: "ssh_known_hosts_file",
        kind: Kind::Str,
        doc: "known_hosts file to check host keys against (default: your ssh config)",
    },
    VarSpec {
        name: "ssh_host_key_checking",
        kind: Kind::BoolOr(&["accept-new"]),
        doc: "accept-new trusts an unknown host key on first use and refuses changed ones; false accepts any key (default: true)",
    },
    VarSpec { name: "ssh_jump", kind: Kind::Str, doc: "bastion host(s) for ProxyJump, e.g. admin@bastion:22" },
    VarSpec { name: "ssh_config_file", kind: Kind::Str, doc: "ssh config file to use instead of ~/.ssh/config" },
    VarSpec {
        name: "ssh_connect_timeout",
        kind: Kind::Int { min: 1, max: 3600 },
        doc: "seconds to wait for the ssh connection (default: 10)",
    },
    VarSpec {
        name: "ssh_control_persist",
        kind: Kind::Int { min: 0, max: 86400 },
        doc: "seconds an idle ssh connection is kept for the next run (default: 60; 0 closes it after each run)",
    },
];

/// Checks (and converts) every var of `hv` that has a spec; returns all errors found.
pub fn check(hv: &mut HostVars, specs: &[VarSpec]) -> Vec<InputError> {
    let mut errors = Vec::new();
    for spec in specs {
        let Some(r) = hv.vars.get_mut(spec.name) else { continue };
        match coerce(&r.value, spec.kind) {
            Ok(v) => r.value = v,
            Err(expected) => {
                let shown = if r.secret { "***".to_string() } else { r.value.to_string() };
                errors.push(
                    InputError::at(r.span, format!("`{}` must be {expected}, found {shown}", spec.name), format!("expected {expected}"))
                        .with_help(format!("{}: {}", spec.name, spec.doc)),
                );
            }
        }
    }
    errors
}

fn coerce(v: &Json, kind: Kind) -> Result<Json, String> {
    match kind {
        Kind::Str => match v {
            Json::String(_) => Ok(v.clone()),
            Json::Number(n) => Ok(Json::String(n.to_string())),
            _ => Err("a string".into()),
        },
        Kind::Int { min, max } => {
            let expected = format!("an integer from {min} to {max}");
            let n = match v {
                Json::Number(n) => n.as_i64(),
                Json::String(s) => s.trim().parse().ok(),
                _ => None,
            };
            match n {
                Some(n) if (min..=max).contains(&n) => Ok(Json::from(n)),
                _ => Err(expected),
            }
        }
        Kind::Bool => match v {
            Json::Bool(_) => Ok(v.clone()),
            Json::String(s) => match s.to_ascii_lowercase().as_str() {
                "yes" | "true" | "on" | "1" => Ok(Json::Bool(true)),
                "no" | "false" | "off" | "0" => Ok(Json::Bool(false)),
                _ => Err("a boolean".into()),
            },
            _ => Err("a boolean".into()),
        },
        Kind::BoolOr(words) => match v {
            Json::String(s) if words.contains(&s.as_str()) => Ok(v.clone()),
            _ => coerce(v, Kind::Bool).map_err(|_| format!("a boolean or one of: {}", words.join(", "))),
        },
        Kind::List => {
            if v.is_array() {
                Ok(v.clone())
            } else {
                Err("a list".into())
            }
        }
        Kind::Map => {
            if v.is_object() {
                Ok(v.clone())
            } else {
                Err("a mapping".into())
            }
        }
    }
}
