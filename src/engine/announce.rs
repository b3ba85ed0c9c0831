//! What a handler's run would affect, said before (plan) and after (apply) it runs: a step
//! whose resource [`Resource::announces`](super::Resource::announces) a handler reads it during
//! the probe (e.g. the containers on the daemon a restart handler restarts), and its note goes
//! beside that handler in the report. Costs no round trip: it is part of the one probe.

use super::Desired;
use super::report::HostReport;
use super::sections::{Framed, SectionId};

/// Adds each announcing step's note to the report line of the handler it names, when that
/// handler is in the report (due, run, failed or not attempted).
pub fn add_notes(desired: &Desired, framed: &Framed, report: &mut HostReport) {
    for (i, step) in desired.steps.iter().enumerate() {
        let Some(section) = framed.section(&SectionId::Step(i)).filter(|s| s.rc == 0) else { continue };
        let Some((handler, note)) = step.resource.announces(&section.body) else { continue };
        let id = format!("handler {handler}");
        if let Some(r) = report.resources.iter_mut().find(|r| r.id == id)
            && !r.changes.contains(&note)
        {
            r.changes.push(note);
        }
    }
}
