use crate::harness::*;

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
        let result = on_host("lab-slave-1", &format!("systemctl start {unit}.service; systemctl show -p Result --value {unit}.service"));
        assert_eq!(result, "success\n", "{unit}.service");
    }
    let dind_exec = on_host("lab-slave-1", "systemctl show -p ExecStart --value docker-cleanup-dind.service");
    assert!(dind_exec.contains("docker exec dind docker -H unix:///var/run/dind/docker.sock system prune"), "{dind_exec}");
}
