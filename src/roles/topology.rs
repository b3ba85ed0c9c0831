//! What docker looks like on a host, derived once from its roles and vars, and the fleet of
//! every host a run knows. Roles and `provision debug` read these instead of re-reading vars,
//! so a socket path or port is decided in exactly one place.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::{Role, cache_server, cleanup, common, dind, docker_tls, registry, runner, typed};
use crate::error::InputError;
use crate::project::{HostSpec, Project};
use crate::resources::docker::Daemon;

/// The host daemon's unix socket (the system default).
pub const HOST_SOCKET: &str = "/var/run/docker.sock";
/// Unit of the host daemon.
pub const HOST_UNIT: &str = "docker.service";
/// Unix socket of the dedicated CI daemon.
pub const CI_SOCKET: &str = "/run/docker-ci.sock";
/// Unit of the dedicated CI daemon.
pub const CI_UNIT: &str = "docker-ci.service";
/// Container name of the dind engine.
pub const DIND_CONTAINER: &str = "dind";
/// Directory of the dind engine's socket inside its container and inside jobs.
pub const DIND_DIR_IN_CONTAINER: &str = "/var/run/dind";

/// A docker daemon listening on TCP with mutual TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsEndpoint {
    /// Address the port binds to.
    pub bind: String,
    /// The port.
    pub port: u16,
}

/// The dind engine: a docker engine in a container, reached through a socket directory
/// shared with the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DindEngine {
    /// Host directory holding its `docker.sock`.
    pub host_socket_dir: String,
}

impl DindEngine {
    /// The engine's socket on the host.
    pub fn host_socket(&self) -> String {
        format!("{}/docker.sock", self.host_socket_dir)
    }

    /// The engine's socket inside its container and inside jobs.
    pub fn socket_in_container() -> String {
        format!("{DIND_DIR_IN_CONTAINER}/docker.sock")
    }
}

/// The docker daemons of one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerTopology {
    /// The TLS endpoint (docker_tls role); held by the CI daemon when there is one.
    pub tls: Option<TlsEndpoint>,
    /// Whether a dedicated CI daemon runs beside the host daemon.
    pub ci_daemon: bool,
    /// The dind engine (dind role).
    pub dind: Option<DindEngine>,
    /// The registry cache every daemon on the host uses as its mirror (a proxying registry
    /// role only: a plain registry serves no upstream images).
    pub mirror: Option<String>,
}

impl DockerTopology {
    /// The daemon builds run on: the CI daemon when there is one, else the host's.
    pub fn build_daemon(&self) -> Daemon {
        Daemon { host: self.ci_daemon.then(|| format!("unix://{CI_SOCKET}")) }
    }

    /// The unit of the daemon builds run on.
    pub fn build_unit(&self) -> &'static str {
        if self.ci_daemon { CI_UNIT } else { HOST_UNIT }
    }

    /// `tcp://<address>:<port>` of the TLS endpoint, as other hosts reach it.
    pub fn tcp_url(&self, private_address: &str) -> Option<String> {
        self.tls.as_ref().map(|t| format!("tcp://{private_address}:{}", t.port))
    }
}

/// Everything the roles derive from one host's vars, once.
#[derive(Debug, Clone)]
pub struct HostFacts {
    /// The host and its resolved vars.
    pub spec: HostSpec,
    /// Its roles, in application order.
    pub roles: Vec<&'static Role>,
    /// Shared settings.
    pub common: common::CommonVars,
    /// docker_tls vars, when the host has that role.
    pub docker_tls: Option<docker_tls::Vars>,
    /// registry vars, when the host has that role.
    pub registry: Option<registry::Vars>,
    /// cache_server vars, when the host has that role.
    pub cache_server: Option<cache_server::Vars>,
    /// dind vars, when the host has that role.
    pub dind: Option<dind::Vars>,
    /// cleanup vars, when the host has that role.
    pub cleanup: Option<cleanup::Vars>,
    /// runner vars, when the host has that role.
    pub runner: Option<runner::Vars>,
    /// Its docker daemons.
    pub topology: DockerTopology,
}

impl HostFacts {
    /// Reads the vars of `spec`'s roles and derives its topology.
    pub fn derive(spec: HostSpec) -> Result<Self, InputError> {
        let roles = super::for_host(&spec)?;
        let has = |r: &Role| roles.iter().any(|x| x.name == r.name);
        let vars = &spec.vars;
        let common: common::CommonVars = typed::from_vars(vars, common::SPECS)?;
        let docker_tls = if has(&docker_tls::ROLE) { Some(docker_tls::Vars::read(vars)?) } else { None };
        let registry = if has(&registry::ROLE) { Some(registry::Vars::read(vars)?) } else { None };
        let cache_server = if has(&cache_server::ROLE) { Some(cache_server::Vars::read(vars)?) } else { None };
        let dind = if has(&dind::ROLE) { Some(dind::Vars::read(vars)?) } else { None };
        let cleanup = if has(&cleanup::ROLE) { Some(cleanup::Vars::read(vars)?) } else { None };
        let runner = if has(&runner::ROLE) { Some(runner::Vars::read(vars)?) } else { None };
        let topology = DockerTopology {
            tls: docker_tls.as_ref().map(|t| TlsEndpoint { bind: t.docker_tls_bind.clone(), port: t.docker_tls_port }),
            ci_daemon: docker_tls.as_ref().is_some_and(|t| t.docker_ci_daemon),
            dind: dind.as_ref().map(|d| DindEngine { host_socket_dir: d.dind_socket_dir.clone() }),
            mirror: registry.as_ref().and_then(|r| r.mirror_url(&spec.connection.private_address)),
        };
        Ok(HostFacts { spec, roles, common, docker_tls, registry, cache_server, dind, cleanup, runner, topology })
    }

    /// The host's inventory name.
    pub fn name(&self) -> &str {
        &self.spec.vars.host
    }

    /// Whether the host has `role`.
    pub fn has(&self, role: &Role) -> bool {
        self.roles.iter().any(|r| r.name == role.name)
    }
}

/// Every host a run knows, their facts derived on first use (so a host nobody asks about never
/// fails the run) and kept for the rest of it.
pub struct Fleet<'a> {
    project: &'a Project,
    specs: Vec<HostSpec>,
    facts: Mutex<HashMap<String, Arc<HostFacts>>>,
}

impl<'a> Fleet<'a> {
    /// A fleet of the already resolved `hosts`; other inventory hosts are resolved on demand.
    pub fn new(project: &'a Project, hosts: &[HostSpec]) -> Self {
        Fleet { project, specs: hosts.to_vec(), facts: Mutex::new(HashMap::new()) }
    }

    /// The project the hosts come from.
    pub fn project(&self) -> &'a Project {
        self.project
    }

    /// The facts of the inventory host `name`.
    pub fn host(&self, name: &str) -> Result<Arc<HostFacts>, InputError> {
        if let Some(f) = self.facts.lock().expect("fleet lock").get(name) {
            return Ok(f.clone());
        }
        let spec = match self.specs.iter().find(|h| h.vars.host == name) {
            Some(s) => s.clone(),
            None => {
                let mut resolved = self
                    .project
                    .resolve_beside(&[name.to_string()])
                    .map_err(|e| InputError::plain(format!("resolving the vars of `{name}`: {e}")))?;
                resolved.remove(0)
            }
        };
        let facts = Arc::new(HostFacts::derive(spec)?);
        self.facts.lock().expect("fleet lock").insert(name.to_string(), facts.clone());
        Ok(facts)
    }
}
