//! What runs on a docker daemon, read during the probe so that `plan` and `apply` say what its
//! restart affects: how many containers run there, how many of them are CI jobs (`runner-*`),
//! and whether live-restore keeps them through the restart. Changes nothing.

use super::docker::Daemon;
use crate::engine::{Change, Resource};
use crate::sh::{Kv, Script, kv_line};

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

    fn probe(&self) -> String {
        let docker = self.daemon.cli();
        let mut s = Script::new();
        s.line(&format!("if command -v docker >/dev/null 2>&1 && lr=$({docker} info -f '{{{{.LiveRestoreEnabled}}}}' 2>/dev/null); then"));
        s.line(&kv_line("live_restore", "\"$lr\""));
        s.line(&format!(
            "{docker} ps --format '{{{{.Names}}}}' 2>/dev/null | awk '{{ n++ }} /^runner-/ {{ j++ }} END {{ printf \"running=%d\\njobs=%d\\n\", n, j }}'"
        ));
        s.line("else echo daemon=down; fi");
        s.into_string()
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
    fn the_probe_is_valid_sh_and_names_the_handler() {
        let w = Workload {
            daemon: Daemon { host: Some("unix:///run/docker-ci.sock".into()) },
            unit: "docker-ci.service".into(),
            handler: "restart docker-ci".into(),
        };
        let s = w.probe();
        assert!(s.contains("--host=unix:///run/docker-ci.sock") && s.contains("/^runner-/"), "{s}");
        let o = std::process::Command::new("sh").args(["-n", "-c", &s]).output().unwrap();
        assert!(o.status.success(), "{}\n{s}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(w.announces("running=0\njobs=0\nlive_restore=true\n").unwrap().0, "restart docker-ci");
        assert!(w.plan("running=1\njobs=0\n").unwrap().is_none(), "it never changes anything");
    }
}
