//! Docker TLS: the host daemon listens on its unix socket and on a TCP port with mutual TLS,
//! using a server certificate from the certs directory.

use serde::Deserialize;
use serde_json::{Map, Value as Json, json};

use super::owned::{ConfigFormat, DockerEndpoint, Owned};
use super::topology::{CI_SOCKET, CI_UNIT, HOST_SOCKET, HOST_UNIT, HostFacts};
use super::{Role, RoleContext, checks, typed};
use crate::engine::{Desired, Step};
use crate::error::InputError;
use crate::net::Cidr;
use crate::resources::directory::Directory;
use crate::resources::docker::Daemon;
use crate::resources::file::File;
use crate::resources::netlink::LinkAbsent;
use crate::resources::service::{Service, restart_or_restore_script, restart_script, unit_file, unit_file_absent, unit_file_from};
use crate::resources::workload::Workload;
use crate::sh::{self, Script};
use crate::vars::resolve::HostVars;
use crate::vars::schema::{Kind, VarSpec};

/// Handler that restarts the host daemon.
pub const RESTART_DOCKER: &str = "restart docker";
const DAEMON_JSON: &str = "/etc/docker/daemon.json";
const CI_DAEMON_JSON: &str = "/etc/docker-ci/daemon.json";
const DROP_IN: &str = "/etc/systemd/system/docker.service.d/provision.conf";
/// dockerd checks a config file itself since docker 23 (`--validate`); older ones are checked
/// when they start (and the previous file is restored if they do not).
const VALIDATE_DAEMON_JSON: &str = "if dockerd --help 2>&1 | grep -q -e '--validate'; then dockerd --validate --config-file \"$t\"; fi";
/// Handler that restarts the dedicated CI daemon.
pub const RESTART_DOCKER_CI: &str = "restart docker-ci";
const CI_UNIT_TEMPLATE: &str = include_str!("templates/docker-ci.service.j2");

/// The docker_tls role.
pub const ROLE: Role = Role {
    name: "docker_tls",
    defaults: "docker_tls_port: 2376\n\
               docker_tls_bind: 0.0.0.0\n\
               docker_tls_dir: /etc/docker/tls\n\
               docker_dockerd_args: --containerd=/run/containerd/containerd.sock\n\
               docker_daemon_config: {}\n\
               docker_registry_mirrors: []\n\
               docker_ci_daemon: false\n\
               docker_ci_bridge: docker-ci0\n\
               docker_ci_bridge_cidr: 172.30.0.1/16\n\
               docker_ci_data_root: /var/lib/docker-ci\n",
    specs: SPECS,
    build,
    owns,
};

const SPECS: &[VarSpec] = &[
    VarSpec { name: "docker_tls_port", kind: Kind::Int { min: 1, max: 65535 }, doc: "TLS port of the docker daemon (default 2376)" },
    VarSpec { name: "docker_tls_bind", kind: Kind::Str, doc: "address the TLS port binds to (default 0.0.0.0)" },
    VarSpec { name: "docker_tls_dir", kind: Kind::Str, doc: "where the daemon's CA, certificate and key are installed" },
    VarSpec {
        name: "docker_dockerd_args",
        kind: Kind::Str,
        doc: "dockerd flags kept in the systemd drop-in (default: the system containerd)",
    },
    VarSpec { name: "docker_daemon_config", kind: Kind::Map, doc: "extra daemon.json keys, merged over provision's own" },
    VarSpec { name: "docker_registry_mirrors", kind: Kind::List, doc: "extra registry mirrors for the daemon" },
    VarSpec {
        name: "docker_ci_daemon",
        kind: Kind::Bool,
        doc: "run a second, dedicated docker daemon for CI on the TLS port (default false)",
    },
    VarSpec { name: "docker_ci_bridge", kind: Kind::Str, doc: "bridge interface of the CI daemon (default docker-ci0)" },
    VarSpec {
        name: "docker_ci_bridge_cidr",
        kind: Kind::Str,
        doc: "gateway address/prefix of the CI bridge; must not overlap docker0 or the host's networks",
    },
    VarSpec { name: "docker_ci_data_root", kind: Kind::Str, doc: "data root of the CI daemon (kept when the daemon is removed)" },
];

