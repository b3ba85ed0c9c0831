//! The slave and master roles on the Docker engines users run, against real lab hosts:
//! - Debian 13 (Docker 26.1, whose CLI is the separate `docker-cli` package): `lab13-*`,
//!   inventory `lab/inventory-trixie.yaml`;
//! - a Flatcar/CoreOS-style slave (Docker preinstalled, no apt/dpkg, `/usr` read-only):
//!   `labro-slave-1`, inventory `lab/inventory-ro.yaml`.
//!
//! `lab/lab up` (its default, `--distro mixed`) starts them beside the Debian 12 pair that the
//! engine-independent tests use.

use crate::harness::*;

fn private_address(inventory: &str, host: &str) -> String {
    let (_, inv) = json_run_in(inventory, &["inventory", "--host", host]);
    inv["vars"]["private_address"].as_str().expect("private_address").to_string()
}

fn converge_twice(inventory: &str, hosts: &[&str]) {
    let (code, doc) = json_run_in(inventory, &["apply"]);
    assert_eq!(code, Some(0), "{doc}");
    let (code, again) = json_run_in(inventory, &["apply"]);
    assert_eq!(code, Some(0), "{again}");
    for h in hosts {
        assert_eq!(again["hosts"][h]["changed"], 0, "a second apply on {h} changes nothing: {again}");
        assert_eq!(again["hosts"][h]["failed"], 0, "{again}");
    }
}

#[test]
fn debian_13_hosts_run_docker_26_with_the_cli_in_its_own_package() {
    let _s = serial();
    let version = on_host("lab13-slave-1", "docker version -f '{{.Server.Version}}'");
    assert!(version.starts_with("26."), "Debian 13 ships Docker 26: {version}");
    assert!(on_host("lab13-slave-1", "dpkg -S /usr/bin/docker").starts_with("docker-cli:"), "the CLI is docker-cli's");
}

#[test]
fn slave_and_master_converge_on_docker_26_and_the_master_reaches_the_slave_over_mutual_tls() {
    let _s = serial();
    converge_twice(TRIXIE, &["lab13-master-1", "lab13-slave-1"]);
    let ip = private_address(TRIXIE, "lab13-slave-1");
    let o = docker_from_master(TRIXIE, "lab13-master-1", &ip, &["version", "-f", "{{.Server.Version}}"]);
    let out = text(&o.stdout);
    assert!(o.status.success() && out.contains("\n26."), "mutual TLS from the master to the Docker 26 slave: {out}{}", text(&o.stderr));
    // Without a client certificate the daemon refuses (from the slave itself, with its CA).
    let refused = on_host_raw(
        "lab13-slave-1",
        &format!("DOCKER_CERT_PATH=/nonexistent docker --tlsverify --tlscacert /etc/docker/tls/ca.pem -H tcp://{ip}:2376 version"),
    );
    assert!(!refused.status.success(), "a client without a certificate is refused");
    // dind runs on Docker 26 with the capability set that engine accepts.
    let info = on_host("lab13-slave-1", "docker -H unix:///var/run/provision-dind/docker.sock info -f '{{.ServerVersion}}'");
    assert!(!info.trim().is_empty(), "the dind engine answers on its socket");
}

#[test]
fn docker_26_refuses_a_bad_daemon_json_before_it_is_written_and_keeps_running() {
    let _s = serial();
    assert_eq!(json_run_in(TRIXIE, &["apply"]).0, Some(0));
    let before = on_host("lab13-slave-1", "sha256sum /etc/docker/daemon.json");
    let started = on_host("lab13-slave-1", "systemctl show -p ActiveEnterTimestampMonotonic docker");
    let bad = r#"{"docker_daemon_config": {"no-such-option": true}}"#;
    let (code, doc) = json_run_in(TRIXIE, &["-e", bad, "apply", "--limit", "slave"]);
    assert_eq!(code, Some(1), "{doc}");
    let slave = doc["hosts"]["lab13-slave-1"].to_string();
    assert!(slave.contains("no-such-option"), "dockerd --validate's own message: {slave}");
    assert!(slave.contains("was refused (not written)"), "{slave}");
    assert_eq!(on_host("lab13-slave-1", "sha256sum /etc/docker/daemon.json"), before, "daemon.json never changed");
    assert_eq!(on_host("lab13-slave-1", "systemctl is-active docker"), "active\n");
    assert_eq!(
        on_host("lab13-slave-1", "systemctl show -p ActiveEnterTimestampMonotonic docker"),
        started,
        "docker was not restarted: the refused file never reached it"
    );
}

#[test]
fn a_slave_without_package_manager_and_with_a_read_only_usr_converges() {
    let _s = serial();
    // The host is what it claims to be.
    assert!(!on_host_raw("labro-slave-1", "touch /usr/provision-write-test").status.success(), "/usr is read-only");
    assert_eq!(on_host("labro-slave-1", "command -v dpkg apt-get apt || true"), "", "no package manager");
    converge_twice(READONLY, &["labro-slave-1"]);
    assert_eq!(on_host("labro-slave-1", "systemctl is-active docker docker-cleanup.timer"), "active\nactive\n");
    let info = on_host("labro-slave-1", "docker -H unix:///var/run/provision-dind/docker.sock info -f '{{.ServerVersion}}'");
    assert!(!info.trim().is_empty(), "the dind engine answers on its socket");
}

#[test]
fn a_package_install_on_a_host_without_package_manager_fails_clearly() {
    let _s = serial();
    let vars = r#"{"roles": ["runner"], "runner_install": "package", "runner_package_file": "state/packages/gitlab-runner_1.0.0-1_all.deb", "runners": []}"#;
    let (code, doc) = json_run_in(READONLY, &["-e", vars, "plan"]);
    assert_eq!(code, Some(1), "{doc}");
    let host = doc["hosts"]["labro-slave-1"].to_string();
    assert!(host.contains("neither dpkg nor rpm"), "says why: {host}");
    assert_eq!(on_host("labro-slave-1", "command -v gitlab-runner || true"), "", "nothing was installed");
}

/// Puts the docker CLI back even when the test fails.
struct RestoreCli;

impl Drop for RestoreCli {
    fn drop(&mut self) {
        let _ = on_host_raw("lab13-slave-1", "[ -e /usr/bin/docker.lab-off ] && mv /usr/bin/docker.lab-off /usr/bin/docker");
    }
}

#[test]
fn a_host_without_the_docker_command_is_told_which_package_to_install() {
    let _s = serial();
    on_host("lab13-slave-1", "mv /usr/bin/docker /usr/bin/docker.lab-off");
    let _restore = RestoreCli;
    let (code, doc) = json_run_in(TRIXIE, &["plan", "--limit", "slave"]);
    assert_eq!(code, Some(1), "{doc}");
    let host = doc["hosts"]["lab13-slave-1"].to_string();
    assert!(host.contains("`docker` command is missing") && host.contains("docker-cli"), "names the package: {host}");
}
