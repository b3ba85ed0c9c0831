//! The binary as users run it: flags, help, exit codes, output formats, redaction.

use std::process::{Command, Output};

fn provision(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_provision"))
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("PROVISION_INVENTORY")
        .output()
        .expect("run provision")
}

fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).into_owned()
}

#[test]
fn version_and_help_for_every_subcommand() {
    let v = provision(&["--version"]);
    assert!(v.status.success());
    assert!(text(&v.stdout).starts_with("provision "), "{}", text(&v.stdout));
    for (sub, says) in [
        ("apply", "Converge hosts"),
        ("plan", "changing nothing"),
        ("inventory", "resolved hosts"),
        ("certs", "certificates"),
        ("debug", "Troubleshoot"),
        ("cloud", "AWS"),
    ] {
        let o = provision(&[sub, "--help"]);
        assert!(o.status.success(), "{sub} --help");
        assert!(text(&o.stdout).contains(says), "{sub} --help should say {says:?}:\n{}", text(&o.stdout));
    }
    let o = provision(&["--help"]);
    for flag in ["--inventory", "--extra-vars", "--limit", "--verbose", "--color"] {
        assert!(text(&o.stdout).contains(flag), "global flag {flag} documented");
    }
}

#[test]
fn bad_usage_exits_2() {
    assert_eq!(provision(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(provision(&["--color", "sometimes", "inventory"]).status.code(), Some(2));
}

#[test]
fn yaml_and_ini_examples_print_the_same_inventory() {
    let yaml = provision(&["-i", "inventory.example.yaml", "inventory", "--format", "json"]);
    let ini = provision(&["-i", "inventory.example.ini", "inventory", "--format", "json"]);
    assert!(yaml.status.success(), "{}", text(&yaml.stderr));
    assert!(ini.status.success(), "{}", text(&ini.stderr));
    let y: serde_json::Value = serde_json::from_slice(&yaml.stdout).unwrap();
    let i: serde_json::Value = serde_json::from_slice(&ini.stdout).unwrap();
    assert_eq!(y, i);
    assert_eq!(y["hosts"]["ci-slave"]["vars"]["private_address"], "10.0.1.11");
    assert_eq!(y["hosts"]["ci-slave"]["vars"]["docker_tls_port"], 2376, "group_vars/slave.yaml applies");
    assert_eq!(y["groups"]["master"]["hosts"][0], "ci-master");
}

#[test]
fn inventory_one_host_and_limit() {
    let o = provision(&["-i", "inventory.example.yaml", "inventory", "--host", "ci-master", "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["groups"][0], "master");
    assert_eq!(doc["vars"]["ansible_host"], "203.0.113.10", "Ansible's names are shown as written");
    let o = provision(&["-i", "inventory.example.yaml", "--limit", "slave", "inventory", "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["hosts"].as_object().unwrap().keys().collect::<Vec<_>>(), ["ci-slave"]);
    let o = provision(&["-i", "inventory.example.yaml", "inventory", "--host", "ci-mastr"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("did you mean `ci-master`"), "{}", text(&o.stderr));
    let o = provision(&["-i", "inventory.example.yaml", "--limit", "nothing-like-it", "inventory"]);
    assert_eq!(o.status.code(), Some(2), "a limit matching no host is bad input");
}

#[test]
fn broken_inventory_names_file_line_and_column() {
    for (file, place) in [
        ("tests/fixtures/bad/indent.yaml", "indent.yaml:7:8"),
        ("tests/fixtures/bad/unknown_key.yaml", "unknown_key.yaml:2:3"),
        ("tests/fixtures/bad/wrong_type.yaml", "wrong_type.yaml:5:17"),
        ("tests/fixtures/bad/undefined_var.yaml", "undefined_var.yaml:3:17"),
    ] {
        let o = provision(&["-i", file, "inventory"]);
        assert_eq!(o.status.code(), Some(2), "{file}");
        assert!(text(&o.stderr).contains(place), "{file}: expected {place} in\n{}", text(&o.stderr));
        assert!(o.stdout.is_empty(), "nothing printed on stdout for bad input");
    }
}

#[test]
fn extra_vars_override_and_secrets_never_print() {
    let secret = "glpat-SuperSecret0123456789";
    let o = Command::new(env!("CARGO_BIN_EXE_provision"))
        .args([
            "-i",
            "inventory.example.yaml",
            "-e",
            "docker_tls_port=2377",
            "-e",
            "{\"banner\": \"token is {{ gitlab_api_token }}\"}",
            "-vvv",
            "inventory",
            "--format",
            "json",
        ])
        .env("GITLAB_TOKEN", secret)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["hosts"]["ci-slave"]["vars"]["docker_tls_port"], 2377, "-e wins, converted to the type of a known var");
    assert_eq!(doc["hosts"]["ci-slave"]["vars"]["gitlab_api_token"], "***");
    assert_eq!(doc["hosts"]["ci-slave"]["vars"]["banner"], "***", "a template reading a secret is secret");
    assert!(!out.contains(secret) && !text(&o.stderr).contains(secret), "the token leaked");
    let human = Command::new(env!("CARGO_BIN_EXE_provision"))
        .args(["-i", "inventory.example.yaml", "inventory"])
        .env("GITLAB_TOKEN", secret)
        .output()
        .unwrap();
    assert!(!text(&human.stdout).contains(secret));
    assert!(
        text(&human.stdout).contains("gitlab_api_token: '***'") || text(&human.stdout).contains("gitlab_api_token: \"***\""),
        "{}",
        text(&human.stdout)
    );
}

#[test]
fn missing_default_inventory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_provision"))
        .arg("inventory")
        .current_dir(dir.path())
        .env_remove("PROVISION_INVENTORY")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("no inventory.yaml or inventory.yml"), "{}", text(&o.stderr));
    std::fs::write(dir.path().join("inventory.yml"), "all:\n  hosts:\n    h1:\n").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_provision")).args(["inventory", "--format", "json"]).current_dir(dir.path()).output().unwrap();
    assert!(o.status.success(), "falls back to inventory.yml: {}", text(&o.stderr));
}

/// A project in a temporary directory: a master and a slave nobody listens for (desired states
/// are built before any host is contacted), and `group_vars/all.yaml`.
fn project(all_vars: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("inventory.yaml"),
        "all:\n  children:\n    master:\n      hosts:\n        m1: {ssh_host: 127.0.0.1, ssh_port: 1}\n    slave:\n      hosts:\n        s1: {ssh_host: 127.0.0.1, ssh_port: 1, private_address: 10.9.9.9}\n",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("group_vars")).unwrap();
    std::fs::write(dir.path().join("group_vars/all.yaml"), all_vars).unwrap();
    dir
}

fn plan_in(dir: &tempfile::TempDir) -> Output {
    let inv = dir.path().join("inventory.yaml");
    provision(&["-i", inv.to_str().unwrap(), "plan", "--limit", "master"])
}

#[test]
fn bad_runner_entries_are_input_errors_that_point_at_the_var() {
    let cases = [
        (
            "gitlab_api_token: glpat-x\nrunners:\n  - name: a\n    tagz: [docker]\n",
            "runners[0]: unknown key `tagz`",
            "did you mean `tags`?",
        ),
        ("gitlab_api_token: glpat-x\nrunners:\n  - tags: [docker]\n", "runners[0]: `name` is required", ""),
        ("gitlab_api_token: glpat-x\nrunners:\n  - name: a\n  - name: a\n", "a second runner named `a`", ""),
        ("gitlab_api_token: glpat-x\nrunners:\n  - name: a\n    runner_type: group\n", "a group runner needs `group_id`", ""),
        ("gitlab_api_token: glpat-x\nrunners:\n  - name: a\n    url: gitlab.example.com\n", "must start with https://", ""),
        ("gitlab_api_token: glpat-x\nrunners:\n  - name: a\n    limit: lots\n", "runners[0].limit must be a whole number", ""),
        ("runners:\n  - name: a\n", "runner `a` has no way to register with GitLab", "gitlab_api_token"),
        ("gitlab_api_token: glpat-x\nrunner_install: snap\n", "runner_install must be `container` or `package`", ""),
    ];
    for (vars, message, help) in cases {
        let dir = project(vars);
        let o = plan_in(&dir);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{vars}: {err}");
        assert!(err.contains(message), "{vars}: expected {message:?} in\n{err}");
        assert!(err.contains(help), "{vars}: expected {help:?} in\n{err}");
        assert!(err.contains("group_vars/all.yaml"), "the error names the file: {err}");
        assert!(!err.contains("glpat-x"), "no token in errors: {err}");
    }
}

#[test]
fn a_runner_naming_an_unknown_slave_is_an_error() {
    let dir = project("gitlab_api_token: glpat-x\nrunners:\n  - name: a\n    slave: s2\n");
    let o = plan_in(&dir);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("runners[0].slave: no host `s2` in the inventory"), "{}", text(&o.stderr));
}

#[test]
fn plan_of_a_slave_does_not_need_the_masters_token() {
    let dir = project("gitlab_api_token: \"{{ env('PROVISION_TEST_SURELY_UNSET') }}\"\nrunners:\n  - name: a\nssh_connect_timeout: 2\n");
    let inv = dir.path().join("inventory.yaml");
    let o = provision(&["-i", inv.to_str().unwrap(), "plan", "--limit", "slave"]);
    let all = format!("{}{}", text(&o.stdout), text(&o.stderr));
    assert_eq!(o.status.code(), Some(1), "past the vars, the unreachable slave fails: {all}");
    assert!(!all.contains("PROVISION_TEST_SURELY_UNSET") && all.contains("s1"), "{all}");
    let o = plan_in(&dir);
    assert_eq!(o.status.code(), Some(2), "the master's runner needs it: {}", text(&o.stderr));
    assert!(text(&o.stderr).contains("PROVISION_TEST_SURELY_UNSET"), "{}", text(&o.stderr));
}
