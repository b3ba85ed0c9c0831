//! Per-role snapshots: the resources (ids and key attributes) and handlers each role asks for,
//! and what it owns for `debug`, on a few fixture inventories. No root, no lab, no network.

use std::path::Path;

use provision::certs::CertsDir;
use provision::project::Project;
use provision::roles::{self, Fleet, Owned};

/// An inventory in a temp dir with `group_vars/all.yaml` = `all_vars`, and dummy certificates
/// (roles only read their bytes).
fn fixture(inventory: &str, all_vars: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("inventory.yaml"), inventory).unwrap();
    std::fs::create_dir(dir.path().join("group_vars")).unwrap();
    std::fs::write(dir.path().join("group_vars/all.yaml"), all_vars).unwrap();
    std::fs::write(dir.path().join("gitlab-runner.deb"), "deb").unwrap();
    dir
}

fn certs(dir: &Path, hosts: &[&str]) -> CertsDir {
    let certs = CertsDir::new(dir.join("certs"));
    let mut files = vec![certs.ca_cert()];
    for h in hosts {
        files.push(certs.server_cert(h));
        files.push(certs.server_key(h));
        files.push(certs.client_cert(h));
        files.push(certs.client_key(h));
    }
    for f in files {
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(&f, format!("PEM {}\n", f.file_name().unwrap().to_string_lossy())).unwrap();
    }
    certs
}

