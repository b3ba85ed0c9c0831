//! The registry pull-through cache: a distribution registry container proxying a remote
//! registry, which every docker daemon on the host uses as its mirror.
//!
//! It has no auth of its own: its port binds the host's private address (not every interface)
//! by default, and deleting through its API is disabled. A plain registry (no remote URL)
//! serves only what was pushed to it, so daemons never use it as a mirror.

use serde::Deserialize;
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use super::owned::{ConfigFormat, Owned};
use super::topology::HostFacts;
use super::{Role, RoleContext, typed};
use crate::engine::{Desired, Step};
use crate::error::InputError;
use crate::resources::directory::Directory;
use crate::resources::docker::{Container, Daemon};
use crate::resources::file::File;
use crate::sh::Cmd;
use crate::vars::resolve::HostVars;
use crate::vars::schema::{Kind, VarSpec};

/// The registry role.
pub const ROLE: Role = Role {
    name: "registry",
    defaults: "registry_image: registry:2\n\
               registry_port: 5000\n\
               registry_bind: \"\"\n\
               registry_remote_url: https://registry-1.docker.io\n\
               registry_data_dir: /var/lib/registry-cache\n\
               registry_config_dir: /etc/registry-cache\n",
    specs: SPECS,
    build,
    owns,
};

const SPECS: &[VarSpec] = &[
    VarSpec { name: "registry_image", kind: Kind::Str, doc: "registry image (default registry:2)" },
    VarSpec { name: "registry_port", kind: Kind::Int { min: 1, max: 65535 }, doc: "port of the cache (default 5000)" },
    VarSpec {
        name: "registry_bind",
        kind: Kind::Str,
        doc: "IP address the cache port binds to (default empty: the host's private address; 0.0.0.0 exposes it everywhere)",
    },
    VarSpec { name: "registry_remote_url", kind: Kind::Str, doc: "registry to proxy; empty: a plain local registry, no proxy, no mirror" },
    VarSpec { name: "registry_remote_username", kind: Kind::Str, doc: "user for the remote registry (optional)" },
    VarSpec { name: "registry_remote_password", kind: Kind::Str, doc: "password or token for the remote registry (secret, optional)" },
    VarSpec { name: "registry_data_dir", kind: Kind::Str, doc: "host directory holding the cached layers" },
    VarSpec { name: "registry_config_dir", kind: Kind::Str, doc: "host directory holding the registry's config.yml" },
];

/// Container name of the cache.
const CONTAINER: &str = "registry-cache";

/// The registry role's vars.
#[derive(Debug, Clone, Deserialize)]
pub struct Vars {
    /// Registry image.
    pub registry_image: String,
    /// Published port.
    pub registry_port: u16,
    /// Address the port binds (empty: the private address).
    pub registry_bind: String,
    /// Registry proxied (empty: none).
    pub registry_remote_url: String,
    /// User for the remote registry.
    #[serde(default)]
    pub registry_remote_username: Option<String>,
    /// Password for the remote registry (secret).
    #[serde(default)]
    pub registry_remote_password: Option<String>,
    /// Host directory of the cached layers.
    pub registry_data_dir: String,
    /// Host directory of config.yml.
    pub registry_config_dir: String,
}

impl Vars {
    /// Reads and checks the role's vars of a host.
    pub fn read(vars: &HostVars) -> Result<Self, InputError> {
        let v: Vars = typed::from_vars(vars, SPECS)?;
        typed::check_at(vars, "registry_image", super::check_image(&v.registry_image))?;
        typed::check_at(vars, "registry_data_dir", super::check_abs_path("registry_data_dir", &v.registry_data_dir))?;
        typed::check_at(vars, "registry_config_dir", super::check_abs_path("registry_config_dir", &v.registry_config_dir))?;
        if !v.registry_bind.is_empty() && v.registry_bind.parse::<std::net::IpAddr>().is_err() {
            let msg = format!("`registry_bind` must be an IP address, found `{}`", v.registry_bind);
            typed::check_at(vars, "registry_bind", Err(msg))?;
        }
        Ok(v)
    }

    /// The mirror URL the host's daemons use: only a proxying cache is a mirror.
    pub fn mirror_url(&self, private_address: &str) -> Option<String> {
        (!self.registry_remote_url.is_empty()).then(|| format!("http://{private_address}:{}", self.registry_port))
    }

    fn credentials(&self) -> Option<(&str, &str)> {
        let user = self.registry_remote_username.as_deref().filter(|u| !u.is_empty())?;
        Some((user, self.registry_remote_password.as_deref().unwrap_or("")))
    }
}

/// The config as the container's label hashes it: the password left out, so the label (which
/// anyone allowed to `docker inspect` reads) gives nothing to guess a password against offline.
/// A password change alone reaches the cache through the restart the config file notifies.
fn config_fingerprint(v: &Vars) -> String {
    let mut public = v.clone();
    if public.registry_remote_password.is_some() {
        public.registry_remote_password = Some("(not hashed)".into());
    }
    hex::encode(Sha256::digest(config_yml(&public).as_bytes()))[..16].to_string()
}

