//! The registry pull-through cache: a distribution registry container proxying a remote
//! registry, which every docker daemon on the host uses as its mirror.

use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use super::{Role, RoleContext};
use crate::engine::{Desired, Step};
use crate::error::InputError;
use crate::resources::directory::Directory;
use crate::resources::docker::{Container, Daemon};
use crate::resources::file::File;
use crate::vars::schema::{Kind, VarSpec};

/// The registry role.
pub const ROLE: Role = Role {
    name: "registry",
    defaults: "registry_image: registry:2\n\
               registry_port: 5000\n\
               registry_bind: 0.0.0.0\n\
               registry_remote_url: https://registry-1.docker.io\n\
               registry_data_dir: /var/lib/registry-cache\n\
               registry_config_dir: /etc/registry-cache\n\
               image_archives: {}\n",
    specs: &[
        VarSpec { name: "registry_image", kind: Kind::Str, doc: "registry image (default registry:2)" },
        VarSpec { name: "registry_port", kind: Kind::Int { min: 1, max: 65535 }, doc: "port of the cache (default 5000)" },
        VarSpec { name: "registry_bind", kind: Kind::Str, doc: "address the cache port binds to (default 0.0.0.0)" },
        VarSpec { name: "registry_remote_url", kind: Kind::Str, doc: "registry to proxy; empty: a plain local registry, no proxy" },
        VarSpec { name: "registry_remote_username", kind: Kind::Str, doc: "user for the remote registry (optional)" },
        VarSpec { name: "registry_remote_password", kind: Kind::Str, doc: "password or token for the remote registry (secret, optional)" },
        VarSpec { name: "registry_data_dir", kind: Kind::Str, doc: "host directory holding the cached layers" },
        VarSpec { name: "registry_config_dir", kind: Kind::Str, doc: "host directory holding the registry's config.yml" },
        VarSpec { name: "image_archives", kind: Kind::Map, doc: "image reference → local `docker save` tar, loaded instead of pulled" },
    ],
    build,
};

/// The mirror URL the host's daemons use, when the host runs the cache.
pub fn mirror_url(ctx: &RoleContext) -> Option<String> {
    super::has_role(ctx.host, ROLE.name)
        .then(|| format!("http://{}:{}", ctx.host.connection.private_address, ctx.var("registry_port").as_i64().unwrap_or(5000)))
}

fn config_yml(ctx: &RoleContext) -> String {
    let remote = ctx.str("registry_remote_url");
    let mut y = String::from(
        "# Managed by provision.\nversion: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: /var/lib/registry\n  delete:\n    enabled: true\nhttp:\n  addr: :5000\n",
    );
    if !remote.is_empty() {
        // JSON strings are valid YAML scalars: values are quoted whatever they contain.
        y.push_str(&format!("proxy:\n  remoteurl: {}\n", Json::String(remote)));
        let user = ctx.str("registry_remote_username");
        if !user.is_empty() {
            y.push_str(&format!("  username: {}\n  password: {}\n", Json::String(user), Json::String(ctx.str("registry_remote_password"))));
        }
    }
    y
}

fn build(ctx: &RoleContext, desired: &mut Desired) -> Result<(), InputError> {
    let data = ctx.str("registry_data_dir");
    let conf_dir = ctx.str("registry_config_dir");
    let image = ctx.str("registry_image");
    let config = config_yml(ctx);
    let has_secret = config.contains("password:");
    desired.steps.push(Step::new(Directory::new(&data)));
    desired.steps.push(Step::new(Directory::new(&conf_dir).mode(0o700)));
    let file = File::new(&format!("{conf_dir}/config.yml"), config.clone()).mode(0o600);
    desired.steps.push(Step::new(if has_secret { file.secret() } else { file }));
    desired.steps.push(super::image_step(ctx, &image, Daemon::default()));
    let mut c = Container::new("registry-cache", &image);
    c.image_id = super::archived_image_id(ctx, &image);
    c.volumes = vec![format!("{data}:/var/lib/registry"), format!("{conf_dir}/config.yml:/etc/docker/registry/config.yml:ro")];
    c.ports = vec![format!("{}:{}:5000", ctx.str("registry_bind"), ctx.var("registry_port").as_i64().unwrap_or(5000))];
    c.labels.insert("io.provision.config".into(), hex::encode(Sha256::digest(config.as_bytes()))[..16].to_string());
    desired.steps.push(Step::new(c));
    Ok(())
}
