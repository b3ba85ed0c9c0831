//! Whole applies of the lab inventory: from fresh, drift, check mode, a host down, a locked host.

use crate::harness::*;

/// Puts the slave's docker back as the package left it (no TLS drop-in, no daemon.json, no
/// cleanup units), as on a host provision has never touched.
fn reset_slave_to_fresh() {
    unconverge_slave();
    on_host(
        "lab-slave-1",
        "docker rm -f registry-cache dind >/dev/null 2>&1; rm -rf /etc/docker/daemon.json /etc/docker/tls /etc/systemd/system/docker.service.d; \
         systemctl daemon-reload; systemctl reset-failed docker; systemctl restart docker",
    );
}

#[test]
fn converge_from_fresh_then_reapply_changes_nothing() {
    let _s = serial();
    // A first apply on a fresh host adds the TLS drop-in (daemon-reload, then restart docker) and
    // unit files later in the run (daemon-reload again): the CI of an earlier session caught a
    // restart that ran before systemd had read the new drop-in.
    reset_slave_to_fresh();
    let (code, first) = json_run(&["apply"]);
    assert_eq!(code, Some(0), "{first}");
    assert!(first["hosts"]["lab-slave-1"]["changed"].as_u64().unwrap() >= 3, "{first}");
    assert_eq!(
        on_host("lab-slave-1", "systemctl is-enabled docker-cleanup.timer; systemctl is-active docker-cleanup.timer"),
        "enabled\nactive\n"
    );
    let (code, second) = json_run(&["apply"]);
    assert_eq!(code, Some(0));
    for (host, r) in second["hosts"].as_object().unwrap() {
        assert_eq!(r["changed"], 0, "{host} changed on re-apply: {r}");
        assert_eq!(r["failed"], 0, "{host}: {r}");
    }
}

#[test]
fn drift_is_reported_exactly_and_fixed() {
    let _s = serial();
    assert_eq!(json_run(&["apply"]).0, Some(0));
    on_host("lab-slave-1", "echo '# edited by hand' >> /etc/systemd/system/docker-cleanup.service; systemctl stop docker-cleanup.timer");
    let (code, plan) = json_run(&["plan"]);
    assert_eq!(code, Some(0));
    assert_eq!(changed_ids(&plan, "lab-slave-1"), ["file /etc/systemd/system/docker-cleanup.service", "service docker-cleanup.timer"]);
    let resources = plan["hosts"]["lab-slave-1"]["resources"].as_array().unwrap();
    let file = resources.iter().find(|r| r["id"] == "file /etc/systemd/system/docker-cleanup.service").unwrap();
    assert!(file["diff"].as_str().unwrap().contains("-# edited by hand"), "plan shows the diff: {file}");
    assert_eq!(on_host("lab-slave-1", "systemctl is-active docker-cleanup.timer || true"), "inactive\n", "plan changed nothing");
    let (code, applied) = json_run(&["apply"]);
    assert_eq!(code, Some(0));
    assert_eq!(changed_ids(&applied, "lab-slave-1"), ["file /etc/systemd/system/docker-cleanup.service", "service docker-cleanup.timer"]);
    assert!(!on_host("lab-slave-1", "cat /etc/systemd/system/docker-cleanup.service").contains("edited by hand"));
    let (_, clean) = json_run(&["plan"]);
    assert_eq!(clean["hosts"]["lab-slave-1"]["changed"], 0, "{clean}");
}

#[test]
fn check_mode_leaves_hosts_byte_for_byte_unchanged() {
    let _s = serial();
    unconverge_slave();
    on_host("lab-slave-1", "printf 'old\\n' > /etc/systemd/system/docker-cleanup.service");
    let before = on_host("lab-slave-1", FINGERPRINT);
    let (code, check) = json_run(&["apply", "--check"]);
    assert_eq!(code, Some(0));
    assert!(check["hosts"]["lab-slave-1"]["changed"].as_u64().unwrap() >= 3, "{check}");
    let (code, _) = json_run(&["plan"]);
    assert_eq!(code, Some(0));
    assert_eq!(on_host("lab-slave-1", FINGERPRINT), before, "--check and plan must not touch the host");
}

#[test]
fn a_host_with_sshd_down_fails_alone() {
    let _s = serial();
    unconverge_slave();
    // Stop sshd and end every session, including master connections kept from earlier runs.
    on_host("lab-master-1", "systemctl stop ssh; pkill -x sshd || true");
    let _restore = SshdDown("lab-master-1");
    let (code, doc) = json_run(&["apply"]);
    assert_eq!(code, Some(1), "a failed host makes the run fail: {doc}");
    let master = &doc["hosts"]["lab-master-1"];
    assert_eq!(master["failed"], 1, "{master}");
    assert!(master["error"].as_str().unwrap().contains("cannot connect to lab-master-1"), "{master}");
    let slave = &doc["hosts"]["lab-slave-1"];
    assert_eq!(slave["failed"], 0, "{slave}");
    assert!(slave["changed"].as_u64().unwrap() >= 3, "the other host converged: {slave}");
}

#[test]
fn a_second_apply_on_a_locked_host_changes_nothing_and_says_why() {
    let _s = serial();
    unconverge_slave();
    // Another run holds the per-host lock for a few seconds.
    let lab = Path::new(env!("CARGO_MANIFEST_DIR")).join("lab/lab");
    let mut holder = Command::new("bash")
        .arg(lab)
        // Holds the lock until its stdin closes: however long the apply takes to get there.
        .args(["docker", "exec", "-i", "lab-slave-1", "flock", "/run/provision.lock", "sh", "-c", "echo locked; read x"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the holder really has the lock: a fixed sleep raced with a slow first `docker exec`.
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(holder.stdout.as_mut().unwrap()), &mut line).unwrap();
    assert_eq!(line, "locked\n");
    let (code, doc) = json_run(&["apply"]);
    assert_eq!(code, Some(1));
    let slave = &doc["hosts"]["lab-slave-1"];
    assert!(slave["error"].as_str().unwrap().contains("another provision run is applying to this host"), "{slave}");
    assert_eq!(
        on_host("lab-slave-1", "ls /etc/systemd/system/docker-cleanup.service 2>/dev/null || echo missing"),
        "missing\n",
        "nothing was changed"
    );
    drop(holder.stdin.take());
    let _ = holder.wait_with_output();
    assert_eq!(json_run(&["apply"]).0, Some(0), "once the lock is free, apply converges");
}
