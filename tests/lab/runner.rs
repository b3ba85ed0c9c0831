//! The runner role against the lab master. GitLab cannot run here: registration goes to the
//! lab's test double (lab/fake-gitlab.py, started by `lab/lab up`), which implements the
//! documented runner endpoints and records every call. The runner image is a stand-in with
//! gitlab-runner's contract (lab/runner/gitlab-runner).

use crate::harness::*;

fn gitlab(method: &str, path: &str) -> serde_json::Value {
    let url = format!("http://127.0.0.1:{}{path}", gitlab_port());
    let o = Command::new("curl").args(["-fsS", "-X", method, &url]).output().unwrap();
    assert!(o.status.success(), "{method} {path}: {}", text(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null)
}

/// The port of the lab's GitLab double on this machine (the inventory's `lab_gitlab_port`).
fn gitlab_port() -> &'static str {
    static PORT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PORT.get_or_init(|| host_var("lab-master-1", "lab_gitlab_port"))
}

fn calls(of: &str) -> usize {
    gitlab("GET", "/lab/state")["calls"].as_array().unwrap().iter().filter(|c| c.as_str() == Some(of)).count()
}

fn runners() -> Vec<serde_json::Value> {
    gitlab("GET", "/lab/state")["runners"].as_array().unwrap().clone()
}

/// The runner token the lab's GitLab double handed out last (secret).
pub(crate) fn last_token() -> String {
    runners().last().and_then(|r| r["token"].as_str()).unwrap_or("no-runner-yet").to_string()
}

/// The master as provision never saw it, and a GitLab that knows no runner.
fn fresh_master() {
    on_host(
        "lab-master-1",
        "docker rm -f gitlab-runner >/dev/null 2>&1; rm -f /etc/gitlab-runner/config.toml; \
         if dpkg -s gitlab-runner >/dev/null 2>&1; then apt-get purge -y -q gitlab-runner >/dev/null; fi",
    );
    gitlab("POST", "/lab/reset");
}

fn config_toml() -> toml_edit::DocumentMut {
    on_host("lab-master-1", "cat /etc/gitlab-runner/config.toml").parse().unwrap()
}

#[test]
fn registers_once_runs_with_the_config_and_reaches_the_slave_over_tls() {
    let _s = serial();
    fresh_master();
    let o = provision(&["apply", "--diff"]);
    let out = format!("{}{}", text(&o.stdout), text(&o.stderr));
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert_eq!(calls("POST /api/v4/user/runners"), 1, "{out}");
    let created = runners();
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["description"], "lab-master-1-docker");
    assert_eq!(created[0]["tag_list"], "docker,lab");
    let token = created[0]["token"].as_str().unwrap().to_string();
    assert!(out.contains("runner `lab-master-1-docker` registered"), "{out}");
    assert!(out.contains("+token = \"***\""), "config.toml's diff is shown with the token redacted: {out}");
    assert!(!out.contains(&token), "the token never shows: {out}");

    let doc = config_toml();
    let r = &doc["runners"].as_array_of_tables().unwrap().get(0).unwrap().clone();
    assert_eq!(r["token"].as_str(), Some(token.as_str()));
    let host = r["docker"]["host"].as_str().unwrap().to_string();
    let certs = r["docker"]["tls_cert_path"].as_str().unwrap().to_string();
    let slave = host_var("lab-slave-1", "private_address");
    assert!(in_lab_subnet(&slave) && host == format!("tcp://{slave}:2376"), "{host}");
    assert_eq!(on_host("lab-master-1", "stat -c %a /etc/gitlab-runner/config.toml"), "600\n");
    // The runner container runs, with the config it was given, stoppable gracefully.
    let inspect = on_host(
        "lab-master-1",
        "docker inspect -f '{{.State.Running}} {{.Config.Image}} {{.Config.StopSignal}} {{range .Mounts}}{{.Source}}:{{.Destination}} {{end}}' gitlab-runner",
    );
    assert_eq!(inspect, "true provision-lab/gitlab-runner:1 SIGQUIT /etc/gitlab-runner:/etc/gitlab-runner \n");
    let mut logs = String::new();
    for _ in 0..20 {
        logs = on_host("lab-master-1", "docker logs gitlab-runner 2>&1");
        if logs.contains("Configuration loaded  runners=1") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    assert!(logs.contains("Configuration loaded  runners=1"), "{logs}");
    // From the master, with the certificates config.toml points at, the slave's daemon answers.
    let tls = on_host(
        "lab-master-1",
        &format!(
            "docker --tlsverify --tlscacert {certs}/ca.pem --tlscert {certs}/cert.pem --tlskey {certs}/key.pem -H {host} version -f '{{{{.Server.Os}}}}'"
        ),
    );
    assert_eq!(tls, "linux\n");

    // A second apply keeps the runner: it verifies the token and creates nothing.
    let (code, second) = json_run(&["apply"]);
    assert_eq!(code, Some(0));
    for (h, r) in second["hosts"].as_object().unwrap() {
        assert_eq!(r["changed"], 0, "{h} changed on re-apply: {r}");
    }
    assert_eq!(calls("POST /api/v4/user/runners"), 1, "two applies created exactly one runner");
    assert!(calls("POST /api/v4/runners/verify") >= 1);
    assert_eq!(runners().len(), 1);
}

