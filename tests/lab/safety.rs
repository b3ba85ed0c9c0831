//! Operator safety (issue 16): `plan` reports what `apply` would then fail on, docker restarts
//! are announced with the jobs they affect, and dind is recreated only after its jobs finish.

use crate::harness::*;

const SLAVE: &str = "lab-slave-1";

#[test]
fn plan_reports_a_bad_calendar_that_apply_would_fail_on_and_nothing_changes() {
    let _s = serial();
    let (code, doc) = json_run(&["apply", "--limit", "slave"]);
    assert_eq!(code, Some(0), "{doc}");
    let units = "sha256sum /etc/systemd/system/docker-cleanup.timer /etc/systemd/system/docker-cleanup.service";
    let before = on_host(SLAVE, units);
    for command in ["plan", "apply"] {
        let (code, doc) = json_run(&["-e", "cleanup_on_calendar=hourlyy", command, "--limit", "slave"]);
        assert_eq!(code, Some(1), "{command}: {doc}");
        let slave = doc["hosts"][SLAVE].to_string();
        assert!(slave.contains("Failed to parse calendar specification"), "{command} shows systemd's own message: {slave}");
        assert!(slave.contains("cleanup_on_calendar"), "{command} names the var: {slave}");
        assert_eq!(doc["hosts"][SLAVE]["changed"], 0, "{command}: {doc}");
        assert_eq!(on_host(SLAVE, units), before, "{command} changed no unit");
    }
    let (code, doc) = json_run(&["plan", "--limit", "slave"]);
    assert_eq!(code, Some(0), "a good calendar passes the check: {doc}");
}

/// A stand-in for a CI job: a `runner-*` container on the slave's host daemon that mounts the
/// dind socket directory, as the runner's job containers do.
const JOB: &str = "runner-safety-test-project-1-concurrent-0-build";

fn start_job() {
    on_host(
        SLAVE,
        &format!(
            "docker rm -f {JOB} >/dev/null 2>&1; docker run -d --name {JOB} -v /var/run/provision-dind:/var/run/dind --entrypoint sleep registry:2 900 >/dev/null"
        ),
    );
}

fn stop_job() {
    on_host(SLAVE, &format!("docker rm -f {JOB} >/dev/null 2>&1 || true"));
}

fn handler<'a>(doc: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    let resources = doc["hosts"][SLAVE]["resources"].as_array().expect("resources");
    resources.iter().find(|r| r["id"] == id).unwrap_or_else(|| panic!("no {id}: {doc}"))
}

#[test]
fn a_docker_restart_is_announced_with_the_jobs_it_affects_and_live_restore_keeps_them() {
    let _s = serial();
    assert_eq!(json_run(&["apply", "--limit", "slave"]).0, Some(0));
    start_job();
    let debug = r#"{"docker_daemon_config": {"debug": true}}"#;
    let (code, plan) = json_run(&["-e", debug, "plan", "--limit", "slave"]);
    assert_eq!(code, Some(0), "{plan}");
    let note = handler(&plan, "handler restart docker")["changes"].to_string();
    assert!(note.contains("1 CI job(s) (runner-*)") && note.contains("live-restore keeps them running"), "plan says it: {note}");
    let (code, applied) = json_run(&["-e", debug, "apply", "--limit", "slave"]);
    assert_eq!(code, Some(0), "{applied}");
    let h = handler(&applied, "handler restart docker");
    assert_eq!(h["status"], "changed", "{applied}");
    assert!(h["changes"].to_string().contains("1 CI job(s)"), "apply says it too: {h}");
    assert_eq!(on_host(SLAVE, &format!("docker inspect -f '{{{{.State.Running}}}}' {JOB}")), "true\n", "the job survived the restart");
    // Back to the lab's config.
    let (code, back) = json_run(&["apply", "--limit", "slave"]);
    stop_job();
    assert_eq!(code, Some(0), "{back}");
}

#[test]
fn recreating_dind_waits_for_the_jobs_using_it_unless_forced() {
    let _s = serial();
    assert_eq!(json_run(&["apply", "--limit", "slave"]).0, Some(0));
    let dind_id = || on_host(SLAVE, "docker inspect -f '{{.Id}}' dind");
    let before = dind_id();
    start_job();
    let change = r#"{"dind_extra_args": ["--debug"], "restart_drain_timeout": 6}"#;
    let (code, doc) = json_run(&["-e", change, "apply", "--limit", "slave"]);
    let slave = doc["hosts"][SLAVE].to_string();
    assert_eq!(code, Some(1), "refused while a job uses dind: {doc}");
    assert!(slave.contains("still use dind after 6s") && slave.contains("--force-restart"), "{slave}");
    assert_eq!(dind_id(), before, "dind was not recreated");
    let (code, doc) = json_run(&["-e", change, "apply", "--limit", "slave", "--force-restart"]);
    assert_eq!(code, Some(0), "--force-restart recreates at once: {doc}");
    assert_ne!(dind_id(), before, "recreated");
    stop_job();
    let (code, back) = json_run(&["apply", "--limit", "slave"]);
    assert_eq!(code, Some(0), "back to the lab's config: {back}");
}

/// The apply script's progress arrives while it runs, not at its end: a dind recreation waits
/// for a job that only ends once the test has seen (in `-v` output) the step that waits.
#[test]
fn each_apply_step_is_reported_while_the_script_still_runs() {
    use std::io::{BufRead, BufReader};
    let _s = serial();
    assert_eq!(json_run(&["apply", "--limit", "slave"]).0, Some(0));
    start_job();
    let inv = lab_dir().join(DEFAULT);
    let change = r#"{"dind_extra_args": ["--debug"], "restart_drain_timeout": 300}"#;
    let mut child = Command::new(env!("CARGO_BIN_EXE_provision"))
        .arg("-i")
        .arg(&inv)
        .args(["-v", "-e", change, "apply", "--limit", "slave"])
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run provision");
    // Read on a thread: an ssh master the run starts may keep the pipe open after it exits.
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || BufReader::new(stderr).lines().map_while(Result::ok).try_for_each(|l| tx.send(l)));
    let mut seen = Vec::new();
    let mut running_when_seen = None;
    let status = loop {
        match rx.recv_timeout(std::time::Duration::from_millis(500)) {
            Ok(line) => {
                if running_when_seen.is_none() && line.contains("applying step") && line.contains("container dind") {
                    running_when_seen = Some(child.try_wait().expect("try_wait").is_none());
                    // The job ends: the drain is over and the recreation goes on.
                    stop_job();
                }
                seen.push(line);
            }
            Err(_) => {
                if let Some(status) = child.try_wait().expect("try_wait") {
                    seen.extend(rx.try_iter());
                    break status;
                }
            }
        }
    };
    stop_job();
    let (code, back) = json_run(&["apply", "--limit", "slave"]);
    assert_eq!(code, Some(0), "back to the lab's config: {back}");
    assert_eq!(running_when_seen, Some(true), "the step was reported while the apply still ran:\n{}", seen.join("\n"));
    assert!(status.success(), "the apply went on once the job ended:\n{}", seen.join("\n"));
    let steps: Vec<&String> = seen.iter().filter(|l| l.contains("applying step")).collect();
    assert!(steps.iter().all(|l| l.contains('/')), "step k/n: {steps:?}");
}
