//! The build cache server (`cache_server` role) on the lab's slave, and the master's runner
//! pointed at it.
//!
//! No MinIO image can be pulled in the lab: the server is the lab's STAND-IN FOR MINIO
//! (lab/image-s3: a small S3 server keeping MinIO's command line, its keys read from the files
//! `MINIO_ROOT_USER_FILE`/`MINIO_ROOT_PASSWORD_FILE` name, certs dir, `mc` with
//! `MC_CONFIG_DIR`, and the image's ENVs), which checks every request's AWS Signature V4
//! against those keys. The S3 client here is the master's own curl (`--aws-sigv4`).

use crate::harness::*;

/// The default lab inventory with lab-slave-1 also in the `cache` group (written by the test:
/// the default inventory keeps no cache server, so the other tests see no change).
const INV: &str = "inventory-cache.yaml";
const SLAVE: &str = "lab-slave-1";
const MASTER: &str = "lab-master-1";
/// provision's CA on the master (the docker client certificates' CA).
const CA: &str = "/etc/gitlab-runner/docker-certs/ca.pem";

fn write_cache_inventory() {
    let base = std::fs::read_to_string(lab_inventory()).unwrap();
    std::fs::write(lab_dir().join(INV), format!("{base}    cache:\n      hosts:\n        {SLAVE}:\n")).unwrap();
}

/// (access key, secret key) from the keys file provision keeps beside the certificates.
fn read_keys() -> (String, String) {
    let text = std::fs::read_to_string(lab_dir().join("certs/cache-server").join(format!("{SLAVE}.keys"))).unwrap();
    let get = |k: &str| text.lines().find_map(|l| l.strip_prefix(&format!("{k}="))).unwrap().to_string();
    (get("access_key"), get("secret_key"))
}

/// Runs curl on the master against `url` (signed with `user` when given); prints the HTTP
/// status after the body.
fn curl_from_master(url: &str, user: Option<&(String, String)>, put: Option<&str>) -> String {
    let mut cmd = format!("curl -sS --cacert {CA} -w ' %{{http_code}}'");
    if let Some((a, s)) = user {
        cmd.push_str(&format!(" --aws-sigv4 aws:amz:us-east-1:s3 --user '{a}:{s}'"));
    }
    if let Some(body) = put {
        // --data-binary, not -T: curl 7.88 signs an upload from -T with an empty payload hash.
        cmd.push_str(&format!(" -X PUT --data-binary '{body}'"));
    }
    on_host(MASTER, &format!("{cmd} '{url}'"))
}

fn assert_no_keys(what: &str, output: &Output, keys: &[&(String, String)]) {
    let all = format!("{}{}", text(&output.stdout), text(&output.stderr));
    for (a, s) in keys {
        assert!(!all.contains(a.as_str()) && !all.contains(s.as_str()), "{what}: a key leaked:\n{all}");
    }
}

/// While the server runs, its keys are on no command line of the slave (every process, the
/// server's and `docker exec`'d `mc` included, is in /proc there) and not in the container's
/// environment: it reads them from 0600 files. The keys are searched here, never sent to the
/// slave (a `grep KEY` there would put them on a command line).
fn assert_no_keys_on_the_slave(keys: &(String, String)) {
    let cmdlines = on_host(SLAVE, "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' <\"$f\" 2>/dev/null; echo; done");
    assert!(cmdlines.contains("server /data --address :9005"), "the server's process is seen: {cmdlines}");
    let env = on_host(SLAVE, "docker inspect --format '{{json .Config.Env}}' cache-server");
    assert!(env.contains("MINIO_ROOT_PASSWORD_FILE=/run/secrets/secret_key"), "{env}");
    for key in [&keys.0, &keys.1] {
        assert!(!cmdlines.contains(key.as_str()), "a key on a command line of the slave");
        assert!(!env.contains(key.as_str()), "a key in the container's Env");
    }
    assert_eq!(on_host(SLAVE, "stat -c %a /etc/cache-server/secrets/access_key /etc/cache-server/secrets/secret_key"), "600\n600\n");
}

