//! The laptop side of operator safety, through the binary: plan creates no certificates,
//! destructive `certs` actions ask first, key hygiene, GitLab URL checks, completions and man
//! page. No host is reached: the inventory points at a closed port on loopback.

use std::path::Path;
use std::process::{Command, Output};

const INVENTORY: &str = "all:
  vars:
    ssh_host: 127.0.0.1
    ssh_port: 1
    ssh_connect_timeout: 1
    gitlab_url: https://gitlab.example.com
    gitlab_api_token: glpat-not-used
  children:
    master:
      hosts:
        m1: {}
        m2: {}
    slave:
      hosts:
        s1: {}
";

fn provision(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_provision"))
        .current_dir(dir)
        .args(["-i", "inventory.yaml"])
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("PROVISION_INVENTORY")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run provision")
}

fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).into_owned()
}

/// Error text with miette's line wrapping undone.
fn flat(o: &[u8]) -> String {
    text(o).split_whitespace().filter(|w| *w != "|").collect::<Vec<_>>().join(" ")
}

fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("inventory.yaml"), INVENTORY).unwrap();
    dir
}

#[test]
fn plan_creates_no_certificates_and_says_what_apply_would() {
    let dir = project();
    let o = provision(dir.path(), &["plan"]);
    let out = text(&o.stdout);
    assert!(!dir.path().join("certs").exists(), "plan wrote certs/: {out}{}", text(&o.stderr));
    assert!(out.contains("would create") && out.contains("ca") && out.contains("client m1"), "{out}");
    // With certificates in place, a changed address would re-issue: plan says so, files stay.
    assert_eq!(provision(dir.path(), &["certs", "generate"]).status.code(), Some(0));
    let server = dir.path().join("certs/server/s1.pem");
    let before = std::fs::read(&server).unwrap();
    let o = provision(dir.path(), &["-e", "private_address=10.9.9.9", "apply", "--check"]);
    assert!(text(&o.stdout).contains("would re-issue") && text(&o.stdout).contains("10.9.9.9"), "{}", text(&o.stdout));
    assert_eq!(std::fs::read(&server).unwrap(), before, "--check changed nothing");
}

#[test]
fn certs_rotate_asks_first_and_rotates_one_master_alone() {
    let dir = project();
    assert_eq!(provision(dir.path(), &["certs", "generate"]).status.code(), Some(0));
    let certs = dir.path().join("certs");
    let read = |p: &str| std::fs::read(certs.join(p)).unwrap();
    let (m1, m2, s1) = (read("client/m1.pem"), read("client/m2.pem"), read("server/s1.pem"));
    assert_ne!(read("client/m1-key.pem"), read("client/m2-key.pem"), "one client key per master");
    let o = provision(dir.path(), &["certs", "rotate"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(flat(&o.stderr).contains("pass --yes; nothing was re-issued"), "{}", text(&o.stderr));
    assert_eq!(read("client/m1.pem"), m1);
    let o = provision(dir.path(), &["-l", "m1", "certs", "rotate", "--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("re-issued client m1: rotation requested"), "{}", text(&o.stdout));
    assert_ne!(read("client/m1.pem"), m1);
    assert_eq!((read("client/m2.pem"), read("server/s1.pem")), (m2, s1), "only m1's certificate changed");
}

#[test]
fn certs_status_warns_about_a_ca_key_others_can_read() {
    use std::os::unix::fs::PermissionsExt;
    let dir = project();
    assert_eq!(provision(dir.path(), &["certs", "generate"]).status.code(), Some(0));
    assert_eq!(provision(dir.path(), &["certs", "status"]).status.code(), Some(0));
    let key = dir.path().join("certs/ca-key.pem");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = provision(dir.path(), &["certs", "status"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stdout).contains("readable by others (mode 0644)"), "{}", text(&o.stdout));
}

#[test]
fn an_http_gitlab_url_needs_the_opt_in() {
    let dir = project();
    let o = provision(dir.path(), &["-e", "gitlab_url=http://gitlab.example.com", "plan"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(flat(&o.stderr).contains("set `gitlab_allow_http: true`"), "{}", text(&o.stderr));
}

#[test]
fn completions_and_man_page() {
    let dir = project();
    for shell in ["bash", "zsh", "fish"] {
        let o = provision(dir.path(), &["completions", shell]);
        assert_eq!(o.status.code(), Some(0), "{shell}");
        let script = text(&o.stdout);
        assert!(script.contains("provision") && script.contains("rotate") && script.contains("--limit"), "{shell}: {script}");
    }
    let o = provision(dir.path(), &["man"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(text(&o.stdout).starts_with(".ie") || text(&o.stdout).contains(".TH provision"), "{}", text(&o.stdout));
    assert_eq!(provision(dir.path(), &["completions", "tcsh"]).status.code(), Some(2));
}
