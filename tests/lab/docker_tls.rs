//! Mutual TLS on the slave's daemon, checked with the real docker CLI.

use crate::harness::*;

fn slave_var(name: &str) -> String {
    host_var("lab-slave-1", name)
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
    let ok = docker_info(&certs.join("ca.pem"), Some((&certs.join("client/lab-master-1.pem"), &certs.join("client/lab-master-1-key.pem"))));
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
    let o = docker_from_master(DEFAULT, "master", &ip, &["info", "--format", "{{.Name}}"]);
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
    let ids: Vec<&str> = doc["hosts"]["lab-slave-1"]["resources"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"handler restart docker"), "{ids:?}");
    assert_ne!(started(), before, "daemon.json changed: docker restarted");
    assert_eq!(on_host("lab-slave-1", "docker info -f '{{.Debug}}'"), "true\n", "the new config is live");
    assert_eq!(json_run(&["apply"]).0, Some(0), "and back");
}
