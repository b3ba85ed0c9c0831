//! docker-in-docker: a separate docker engine in a container, so builds get an engine of their
//! own instead of the host's. It listens only on a unix socket, shared with the host through a
//! directory: a job container that mounts that directory and sets
//! `DOCKER_HOST=unix:///var/run/dind/docker.sock` talks to it (the runner role wires this up).

use super::{Role, RoleContext};
use crate::engine::{Desired, Step};
use crate::error::InputError;
use crate::resources::directory::Directory;
use crate::resources::docker::{Container, Daemon, Privilege};
use crate::vars::schema::{Kind, VarSpec};

/// Container name of the dind engine.
pub const CONTAINER: &str = "dind";
/// Socket path inside the dind container and inside jobs.
pub const SOCKET_IN_CONTAINER: &str = "/var/run/dind/docker.sock";

/// The dind role.
pub const ROLE: Role = Role {
    name: "dind",
    defaults: "dind_image: docker:dind\n\
               dind_socket_dir: /var/run/provision-dind\n\
               dind_storage_volume: dind-storage\n\
               dind_privileged: true\n\
               dind_cap_drop: []\n\
               dind_extra_args: []\n",
    specs: &[
        VarSpec { name: "dind_image", kind: Kind::Str, doc: "image of the dind engine (default docker:dind)" },
        VarSpec { name: "dind_socket_dir", kind: Kind::Str, doc: "host directory holding the dind engine's socket (docker.sock)" },
        VarSpec { name: "dind_storage_volume", kind: Kind::Str, doc: "docker volume holding the dind engine's /var/lib/docker" },
        VarSpec {
            name: "dind_privileged",
            kind: Kind::Bool,
            doc: "run dind with --privileged (default); false: every capability except dind_cap_drop, no seccomp/apparmor",
        },
        VarSpec { name: "dind_cap_drop", kind: Kind::List, doc: "capabilities dropped when dind_privileged is false" },
        VarSpec { name: "dind_extra_args", kind: Kind::List, doc: "extra dockerd flags for the dind engine" },
    ],
    build,
};

/// The host path of the dind engine's socket.
pub fn host_socket(ctx: &RoleContext) -> String {
    format!("{}/docker.sock", ctx.str("dind_socket_dir"))
}

fn build(ctx: &RoleContext, desired: &mut Desired) -> Result<(), InputError> {
    let image = ctx.str("dind_image");
    let socket_dir = ctx.str("dind_socket_dir");
    desired.steps.push(Step::new(Directory::new(&socket_dir)));
    desired.steps.push(super::image_step(ctx, &image, Daemon::default()));
    let mut c = Container::new(CONTAINER, &image);
    c.image_id = super::archived_image_id(ctx, &image);
    let mut command = vec!["dockerd".to_string(), format!("--host=unix://{SOCKET_IN_CONTAINER}")];
    if let Some(mirror) = super::registry::mirror_url(ctx) {
        command.push(format!("--registry-mirror={mirror}"));
    }
    for a in ctx.var("dind_extra_args").as_array().into_iter().flatten() {
        command.push(a.as_str().map_or_else(|| a.to_string(), str::to_string));
    }
    c.command = command;
    // The official image's entrypoint would otherwise generate TLS certificates and listen on TCP.
    c.env.insert("DOCKER_TLS_CERTDIR".into(), String::new());
    c.volumes = vec![format!("{}:/var/lib/docker", ctx.str("dind_storage_volume")), format!("{socket_dir}:/var/run/dind")];
    c.privilege = if ctx.var("dind_privileged").as_bool().unwrap_or(true) {
        Privilege::Privileged
    } else {
        let drop = ctx.var("dind_cap_drop").as_array().into_iter().flatten().filter_map(|v| v.as_str().map(str::to_string)).collect();
        Privilege::AllCapsExcept(drop)
    };
    c.stop_timeout = 30;
    desired.steps.push(Step::new(c));
    Ok(())
}
