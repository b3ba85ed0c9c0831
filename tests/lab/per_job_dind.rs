//! `dind: per-job` against the lab: provision writes the runner's section on the master, and
//! the job simulator (a stand-in for gitlab-runner's docker executor, which cannot run here; see
//! job_simulator.rs) starts jobs from that section on the slave's TLS daemon.

use crate::harness::*;
use crate::job_simulator::{Job, Section, remove_cache_volumes, slave_objects};

/// The lab's runner (the shared engine) and a per-job one beside it.
const RUNNERS: &str = r#"{"runners": [{"name": "lab-master-1-docker", "tags": ["docker", "lab"], "dind": true},
                                      {"name": "lab-master-1-per-job", "tags": ["per-job"], "dind": "per-job"}]}"#;

/// A job of a project using docker compose: wait for its engine (the executor waits for
/// services too), say which engine it is, run a container of an image that can only come
/// through the slave's registry cache (nothing is pulled from the internet here), and start the
/// container name every build of the project uses.
const JOB: &str = "for i in $(seq 1 120); do docker info >/dev/null 2>&1 && break; sleep 0.5; done; \
    docker info -f '{{.ID}} {{.RegistryConfig.Mirrors}}' && docker run --rm busybox:1 true && \
    docker run -d --name app busybox:1 sleep 600 >/dev/null";

/// The lab's docker:dind image holds a docker CLI: it serves as the job image (`docker:cli` in
/// real pipelines), none other with a CLI can be had here.
const JOB_IMAGE: &str = "docker:dind";

#[test]
fn two_jobs_of_one_project_get_an_engine_each_and_leave_nothing_behind() {
    let _s = serial();
    let (code, doc) = json_run(&["-e", RUNNERS, "apply"]);
    assert_eq!(code, Some(0), "{doc}");
    let config = on_host("lab-master-1", "cat /etc/gitlab-runner/config.toml");
    let section = Section::read(&config, "lab-master-1-per-job");
    let ip = on_host("lab-slave-1", "hostname -i").trim().to_string();
    assert_eq!(section.services.len(), 1, "{section:?}");
    assert_eq!(section.services[0].alias, "docker");
    assert_eq!(section.services[0].command, [format!("--registry-mirror=http://{ip}:5000")], "the slave's cache is the mirror");
    assert!(!section.privileged && section.services_privileged == Some(true), "privileged only for the service: {section:?}");
    assert!(section.environment.contains(&"DOCKER_HOST=tcp://docker:2376".to_string()), "{section:?}");
    let shared = Section::read(&config, "lab-master-1-docker");
    assert!(
        shared.services.is_empty() && shared.volumes.iter().any(|v| v.ends_with(":/var/run/dind")),
        "shared mode as before: {shared:?}"
    );

    let cap_drop: Vec<String> = serde_json::from_str(&host_var("lab-slave-1", "dind_cap_drop")).unwrap();
    let before = slave_objects();
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| Job::start(&section, 42, 0, JOB_IMAGE, &cap_drop));
        let b = s.spawn(|| Job::start(&section, 42, 1, JOB_IMAGE, &cap_drop));
        (a.join().unwrap(), b.join().unwrap())
    });
    let (ra, rb) = std::thread::scope(|s| {
        let ra = s.spawn(|| a.run(JOB));
        let rb = s.spawn(|| b.run(JOB));
        (ra.join().unwrap(), rb.join().unwrap())
    });
    for (job, r) in [(&a, &ra), (&b, &rb)] {
        assert!(r.status.success(), "{}: {}{}\nservice: {}", job.id, text(&r.stdout), text(&r.stderr), job.service_logs());
        assert!(text(&r.stdout).ends_with(&format!(" [http://{ip}:5000/]\n")), "{}: {}", job.id, text(&r.stdout));
    }
    assert_ne!(text(&ra.stdout), text(&rb.stdout), "two engines");
    // Both `app` containers run at once, each job sees only its own; the slave's engine neither.
    let look = "docker ps -a --format '{{.Names}} {{.ID}}'";
    let (la, lb) = (a.run(look), b.run(look));
    let (la, lb) = (text(&la.stdout), text(&lb.stdout));
    assert!(la.starts_with("app ") && la.lines().count() == 1, "{la}");
    assert!(lb.starts_with("app ") && lb.lines().count() == 1, "{lb}");
    assert_ne!(la, lb);
    assert!(!text(&docker_from_laptop(&["ps", "-a", "--format", "{{.Names}}"]).stdout).lines().any(|l| l == "app"));

    drop((a, b));
    // What the jobs leave is what gitlab-runner keeps by design: one cache volume per path
    // (`/cache`, `/certs/client`) per project and concurrency slot, reused by that slot's next
    // job; no container, network or engine state. (Cleared here; the README says so.)
    let left: Vec<String> = slave_objects().difference(&before).cloned().collect();
    assert_eq!(left.len(), 4, "two slots, two volumes each: {left:?}");
    for slot in 0..2 {
        let prefix = format!("volume runner-sim-project-42-concurrent-{slot}-cache-");
        assert_eq!(left.iter().filter(|o| o.starts_with(&prefix)).count(), 2, "slot {slot}: {left:?}");
    }
    remove_cache_volumes();
    let after = slave_objects();
    assert_eq!(after.symmetric_difference(&before).collect::<Vec<_>>(), Vec::<&String>::new(), "left on the slave");

    // Back to the lab's one runner (the per-job one is deleted from the GitLab double).
    let (code, doc) = json_run(&["apply", "--yes"]);
    assert_eq!(code, Some(0), "{doc}");
}
