//! Health after apply and on every run, against the Debian 12 lab slave (`lab-slave-1`): a
//! dind whose dockerd refuses a flag, a registry cache that cannot start with its config, a
//! stopped TLS daemon, and a container that starts crash-looping between two runs are each
//! reported `failed` with what their log said. Needs root, like every lab test.

use crate::harness::*;

const INV: &str = "inventory.yaml";
const SLAVE: &str = "lab-slave-1";

/// The resource `id` of `host` in a JSON report.
fn resource<'a>(doc: &'a serde_json::Value, host: &str, id: &str) -> &'a serde_json::Value {
    let all = doc["hosts"][host]["resources"].as_array().unwrap_or_else(|| panic!("no resources for {host}: {doc}"));
    all.iter().find(|r| r["id"] == id).unwrap_or_else(|| panic!("no {id} in {doc}"))
}

/// Runs `undo` on `host` (unless empty), then converges it (`limit`) with the lab's own vars
/// again, even when a test fails.
struct Reconverge {
    host: &'static str,
    limit: &'static str,
    undo: String,
}

impl Reconverge {
    /// The slave, after `undo`.
    fn slave(undo: &str) -> Self {
        Reconverge { host: SLAVE, limit: "slave", undo: undo.to_string() }
    }
}

impl Drop for Reconverge {
    fn drop(&mut self) {
        if !self.undo.is_empty() {
            let _ = on_host_raw(self.host, &self.undo);
        }
        let o = provision_in(INV, &["apply", "--limit", self.limit]);
        if !o.status.success() && !std::thread::panicking() {
            panic!("{} did not converge back: {}{}", self.host, text(&o.stdout), text(&o.stderr));
        }
    }
}

