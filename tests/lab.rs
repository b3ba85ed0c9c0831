//! Against the local lab: real Debian hosts (systemd, sshd, dockerd) in containers, reached over
//! real SSH on 127.0.0.1. The first test to run brings the lab up (`lab/lab up`, idempotent);
//! it needs root, and installs what it needs on first use.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard, OnceLock};

/// Lab tests share two hosts and some change them: they run one at a time, each with the lab up
/// before it starts changing anything.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    lab_inventory();
    guard
}

fn lab_inventory() -> &'static Path {
    static UP: OnceLock<PathBuf> = OnceLock::new();
    UP.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let status = Command::new("bash").arg(root.join("lab/lab")).arg("up").status().expect("run lab/lab up");
        assert!(status.success(), "lab/lab up failed (the lab needs root on Debian 12)");
        root.join("lab/inventory.yaml")
    })
}

fn provision(args: &[&str]) -> Output {
    let inv = lab_inventory().to_str().unwrap();
    Command::new(env!("CARGO_BIN_EXE_provision")).args(["-i", inv]).args(args).env("NO_COLOR", "1").output().expect("run provision")
}

fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).into_owned()
}

#[test]
fn lab_inventory_has_master_and_slave_with_private_addresses() {
    let _s = serial();
    let o = provision(&["inventory", "--format", "json"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["groups"]["master"]["hosts"], serde_json::json!(["lab-master-1"]));
    assert_eq!(doc["groups"]["slave"]["hosts"], serde_json::json!(["lab-slave-1"]));
    let addr = doc["hosts"]["lab-slave-1"]["vars"]["private_address"].as_str().unwrap();
    assert!(addr.starts_with("10.213.0."), "private address on the lab network: {addr}");
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

/// With `known_hosts` as the known hosts file, reaching the slave fails on its host key, and
/// succeeds once checking is turned off.
fn host_key_is_refused_unless_checking_is_off(known_hosts: &str) {
    let file = format!("ssh_known_hosts_file={known_hosts}");
    let o = provision(&["-e", &file, "debug", "exec", "lab-slave-1", "--", "true"]);
    assert_eq!(o.status.code(), Some(1));
    let out = text(&o.stdout);
    assert!(out.contains("UNREACHABLE") && out.contains("host key"), "{out}");
    let o = provision(&["-e", &file, "-e", "ssh_host_key_checking=false", "debug", "exec", "lab-slave-1", "--", "true"]);
    assert!(o.status.success(), "opting out connects: {}", text(&o.stdout));
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

/// Runs a desired state built in code on one lab host through the real engine.
fn run_desired(host: &str, desired: provision::engine::Desired) -> provision::engine::report::HostReport {
    use provision::engine::run::{Job, Options, run_host};
    let project = provision::project::Project::load(Some(lab_inventory()), &[]).unwrap();
    let connection = project.resolve(&[host.to_string()]).unwrap().remove(0).connection;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(run_host(Job { connection, desired }, Options { check: false, diff: true, forks: 1 }))
}

/// Runs sh on a lab host directly (docker exec, not provision), as an operator's hand would.
fn on_host(host: &str, script: &str) -> String {
    let lab = Path::new(env!("CARGO_MANIFEST_DIR")).join("lab/lab");
    let o = Command::new("bash").arg(lab).args(["docker", "exec", host, "sh", "-c", script]).output().unwrap();
    assert!(o.status.success(), "{script}: {}", text(&o.stderr));
    text(&o.stdout)
}

fn json_run(args: &[&str]) -> (Option<i32>, serde_json::Value) {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    let o = provision(&all);
    let doc = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}{}", text(&o.stdout), text(&o.stderr)));
    (o.status.code(), doc)
}

fn changed_ids(doc: &serde_json::Value, host: &str) -> Vec<String> {
    doc["hosts"][host]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "changed" && !r["id"].as_str().unwrap().starts_with("handler "))
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

/// Undoes what the cleanup role manages on the slave, so the next apply has work to do.
fn unconverge_slave() {
    on_host(
        "lab-slave-1",
        "systemctl disable --now docker-cleanup.timer 2>/dev/null; rm -f /etc/systemd/system/docker-cleanup.*; systemctl daemon-reload",
    );
}

const FINGERPRINT: &str = "find /etc/systemd/system /etc/docker -xdev \\( -type f -o -type l \\) -exec sha256sum {} + 2>/dev/null | sort; \
    ls -la --time-style=full-iso /etc/systemd/system; systemctl is-enabled docker-cleanup.timer; systemctl is-active docker-cleanup.timer; true";

/// Puts the slave's docker back as the package left it (no TLS drop-in, no daemon.json, no
/// cleanup units), as on a host provision has never touched.
fn reset_slave_to_fresh() {
    unconverge_slave();
    on_host(
        "lab-slave-1",
        "docker rm -f registry-cache dind >/dev/null 2>&1; rm -rf /etc/docker/daemon.json /etc/docker/tls /etc/systemd/system/docker.service.d; \
         systemctl daemon-reload; systemctl reset-failed docker; systemctl restart docker",
    );
}

#[test]
fn converge_from_fresh_then_reapply_changes_nothing() {
    let _s = serial();
    // A first apply on a fresh host adds the TLS drop-in (daemon-reload, then restart docker) and
    // unit files later in the run (daemon-reload again): the CI of an earlier session caught a
    // restart that ran before systemd had read the new drop-in.
    reset_slave_to_fresh();
    let (code, first) = json_run(&["apply"]);
    assert_eq!(code, Some(0), "{first}");
    assert!(first["hosts"]["lab-slave-1"]["changed"].as_u64().unwrap() >= 3, "{first}");
    assert_eq!(
        on_host("lab-slave-1", "systemctl is-enabled docker-cleanup.timer; systemctl is-active docker-cleanup.timer"),
        "enabled\nactive\n"
    );
    let (code, second) = json_run(&["apply"]);
    assert_eq!(code, Some(0));
    for (host, r) in second["hosts"].as_object().unwrap() {
        assert_eq!(r["changed"], 0, "{host} changed on re-apply: {r}");
        assert_eq!(r["failed"], 0, "{host}: {r}");
    }
}

#[test]
fn drift_is_reported_exactly_and_fixed() {
    let _s = serial();
    assert_eq!(json_run(&["apply"]).0, Some(0));
    on_host("lab-slave-1", "echo '# edited by hand' >> /etc/systemd/system/docker-cleanup.service; systemctl stop docker-cleanup.timer");
    let (code, plan) = json_run(&["plan"]);
    assert_eq!(code, Some(0));
    assert_eq!(changed_ids(&plan, "lab-slave-1"), ["file /etc/systemd/system/docker-cleanup.service", "service docker-cleanup.timer"]);
    let resources = plan["hosts"]["lab-slave-1"]["resources"].as_array().unwrap();
    let file = resources.iter().find(|r| r["id"] == "file /etc/systemd/system/docker-cleanup.service").unwrap();
    assert!(file["diff"].as_str().unwrap().contains("-# edited by hand"), "plan shows the diff: {file}");
    assert_eq!(on_host("lab-slave-1", "systemctl is-active docker-cleanup.timer || true"), "inactive\n", "plan changed nothing");
    let (code, applied) = json_run(&["apply"]);
    assert_eq!(code, Some(0));
    assert_eq!(changed_ids(&applied, "lab-slave-1"), ["file /etc/systemd/system/docker-cleanup.service", "service docker-cleanup.timer"]);
    assert!(!on_host("lab-slave-1", "cat /etc/systemd/system/docker-cleanup.service").contains("edited by hand"));
    let (_, clean) = json_run(&["plan"]);
    assert_eq!(clean["hosts"]["lab-slave-1"]["changed"], 0, "{clean}");
}

#[test]
fn check_mode_leaves_hosts_byte_for_byte_unchanged() {
    let _s = serial();
    unconverge_slave();
    on_host("lab-slave-1", "printf 'old\\n' > /etc/systemd/system/docker-cleanup.service");
    let before = on_host("lab-slave-1", FINGERPRINT);
    let (code, check) = json_run(&["apply", "--check"]);
    assert_eq!(code, Some(0));
    assert!(check["hosts"]["lab-slave-1"]["changed"].as_u64().unwrap() >= 3, "{check}");
    let (code, _) = json_run(&["plan"]);
    assert_eq!(code, Some(0));
    assert_eq!(on_host("lab-slave-1", FINGERPRINT), before, "--check and plan must not touch the host");
}

/// Restarts sshd on drop, so a failing assertion does not leave the lab broken.
struct SshdDown(&'static str);

impl Drop for SshdDown {
    fn drop(&mut self) {
        on_host(self.0, "systemctl start ssh");
    }
}

#[test]
fn a_host_with_sshd_down_fails_alone() {
    let _s = serial();
    unconverge_slave();
    // Stop sshd and end every session, including master connections kept from earlier runs.
    on_host("lab-master-1", "systemctl stop ssh; pkill -x sshd || true");
    let _restore = SshdDown("lab-master-1");
    let (code, doc) = json_run(&["apply"]);
    assert_eq!(code, Some(1), "a failed host makes the run fail: {doc}");
    let master = &doc["hosts"]["lab-master-1"];
    assert_eq!(master["failed"], 1, "{master}");
    assert!(master["error"].as_str().unwrap().contains("cannot connect to lab-master-1"), "{master}");
    let slave = &doc["hosts"]["lab-slave-1"];
    assert_eq!(slave["failed"], 0, "{slave}");
    assert!(slave["changed"].as_u64().unwrap() >= 3, "the other host converged: {slave}");
}

#[test]
fn a_second_apply_on_a_locked_host_changes_nothing_and_says_why() {
    let _s = serial();
    unconverge_slave();
    // Another run holds the per-host lock for a few seconds.
    let lab = Path::new(env!("CARGO_MANIFEST_DIR")).join("lab/lab");
    let mut holder = Command::new("bash")
        .arg(lab)
        // Holds the lock until its stdin closes: however long the apply takes to get there.
        .args(["docker", "exec", "-i", "lab-slave-1", "flock", "/run/provision.lock", "sh", "-c", "echo locked; read x"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the holder really has the lock: a fixed sleep raced with a slow first `docker exec`.
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(holder.stdout.as_mut().unwrap()), &mut line).unwrap();
    assert_eq!(line, "locked\n");
    let (code, doc) = json_run(&["apply"]);
    assert_eq!(code, Some(1));
    let slave = &doc["hosts"]["lab-slave-1"];
    assert!(slave["error"].as_str().unwrap().contains("another provision run is applying to this host"), "{slave}");
    assert_eq!(
        on_host("lab-slave-1", "ls /etc/systemd/system/docker-cleanup.service 2>/dev/null || echo missing"),
        "missing\n",
        "nothing was changed"
    );
    drop(holder.stdin.take());
    let _ = holder.wait_with_output();
    assert_eq!(json_run(&["apply"]).0, Some(0), "once the lock is free, apply converges");
}

mod engine_resources {
    //! The docker resources through the real engine, built in code (no role needed).

    use super::*;
    use provision::engine::{Desired, Step, report::HostReport};
    use provision::resources::docker::{Container, ContainerAbsent, Daemon, Image};

    fn apply(host: &str, desired: Desired) -> HostReport {
        run_desired(host, desired)
    }

    fn busybox(env: &str) -> Desired {
        let archive = lab_inventory().parent().unwrap().join("state/images/busybox.tar");
        let image = Image { reference: "provision-lab/busybox:1".into(), archive: Some(archive), daemon: Daemon::default() };
        let mut c = Container::new("provision-test", "provision-lab/busybox:1");
        c.command = vec!["sleep".into(), "3600".into()];
        c.env.insert("A".into(), env.into());
        c.stop_timeout = 1;
        Desired { steps: vec![Step::new(image), Step::new(c)], handlers: vec![] }
    }

    fn statuses(r: &HostReport) -> Vec<String> {
        r.resources.iter().map(|x| format!("{:?} {}", x.status, x.changes.join(","))).collect()
    }

    #[test]
    fn image_is_loaded_from_an_archive_and_container_recreated_only_on_change() {
        let _s = serial();
        on_host(
            "lab-slave-1",
            "docker rm -f provision-test >/dev/null 2>&1; docker rmi provision-lab/busybox:1 >/dev/null 2>&1; rm -f /var/tmp/provision-* /var/lib/provision/uploads/*; true",
        );
        let r = apply("lab-slave-1", busybox("1"));
        assert_eq!(r.failed, 0, "{r:?}");
        assert_eq!(
            statuses(&r),
            [
                format!("Changed loaded from {}", lab_inventory().parent().unwrap().join("state/images/busybox.tar").display()),
                "Changed created".into()
            ]
        );
        let id = on_host("lab-slave-1", "docker inspect -f '{{.Id}} {{.State.Running}}' provision-test");
        assert!(id.ends_with(" true\n"), "{id}");
        assert_eq!(on_host("lab-slave-1", "ls -A /var/lib/provision/uploads | wc -l"), "0\n", "the uploaded archive was removed");

        let r = apply("lab-slave-1", busybox("1"));
        assert_eq!((r.changed, r.failed), (0, 0), "re-apply: {:?}", statuses(&r));
        assert_eq!(on_host("lab-slave-1", "docker inspect -f '{{.Id}} {{.State.Running}}' provision-test"), id, "same container");

        let r = apply("lab-slave-1", busybox("2"));
        assert_eq!(statuses(&r), ["Ok ", "Changed recreated (spec changed)"]);
        assert_ne!(on_host("lab-slave-1", "docker inspect -f '{{.Id}} {{.State.Running}}' provision-test"), id, "a new container");
        assert!(on_host("lab-slave-1", "docker inspect -f '{{.Config.Env}}' provision-test").contains("A=2"));

        on_host("lab-slave-1", "docker stop -t 1 provision-test >/dev/null");
        let r = apply("lab-slave-1", busybox("2"));
        assert_eq!(statuses(&r), ["Ok ", "Changed started"]);

        let gone = Desired {
            steps: vec![Step::new(ContainerAbsent { name: "provision-test".into(), daemon: Daemon::default() })],
            handlers: vec![],
        };
        let r = apply("lab-slave-1", gone);
        assert_eq!(statuses(&r), ["Changed removed"]);
        assert_eq!(on_host("lab-slave-1", "docker ps -aq --filter name=provision-test | wc -l"), "0\n");
    }

    /// Issue 12.1/12.5: uploads are private to their run. A local unprivileged user cannot reach
    /// them, two applies started together each load their own file (before, both wrote one
    /// predictable /var/tmp name and the first failed with `invalid diffID`), and nothing is
    /// left behind, by the run that loaded or by the one that found the host locked.
    #[test]
    fn uploads_are_private_to_their_run_and_never_left_behind() {
        use provision::engine::Status;
        let _s = serial();
        let uploads = "/var/lib/provision/uploads";
        on_host(
            "lab-slave-1",
            "id mallory >/dev/null 2>&1 || useradd -M -s /bin/sh mallory; \
             docker rm -f provision-test >/dev/null 2>&1; docker rmi provision-lab/busybox:1 >/dev/null 2>&1; true",
        );
        let image = || {
            let archive = lab_inventory().parent().unwrap().join("state/images/busybox.tar");
            let image = Image { reference: "provision-lab/busybox:1".into(), archive: Some(archive), daemon: Daemon::default() };
            Desired { steps: vec![Step::new(image)], handlers: vec![] }
        };
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| apply("lab-slave-1", image()));
            let b = s.spawn(|| apply("lab-slave-1", image()));
            (a.join().unwrap(), b.join().unwrap())
        });
        for r in [&a, &b] {
            assert!(r.resources.iter().all(|x| x.status != Status::Failed), "{r:?}");
        }
        assert!([&a, &b].iter().any(|r| r.changed == 1), "one of them loaded the image: {a:?} {b:?}");
        assert_eq!(on_host("lab-slave-1", &format!("stat -c '%U %a' {uploads}")), "root 700\n", "root-only");
        assert_eq!(on_host("lab-slave-1", &format!("ls -A {uploads} | wc -l")), "0\n", "no upload left behind");
        let denied = on_host("lab-slave-1", &format!("su mallory -c ': > {uploads}/x' 2>&1 && echo written || echo denied"));
        assert!(denied.ends_with("denied\n"), "{denied}");
        let r = apply("lab-slave-1", image());
        assert_eq!((r.changed, r.failed), (0, 0), "{r:?}");
        on_host("lab-slave-1", "userdel mallory 2>/dev/null; true");
    }

    /// Issue 12.2/12.3: a local user plants a symlink at the temp name earlier versions wrote
    /// beside a file (in a directory they can write to, like config.toml's, which the runner
    /// container mounts); root neither writes through it nor chowns its target.
    #[test]
    fn a_symlink_planted_beside_a_file_is_never_written_through() {
        use provision::resources::file::File;
        let _s = serial();
        on_host(
            "lab-slave-1",
            "id mallory >/dev/null 2>&1 || useradd -M -s /bin/sh mallory; rm -rf /tmp/shared /tmp/victim; \
             mkdir -m 1777 /tmp/shared; echo keep > /tmp/victim; chmod 644 /tmp/victim; \
             su mallory -c 'ln -s /tmp/victim /tmp/shared/.key.pem.provision-tmp'",
        );
        let mut d = Desired::default();
        d.steps.push(Step::new(File::new("/tmp/shared/key.pem", "SECRET\n").mode(0o600).secret()));
        let r = apply("lab-slave-1", d);
        assert_eq!((r.changed, r.failed), (1, 0), "{r:?}");
        assert_eq!(
            on_host("lab-slave-1", "cat /tmp/victim; stat -c '%U %a' /tmp/victim /tmp/shared/key.pem; ls -A /tmp/shared | wc -l"),
            "keep\nroot 644\nroot 600\n2\n",
            "the target is untouched; the key is written; no temp file is left"
        );
        on_host("lab-slave-1", "rm -rf /tmp/shared /tmp/victim; userdel mallory 2>/dev/null; true");
    }

    #[test]
    fn handlers_owed_by_a_failed_run_run_on_the_next() {
        use provision::resources::file::File;
        let _s = serial();
        on_host(
            "lab-slave-1",
            "rm -rf /tmp/owed /var/lib/provision/pending-handlers; mkdir /tmp/owed; printf 'o\\n' > /tmp/owed/other; touch /tmp/owed-blocker",
        );
        // config (changes) → blocker (fails) → other (unchanged, also notifies: the handler's
        // place is after it, so the failure comes between the change and the handler).
        let build = |fail: bool| {
            let mut d = Desired::default();
            d.handler("mark", "touch /tmp/owed/handler-ran");
            d.steps.push(Step::new(File::new("/tmp/owed/config", "v1\n")).notify("mark"));
            if fail {
                // Its parent is a regular file: this step fails.
                d.steps.push(Step::new(File::new("/tmp/owed-blocker/x", "x")));
            }
            d.steps.push(Step::new(File::new("/tmp/owed/other", "o\n")).notify("mark"));
            d
        };
        let r = apply("lab-slave-1", build(true));
        assert_eq!(statuses(&r), ["Changed created", "Failed created", "Ok ", "Skipped "], "{r:?}");
        assert_eq!(on_host("lab-slave-1", "cat /var/lib/provision/pending-handlers"), "mark\n", "the owed handler is recorded");
        assert_eq!(on_host("lab-slave-1", "ls /tmp/owed"), "config\nother\n", "the handler did not run");
        let r = apply("lab-slave-1", build(false));
        assert_eq!(statuses(&r), ["Ok ", "Ok ", "Changed "], "nothing changed, the owed handler runs: {r:?}");
        assert_eq!(
            on_host("lab-slave-1", "ls /tmp/owed; ls /var/lib/provision/pending-handlers 2>/dev/null || echo cleared"),
            "config\nhandler-ran\nother\ncleared\n"
        );
        let r = apply("lab-slave-1", build(false));
        assert_eq!(r.changed, 0, "owed once, run once: {r:?}");
        on_host("lab-slave-1", "rm -rf /tmp/owed /tmp/owed-blocker");
    }

    #[test]
    fn apply_as_a_non_root_user_through_sudo() {
        let _s = serial();
        unconverge_slave();
        let (code, doc) = json_run(&["-e", "ssh_user=core", "apply"]);
        assert_eq!(code, Some(0), "{doc}");
        assert!(doc["hosts"]["lab-slave-1"]["changed"].as_u64().unwrap() >= 3, "{doc}");
        assert_eq!(on_host("lab-slave-1", "stat -c '%U:%G %a' /etc/systemd/system/docker-cleanup.timer"), "root:root 644\n");
    }
}

mod packages {
    use super::*;
    use provision::engine::{Desired, Step};
    use provision::resources::package::Package;

    fn apply(pkg: Package) -> provision::engine::report::HostReport {
        run_desired("lab-slave-1", Desired { steps: vec![Step::new(pkg)], handlers: vec![] })
    }

    fn pkg(version: &str) -> Package {
        let file = lab_inventory().parent().unwrap().join(format!("state/packages/provision-test-pkg_{version}_all.deb"));
        Package { name: "provision-test-pkg".into(), version: Some(version.into()), file: Some(file), present: true }
    }

    #[test]
    fn install_upgrade_and_remove_from_local_package_files() {
        let _s = serial();
        on_host("lab-slave-1", "dpkg -P provision-test-pkg >/dev/null 2>&1; true");
        let r = apply(pkg("1.0-1"));
        assert_eq!((r.changed, r.failed), (1, 0), "{r:?}");
        assert_eq!(r.resources[0].changes, ["installed 1.0-1"]);
        assert_eq!(on_host("lab-slave-1", "cat /usr/share/provision-test-pkg/version"), "1.0-1\n");
        let r = apply(pkg("1.0-1"));
        assert_eq!((r.changed, r.failed), (0, 0), "{r:?}");
        let r = apply(pkg("2.0-1"));
        assert_eq!(r.resources[0].changes, ["1.0-1 → 2.0-1"], "{r:?}");
        assert_eq!(on_host("lab-slave-1", "cat /usr/share/provision-test-pkg/version"), "2.0-1\n");
        let r = apply(Package { present: false, ..pkg("2.0-1") });
        assert_eq!(r.resources[0].changes, ["removed"], "{r:?}");
        let status = on_host("lab-slave-1", "dpkg-query -W -f '${db:Status-Status}' provision-test-pkg 2>/dev/null || echo gone");
        assert_ne!(status, "installed");
        assert_eq!(on_host("lab-slave-1", "ls /usr/share/provision-test-pkg/version 2>/dev/null || echo gone"), "gone\n");
    }
}

mod docker_tls {
    //! Mutual TLS on the slave's daemon, checked with the real docker CLI.

    use super::*;

    fn lab_dir() -> PathBuf {
        lab_inventory().parent().unwrap().to_path_buf()
    }

    fn slave_var(name: &str) -> String {
        let (_, doc) = json_run(&["inventory", "--host", "lab-slave-1"]);
        let v = &doc["vars"][name];
        v.as_str().map_or_else(|| v.to_string(), str::to_string)
    }

    /// `docker version` against the slave's published TLS port with the given client files
    /// (`version`, not `info --format`: docker 20.10 hides the TLS error behind a template error).
    fn docker_info(ca: &Path, client: Option<(&Path, &Path)>) -> Output {
        let port = slave_var("lab_tls_port");
        let mut cmd = Command::new("/usr/bin/docker");
        cmd.arg("--tlsverify").arg("--tlscacert").arg(ca);
        if let Some((cert, key)) = client {
            cmd.arg("--tlscert").arg(cert).arg("--tlskey").arg(key);
        } else {
            // Without this the CLI would pick up ~/.docker/{cert,key}.pem if they exist.
            cmd.env("DOCKER_CERT_PATH", "/nonexistent");
        }
        cmd.args(["-H", &format!("tcp://127.0.0.1:{port}"), "version", "--format", "{{.Server.Os}}"]);
        cmd.output().unwrap()
    }

    #[test]
    fn tls_daemon_accepts_the_client_cert_and_refuses_others() {
        let _s = serial();
        let (code, doc) = json_run(&["apply"]);
        assert_eq!(code, Some(0), "{doc}");
        let certs = lab_dir().join("certs");
        let ok =
            docker_info(&certs.join("ca.pem"), Some((&certs.join("client/lab-master-1.pem"), &certs.join("client/lab-master-1-key.pem"))));
        assert!(ok.status.success(), "with the client cert: {}", text(&ok.stderr));
        assert_eq!(text(&ok.stdout), "linux\n");

        let none = docker_info(&certs.join("ca.pem"), None);
        assert!(!none.status.success(), "without a client cert the daemon must refuse");
        assert!(text(&none.stderr).contains("tls: bad certificate"), "{}", text(&none.stderr));

        let other = tempfile::tempdir().unwrap();
        let mut other_dir = provision::certs::CertsDir::new(other.path());
        other_dir.ensure(&[], &["m".into()], &provision::certs::Options::default()).unwrap();
        let foreign = docker_info(&certs.join("ca.pem"), Some((&other_dir.client_cert("m"), &other_dir.client_key("m"))));
        assert!(!foreign.status.success(), "a client cert from another CA must be refused");
        assert!(text(&foreign.stderr).contains("tls: bad certificate"), "{}", text(&foreign.stderr));

        // From the master, with the client certs the docker_client_certs role installed, to the
        // slave's private address: the path the runner's builds take.
        let ip = slave_var("private_address");
        let o = provision(&[
            "debug",
            "exec",
            "master",
            "--",
            "docker",
            "--tlsverify",
            "--tlscacert",
            "/etc/gitlab-runner/docker-certs/ca.pem",
            "--tlscert",
            "/etc/gitlab-runner/docker-certs/cert.pem",
            "--tlskey",
            "/etc/gitlab-runner/docker-certs/key.pem",
            "-H",
            &format!("tcp://{ip}:2376"),
            "info",
            "--format",
            "{{.Name}}",
        ]);
        assert!(o.status.success(), "{}", text(&o.stdout));
        assert!(text(&o.stdout).contains("\nlab-slave-1\n"), "{}", text(&o.stdout));
        assert_eq!(on_host("lab-master-1", "stat -c %a /etc/gitlab-runner/docker-certs/key.pem"), "600\n");
    }

    #[test]
    fn docker_restarts_only_when_its_config_changes() {
        let _s = serial();
        assert_eq!(json_run(&["apply"]).0, Some(0));
        let started = || on_host("lab-slave-1", "systemctl show -p ActiveEnterTimestampMonotonic --value docker");
        let before = started();
        assert_eq!(json_run(&["apply"]).0, Some(0));
        assert_eq!(started(), before, "a no-op apply does not restart docker");

        let (code, doc) = json_run(&["-e", "{\"docker_daemon_config\": {\"debug\": true}}", "apply"]);
        assert_eq!(code, Some(0), "{doc}");
        assert_eq!(changed_ids(&doc, "lab-slave-1"), ["file /etc/docker/daemon.json"]);
        let ids: Vec<&str> =
            doc["hosts"]["lab-slave-1"]["resources"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
        assert!(ids.contains(&"handler restart docker"), "{ids:?}");
        assert_ne!(started(), before, "daemon.json changed: docker restarted");
        assert_eq!(on_host("lab-slave-1", "docker info -f '{{.Debug}}'"), "true\n", "the new config is live");
        assert_eq!(json_run(&["apply"]).0, Some(0), "and back");
    }
}

mod registry_cache {
    use super::*;

    #[test]
    fn pulls_go_through_the_cache_to_the_upstream() {
        let _s = serial();
        let (code, doc) = json_run(&["apply"]);
        assert_eq!(code, Some(0), "{doc}");
        let mirrors = on_host("lab-slave-1", "docker info -f '{{.RegistryConfig.Mirrors}}'");
        let ip = on_host("lab-slave-1", "hostname -i").trim().to_string();
        assert_eq!(mirrors, format!("[http://{ip}:5000/]\n"), "the host daemon uses the cache as its mirror");
        // Docker Hub is unreachable from the lab: this pull can only succeed through the cache.
        on_host("lab-slave-1", "docker rmi busybox:1 >/dev/null 2>&1 || true");
        on_host("lab-slave-1", "docker pull -q busybox:1");
        // (A proxying registry does not list cached repositories in /v2/_catalog: look at storage.)
        // The proxy stores blobs in the background after serving them: give it a few seconds.
        let stored = on_host(
            "lab-slave-1",
            "r=/var/lib/registry-cache/docker/registry/v2; for i in $(seq 1 20); do \
             [ -d $r/repositories/library/busybox/_manifests ] && break; sleep 0.25; done; \
             ls $r/repositories/library; find $r/blobs -name data | wc -l",
        );
        let mut lines = stored.lines();
        assert_eq!(lines.next(), Some("busybox"), "the cache kept what it fetched: {stored}");
        // The manifest always comes through the cache; layers only when the daemon lacks them.
        assert!(lines.next().unwrap().trim().parse::<u32>().unwrap() >= 1, "cached blobs: {stored}");
    }

    #[test]
    fn a_new_remote_url_recreates_only_the_registry() {
        let _s = serial();
        assert_eq!(json_run(&["apply"]).0, Some(0));
        let (_, inv) = json_run(&["inventory", "--host", "lab-slave-1"]);
        let upstream = inv["vars"]["lab_upstream_registry"].as_str().unwrap().to_string();
        let docker_started = on_host("lab-slave-1", "systemctl show -p ActiveEnterTimestampMonotonic --value docker");
        let (code, doc) = json_run(&["-e", &format!("registry_remote_url=http://{upstream}/"), "apply"]);
        assert_eq!(code, Some(0), "{doc}");
        assert_eq!(changed_ids(&doc, "lab-slave-1"), ["file /etc/registry-cache/config.yml", "container registry-cache"]);
        assert!(on_host("lab-slave-1", "cat /etc/registry-cache/config.yml").contains(&format!("remoteurl: \"http://{upstream}/\"")));
        assert_eq!(
            on_host("lab-slave-1", "systemctl show -p ActiveEnterTimestampMonotonic --value docker"),
            docker_started,
            "docker was not restarted"
        );
        let (code, doc) = json_run(&["-e", "registry_port=5001", "apply"]);
        assert_eq!(code, Some(0), "{doc}");
        // Every daemon on the host follows the cache's new address: the host daemon's
        // daemon.json and dind's --registry-mirror.
        assert_eq!(
            changed_ids(&doc, "lab-slave-1"),
            ["file /etc/docker/daemon.json", "file /etc/registry-cache/config.yml", "container registry-cache", "container dind"]
        );
        assert!(on_host("lab-slave-1", "docker info -f '{{.RegistryConfig.Mirrors}}'").contains(":5001/"), "daemon.json follows the port");
        assert_eq!(json_run(&["apply"]).0, Some(0), "and back");
    }
}

mod dind {
    use super::*;

    #[test]
    fn builds_get_their_own_engine_with_the_mirror() {
        let _s = serial();
        let (code, doc) = json_run(&["apply"]);
        assert_eq!(code, Some(0), "{doc}");
        let s = "unix:///var/run/provision-dind/docker.sock";
        let ip = on_host("lab-slave-1", "hostname -i").trim().to_string();
        let info = on_host("lab-slave-1", &format!("docker -H {s} info -f '{{{{.Name}}}} {{{{.RegistryConfig.Mirrors}}}}'"));
        let host_id = on_host("lab-slave-1", "docker info -f '{{.ID}}'");
        let dind_id = on_host("lab-slave-1", &format!("docker -H {s} info -f '{{{{.ID}}}}'"));
        assert_ne!(host_id, dind_id, "a separate engine");
        assert!(info.ends_with(&format!("[http://{ip}:5000/]\n")), "dind uses the cache as mirror: {info}");
        // A job's view: pull through the mirror, run a container, all inside dind.
        on_host("lab-slave-1", &format!("docker -H {s} rmi busybox:1 >/dev/null 2>&1 || true; docker -H {s} pull -q busybox:1"));
        assert_eq!(on_host("lab-slave-1", &format!("docker -H {s} run --rm busybox:1 echo job ran")), "job ran\n");
        // Isolation: what a job starts in dind does not exist for the host's engine.
        on_host("lab-slave-1", &format!("docker -H {s} run -d --name job-probe busybox:1 sleep 60 >/dev/null"));
        assert_eq!(on_host("lab-slave-1", &format!("docker -H {s} ps -q --filter name=job-probe | wc -l")), "1\n");
        assert_eq!(on_host("lab-slave-1", "docker ps -aq --filter name=job-probe | wc -l"), "0\n");
        on_host("lab-slave-1", &format!("docker -H {s} rm -f job-probe >/dev/null"));
        let restart = on_host("lab-slave-1", "docker inspect -f '{{.HostConfig.RestartPolicy.Name}}' dind");
        assert_eq!(restart, "always\n");
    }

    #[test]
    fn cleanup_timers_are_active_and_their_services_run_cleanly() {
        let _s = serial();
        assert_eq!(json_run(&["apply"]).0, Some(0));
        for unit in ["docker-cleanup", "docker-cleanup-dind"] {
            let state = on_host("lab-slave-1", &format!("systemctl is-enabled {unit}.timer; systemctl is-active {unit}.timer"));
            assert_eq!(state, "enabled\nactive\n", "{unit}.timer");
            let result =
                on_host("lab-slave-1", &format!("systemctl start {unit}.service; systemctl show -p Result --value {unit}.service"));
            assert_eq!(result, "success\n", "{unit}.service");
        }
        let dind_exec = on_host("lab-slave-1", "systemctl show -p ExecStart --value docker-cleanup-dind.service");
        assert!(dind_exec.contains("docker exec dind docker -H unix:///var/run/dind/docker.sock system prune"), "{dind_exec}");
    }
}

mod ci_daemon {
    use super::*;

    /// Which daemon answers on the slave's TLS port: its data root.
    fn tls_port_root() -> String {
        let certs = lab_inventory().parent().unwrap().join("certs");
        let (_, inv) = json_run(&["inventory", "--host", "lab-slave-1"]);
        let port = inv["vars"]["lab_tls_port"].to_string();
        let o = Command::new("/usr/bin/docker")
            .arg("--tlsverify")
            .arg("--tlscacert")
            .arg(certs.join("ca.pem"))
            .arg("--tlscert")
            .arg(certs.join("client/lab-master-1.pem"))
            .arg("--tlskey")
            .arg(certs.join("client/lab-master-1-key.pem"))
            .args(["-H", &format!("tcp://127.0.0.1:{port}"), "info", "--format", "{{.DockerRootDir}}"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o.stderr));
        text(&o.stdout).trim().to_string()
    }

    #[test]
    fn a_dedicated_ci_daemon_takes_the_tls_port_and_leaves_cleanly() {
        let _s = serial();
        assert_eq!(json_run(&["apply"]).0, Some(0));
        assert_eq!(tls_port_root(), "/var/lib/docker");

        let (code, doc) = json_run(&["-e", "docker_ci_daemon=true", "apply"]);
        assert_eq!(code, Some(0), "{doc}");
        assert_eq!(tls_port_root(), "/var/lib/docker-ci", "the TLS port now reaches the CI daemon");
        let ip = on_host(
            "lab-slave-1",
            "docker -H unix:///run/docker-ci.sock pull -q busybox:1 >/dev/null; docker -H unix:///run/docker-ci.sock run --rm busybox:1 ip -4 -o addr show eth0",
        );
        assert!(ip.contains(" 172.30."), "CI containers live on the CI bridge: {ip}");
        assert!(!on_host("lab-slave-1", "cat /etc/docker/daemon.json").contains("tcp://"), "the host daemon keeps to its socket");
        assert!(
            on_host("lab-slave-1", "systemctl show -p ExecStart --value docker-cleanup.service").contains("unix:///run/docker-ci.sock"),
            "cleanup prunes where builds run"
        );
        let (_, again) = json_run(&["-e", "docker_ci_daemon=true", "apply"]);
        assert_eq!(again["hosts"]["lab-slave-1"]["changed"], 0, "{again}");

        let (code, doc) = json_run(&["apply"]);
        assert_eq!(code, Some(0), "turning it off converges: {doc}");
        assert_eq!(tls_port_root(), "/var/lib/docker", "the host daemon has the TLS port back");
        let gone = on_host(
            "lab-slave-1",
            "systemctl cat docker-ci.service >/dev/null 2>&1 && echo unit; [ -e /etc/docker-ci ] && echo config; \\
             ip link show docker-ci0 >/dev/null 2>&1 && echo bridge; systemctl is-active docker-ci.service || true",
        );
        assert_eq!(gone, "inactive\n", "unit, config and bridge removed");
        let (_, again) = json_run(&["apply"]);
        assert_eq!(again["hosts"]["lab-slave-1"]["changed"], 0, "{again}");
    }

    #[test]
    fn an_overlapping_bridge_is_refused_before_anything_runs() {
        let _s = serial();
        let before = on_host("lab-slave-1", FINGERPRINT);
        let o = provision(&["-e", "docker_ci_daemon=true", "-e", "docker_ci_bridge_cidr=172.17.9.1/24", "apply"]);
        assert_eq!(o.status.code(), Some(2));
        assert!(
            text(&o.stderr).contains("overlaps the host daemon's bridge") && text(&o.stderr).contains("-e #2:1:23"),
            "{}",
            text(&o.stderr)
        );
        assert!(o.stdout.is_empty(), "no host was touched");
        assert_eq!(on_host("lab-slave-1", FINGERPRINT), before, "nothing changed on the host");
    }
}

#[test]
fn registry_credentials_never_show_in_plans_or_diffs() {
    let _s = serial();
    let secret = "Upstr3am-Passw0rd-xyz";
    for format in ["human", "json"] {
        let o = provision(&[
            "-e",
            "registry_remote_username=ci",
            "-e",
            &format!("registry_remote_password={secret}"),
            "-vvv",
            "plan",
            "--format",
            format,
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        let all = format!("{}{}", text(&o.stdout), text(&o.stderr));
        assert!(!all.contains(secret), "{format}: the password leaked");
        assert!(all.contains("(secret content changed)"), "{format}: the config diff is replaced by a note: {all}");
    }
}

mod debug_commands {
    use super::*;
    use std::io::BufRead;
    use std::time::{Duration, Instant};

    #[test]
    fn logs_by_role_and_by_name() {
        let _s = serial();
        assert_eq!(json_run(&["apply"]).0, Some(0));
        let o = provision(&["debug", "logs", "slave", "-n", "5"]);
        assert!(o.status.success(), "{}", text(&o.stdout));
        let out = text(&o.stdout);
        assert!(out.contains("==> docker.service <==") && out.contains("dockerd["), "the slave's role logs: the docker journal\n{out}");
        let o = provision(&["debug", "logs", "slave", "registry", "dind", "cleanup", "dind-cleanup", "-n", "3"]);
        assert!(o.status.success(), "{}", text(&o.stdout));
        let out = text(&o.stdout);
        for h in ["==> registry-cache <==", "==> dind <==", "==> docker-cleanup.service <==", "==> docker-cleanup-dind.service <=="] {
            assert!(out.contains(h), "{h} in\n{out}");
        }
        assert!(out.contains("listening on [::]:5000"), "the registry container's own log: {out}");
        let o = provision(&["debug", "logs", "slave", "no-such-thing"]);
        assert_eq!(o.status.code(), Some(1));
        assert!(text(&o.stdout).contains("no container or systemd unit named no-such-thing"));
    }

    #[test]
    fn follow_streams_new_lines_until_ctrl_c_and_leaves_nothing_behind() {
        let _s = serial();
        assert_eq!(json_run(&["apply"]).0, Some(0));
        let mut child = Command::new(env!("CARGO_BIN_EXE_provision"))
            .args(["-i", lab_inventory().to_str().unwrap(), "debug", "logs", "slave", "cleanup", "-f", "-n", "0"])
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        std::thread::sleep(Duration::from_secs(2));
        // A run that starts after -f did: its lines can only come from following.
        on_host("lab-slave-1", "systemctl start docker-cleanup.service");
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
                let done = line.contains("Finished docker-cleanup.service");
                seen.push(line);
                if done {
                    break;
                }
            }
        }
        assert!(
            seen.iter().any(|l| l.starts_with("lab-slave-1 docker-cleanup.service | ") && l.contains("Finished")),
            "a line produced after -f started: {seen:?}"
        );
        let sent = Instant::now();
        Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(sent.elapsed() < Duration::from_secs(5), "Ctrl-C must end -f promptly");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "Ctrl-C is the normal end of -f: {status:?}");
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(on_host("lab-slave-1", "pgrep -x journalctl | wc -l"), "0\n", "the follower ended on the host");
    }

    #[test]
    fn ps_lists_host_and_dind_containers() {
        let _s = serial();
        assert_eq!(json_run(&["apply"]).0, Some(0));
        let o = provision(&["debug", "ps", "slave"]);
        assert!(o.status.success());
        let out = text(&o.stdout);
        assert!(out.contains("registry-cache") && out.contains("dind ") && out.contains("NAMES"), "{out}");
        on_host("lab-slave-1", "docker -H unix:///var/run/provision-dind/docker.sock run -d --name ps-probe busybox:1 sleep 30 >/dev/null");
        let o = provision(&["debug", "ps", "slave", "--dind"]);
        on_host("lab-slave-1", "docker -H unix:///var/run/provision-dind/docker.sock rm -f ps-probe >/dev/null");
        let out = text(&o.stdout);
        assert!(o.status.success() && out.contains("ps-probe") && !out.contains("registry-cache"), "{out}");
    }

    #[test]
    fn config_shows_files_with_secrets_redacted() {
        let _s = serial();
        let secret = "Cfg-Passw0rd-visible?";
        assert_eq!(
            json_run(&["-e", "registry_remote_username=ci", "-e", &format!("registry_remote_password={secret}"), "apply"]).0,
            Some(0)
        );
        let o = provision(&["debug", "config", "slave"]);
        assert_eq!(json_run(&["apply"]).0, Some(0));
        let out = text(&o.stdout);
        assert!(o.status.success(), "{out}");
        assert!(out.contains("==> /etc/docker/daemon.json <==") && out.contains("\"tlsverify\": true"), "{out}");
        assert!(out.contains("==> /etc/registry-cache/config.yml <==") && out.contains("password: \"***\""), "{out}");
        assert!(!out.contains(secret), "the password read from the host's file is redacted");
    }

    #[test]
    fn cleanup_runs_the_service_and_shows_that_run() {
        let _s = serial();
        assert_eq!(json_run(&["apply"]).0, Some(0));
        for args in [vec!["debug", "cleanup", "slave"], vec!["debug", "cleanup", "slave", "--dind"]] {
            let o = provision(&args);
            let out = text(&o.stdout);
            assert!(o.status.success(), "{args:?}: {out}");
            assert!(out.contains("Total reclaimed space") && out.contains("result: success"), "{args:?}: {out}");
        }
    }

    #[test]
    fn a_target_matching_nothing_is_bad_input() {
        let _s = serial();
        for sub in [
            &["debug", "logs", "nowhere"][..],
            &["debug", "ps", "nowhere"],
            &["debug", "config", "nowhere"],
            &["debug", "cleanup", "nowhere"],
            &["debug", "exec", "nowhere", "--", "true"],
        ] {
            let o = provision(sub);
            assert_eq!(o.status.code(), Some(2), "{sub:?}");
            assert!(text(&o.stderr).contains("`nowhere` matches no host or group"), "{sub:?}: {}", text(&o.stderr));
        }
    }
}

mod runner {
    //! The runner role against the lab master. GitLab cannot run here: registration goes to the
    //! lab's test double (lab/fake-gitlab.py, started by `lab/lab up`), which implements the
    //! documented runner endpoints and records every call. The runner image is a stand-in with
    //! gitlab-runner's contract (lab/runner/gitlab-runner).

    use super::*;

    fn gitlab(method: &str, path: &str) -> serde_json::Value {
        let url = format!("http://127.0.0.1:5998{path}");
        let o = Command::new("curl").args(["-fsS", "-X", method, &url]).output().unwrap();
        assert!(o.status.success(), "{method} {path}: {}", text(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null)
    }

    fn calls(of: &str) -> usize {
        gitlab("GET", "/lab/state")["calls"].as_array().unwrap().iter().filter(|c| c.as_str() == Some(of)).count()
    }

    fn runners() -> Vec<serde_json::Value> {
        gitlab("GET", "/lab/state")["runners"].as_array().unwrap().clone()
    }

    /// The runner token the lab's GitLab double handed out last (secret).
    pub(super) fn last_token() -> String {
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
        assert!(host.starts_with("tcp://10.213.0.") && host.ends_with(":2376"), "{host}");
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
}

mod faults {
    //! Faults and bad input against the lab: what breaks must break cleanly.

    use super::*;

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
        assert!(slave.contains("was refused (not written)"), "{slave}");
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
        let token = super::runner::last_token();
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
        let inv = std::fs::read_to_string(lab_inventory()).unwrap();
        let port = inv
            .split("lab-slave-1:")
            .nth(1)
            .unwrap()
            .split("port: ")
            .nth(1)
            .unwrap()
            .split([',', '}', '\n'])
            .next()
            .unwrap()
            .trim()
            .to_string();
        let kh = dir.path().join("known_hosts");
        std::fs::write(&kh, format!("[127.0.0.1]:{port} {}", public.split_whitespace().take(2).collect::<Vec<_>>().join(" "))).unwrap();
        host_key_is_refused_unless_checking_is_off(kh.to_str().unwrap());
    }
}

mod interruptions {
    //! Ctrl-C and lost connections in the middle of an apply. Both are timed against a slow
    //! step: the dind image (hundreds of MB) uploaded and loaded again after it is removed.

    use super::*;
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
        let (code, doc) = json_run(&["apply"]);
        assert_eq!(code, Some(0), "the next apply converges: {doc}");
        no_leftovers();
        let (_, again) = json_run(&["apply"]);
        assert_eq!(again["hosts"]["lab-slave-1"]["changed"], 0, "{again}");
    }
}