/// The docker_tls role's vars.
#[derive(Debug, Clone, Deserialize)]
pub struct Vars {
    /// TLS port.
    pub docker_tls_port: u16,
    /// Address the TLS port binds.
    pub docker_tls_bind: String,
    /// Where the daemon's CA, certificate and key go.
    pub docker_tls_dir: String,
    /// dockerd flags in the systemd drop-in.
    pub docker_dockerd_args: String,
    /// Extra daemon.json keys.
    pub docker_daemon_config: Map<String, Json>,
    /// Extra registry mirrors.
    pub docker_registry_mirrors: Vec<String>,
    /// Whether a dedicated CI daemon takes the TLS port.
    pub docker_ci_daemon: bool,
    /// The CI daemon's bridge.
    pub docker_ci_bridge: String,
    /// The CI bridge's gateway address/prefix.
    pub docker_ci_bridge_cidr: String,
    /// The CI daemon's data root.
    pub docker_ci_data_root: String,
}

impl Vars {
    /// Reads and checks the role's vars: the dockerd flags and the bridge go into unit lines.
    pub fn read(vars: &HostVars) -> Result<Self, InputError> {
        let v: Vars = typed::from_vars(vars, SPECS)?;
        typed::check_at(vars, "docker_dockerd_args", sh::check_unit_value("docker_dockerd_args", &v.docker_dockerd_args, false))?;
        typed::check_at(vars, "docker_ci_bridge", check_bridge(&v.docker_ci_bridge))?;
        typed::check_at(vars, "docker_tls_dir", super::check_abs_path("docker_tls_dir", &v.docker_tls_dir))?;
        typed::check_at(vars, "docker_ci_data_root", super::check_abs_path("docker_ci_data_root", &v.docker_ci_data_root))?;
        Ok(v)
    }
}

/// A Linux interface name: 1 to 15 letters, digits, `_`, `.`, `-`, not starting with `-`.
fn check_bridge(name: &str) -> Result<(), String> {
    sh::check_name("docker_ci_bridge", name)?;
    if name.len() > 15 {
        return Err(format!("docker_ci_bridge `{name}` is longer than 15 characters (the limit of interface names)"));
    }
    Ok(())
}

