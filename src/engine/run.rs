//! Running the engine: one host over a [`Remote`], many hosts at once. This is the thin
//! executor: it sends the scripts, streams uploads and asks [`super::outcome`] what the output
//! means. Progress goes to the injected [`Reporter`](super::progress::Reporter).

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Semaphore;

use super::apply::{self, Schedule};
use super::error::{HostError, NotApplied, StepError};
use super::health::{self, Verdict};
use super::outcome;
use super::probe::{self, Finding};
use super::progress::{Context, Event};
use super::report::{HostReport, ResourceResult};
use super::sections::{self, Framed, SectionId};
use super::{Desired, Status};
use crate::sh::Cmd;
use crate::transport::connection::Connection;
use crate::transport::ssh::Ssh;
use crate::transport::{Output, Remote};

/// How to run.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Change nothing.
    pub check: bool,
    /// Include diffs in the report.
    pub diff: bool,
    /// Hosts worked on at once.
    pub forks: usize,
}

/// One host's work.
pub struct Job {
    /// How to reach it.
    pub connection: Connection,
    /// What it should look like.
    pub desired: Desired,
}

/// Runs every job concurrently (at most `forks` at once); reports in job order. Each host's
/// report also goes to the context's reporter as soon as that host is done.
pub async fn run_all(jobs: Vec<Job>, opts: Options, ctx: &Context) -> Vec<HostReport> {
    let sem = Arc::new(Semaphore::new(opts.forks.max(1)));
    let tasks: Vec<_> = jobs
        .into_iter()
        .map(|job| {
            let (sem, ctx) = (sem.clone(), ctx.clone());
            let host = job.connection.host.clone();
            let task = tokio::spawn(async move {
                let _permit = sem.acquire().await;
                // A host still waiting for its turn when Ctrl-C came does not start.
                let report = if ctx.cancel.is_cancelled() {
                    HostReport::failed(&job.connection.host, HostError::Interrupted)
                } else {
                    run_host_with(job, opts, &ctx).await
                };
                ctx.reporter.finished(&report);
                report
            });
            (host, task)
        })
        .collect();
    let mut reports = Vec::with_capacity(tasks.len());
    for (host, t) in tasks {
        reports.push(t.await.unwrap_or_else(|e| HostReport::failed(&host, HostError::Internal(e.to_string()))));
    }
    reports
}

/// Connects, gathers facts, plans, and (unless checking) applies, for one host; reports to
/// no one and cannot be cancelled.
pub async fn run_host(job: Job, opts: Options) -> HostReport {
    run_host_with(job, opts, &Context::default()).await
}

/// [`run_host`] with progress and cancellation.
pub async fn run_host_with(mut job: Job, opts: Options, ctx: &Context) -> HostReport {
    let host = job.connection.host.clone();
    for d in job.desired.steps.iter().filter_map(|s| s.deferred.as_ref()) {
        d.prepare();
    }
    ctx.reporter.event(&host, &Event::Connecting);
    let started = Instant::now();
    let mut ssh = match Ssh::connect(&job.connection).await {
        Ok(s) => s,
        Err(e) => return HostReport::failed(&host, e.into()),
    };
    tracing::info!(host, reused = ssh.reused, "connected in {:.2?}", started.elapsed());
    let probe = ProbeScript::new(&job.desired);
    let mut facts = probe.run(&ssh, &host, ctx).await;
    // A master kept from an earlier run may point at a host that rebooted or was replaced:
    // the first command then fails in transport; one new connection settles it.
    if facts.is_err() && ssh.reused {
        tracing::info!(host, "the kept connection is dead; reconnecting");
        ssh = match ssh.reconnect(&job.connection).await {
            Ok(s) => s,
            Err(e) => return HostReport::failed(&host, e.into()),
        };
        facts = probe.run(&ssh, &host, ctx).await;
    }
    let framed = probe.framed(facts, &job.desired);
    let report = after_probe(&ssh, &host, &mut job.desired, framed, opts, ctx).await;
    ssh.close().await;
    report
}

/// Gathers facts, plans and (unless checking) applies `desired` on an already open `remote`.
pub async fn converge<R: Remote>(remote: &R, host: &str, desired: &mut Desired, opts: Options, ctx: &Context) -> HostReport {
    let probe = ProbeScript::new(desired);
    let facts = probe.run(remote, host, ctx).await;
    let framed = probe.framed(facts, desired);
    after_probe(remote, host, desired, framed, opts, ctx).await
}

/// The fact-gathering script of one run, its nonce and the probes it was built from.
struct ProbeScript {
    nonce: String,
    script: String,
    /// Each step's probe, as the script was built from them.
    probes: Vec<super::gather::Probe>,
}

