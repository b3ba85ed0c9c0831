//! How to reach a host: the typed connection settings taken from its resolved vars.
//!
//! provision's own connection vars are the `ssh_` family (`ssh_host`, `ssh_port`, `ssh_user`,
//! `ssh_key`, `ssh_become`, ...), names an application's own vars cannot collide with. Ansible's
//! names (`ansible_host`, `ansible_ssh_user`, ...) are read as they are, with Ansible's precedence
//! between its spellings; the old short names (`address`, `port`, `user`, `become`) are refused
//! with the name to write instead, so a `port:` meant for an application never changes how
//! provision connects.

use std::path::{Path, PathBuf};

use crate::error::InputError;
use crate::fsutil::expand_path;
use crate::vars::resolve::{HostVars, Resolved};

/// Connection settings for one host (vars already type-checked by the schema).
#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    /// Inventory name.
    pub host: String,
    /// Address ssh connects to.
    pub address: String,
    /// Address other hosts use (e.g. a VPC-private IP).
    pub private_address: String,
    /// SSH user, if set (otherwise the user's ssh config decides).
    pub user: Option<String>,
    /// SSH port, if set.
    pub port: Option<u16>,
    /// Private key file.
    pub ssh_key: Option<PathBuf>,
    /// Run remote commands through `sudo -n`.
    pub become_root: bool,
    /// Known-hosts file.
    pub known_hosts_file: Option<PathBuf>,
    /// How host keys are checked (strict by default; `accept-new` trusts on first use).
    pub host_key_checking: crate::transport::HostKeyChecking,
    /// ProxyJump destination(s).
    pub jump: Option<String>,
    /// ssh config file override.
    pub ssh_config_file: Option<PathBuf>,
    /// Connect timeout in seconds.
    pub connect_timeout: u64,
    /// Seconds an idle master connection stays for the next run (0: close after each run).
    pub control_persist: u64,
}

/// Each connection setting with its spellings, weakest first: for one setting, the spelling
/// set at the highest precedence level wins, and on the same level the later spelling here (as
/// in Ansible, `ansible_ssh_user` beats `ansible_user`; provision's own name beats both).
pub const FAMILIES: &[(&str, &[&str])] = &[
    ("ssh_host", &["ansible_host", "ansible_ssh_host", "ssh_host"]),
    ("ssh_port", &["ansible_port", "ansible_ssh_port", "ssh_port"]),
    ("ssh_user", &["ansible_user", "ansible_ssh_user", "ssh_user"]),
    ("ssh_key", &["ansible_private_key_file", "ansible_ssh_private_key_file", "ssh_key"]),
    ("ssh_become", &["ansible_become", "ssh_become"]),
];

/// Names provision read before the `ssh_` family, and what to write instead.
pub const RETIRED: &[(&str, &str)] = &[("address", "ssh_host"), ("port", "ssh_port"), ("user", "ssh_user"), ("become", "ssh_become")];

/// The winning definition of a connection setting (`canon` is a key of [`FAMILIES`]).
pub fn pick<'a>(hv: &'a HostVars, canon: &str) -> Option<&'a Resolved> {
    let (_, names) = FAMILIES.iter().find(|(c, _)| *c == canon)?;
    names
        .iter()
        .enumerate()
        .filter_map(|(i, n)| hv.get(n).filter(|r| !r.value.is_null()).map(|r| (r.rank, i, r)))
        .max_by_key(|(rank, i, _)| (*rank, *i))
        .map(|(_, _, r)| r)
}

impl Connection {
    /// Settings for a host nothing connects to (engine tests with a fake remote).
    #[cfg(test)]
    pub(crate) fn local_for_tests(host: &str) -> Connection {
        Connection {
            host: host.to_string(),
            address: "127.0.0.1".into(),
            private_address: "127.0.0.1".into(),
            user: None,
            port: Some(1),
            ssh_key: None,
            become_root: false,
            known_hosts_file: None,
            host_key_checking: crate::transport::HostKeyChecking::Strict,
            jump: None,
            ssh_config_file: None,
            connect_timeout: 1,
            control_persist: 0,
        }
    }

