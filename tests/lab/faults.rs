//! Faults and bad input against the lab: what breaks must break cleanly.

use crate::harness::*;

#[test]
fn a_daemon_json_docker_refuses_is_rolled_back_and_docker_keeps_running() {
    let _s = serial();
    assert_eq!(json_run(&["apply"]).0, Some(0));
    let good = on_host("lab-slave-1", "sha256sum /etc/docker/daemon.json");
    let bad = r#"{"docker_daemon_config": {"no-such-option": true}}"#;
    let (code, doc) = json_run(&["-e", bad, "apply", "--limit", "slave"]);
    assert_eq!(code, Some(1), "{doc}");
    let slave = doc["hosts"]["lab-slave-1"].to_string();
    assert!(slave.contains("docker.service failed to start with the new configuration"), "{slave}");
    assert!(slave.contains("/etc/docker/daemon.json"), "says what it restored: {slave}");
    assert!(slave.contains("running again with it"), "{slave}");
    assert!(slave.contains("no-such-option"), "dockerd's own message is shown: {slave}");
    assert_eq!(on_host("lab-slave-1", "sha256sum /etc/docker/daemon.json"), good, "the previous daemon.json is back");
    assert_eq!(on_host("lab-slave-1", "systemctl is-active docker"), "active\n");
    assert_eq!(on_host("lab-slave-1", "ls /etc/docker/ | grep -c provision- || true"), "0\n", "no leftovers");
    // The registry cache and dind came back with docker (restart policy).
    assert_eq!(json_run(&["apply"]).0, Some(0));
    let (_, again) = json_run(&["apply"]);
    assert_eq!(again["hosts"]["lab-slave-1"]["changed"], 0, "{again}");
}

#[test]
fn a_unit_systemd_rejects_is_never_installed() {
    let _s = serial();
    assert_eq!(json_run(&["apply"]).0, Some(0));
    let before = on_host("lab-slave-1", "sha256sum /etc/systemd/system/docker-cleanup.timer");
    let (code, doc) = json_run(&["-e", r#"{"cleanup_on_calendar": "every tuesday-ish"}"#, "apply", "--limit", "slave"]);
    assert_eq!(code, Some(1), "{doc}");
    let slave = doc["hosts"]["lab-slave-1"].to_string();
    assert!(slave.contains("Failed to parse calendar specification"), "systemd's own words: {slave}");
    // Since issue 16.12 the probe checks the calendar (`check cleanup_on_calendar`), so the
    // apply stops before writing; the unit's own `systemd-analyze verify` stays behind it.
    assert!(slave.contains("was refused (not written)") || slave.contains("check cleanup_on_calendar"), "{slave}");
    assert_eq!(on_host("lab-slave-1", "sha256sum /etc/systemd/system/docker-cleanup.timer"), before, "the old timer stays");
    assert_eq!(on_host("lab-slave-1", "systemctl is-active docker-cleanup.timer"), "active\n");
    assert_eq!(json_run(&["apply"]).0, Some(0));
}

#[test]
fn shell_metacharacters_in_values_reach_hosts_only_quoted() {
    let _s = serial();
    on_host("lab-slave-1", "rm -f /tmp/pwned*");
    on_host("lab-master-1", "rm -f /tmp/pwned*");
    let filter = "until=1h $(touch /tmp/pwned1); touch /tmp/pwned2 `touch /tmp/pwned3`";
    let runners = r#"{"runners": [{"name": "x$(touch /tmp/pwned4); touch /tmp/pwned5", "tags": ["'; touch /tmp/pwned6; '"]}]}"#;
    let filter_var = serde_json::json!({ "cleanup_prune_filter": filter }).to_string();
    // The default runner goes away: deleting it from GitLab needs --yes without a terminal.
    let (code, doc) = json_run(&["-e", &filter_var, "-e", runners, "apply", "--yes"]);
    assert_eq!(code, Some(0), "{doc}");
    let unit = on_host("lab-slave-1", "cat /etc/systemd/system/docker-cleanup.service");
    assert!(unit.contains(filter), "the value is written literally: {unit}");
    // Running the service passes the value to docker as one argument: no shell runs it.
    let _ = provision(&["-e", &filter_var, "debug", "cleanup", "slave"]);
    let toml = on_host("lab-master-1", "cat /etc/gitlab-runner/config.toml");
    assert!(toml.contains(r#"name = "x$(touch /tmp/pwned4); touch /tmp/pwned5""#), "{toml}");
    for h in ["lab-slave-1", "lab-master-1"] {
        assert_eq!(on_host(h, "ls /tmp | grep -c pwned || true"), "0\n", "nothing ran on {h}");
    }
    assert_eq!(json_run(&["apply", "--yes"]).0, Some(0));
}

#[test]
fn secrets_never_show_in_any_output_mode() {
    let _s = serial();
    let lab = lab_inventory().parent().unwrap();
    let password = "Upstr3am-Passw0rd-grep";
    let pat = "glpat-lab-create-runner";
    let key_lines: Vec<String> = ["certs/client/lab-master-1-key.pem", "certs/ca-key.pem", "certs/server/lab-slave-1-key.pem"]
        .iter()
        .map(|p| std::fs::read_to_string(lab.join(p)).unwrap().lines().nth(1).unwrap().to_string())
        .collect();
    on_host("lab-master-1", "rm -f /etc/gitlab-runner/config.toml; docker rm -f gitlab-runner >/dev/null 2>&1 || true");
    let creds = ["-e", "registry_remote_username=ci", "-e"];
    let pw = format!("registry_remote_password={password}");
    let mut outputs = Vec::new();
    for args in [
        vec!["plan"],
        vec!["apply", "--diff", "-vvv"],
        vec!["apply", "--diff", "--format", "json", "-vvv"],
        vec!["plan", "--format", "json"],
        vec!["inventory"],
        vec!["inventory", "--format", "json"],
        vec!["debug", "config", "all"],
    ] {
        let mut all: Vec<&str> = creds.to_vec();
        all.push(&pw);
        all.extend(args.iter().copied());
        let o = provision(&all);
        outputs.push((args.join(" "), format!("{}{}", text(&o.stdout), text(&o.stderr))));
    }
    let token = crate::runner::last_token();
    let mut secrets = vec![password.to_string(), pat.to_string(), token];
    secrets.extend(key_lines);
    for (mode, out) in &outputs {
        for s in &secrets {
            assert!(!out.contains(s.as_str()), "`{mode}` printed a secret ({}...):\n{out}", &s[..6]);
        }
    }
    assert!(outputs[1].1.contains("token = \"***\""), "the runner's config diff is there, redacted: {}", outputs[1].1);
    assert_eq!(json_run(&["apply"]).0, Some(0));
}

#[test]
fn a_changed_host_key_is_refused_unless_checking_is_off() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k");
    let o = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f", key.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success());
    let public = std::fs::read_to_string(dir.path().join("k.pub")).unwrap();
    let port = ssh_port("lab-slave-1");
    let kh = dir.path().join("known_hosts");
    std::fs::write(&kh, format!("[127.0.0.1]:{port} {}", public.split_whitespace().take(2).collect::<Vec<_>>().join(" "))).unwrap();
    host_key_is_refused_unless_checking_is_off(kh.to_str().unwrap());
}