impl ProbeScript {
    fn new(desired: &Desired) -> Self {
        let nonce = sections::nonce();
        let probes = super::gather::probes(desired);
        let script = probe::script(desired, &probes, &nonce);
        ProbeScript { nonce, script, probes }
    }

    async fn run<R: Remote>(&self, remote: &R, host: &str, ctx: &Context) -> Result<Output, HostError> {
        ctx.reporter.event(host, &Event::Probing);
        let started = Instant::now();
        trace_script(host, "probe", &self.script);
        let out = remote.run(&self.script).await.map_err(HostError::from);
        tracing::info!(host, "facts gathered in {:.2?}", started.elapsed());
        out
    }

    /// The probe's output with a section per step (see [`super::gather::expand`]).
    fn framed(&self, out: Result<Output, HostError>, desired: &Desired) -> Result<Framed, HostError> {
        let mut framed = framed_output(&out?, &self.nonce)?;
        super::gather::expand(desired, &self.probes, &mut framed);
        Ok(framed)
    }
}

/// Everything after the probe: resolve deferred steps, read the facts, schedule, upload, apply.
async fn after_probe<R: Remote>(
    remote: &R,
    host: &str,
    desired: &mut Desired,
    framed: Result<Framed, HostError>,
    opts: Options,
    ctx: &Context,
) -> HostReport {
    let framed = match framed {
        Ok(f) => f,
        Err(e) => return HostReport::failed(host, e),
    };
    // Resolving deferred steps may act outside the host (register runners with GitLab): not
    // after Ctrl-C.
    if ctx.cancel.is_cancelled() {
        return HostReport::failed(host, HostError::Interrupted);
    }
    ctx.reporter.event(host, &Event::Planning);
    let started = Instant::now();
    let resolved = resolve_deferred(desired, &framed, opts.check).await;
    let mut facts = match probe::read_facts(desired, &framed) {
        Ok(f) => f,
        Err(e) => return HostReport::failed(host, e),
    };
    for (i, r) in &resolved {
        if let Err(e) = r {
            facts.findings[*i] = Finding::Failed(e.clone());
        }
    }
    let verdicts = probe::verdicts(&framed);
    if !opts.check {
        // An unhealthy service that is otherwise as desired gets one repair attempt (the
        // verify then says whether it worked).
        for (i, v) in &verdicts {
            if let (false, Finding::Ok, Some(repair)) = (v.is_ok(), &facts.findings[*i], desired.steps[*i].resource.repair()) {
                facts.findings[*i] = Finding::Change(repair);
            }
        }
    }
    let mut results = outcome::planned(desired, &facts, opts.diff);
    let mut schedule = apply::schedule(desired, &facts);
    // With changes due, the verify after them judges; a service down because of what is about
    // to change is not reported failed by `plan` (its health still says so).
    outcome::with_health(&mut results, &verdicts, schedule.is_empty(), false);
    for r in &results {
        tracing::debug!(host, resource = %r.id, status = ?r.status, changes = %r.changes.join(", "), "planned");
    }
    schedule.read_generation = Some(probe::generation(&framed));
    tracing::info!(host, steps = schedule.steps.len(), handlers = schedule.handlers.len(), "planned in {:.2?}", started.elapsed());
    let mut report = if opts.check || schedule.is_empty() {
        outcome::unapplied(host, desired, &schedule, results)
    } else {
        apply_schedule(remote, host, desired, &facts.findings, &schedule, results, ctx).await
    };
    if !opts.check && report.changed > 0 && report.error.is_none() && !ctx.cancel.is_cancelled() {
        report = verify(remote, host, desired, report, ctx).await;
    }
    finish_deferred(desired, resolved, &mut report, opts.check).await;
    super::announce::add_notes(desired, &framed, &mut report);
    report
}

/// After an apply that changed something: one round trip that polls every health check until
/// the services work (or the deadline passes), and records the verdicts.
async fn verify<R: Remote>(remote: &R, host: &str, desired: &Desired, report: HostReport, ctx: &Context) -> HostReport {
    let checks = outcome::to_verify(&report.resources, &health::checked(desired));
    if checks.is_empty() {
        return report;
    }
    ctx.reporter.event(host, &Event::Verifying { checks: checks.len() });
    let started = Instant::now();
    let nonce = sections::nonce();
    let script = health::verify_script(desired, &checks, &nonce);
    trace_script(host, "verify", &script);
    let verdicts = match remote.run(&script).await.map_err(HostError::from).and_then(|o| framed_output(&o, &nonce)) {
        Ok(f) if f.done => probe::verdicts(&f),
        Ok(_) => unverified(&checks, "the verify script did not finish"),
        Err(e) => unverified(&checks, &e.to_string()),
    };
    tracing::info!(host, "verified in {:.2?}", started.elapsed());
    let mut resources = report.resources;
    outcome::with_health(&mut resources, &verdicts, true, true);
    HostReport::new(host, resources, report.error)
}

