//! Roles turn a host's vars into the resources it should have. The engine knows nothing of
//! them; they know nothing of SSH.
//!
//! Which roles a host gets: its `roles` var when set, otherwise by group: hosts in `slave`
//! get [`SLAVE_ROLES`], hosts in `master` get [`MASTER_ROLES`].

pub mod cleanup;
pub mod dind;
pub mod docker_client;
pub mod docker_tls;
pub mod registry;
pub mod runner;

use minijinja::value::{Serde, Value};
use serde_json::Value as Json;

use crate::engine::Desired;
use crate::error::InputError;
use crate::project::{HostSpec, Project};
use crate::vars::VarMap;
use crate::vars::schema::VarSpec;

/// Roles of hosts in the `slave` group.
pub const SLAVE_ROLES: &[&str] = &["docker_tls", "registry", "dind", "cleanup"];
/// Roles of hosts in the `master` group.
pub const MASTER_ROLES: &[&str] = &["docker_client_certs", "runner"];

/// A role: its name, defaults (YAML), var types, and how it builds resources.
pub struct Role {
    /// Name used in the `roles` var.
    pub name: &'static str,
    /// Default values of its vars, as YAML (lowest precedence).
    pub defaults: &'static str,
    /// Types of its vars.
    pub specs: &'static [VarSpec],
    /// Adds the role's resources for a host.
    pub build: fn(&RoleContext, &mut Desired) -> Result<(), InputError>,
}

/// Every role, in the order they apply on a host.
pub const ROLES: &[&Role] = &[&docker_tls::ROLE, &registry::ROLE, &dind::ROLE, &docker_client::ROLE, &runner::ROLE, &cleanup::ROLE];

/// What a role sees of a host.
pub struct RoleContext<'a> {
    /// The host.
    pub host: &'a HostSpec,
    /// The project (for templates).
    pub project: &'a Project,
    /// The certificates (already ensured).
    pub certs: &'a crate::certs::CertsDir,
}

impl RoleContext<'_> {
    /// A var's value (role defaults make every role var present).
    pub fn var(&self, name: &str) -> &Json {
        self.host.vars.get(name).map_or(&Json::Null, |r| &r.value)
    }

    /// A string var; an unset (or null) var is empty.
    pub fn str(&self, name: &str) -> String {
        match self.var(name) {
            Json::String(s) => s.clone(),
            Json::Null => String::new(),
            other => other.to_string(),
        }
    }

    /// A file from the certs directory (its absence means certificates were not generated).
    pub fn read_cert(&self, path: std::path::PathBuf) -> Result<Vec<u8>, InputError> {
        self.certs
            .read(&path)
            .map_err(|e| InputError::plain(format!("cannot read {}: {e} (run `provision certs generate`)", path.display())))
    }

    /// An error pointing at where the var `name` is set (role defaults included).
    pub fn error_at(&self, name: &str, message: String, label: &str) -> InputError {
        match self.host.vars.get(name) {
            Some(r) => InputError::at(r.span, message, label),
            None => InputError::plain(format!("{}: {message}", self.host.vars.host)),
        }
    }

    /// A path on this machine from a var: `~` expanded, relative to the inventory's directory.
    pub fn local_path(&self, p: &str) -> std::path::PathBuf {
        let p = crate::vars::template::expand_home(p);
        if p.is_absolute() { p } else { self.project.inventory.dir().join(p) }
    }

    /// Renders an embedded template with the host's vars.
    pub fn render(&self, template_name: &str, source: &str) -> Result<String, InputError> {
        self.render_with(template_name, source, serde_json::Map::new())
    }

    /// Renders an embedded template with the host's vars and `extra` values over them.
    pub fn render_with(&self, template_name: &str, source: &str, extra: serde_json::Map<String, Json>) -> Result<String, InputError> {
        let vars: serde_json::Map<String, Json> = self.host.vars.vars.iter().map(|(k, r)| (k.clone(), r.value.clone())).collect();
        let mut ctx = vars;
        ctx.extend(extra);
        ctx.insert("inventory_hostname".into(), Json::String(self.host.vars.host.clone()));
        ctx.insert("private_address".into(), Json::String(self.host.connection.private_address.clone()));
        self.project
            .env
            .render_str(source, Value::from(Serde(&Json::Object(ctx))))
            .map_err(|e| InputError::plain(format!("rendering {template_name} for {}: {e}", self.host.vars.host)))
    }
}

/// An image step: loaded from `image_archives` when the vars give an archive for it, else pulled.
pub fn image_step(ctx: &RoleContext, reference: &str, daemon: crate::resources::docker::Daemon) -> crate::engine::Step {
    crate::engine::Step::new(crate::resources::docker::Image {
        reference: reference.to_string(),
        archive: image_archive(ctx, reference),
        daemon,
    })
}

fn image_archive(ctx: &RoleContext, reference: &str) -> Option<std::path::PathBuf> {
    ctx.var("image_archives").get(reference).and_then(Json::as_str).map(|p| ctx.local_path(p))
}

/// The image id a container of `reference` must run when the image comes from an archive (so
/// a rebuilt archive under the same tag recreates the container in the same run).
pub fn archived_image_id(ctx: &RoleContext, reference: &str) -> Option<String> {
    image_archive(ctx, reference).and_then(|p| crate::resources::image_archive::image_id(&p, reference).ok().flatten())
}

/// The role defaults of every role, as one var layer.
pub fn defaults() -> Result<VarMap, InputError> {
    let mut out = VarMap::new();
    for role in ROLES {
        let id = crate::source::register_named(format!("role defaults ({})", role.name), role.defaults.to_string());
        let node = crate::yaml::parse(id, role.defaults)?;
        out.extend(crate::vars::map_from_node(&node, &format!("defaults of role {}", role.name))?);
    }
    Ok(out)
}

/// The var types of every role.
pub fn specs() -> Vec<VarSpec> {
    ROLES.iter().flat_map(|r| r.specs.iter().copied()).collect()
}

/// The roles that apply to `host`, in application order.
pub fn for_host(host: &HostSpec) -> Result<Vec<&'static Role>, InputError> {
    let names: Vec<String> = match host.vars.get("roles") {
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
            let groups = &host.vars.groups;
            let mut names: Vec<String> = Vec::new();
            for (group, roles) in [("master", MASTER_ROLES), ("slave", SLAVE_ROLES)] {
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
pub fn desired(project: &Project, host: &HostSpec, certs: &crate::certs::CertsDir) -> Result<Desired, InputError> {
    let mut desired = Desired::default();
    let ctx = RoleContext { host, project, certs };
    for role in for_host(host)? {
        (role.build)(&ctx, &mut desired)?;
    }
    Ok(desired)
}

/// Whether `host` has the role named `name`.
pub fn has_role(host: &HostSpec, name: &str) -> bool {
    for_host(host).is_ok_and(|roles| roles.iter().any(|r| r.name == name))
}

/// Whether `host` runs a TLS docker daemon and so needs a server certificate.
pub fn needs_server_cert(host: &HostSpec) -> Result<bool, InputError> {
    Ok(for_host(host)?.iter().any(|r| r.name == docker_tls::ROLE.name))
}
