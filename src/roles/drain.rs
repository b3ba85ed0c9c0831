//! Recreating the dind container stops every build inside it: before that, the apply waits for
//! the CI jobs using dind (`runner-*` containers that mount its socket directory) to finish, up
//! to `restart_drain_timeout`, and refuses the recreation when they still run then.

use crate::engine::{Change, Probe, Resource, SharedFact};
use crate::resources::docker::Container;
use crate::sh::{Cmd, Script};

/// A container whose recreation first waits for the jobs using it (see [`drain_script`]).
pub struct Drained {
    /// The container.
    pub inner: Container,
    /// sh run before the old container is removed (empty: recreate at once).
    pub drain: String,
}

// Shown as the container it wraps (role snapshots print the desired state).
impl std::fmt::Debug for Drained {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

impl Resource for Drained {
    fn id(&self) -> String {
        self.inner.id()
    }

    fn probe(&self) -> Probe {
        self.inner.probe()
    }

    fn read_shared(&self, fact: &str) -> String {
        self.inner.read_shared(fact)
    }

    fn shared_facts(&self) -> Vec<SharedFact> {
        self.inner.shared_facts()
    }

    // The wrapper only adds the wait: everything else is the container's, health included.
    fn health(&self) -> Option<crate::engine::health::Health> {
        self.inner.health()
    }

    fn repair(&self) -> Option<Change> {
        self.inner.repair()
    }

    fn announces(&self, state: &str) -> Option<(String, String)> {
        self.inner.announces(state)
    }

    fn plan(&self, state: &str) -> Result<Option<Change>, String> {
        Ok(self.inner.plan(state)?.map(|mut c| {
            // Only a recreation stops what runs inside; a first create or a start does not.
            if c.what.iter().any(|w| w.starts_with("recreated")) {
                c.script = format!("{}{}", self.drain, c.script);
            }
            c
        }))
    }
}

/// sh waiting up to `timeout` seconds for running `runner-*` containers that mount
/// `mount_dir` (the dind socket directory, as jobs see it) to finish; exits 1 when some still
/// run then. `timeout` 0: nothing to wait for.
pub fn drain_script(what: &str, mount_dir: &str, timeout: u64) -> String {
    if timeout == 0 {
        return String::new();
    }
    let mut s = Script::new();
    let ps = Cmd::new("docker").args(["ps", "-q", "--filter", "name=^runner-", "--filter"]).arg(format!("volume={mount_dir}"));
    wait_for_jobs(
        &mut s,
        &format!("{ps} 2>/dev/null | grep -c ."),
        timeout,
        &format!(
            "%s CI job(s) (runner-*) still use {what} after {timeout}s: not recreating it (their builds would be killed; apply --force-restart recreates at once)\\n"
        ),
        &format!("waiting for %s CI job(s) (runner-*) using {what} to finish before recreating it\\n"),
    );
    s.into_string()
}

/// Adds to `s` the wait every drain shares: while `count` (sh printing a number) is above 0,
/// print `waiting` (a printf format taking the count) every 5 s; past `timeout` seconds print
/// `gave_up` (likewise) and exit 1, so what was to come (a restart, a recreation) does not happen.
pub(crate) fn wait_for_jobs(s: &mut Script, count: &str, timeout: u64, gave_up: &str, waiting: &str) {
    s.line(&format!("end=$(( $(date +%s) + {timeout} ))"));
    s.line(&format!("while n=$({count} || true); [ \"$n\" -gt 0 ]; do"));
    s.cmd(
        &Cmd::new("[")
            .raw("\"$(date +%s)\"")
            .arg("-ge")
            .raw("\"$end\"")
            .arg("]")
            .raw("&&")
            .arg("printf")
            .arg(gave_up)
            .raw("\"$n\" >&2 && exit 1"),
    );
    s.cmd(&Cmd::new("printf").arg(waiting).raw("\"$n\" >&2"));
    s.line("sleep 5");
    s.line("done");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recreation_waits_for_the_jobs_a_create_does_not() {
        assert_eq!(drain_script("dind", "/var/run/dind", 0), "");
        let drain = drain_script("dind", "/var/run/dind", 60);
        assert!(drain.contains("name=^runner-") && drain.contains("volume=/var/run/dind") && drain.contains("+ 60"), "{drain}");
        let o = std::process::Command::new("sh").args(["-n", "-c", &drain]).output().unwrap();
        assert!(o.status.success(), "valid sh: {}\n{drain}", String::from_utf8_lossy(&o.stderr));
        let d = Drained { inner: Container::new("dind", "docker:dind"), drain: drain.clone() };
        let absent = "container=absent\nimage=sha256:a\n";
        assert!(!d.plan(absent).unwrap().unwrap().script.contains("runner-"), "creating stops no build");
        let changed = "container=present\nrunning=true\ncontainer_image=sha256:a\nspec=old\nimage=sha256:a\n";
        let c = d.plan(changed).unwrap().unwrap();
        assert!(c.script.starts_with(&drain), "the wait comes before the old container goes: {}", c.script);
        // The container's health check and repair are the wrapper's too.
        let inner = Container::new("dind", "docker:dind");
        assert_eq!(d.health().is_some(), inner.health().is_some());
        assert!(d.health().is_some(), "a container declares its health");
        assert_eq!(d.repair().is_some(), inner.repair().is_some());
    }
}
