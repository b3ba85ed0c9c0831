//! The engine and the SSH transport: the host lock's permissions, never following a symlinked
//! file the probe reads, host key trust on first use, a missing SSH key named, overlapping
//! applies, verbosity levels.

use crate::harness::*;

/// Runs sh on a lab host directly (docker exec, not provision); returns (success, output).
fn on_host(host: &str, script: &str) -> (bool, String) {
    let o = on_host_raw(host, script);
    (o.status.success(), format!("{}{}", text(&o.stdout), text(&o.stderr)))
}

#[test]
fn the_host_lock_is_root_only_so_no_user_can_block_applies() {
    use provision::engine::{Desired, Step};
    use provision::resources::file::File;
    let _s = serial();
    // As an older provision left it: world-readable, so any user could open it and hold the flock.
    assert!(on_host("lab-slave-1", "touch /run/provision.lock; chmod 644 /run/provision.lock; rm -f /tmp/provision-lock-test").0);
    let desired = Desired { steps: vec![Step::new(File::new("/tmp/provision-lock-test", "x\n"))], handlers: vec![] };
    let r = run_desired_with("lab-slave-1", desired, false);
    assert_eq!((r.changed, r.failed), (1, 0), "{r:?}");
    assert_eq!(on_host("lab-slave-1", "stat -c '%a %U' /run/provision.lock"), (true, "600 root\n".into()));
    let (held, out) = on_host("lab-slave-1", "su core -s /bin/sh -c 'flock -n /run/provision.lock true'");
    assert!(!held && out.contains("Permission denied"), "an unprivileged user cannot take the lock: {out}");
    on_host("lab-slave-1", "rm -f /tmp/provision-lock-test");
}

#[test]
fn a_symlinked_config_toml_is_never_followed() {
    let _s = serial();
    // The runner container can write config.toml's directory: it plants a link to a root-only file.
    let (ok, out) = on_host(
        "lab-master-1",
        "mkdir -p /etc/gitlab-runner; if [ -e /etc/gitlab-runner/config.toml ] && [ ! -L /etc/gitlab-runner/config.toml ]; then \
         mv /etc/gitlab-runner/config.toml /etc/gitlab-runner/config.toml.keep; fi; ln -sfn /etc/shadow /etc/gitlab-runner/config.toml",
    );
    assert!(ok, "{out}");
    let o = provision(&["plan", "--limit", "master", "--format", "json"]);
    let (_, restored) = on_host(
        "lab-master-1",
        "rm -f /etc/gitlab-runner/config.toml; if [ -e /etc/gitlab-runner/config.toml.keep ]; then \
         mv /etc/gitlab-runner/config.toml.keep /etc/gitlab-runner/config.toml; fi; echo restored",
    );
    assert_eq!(restored, "restored\n");
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}{}", text(&o.stderr));
    assert!(out.contains("refusing to read /etc/gitlab-runner/config.toml: it is a symbolic link"), "{out}");
    assert!(!out.contains("root:") && !text(&o.stderr).contains("root:"), "nothing of /etc/shadow reached this machine: {out}");
}

#[test]
fn accept_new_trusts_an_unknown_key_once_and_refuses_a_changed_one() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let kh = dir.path().join("known_hosts");
    std::fs::write(&kh, "").unwrap();
    let file = format!("ssh_known_hosts_file={}", kh.display());
    // Strict (the default): refused, and the message suggests trust on first use.
    let o = provision(&["-e", &file, "debug", "exec", "lab-slave-1", "--", "true"]);
    assert_eq!(o.status.code(), Some(1));
    let out = text(&o.stdout);
    assert!(out.contains("ssh_host_key_checking: accept-new"), "{out}");
    // accept-new: connects and records the key.
    let o = provision(&["-e", &file, "-e", "ssh_host_key_checking=accept-new", "debug", "exec", "lab-slave-1", "--", "true"]);
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    assert!(!std::fs::read_to_string(&kh).unwrap().trim().is_empty(), "the key is recorded (hashed or not)");
    let o = provision(&["-e", &file, "debug", "exec", "lab-slave-1", "--", "true"]);
    assert!(o.status.success(), "strict checking now knows the key: {}", text(&o.stdout));
    // A changed key (another host's key recorded for it) is refused even with accept-new, and the
    // message never suggests turning checking off.
    let key = dir.path().join("k");
    let o = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f", key.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success());
    let public = std::fs::read_to_string(dir.path().join("k.pub")).unwrap();
    let other: Vec<&str> = public.split_whitespace().take(2).collect();
    // Another file: a master connection kept from the runs above would not check the key again.
    let changed = dir.path().join("known_hosts.changed");
    std::fs::write(&changed, format!("[127.0.0.1]:{} {}\n", ssh_port("lab-slave-1"), other.join(" "))).unwrap();
    let file = format!("ssh_known_hosts_file={}", changed.display());
    let o = provision(&["-e", &file, "-e", "ssh_host_key_checking=accept-new", "debug", "exec", "lab-slave-1", "--", "true"]);
    assert_eq!(o.status.code(), Some(1));
    let out = text(&o.stdout);
    assert!(out.contains("host key CHANGED"), "{out}");
    assert!(!out.contains("ssh_host_key_checking"), "no advice to turn checking off for a changed key: {out}");
    let o = provision(&["-e", "ssh_host_key_checking=maybe", "debug", "exec", "lab-slave-1", "--", "true"]);
    assert_eq!(o.status.code(), Some(2), "a bad value is bad input: {}", text(&o.stderr));
}

