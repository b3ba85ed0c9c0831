//! The docker resources through the real engine, built in code (no role needed).

use crate::harness::*;
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

    let gone =
        Desired { steps: vec![Step::new(ContainerAbsent { name: "provision-test".into(), daemon: Daemon::default() })], handlers: vec![] };
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