#[test]
fn the_cache_server_serves_the_runners_bucket_over_tls_with_generated_keys_only() {
    let _s = serial();
    write_cache_inventory();
    on_host(SLAVE, "docker rm -f cache-server >/dev/null 2>&1 || true");
    let (code, doc) = json_run_in(INV, &["apply"]);
    assert_eq!(code, Some(0), "{doc}");
    let changed = changed_ids(&doc, SLAVE);
    assert!(changed.contains(&"container cache-server".to_string()), "{changed:?}");
    // Its bucket is made once the server answers (the probe found no server to ask).
    assert!(changed.contains(&"bucket runner-cache".to_string()), "{changed:?}");
    let (code, doc) = json_run_in(INV, &["apply"]);
    assert_eq!(code, Some(0), "{doc}");
    assert_eq!(changed_ids(&doc, SLAVE), Vec::<String>::new(), "re-apply changes nothing on the slave");
    assert_eq!(changed_ids(&doc, MASTER), Vec::<String>::new(), "re-apply changes nothing on the master");

    let keys = read_keys();
    let ip = host_var(SLAVE, "private_address");
    let bucket = format!("https://{ip}:9005/runner-cache");
    // Listening on the private address only (its loopback has nothing on 9005).
    assert_ne!(on_host_raw(SLAVE, "curl -s -o /dev/null --max-time 3 -k https://127.0.0.1:9005/").status.code(), Some(0));

    // From the master, with the generated keys, TLS verified by provision's CA.
    let put = curl_from_master(&format!("{bucket}/lab/object.txt"), Some(&keys), Some("cached-by-the-lab"));
    assert!(put.ends_with(" 200"), "put: {put}");
    let got = curl_from_master(&format!("{bucket}/lab/object.txt"), Some(&keys), None);
    assert_eq!(got, "cached-by-the-lab 200");
    // Without keys, or with a wrong secret: refused.
    let anonymous = curl_from_master(&format!("{bucket}/lab/object.txt"), None, None);
    assert!(anonymous.ends_with(" 403") && !anonymous.contains("cached-by-the-lab"), "{anonymous}");
    let wrong = (keys.0.clone(), "not-the-secret-key".to_string());
    let forged = curl_from_master(&format!("{bucket}/lab/object.txt"), Some(&wrong), None);
    assert!(forged.ends_with(" 403") && !forged.contains("cached-by-the-lab"), "{forged}");

    // The runner's config points at it, with the keys of current gitlab-runner releases.
    let toml: toml_edit::DocumentMut = on_host(MASTER, "cat /etc/gitlab-runner/config.toml").parse().unwrap();
    let cache = &toml["runners"][0]["cache"];
    assert_eq!(cache["Type"].as_str(), Some("s3"));
    assert_eq!(cache["Shared"].as_bool(), Some(true));
    assert_eq!(cache["s3"]["ServerAddress"].as_str(), Some(format!("{ip}:9005").as_str()));
    assert_eq!(cache["s3"]["BucketName"].as_str(), Some("runner-cache"));
    assert_eq!(cache["s3"]["Insecure"].as_bool(), Some(false));
    assert_eq!(cache["s3"]["AccessKey"].as_str(), Some(keys.0.as_str()));
    assert_eq!(cache["s3"]["SecretKey"].as_str(), Some(keys.1.as_str()));
    // Jobs (and the runner helper that moves the cache) trust provision's CA: the section
    // mounts it where Go reads extra roots, from a path on the slave where jobs run. A job
    // container started with that volume verifies the cache server's certificate with it.
    let volumes: Vec<String> =
        toml["runners"][0]["docker"]["volumes"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    let ca = volumes.iter().find(|v| v.contains(":/etc/ssl/certs/provision-ca.pem:ro")).unwrap_or_else(|| panic!("{volumes:?}"));
    let verified = on_host(
        SLAVE,
        &format!(
            "docker run --rm -v {ca} --entrypoint openssl docker:dind s_client -connect {ip}:9005 -CAfile /etc/ssl/certs/provision-ca.pem -verify_return_error </dev/null 2>&1 | grep 'Verify return code'"
        ),
    );
    assert!(verified.contains("Verify return code: 0 (ok)"), "{verified}");
    // The same trust as Go sees it, naming no CA file: the gitlab-runner helper is a Go
    // program, whose system roots are the bundle plus every file in /etc/ssl/certs. The docker
    // CLI (Go) in the job image speaks to a registry itself for `docker manifest inspect`, with
    // exactly those roots (no /etc/docker/certs.d entry, not a loopback "insecure" registry).
    // The cache server is no registry, so the command fails after the handshake and the HTTP
    // exchange; what matters is that it gets that far. Without the volume, the same command fails on the certificate:
    // the check can tell the two apart.
    let go_client = |volume: &str| {
        let o =
            on_host_raw(SLAVE, &format!("docker run --rm {volume} docker:dind docker manifest inspect {ip}:9005/provision/probe:1 2>&1"));
        format!("{}{}", text(&o.stdout), text(&o.stderr))
    };
    let untrusted = go_client("");
    assert!(untrusted.contains("x509: certificate signed by unknown authority"), "{untrusted}");
    let trusted = go_client(&format!("-v {ca}"));
    // "unsupported registry version": the verified connection carried an HTTP answer, which
    // lacked a registry's version header.
    assert!(!trusted.contains("x509") && trusted.contains("unsupported registry version"), "{trusted}");
    assert_no_keys_on_the_slave(&keys);
    // The keys file is private.
    let mode = std::fs::metadata(lab_dir().join("certs/cache-server").join(format!("{SLAVE}.keys"))).unwrap();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777, 0o600);

    // `debug` knows the server.
    let logs = provision_in(INV, &["debug", "logs", SLAVE, "cache", "-n", "20"]);
    assert!(text(&logs.stdout).contains("S3 API on https://"), "{}{}", text(&logs.stdout), text(&logs.stderr));
    assert_no_keys("debug logs", &logs, &[&keys]);
    assert_no_keys("debug config", &provision_in(INV, &["debug", "config", MASTER]), &[&keys]);

    // Rotation: new keys everywhere after the next apply, the old ones refused; no key in
    // the rotation's output, the apply's diff or its most verbose log.
    let rotated = provision_in(INV, &["-l", SLAVE, "certs", "rotate-cache-keys", "--yes"]);
    assert_eq!(rotated.status.code(), Some(0), "{}", text(&rotated.stderr));
    let new_keys = read_keys();
    assert_ne!(new_keys, keys);
    assert_no_keys("certs rotate-cache-keys", &rotated, &[&keys, &new_keys]);
    let applied = provision_in(INV, &["apply", "--diff", "-vvv"]);
    assert_eq!(applied.status.code(), Some(0), "{}{}", text(&applied.stdout), text(&applied.stderr));
    assert_no_keys("apply --diff -vvv", &applied, &[&keys, &new_keys]);
    assert!(text(&applied.stdout).contains("config.toml"), "the master's config changed: {}", text(&applied.stdout));
    let got = curl_from_master(&format!("{bucket}/lab/object.txt"), Some(&new_keys), None);
    assert_eq!(got, "cached-by-the-lab 200", "the data survived the new keys");
    assert!(curl_from_master(&format!("{bucket}/lab/object.txt"), Some(&keys), None).ends_with(" 403"));
    assert_no_keys_on_the_slave(&new_keys);

    // Back to the default lab: the master without the cache, the slave without its server.
    assert_eq!(json_run(&["apply"]).0, Some(0));
    on_host(SLAVE, "docker rm -f cache-server >/dev/null");
    std::fs::remove_file(lab_dir().join(INV)).unwrap();
}
