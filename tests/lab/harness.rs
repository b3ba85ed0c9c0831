//! What every lab test shares: one lock (the tests share the lab's hosts and some change them),
//! one `lab/lab up` per run, provision run against a lab inventory, and direct access to the hosts.

use std::sync::{Mutex, MutexGuard, OnceLock};

pub use std::path::{Path, PathBuf};
pub use std::process::{Command, Output};

/// The default lab inventory (the Debian 12 pair `lab-master-1`, `lab-slave-1`).
pub const DEFAULT: &str = "inventory.yaml";
/// The Debian 13 pair (`lab13-*`, Docker 26 with the CLI in `docker-cli`).
pub const TRIXIE: &str = "inventory-trixie.yaml";
/// A slave without a package manager and with a read-only `/usr` (`labro-slave-1`).
pub const READONLY: &str = "inventory-ro.yaml";

/// Lab tests share the hosts and some change them: they run one at a time, each with the lab up
/// before it starts changing anything.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    lab_inventory();
    guard
}

/// The lab's directory (`lab/`): its script, inventories, certificates and state.
pub fn lab_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("lab")
}

/// The default inventory, once the lab is up (`lab/lab up` is idempotent and runs once per run;
/// it starts every host, the other inventories' too).
pub fn lab_inventory() -> &'static Path {
    static UP: OnceLock<PathBuf> = OnceLock::new();
    UP.get_or_init(|| {
        let status = Command::new("bash").arg(lab_dir().join("lab")).arg("up").status().expect("run lab/lab up");
        assert!(status.success(), "lab/lab up failed (the lab needs root on Debian 12)");
        lab_dir().join(DEFAULT)
    })
}

/// Runs provision with `args` against the default lab inventory.
pub fn provision(args: &[&str]) -> Output {
    provision_in(DEFAULT, args)
}

/// Runs provision with `args` against the lab inventory `inventory` (a file name in `lab/`).
pub fn provision_in(inventory: &str, args: &[&str]) -> Output {
    lab_inventory();
    let inv = lab_dir().join(inventory);
    Command::new(env!("CARGO_BIN_EXE_provision")).arg("-i").arg(inv).args(args).env("NO_COLOR", "1").output().expect("run provision")
}

pub fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).into_owned()
}

/// Runs provision with `args` and `--format json` against the default inventory.
pub fn json_run(args: &[&str]) -> (Option<i32>, serde_json::Value) {
    json_run_in(DEFAULT, args)
}

/// Runs provision with `args` and `--format json` against the lab inventory `inventory`.
pub fn json_run_in(inventory: &str, args: &[&str]) -> (Option<i32>, serde_json::Value) {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    let o = provision_in(inventory, &all);
    let doc = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}{}", text(&o.stdout), text(&o.stderr)));
    (o.status.code(), doc)
}

