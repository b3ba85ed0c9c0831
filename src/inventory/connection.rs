//! How to reach a host: the typed connection settings taken from its resolved vars.

use std::path::{Path, PathBuf};

use crate::vars::resolve::HostVars;
use crate::vars::template::expand_home;

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
    /// How host keys are checked (strict by default).
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

impl Connection {
    /// Reads the connection vars of a resolved host; relative paths are taken from `base`
    /// (the inventory's directory).
    pub fn from_vars(hv: &HostVars, base: &Path) -> Connection {
        let s = |k: &str| hv.get(k).and_then(|r| r.value.as_str()).map(str::to_string);
        let b = |k: &str| hv.get(k).and_then(|r| r.value.as_bool());
        let i = |k: &str| hv.get(k).and_then(|r| r.value.as_i64());
        let path = |k: &str| {
            s(k).map(|p| {
                let p = expand_home(&p);
                if p.is_absolute() { p } else { base.join(p) }
            })
        };
        let address = s("address").unwrap_or_else(|| hv.host.clone());
        let user = s("user");
        let become_root = b("become").unwrap_or_else(|| user.as_deref().is_some_and(|u| u != "root"));
        Connection {
            host: hv.host.clone(),
            private_address: s("private_address").unwrap_or_else(|| address.clone()),
            address,
            user,
            port: i("port").map(|p| p as u16),
            ssh_key: path("ssh_key"),
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
        }
    }
}
