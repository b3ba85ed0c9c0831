//! From what the host printed to what the report says: pure functions, no I/O. The executor
//! ([`super::run`]) feeds them the probe's findings, the schedule and the apply script's
//! framed output.

use super::apply::Schedule;
use super::error::{HostError, NotApplied, StepError};
use super::health::{Health, Verdict};
use super::probe::{Facts, Finding};
use super::report::{HostReport, ResourceResult, diff_text};
use super::sections::{Framed, Note, SectionId};
use super::{Desired, Status};

/// Each step's result as planned: ok, (would be) changed, or failed to probe; changes after a
/// failed probe are not attempted.
pub fn planned(desired: &Desired, facts: &Facts, diff: bool) -> Vec<ResourceResult> {
    let mut results: Vec<ResourceResult> = desired
        .steps
        .iter()
        .zip(&facts.findings)
        .map(|(step, f)| {
            let (status, changes, diff, error) = match f {
                Finding::Ok => (Status::Ok, vec![], None, None),
                Finding::Change(c) => (Status::Changed, c.what.clone(), c.diff.as_ref().filter(|_| diff).map(diff_text), None),
                Finding::Failed(e) => (Status::Failed, vec![], None, Some(e.clone())),
            };
            ResourceResult { id: step.resource.id(), status, changes, diff, error, health: None }
        })
        .collect();
    if let Some(first) = facts.findings.iter().position(|f| matches!(f, Finding::Failed(_))) {
        for r in results.iter_mut().skip(first + 1).filter(|r| r.status == Status::Changed) {
            r.status = Status::Skipped;
            r.error = Some(StepError::EarlierProbeFailed);
        }
    }
    results
}

fn handler_result(desired: &Desired, h: usize, status: Status, error: Option<StepError>) -> ResourceResult {
    ResourceResult { id: format!("handler {}", desired.handlers[h].id), status, changes: vec![], diff: None, error, health: None }
}

/// The report when no apply script runs (check mode, or nothing to do): the planned results and
/// the handlers that would run.
pub fn unapplied(host: &str, desired: &Desired, schedule: &Schedule, mut results: Vec<ResourceResult>) -> HostReport {
    results.extend(schedule.due_handlers().into_iter().map(|h| handler_result(desired, h, Status::Changed, None)));
    HostReport::new(host, results, None)
}

/// The report when the host's apply did not run at all: every scheduled step is skipped.
pub fn not_applied(host: &str, schedule: &Schedule, mut results: Vec<ResourceResult>, why: NotApplied) -> HostReport {
    for (i, _) in &schedule.steps {
        results[*i].status = Status::Skipped;
        results[*i].error = Some(StepError::NotApplied(why));
    }
    let error = match why {
        NotApplied::Interrupted => HostError::Interrupted,
        NotApplied::Locked => HostError::Locked,
        NotApplied::NoFlock => HostError::NoFlock,
        NotApplied::UploadFailed => HostError::UploadFailed,
        NotApplied::HostChanged => HostError::HostChanged,
    };
    HostReport::new(host, results, Some(error))
}

/// The report after an upload for step `step` failed: that step failed, the others were not
/// applied.
pub fn upload_failed(host: &str, schedule: &Schedule, results: Vec<ResourceResult>, step: usize, error: String) -> HostReport {
    let mut report = not_applied(host, schedule, results, NotApplied::UploadFailed);
    let r = &mut report.resources[step];
    r.status = Status::Failed;
    r.error = Some(StepError::Upload(error));
    HostReport::new(host, report.resources, report.error)
}

