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
    assert_eq!(doc["vars"]["address"], "203.0.113.10");
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
        ("tests/fixtures/bad/wrong_type.yaml", "wrong_type.yaml:5:13"),
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
