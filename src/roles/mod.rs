//! Roles turn a host's vars into the resources it should have. The engine knows nothing of
//! them; they know nothing of SSH.
//!
//! Which roles a host gets: its `roles` var when set, otherwise by group: hosts in `slave`
//! get [`SLAVE_ROLES`], hosts in `master` get [`MASTER_ROLES`], hosts in `cache` get
//! [`CACHE_ROLES`].
//!
//! Each role reads its vars once into its own struct (defaults in its YAML), the host's docker
//! layout is derived once ([`topology::DockerTopology`]), and other hosts are read through the
//! run's [`topology::Fleet`]. Roles also say what they own ([`owned::Owned`]) for `debug`.

pub mod cache_server;
pub mod checks;
pub mod cleanup;
pub mod common;
pub mod dind;
pub mod docker_client;
pub mod docker_tls;
pub mod drain;
pub mod owned;
pub mod redact;
pub mod registry;
pub mod runner;
pub mod topology;
pub mod typed;

use std::path::PathBuf;

use minijinja::value::{Serde, Value};
use serde_json::Value as Json;

use crate::engine::Desired;
use crate::error::InputError;
use crate::project::{HostSpec, Project};
use crate::resources::docker::Daemon;
use crate::sh;
use crate::vars::VarMap;
use crate::vars::schema::VarSpec;
pub use owned::Owned;
pub use topology::{DockerTopology, Fleet, HostFacts};

/// Roles of hosts in the `slave` group.
pub const SLAVE_ROLES: &[&str] = &["docker_tls", "registry", "dind", "cleanup"];
/// Roles of hosts in the `master` group.
pub const MASTER_ROLES: &[&str] = &["docker_client_certs", "runner"];
/// Roles of hosts in the `cache` group (the build cache server is opt-in).
pub const CACHE_ROLES: &[&str] = &["cache_server"];

/// A role: its name, defaults (YAML), var types, how it builds resources and what it owns.
pub struct Role {
    /// Name used in the `roles` var.
    pub name: &'static str,
    /// Default values of its vars, as YAML (lowest precedence).
    pub defaults: &'static str,
    /// Types of its vars.
    pub specs: &'static [VarSpec],
    /// Adds the role's resources for a host.
    pub build: fn(&RoleContext, &mut Desired) -> Result<(), InputError>,
    /// Adds the units, containers, daemons and files the role owns on a host.
    pub owns: fn(&HostFacts, &mut Owned),
}

impl std::fmt::Debug for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// Every role, in the order they apply on a host.
pub const ROLES: &[&Role] =
    &[&docker_tls::ROLE, &registry::ROLE, &cache_server::ROLE, &dind::ROLE, &docker_client::ROLE, &runner::ROLE, &cleanup::ROLE];

/// What a role sees of a host.
pub struct RoleContext<'a> {
    /// The host: its vars read into the roles' structs, and its docker topology.
    pub facts: &'a HostFacts,
    /// Every host of the run (a runner reads its slave's topology here).
    pub fleet: &'a Fleet<'a>,
    /// The certificates (already ensured).
    pub certs: &'a crate::certs::CertsDir,
}

impl RoleContext<'_> {
    /// The host and its resolved vars.
    pub fn host(&self) -> &HostSpec {
        &self.facts.spec
    }

    /// The host's inventory name.
    pub fn name(&self) -> &str {
        self.facts.name()
    }

    /// The project (inventory, template environment).
    pub fn project(&self) -> &Project {
        self.fleet.project()
    }

    /// The host's docker daemons.
    pub fn topology(&self) -> &DockerTopology {
        &self.facts.topology
    }

    /// A file from the certs directory (its absence means certificates were not generated).
    pub fn read_cert(&self, path: PathBuf) -> Result<Vec<u8>, InputError> {
        self.certs
            .read(&path)
            .map_err(|e| InputError::plain(format!("cannot read {}: {e} (run `provision certs generate`)", path.display())))
    }

    /// An error pointing at where the var `name` is set (role defaults included).
    pub fn error_at(&self, name: &str, message: String, label: &str) -> InputError {
        match self.facts.spec.vars.get(name) {
            Some(r) => InputError::at(r.span, message, label),
            None => InputError::plain(format!("{}: {message}", self.name())),
        }
    }

    /// A path on this machine from a var: `~` expanded, relative to the inventory's directory.
    pub fn local_path(&self, p: &str) -> PathBuf {
        let p = crate::vars::template::expand_home(p);
        if p.is_absolute() { p } else { self.project().inventory.dir().join(p) }
    }

    /// Renders an embedded template with exactly `values` (plus `inventory_hostname`): the
    /// role decides what a template sees, no var is looked up by name.
    pub fn render(&self, template_name: &str, source: &str, values: serde_json::Map<String, Json>) -> Result<String, InputError> {
        let mut ctx = values;
        ctx.insert("inventory_hostname".into(), Json::String(self.name().to_string()));
        self.project()
            .env
            .render_str(source, Value::from(Serde(&Json::Object(ctx))))
            .map_err(|e| InputError::plain(format!("rendering {template_name} for {}: {e}", self.name())))
    }

    /// An image step: loaded from `image_archives` when the vars give an archive for it, else
    /// pulled.
    pub fn image_step(&self, reference: &str, daemon: Daemon) -> crate::engine::Step {
        crate::engine::Step::new(crate::resources::docker::Image {
            reference: reference.to_string(),
            archive: self.image_archive(reference),
            daemon,
        })
    }

    fn image_archive(&self, reference: &str) -> Option<PathBuf> {
        self.facts.common.image_archives.get(reference).map(|p| self.local_path(p))
    }

    /// The image id a container of `reference` must run when the image comes from an archive
    /// (so a rebuilt archive under the same tag recreates the container in the same run).
    pub fn archived_image_id(&self, reference: &str) -> Option<String> {
        self.image_archive(reference).and_then(|p| crate::resources::image_archive::image_id(&p, reference).ok().flatten())
    }
}

