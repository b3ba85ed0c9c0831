//! Docker TLS: the host daemon listens on its unix socket and on a TCP port with mutual TLS,
//! using a server certificate from the certs directory.

use serde_json::{Map, Value as Json, json};

use super::{Role, RoleContext};
use crate::engine::{Desired, Step};
use crate::error::InputError;
use crate::net::Cidr;
use crate::resources::directory::Directory;
use crate::resources::file::File;
use crate::resources::netlink::LinkAbsent;
use crate::resources::service::{Service, restart_or_restore_script, restart_script, unit_file, unit_file_absent, unit_file_from};
use crate::vars::schema::{Kind, VarSpec};

/// Handler that restarts the host daemon.
pub const RESTART_DOCKER: &str = "restart docker";
const DAEMON_JSON: &str = "/etc/docker/daemon.json";
const DROP_IN: &str = "/etc/systemd/system/docker.service.d/provision.conf";
/// dockerd checks a config file itself since docker 23 (`--validate`); older ones are checked
/// when they start (and the previous file is restored if they do not).
const VALIDATE_DAEMON_JSON: &str = "if dockerd --help 2>&1 | grep -q -e '--validate'; then dockerd --validate --config-file \"$t\"; fi";
/// Handler that restarts the dedicated CI daemon.
pub const RESTART_DOCKER_CI: &str = "restart docker-ci";
/// Whether `host` runs the dedicated CI daemon (`docker_ci_daemon`).
pub fn ci_daemon_enabled(host: &crate::project::HostSpec) -> bool {
    host.vars.bool("docker_ci_daemon").unwrap_or(false)
}

/// Unix socket of the dedicated CI daemon.
pub const CI_SOCKET: &str = "/run/docker-ci.sock";
const CI_UNIT: &str = include_str!("templates/docker-ci.service.j2");

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
    specs: &[
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
        VarSpec {
            name: "certs_dir",
            kind: Kind::Str,
            doc: "where certificates are kept on this machine (default certs/ beside the inventory)",
        },
        VarSpec {
            name: "cert_leaf_days",
            kind: Kind::Int { min: 1, max: 3650 },
            doc: "validity of server and client certificates (default 825)",
        },
        VarSpec { name: "cert_ca_days", kind: Kind::Int { min: 1, max: 36500 }, doc: "validity of a new CA (default 3650)" },
        VarSpec {
            name: "cert_renew_before_days",
            kind: Kind::Int { min: 0, max: 3650 },
            doc: "re-issue certificates expiring within this many days (default 30)",
        },
    ],
    build,
};

fn build(ctx: &RoleContext, desired: &mut Desired) -> Result<(), InputError> {
    let host = &ctx.host.vars.host;
    let dir = ctx.str("docker_tls_dir");
    let certs = ctx.certs;
    desired.handler(RESTART_DOCKER, &restart_or_restore_script("docker.service", &[DAEMON_JSON, DROP_IN]));
    desired.steps.push(Step::new(Directory::new(&dir).mode(0o755)));
    for (name, content, secret) in [
        ("ca.pem", ctx.read_cert(certs.ca_cert())?, false),
        ("server-cert.pem", ctx.read_cert(certs.server_cert(host))?, false),
        ("server-key.pem", ctx.read_cert(certs.server_key(host))?, true),
    ] {
        let f = File::new(&format!("{dir}/{name}"), content);
        let f = if secret { f.mode(0o600).secret() } else { f };
        desired.steps.push(Step::new(f).notify(RESTART_DOCKER));
    }
    let ci = ci_daemon_enabled(ctx.host);
    // Only one daemon can hold the TLS port: a CI daemon being removed goes first, so the host
    // daemon can take the port back; one being added comes after the host daemon let it go.
    if !ci {
        ci_daemon_absent(ctx, desired)?;
    }
    let host_json = daemon_json(ctx, &dir, !ci)?;
    let json = File::new(DAEMON_JSON, host_json).validate(VALIDATE_DAEMON_JSON).keep_previous();
    desired.steps.push(Step::new(json).notify(RESTART_DOCKER));
    let dropin = format!(
        "# Managed by provision: the listen addresses are in /etc/docker/daemon.json, so -H fd://\n# (which conflicts with them) is cleared here.\n[Service]\nExecStart=\nExecStart=dockerd {} $DOCKER_OPTS\n",
        ctx.str("docker_dockerd_args")
    );
    let step = unit_file_from(desired, File::new(DROP_IN, dropin).keep_previous()).notify(RESTART_DOCKER);
    desired.steps.push(step);
    desired.steps.push(Step::new(Service::running("docker.service")));
    if ci { ci_daemon(ctx, desired, &dir) } else { Ok(()) }
}

