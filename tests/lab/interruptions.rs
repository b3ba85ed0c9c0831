//! Ctrl-C and lost connections in the middle of an apply. Both are timed against a slow
//! step: the dind image (hundreds of MB) uploaded and loaded again after it is removed.

use crate::harness::*;
use std::time::{Duration, Instant};

fn remove_dind_image() {
    assert_eq!(json_run(&["apply"]).0, Some(0));
    on_host("lab-slave-1", "docker rm -f dind >/dev/null; docker rmi docker:dind >/dev/null");
}

fn wait_on_slave(check: &str, what: &str) {
    let start = Instant::now();
    while on_host("lab-slave-1", &format!("if {check}; then echo yes; else echo no; fi")) != "yes\n" {
        assert!(start.elapsed() < Duration::from_secs(60), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn spawn_apply() -> std::process::Child {
    let inv = lab_inventory().to_str().unwrap().to_string();
    Command::new(env!("CARGO_BIN_EXE_provision"))
        .args(["-i", &inv, "apply", "--format", "json"])
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn no_leftovers() {
    assert_eq!(
        on_host(
            "lab-slave-1",
            "find /etc /var/tmp /var/lib/provision -name '*provision-tmp*' -o -name 'provision-image-*' -o -path '/var/lib/provision/uploads/*' | wc -l"
        ),
        "0\n",
        "no temp file or upload is left behind"
    );
    assert_eq!(on_host("lab-slave-1", "flock -n /run/provision.lock echo free"), "free\n", "the lock is released");
}

#[test]
fn ctrl_c_during_an_upload_changes_nothing_and_says_so() {
    let _s = serial();
    remove_dind_image();
    let child = spawn_apply();
    wait_on_slave("ls /var/lib/provision/uploads/*.image.tar >/dev/null 2>&1", "the upload to start");
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("interrupted: finishing what hosts are already applying"), "{}", text(&o.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let slave = &doc["hosts"]["lab-slave-1"];
    assert_eq!(slave["error"], "interrupted (Ctrl-C): nothing was changed on this host", "{slave}");
    assert_eq!(on_host("lab-slave-1", "docker ps -aq --filter name=dind | wc -l"), "0\n", "nothing was applied");
    no_leftovers();
    assert_eq!(json_run(&["apply"]).0, Some(0), "the next apply converges");
}

#[test]
fn a_connection_lost_mid_apply_fails_the_host_and_the_next_apply_converges() {
    let _s = serial();
    remove_dind_image();
    unconverge_slave();
    let child = spawn_apply();
    // The apply script is running once `docker load` is: cut every ssh session now.
    wait_on_slave("pgrep -f '[d]ocker load' >/dev/null", "the image load to start");
    let _restore = SshdDown("lab-slave-1");
    // The sessions ("sshd: root [priv]", "sshd: root@notty"), not the listener.
    on_host("lab-slave-1", "pkill -KILL -f '[s]shd: root' || true");
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let slave = doc["hosts"]["lab-slave-1"].to_string();
    assert!(slave.contains("outcome unknown") || slave.contains("connection"), "{slave}");
    assert_eq!(doc["hosts"]["lab-master-1"]["failed"], 0, "the other host is unaffected");
    // Managed files are whole: each is what it was or what it should be, never partial.
    let json = on_host("lab-slave-1", "cat /etc/docker/daemon.json");
    assert!(serde_json::from_str::<serde_json::Value>(&json).is_ok(), "{json}");
    // The cut run's script goes on under the host lock until its next output fails (SIGPIPE);
    // an apply started before then is told the host is locked, which is right but not what
    // this test is about.
    wait_on_slave("flock -n /run/provision.lock true", "the cut run's script to end");
    let (code, doc) = json_run(&["apply"]);
    assert_eq!(code, Some(0), "the next apply converges: {doc}");
    no_leftovers();
    let (_, again) = json_run(&["apply"]);
    assert_eq!(again["hosts"]["lab-slave-1"]["changed"], 0, "{again}");
}
