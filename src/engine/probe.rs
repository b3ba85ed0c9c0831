//! Gathering facts: one script that prints the current state of every resource of a host.

use super::error::{HostError, StepError};
use super::health::Verdict;
use super::sections::{self, Framed, SectionId};
use super::{Change, Desired};
use crate::sh::{Cmd, Script};

/// The environment every generated script starts with: a sane PATH (sudo may reset it), the C
/// locale so tool output is parseable, and umask 022 (files that must be private set their mode
/// before a byte is written).
pub fn prelude() -> Script {
    let mut s = Script::new();
    s.set("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    s.line("export PATH LC_ALL=C");
    s.cmd(&Cmd::new("umask").arg("022"));
    s
}

/// Handlers an interrupted or failed apply still owes, one id per line: written when an apply
/// script starts, removed when it finishes, read by the next probe.
pub const PENDING_FILE: &str = "/var/lib/provision/pending-handlers";

/// Where each apply leaves a mark of its own (a nonce when it starts, another when it ends). The
/// probe reads it; the apply script, under the host's lock, refuses to run when it is no longer
/// what the probe read: another run applied in between, so the facts are stale.
pub const GENERATION_FILE: &str = "/var/lib/provision/generation";

/// The fact-gathering script for `desired`: one part per step, then the pending handlers.
pub fn script(desired: &Desired, nonce: &str) -> String {
    let mut s = prelude();
    let mut seen = Vec::new();
    for fact in desired.steps.iter().flat_map(|st| st.resource.shared_facts()) {
        if !seen.contains(&fact.var) {
            debug_assert!(crate::sh::is_var_name(&fact.var), "bad shared fact variable {}", fact.var);
            s.line(&format!("{}=$(", fact.var)).line(&fact.script).line(")");
            seen.push(fact.var);
        }
    }
    let mut parts: Vec<(SectionId, String)> = Vec::new();
    for (i, step) in desired.steps.iter().enumerate() {
        parts.push((SectionId::Step(i), step.resource.probe()));
        if let Some(d) = &step.deferred {
            parts.push((SectionId::Read(i), read_file_script(&d.reads()).into_string()));
        }
        if let Some(h) = step.resource.health().filter(|h| h.in_probe) {
            parts.push((SectionId::Health(i), h.probe_script()));
        }
    }
    parts.push((SectionId::Generation, Cmd::new("cat").arg(GENERATION_FILE).raw("2>/dev/null || true").render()));
    parts.push((SectionId::Pending, Cmd::new("cat").arg(PENDING_FILE).raw("2>/dev/null || true").render()));
    // Every part at once, each into its own file of a private directory, printed in order once
    // all are done: the parts only read, and a sequential probe spends most of its time starting
    // small programs one after the other (~3 ms each on a lab host) and waiting for daemons.
    s.line("pd=$(mktemp -d /run/provision-probe.XXXXXX 2>/dev/null || mktemp -d) || exit 125");
    s.line("trap 'rm -rf \"$pd\"' EXIT");
    let mut files = Vec::new();
    for (k, (id, body)) in parts.iter().enumerate() {
        let out = format!("\"$pd/{k}\"");
        sections::background_part(&mut s, nonce, id, body, &out);
        files.push(out);
    }
    s.line("wait");
    s.line(&format!("cat {}", files.join(" ")));
    sections::done(&mut s, nonce);
    s.into_string()
}

/// sh printing `symlink`, `absent`, or `present` and the file's content in base64. A symbolic
/// link is never followed: whatever it points at would be read as root and sent here.
fn read_file_script(path: &str) -> Script {
    let mut s = Script::new();
    s.set("f", path);
    s.line("if [ -L \"$f\" ]; then echo symlink; elif [ -f \"$f\" ]; then echo present; base64 < \"$f\"; else echo absent; fi");
    s
}

/// The content a deferred step's read section holds (`None`: no such file).
pub fn deferred_content(path: &str, body: &str) -> Result<Option<Vec<u8>>, StepError> {
    use base64::Engine;
    let (head, rest) = body.split_once('\n').unwrap_or((body, ""));
    match head.trim() {
        "absent" => Ok(None),
        "symlink" => Err(StepError::ReadSymlink { path: path.to_string() }),
        "present" => {
            let b64: String = rest.lines().collect();
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map(Some)
                .map_err(|e| StepError::ReadGarbled(format!("bad file content: {e}")))
        }
        other => Err(StepError::ReadGarbled(format!("unexpected `{other}` reading a file"))),
    }
}

/// What the probe found for one step.
#[derive(Debug, Clone)]
pub enum Finding {
    /// Already as desired.
    Ok,
    /// Needs this change.
    Change(Change),
    /// The probe failed or its output made no sense.
    Failed(StepError),
}

/// What the probe found: a finding per step, and the ids of handlers a previous run owes.
#[derive(Debug, Clone)]
pub struct Facts {
    /// One per step, in order.
    pub findings: Vec<Finding>,
    /// Handlers notified by an earlier run that did not get to run them.
    pub pending: Vec<String>,
}

/// Reads every step's finding from the framed probe output (each resource compares what it
/// found with what it wants). Fails only when the framing itself is broken or incomplete (then
/// nothing about the host can be trusted).
pub fn read_facts(desired: &Desired, framed: &Framed) -> Result<Facts, HostError> {
    if !framed.done {
        return Err(HostError::ProbeUnfinished);
    }
    // Deferred steps' file reads were consumed by `resolve` before planning.
    let sections: Vec<&sections::Section> =
        framed.sections.iter().filter(|s| !matches!(s.id, SectionId::Read(_) | SectionId::Health(_) | SectionId::Generation)).collect();
    let (pending, steps) = match sections.split_last() {
        Some((last, steps)) if last.id == SectionId::Pending => (last, steps),
        _ => return Err(HostError::ProbeIncomplete),
    };
    if steps.len() != desired.steps.len() {
        return Err(HostError::FactCount { expected: desired.steps.len(), got: steps.len() });
    }
    let pending = pending.body.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect();
    let findings = desired
        .steps
        .iter()
        .zip(steps)
        .enumerate()
        .map(|(i, (step, section))| {
            if section.id != SectionId::Step(i) {
                return Finding::Failed(StepError::OutOfOrder { expected: SectionId::Step(i).to_string(), got: section.id.to_string() });
            }
            if section.rc != 0 {
                return Finding::Failed(StepError::ProbeFailed { rc: section.rc, output: section.body.trim().to_string() });
            }
            match step.resource.plan(&section.body) {
                Ok(None) => Finding::Ok,
                Ok(Some(c)) => Finding::Change(c),
                Err(e) => Finding::Failed(StepError::Unparsable(e)),
            }
        })
        .collect();
    Ok(Facts { findings, pending })
}

/// Each checked step's verdict in framed probe or verify output, by step index.
pub fn verdicts(framed: &Framed) -> Vec<(usize, Verdict)> {
    framed
        .sections
        .iter()
        .filter_map(|s| match s.id {
            SectionId::Health(i) => Some((i, Verdict::parse(s.rc, &s.body))),
            _ => None,
        })
        .collect()
}

/// The apply mark the probe found (empty: none yet).
pub fn generation(framed: &Framed) -> String {
    framed.section(&SectionId::Generation).map(|s| s.body.trim().to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deferred_read_refuses_a_symlink() {
        let script = read_file_script("/etc/gitlab-runner/config.toml").into_string();
        assert!(script.starts_with("f=/etc/gitlab-runner/config.toml\nif [ -L \"$f\" ]; then echo symlink;"), "{script}");
        let e = deferred_content("/etc/gitlab-runner/config.toml", "symlink\n").unwrap_err();
        assert_eq!(e.to_string(), "refusing to read /etc/gitlab-runner/config.toml: it is a symbolic link");
        assert_eq!(deferred_content("/x", "absent\n").unwrap(), None);
        assert_eq!(deferred_content("/x", "present\naGk=\n").unwrap(), Some(b"hi".to_vec()));
        assert!(matches!(deferred_content("/x", "what"), Err(StepError::ReadGarbled(_))));
    }
}