/// Every check failed because the verify itself did not complete.
fn unverified(checks: &[(usize, health::Health)], why: &str) -> Vec<(usize, Verdict)> {
    let v = Verdict::Failed { why: format!("could not verify: {why}"), evidence: String::new() };
    checks.iter().map(|(i, _)| (*i, v.clone())).collect()
}

/// Uploads what the changes need, then runs the apply script.
async fn apply_schedule<R: Remote>(
    remote: &R,
    host: &str,
    desired: &Desired,
    findings: &[Finding],
    schedule: &Schedule,
    results: Vec<ResourceResult>,
    ctx: &Context,
) -> HostReport {
    let uploads: Vec<(usize, &super::Upload)> = schedule
        .steps
        .iter()
        .filter_map(|(i, _)| match &findings[*i] {
            Finding::Change(c) => Some(c.uploads.iter().map(move |u| (*i, u))),
            _ => None,
        })
        .flatten()
        .collect();
    if !uploads.is_empty() {
        let bytes = uploads.iter().filter_map(|(_, u)| std::fs::metadata(&u.local).ok()).map(|m| m.len()).sum();
        ctx.reporter.event(host, &Event::Uploading { files: uploads.len(), bytes });
    }
    let started = Instant::now();
    let mut uploaded: Vec<&str> = Vec::new();
    for (i, u) in uploads {
        if ctx.cancel.is_cancelled() {
            remove_uploads(remote, &uploaded).await;
            return outcome::not_applied(host, schedule, results, NotApplied::Interrupted);
        }
        // Recorded first: a partial file is removed too.
        uploaded.push(&u.remote);
        let result = tokio::select! {
            r = remote.upload(&u.local, &u.remote) => Some(r),
            () = ctx.cancel.cancelled() => None,
        };
        match result {
            Some(Ok(())) => tracing::info!(host, file = %u.local.display(), "uploaded"),
            Some(Err(e)) => {
                remove_uploads(remote, &uploaded).await;
                return outcome::upload_failed(host, schedule, results, i, e.to_string());
            }
            None => {
                remove_uploads(remote, &uploaded).await;
                return outcome::not_applied(host, schedule, results, NotApplied::Interrupted);
            }
        }
    }
    if !uploaded.is_empty() {
        tracing::info!(host, "uploads done in {:.2?}", started.elapsed());
    }
    if ctx.cancel.is_cancelled() {
        remove_uploads(remote, &uploaded).await;
        return outcome::not_applied(host, schedule, results, NotApplied::Interrupted);
    }
    ctx.reporter.event(host, &Event::Applying { steps: schedule.steps.len(), handlers: schedule.due_handlers().len() });
    let started = Instant::now();
    let nonce = sections::nonce();
    let script = apply::script(desired, schedule, &nonce);
    trace_script(host, "apply", &script);
    let follow = StepFollower::new(host, desired, schedule, &nonce, ctx);
    let output = match remote.run_observed(&script, &|line| follow.line(line)).await {
        Ok(out) => framed_output(&out, &nonce),
        Err(e) => Err(e.into()),
    };
    tracing::info!(host, "applied in {:.2?}", started.elapsed());
    outcome::applied(host, desired, schedule, results, output)
}

/// Follows the apply script's output as it arrives: each section it begins is reported as
/// "step k/n" (the live line, and a `-v` event with the time since the previous one).
struct StepFollower<'a> {
    host: &'a str,
    desired: &'a Desired,
    nonce: String,
    of: usize,
    ctx: &'a Context,
    seen: std::sync::Mutex<(usize, Instant)>,
}

impl<'a> StepFollower<'a> {
    fn new(host: &'a str, desired: &'a Desired, schedule: &Schedule, nonce: &str, ctx: &'a Context) -> Self {
        let of = schedule.steps.len() + schedule.handlers.len();
        let seen = std::sync::Mutex::new((0, Instant::now()));
        StepFollower { host, desired, nonce: nonce.to_string(), of, ctx, seen }
    }