/// Refuses an image reference that is not one: it would otherwise reach `docker` as an option
/// (`-v/:/host`) or as several words.
pub fn check_image(reference: &str) -> Result<(), String> {
    sh::check_not_option("image", reference)?;
    let ok = !reference.is_empty() && reference.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-:/@".contains(&b));
    if ok { Ok(()) } else { Err(format!("image `{reference}` is not an image reference (letters, digits, `._-:/@`)")) }
}

/// Refuses a host path that is not absolute or would break a `-v source:target` volume spec
/// or a unit line.
pub fn check_abs_path(what: &str, path: &str) -> Result<(), String> {
    if !path.starts_with('/') || path.contains(':') || path.chars().any(char::is_control) {
        return Err(format!("{what} `{path}` must be an absolute path without `:` or control characters"));
    }
    Ok(())
}

/// The role defaults of every role (and the shared settings), as one var layer.
pub fn defaults() -> Result<VarMap, InputError> {
    let mut out = VarMap::new();
    let layers = std::iter::once(("common", common::DEFAULTS)).chain(ROLES.iter().map(|r| (r.name, r.defaults)));
    for (name, yaml) in layers {
        let id = crate::source::register_named(format!("role defaults ({name})"), yaml.to_string());
        let node = crate::yaml::parse(id, yaml)?;
        out.extend(crate::vars::map_from_node(&node, &format!("defaults of role {name}"))?);
    }
    Ok(out)
}

/// The roles' defaults and var types, as the project loads them.
pub fn catalog() -> Result<crate::project::Catalog, InputError> {
    Ok(crate::project::Catalog { defaults: defaults()?, specs: specs(), scope: Some(scope) })
}

// Here, not in `project.rs`: the project knows nothing of roles; this is the one place that
// joins the two for callers that want every role's vars (commands, tests).
impl Project {
    /// Loads the inventory (`-i` or the default), its vars files and the `-e` extra vars, with
    /// every role's defaults and var types.
    pub fn load(inventory_path: Option<&std::path::Path>, extra_vars: &[String]) -> crate::error::Result<Project> {
        Project::load_with(inventory_path, extra_vars, catalog()?)
    }
}

/// The var types of every role (and the shared settings).
pub fn specs() -> Vec<VarSpec> {
    common::SPECS
        .iter()
        .copied()
        .chain(ROLES.iter().flat_map(|r| r.specs.iter().copied()))
        .chain(runner::CLOUD_SPECS.iter().copied())
        .collect()
}

/// The var types a host with these vars reads: the shared settings and its roles' vars (every
/// role's when its `roles` var is broken, so the error surfaces where it did before). Only these
/// must render: a master's GitLab token is no concern of a slave's plan.
pub fn scope(vars: &crate::vars::resolve::HostVars) -> Vec<VarSpec> {
    match for_vars(vars) {
        Ok(roles) => common::SPECS.iter().copied().chain(roles.iter().flat_map(|r| r.specs.iter().copied())).collect(),
        Err(_) => specs(),
    }
}

/// The roles that apply to `host`, in application order.
pub fn for_host(host: &HostSpec) -> Result<Vec<&'static Role>, InputError> {
    for_vars(&host.vars)
}

/// The roles that apply to a host with these vars, in application order.
fn for_vars(vars: &crate::vars::resolve::HostVars) -> Result<Vec<&'static Role>, InputError> {
    let names: Vec<String> = match vars.get("roles") {
        Some(r) => {
            let list =
                r.value.as_array().ok_or_else(|| InputError::at(r.span, "`roles` must be a list of role names", "expected a list"))?;
            let mut names = Vec::new();
            for v in list {
                let name = v.as_str().unwrap_or_default().to_string();
                if !ROLES.iter().any(|role| role.name == name) {
                    let known: Vec<&str> = ROLES.iter().map(|r| r.name).collect();
                    return Err(InputError::at(r.span, format!("unknown role `{name}` in `roles`"), "unknown role")
                        .with_help(format!("known roles: {}", known.join(", "))));
                }
                names.push(name);
            }
            names
        }
        None => {
            let groups = &vars.groups;
            let mut names: Vec<String> = Vec::new();
            for (group, roles) in [("master", MASTER_ROLES), ("slave", SLAVE_ROLES), ("cache", CACHE_ROLES)] {
                if groups.iter().any(|g| g == group) {
                    names.extend(roles.iter().map(|r| r.to_string()));
                }
            }
            names
        }
    };
    Ok(ROLES.iter().copied().filter(|r| names.iter().any(|n| n == r.name)).collect())
}

/// Everything `host` should have.
pub fn desired(fleet: &Fleet, host: &HostSpec, certs: &crate::certs::CertsDir) -> Result<Desired, InputError> {
    let facts = fleet.host(&host.vars.host)?;
    let mut desired = Desired::default();
    let ctx = RoleContext { facts: &facts, fleet, certs };
    for role in &facts.roles {
        (role.build)(&ctx, &mut desired)?;
    }
    Ok(desired)
}

/// Whether `host` runs a TLS docker daemon or a cache server and so needs a server certificate.
pub fn needs_server_cert(host: &HostSpec) -> Result<bool, InputError> {
    Ok(for_host(host)?.iter().any(|r| r.name == docker_tls::ROLE.name || r.name == cache_server::ROLE.name))
}
