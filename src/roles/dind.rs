//! docker-in-docker: a separate docker engine in a container, so builds get an engine of their
//! own instead of the host's. It listens only on a unix socket, shared with the host through a
//! directory: a job container that mounts that directory and sets
//! `DOCKER_HOST=unix:///var/run/dind/docker.sock` talks to it (the runner role wires this up).

use serde::Deserialize;

use super::owned::{DockerEndpoint, Owned};
use super::topology::{DIND_CONTAINER, DIND_DIR_IN_CONTAINER, DindEngine, HostFacts};
use super::{Role, RoleContext, typed};
use crate::engine::{Desired, Step};
use crate::error::InputError;
use crate::resources::directory::Directory;
use crate::resources::docker::{Container, Daemon, Privilege};
use crate::sh;
use crate::vars::resolve::HostVars;
use crate::vars::schema::{Kind, VarSpec};

/// The dind role.
pub const ROLE: Role = Role {
    name: "dind",
    defaults: "dind_image: docker:dind\n\
               dind_socket_dir: /var/run/provision-dind\n\
               dind_storage_volume: dind-storage\n\
               dind_privileged: true\n\
               dind_cap_drop: []\n\
               dind_extra_args: []\n",
    specs: SPECS,
    build,
    owns,
};

const SPECS: &[VarSpec] = &[
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
];

/// The dind role's vars.
#[derive(Debug, Clone, Deserialize)]
pub struct Vars {
    /// Image of the engine.
    pub dind_image: String,
    /// Host directory of its socket.
    pub dind_socket_dir: String,
    /// Volume of its `/var/lib/docker`.
    pub dind_storage_volume: String,
    /// `--privileged`, or every capability but `dind_cap_drop`.
    pub dind_privileged: bool,
    /// Capabilities dropped when not privileged.
    pub dind_cap_drop: Vec<String>,
    /// Extra dockerd flags.
    pub dind_extra_args: Vec<String>,
}

impl Vars {
    /// Reads and checks the role's vars of a host.
    pub fn read(vars: &HostVars) -> Result<Self, InputError> {
        let v: Vars = typed::from_vars(vars, SPECS)?;
        // These reach `docker run` as arguments: a leading `-` would be an option.
        typed::check_at(vars, "dind_image", super::check_image(&v.dind_image))?;
        typed::check_at(vars, "dind_storage_volume", sh::check_name("dind_storage_volume", &v.dind_storage_volume))?;
        typed::check_at(vars, "dind_socket_dir", super::check_abs_path("dind_socket_dir", &v.dind_socket_dir))?;
        for cap in &v.dind_cap_drop {
            typed::check_at(vars, "dind_cap_drop", sh::check_name("capability", cap))?;
        }
        Ok(v)
    }
}

fn build(ctx: &RoleContext, desired: &mut Desired) -> Result<(), InputError> {
    let v = ctx.facts.dind.as_ref().expect("dind vars of a dind host");
    let socket_dir = &v.dind_socket_dir;
    desired.steps.push(Step::new(Directory::new(socket_dir)));
    desired.steps.push(ctx.image_step(&v.dind_image, Daemon::default()));
    if ctx.topology().ci_daemon {
        // `dind: per-job` runners start this image as a service on the daemon builds run on.
        desired.steps.push(ctx.image_step(&v.dind_image, ctx.topology().build_daemon()));
    }
    let mut c = Container::new(DIND_CONTAINER, &v.dind_image);
    c.image_id = ctx.archived_image_id(&v.dind_image);
    let mut command = vec!["dockerd".to_string(), format!("--host=unix://{}", DindEngine::socket_in_container())];
    if let Some(mirror) = &ctx.topology().mirror {
        command.push(format!("--registry-mirror={mirror}"));
    }
    command.extend(v.dind_extra_args.iter().cloned());
    c.command = command;
    // The official image's entrypoint would otherwise generate TLS certificates and listen on TCP.
    c.env.insert("DOCKER_TLS_CERTDIR".into(), String::new());
    c.volumes = vec![format!("{}:/var/lib/docker", v.dind_storage_volume), format!("{socket_dir}:{DIND_DIR_IN_CONTAINER}")];
    c.privilege = if v.dind_privileged { Privilege::Privileged } else { Privilege::AllCapsExcept(v.dind_cap_drop.clone()) };
    c.stop_timeout = 30;
    // Recreating dind stops every build inside it: wait for the jobs first (the shared
    // restart_drain_timeout, which --force-restart sets to 0).
    let drain = super::drain::drain_script("dind", DIND_DIR_IN_CONTAINER, ctx.facts.common.restart_drain_timeout.into());
    desired.steps.push(Step::new(super::drain::Drained { inner: c, drain }));
    let engine = DindEngine { host_socket_dir: socket_dir.clone() };
    let logs = Daemon::default().docker().args(["logs", "--tail", "8"]).end_of_options().arg(DIND_CONTAINER);
    desired.steps.push(super::checks::engine("dind engine", &engine.host_socket(), ctx.topology().mirror.as_deref(), logs, None));
    Ok(())
}

fn owns(host: &HostFacts, owned: &mut Owned) {
    owned.log(Some("dind"), DIND_CONTAINER, false);
    if let Some(engine) = &host.topology.dind {
        owned.daemons.push(DockerEndpoint { label: "dind", socket: engine.host_socket(), dind: true });
    }
}