/// A host var of the default inventory as provision resolves it (strings without quotes).
pub fn host_var(host: &str, name: &str) -> String {
    let (_, doc) = json_run(&["inventory", "--host", host]);
    let v = &doc["vars"][name];
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

/// The SSH port of a host of the default inventory, as written in the inventory file.
pub fn ssh_port(host: &str) -> String {
    let inv = std::fs::read_to_string(lab_inventory()).unwrap();
    inv.split(&format!("{host}:"))
        .nth(1)
        .unwrap()
        .split("port: ")
        .nth(1)
        .unwrap()
        .split([',', '}', '\n'])
        .next()
        .unwrap()
        .trim()
        .to_string()
}

/// Whether `addr` lies in the lab's network (`LAB_SUBNET`, as `lab/lab` reads it).
pub fn in_lab_subnet(addr: &str) -> bool {
    let subnet = std::env::var("LAB_SUBNET").unwrap_or_else(|_| "10.213.0.0/24".into());
    let (net, bits) = subnet.split_once('/').expect("LAB_SUBNET is an IPv4 CIDR");
    let net: std::net::Ipv4Addr = net.parse().expect("LAB_SUBNET is an IPv4 CIDR");
    let bits: u32 = bits.parse().expect("LAB_SUBNET is an IPv4 CIDR");
    let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
    addr.parse::<std::net::Ipv4Addr>().is_ok_and(|a| u32::from(a) & mask == u32::from(net) & mask)
}

/// Runs sh on a lab host directly (docker exec, not provision), as an operator's hand would;
/// it must succeed. Returns its stdout.
pub fn on_host(host: &str, script: &str) -> String {
    let o = on_host_raw(host, script);
    assert!(o.status.success(), "{script}: {}{}", text(&o.stdout), text(&o.stderr));
    text(&o.stdout)
}

/// Runs sh on a lab host directly, whatever its exit code.
pub fn on_host_raw(host: &str, script: &str) -> Output {
    Command::new("bash").arg(lab_dir().join("lab")).args(["docker", "exec", host, "sh", "-c", script]).output().unwrap()
}

/// Runs a desired state built in code on one lab host through the real engine.
pub fn run_desired(host: &str, desired: provision::engine::Desired) -> provision::engine::report::HostReport {
    run_desired_with(host, desired, true)
}

/// [`run_desired`], with or without diffs.
pub fn run_desired_with(host: &str, desired: provision::engine::Desired, diff: bool) -> provision::engine::report::HostReport {
    use provision::engine::run::{Job, Options, run_host};
    let project = provision::project::Project::load(Some(lab_inventory()), &[]).unwrap();
    let connection = project.resolve(&[host.to_string()]).unwrap().remove(0).connection;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(run_host(Job { connection, desired }, Options { check: false, diff, forks: 1 }))
}

/// The ids of the resources a run changed on `host` (handlers left out).
pub fn changed_ids(doc: &serde_json::Value, host: &str) -> Vec<String> {
    doc["hosts"][host]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "changed" && !r["id"].as_str().unwrap().starts_with("handler "))
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

/// Undoes what the cleanup role manages on the slave, so the next apply has work to do.
pub fn unconverge_slave() {
    on_host(
        "lab-slave-1",
        "systemctl disable --now docker-cleanup.timer 2>/dev/null; rm -f /etc/systemd/system/docker-cleanup.*; systemctl daemon-reload",
    );
}

/// What a host's docker and systemd configuration is, byte for byte.
pub const FINGERPRINT: &str = "find /etc/systemd/system /etc/docker -xdev \\( -type f -o -type l \\) -exec sha256sum {} + 2>/dev/null | sort; \
    ls -la --time-style=full-iso /etc/systemd/system; systemctl is-enabled docker-cleanup.timer; systemctl is-active docker-cleanup.timer; true";

/// Restarts sshd on drop, so a failing assertion does not leave the lab broken.
pub struct SshdDown(pub &'static str);

impl Drop for SshdDown {
    fn drop(&mut self) {
        on_host(self.0, "systemctl start ssh");
    }
}

/// With `known_hosts` as the known hosts file, reaching the slave fails on its host key, and
/// succeeds once checking is turned off.
pub fn host_key_is_refused_unless_checking_is_off(known_hosts: &str) {
    let file = format!("ssh_known_hosts_file={known_hosts}");
    let o = provision(&["-e", &file, "debug", "exec", "lab-slave-1", "--", "true"]);
    assert_eq!(o.status.code(), Some(1));
    let out = text(&o.stdout);
    assert!(out.contains("UNREACHABLE") && out.contains("host key"), "{out}");
    let o = provision(&["-e", &file, "-e", "ssh_host_key_checking=false", "debug", "exec", "lab-slave-1", "--", "true"]);
    assert!(o.status.success(), "opting out connects: {}", text(&o.stdout));
}

/// Runs `docker ARGS` on `master` (a host or group of `inventory`) against the TLS daemon at
/// `slave_ip`:2376, with the client certificates the docker_client_certs role installed: the
/// path the runner's builds take.
pub fn docker_from_master(inventory: &str, master: &str, slave_ip: &str, args: &[&str]) -> Output {
    let host = format!("tcp://{slave_ip}:2376");
    let dir = "/etc/gitlab-runner/docker-certs";
    let (ca, cert, key) = (format!("{dir}/ca.pem"), format!("{dir}/cert.pem"), format!("{dir}/key.pem"));
    let mut all =
        vec!["debug", "exec", master, "--", "docker", "--tlsverify", "--tlscacert", &ca, "--tlscert", &cert, "--tlskey", &key, "-H", &host];
    all.extend(args);
    provision_in(inventory, &all)
}

/// Runs `docker ARGS` from this machine against lab-slave-1's TLS daemon (its 2376 published on
/// loopback, `lab_tls_port`) with lab-master-1's client certificate from `lab/certs/`.
pub fn docker_from_laptop(args: &[&str]) -> Output {
    laptop_docker().args(args).output().unwrap()
}

/// The docker command of [`docker_from_laptop`], to add arguments to.
pub fn laptop_docker() -> Command {
    static PORT: OnceLock<String> = OnceLock::new();
    let port = PORT.get_or_init(|| host_var("lab-slave-1", "lab_tls_port"));
    let certs = lab_dir().join("certs");
    let mut docker = Command::new("/usr/bin/docker");
    docker
        .arg("--tlsverify")
        .arg("--tlscacert")
        .arg(certs.join("ca.pem"))
        .arg("--tlscert")
        .arg(certs.join("client/lab-master-1.pem"))
        .arg("--tlskey")
        .arg(certs.join("client/lab-master-1-key.pem"))
        .args(["-H", &format!("tcp://127.0.0.1:{port}")]);
    docker
}
