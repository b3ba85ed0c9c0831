use crate::harness::*;

/// Which daemon answers on the slave's TLS port: its data root.
fn tls_port_root() -> String {
    let o = docker_from_laptop(&["info", "--format", "{{.DockerRootDir}}"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    text(&o.stdout).trim().to_string()
}

#[test]
fn a_dedicated_ci_daemon_takes_the_tls_port_and_leaves_cleanly() {
    let _s = serial();
    assert_eq!(json_run(&["apply"]).0, Some(0));
    assert_eq!(tls_port_root(), "/var/lib/docker");

    let (code, doc) = json_run(&["-e", "docker_ci_daemon=true", "apply"]);
    assert_eq!(code, Some(0), "{doc}");
    assert_eq!(tls_port_root(), "/var/lib/docker-ci", "the TLS port now reaches the CI daemon");
    let ip = on_host(
        "lab-slave-1",
        "docker -H unix:///run/docker-ci.sock pull -q busybox:1 >/dev/null; docker -H unix:///run/docker-ci.sock run --rm busybox:1 ip -4 -o addr show eth0",
    );
    assert!(ip.contains(" 172.30."), "CI containers live on the CI bridge: {ip}");
    assert!(!on_host("lab-slave-1", "cat /etc/docker/daemon.json").contains("tcp://"), "the host daemon keeps to its socket");
    assert!(
        on_host("lab-slave-1", "systemctl show -p ExecStart --value docker-cleanup.service").contains("unix:///run/docker-ci.sock"),
        "cleanup prunes where builds run"
    );
    let (_, again) = json_run(&["-e", "docker_ci_daemon=true", "apply"]);
    assert_eq!(again["hosts"]["lab-slave-1"]["changed"], 0, "{again}");

    let (code, doc) = json_run(&["apply"]);
    assert_eq!(code, Some(0), "turning it off converges: {doc}");
    assert_eq!(tls_port_root(), "/var/lib/docker", "the host daemon has the TLS port back");
    let gone = on_host(
        "lab-slave-1",
        "systemctl cat docker-ci.service >/dev/null 2>&1 && echo unit; [ -e /etc/docker-ci ] && echo config; \\
         ip link show docker-ci0 >/dev/null 2>&1 && echo bridge; systemctl is-active docker-ci.service || true",
    );
    assert_eq!(gone, "inactive\n", "unit, config and bridge removed");
    let (_, again) = json_run(&["apply"]);
    assert_eq!(again["hosts"]["lab-slave-1"]["changed"], 0, "{again}");
}

#[test]
fn an_overlapping_bridge_is_refused_before_anything_runs() {
    let _s = serial();
    let before = on_host("lab-slave-1", FINGERPRINT);
    let o = provision(&["-e", "docker_ci_daemon=true", "-e", "docker_ci_bridge_cidr=172.17.9.1/24", "apply"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("overlaps the host daemon's bridge") && text(&o.stderr).contains("-e #2:1:23"), "{}", text(&o.stderr));
    assert!(o.stdout.is_empty(), "no host was touched");
    assert_eq!(on_host("lab-slave-1", FINGERPRINT), before, "nothing changed on the host");
}
