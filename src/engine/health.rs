//! Health: whether a resource's service works, not only whether it is configured.
//!
//! A resource (or a role, through a [`Check`]) declares a [`Health`]: a sh snippet printing
//! `health=ok` or `health=failed`, optionally `why=<one line>` and other `key=value` lines, and a
//! sh command printing evidence (the tail of the container's log or the unit's journal), run
//! only when the check fails. The snippet runs inside the probe round trip (it must be cheap:
//! read the shared facts, call nothing slow), and, after an apply that changed something, in
//! one verify round trip that polls every check until all are healthy and print the same thing
//! twice in a row (a container that restarted in between prints another restart count), or the
//! deadline passes ([`verify_script`]). The engine knows nothing of what is checked.

use serde::Serialize;

use super::sections::{self, SectionId};
use super::{Change, Desired, Probe, Resource, SharedFact};
use crate::sh::Script;

/// Seconds the verify round trip waits at most for every check to turn healthy.
pub const VERIFY_DEADLINE_SECS: u32 = 30;
/// Seconds a healthy check must stay the same (no restart in between) to count.
pub const SETTLE_SECS: u32 = 2;
/// Set (to 1) in the verify script: shared facts may then take the slower, fuller path (the
/// docker CLI's restart counts rather than the Engine API's list).
pub const THOROUGH_VAR: &str = "PROVISION_THOROUGH";

/// What a health snippet reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Verdict {
    /// The service works.
    Ok,
    /// It does not: why, and what its log said.
    Failed {
        /// One line.
        why: String,
        /// Last lines of the container's log or the unit's journal (may be empty).
        #[serde(skip_serializing_if = "String::is_empty")]
        evidence: String,
    },
}

impl Verdict {
    /// Reads a snippet's output (`rc`: its exit status; a snippet that fails is unhealthy).
    pub fn parse(rc: i32, output: &str) -> Verdict {
        let (head, evidence) = match output.split_once("\n--\n") {
            Some((h, e)) => (h, e.trim_end().to_string()),
            None => (output.strip_suffix("\n--").unwrap_or(output), String::new()),
        };
        let mut health = None;
        let mut why = None;
        for line in head.lines() {
            match line.split_once('=') {
                Some(("health", v)) => health = Some(v.trim().to_string()),
                Some(("why", v)) => why = Some(v.trim().to_string()),
                _ => {}
            }
        }
        match (rc, health.as_deref()) {
            (0, Some("ok")) => Verdict::Ok,
            (0, Some("failed")) => Verdict::Failed { why: why.unwrap_or_else(|| "unhealthy".into()), evidence },
            _ => Verdict::Failed {
                why: why.unwrap_or_else(|| format!("the health check did not answer (exit {rc})")),
                evidence: if evidence.is_empty() { output.trim().to_string() } else { evidence },
            },
        }
    }

    /// Whether the service works.
    pub fn is_ok(&self) -> bool {
        matches!(self, Verdict::Ok)
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Ok => f.write_str("healthy"),
            Verdict::Failed { why, evidence } if evidence.is_empty() => write!(f, "unhealthy: {why}"),
            Verdict::Failed { why, evidence } => write!(f, "unhealthy: {why}\n{evidence}"),
        }
    }
}

/// How to tell a resource's service works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// POSIX sh printing `health=ok|failed`, optionally `why=` and other `key=value` lines.
    pub script: String,
    /// POSIX sh printing what the service said (its log's last lines), run when it fails.
    pub evidence: Option<String>,
    /// Also checked in the probe. A resource whose own probe already reads what the check
    /// would (a unit's active state, which its plan starts when it is not) is checked only
    /// after an apply, keeping the no-op round trip as cheap as it was.
    pub in_probe: bool,
}

impl Health {
    /// A check without evidence to show.
    pub fn new(script: impl Into<String>) -> Self {
        Health { script: script.into(), evidence: None, in_probe: true }
    }

    /// Adds the command printing evidence.
    pub fn evidence(mut self, cmd: impl Into<String>) -> Self {
        self.evidence = Some(cmd.into());
        self
    }

    /// Checked only in the verify after an apply (see [`Health::in_probe`]).
    pub fn verify_only(mut self) -> Self {
        self.in_probe = false;
        self
    }

    /// sh printing the separator and the evidence (last lines, nothing that could pass for a
    /// frame marker), or nothing.
    fn evidence_script(&self) -> String {
        match &self.evidence {
            Some(cmd) => format!("echo --; {{ {cmd}\n}} 2>&1 | tail -n 8 | sed 's/^@@/ @@/'"),
            None => "true".into(),
        }
    }

    /// The probe's section body: the check (without the section's `set -e`: checks read
    /// failing commands' exit statuses), and the evidence when it fails.
    pub fn probe_script(&self) -> String {
        format!(
            "h=$(\nset +e\n{}\n) || true\nprintf '%s\\n' \"$h\"\ncase \"$h\" in health=ok*) ;; *) {} ;; esac",
            self.script,
            self.evidence_script()
        )
    }
}

/// A role's check of something no single resource owns (a port answering, a daemon's mirror):
/// a resource with nothing to converge and only a health snippet.
#[derive(Debug, Clone)]
pub struct Check {
    /// What is checked, e.g. `docker TLS on port 2376`.
    pub what: String,
    /// The check.
    pub health: Health,
    /// Shared facts its snippet reads (e.g. whether a daemon's Engine API answered this run).
    pub facts: Vec<SharedFact>,
}

