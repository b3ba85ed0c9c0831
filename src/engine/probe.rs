//! Gathering facts: one script that prints the current state of every resource of a host.

use super::error::{HostError, StepError};
use super::gather::{self, Probe};
use super::health::{self, Verdict};
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

/// The fact-gathering script for `desired`: one part per step (or per batch of steps, see
/// [`gather`]), then the apply mark and the pending handlers.
///
/// Every part runs at once, each into its own file of a private directory, printed in order
/// once all are done: the parts only read, and a sequential probe spends most of its time
/// starting small programs one after the other and waiting for daemons. The shared facts (a
/// daemon's containers, read from its API) start at the same time as the parts that do not read
/// them; the parts that do start once they are in.
///
/// `probes` are the steps' probes ([`gather::probes`]); [`gather::expand`] reads the output
/// with the same ones.
pub fn script(desired: &Desired, probes: &[Probe], nonce: &str) -> String {
    let mut s = prelude();
    let facts = super::SharedFact::gathered(desired.steps.iter().flat_map(|st| st.resource.shared_facts()));
    // Each part with what it waits for.
    let mut requests: Vec<(SectionId, health::Request)> = Vec::new();
    let mut parts: Vec<(SectionId, String, Needs)> = gather::batch_parts(probes)
        .into_iter()
        .map(|(id, body)| {
            let needs = if matches!(id, SectionId::Fact(_)) { Needs::Facts } else { Needs::Nothing };
            (id, body, needs)
        })
        .collect();
    for (i, (step, probe)) in desired.steps.iter().zip(probes).enumerate() {
        let reads_facts = if step.resource.shared_facts().is_empty() { Needs::Nothing } else { Needs::Facts };
        // Only a step's own sh has a part; `gather::expand` gives the others their section.
        if let Probe::Script(body) = probe {
            parts.push((SectionId::Step(i), body.clone(), reads_facts));
        }
        if let Some(d) = &step.deferred {
            parts.push((SectionId::Read(i), read_file_script(&d.reads()).into_string(), Needs::Nothing));
        }
        if let Some(h) = step.resource.health().filter(|h| h.in_probe) {
            let id = SectionId::Health(i);
            match &h.request {
                Some(req) => {
                    let needs = if reads_facts == Needs::Facts { Needs::FactsAndRequests } else { Needs::Requests };
                    parts.push((id.clone(), format!("{}\n{}", health::take_request_sh(&id), h.probe_script()), needs));
                    requests.push((id, req.clone()));
                }
                None => parts.push((id, h.probe_script(), reads_facts)),
            }
        }
    }
    parts.push((SectionId::Generation, print_file_script(GENERATION_FILE), Needs::Nothing));
    parts.push((SectionId::Pending, print_file_script(PENDING_FILE), Needs::Nothing));
    s.line("pd=$(mktemp -d /run/provision-probe.XXXXXX 2>/dev/null || mktemp -d) || exit 125");
    s.line("trap 'rm -rf \"$pd\"' EXIT");
    let fact_jobs: Vec<String> = facts
        .iter()
        .enumerate()
        .map(|(k, f)| {
            s.line("(").line(&f.script).line(&format!(") > \"$pd/v{k}\" 2>/dev/null &"));
            s.line(&format!("j{k}=$!"));
            format!("\"$j{k}\"")
        })
        .collect();
    let part =
        |s: &mut Script, k: usize, id: &SectionId, body: &str| sections::background_part(s, nonce, id, body, &format!("\"$pd/{k}\""));
    let start = |s: &mut Script, needs: Needs| {
        for (k, (id, body, _)) in parts.iter().enumerate().filter(|(_, p)| p.2 == needs) {
            part(s, k, id, body);
        }
    };
    // The requests (one curl) in a job of their own that then starts their checks: neither
    // waits for the facts, nor the facts' parts for them.
    if !requests.is_empty() {
        let batched: Vec<(SectionId, &health::Request)> = requests.iter().map(|(id, r)| (id.clone(), r)).collect();
        s.line("{").line(&health::batch_requests_sh(&batched, "\"$pd/requests\""));
        s.line(&health::read_requests_sh("\"$pd/requests\""));
        start(&mut s, Needs::Requests);
        s.line("wait\n} &").line("jr=$!");
    }
    start(&mut s, Needs::Nothing);
    if !facts.is_empty() {
        s.line(&format!("wait {}", fact_jobs.join(" ")));
        for (k, f) in facts.iter().enumerate() {
            s.line(&format!("{}=$(cat \"$pd/v{k}\")", f.var));
        }
        // A check reading both the facts and its request's outcome (none today) waits for both.
        if parts.iter().any(|p| p.2 == Needs::FactsAndRequests) {
            s.line("wait \"$jr\"");
            s.line(&health::read_requests_sh("\"$pd/requests\""));
            start(&mut s, Needs::FactsAndRequests);
        }
        start(&mut s, Needs::Facts);
    }
    s.line("wait");
    s.line(&format!("cat {}", (0..parts.len()).map(|k| format!("\"$pd/{k}\"")).collect::<Vec<_>>().join(" ")));
    sections::done(&mut s, nonce);
    s.into_string()
}

/// What a probe part waits for before it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Needs {
    /// Starts at once.
    Nothing,
    /// The shared facts (it reads their variables).
    Facts,
    /// The batched requests' outcomes (see [`health::Request`]).
    Requests,
    /// Both.
    FactsAndRequests,
}

/// sh printing a small text file if it exists, with the shell's own `read` (no program starts).
fn print_file_script(path: &str) -> String {
    let mut s = Script::new();
    s.set("f", path);
    s.line("if [ -f \"$f\" ]; then while IFS= read -r l || [ -n \"$l\" ]; do printf '%s\\n' \"$l\"; done < \"$f\"; fi");
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

/// Reads every step's finding from the framed probe output, once [`gather::expand`] has given
/// each step its section (each resource compares what it found with what it wants). Fails only
/// when the framing itself is broken or incomplete (then nothing about the host can be trusted).
pub fn read_facts(desired: &Desired, framed: &Framed) -> Result<Facts, HostError> {
    if !framed.done {
        return Err(HostError::ProbeUnfinished);
    }
    let Some(pending) = framed.section(&SectionId::Pending) else { return Err(HostError::ProbeIncomplete) };
    let steps: Vec<&sections::Section> = (0..desired.steps.len()).filter_map(|i| framed.section(&SectionId::Step(i))).collect();
    if steps.len() != desired.steps.len() {
        return Err(HostError::FactCount { expected: desired.steps.len(), got: steps.len() });
    }
    let pending = pending.body.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect();
    let findings = desired
        .steps
        .iter()
        .zip(steps)
        .map(|(step, section)| {
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