/// The report from the apply script's output (`Err`: nothing trustworthy came back).
pub fn applied(
    host: &str,
    desired: &Desired,
    schedule: &Schedule,
    mut results: Vec<ResourceResult>,
    output: Result<Framed, HostError>,
) -> HostReport {
    let framed = match output {
        Ok(f) => f,
        Err(e) => {
            // Whether anything ran is unknown.
            for (i, _) in &schedule.steps {
                results[*i].status = Status::Failed;
                results[*i].error = Some(StepError::OutcomeUnknown(e.to_string()));
            }
            let message = e.to_string();
            return HostReport::new(host, results, Some(HostError::ApplyUnreadable(message)));
        }
    };
    if framed.has(&Note::Locked) {
        return not_applied(host, schedule, results, NotApplied::Locked);
    }
    if framed.has(&Note::Changed) {
        return not_applied(host, schedule, results, NotApplied::HostChanged);
    }
    if framed.has(&Note::NoFlock) {
        return not_applied(host, schedule, results, NotApplied::NoFlock);
    }
    // Stopped: a step failed and the script ended itself. Neither stopped nor done: the
    // connection went away, so what did not report is unknown, not skipped.
    let lost = !framed.done && !framed.has(&Note::Stopped);
    let (unreached_status, unreached) =
        if lost { (Status::Failed, StepError::ConnectionLost) } else { (Status::Skipped, StepError::EarlierStepFailed) };
    for (i, _) in &schedule.steps {
        match framed.section(&SectionId::Step(*i)) {
            Some(s) if s.rc == 0 => {}
            Some(s) => {
                results[*i].status = Status::Failed;
                results[*i].error = Some(StepError::Failed { rc: s.rc, output: s.body.trim().to_string() });
            }
            None => {
                results[*i].status = unreached_status;
                results[*i].error = Some(unreached.clone());
            }
        }
    }
    for h in schedule.due_handlers() {
        let runs: Vec<_> = schedule
            .handlers
            .iter()
            .filter(|&&(hh, _)| hh == h)
            .map(|&(_, after)| framed.section(&SectionId::Handler { handler: h, after }))
            .collect();
        results.push(match runs.iter().flatten().find(|s| s.rc != 0) {
            Some(s) => handler_result(desired, h, Status::Failed, Some(StepError::Failed { rc: s.rc, output: s.body.trim().to_string() })),
            None if runs.iter().all(Option::is_some) => handler_result(desired, h, Status::Changed, None),
            None => handler_result(desired, h, unreached_status, Some(unreached.clone())),
        });
    }
    HostReport::new(host, results, lost.then_some(HostError::ApplyLost))
}

/// Records health verdicts (step index, verdict) on the results. A resource whose service does
/// not work fails with the verdict's evidence when it was ok (with `fail_ok`) or changed (with
/// `fail_changed`: after the apply); one that failed only for its health and is healthy now is
/// back to ok or changed.
pub fn with_health(results: &mut [ResourceResult], verdicts: &[(usize, Verdict)], fail_ok: bool, fail_changed: bool) {
    for (i, v) in verdicts {
        let Some(r) = results.get_mut(*i) else { continue };
        r.health = Some(v.clone());
        let unhealthy_before = matches!(r.error, Some(StepError::Unhealthy(_)));
        let fails = match r.status {
            Status::Ok => fail_ok,
            Status::Changed => fail_changed,
            Status::Failed => unhealthy_before,
            Status::Skipped => false,
        };
        if v.is_ok() && unhealthy_before {
            r.status = if r.changes.is_empty() { Status::Ok } else { Status::Changed };
            r.error = None;
        } else if !v.is_ok() && fails {
            r.status = Status::Failed;
            r.error = Some(StepError::Unhealthy(v.clone()));
        }
    }
}

/// The steps a verify re-checks: those with a check that neither failed to converge nor was
/// skipped (an unhealthy one is checked again: the apply may have mended it).
pub fn to_verify(results: &[ResourceResult], checks: &[(usize, Health)]) -> Vec<(usize, Health)> {
    checks
        .iter()
        .filter(|(i, _)| results.get(*i).is_some_and(|r| r.error.is_none() || matches!(r.error, Some(StepError::Unhealthy(_)))))
        .cloned()
        .collect()
}