fn build(ctx: &RoleContext, desired: &mut Desired) -> Result<(), InputError> {
    let v = ctx.facts.docker_tls.as_ref().expect("docker_tls vars of a docker_tls host");
    let host = ctx.name();
    let dir = &v.docker_tls_dir;
    let certs = ctx.certs;
    // dind runs on the host daemon: with a CI daemon, the jobs using dind run there, and a
    // restart of the host daemon stops their engine too.
    let mut jobs_on = vec![Daemon::default()];
    if ctx.topology().ci_daemon && ctx.topology().dind.is_some() {
        jobs_on.push(Daemon { host: Some(format!("unix://{CI_SOCKET}")) });
    }
    let restart = drain_script(&Daemon::default(), &jobs_on, HOST_UNIT, ctx.facts.common.restart_drain_timeout)
        + &restart_or_restore_script(HOST_UNIT, &[DAEMON_JSON, DROP_IN]);
    desired.handler(RESTART_DOCKER, &restart);
    // Read while probing, so the report says what the restart affects.
    desired.steps.push(Step::new(Workload { daemon: Daemon::default(), unit: HOST_UNIT.into(), handler: RESTART_DOCKER.into() }));
    desired.steps.push(Step::new(Directory::new(dir).mode(0o755)));
    for (name, content, secret) in [
        ("ca.pem", ctx.read_cert(certs.ca_cert())?, false),
        ("server-cert.pem", ctx.read_cert(certs.server_cert(host))?, false),
        ("server-key.pem", ctx.read_cert(certs.server_key(host))?, true),
    ] {
        let f = File::new(&format!("{dir}/{name}"), content);
        let f = if secret { f.mode(0o600).secret() } else { f };
        desired.steps.push(Step::new(f).notify(RESTART_DOCKER));
    }
    let ci = ctx.topology().ci_daemon;
    // Only one daemon can hold the TLS port: a CI daemon being removed goes first, so the host
    // daemon can take the port back; one being added comes after the host daemon let it go.
    if !ci {
        ci_daemon_absent(v, desired);
    }
    let host_json = daemon_json(ctx, v, !ci);
    let json = File::new(DAEMON_JSON, host_json).validate(VALIDATE_DAEMON_JSON).keep_previous();
    desired.steps.push(Step::new(json).notify(RESTART_DOCKER));
    let dropin = format!(
        "# Managed by provision: the listen addresses are in /etc/docker/daemon.json, so -H fd://\n# (which conflicts with them) is cleared here.\n[Service]\nExecStart=\nExecStart=dockerd {} $DOCKER_OPTS\n",
        v.docker_dockerd_args
    );
    let step = unit_file_from(desired, File::new(DROP_IN, dropin).keep_previous()).notify(RESTART_DOCKER);
    desired.steps.push(step);
    desired.steps.push(Step::new(Service::running(HOST_UNIT)));
    let mirror = ctx.topology().mirror.as_deref();
    desired.steps.push(checks::engine("docker engine", HOST_SOCKET, mirror, checks::journal(HOST_UNIT), Some(&Daemon::default())));
    if ci {
        ci_daemon(ctx, v, desired)?;
    }
    let unit = ctx.topology().build_unit();
    desired.steps.push(checks::tls(&v.docker_tls_bind, v.docker_tls_port, &format!("{}/ca.pem", v.docker_tls_dir), unit));
    Ok(())
}

/// The dedicated CI daemon: own bridge, data root, exec root, pidfile and socket; it takes the
/// TLS port.
fn ci_daemon(ctx: &RoleContext, v: &Vars, desired: &mut Desired) -> Result<(), InputError> {
    let cidr = check_cidr(ctx, v)?;
    let mut json = daemon_doc(ctx, v, true);
    json["hosts"] = json!([format!("unix://{CI_SOCKET}"), format!("tcp://{}:{}", v.docker_tls_bind, v.docker_tls_port)]);
    json["data-root"] = json!(v.docker_ci_data_root);
    json["exec-root"] = json!("/run/docker-ci");
    json["pidfile"] = json!("/run/docker-ci.pid");
    json["bridge"] = json!(v.docker_ci_bridge);
    let ci = Daemon { host: Some(format!("unix://{CI_SOCKET}")) };
    desired.handler(
        RESTART_DOCKER_CI,
        &(drain_script(&ci, std::slice::from_ref(&ci), CI_UNIT, ctx.facts.common.restart_drain_timeout) + &restart_script(CI_UNIT, false)),
    );
    desired.steps.push(Step::new(Workload { daemon: ci.clone(), unit: CI_UNIT.into(), handler: RESTART_DOCKER_CI.into() }));
    desired.steps.push(Step::new(Directory::new("/etc/docker-ci")));
    let text = serde_json::to_string_pretty(&json).expect("JSON") + "\n";
    desired.steps.push(Step::new(File::new(CI_DAEMON_JSON, text)).notify(RESTART_DOCKER_CI));
    let values = json!({ "bridge": v.docker_ci_bridge, "cidr": cidr, "docker_dockerd_args": v.docker_dockerd_args });
    let unit = ctx.render(CI_UNIT, CI_UNIT_TEMPLATE, values.as_object().expect("an object").clone())?;
    let step = unit_file(desired, CI_UNIT, unit).notify(RESTART_DOCKER_CI);
    desired.steps.push(step);
    desired.steps.push(Step::new(Service::running(CI_UNIT)));
    desired.steps.push(checks::engine(
        "CI daemon",
        CI_SOCKET,
        ctx.topology().mirror.as_deref(),
        checks::journal(CI_UNIT),
        Some(&ctx.topology().build_daemon()),
    ));
    Ok(())
}

