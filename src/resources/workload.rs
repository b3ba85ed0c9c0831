//! What runs on a docker daemon, read during the probe so that `plan` and `apply` say what its
//! restart affects: how many containers run there, how many of them are CI jobs (`runner-*`),
//! and whether live-restore keeps them through the restart. Changes nothing.

use super::docker::{Daemon, DaemonFacts};
use crate::engine::{Change, Probe, Resource, SharedFact};
use crate::sh::Kv;

/// The containers on one daemon, announced beside the handler that restarts it.
#[derive(Debug, Clone)]
pub struct Workload {
    /// The daemon.
    pub daemon: Daemon,
    /// Its systemd unit, as the note names it.
    pub unit: String,
    /// Id of the handler restarting it.
    pub handler: String,
}

impl Resource for Workload {
    fn id(&self) -> String {
        format!("containers on {}", self.unit)
    }

    // Everything comes from the daemon's shared facts (read once for every container
    // resource, live-restore with them): nothing runs on the host for it.
    fn shared_facts(&self) -> Vec<SharedFact> {
        vec![self.daemon.facts_with_live_restore()]
    }

    fn probe(&self) -> Probe {
        Probe::Shared(self.daemon.facts_with_live_restore())
    }

    fn read_shared(&self, facts: &str) -> String {
        let facts = DaemonFacts::parse(facts);
        if facts.no_cli {
            return "docker=missing\n".into();
        }
        let Some(live_restore) = facts.live_restore else {
            return "daemon=down\n".into();
        };
        let (mut running, mut jobs) = (0, 0);
        for c in facts.containers.iter().filter(|c| c.running == "true") {
            running += 1;
            jobs += u32::from(c.name.starts_with("/runner-"));
        }
        format!("live_restore={live_restore}\nrunning={running}\njobs={jobs}\n")
    }

    fn plan(&self, state: &str) -> Result<Option<Change>, String> {
        Kv::parse(state).map(|_| None)
    }

    fn announces(&self, state: &str) -> Option<(String, String)> {
        Some((self.handler.clone(), note(&self.unit, &Kv::parse(state).ok()?)))
    }
}

/// The report's words for what a restart of `unit` affects.
fn note(unit: &str, kv: &Kv) -> String {
    if kv.get("docker") == Some("missing") {
        return format!("restarts {unit}; the docker command is missing here, so what runs there was not counted");
    }
    if kv.get("daemon") == Some("down") {
        return format!("{unit} is not running: no container to stop");
    }
    let running: u32 = kv.get("running").and_then(|v| v.parse().ok()).unwrap_or(0);
    let jobs: u32 = kv.get("jobs").and_then(|v| v.parse().ok()).unwrap_or(0);
    let fate = if kv.get("live_restore") == Some("true") {
        "live-restore keeps them running"
    } else if running == 0 {
        "nothing to stop"
    } else {
        "no live-restore yet: they stop unless the restart waits (restart_drain_timeout) for the jobs"
    };
    format!("restarts {unit}: {running} container(s) run there, {jobs} CI job(s) (runner-*); {fate}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(text: &str) -> Kv {
        Kv::parse(text).unwrap()
    }

    #[test]
    fn the_note_counts_containers_and_jobs_and_says_what_happens_to_them() {
        let n = note("docker.service", &kv("live_restore=true\nrunning=3\njobs=1\n"));
        assert_eq!(n, "restarts docker.service: 3 container(s) run there, 1 CI job(s) (runner-*); live-restore keeps them running");
        let n = note("docker-ci.service", &kv("live_restore=false\nrunning=2\njobs=2\n"));
        assert!(n.contains("2 CI job(s)") && n.contains("no live-restore yet"), "{n}");
        assert!(note("docker.service", &kv("daemon=down\n")).contains("not running"));
    }

    #[test]
    fn the_state_counts_from_the_shared_facts_with_their_live_restore() {
        let w = Workload {
            daemon: Daemon { host: Some("unix:///run/docker-ci.sock".into()) },
            unit: "docker-ci.service".into(),
            handler: "restart docker-ci".into(),
        };
        assert_eq!(w.probe(), Probe::Shared(w.daemon.facts_with_live_restore()), "nothing of its own runs on the host");
        assert!(w.daemon.facts_with_live_restore().script.contains("http://d/info"));
        assert!(!w.daemon.facts().script.contains("/info"), "only where a restart is announced");
        let facts = "@answered\n/registry-cache true sha256:a running - x\n/runner-1-build true sha256:b running - \n/runner-2-build false sha256:b exited - \n@images\n/runner-3 true\n@info\nlive_restore=true\n";
        assert_eq!(w.read_shared(facts), "live_restore=true\nrunning=2\njobs=1\n");
        assert_eq!(w.read_shared("@images\n@info\n").trim(), "daemon=down", "no daemon answered");
        let n = note("docker-ci.service", &kv(&w.read_shared("@no-docker-cli\n")));
        assert!(n.contains("docker command is missing"), "not taken for a daemon that is down: {n}");
        assert_eq!(w.announces(&w.read_shared(facts)).unwrap().0, "restart docker-ci");
        assert!(w.plan("running=1\njobs=0\n").unwrap().is_none(), "it never changes anything");
    }
}
