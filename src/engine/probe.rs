//! Gathering facts: one script that prints the current state of every resource of a host.

use super::sections::{self, Framed};
use super::{Change, Desired};

/// Environment every generated script starts with: a sane PATH (sudo may reset it) and the C
/// locale, so tool output is parseable.
pub const PRELUDE: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nexport PATH LC_ALL=C\numask 022\n";

/// Handlers an interrupted or failed apply still owes, one id per line: written when an apply
/// script starts, removed when it finishes, read by the next probe.
pub const PENDING_FILE: &str = "/var/lib/provision/pending-handlers";

/// The fact-gathering script for `desired`: one part per step, then the pending handlers.
pub fn script(desired: &Desired, nonce: &str) -> String {
    let mut s = String::from(PRELUDE);
    let mut seen = Vec::new();
    for fact in desired.steps.iter().flat_map(|st| st.resource.shared_facts()) {
        if !seen.contains(&fact.var) {
            s.push_str(&format!("{}=$(\n{}\n)\n", fact.var, fact.script));
            seen.push(fact.var);
        }
    }
    for (i, step) in desired.steps.iter().enumerate() {
        s.push_str(&sections::part(nonce, &format!("r{i}"), &step.resource.probe(), false));
        if let Some(d) = &step.deferred {
            let read = format!(
                "f={}
if [ -f \"$f\" ]; then echo present; base64 < \"$f\"; else echo absent; fi",
                crate::vars::template::shell_quote(&d.reads())
            );
            s.push_str(&sections::part(nonce, &deferred_section(i), &read, false));
        }
    }
    s.push_str(&sections::part(nonce, "pending", &format!("cat {PENDING_FILE} 2>/dev/null || true"), false));
    s.push_str(&sections::done(nonce));
    s
}

/// The id of the probe section holding a deferred step's file.
pub fn deferred_section(step: usize) -> String {
    format!("d{step}")
}

/// The content a deferred step's read section holds (`None`: no such file).
pub fn deferred_content(body: &str) -> Result<Option<Vec<u8>>, String> {
    use base64::Engine;
    let (head, rest) = body.split_once('\n').unwrap_or((body, ""));
    match head.trim() {
        "absent" => Ok(None),
        "present" => {
            let b64: String = rest.lines().collect();
            base64::engine::general_purpose::STANDARD.decode(b64.trim()).map(Some).map_err(|e| format!("bad file content: {e}"))
        }
        other => Err(format!("unexpected `{other}` reading a file")),
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
    Failed(String),
}

/// What the probe found: a finding per step, and the ids of handlers a previous run owes.
#[derive(Debug, Clone)]
pub struct Facts {
    /// One per step, in order.
    pub findings: Vec<Finding>,
    /// Handlers notified by an earlier run that did not get to run them.
    pub pending: Vec<String>,
}

/// Plans every step from the framed probe output. Fails only when the framing itself is broken
/// or incomplete (then nothing about the host can be trusted).
pub fn plan(desired: &Desired, framed: &Framed) -> Result<Facts, String> {
    if !framed.done {
        return Err("the fact-gathering script did not finish (connection lost or output cut)".into());
    }
    // Deferred steps' file reads were consumed by `resolve` before planning.
    let sections: Vec<&sections::Section> = framed.sections.iter().filter(|s| !s.id.starts_with('d')).collect();
    let (pending, steps) = match sections.split_last() {
        Some((last, steps)) if last.id == "pending" => (last, steps),
        _ => return Err("the fact-gathering output lacks its last part".into()),
    };
    if steps.len() != desired.steps.len() {
        return Err(format!("expected {} facts, got {}", desired.steps.len(), steps.len()));
    }
    let pending = pending.body.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect();
    let findings = desired
        .steps
        .iter()
        .zip(steps)
        .enumerate()
        .map(|(i, (step, section))| {
            if section.id != format!("r{i}") {
                return Finding::Failed(format!("facts out of order: expected r{i}, got {}", section.id));
            }
            if section.rc != 0 {
                return Finding::Failed(format!("reading the current state failed (exit {}): {}", section.rc, section.body.trim()));
            }
            match step.resource.plan(&section.body) {
                Ok(None) => Finding::Ok,
                Ok(Some(c)) => Finding::Change(c),
                Err(e) => Finding::Failed(format!("cannot understand the current state: {e}")),
            }
        })
        .collect();
    Ok(Facts { findings, pending })
}