    fn line(&self, line: &str) {
        let Some(id) = sections::begun(line, &self.nonce) else { return };
        let what = match id {
            SectionId::Step(i) => self.desired.steps.get(i).map(|s| s.resource.id()),
            SectionId::Handler { handler, .. } => self.desired.handlers.get(handler).map(|h| format!("handler {}", h.id)),
            _ => None,
        };
        let Some(what) = what else { return };
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.0 += 1;
        let host = self.host;
        tracing::info!(host, step = seen.0, of = self.of, "applying step {}/{}: {what} (+{:.2?})", seen.0, self.of, seen.1.elapsed());
        seen.1 = Instant::now();
        self.ctx.reporter.event(host, &Event::Step { step: seen.0, of: self.of, what });
    }
}

/// Resolves every deferred step from the file its probe read; returns each step's notes or
/// error.
async fn resolve_deferred(desired: &mut Desired, framed: &Framed, check: bool) -> Vec<(usize, Result<Vec<String>, StepError>)> {
    let mut out = Vec::new();
    for (i, step) in desired.steps.iter_mut().enumerate() {
        let Some(d) = step.deferred.clone() else { continue };
        let path = d.reads();
        let result = match framed.section(&SectionId::Read(i)) {
            None => Err(StepError::ReadMissing),
            Some(s) if s.rc != 0 => Err(StepError::ReadFailed { path, rc: s.rc, output: s.body.trim().to_string() }),
            Some(s) => match probe::deferred_content(&path, &s.body) {
                Err(e) => Err(e),
                Ok(current) => d.resolve(current.as_deref(), check).await.map_err(StepError::Resolve).map(|r| {
                    step.resource = r.resource;
                    r.notes
                }),
            },
        };
        out.push((i, result));
    }
    out
}

/// Tells deferred steps how their apply went, and adds every note to the report.
async fn finish_deferred(desired: &Desired, resolved: Vec<(usize, Result<Vec<String>, StepError>)>, report: &mut HostReport, check: bool) {
    for (i, result) in resolved {
        let Ok(notes) = result else { continue };
        let Some(d) = &desired.steps[i].deferred else { continue };
        let Some(r) = report.resources.get_mut(i) else { continue };
        r.changes.splice(0..0, notes);
        if check {
            continue;
        }
        let applied = match (r.status, &r.error) {
            (Status::Ok | Status::Changed, _) => Some(true),
            (Status::Failed, Some(StepError::OutcomeUnknown(_) | StepError::ConnectionLost)) => None,
            (Status::Failed | Status::Skipped, _) => Some(false),
        };
        r.changes.extend(d.finish(applied).await);
    }
}

/// Removes files uploaded for an apply that will not run (its script would have).
async fn remove_uploads<R: Remote>(remote: &R, paths: &[&str]) {
    if !paths.is_empty() {
        let rm = Cmd::new("rm").arg("-f").end_of_options().args(paths);
        let _ = remote.run(&rm.render()).await;
    }
}

/// Parses a framed script's output; a refused sudo or broken framing becomes a host error.
fn framed_output(out: &Output, nonce: &str) -> Result<Framed, HostError> {
    let stdout = out.stdout_text();
    match sections::parse(&stdout, nonce) {
        Ok(f) if f.done || !f.notes.is_empty() || !f.sections.is_empty() => Ok(f),
        Ok(_) => Err(HostError::RanNothing { status: out.status, stderr: out.stderr_text().trim().to_string() }),
        Err(error) => Err(HostError::Framing { error, stderr: out.stderr_text().trim().to_string() }),
    }
}

/// Logs a script at `-vvv`. Heredoc payloads (file contents, possibly secret and base64
/// encoded, which redaction by value cannot recognise) are left out.
fn trace_script(host: &str, what: &str, script: &str) {
    if tracing::enabled!(tracing::Level::TRACE) {
        tracing::trace!(host, "{what} script:\n{}", without_heredocs(script));
    }
}

/// `script` with every heredoc's body replaced by a line saying how long it was.
pub fn without_heredocs(script: &str) -> String {
    let mut out = String::with_capacity(script.len().min(1 << 16));
    let mut end: Option<String> = None;
    let mut skipped = 0usize;
    for line in script.lines() {
        if let Some(delim) = &end {
            if line == delim {
                out.push_str(&format!("[{skipped} line(s) of content not shown]\n{line}\n"));
                end = None;
                skipped = 0;
            } else {
                skipped += 1;
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
        if let Some((_, tail)) = line.rsplit_once("<<") {
            let delim = tail.trim().trim_start_matches('-').trim_matches(['\'', '"']);
            if !delim.is_empty() && delim.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                end = Some(delim.to_string());
            }
        }
    }
    out
}