/// The dedicated CI daemon: own bridge, data root, exec root, pidfile and socket; it takes the
/// TLS port.
fn ci_daemon(ctx: &RoleContext, desired: &mut Desired, tls_dir: &str) -> Result<(), InputError> {
    let cidr = check_cidr(ctx)?;
    let mut json: serde_json::Value = serde_json::from_str(&daemon_json(ctx, tls_dir, true)?).expect("own JSON");
    json["hosts"] = json!([format!("unix://{CI_SOCKET}"), format!("tcp://{}:{}", ctx.str("docker_tls_bind"), ctx.var("docker_tls_port"))]);
    json["data-root"] = json!(ctx.str("docker_ci_data_root"));
    json["exec-root"] = json!("/run/docker-ci");
    json["pidfile"] = json!("/run/docker-ci.pid");
    json["bridge"] = json!(ctx.str("docker_ci_bridge"));
    desired.handler(RESTART_DOCKER_CI, &restart_script("docker-ci.service", false));
    desired.steps.push(Step::new(Directory::new("/etc/docker-ci")));
    let text = serde_json::to_string_pretty(&json).expect("JSON") + "\n";
    desired.steps.push(Step::new(File::new("/etc/docker-ci/daemon.json", text)).notify(RESTART_DOCKER_CI));
    let mut extra = serde_json::Map::new();
    extra.insert("bridge".into(), json!(ctx.str("docker_ci_bridge")));
    extra.insert("cidr".into(), json!(cidr));
    let unit = ctx.render_with("docker-ci.service", CI_UNIT, extra)?;
    let step = unit_file(desired, "docker-ci.service", unit).notify(RESTART_DOCKER_CI);
    desired.steps.push(step);
    desired.steps.push(Step::new(Service::running("docker-ci.service")));
    Ok(())
}

/// Without the CI daemon: a previous one is stopped and its unit, config and bridge removed
/// (its data root stays, like docker's own on package removal).
fn ci_daemon_absent(ctx: &RoleContext, desired: &mut Desired) -> Result<(), InputError> {
    desired.steps.push(Step::new(Service::stopped("docker-ci.service")));
    let step = unit_file_absent(desired, "docker-ci.service");
    desired.steps.push(step);
    desired.steps.push(Step::new(File::absent("/etc/docker-ci/daemon.json")));
    desired.steps.push(Step::new(Directory::absent("/etc/docker-ci")));
    desired.steps.push(Step::new(LinkAbsent { name: ctx.str("docker_ci_bridge") }));
    Ok(())
}

/// The CI bridge's `address/prefix`, checked: IPv4, prefix 8..=30, not overlapping docker0
/// (172.17.0.0/16 unless `bip` says otherwise) or the host's own addresses.
fn check_cidr(ctx: &RoleContext) -> Result<String, InputError> {
    let raw = ctx.str("docker_ci_bridge_cidr");
    let err = |msg: String| ctx.error_at("docker_ci_bridge_cidr", msg, "bad bridge network");
    let net = parse_cidr(&raw).ok_or_else(|| err(format!("`docker_ci_bridge_cidr` must look like 172.30.0.1/16, found `{raw}`")))?;
    let bip = ctx.var("docker_daemon_config").get("bip").and_then(|v| v.as_str()).unwrap_or("172.17.0.1/16").to_string();
    if let Some(docker0) = parse_cidr(&bip)
        && net.overlaps(docker0)
    {
        return Err(err(format!("`docker_ci_bridge_cidr` {raw} overlaps the host daemon's bridge {bip}")));
    }
    for addr in [&ctx.host.connection.private_address, &ctx.host.connection.address] {
        if let Ok(ip) = addr.parse::<std::net::Ipv4Addr>()
            && net.overlaps(Cidr::host(ip))
        {
            return Err(err(format!("`docker_ci_bridge_cidr` {raw} contains the host's address {addr}")));
        }
    }
    Ok(raw)
}

/// The bridge's `address/prefix` (prefix 8 or longer).
fn parse_cidr(s: &str) -> Option<Cidr> {
    Cidr::parse_address(s).filter(|c| c.prefix >= 8)
}

/// daemon.json: listen addresses (the TLS port only with `tls`), registry mirrors, then the
/// user's extra keys on top.
pub fn daemon_json(ctx: &RoleContext, tls_dir: &str, tls: bool) -> Result<String, InputError> {
    let port = ctx.var("docker_tls_port").as_i64().unwrap_or(2376);
    let mut doc = if tls {
        json!({
            "hosts": ["unix:///var/run/docker.sock", format!("tcp://{}:{port}", ctx.str("docker_tls_bind"))],
            "tls": true,
            "tlsverify": true,
            "tlscacert": format!("{tls_dir}/ca.pem"),
            "tlscert": format!("{tls_dir}/server-cert.pem"),
            "tlskey": format!("{tls_dir}/server-key.pem"),
        })
    } else {
        json!({ "hosts": ["unix:///var/run/docker.sock"] })
    };
    let mut mirrors = ctx.var("docker_registry_mirrors").as_array().cloned().unwrap_or_default();
    if let Some(own) = super::registry::mirror_url(ctx) {
        mirrors.insert(0, Json::String(own));
    }
    if !mirrors.is_empty() {
        doc["registry-mirrors"] = Json::Array(mirrors);
    }
    let extra: Map<String, Json> = ctx.var("docker_daemon_config").as_object().cloned().unwrap_or_default();
    for (k, v) in extra {
        doc[k] = v;
    }
    Ok(serde_json::to_string_pretty(&doc).expect("JSON") + "\n")
}

#[cfg(test)]
mod tests {
    use super::parse_cidr;

    #[test]
    fn cidr_overlap() {
        let docker0 = parse_cidr("172.17.0.1/16").unwrap();
        assert!(!parse_cidr("172.30.0.1/16").unwrap().overlaps(docker0));
        assert!(parse_cidr("172.17.200.1/24").unwrap().overlaps(docker0));
        assert!(parse_cidr("172.16.0.1/12").unwrap().overlaps(docker0), "a wider network containing docker0");
        assert!(parse_cidr("172.30.0.1").is_none() && parse_cidr("300.1.1.1/16").is_none() && parse_cidr("10.0.0.1/4").is_none());
    }
}