/// sh run before a daemon restart. A daemon running with live-restore keeps its containers
/// through a restart; one without it (its first restart with provision's daemon.json, or
/// live-restore turned off) would kill running builds, so the restart waits for job containers
/// (`runner-*`) to finish, up to `timeout` seconds. Still running then, the restart is refused:
/// the handler stays owed and the next apply tries again. `timeout` 0 restarts at once. Job
/// containers are counted on every daemon of `jobs_on` (those whose builds the restart stops).
fn drain_script(daemon: &Daemon, jobs_on: &[Daemon], unit: &str, timeout: u32) -> String {
    if timeout == 0 {
        return String::new();
    }
    let docker = daemon.cli();
    let list: Vec<String> = jobs_on.iter().map(|d| format!("{} ps --format '{{{{.Names}}}}'", d.cli())).collect();
    let mut s = Script::new();
    s.line(&format!("if [ \"$({docker} info -f '{{{{.LiveRestoreEnabled}}}}' 2>/dev/null)\" != true ]; then"));
    super::drain::wait_for_jobs(
        &mut s,
        &format!("{{ {}; }} 2>/dev/null | grep -c '^runner-'", list.join("; ")),
        timeout.into(),
        &format!(
            "%s job container(s) (runner-*) still run after {timeout}s: not restarting {unit} (builds would be killed; set restart_drain_timeout=0 to restart at once)\\n"
        ),
        &format!("waiting for %s job container(s) (runner-*) to finish before restarting {unit}\\n"),
    );
    s.line("fi");
    s.into_string()
}

/// Without the CI daemon: a previous one is stopped and its unit, config and bridge removed
/// (its data root stays, like docker's own on package removal).
fn ci_daemon_absent(v: &Vars, desired: &mut Desired) {
    desired.steps.push(Step::new(Service::stopped(CI_UNIT)));
    let step = unit_file_absent(desired, CI_UNIT);
    desired.steps.push(step);
    desired.steps.push(Step::new(File::absent(CI_DAEMON_JSON)));
    desired.steps.push(Step::new(Directory::absent("/etc/docker-ci")));
    desired.steps.push(Step::new(LinkAbsent { name: v.docker_ci_bridge.clone() }));
}

/// The CI bridge's `address/prefix`, checked: IPv4, prefix 8..=30, not overlapping docker0
/// (172.17.0.0/16 unless `bip` says otherwise) or the host's own addresses.
fn check_cidr(ctx: &RoleContext, v: &Vars) -> Result<String, InputError> {
    let raw = &v.docker_ci_bridge_cidr;
    let err = |msg: String| ctx.error_at("docker_ci_bridge_cidr", msg, "bad bridge network");
    let net = parse_cidr(raw).ok_or_else(|| err(format!("`docker_ci_bridge_cidr` must look like 172.30.0.1/16, found `{raw}`")))?;
    let bip = v.docker_daemon_config.get("bip").and_then(|v| v.as_str()).unwrap_or("172.17.0.1/16").to_string();
    if let Some(docker0) = parse_cidr(&bip)
        && net.overlaps(docker0)
    {
        return Err(err(format!("`docker_ci_bridge_cidr` {raw} overlaps the host daemon's bridge {bip}")));
    }
    let conn = &ctx.host().connection;
    for addr in [&conn.private_address, &conn.address] {
        if let Ok(ip) = addr.parse::<std::net::Ipv4Addr>()
            && net.overlaps(Cidr::host(ip))
        {
            return Err(err(format!("`docker_ci_bridge_cidr` {raw} contains the host's address {addr}")));
        }
    }
    Ok(raw.clone())
}

/// The bridge's `address/prefix` (prefix 8 or longer).
fn parse_cidr(s: &str) -> Option<Cidr> {
    Cidr::parse_address(s).filter(|c| c.prefix >= 8)
}