    /// Reads the connection vars of a resolved host; relative paths are taken from `base`
    /// (the inventory's directory). A retired short name or an address that is not a host name
    /// or IP is an error.
    pub fn from_vars(hv: &HostVars, base: &Path) -> Result<Connection, InputError> {
        for (old, new) in RETIRED {
            if let Some(r) = hv.get(old) {
                return Err(InputError::at(r.span, format!("`{old}` is no longer a connection var"), format!("write `{new}` instead"))
                    .with_help(format!(
                        "provision's connection vars are `{new}` (or Ansible's names such as `ansible_{}`), so an application's own `{old}` cannot change how provision connects; rename it to `{new}`, or if it is an application var, keep it under another name",
                        old.replace("address", "host")
                    )));
            }
        }
        let s = |k: &str| hv.get(k).and_then(|r| r.value.as_str()).map(str::to_string);
        let i = |k: &str| hv.get(k).and_then(|r| r.value.as_i64());
        let path = |k: &str| s(k).map(|p| expand_path(&p, base));
        let fam = |k: &str| pick(hv, k);
        let address = match fam("ssh_host") {
            Some(r) => {
                let a = r.value.as_str().map_or_else(|| r.value.to_string(), str::to_string);
                check_address(&a).map_err(|m| InputError::at(r.span, format!("invalid ssh host `{}`: {m}", a.escape_debug()), m))?;
                a
            }
            None => hv.host.clone(),
        };
        let user = fam("ssh_user").and_then(|r| r.value.as_str()).map(str::to_string);
        let become_root = fam("ssh_become").and_then(|r| r.value.as_bool()).unwrap_or_else(|| user.as_deref().is_some_and(|u| u != "root"));
        let private_address = match hv.get("private_address") {
            Some(r) => {
                let a = r.value.as_str().unwrap_or_default().to_string();
                check_address(&a).map_err(|m| InputError::at(r.span, format!("invalid private_address `{}`: {m}", a.escape_debug()), m))?;
                a
            }
            None => address.clone(),
        };
        Ok(Connection {
            host: hv.host.clone(),
            private_address,
            address,
            user,
            port: fam("ssh_port").and_then(|r| r.value.as_i64()).map(|p| p as u16),
            ssh_key: fam("ssh_key").and_then(|r| r.value.as_str()).map(|p| expand_path(p, base)),
            become_root,
            known_hosts_file: path("ssh_known_hosts_file"),
            host_key_checking: match hv.get("ssh_host_key_checking").map(|r| &r.value) {
                Some(serde_json::Value::Bool(false)) => crate::transport::HostKeyChecking::Off,
                Some(serde_json::Value::String(s)) if s == "accept-new" => crate::transport::HostKeyChecking::AcceptNew,
                _ => crate::transport::HostKeyChecking::Strict,
            },
            jump: s("ssh_jump"),
            ssh_config_file: path("ssh_config_file"),
            connect_timeout: i("ssh_connect_timeout").map_or(10, |t| t as u64),
            control_persist: i("ssh_control_persist").map_or(60, |t| t as u64),
        })
    }
}

/// Accepts a DNS name, an IPv4 address or an IPv6 address (optionally in brackets); refuses
/// anything ssh would read as an option or that no resolver would accept.
pub fn check_address(a: &str) -> Result<(), &'static str> {
    let bare = a.strip_prefix('[').and_then(|x| x.strip_suffix(']')).unwrap_or(a);
    if bare.is_empty() {
        return Err("empty address");
    }
    if bare.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    if bare.len() > 253 {
        return Err("longer than 253 characters");
    }
    if bare.starts_with('-') {
        return Err("starts with `-`");
    }
    let ok_label = |l: &str| !l.is_empty() && l.len() <= 63 && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
    if bare.trim_end_matches('.').split('.').all(ok_label) { Ok(()) } else { Err("not a host name or IP address") }
}

#[cfg(test)]
mod tests {
    use super::check_address;

    #[test]
    fn addresses_are_host_names_or_ips() {
        for ok in ["203.0.113.10", "::1", "[fe80::1]", "ci-master.example.com", "lab_host", "localhost."] {
            assert!(check_address(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a\0b", "-oProxyCommand=x", "a b", "a..b", "ho$t", "é.example"] {
            assert!(check_address(bad).is_err(), "{bad:?}");
        }
    }
}
