//! Running the engine on many hosts at once.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::apply::{self, LOCK_FILE};
use super::probe::{self, Finding};
use super::report::{HostReport, ResourceResult, diff_text};
use super::sections;
use super::{Desired, Status};
use crate::inventory::connection::Connection;
use crate::transport::Output;
use crate::transport::ssh::Ssh;

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

/// Set by the first Ctrl-C: hosts not yet changing anything stop there; apply scripts already
/// running on hosts finish (they are one script each, under the host's lock), and the report
/// says which hosts were not applied. A second Ctrl-C exits at once.
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether the run was interrupted.
pub fn interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst)
}

fn watch_ctrl_c() {
    tokio::spawn(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
            eprintln!("\ninterrupted: finishing what hosts are already applying; nothing new starts (Ctrl-C again to quit now)");
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
}

/// Runs every job concurrently (at most `forks` at once); reports in job order.
pub async fn run_all(jobs: Vec<Job>, opts: Options) -> Vec<HostReport> {
    watch_ctrl_c();
    let total = jobs.len();
    let progress = (std::io::stderr().is_terminal() && total > 0).then(|| {
        let pb = indicatif::ProgressBar::new_spinner();
        pb.enable_steady_tick(Duration::from_millis(120));
        pb.set_message(format!("{} 0/{total} hosts", if opts.check { "planning" } else { "applying" }));
        Arc::new(pb)
    });
    let sem = Arc::new(Semaphore::new(opts.forks.max(1)));
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tasks: Vec<_> = jobs
        .into_iter()
        .map(|job| {
            let (sem, progress, done) = (sem.clone(), progress.clone(), done.clone());
            tokio::spawn(async move {
                let _permit = sem.acquire().await;
                let host = job.connection.host.clone();
                let report = run_host(job, opts).await;
                let n = done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                if let Some(pb) = &progress {
                    pb.set_message(format!("{} {n}/{total} hosts (last: {host})", if opts.check { "planning" } else { "applying" }));
                }
                report
            })
        })
        .collect();
    let mut reports = Vec::with_capacity(total);
    for t in tasks {
        reports.push(t.await.unwrap_or_else(|e| HostReport::failed("?", format!("internal error: {e}"))));
    }
    if let Some(pb) = progress {
        pb.finish_and_clear();
    }
    reports
}

/// Connects, gathers facts, plans, and (unless checking) applies, for one host.
pub async fn run_host(mut job: Job, opts: Options) -> HostReport {
    let host = job.connection.host.clone();
    let mut ssh = match Ssh::connect(&job.connection).await {
        Ok(s) => s,
        Err(e) => return HostReport::failed(&host, e.to_string()),
    };
    let nonce = sections::nonce();
    let script = probe::script(&job.desired, &nonce);
    let mut facts = ssh.run(&script).await;
    // A master kept from an earlier run may point at a host that rebooted or was replaced:
    // the first command then fails in transport; one new connection settles it.
    if facts.is_err() && ssh.reused {
        ssh = match ssh.reconnect(&job.connection).await {
            Ok(s) => s,
            Err(e) => return HostReport::failed(&host, e.to_string()),
        };
        facts = ssh.run(&script).await;
    }
    let report = match facts.map_err(|e| e.to_string()).and_then(|out| framed_output(&out, &nonce)) {
        Ok(framed) => {
            let resolved = resolve_deferred(&mut job.desired, &framed, opts.check).await;
            match probe::plan(&job.desired, &framed) {
                Ok(mut facts) => {
                    for (i, r) in &resolved {
                        if let Err(e) = r {
                            facts.findings[*i] = Finding::Failed(e.clone());
                        }
                    }
                    let mut report = converge(&ssh, &host, &job.desired, &facts, opts).await;
                    finish_deferred(&job.desired, resolved, &mut report, opts.check).await;
                    report
                }
                Err(e) => HostReport::failed(&host, e),
            }
        }
        Err(e) => HostReport::failed(&host, e),
    };
    ssh.close().await;
    report
}

/// Resolves every deferred step from the file its probe read; returns each step's notes or
/// error.
async fn resolve_deferred(desired: &mut Desired, framed: &sections::Framed, check: bool) -> Vec<(usize, Result<Vec<String>, String>)> {
    let mut out = Vec::new();
    for (i, step) in desired.steps.iter_mut().enumerate() {
        let Some(d) = step.deferred.clone() else { continue };
        let id = probe::deferred_section(i);
        let result = match framed.sections.iter().find(|s| s.id == id) {
            None => Err("the fact-gathering output lacks a file read".to_string()),
            Some(s) if s.rc != 0 => Err(format!("reading {} failed (exit {}): {}", d.reads(), s.rc, s.body.trim())),
            Some(s) => match probe::deferred_content(&s.body) {
                Err(e) => Err(e),
                Ok(current) => d.resolve(current.as_deref(), check).await.map(|r| {
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
async fn finish_deferred(desired: &Desired, resolved: Vec<(usize, Result<Vec<String>, String>)>, report: &mut HostReport, check: bool) {
    for (i, result) in resolved {
        let Ok(notes) = result else { continue };
        let Some(d) = &desired.steps[i].deferred else { continue };
        let Some(r) = report.resources.get_mut(i) else { continue };
        r.changes.splice(0..0, notes);
        if check {
            continue;
        }
        let applied = match r.status {
            Status::Ok | Status::Changed => Some(true),
            Status::Failed if r.error.as_deref().is_some_and(|e| e.starts_with("outcome unknown")) => None,
            Status::Failed | Status::Skipped => Some(false),
        };
        r.changes.extend(d.finish(applied).await);
    }
}

async fn converge(ssh: &Ssh, host: &str, desired: &Desired, facts: &probe::Facts, opts: Options) -> HostReport {
    let findings = &facts.findings;
    let mut results: Vec<ResourceResult> = desired
        .steps
        .iter()
        .zip(findings)
        .map(|(step, f)| {
            let (status, changes, diff, error) = match f {
                Finding::Ok => (Status::Ok, vec![], None, None),
                Finding::Change(c) => (Status::Changed, c.what.clone(), c.diff.as_ref().filter(|_| opts.diff).map(diff_text), None),
                Finding::Failed(e) => (Status::Failed, vec![], None, Some(e.clone())),
            };
            ResourceResult { id: step.resource.id(), status, changes, diff, error }
        })
        .collect();
    let plan = apply::plan(desired, facts);
    // Steps after a failed one are not attempted.
    if let Some(first) = findings.iter().position(|f| matches!(f, Finding::Failed(_))) {
        for r in results.iter_mut().skip(first + 1).filter(|r| r.status == Status::Changed) {
            r.status = Status::Skipped;
            r.error = Some("not attempted: an earlier resource failed".into());
        }
    }
    let handler_result = |h: usize, status: Status, error: Option<String>| ResourceResult {
        id: format!("handler {}", desired.handlers[h].id),
        status,
        changes: vec![],
        diff: None,
        error,
    };
    // A prerequisite handler may run more than once; it is reported once.
    let mut due_handlers: Vec<usize> = Vec::new();
    for &(h, _) in &plan.handlers {
        if !due_handlers.contains(&h) {
            due_handlers.push(h);
        }
    }
    if opts.check || (plan.steps.is_empty() && plan.handlers.is_empty()) {
        results.extend(due_handlers.iter().map(|&h| handler_result(h, Status::Changed, None)));
        return HostReport::new(host, results, None);
    }
    let not_applied = |mut results: Vec<ResourceResult>, why: &str| {
        for (i, _) in &plan.steps {
            results[*i].status = Status::Skipped;
            results[*i].error = Some(format!("not applied: {why}"));
        }
        HostReport::new(host, results, Some(format!("{why}: nothing was changed on this host")))
    };
    let mut uploaded: Vec<&str> = Vec::new();
    for (i, _) in &plan.steps {
        if let Finding::Change(c) = &findings[*i] {
            for u in &c.uploads {
                if interrupted() {
                    remove_uploads(ssh, &uploaded).await;
                    return not_applied(results, "interrupted (Ctrl-C)");
                }
                uploaded.push(&u.remote);
                if let Err(e) = ssh.upload(&u.local, &u.remote).await {
                    results[*i].status = Status::Failed;
                    results[*i].error = Some(e.to_string());
                    return HostReport::new(host, results, Some("an upload failed; nothing was applied".into()));
                }
            }
        }
    }
    if interrupted() {
        remove_uploads(ssh, &uploaded).await;
        return not_applied(results, "interrupted (Ctrl-C)");
    }
    let nonce = sections::nonce();
    let script = apply::script(desired, &plan, &nonce);
    let framed = match run_framed(ssh, &script, &nonce).await {
        Ok(f) => f,
        Err(e) => {
            // Nothing trustworthy came back: everything planned is unknown.
            for (i, _) in &plan.steps {
                results[*i].status = Status::Failed;
                results[*i].error = Some(format!("outcome unknown: {e}"));
            }
            return HostReport::new(host, results, Some(e));
        }
    };
    if framed.notes.iter().any(|n| n == "locked") {
        for (i, _) in &plan.steps {
            results[*i].status = Status::Skipped;
        }
        return HostReport::new(
            host,
            results,
            Some(format!("another provision run is applying to this host (lock {LOCK_FILE} is held); nothing was changed")),
        );
    }
    if framed.notes.iter().any(|n| n == "noflock") {
        return HostReport::new(host, results, Some("the host has no `flock` (util-linux or busybox); nothing was changed".into()));
    }
    // Stopped: a step failed and the script ended itself. Neither stopped nor done: the
    // connection went away, so what was not reported is unknown, not skipped.
    let lost = !framed.done && !framed.notes.iter().any(|n| n == "stopped");
    let (unreached, unreached_status) = if lost {
        ("outcome unknown: the connection was lost before this step reported", Status::Failed)
    } else {
        ("not attempted: an earlier step failed", Status::Skipped)
    };
    for (i, _) in &plan.steps {
        match framed.sections.iter().find(|s| s.id == format!("r{i}")) {
            Some(s) if s.rc == 0 => {}
            Some(s) => {
                results[*i].status = Status::Failed;
                results[*i].error = Some(format!("exit {}: {}", s.rc, s.body.trim()));
            }
            None => {
                results[*i].status = unreached_status;
                results[*i].error = Some(unreached.into());
            }
        }
    }
    for &h in &due_handlers {
        let runs: Vec<Option<&sections::Section>> = plan
            .handlers
            .iter()
            .filter(|&&(hh, _)| hh == h)
            .map(|&(_, after)| framed.sections.iter().find(|s| s.id == apply::handler_section(h, after)))
            .collect();
        results.push(match runs.iter().flatten().find(|s| s.rc != 0) {
            Some(s) => handler_result(h, Status::Failed, Some(format!("exit {}: {}", s.rc, s.body.trim()))),
            None if runs.iter().all(Option::is_some) => handler_result(h, Status::Changed, None),
            None => handler_result(h, unreached_status, Some(unreached.into())),
        });
    }
    let error = lost.then(|| "the apply script did not finish: the connection was lost (owed handlers run on the next apply)".to_string());
    HostReport::new(host, results, error)
}

/// Removes files uploaded for an apply that will not run (its script would have).
async fn remove_uploads(ssh: &Ssh, paths: &[&str]) {
    if !paths.is_empty() {
        let quoted: Vec<String> = paths.iter().map(|p| crate::vars::template::shell_quote(p)).collect();
        let _ = ssh.run(&format!("rm -f {}", quoted.join(" "))).await;
    }
}

/// Runs a framed script and parses its output; a failed transport, a refused sudo or broken
/// framing becomes one message.
async fn run_framed(ssh: &Ssh, script: &str, nonce: &str) -> Result<sections::Framed, String> {
    let out: Output = ssh.run(script).await.map_err(|e| e.to_string())?;
    framed_output(&out, nonce)
}

fn framed_output(out: &Output, nonce: &str) -> Result<sections::Framed, String> {
    let stdout = out.stdout_text();
    match sections::parse(&stdout, nonce) {
        Ok(f) if f.done || !f.notes.is_empty() || !f.sections.is_empty() => Ok(f),
        Ok(_) => Err(format!(
            "the host ran nothing (exit {}): {}",
            out.status.map_or("signal".into(), |c| c.to_string()),
            out.stderr_text().trim()
        )),
        Err(e) => Err(format!("{e}; stderr: {}", out.stderr_text().trim())),
    }
}