/// daemon.json: listen addresses (the TLS port only with `tls`), live-restore, registry
/// mirrors, then the user's extra keys on top.
fn daemon_doc(ctx: &RoleContext, v: &Vars, tls: bool) -> Json {
    let tls_dir = &v.docker_tls_dir;
    let mut doc = if tls {
        json!({
            "hosts": [format!("unix://{HOST_SOCKET}"), format!("tcp://{}:{}", v.docker_tls_bind, v.docker_tls_port)],
            "tls": true,
            "tlsverify": true,
            "tlscacert": format!("{tls_dir}/ca.pem"),
            "tlscert": format!("{tls_dir}/server-cert.pem"),
            "tlskey": format!("{tls_dir}/server-key.pem"),
        })
    } else {
        json!({ "hosts": [format!("unix://{HOST_SOCKET}")] })
    };
    // Containers (dind with its builds, the registry cache, job containers) keep running while
    // the daemon restarts for a config change.
    doc["live-restore"] = json!(true);
    let mut mirrors: Vec<Json> = v.docker_registry_mirrors.iter().cloned().map(Json::String).collect();
    if let Some(own) = &ctx.topology().mirror {
        mirrors.insert(0, Json::String(own.clone()));
    }
    if !mirrors.is_empty() {
        doc["registry-mirrors"] = Json::Array(mirrors);
    }
    for (k, val) in &v.docker_daemon_config {
        doc[k] = val.clone();
    }
    doc
}

fn daemon_json(ctx: &RoleContext, v: &Vars, tls: bool) -> String {
    serde_json::to_string_pretty(&daemon_doc(ctx, v, tls)).expect("JSON") + "\n"
}

fn owns(host: &HostFacts, owned: &mut Owned) {
    owned.log(Some("docker"), HOST_UNIT, true);
    owned.config(DAEMON_JSON, ConfigFormat::Json);
    if host.topology.ci_daemon {
        owned.log(Some("docker-ci"), CI_UNIT, true);
        owned.config(CI_DAEMON_JSON, ConfigFormat::Json);
        owned.daemons.push(DockerEndpoint { label: "CI daemon", socket: CI_SOCKET.to_string(), dind: false });
    }
}

#[cfg(test)]
mod tests {
    use super::{Daemon, drain_script, parse_cidr};

    #[test]
    fn a_restart_without_live_restore_waits_for_job_containers() {
        assert_eq!(drain_script(&Daemon::default(), &[Daemon::default()], "docker.service", 0), "", "0: at once");
        let s = drain_script(&Daemon::default(), &[Daemon::default()], "docker.service", 1800);
        let both = drain_script(
            &Daemon::default(),
            &[Daemon::default(), Daemon { host: Some("unix:///run/docker-ci.sock".into()) }],
            "docker.service",
            60,
        );
        assert!(
            both.contains("{ docker ps --format '{{.Names}}'; docker --host=unix:///run/docker-ci.sock ps --format '{{.Names}}'; }"),
            "jobs using dind on the CI daemon are counted too: {both}"
        );
        assert!(s.contains("LiveRestoreEnabled") && s.contains("grep -c '^runner-'") && s.contains("+ 1800"), "{s}");
        let o = std::process::Command::new("sh").args(["-n", "-c", &s]).output().unwrap();
        assert!(o.status.success(), "valid sh: {}\n{s}", String::from_utf8_lossy(&o.stderr));
    }

    #[test]
    fn cidr_overlap() {
        let docker0 = parse_cidr("172.17.0.1/16").unwrap();
        assert!(!parse_cidr("172.30.0.1/16").unwrap().overlaps(docker0));
        assert!(parse_cidr("172.17.200.1/24").unwrap().overlaps(docker0));
        assert!(parse_cidr("172.16.0.1/12").unwrap().overlaps(docker0), "a wider network containing docker0");
        assert!(parse_cidr("172.30.0.1").is_none() && parse_cidr("300.1.1.1/16").is_none() && parse_cidr("10.0.0.1/4").is_none());
    }
}