/// The handler that makes the running cache read a new config (bind-mounted, read at start).
const RESTART: &str = "restart registry-cache";

fn config_yml(v: &Vars) -> String {
    let mut y = String::from(
        "# Managed by provision.\nversion: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: /var/lib/registry\n  delete:\n    enabled: false\nhttp:\n  addr: :5000\n",
    );
    if !v.registry_remote_url.is_empty() {
        // JSON strings are valid YAML scalars: values are quoted whatever they contain.
        y.push_str(&format!("proxy:\n  remoteurl: {}\n", Json::String(v.registry_remote_url.clone())));
        if let Some((user, password)) = v.credentials() {
            y.push_str(&format!("  username: {}\n  password: {}\n", Json::String(user.into()), Json::String(password.into())));
        }
    }
    y
}

/// The address the cache's port binds.
fn bind_address(ctx: &RoleContext, v: &Vars) -> Result<String, InputError> {
    if !v.registry_bind.is_empty() {
        return Ok(v.registry_bind.clone());
    }
    let private = &ctx.host().connection.private_address;
    match private.parse::<std::net::IpAddr>() {
        Ok(_) => Ok(private.clone()),
        Err(_) => Err(ctx
            .error_at(
                "registry_bind",
                format!("the registry cache binds the private address by default, but `{private}` is not an IP address"),
                "set an IP here",
            )
            .with_help("set private_address to the host's IP, or registry_bind to the IP the cache should listen on")),
    }
}

fn build(ctx: &RoleContext, desired: &mut Desired) -> Result<(), InputError> {
    let v = ctx.facts.registry.as_ref().expect("registry vars of a registry host");
    let (data, conf_dir, image) = (&v.registry_data_dir, &v.registry_config_dir, &v.registry_image);
    let bind = bind_address(ctx, v)?;
    let config = config_yml(v);
    desired.steps.push(Step::new(Directory::new(data)));
    desired.steps.push(Step::new(Directory::new(conf_dir).mode(0o700)));
    let file = File::new(&format!("{conf_dir}/config.yml"), config).mode(0o600);
    if v.credentials().is_some() {
        let restart = Cmd::new("docker").arg("restart").end_of_options().arg(CONTAINER);
        desired.handler(RESTART, &format!("{restart} >/dev/null\n"));
        desired.steps.push(Step::new(file.secret()).notify(RESTART));
    } else {
        desired.steps.push(Step::new(file));
    }
    desired.steps.push(ctx.image_step(image, Daemon::default()));
    let mut c = Container::new(CONTAINER, image);
    c.image_id = ctx.archived_image_id(image);
    c.volumes = vec![format!("{data}:/var/lib/registry"), format!("{conf_dir}/config.yml:/etc/docker/registry/config.yml:ro")];
    // An IPv6 address is bracketed in docker's `-p` syntax.
    let bind = if bind.contains(':') { format!("[{bind}]") } else { bind };
    c.ports = vec![format!("{bind}:{}:5000", v.registry_port)];
    c.labels.insert("io.provision.config".into(), config_fingerprint(v));
    desired.steps.push(Step::new(c));
    let reach = match bind.as_str() {
        "0.0.0.0" => "127.0.0.1",
        "[::]" => "[::1]",
        b => b,
    };
    desired.steps.push(super::checks::registry(reach, v.registry_port, CONTAINER));
    Ok(())
}

fn owns(host: &HostFacts, owned: &mut Owned) {
    owned.log(Some("registry"), CONTAINER, false);
    if let Some(v) = &host.registry {
        owned.config(format!("{}/config.yml", v.registry_config_dir), ConfigFormat::Yaml);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(remote: &str) -> Vars {
        Vars {
            registry_image: "registry:2".into(),
            registry_port: 5000,
            registry_bind: String::new(),
            registry_remote_url: remote.into(),
            registry_remote_username: None,
            registry_remote_password: None,
            registry_data_dir: "/d".into(),
            registry_config_dir: "/c".into(),
        }
    }

    #[test]
    fn a_plain_registry_is_never_a_mirror_and_delete_is_off() {
        assert_eq!(vars("").mirror_url("10.0.0.2"), None);
        assert_eq!(vars("https://registry-1.docker.io").mirror_url("10.0.0.2").as_deref(), Some("http://10.0.0.2:5000"));
        assert!(config_yml(&vars("")).contains("delete:\n    enabled: false"));
    }

    #[test]
    fn the_container_label_does_not_hash_the_password() {
        let mut a = vars("https://registry-1.docker.io");
        a.registry_remote_username = Some("u".into());
        a.registry_remote_password = Some("hunter2".into());
        let mut b = a.clone();
        b.registry_remote_password = Some("correct horse".into());
        assert_eq!(config_fingerprint(&a), config_fingerprint(&b), "the label is the same whatever the password");
        assert_ne!(config_yml(&a), config_yml(&b), "the file still changes, and its change restarts the cache");
        let mut c = a.clone();
        c.registry_remote_url = "https://other.example".into();
        assert_ne!(config_fingerprint(&a), config_fingerprint(&c));
    }
}