#[test]
fn a_revoked_token_is_replaced_once_and_a_removed_runner_is_deleted() {
    let _s = serial();
    fresh_master();
    assert_eq!(json_run(&["apply", "--limit", "master"]).0, Some(0));
    let first = runners()[0]["token"].as_str().unwrap().to_string();
    gitlab("POST", "/lab/revoke");
    let (code, doc) = json_run(&["apply", "--limit", "master"]);
    assert_eq!(code, Some(0), "{doc}");
    assert_eq!(calls("POST /api/v4/user/runners"), 2, "the revoked runner was re-created, once");
    let second = config_toml()["runners"][0]["token"].as_str().unwrap().to_string();
    assert_ne!(first, second);
    assert_eq!(json_run(&["apply", "--limit", "master"]).1["hosts"]["lab-master-1"]["changed"], 0);
    assert_eq!(calls("POST /api/v4/user/runners"), 2);

    // A second runner, then back to one: the removed one is deleted from GitLab.
    let two = r#"{"runners": [{"name": "lab-master-1-docker", "tags": ["docker", "lab"], "dind": true},
                               {"name": "extra", "executor": "shell", "extra": {"output_limit": 8192}}]}"#;
    let (code, doc) = json_run(&["-e", two, "apply", "--limit", "master"]);
    assert_eq!(code, Some(0), "{doc}");
    assert_eq!(calls("POST /api/v4/user/runners"), 3, "only the new runner was created");
    let doc = config_toml();
    let sections = doc["runners"].as_array_of_tables().unwrap();
    assert_eq!(sections.len(), 2);
    assert_eq!(sections.get(1).unwrap()["output_limit"].as_integer(), Some(8192), "extra keys land in the section");
    // Deleting from GitLab asks first: without a terminal, only with --yes.
    let (code, doc) = json_run(&["apply", "--limit", "master"]);
    assert_eq!(code, Some(1), "{doc}");
    assert!(doc.to_string().contains("pass --yes"), "{doc}");
    assert_eq!(calls("DELETE /api/v4/runners"), 0, "{doc}");
    assert_eq!(config_toml()["runners"].as_array_of_tables().unwrap().len(), 2, "config.toml left as it is");
    let (code, doc) = json_run(&["apply", "--yes", "--limit", "master"]);
    assert_eq!(code, Some(0), "{doc}");
    assert_eq!(calls("DELETE /api/v4/runners"), 1, "{doc}");
    let changes = doc["hosts"]["lab-master-1"]["resources"].to_string();
    assert!(changes.contains("runner `extra` deleted from"), "{changes}");
    assert_eq!(config_toml()["runners"].as_array_of_tables().unwrap().len(), 1);
    assert_eq!(runners().len(), 2, "the revoked one (still listed, revoked) and the live one");
}

#[test]
fn gitlab_errors_fail_the_host_clearly_and_leave_nothing_registered() {
    let _s = serial();
    fresh_master();
    // Unreachable GitLab: a clear message, config.toml and the container are not touched.
    let (code, doc) = json_run(&["-e", "gitlab_url=http://127.0.0.1:1", "apply", "--limit", "master"]);
    assert_eq!(code, Some(1));
    let text = doc["hosts"]["lab-master-1"].to_string();
    assert!(text.contains("cannot reach GitLab at http://127.0.0.1:1"), "{text}");
    assert_eq!(on_host("lab-master-1", "ls /etc/gitlab-runner/config.toml 2>/dev/null || echo none"), "none\n");
    // A token without create_runner: GitLab's 403 is shown, and nothing was created.
    let (code, doc) = json_run(&["-e", "gitlab_api_token=glpat-wrong-scope", "apply", "--limit", "master"]);
    assert_eq!(code, Some(1));
    let text = doc["hosts"]["lab-master-1"].to_string();
    assert!(text.contains("GitLab answered 403 to POST /api/v4/user/runners") && !text.contains("glpat-wrong-scope"), "{text}");
    assert!(runners().is_empty());
}

