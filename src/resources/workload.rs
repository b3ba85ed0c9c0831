//! What runs on a docker daemon, read during the probe so that `plan` and `apply` say what its
//! restart affects: how many containers run there, how many of them are CI jobs (`runner-*`),
//! and whether live-restore keeps them through the restart. Changes nothing.

use super::docker::Daemon;
use crate::engine::{Change, Resource, SharedFact};
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

    // The containers come from the daemon's shared facts (read once for every container
    // resource); only live-restore is asked here, through the Engine API when curl is there
    // (one request, a few ms; the CLI's start-up costs ~40 ms).
    fn shared_facts(&self) -> Vec<SharedFact> {
        vec![self.daemon.facts()]
    }

    fn probe(&self) -> String {
        let docker = self.daemon.cli();
        let mut s = Script::new();
        s.set("sock", &self.daemon.socket().unwrap_or_default());
        s.line(&format!(
            "lr=''\n\
             if [ -n \"$sock\" ] && command -v curl >/dev/null 2>&1; then\n\
             case $(curl -sf --max-time 5 --unix-socket \"$sock\" http://d/info 2>/dev/null) in\n\
             *'\"LiveRestoreEnabled\":true'*) lr=true ;; *'\"LiveRestoreEnabled\":false'*) lr=false ;; esac\n\
             elif command -v docker >/dev/null 2>&1; then lr=$({docker} info -f '{{{{.LiveRestoreEnabled}}}}' 2>/dev/null); fi"
        ));
        s.line("if [ -n \"$lr\" ]; then");
        s.line(&kv_line("live_restore", "\"$lr\""));
        s.line(&format!(
            "printf '%s\\n' \"${}\" | awk '/^@images$/ {{ exit }} $2 == \"true\" {{ n++ }} $2 == \"true\" && $1 ~ /^\\/runner-/ {{ j++ }} END {{ printf \"running=%d\\njobs=%d\\n\", n, j }}'",
            self.daemon.facts().var
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
    fn the_probe_counts_from_the_shared_facts_and_asks_the_api_for_live_restore() {
        let w = Workload { daemon: Daemon::default(), unit: "docker.service".into(), handler: "restart docker".into() };
        let dir = tempfile::tempdir().unwrap();
        let curl = dir.path().join("curl");
        std::fs::write(&curl, "#!/bin/sh\necho '{\"ID\":\"x\",\"LiveRestoreEnabled\":true,\"Name\":\"h\"}'\n").unwrap();
        std::fs::set_permissions(&curl, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let facts = "/registry-cache true sha256:a running - x\n/runner-1-build true sha256:b running - \n/runner-2-build false sha256:b exited - \n@images\n/runner-3 true\n";
        let probe = |path: String| {
            let o = std::process::Command::new("/bin/sh")
                .args(["-c", &w.probe()])
                .env("PATH", path)
                .env(w.daemon.facts().var, facts)
                .output()
                .unwrap();
            String::from_utf8(o.stdout).unwrap()
        };
        assert_eq!(probe(format!("{}:/usr/bin:/bin", dir.path().display())), "live_restore=true\nrunning=2\njobs=1\n");
        assert_eq!(probe("/nonexistent".into()).trim(), "daemon=down", "no curl, no docker: nothing answers");
    }

    #[test]
    fn the_probe_is_valid_sh_and_names_the_handler() {
        let w = Workload {
            daemon: Daemon { host: Some("unix:///run/docker-ci.sock".into()) },
            unit: "docker-ci.service".into(),
            handler: "restart docker-ci".into(),
        };
        let s = w.probe();
        assert!(
            s.contains("--host=unix:///run/docker-ci.sock") && s.contains("sock=/run/docker-ci.sock") && s.contains("/^\\/runner-/"),
            "{s}"
        );
        let o = std::process::Command::new("sh").args(["-n", "-c", &s]).output().unwrap();
        assert!(o.status.success(), "{}\n{s}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(w.announces("running=0\njobs=0\nlive_restore=true\n").unwrap().0, "restart docker-ci");
        assert!(w.plan("running=1\njobs=0\n").unwrap().is_none(), "it never changes anything");
    }
}
