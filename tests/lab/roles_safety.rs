//! Role behaviour that keeps hosts and builds safe: builds survive a docker restart, the
//! registry cache is not exposed on every interface, and `debug` shows what hosts print without
//! letting them drive the terminal.

use crate::harness::*;

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