#[test]
fn rolling_the_image_recreates_only_the_runner() {
    let _s = serial();
    assert_eq!(json_run(&["apply"]).0, Some(0));
    on_host("lab-master-1", "docker rmi provision-lab/gitlab-runner:2 >/dev/null 2>&1 || true");
    let slave_before = on_host("lab-slave-1", FINGERPRINT);
    let (code, doc) = json_run(&["-e", "runner_image=provision-lab/gitlab-runner:2", "apply", "--limit", "master"]);
    assert_eq!(code, Some(0), "{doc}");
    assert!(doc["hosts"].get("lab-slave-1").is_none(), "--limit master leaves the slave out");
    assert_eq!(changed_ids(&doc, "lab-master-1"), ["image provision-lab/gitlab-runner:2", "container gitlab-runner"]);
    assert_eq!(
        on_host("lab-master-1", "docker inspect -f '{{.Config.Image}} {{.State.Running}}' gitlab-runner"),
        "provision-lab/gitlab-runner:2 true\n"
    );
    let (_, again) = json_run(&["-e", "runner_image=provision-lab/gitlab-runner:2", "apply", "--limit", "master"]);
    assert_eq!(again["hosts"]["lab-master-1"]["changed"], 0, "{again}");
    assert_eq!(on_host("lab-slave-1", FINGERPRINT), slave_before, "nothing on the slave was touched");
    // Back to the lab's image: the old runner got SIGQUIT and stopped on its own.
    let since = on_host("lab-master-1", "date +%s.%N");
    let (code, doc) = json_run(&["apply", "--limit", "master"]);
    assert_eq!(code, Some(0), "{doc}");
    let signals = on_host(
        "lab-master-1",
        &format!(
            "docker events --since {} --until \"$(date +%s.%N)\" --filter container=gitlab-runner --filter event=kill --format '{{{{.Actor.Attributes.signal}}}}'",
            since.trim()
        ),
    );
    assert_eq!(signals, "3\n", "the old runner got SIGQUIT (3) once, and was not killed after it");
}

#[test]
fn autoscaling_runners_render_machine_and_autoscaler_sections() {
    let _s = serial();
    let runners = r#"{"runners": [
        {"name": "lab-machine", "executor": "docker+machine",
         "machine": {"region": "eu-west-1", "vpc_id": "vpc-1", "subnet_id": "subnet-1", "spot": true, "idle_count": 2}},
        {"name": "lab-fleet", "executor": "docker-autoscaler", "autoscaler": {"asg_name": "ci-runners", "region": "eu-west-1"}}]}"#;
    let o = provision(&["-e", runners, "plan", "--limit", "master"]);
    let out = text(&o.stdout);
    assert!(o.status.success(), "{out}{}", text(&o.stderr));
    for line in [
        "+[runners.machine]",
        "+IdleCount = 2",
        "+MachineDriver = \"amazonec2\"",
        "\"amazonec2-tags=provisioned-by,provision,provision:runner,lab-machine\"",
        "\"amazonec2-request-spot-instance=true\"",
        "+[runners.autoscaler]",
        "+plugin = \"aws\"",
        "+[runners.autoscaler.plugin_config]",
        "+name = \"ci-runners\"",
        "+policy = [{ idle_count = 1, idle_time = \"20m0s\" }]",
    ] {
        assert!(out.contains(line), "{line} in\n{out}");
    }
    assert!(!out.contains("+host = \"tcp://"), "autoscaled jobs do not use the slave's daemon: {out}");
    // Without the ids the cloud inventory provides, the error says where they come from.
    let o = provision(&["-e", r#"{"runners": [{"name": "m", "executor": "docker+machine"}]}"#, "plan", "--limit", "master"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("provision cloud apply"), "{}", text(&o.stderr));
}

#[test]
fn package_install_from_a_local_deb_then_back_to_the_container() {
    let _s = serial();
    fresh_master();
    let args = ["-e", "runner_install=package", "-e", "runner_package_file=state/packages/gitlab-runner_1.0.0-1_all.deb"];
    let mut all = args.to_vec();
    all.extend(["apply", "--limit", "master"]);
    let (code, doc) = json_run(&all);
    assert_eq!(code, Some(0), "{doc}");
    assert_eq!(
        on_host("lab-master-1", "systemctl is-active gitlab-runner; docker ps -aq --filter name=gitlab-runner | wc -l"),
        "active\n0\n"
    );
    let (_, again) = json_run(&all);
    assert_eq!(again["hosts"]["lab-master-1"]["changed"], 0, "{again}");
    assert_eq!(calls("POST /api/v4/user/runners"), 1);
    let o = provision(&[args[0], args[1], "debug", "logs", "master", "-n", "20"]);
    assert!(text(&o.stdout).contains("==> gitlab-runner.service <=="), "{}", text(&o.stdout));
    // Back to the container: the package's service is stopped first, the token kept.
    let (code, doc) = json_run(&["apply", "--limit", "master"]);
    assert_eq!(code, Some(0), "{doc}");
    assert_eq!(
        on_host("lab-master-1", "systemctl is-active gitlab-runner || true; docker ps -q --filter name=gitlab-runner | wc -l"),
        "inactive\n1\n"
    );
    assert_eq!(calls("POST /api/v4/user/runners"), 1, "switching install method keeps the registration");
    on_host("lab-master-1", "apt-get purge -y -q gitlab-runner >/dev/null");
}