/// `Present([1, 2, ...])` byte lists in Debug output, shown as text.
fn readable(debug: &str) -> String {
    let mut out = String::new();
    let mut rest = debug;
    while let Some(i) = rest.find("Present([") {
        out.push_str(&rest[..i]);
        let after = &rest[i + "Present([".len()..];
        let end = after.find(']').unwrap();
        let bytes: Vec<u8> = after[..end].split(", ").filter(|s| !s.is_empty()).map(|b| b.trim().parse().unwrap()).collect();
        out.push_str(&format!("Present({:?}", String::from_utf8_lossy(&bytes)));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Every selected host's steps, handlers and owned things, one block per host.
fn snapshot(dir: &tempfile::TempDir, limit: Option<&str>) -> String {
    let project = Project::load(Some(&dir.path().join("inventory.yaml")), &[]).unwrap_or_else(|e| panic!("{e:?}"));
    let all = project.hosts(None).unwrap_or_else(|e| panic!("{e:?}"));
    let names: Vec<&str> = all.iter().map(|h| h.vars.host.as_str()).collect();
    let certs = certs(dir.path(), &names);
    let fleet = Fleet::new(&project, &all);
    let mut out = String::new();
    for h in project.hosts(limit).unwrap() {
        out.push_str(&format!("## {}\n", h.vars.host));
        let desired = roles::desired(&fleet, &h, &certs).unwrap_or_else(|e| panic!("{e:?}"));
        for step in &desired.steps {
            let notify = if step.notify.is_empty() { String::new() } else { format!(" -> {}", step.notify.join(", ")) };
            out.push_str(&format!("- {}{notify}{}\n", step.resource.id(), if step.deferred.is_some() { " (deferred)" } else { "" }));
            out.push_str(&format!("    {}\n", readable(&format!("{:?}", step.resource))));
        }
        for handler in &desired.handlers {
            out.push_str(&format!("handler {}\n", handler.id));
        }
        let facts = fleet.host(&h.vars.host).unwrap();
        out.push_str(&format!("topology {:?}\n", facts.topology));
        out.push_str(&format!("owned {:?}\n\n", Owned::of(&facts)));
    }
    out.replace(&dir.path().display().to_string(), "<dir>")
}

const TWO_HOSTS: &str = "all:\n  children:\n    master:\n      hosts:\n        m1: {ssh_host: 10.0.0.10}\n    slave:\n      hosts:\n        s1: {ssh_host: 10.0.0.11, private_address: 10.0.1.11}\n";

#[test]
fn default_master_and_slave() {
    let dir = fixture(TWO_HOSTS, "gitlab_api_token: glpat-x\nrunners:\n  - name: docker\n    dind: true\n    tags: [docker]\n");
    insta::assert_snapshot!(snapshot(&dir, None));
}

#[test]
fn ci_daemon_plain_registry_and_package_runner() {
    let vars = "gitlab_api_token: glpat-x\n\
                docker_ci_daemon: true\n\
                registry_remote_url: \"\"\n\
                registry_bind: 10.0.1.11\n\
                cleanup_prune_all: false\n\
                dind_privileged: false\n\
                dind_cap_drop: [SYS_MODULE]\n\
                runner_install: package\n\
                runner_package_file: gitlab-runner.deb\n\
                runners:\n  - name: on-ci-daemon\n  - name: own-host\n    docker_host: unix:///var/run/docker.sock\n";
    let dir = fixture(TWO_HOSTS, vars);
    insta::assert_snapshot!(snapshot(&dir, None));
}

#[test]
fn every_role_on_one_host() {
    let inv = "all:\n  hosts:\n    solo: {ssh_host: 10.0.0.5}\n  vars:\n    roles: [docker_tls, registry, dind, cleanup, docker_client_certs, runner]\n";
    let dir = fixture(inv, "gitlab_api_token: glpat-x\nrunners:\n  - name: local\n    dind: true\n");
    insta::assert_snapshot!(snapshot(&dir, None));
}

/// Values that would change the meaning of a docker command or a unit line are input errors
/// pointing at the var.
#[test]
fn hostile_values_are_refused_where_they_are_written() {
    let cases = [
        ("dind_image: \"-v/:/host\"\n", "starts with `-`"),
        ("docker_dockerd_args: \"--debug\\nExecStartPre=/bin/touch /pwned\"\n", "control character"),
        ("docker_dockerd_args: \"--data-root=/x%i\"\n", "`%`"),
        ("docker_ci_bridge: \"br0; touch /pwned\"\n", "not a valid name"),
        ("registry_image: \"registry:2 --privileged\"\n", "not an image reference"),
        ("dind_storage_volume: \"/:/host\"\n", "not a valid name"),
        ("registry_bind: \"0.0.0.0:5000:5000 -v /:/x\"\n", "must be an IP address"),
        ("runner_container_name: \"--privileged\"\n", "not a valid name"),
    ];
    for (vars, message) in cases {
        let dir = fixture(TWO_HOSTS, &format!("gitlab_api_token: glpat-x\n{vars}"));
        let project = Project::load(Some(&dir.path().join("inventory.yaml")), &[]).unwrap();
        let all = project.hosts(None).unwrap();
        let fleet = Fleet::new(&project, &all);
        let certs = certs(dir.path(), &["m1", "s1"]);
        let errors: Vec<String> = all
            .iter()
            .filter_map(|h| roles::desired(&fleet, h, &certs).err())
            .map(|e| format!("{} at {:?}", e.message(), e.span().map(|s| s.location())))
            .collect();
        assert!(errors.iter().any(|e| e.contains(message) && e.contains("group_vars/all.yaml:")), "{vars}: {errors:?}");
    }
}

/// A wrong element type inside a list var points at the var, with its doc.
#[test]
fn a_wrong_type_inside_a_list_points_at_the_var() {
    let dir = fixture(TWO_HOSTS, "gitlab_api_token: glpat-x\ndind_extra_args: [--debug, {a: b}]\n");
    let project = Project::load(Some(&dir.path().join("inventory.yaml")), &[]).unwrap();
    let all = project.hosts(None).unwrap();
    let fleet = Fleet::new(&project, &all);
    let err = fleet.host("s1").expect_err("a mapping is not a dockerd flag");
    assert!(err.message().contains("`dind_extra_args`"), "{}", err.message());
    assert!(err.span().unwrap().location().contains("group_vars/all.yaml:2:"), "{:?}", err.span().map(|s| s.location()));
}

fn provision_in(dir: &tempfile::TempDir, args: &[&str]) -> std::process::Output {
    let inv = dir.path().join("inventory.yaml");
    let mut all = vec!["-i", inv.to_str().unwrap()];
    all.extend(args);
    std::process::Command::new(env!("CARGO_BIN_EXE_provision")).args(&all).env("NO_COLOR", "1").output().unwrap()
}

/// Both hosts point at a closed port: whoever is contacted is unreachable, so the output says
/// which hosts a command tried.
const UNREACHABLE: &str = "all:\n  children:\n    master:\n      hosts:\n        m1: {ssh_host: 127.0.0.1, ssh_port: 1}\n    slave:\n      hosts:\n        s1: {ssh_host: 127.0.0.1, ssh_port: 1, private_address: 10.0.1.11}\n";

#[test]
fn debug_honours_limit() {
    let dir = fixture(UNREACHABLE, "gitlab_api_token: glpat-x\nssh_connect_timeout: 2\n");
    let o = provision_in(&dir, &["--limit", "master", "debug", "exec", "all", "--", "true"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("m1 | UNREACHABLE") && !out.contains("s1"), "{out}");
    let o = provision_in(&dir, &["-l", "slave", "debug", "ps", "master"]);
    assert_eq!(o.status.code(), Some(2), "nothing left after --limit");
    assert!(String::from_utf8_lossy(&o.stderr).contains("no host matches both `master` and --limit `slave`"));
}

/// A master has no cleanup service, and no dind: debug says so without touching it.
#[test]
fn debug_says_what_a_host_does_not_have() {
    let dir = fixture(UNREACHABLE, "gitlab_api_token: glpat-x\n");
    let o = provision_in(&dir, &["debug", "cleanup", "master"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("m1 | skipped >>") && out.contains("no cleanup service here"), "{out}");
    let o = provision_in(&dir, &["debug", "ps", "master", "--dind"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("no dind engine here"));
}

/// On a stack with `cloud.logs`, the runner container logs to the stack's log group (the
/// generated cloud inventory sets `cloud_log_group` and `cloud_region`); without it, docker's
/// default driver (the spec, and so the container, is unchanged).
#[test]
fn the_runner_logs_to_the_stacks_cloudwatch_group_when_there_is_one() {
    let with = fixture(TWO_HOSTS, "gitlab_api_token: glpat-x\ncloud_log_group: /provision/ci\ncloud_region: eu-west-1\n");
    let text = snapshot(&with, Some("m1"));
    let runner = text.lines().find(|l| l.contains("Container { name: \"gitlab-runner\"")).expect("the runner container");
    assert!(
        runner.contains(r#"log_driver: Some(LogDriver { name: "awslogs", options: {"awslogs-group": "/provision/ci", "awslogs-region": "eu-west-1", "awslogs-stream": "m1-gitlab-runner"} })"#),
        "{runner}"
    );
    let without = fixture(TWO_HOSTS, "gitlab_api_token: glpat-x\n");
    let text = snapshot(&without, Some("m1"));
    assert!(text.contains("log_driver: None"), "{text}");
}

/// config.toml as the master `host` of `dir` renders it (tokens empty: registration fills them).
fn config_preview(dir: &tempfile::TempDir, host: &str) -> String {
    let project = Project::load(Some(&dir.path().join("inventory.yaml")), &[]).unwrap_or_else(|e| panic!("{e:?}"));
    let all = project.hosts(None).unwrap();
    let fleet = Fleet::new(&project, &all);
    let certs = certs(dir.path(), &["m1", "s1"]);
    let facts = fleet.host(host).unwrap();
    let ctx = roles::RoleContext { facts: &facts, fleet: &fleet, certs: &certs };
    roles::runner::config_preview(&ctx).unwrap_or_else(|e| panic!("{e:?}"))
}

/// Both dind modes side by side: the shared engine's socket, and per job GitLab's
/// "Docker-in-Docker with TLS enabled" (the pinned image as a privileged-only service with the
/// slave's cache as its mirror, the job unprivileged, the certificates volume and TLS env).
const BOTH_DIND_MODES: &str = "gitlab_api_token: glpat-x\n\
    dind_image: docker:28.5.2-dind\n\
    runners:\n  - name: shared\n    dind: true\n  - name: isolated\n    dind: per-job\n    tags: [compose]\n  - name: plain\n";

#[test]
fn per_job_dind_section() {
    let dir = fixture(TWO_HOSTS, BOTH_DIND_MODES);
    insta::assert_snapshot!(config_preview(&dir, "m1"));
}

/// The slave loads the pinned dind image (its dind role) where per-job services start: the
/// daemon builds run on, the CI daemon's too when there is one.
#[test]
fn per_job_dind_image_is_on_the_daemon_builds_use() {
    let dir = fixture(TWO_HOSTS, "gitlab_api_token: glpat-x\ndocker_ci_daemon: true\ndind_image: docker:28.5.2-dind\n");
    let text = snapshot(&dir, Some("s1"));
    assert!(text.contains("- image docker:28.5.2-dind\n"), "{text}");
    assert!(text.contains("- image docker:28.5.2-dind on unix:///run/docker-ci.sock\n"), "{text}");
}

/// `dind` takes true, per-job or false; anything else names the runner entry and the choices.
#[test]
fn a_bad_dind_value_is_refused_with_the_choices() {
    for (runners, message) in [
        ("  - name: x\n    dind: per-build\n", "runners[0].dind `per-build`: expected true"),
        ("  - name: x\n    dind: 3\n", "runners[0].dind `3`: expected true"),
    ] {
        let dir = fixture(TWO_HOSTS, &format!("gitlab_api_token: glpat-x\nrunners:\n{runners}"));
        let err = m1_error(&dir);
        assert!(err.contains(message), "{err}");
    }
    // Per-job needs the pinned image of a dind role on the slave.
    let inv = "all:\n  children:\n    master:\n      hosts:\n        m1: {ssh_host: 10.0.0.10}\n    slave:\n      hosts:\n        s1: {ssh_host: 10.0.0.11, roles: [docker_tls, registry]}\n";
    let dir = fixture(inv, "gitlab_api_token: glpat-x\nrunners:\n  - name: x\n    dind: per-job\n");
    let err = m1_error(&dir);
    assert!(err.contains("per-job runs `s1`'s pinned dind_image"), "{err}");
}

/// The message of the input error building `m1` of `dir` stops at.
fn m1_error(dir: &tempfile::TempDir) -> String {
    let project = Project::load(Some(&dir.path().join("inventory.yaml")), &[]).unwrap();
    let all = project.hosts(None).unwrap();
    let fleet = Fleet::new(&project, &all);
    let certs = certs(dir.path(), &["m1", "s1"]);
    let m1 = all.iter().find(|h| h.vars.host == "m1").unwrap();
    match roles::desired(&fleet, m1, &certs) {
        Ok(_) => panic!("m1 was built"),
        Err(e) => e.message().to_string(),
    }
}

/// The keys gitlab-runner reads, by table, from the fixture taken from its source at the
/// pinned version (see the fixture's header).
fn runner_keys() -> std::collections::BTreeMap<String, Vec<String>> {
    let text = include_str!("fixtures/gitlab-runner-v18.10.1-config-keys.txt");
    let mut out = std::collections::BTreeMap::<String, Vec<String>>::new();
    let mut table = String::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        match line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            Some(t) => table = t.to_string(),
            None => out.entry(table.clone()).or_default().push(line.to_string()),
        }
    }
    out
}

/// Keys of `item` (a table or array of tables at `path`) gitlab-runner does not read, recursing
/// into the tables the fixture lists.
fn unknown_keys(path: &str, item: &toml_edit::Item, known: &std::collections::BTreeMap<String, Vec<String>>, out: &mut Vec<String>) {
    let tables: Vec<&toml_edit::Table> = match item {
        toml_edit::Item::Table(t) => vec![t],
        toml_edit::Item::ArrayOfTables(a) => a.iter().collect(),
        _ => return,
    };
    let Some(keys) = known.get(path) else { return };
    for t in tables {
        for (k, v) in t.iter() {
            if !keys.iter().any(|known| known == k) {
                out.push(format!("{path}.{k}"));
            }
            unknown_keys(&format!("{path}.{k}"), v, known, out);
        }
    }
}

/// Every key the runner role writes into a `[[runners]]` section (both dind modes, a plain
/// runner, the S3 cache) is one gitlab-runner of the pinned version reads.
#[test]
fn generated_runner_sections_use_only_keys_the_pinned_gitlab_runner_reads() {
    let dir = fixture(
        TWO_HOSTS,
        &format!(
            "{BOTH_DIND_MODES}runner_cache_s3_bucket: ci-cache\nrunner_cache_s3_access_key: AKIA\nrunner_cache_s3_secret_key: s3-secret\n"
        ),
    );
    let project = Project::load(Some(&dir.path().join("inventory.yaml")), &[]).unwrap();
    let all = project.hosts(None).unwrap();
    let fleet = Fleet::new(&project, &all);
    let pinned = fleet.host("m1").unwrap().runner.as_ref().unwrap().runner_version.clone();
    assert_eq!(pinned, "18.10.1", "the runner pin moved: regenerate tests/fixtures/gitlab-runner-v{pinned}-config-keys.txt");
    let known = runner_keys();
    let doc: toml_edit::DocumentMut = config_preview(&dir, "m1").parse().unwrap();
    let mut unknown = Vec::new();
    unknown_keys("runners", &doc["runners"], &known, &mut unknown);
    assert_eq!(unknown, Vec::<String>::new());
    for key in ["services_privileged", "allowed_privileged_services", "services"] {
        assert!(doc.to_string().contains(key), "the per-job keys were checked: {key}");
    }
    // The check itself catches a key gitlab-runner does not read.
    let mut wrong = doc.clone();
    wrong["runners"].as_array_of_tables_mut().unwrap().get_mut(1).unwrap()["docker"]["service_privileged"] = toml_edit::value(true);
    let mut unknown = Vec::new();
    unknown_keys("runners", &wrong["runners"], &known, &mut unknown);
    assert_eq!(unknown, ["runners.docker.service_privileged"]);
}

/// The `cache` group gets the build cache server: its bucket, TLS files from provision's CA and
/// its check; with `cache_server_tls: false`, plain HTTP and no key file. Its keys come from
/// the certs directory and are registered as secrets.
#[test]
fn the_cache_group_runs_a_cache_server() {
    let inv = format!("{TWO_HOSTS}    cache:\n      hosts:\n        s1:\n");
    for (vars, scheme, tls_files) in [("", "https", true), ("cache_server_tls: false\n", "http", false)] {
        let dir = fixture(&inv, &format!("gitlab_api_token: glpat-x\n{vars}"));
        let mut keys_dir = CertsDir::new(dir.path().join("certs"));
        provision::certs::cache_keys::ensure(&mut keys_dir, &["s1".to_string()], &[], false).unwrap();
        let out = snapshot(&dir, Some("s1"));
        let ids: Vec<&str> = out.lines().filter_map(|l| l.strip_prefix("- ")).collect();
        for id in ["container cache-server", "bucket runner-cache", &format!("check cache server {scheme}://10.0.1.11:9005/runner-cache")] {
            assert!(ids.contains(&id), "{id} missing: {ids:?}");
        }
        assert_eq!(ids.contains(&"file /etc/cache-server/certs/private.key"), tls_files, "{ids:?}");
        assert!(out.contains("alias: Some(\"cache\"), name: \"cache-server\""), "debug knows it: {out}");
        let keys = provision::certs::cache_keys::read(&keys_dir, "s1").unwrap();
        assert_eq!(provision::vars::secret::Redactor::redact(&keys.secret_key), "***");
    }
    // Without the group, no host runs one.
    let dir = fixture(TWO_HOSTS, "gitlab_api_token: glpat-x\n");
    assert!(!snapshot(&dir, None).contains("cache-server"));
}

/// The cache server's keys reach it as read-only 0600 files (MinIO's `*_FILE` contract), never
/// in its `docker run` arguments or environment; `mc` gets an explicit `MC_CONFIG_DIR` (MinIO's
/// image sets `/tmp/.mc`) and the CA in that directory's `certs/CAs`.
#[test]
fn the_cache_server_keys_are_files_and_mc_finds_the_ca() {
    let inv = format!("{TWO_HOSTS}    cache:\n      hosts:\n        s1:\n");
    let dir = fixture(&inv, "gitlab_api_token: glpat-x\n");
    let mut keys_dir = CertsDir::new(dir.path().join("certs"));
    provision::certs::cache_keys::ensure(&mut keys_dir, &["s1".to_string()], &[], false).unwrap();
    let keys = provision::certs::cache_keys::read(&keys_dir, "s1").unwrap();
    let out = snapshot(&dir, Some("s1"));
    let container = out.lines().skip_while(|l| *l != "- container cache-server").nth(1).expect("the container step");
    for key in [&keys.access_key, &keys.secret_key] {
        assert!(!container.contains(key.as_str()), "a key in the container's spec: {container}");
    }
    for want in [
        "\"MINIO_ROOT_USER_FILE\": \"/run/secrets/access_key\"",
        "\"MINIO_ROOT_PASSWORD_FILE\": \"/run/secrets/secret_key\"",
        "\"MC_CONFIG_DIR\": \"/tmp/.mc\"",
        "\"/etc/cache-server/secrets:/run/secrets:ro\"",
        "\"/etc/cache-server/ca.crt:/tmp/.mc/certs/CAs/provision-ca.crt:ro\"",
        &format!("\"io.provision.keys\": \"{}\"", keys.fingerprint()),
    ] {
        assert!(container.contains(want), "{want} missing: {container}");
    }
    let ids: Vec<&str> = out.lines().filter_map(|l| l.strip_prefix("- ")).collect();
    for f in ["file /etc/cache-server/secrets/access_key", "file /etc/cache-server/secrets/secret_key"] {
        assert!(ids.contains(&f), "{f} missing: {ids:?}");
    }
}

/// `cache_server_bind` is handed to runners: the unspecified address is refused (bad input,
/// naming the var), and with TLS the address must be one of the certificate's names.
#[test]
fn the_cache_server_bind_is_reachable_and_in_the_certificate() {
    let inv = format!("{TWO_HOSTS}    cache:\n      hosts:\n        s1:\n");
    let desired = |vars: &str| {
        let dir = fixture(&inv, &format!("gitlab_api_token: glpat-x\n{vars}"));
        let mut keys_dir = CertsDir::new(dir.path().join("certs"));
        provision::certs::cache_keys::ensure(&mut keys_dir, &["s1".to_string()], &[], false).unwrap();
        let project = Project::load(Some(&dir.path().join("inventory.yaml")), &[]).unwrap();
        let all = project.hosts(None).unwrap();
        let certs = certs(dir.path(), &["m1", "s1"]);
        let fleet = Fleet::new(&project, &all);
        let s1 = all.iter().find(|h| h.vars.host == "s1").unwrap();
        roles::desired(&fleet, s1, &certs).map(|_| ()).map_err(|e| format!("{e} {e:?}"))
    };
    for unspecified in ["0.0.0.0", "::"] {
        let e = desired(&format!("cache_server_bind: \"{unspecified}\"\n")).unwrap_err();
        assert!(e.contains("cache_server_bind") && e.contains("unspecified"), "{e}");
    }
    let e = desired("cache_server_bind: 10.0.1.99\n").unwrap_err();
    assert!(e.contains("cache_server_bind") && e.contains("certificate"), "{e}");
    assert!(e.contains("all.yaml"), "names the file: {e}");
    desired("cache_server_bind: 10.0.1.11\n").unwrap();
    desired("cache_server_bind: 10.0.1.99\ncache_server_tls: false\n").unwrap();
}