#[test]
fn a_missing_ssh_key_file_is_named() {
    let _s = serial();
    let o = provision(&["-e", "ssh_key=/nonexistent/id_ed25519", "debug", "exec", "lab-slave-1", "--", "true"]);
    assert_eq!(o.status.code(), Some(1));
    let out = text(&o.stdout);
    assert!(out.contains("the SSH key file /nonexistent/id_ed25519 (ssh_key) does not exist"), "{out}");
}

fn spawn_apply() -> std::process::Child {
    let inv = lab_inventory().to_str().unwrap().to_string();
    Command::new(env!("CARGO_BIN_EXE_provision"))
        .args(["-i", &inv, "apply", "--limit", "slave", "--format", "json"])
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn overlapping_applies_never_act_on_stale_facts() {
    let _s = serial();
    for delay_ms in [0, 500, 1000, 3000] {
        unconverge_slave();
        let first = spawn_apply();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let second = spawn_apply();
        let mut outcomes = Vec::new();
        for child in [first, second] {
            let o = child.wait_with_output().unwrap();
            let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o.stderr)));
            outcomes.push((o.status.code(), doc["hosts"]["lab-slave-1"].clone()));
        }
        assert!(outcomes.iter().any(|(code, _)| *code == Some(0)), "{delay_ms} ms: one run converges: {outcomes:?}");
        for (code, slave) in &outcomes {
            if *code != Some(0) {
                let error = slave["error"].as_str().unwrap_or_default();
                assert!(
                    error.contains("the host changed since it was read")
                        || error.contains("another provision run is applying to this host"),
                    "{delay_ms} ms: the other run stops without acting on stale facts: {slave}"
                );
                assert_eq!(slave["failed"], 1, "{delay_ms} ms: nothing of it failed but the host: {slave}");
            }
        }
        let o = provision(&["apply", "--limit", "slave", "--format", "json"]);
        let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(doc["hosts"]["lab-slave-1"]["changed"], 0, "{delay_ms} ms: converged once: {doc}");
    }
}

#[test]
fn verbose_levels_show_phases_with_timings_and_scripts_without_file_contents() {
    let _s = serial();
    let o = provision(&["-v", "plan", "--limit", "slave", "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let log = text(&o.stderr);
    for phase in ["connected in", "facts gathered in", "planned in"] {
        assert!(log.contains(phase) && log.contains("lab-slave-1"), "-v shows `{phase}` per host: {log}");
    }
    assert!(!log.contains("probe script"), "scripts only at -vvv: {log}");
    let o = provision(&["-vvv", "plan", "--limit", "slave", "--format", "json"]);
    let log = text(&o.stderr);
    assert!(log.contains("probe script:") && log.contains("/var/lib/provision/pending-handlers"), "{log}");
    unconverge_slave();
    let o = provision(&["-vvv", "apply", "--limit", "slave", "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let log = text(&o.stderr);
    assert!(log.contains("apply script:") && log.contains("line(s) of content not shown"), "file contents are left out: {log}");
}

/// A deferred step whose resolution (after the probe, before the apply) lets "another run"
/// apply to the host: it leaves its own mark where every apply does.
struct AnotherRunAppliesMeanwhile;

impl provision::engine::Deferred for AnotherRunAppliesMeanwhile {
    fn reads(&self) -> String {
        "/tmp/provision-generation-test.read".into()
    }
    fn resolve<'a>(
        &'a self,
        _current: Option<&'a [u8]>,
        _check: bool,
    ) -> provision::engine::BoxFuture<'a, Result<provision::engine::Resolved, String>> {
        Box::pin(async {
            // A mark no run left before (the probe may have read an earlier test's).
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
            let (ok, out) = on_host("lab-slave-1", &format!("printf 'another-run-{nanos}\\n' > /var/lib/provision/generation"));
            assert!(ok, "{out}");
            let file = provision::resources::file::File::new("/tmp/provision-generation-test", "x\n");
            Ok(provision::engine::Resolved { resource: Box::new(file), notes: vec![] })
        })
    }
    fn finish(&self, _applied: Option<bool>) -> provision::engine::BoxFuture<'_, Vec<String>> {
        Box::pin(async { Vec::new() })
    }
}

#[test]
fn an_apply_after_another_run_changed_the_host_changes_nothing() {
    use provision::engine::{Desired, Step};
    use provision::resources::file::File;
    let _s = serial();
    assert!(on_host("lab-slave-1", "rm -f /tmp/provision-generation-test").0);
    let placeholder = File::new("/tmp/provision-generation-test", "x\n");
    let desired = Desired { steps: vec![Step::deferred(placeholder, std::sync::Arc::new(AnotherRunAppliesMeanwhile))], handlers: vec![] };
    let r = run_desired_with("lab-slave-1", desired, false);
    let error = r.error.as_ref().map(ToString::to_string).unwrap_or_default();
    assert!(error.starts_with("the host changed since it was read"), "{r:?}");
    assert_eq!((r.changed, r.skipped), (0, 1), "{r:?}");
    assert_eq!(on_host("lab-slave-1", "ls /tmp/provision-generation-test 2>/dev/null || echo absent"), (true, "absent\n".into()));
}
