//! Role behaviour against the local lab (see tests/lab.rs for the lab itself): builds survive a
//! docker restart, the registry cache is not exposed on every interface, and `debug` shows
//! what hosts print without letting them drive the terminal.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard, OnceLock};

/// One test at a time: they share the lab's hosts.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    lab_inventory();
    guard
}

fn lab_inventory() -> &'static Path {
    static UP: OnceLock<PathBuf> = OnceLock::new();
    UP.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let status = Command::new("bash").arg(root.join("lab/lab")).arg("up").status().expect("run lab/lab up");
        assert!(status.success(), "lab/lab up failed (the lab needs root on Debian 12)");
        root.join("lab/inventory.yaml")
    })
}

fn provision(args: &[&str]) -> Output {
    let inv = lab_inventory().to_str().unwrap();
    Command::new(env!("CARGO_BIN_EXE_provision")).args(["-i", inv]).args(args).env("NO_COLOR", "1").output().expect("run provision")
}

fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).into_owned()
}

fn on_host(host: &str, script: &str) -> String {
    let lab = Path::new(env!("CARGO_MANIFEST_DIR")).join("lab/lab");
    let o = Command::new("bash").arg(lab).args(["docker", "exec", host, "sh", "-c", script]).output().unwrap();
    assert!(o.status.success(), "{script}: {}", text(&o.stderr));
    text(&o.stdout)
}

fn apply(extra: &[&str]) -> Output {
    let mut args = extra.to_vec();
    args.push("apply");
    provision(&args)
}

/// A daemon.json change restarts docker; with live-restore a running job container keeps
/// running through it.
#[test]
fn a_job_container_survives_a_docker_restart() {
    let _s = serial();
    assert!(apply(&[]).status.success());
    on_host(
        "lab-slave-1",
        "docker rm -f runner-lab-project-0-build >/dev/null 2>&1; docker run -d --name runner-lab-project-0-build busybox:1 sleep 600 >/dev/null",
    );
    let started = || on_host("lab-slave-1", "docker inspect -f '{{.State.Running}} {{.State.StartedAt}}' runner-lab-project-0-build");
    let before = started();
    let docker_started = on_host("lab-slave-1", "systemctl show -p ActiveEnterTimestampMonotonic --value docker");
    let o = apply(&["-e", "{\"docker_daemon_config\": {\"debug\": true}}"]);
    assert!(o.status.success(), "{}", text(&o.stdout));
    assert_ne!(
        on_host("lab-slave-1", "systemctl show -p ActiveEnterTimestampMonotonic --value docker"),
        docker_started,
        "docker restarted"
    );
    assert_eq!(on_host("lab-slave-1", "docker info -f '{{.LiveRestoreEnabled}}'"), "true\n");
    assert_eq!(started(), before, "the job container ran through the restart");
    on_host("lab-slave-1", "docker rm -f runner-lab-project-0-build >/dev/null");
    assert!(apply(&[]).status.success(), "and back");
}

/// The cache has no auth: it listens on the private address only.
#[test]
fn the_registry_cache_binds_the_private_address() {
    let _s = serial();
    assert!(apply(&[]).status.success());
    let ip = on_host("lab-slave-1", "hostname -i").trim().to_string();
    assert_eq!(on_host("lab-slave-1", "docker port registry-cache 5000/tcp"), format!("{ip}:5000\n"));
    assert!(on_host("lab-slave-1", "cat /etc/registry-cache/config.yml").contains("delete:\n    enabled: false"));
}

/// Escape sequences a host prints arrive escaped; a master has no cleanup service to run.
#[test]
fn debug_output_from_hosts_cannot_drive_the_terminal() {
    let _s = serial();
    let o = provision(&["debug", "exec", "lab-slave-1", "--", "printf", "\\033]0;pwned\\007\\033[2Jdone\\n"]);
    let out = text(&o.stdout);
    assert!(o.status.success() && !out.contains('\u{1b}') && !out.contains('\u{7}'), "{out:?}");
    assert!(out.contains("\\x1b]0;pwned\\x07\\x1b[2Jdone"), "{out:?}");
    let o = provision(&["debug", "cleanup", "master"]);
    let out = text(&o.stdout);
    assert!(o.status.success() && out.contains("no cleanup service here") && !out.contains("Unit not found"), "{out}");
}

/// A symlink planted where a config file should be is not followed by `debug config`.
#[test]
fn debug_config_does_not_follow_symlinks() {
    let _s = serial();
    assert!(apply(&[]).status.success());
    on_host("lab-slave-1", "cp /etc/registry-cache/config.yml /root/config.yml.keep && ln -sf /etc/shadow /etc/registry-cache/config.yml");
    let o = provision(&["debug", "config", "lab-slave-1"]);
    on_host("lab-slave-1", "mv -f /root/config.yml.keep /etc/registry-cache/config.yml");
    let out = text(&o.stdout);
    assert!(out.contains("(a symlink: not read)") && !out.contains("root:"), "{out}");
    let o = apply(&[]);
    assert!(o.status.success(), "{}", text(&o.stdout));
}

/// Without live-restore a docker restart would kill builds: apply waits for runner-* containers
/// up to `restart_drain_timeout`, refuses after it, and restarts at once with 0.
#[test]
fn a_restart_that_would_kill_builds_waits_for_them() {
    let _s = serial();
    let no_live_restore = "{\"docker_daemon_config\": {\"live-restore\": false}}";
    let changed = "{\"docker_daemon_config\": {\"live-restore\": false, \"debug\": true}}";
    assert!(apply(&["-e", no_live_restore]).status.success());
    assert_eq!(on_host("lab-slave-1", "docker info -f '{{.LiveRestoreEnabled}}'"), "false\n");
    on_host(
        "lab-slave-1",
        "docker rm -f runner-lab-drain-build >/dev/null 2>&1; docker run -d --name runner-lab-drain-build busybox:1 sleep 600 >/dev/null",
    );
    let docker_started = || on_host("lab-slave-1", "systemctl show -p ActiveEnterTimestampMonotonic --value docker");
    let before = docker_started();
    let o = apply(&["-e", changed, "-e", "restart_drain_timeout=2"]);
    let out = format!("{}{}", text(&o.stdout), text(&o.stderr));
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("job container(s) (runner-*) still run after 2s"), "{out}");
    assert_eq!(docker_started(), before, "docker was not restarted");
    assert_eq!(on_host("lab-slave-1", "docker inspect -f '{{.State.Running}}' runner-lab-drain-build"), "true\n");
    let o = apply(&["-e", changed, "-e", "restart_drain_timeout=0"]);
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    assert_ne!(docker_started(), before, "0 restarts at once");
    on_host("lab-slave-1", "docker rm -f runner-lab-drain-build >/dev/null");
    assert!(apply(&[]).status.success(), "and back");
    assert_eq!(on_host("lab-slave-1", "docker info -f '{{.LiveRestoreEnabled}}'"), "true\n");
}
