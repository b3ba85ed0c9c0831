//! What each role owns on a host: units and containers with logs, docker daemons, config files
//! and cleanup services. `provision debug` asks this instead of knowing any path or unit name.

use super::topology::{HOST_SOCKET, HostFacts};

/// How a config file is written, so it can be parsed (and its secrets redacted) when shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigFormat {
    /// TOML (gitlab-runner's config.toml).
    Toml,
    /// JSON (daemon.json).
    Json,
    /// YAML (the registry's config.yml).
    Yaml,
}

/// A config file a role writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFile {
    /// Absolute path on the host.
    pub path: String,
    /// Its format.
    pub format: ConfigFormat,
}

/// A unit or container whose log matters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSource {
    /// The short name operators type (`docker`, `registry`, `cleanup`), if any.
    pub alias: Option<&'static str>,
    /// The systemd unit (`*.service`, `*.timer`) or container name.
    pub name: String,
    /// Shown by `debug logs` when no name is given.
    pub by_default: bool,
}

/// A docker daemon on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerEndpoint {
    /// What it is, for headings (`host daemon`, `CI daemon`, `dind`).
    pub label: &'static str,
    /// Its unix socket.
    pub socket: String,
    /// Whether it is the dind engine (`debug ps --dind`).
    pub dind: bool,
}

/// A cleanup service and the engine it prunes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanupUnit {
    /// The oneshot service.
    pub unit: String,
    /// Whether it prunes the dind engine.
    pub dind: bool,
}

/// Everything the roles of one host own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owned {
    /// Logs.
    pub logs: Vec<LogSource>,
    /// Docker daemons (the host daemon first).
    pub daemons: Vec<DockerEndpoint>,
    /// Config files.
    pub config_files: Vec<ConfigFile>,
    /// Cleanup services.
    pub cleanup: Vec<CleanupUnit>,
}

impl Owned {
    /// What the roles of `host` own. Every host has the system docker daemon.
    pub fn of(host: &HostFacts) -> Owned {
        let mut owned = Owned::default();
        owned.daemons.push(DockerEndpoint { label: "host daemon", socket: HOST_SOCKET.to_string(), dind: false });
        for role in &host.roles {
            (role.owns)(host, &mut owned);
        }
        owned
    }

    /// Adds a log source.
    pub fn log(&mut self, alias: Option<&'static str>, name: impl Into<String>, by_default: bool) {
        self.logs.push(LogSource { alias, name: name.into(), by_default });
    }

    /// Adds a config file.
    pub fn config(&mut self, path: impl Into<String>, format: ConfigFormat) {
        self.config_files.push(ConfigFile { path: path.into(), format });
    }

    /// The unit or container an operator means by `name` on this host: a role's alias, else
    /// `name` itself.
    pub fn resolve_log(&self, name: &str) -> String {
        self.logs.iter().find(|l| l.alias == Some(name)).map_or_else(|| name.to_string(), |l| l.name.clone())
    }
}
