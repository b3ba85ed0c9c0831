use crate::harness::*;

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
