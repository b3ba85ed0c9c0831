use crate::harness::*;
use std::io::BufRead;
use std::time::{Duration, Instant};

#[test]
fn logs_by_role_and_by_name() {
    let _s = serial();
    assert_eq!(json_run(&["apply"]).0, Some(0));
    let o = provision(&["debug", "logs", "slave", "-n", "5"]);
    assert!(o.status.success(), "{}", text(&o.stdout));
    let out = text(&o.stdout);
    assert!(out.contains("==> docker.service <==") && out.contains("dockerd["), "the slave's role logs: the docker journal\n{out}");
    let o = provision(&["debug", "logs", "slave", "registry", "dind", "cleanup", "dind-cleanup", "-n", "3"]);
    assert!(o.status.success(), "{}", text(&o.stdout));
    let out = text(&o.stdout);
    for h in ["==> registry-cache <==", "==> dind <==", "==> docker-cleanup.service <==", "==> docker-cleanup-dind.service <=="] {
        assert!(out.contains(h), "{h} in\n{out}");
    }
    // The registry's own log lines (its startup line, or the access lines of the health checks
    // that poll /v2/ on every run), not a journal.
    assert!(out.contains("go.version="), "the registry container's own log: {out}");
    let o = provision(&["debug", "logs", "slave", "no-such-thing"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stdout).contains("no container or systemd unit named no-such-thing"));
}

#[test]
fn follow_streams_new_lines_until_ctrl_c_and_leaves_nothing_behind() {
    let _s = serial();
    assert_eq!(json_run(&["apply"]).0, Some(0));
    let mut child = Command::new(env!("CARGO_BIN_EXE_provision"))
        .args(["-i", lab_inventory().to_str().unwrap(), "debug", "logs", "slave", "cleanup", "-f", "-n", "0"])
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    std::thread::sleep(Duration::from_secs(2));
    // A run that starts after -f did: its lines can only come from following.
    on_host("lab-slave-1", "systemctl start docker-cleanup.service");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            let done = line.contains("Finished docker-cleanup.service");
            seen.push(line);
            if done {
                break;
            }
        }
    }
    assert!(
        seen.iter().any(|l| l.starts_with("lab-slave-1 docker-cleanup.service | ") && l.contains("Finished")),
        "a line produced after -f started: {seen:?}"
    );
    let sent = Instant::now();
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(sent.elapsed() < Duration::from_secs(5), "Ctrl-C must end -f promptly");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "Ctrl-C is the normal end of -f: {status:?}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(on_host("lab-slave-1", "pgrep -x journalctl | wc -l"), "0\n", "the follower ended on the host");
}

#[test]
fn ps_lists_host_and_dind_containers() {
    let _s = serial();
    assert_eq!(json_run(&["apply"]).0, Some(0));
    let o = provision(&["debug", "ps", "slave"]);
    assert!(o.status.success());
    let out = text(&o.stdout);
    assert!(out.contains("registry-cache") && out.contains("dind ") && out.contains("NAMES"), "{out}");
    on_host("lab-slave-1", "docker -H unix:///var/run/provision-dind/docker.sock run -d --name ps-probe busybox:1 sleep 30 >/dev/null");
    let o = provision(&["debug", "ps", "slave", "--dind"]);
    on_host("lab-slave-1", "docker -H unix:///var/run/provision-dind/docker.sock rm -f ps-probe >/dev/null");
    let out = text(&o.stdout);
    assert!(o.status.success() && out.contains("ps-probe") && !out.contains("registry-cache"), "{out}");
}

#[test]
fn config_shows_files_with_secrets_redacted() {
    let _s = serial();
    let secret = "Cfg-Passw0rd-visible?";
    assert_eq!(json_run(&["-e", "registry_remote_username=ci", "-e", &format!("registry_remote_password={secret}"), "apply"]).0, Some(0));
    let o = provision(&["debug", "config", "slave"]);
    assert_eq!(json_run(&["apply"]).0, Some(0));
    let out = text(&o.stdout);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("==> /etc/docker/daemon.json <==") && out.contains("\"tlsverify\": true"), "{out}");
    assert!(out.contains("==> /etc/registry-cache/config.yml <==") && out.contains("password: \"***\""), "{out}");
    assert!(!out.contains(secret), "the password read from the host's file is redacted");
}

#[test]
fn cleanup_runs_the_service_and_shows_that_run() {
    let _s = serial();
    assert_eq!(json_run(&["apply"]).0, Some(0));
    for args in [vec!["debug", "cleanup", "slave"], vec!["debug", "cleanup", "slave", "--dind"]] {
        let o = provision(&args);
        let out = text(&o.stdout);
        assert!(o.status.success(), "{args:?}: {out}");
        assert!(out.contains("Total reclaimed space") && out.contains("result: success"), "{args:?}: {out}");
    }
}

#[test]
fn a_target_matching_nothing_is_bad_input() {
    let _s = serial();
    for sub in [
        &["debug", "logs", "nowhere"][..],
        &["debug", "ps", "nowhere"],
        &["debug", "config", "nowhere"],
        &["debug", "cleanup", "nowhere"],
        &["debug", "exec", "nowhere", "--", "true"],
    ] {
        let o = provision(sub);
        assert_eq!(o.status.code(), Some(2), "{sub:?}");
        assert!(text(&o.stderr).contains("`nowhere` matches no host or group"), "{sub:?}: {}", text(&o.stderr));
    }
}
