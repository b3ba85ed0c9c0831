//! The lab itself and the SSH transport: the inventory, `debug exec` on every host, sudo,
//! host key checking, an unreachable host.

use crate::harness::*;

#[test]
fn lab_inventory_has_master_and_slave_with_private_addresses() {
    let _s = serial();
    let o = provision(&["inventory", "--format", "json"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["groups"]["master"]["hosts"], serde_json::json!(["lab-master-1"]));
    assert_eq!(doc["groups"]["slave"]["hosts"], serde_json::json!(["lab-slave-1"]));
    let addr = doc["hosts"]["lab-slave-1"]["vars"]["private_address"].as_str().unwrap();
    assert!(in_lab_subnet(addr), "private address on the lab network: {addr}");
}

#[test]
fn exec_reaches_every_host_over_ssh() {
    let _s = serial();
    let o = provision(&["debug", "exec", "all", "--", "hostname"]);
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("lab-master-1 | rc=0 >>\nlab-master-1\n"), "{out}");
    assert!(out.contains("lab-slave-1  | rc=0 >>\nlab-slave-1\n"), "{out}");
}

/// A command that only connects needs no role var: a GitLab token that cannot be rendered here
/// (it names a var nobody set) stops `apply` on the master, never `debug exec`.
#[test]
fn exec_needs_no_unrelated_secret() {
    let _s = serial();
    let token = r#"{"gitlab_api_token": "{{ provision_lab_token_never_set }}"}"#;
    let o = provision(&["-e", token, "debug", "exec", "all", "--", "true"]);
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    let o = provision(&["-e", token, "plan", "--limit", "master"]);
    assert_eq!(o.status.code(), Some(2), "where the token is used it is still an error: {}", text(&o.stderr));
}

#[test]
fn exec_reports_each_host_exit_code_and_fails_overall() {
    let _s = serial();
    let o = provision(&["debug", "exec", "all", "--", "sh", "-c", "test \"$(hostname)\" = lab-master-1"]);
    assert_eq!(o.status.code(), Some(1), "one host failed");
    let out = text(&o.stdout);
    assert!(out.contains("lab-master-1 | rc=0"), "{out}");
    assert!(out.contains("lab-slave-1  | rc=1"), "{out}");
}

#[test]
fn exec_passes_arguments_literally() {
    let _s = serial();
    let o = provision(&["--limit", "master", "debug", "exec", "all", "--", "echo", "$(hostname); echo injected", "'quoted'"]);
    assert!(o.status.success());
    assert!(text(&o.stdout).contains("$(hostname); echo injected 'quoted'\n"), "{}", text(&o.stdout));
}

#[test]
fn non_root_user_becomes_root_through_sudo() {
    let _s = serial();
    let o = provision(&["-e", "ssh_user=core", "debug", "exec", "all", "--", "sh", "-c", "echo $(id -un) $SUDO_USER"]);
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    assert_eq!(text(&o.stdout).matches("root core\n").count(), 2, "{}", text(&o.stdout));
    let o = provision(&["-e", "ssh_user=core", "-e", "ssh_become=no", "debug", "exec", "lab-slave-1", "--", "id", "-un"]);
    assert!(text(&o.stdout).contains("core\n"), "ssh_become=no runs as the user: {}", text(&o.stdout));
}

#[test]
fn unknown_host_key_is_refused_unless_checking_is_off() {
    let _s = serial();
    let empty = tempfile::NamedTempFile::new().unwrap();
    let kh = empty.path().to_str().unwrap();
    host_key_is_refused_unless_checking_is_off(kh);
    assert_eq!(std::fs::read_to_string(kh).unwrap(), "", "opting out does not record the key");
}

#[test]
fn an_unreachable_host_fails_alone() {
    let _s = serial();
    let lab = lab_inventory().parent().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("inventory.yaml");
    let lab_inv = std::fs::read_to_string(lab_inventory()).unwrap();
    // The lab inventory plus a host whose port nothing listens on.
    let text_inv = lab_inv.replace("state/", &format!("{}/state/", lab.display())).replace(
        "    slave:\n      hosts:\n",
        "    slave:\n      hosts:\n        lab-gone:\n          ssh_host: 127.0.0.1\n          ssh_port: 1\n",
    );
    std::fs::write(&inv, text_inv).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_provision"))
        .args(["-i", inv.to_str().unwrap(), "debug", "exec", "all", "--", "hostname"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let out = text(&o.stdout);
    assert!(out.contains("lab-gone     | UNREACHABLE"), "{out}");
    assert!(out.contains("cannot connect to lab-gone (root@127.0.0.1:1)"), "{out}");
    assert!(out.contains("lab-master-1 | rc=0") && out.contains("lab-slave-1  | rc=0"), "the others still ran: {out}");
}