impl Check {
    /// A check reading no shared fact.
    pub fn new(what: impl Into<String>, health: Health) -> Self {
        Check { what: what.into(), health, facts: Vec::new() }
    }
}

impl Resource for Check {
    fn shared_facts(&self) -> Vec<SharedFact> {
        self.facts.clone()
    }

    fn id(&self) -> String {
        format!("check {}", self.what)
    }

    fn probe(&self) -> Probe {
        Probe::Script(String::new())
    }

    fn plan(&self, _: &str) -> Result<Option<Change>, String> {
        Ok(None)
    }

    fn health(&self) -> Option<Health> {
        Some(self.health.clone())
    }
}

/// The steps whose health is checked.
pub fn checked(desired: &Desired) -> Vec<(usize, Health)> {
    desired.steps.iter().enumerate().filter_map(|(i, s)| s.resource.health().map(|h| (i, h))).collect()
}

/// The verify script: polls `checks` (step index, check) every [`SETTLE_SECS`], re-gathering
/// the shared facts each time (thoroughly: [`THOROUGH_VAR`] is set), until every check is
/// healthy and printed the same output twice in a row (a container that restarts in between
/// prints another restart count), or [`VERIFY_DEADLINE_SECS`] passed; then prints each check's
/// verdict as section `k<i>`: one still changing at the deadline has failed, and every failed
/// one shows its evidence.
pub fn verify_script(desired: &Desired, checks: &[(usize, Health)], nonce: &str) -> String {
    let mut s = super::probe::prelude();
    let mut facts: Vec<SharedFact> = Vec::new();
    for (i, _) in checks {
        for f in desired.steps[*i].resource.shared_facts() {
            if !facts.iter().any(|g| g.var == f.var) {
                facts.push(f);
            }
        }
    }
    // Each check is a function writing its output to a variable; the loop compares them.
    let mut round = Script::new();
    for f in &facts {
        round.line(&format!("{}=$(", f.var)).line(&f.script).line(")");
    }
    round.line("all=ok");
    for (i, h) in checks {
        round.line(&format!("k{i}=$(\n{}\n)", h.script));
        round.line(&format!("case \"$k{i}\" in health=ok*) ;; *) all=bad ;; esac"));
        round.line(&format!("s{i}=yes; [ \"$k{i}\" = \"$p{i}\" ] || {{ s{i}=no; settled=no; }}; p{i}=$k{i}"));
    }
    s.line(&format!("{THOROUGH_VAR}=1; export {THOROUGH_VAR}"));
    s.line(&format!("deadline=$(( $(date +%s) + {VERIFY_DEADLINE_SECS} ))"));
    s.line("while :; do");
    s.line("settled=yes");
    s.append(&round);
    s.line("[ \"$all\" = ok ] && [ \"$settled\" = yes ] && break");
    s.line("[ \"$(date +%s)\" -ge \"$deadline\" ] && break");
    s.line(&format!("sleep {SETTLE_SECS}"));
    s.line("done");
    for (i, h) in checks {
        let body = format!(
            "case \"$k{i}\" in\n\
             health=ok*) if [ \"$s{i}\" = yes ]; then printf '%s\\n' \"$k{i}\"; exit 0; fi\n\
             printf 'health=failed\\nwhy=it kept changing for {VERIFY_DEADLINE_SECS} s (restarting?)\\n'; printf '%s\\n' \"$k{i}\" | grep -v -e '^health=' -e '^why=' ;;\n\
             *) printf '%s\\n' \"$k{i}\" ;;\n\
             esac\n{}",
            h.evidence_script()
        );
        sections::part(&mut s, nonce, &SectionId::Health(*i), &body, false);
    }
    sections::done(&mut s, nonce);
    s.into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        assert_eq!(Verdict::parse(0, "health=ok"), Verdict::Ok);
        let v = Verdict::parse(0, "health=failed\nwhy=container restarting\n--\nline1\nline2\n");
        assert_eq!(v, Verdict::Failed { why: "container restarting".into(), evidence: "line1\nline2".into() });
        assert!(v.to_string().starts_with("unhealthy: container restarting\nline1"));
        assert!(!Verdict::parse(0, "").is_ok(), "no verdict is not healthy");
        assert!(!Verdict::parse(1, "health=ok").is_ok(), "a failing snippet is not healthy");
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["status"], "failed");
        assert_eq!(serde_json::to_value(Verdict::Ok).unwrap()["status"], "ok");
    }

    #[test]
    fn verify_polls_until_settled_and_prints_each_check() {
        let mut d = Desired::default();
        d.steps.push(super::super::Step::new(Check::new("x", Health::new("echo health=ok"))));
        let s = verify_script(&d, &checked(&d), "N");
        assert!(s.contains("while :; do") && s.contains("sleep 2") && s.contains("@@N begin k0"), "{s}");
        let out = std::process::Command::new("sh").arg("-c").arg(&s).output().unwrap();
        let f = sections::parse(&String::from_utf8_lossy(&out.stdout), "N").unwrap();
        assert!(f.done);
        assert_eq!(f.section(&SectionId::Health(0)).unwrap().body, "health=ok");
    }
}