#[test]
fn a_broken_dind_is_reported_failed_with_its_log() {
    let _s = serial();
    let _back = Reconverge::slave("");
    let (code, doc) = json_run_in(INV, &["-e", r#"{"dind_extra_args": ["--no-such-flag"]}"#, "apply", "--limit", "slave"]);
    assert_eq!(code, Some(1), "{doc}");
    let dind = resource(&doc, SLAVE, "container dind");
    assert_eq!(dind["status"], "failed", "{dind}");
    assert_eq!(dind["health"]["status"], "failed", "{dind}");
    assert!(dind["health"]["evidence"].as_str().unwrap_or("").contains("no-such-flag"), "dockerd's own words: {dind}");
    let engine = resource(&doc, SLAVE, "check dind engine");
    assert_eq!(engine["status"], "failed", "{engine}");
}

#[test]
fn a_registry_cache_that_cannot_start_with_its_config_is_reported_failed() {
    let _s = serial();
    let _back = Reconverge::slave("");
    // The proxy asks its remote for auth challenges when it starts: nothing answers there.
    let (code, doc) = json_run_in(INV, &["-e", "registry_remote_url=http://127.0.0.1:9", "apply", "--limit", "slave"]);
    assert_eq!(code, Some(1), "{doc}");
    let cache = resource(&doc, SLAVE, "container registry-cache");
    assert_eq!(cache["status"], "failed", "{cache}");
    let evidence = cache["health"]["evidence"].as_str().unwrap_or("");
    assert!(evidence.contains("127.0.0.1:9"), "the registry's log says why: {cache}");
}

#[test]
fn a_stopped_tls_daemon_is_reported_with_its_journal() {
    let _s = serial();
    let _back = Reconverge::slave("");
    assert_eq!(json_run_in(INV, &["apply", "--limit", "slave"]).0, Some(0));
    on_host(SLAVE, "systemctl stop docker.socket docker.service");
    let (_, plan) = json_run_in(INV, &["plan", "--limit", "slave"]);
    let tls = resource(&plan, SLAVE, "check docker TLS on port 2376");
    assert_eq!(tls["health"]["status"], "failed", "{tls}");
    assert!(tls["health"]["why"].as_str().unwrap().contains("2376"), "{tls}");
    assert!(tls["health"]["evidence"].as_str().unwrap_or("").contains("Stopped"), "the journal: {tls}");
    assert_eq!(on_host(SLAVE, "systemctl is-active docker.service || true"), "inactive\n", "plan changed nothing");
    on_host(SLAVE, "systemctl start docker.service");
    let (code, doc) = json_run_in(INV, &["apply", "--limit", "slave"]);
    assert_eq!(code, Some(0), "{doc}");
    assert_eq!(resource(&doc, SLAVE, "check docker TLS on port 2376")["health"]["status"], "ok", "{doc}");
    // From this machine, with the client certificate from certs/, it answers `version`.
    let o = docker_from_laptop(&["version", "--format", "{{.Server.Os}}"]);
    assert_eq!(text(&o.stdout), "linux\n", "{}", text(&o.stderr));
}

#[test]
fn a_container_crash_looping_since_the_last_run_is_reported_by_a_no_op_run() {
    let _s = serial();
    // dockerd cannot listen where a directory sits in place of its socket.
    let fix = "docker stop dind >/dev/null; rmdir /var/run/provision-dind/docker.sock 2>/dev/null; docker start dind >/dev/null";
    let _back = Reconverge::slave(fix);
    assert_eq!(json_run_in(INV, &["apply", "--limit", "slave"]).0, Some(0));
    on_host(
        SLAVE,
        "docker stop dind >/dev/null; rm -f /var/run/provision-dind/docker.sock; mkdir /var/run/provision-dind/docker.sock; docker start dind >/dev/null; sleep 5",
    );
    let (code, plan) = json_run_in(INV, &["plan", "--limit", "slave"]);
    assert_eq!(code, Some(1), "{plan}");
    let dind = resource(&plan, SLAVE, "container dind");
    assert_eq!(dind["status"], "failed", "{dind}");
    assert!(dind["health"]["evidence"].as_str().unwrap_or("").contains("docker.sock"), "its log: {dind}");
    // apply restarts it once; it still cannot start, so it stays failed.
    let (code, doc) = json_run_in(INV, &["apply", "--limit", "slave"]);
    assert_eq!(code, Some(1), "{doc}");
    let dind = resource(&doc, SLAVE, "container dind");
    assert_eq!(dind["changes"][0], "restarted (unhealthy)", "{dind}");
    assert_eq!(dind["status"], "failed", "{dind}");
}

/// Puts curl back even when the test fails.
struct RestoreCurl;

impl Drop for RestoreCurl {
    fn drop(&mut self) {
        let _ = on_host_raw(SLAVE, "[ -e /usr/bin/curl.lab-off ] && mv /usr/bin/curl.lab-off /usr/bin/curl");
    }
}

#[test]
fn without_curl_the_docker_cli_reads_the_same_state_and_health() {
    let _s = serial();
    assert_eq!(json_run_in(INV, &["apply", "--limit", "slave"]).0, Some(0));
    let (_, with) = json_run_in(INV, &["plan", "--limit", "slave"]);
    on_host(SLAVE, "mv /usr/bin/curl /usr/bin/curl.lab-off");
    let _restore = RestoreCurl;
    let (code, without) = json_run_in(INV, &["plan", "--limit", "slave"]);
    assert_eq!(code, Some(0), "{without}");
    let summary = |doc: &serde_json::Value| -> Vec<String> {
        doc["hosts"][SLAVE]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| format!("{} {} {}", r["id"], r["status"], r["health"]["status"]))
            .collect()
    };
    assert_eq!(summary(&without), summary(&with), "the Engine API and the CLI agree");
    assert_eq!(without["hosts"][SLAVE]["changed"], 0, "{without}");
}

const MASTER: &str = "lab-master-1";
/// The runner container's main process, seen from the master (the lab's gitlab-runner
/// stand-in re-reads config.toml when it changes and logs `Configuration loaded`, as
/// gitlab-runner does).
const RUNNER_PID: &str = "docker inspect -f '{{.State.Pid}}' gitlab-runner";

#[test]
fn a_runner_that_does_not_load_its_new_config_is_reported_until_it_does() {
    let _s = serial();
    assert_eq!(json_run_in(INV, &["apply", "--limit", "master"]).0, Some(0));
    let _back = Reconverge { host: MASTER, limit: "master", undo: format!("kill -CONT $({RUNNER_PID})") };
    // A hung runner: its container still runs, its process reads nothing.
    on_host(MASTER, &format!("kill -STOP $({RUNNER_PID})"));
    let change = "runner_concurrent=7";
    let (code, doc) = json_run_in(INV, &["-e", change, "apply", "--limit", "master"]);
    assert_eq!(code, Some(1), "{doc}");
    let check = resource(&doc, MASTER, "check gitlab-runner loaded config.toml");
    assert_eq!(check["status"], "failed", "{check}");
    let why = check["health"]["why"].as_str().unwrap_or("");
    assert!(why.contains("has not loaded /etc/gitlab-runner/config.toml since it last changed"), "{check}");
    assert_eq!(resource(&doc, MASTER, "container gitlab-runner")["status"], "ok", "the container itself runs: {doc}");
    // Resumed, it reads the file; the next run (nothing to change) says so.
    on_host(MASTER, &format!("kill -CONT $({RUNNER_PID})"));
    on_host(
        MASTER,
        "for i in $(seq 100); do docker logs --since \"$(stat -c %.9Y /etc/gitlab-runner/config.toml)\" gitlab-runner 2>&1 | grep -q 'Configuration loaded' && exit 0; sleep 0.2; done; exit 1",
    );
    let (code, doc) = json_run_in(INV, &["-e", change, "apply", "--limit", "master"]);
    assert_eq!(code, Some(0), "{doc}");
    let check = resource(&doc, MASTER, "check gitlab-runner loaded config.toml");
    assert_eq!((check["status"].as_str(), check["health"]["status"].as_str()), (Some("ok"), Some("ok")), "{check}");
    assert_eq!(doc["hosts"][MASTER]["changed"], 0, "{doc}");
}
