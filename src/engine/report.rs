//! What a run did, per host and resource, printed for humans or as one JSON document.

use serde::Serialize;

use super::error::{HostError, StepError, serialize_display};
use super::health::Verdict;
use super::{Diff, Status};
use crate::output::{self, Style, paint};

/// The outcome for one resource (or handler).
#[derive(Debug, Clone, Serialize)]
pub struct ResourceResult {
    /// Resource id, or `handler <id>`.
    pub id: String,
    /// Final status.
    pub status: Status,
    /// What changed (empty when ok).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
    /// Unified diff (files only; `--diff`); secret content shows as a note.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// Why it failed or was skipped.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "serialize_display")]
    pub error: Option<StepError>,
    /// Whether its service works, for resources that declare a health check (the verify's
    /// verdict after an apply that changed something, else the probe's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<Verdict>,
}

/// The outcome for one host.
#[derive(Debug, Clone, Serialize)]
pub struct HostReport {
    /// Inventory name.
    #[serde(skip)]
    pub host: String,
    /// Counts.
    pub ok: usize,
    /// Counts.
    pub changed: usize,
    /// Counts (a host-level failure counts as one).
    pub failed: usize,
    /// Counts.
    pub skipped: usize,
    /// Host-level failure: unreachable, locked, broken output.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "serialize_display")]
    pub error: Option<HostError>,
    /// Per resource, in order.
    pub resources: Vec<ResourceResult>,
}

/// Text shown instead of a secret file's diff.
pub const SECRET_DIFF: &str = "(secret content changed)";

impl HostReport {
    /// Builds the report and its counts.
    pub fn new(host: &str, resources: Vec<ResourceResult>, error: Option<HostError>) -> Self {
        let count = |s: Status| resources.iter().filter(|r| r.status == s).count();
        let failed = count(Status::Failed) + usize::from(error.is_some() && count(Status::Failed) == 0);
        HostReport {
            host: host.to_string(),
            ok: count(Status::Ok),
            changed: count(Status::Changed),
            failed,
            skipped: count(Status::Skipped),
            error,
            resources,
        }
    }

    /// A host that could not be worked on at all.
    pub fn failed(host: &str, error: HostError) -> Self {
        Self::new(host, Vec::new(), Some(error))
    }
}

/// Renders a diff for output.
pub fn diff_text(d: &Diff) -> String {
    match d {
        Diff::Text(t) => t.clone(),
        Diff::Secret => SECRET_DIFF.to_string(),
    }
}

/// Prints the human report: each host's resources, diffs when asked, and a recap.
pub fn print_human(reports: &[HostReport], check: bool) {
    let mut text: String = reports.iter().map(|r| host_text(r, check)).collect();
    text.push_str(&recap_text(reports, check));
    output::out(&text);
}

/// One host's part of the human report: its resources, with errors and diffs.
pub fn host_text(r: &HostReport, check: bool) -> String {
    let mut text = paint(Style::Bold, &format!("{}\n", r.host));
    if let Some(e) = &r.error {
        text.push_str(&format!("  {} {e}\n", paint(Style::Red, "failed ")));
    }
    for res in &r.resources {
        let (style, word) = match res.status {
            Status::Ok => (Style::Green, "ok"),
            Status::Changed if check => (Style::Yellow, "would change"),
            Status::Changed => (Style::Yellow, "changed"),
            Status::Failed => (Style::Red, "failed"),
            Status::Skipped => (Style::Dim, "skipped"),
        };
        let changes = if res.changes.is_empty() { String::new() } else { format!(" ({})", res.changes.join(", ")) };
        text.push_str(&format!("  {} {}{changes}\n", paint(style, &format!("{word:<8}")), res.id));
        if let Some(e) = &res.error {
            for line in e.to_string().lines() {
                text.push_str(&format!("      {}\n", paint(Style::Red, line)));
            }
        }
        if let Some(d) = &res.diff {
            for line in d.lines() {
                let styled = match line.chars().next() {
                    Some('+') if !line.starts_with("+++") => paint(Style::Green, line),
                    Some('-') if !line.starts_with("---") => paint(Style::Red, line),
                    Some('@') => paint(Style::Cyan, line),
                    _ => line.to_string(),
                };
                text.push_str(&format!("      {styled}\n"));
            }
        }
    }
    text
}

/// The recap: one line of counts per host.
pub fn recap_text(reports: &[HostReport], check: bool) -> String {
    let mut text = paint(Style::Bold, if check { "\nRECAP (check mode: nothing was changed)\n" } else { "\nRECAP\n" });
    let width = reports.iter().map(|r| r.host.len()).max().unwrap_or(0);
    for r in reports {
        let line = format!("ok={} changed={} failed={} skipped={}", r.ok, r.changed, r.failed, r.skipped);
        let style = if r.failed > 0 {
            Style::Red
        } else if r.changed > 0 {
            Style::Yellow
        } else {
            Style::Green
        };
        text.push_str(&format!("{}  {}\n", output::host_prefix(&r.host, width), paint(style, &line)));
    }
    text
}

/// Prints `{"hosts": {"<host>": {...}}}`.
pub fn print_json(reports: &[HostReport]) {
    let hosts: serde_json::Map<String, serde_json::Value> =
        reports.iter().map(|r| (r.host.clone(), serde_json::to_value(r).expect("report is JSON"))).collect();
    let doc = serde_json::json!({ "hosts": hosts });
    output::out(&(serde_json::to_string_pretty(&doc).expect("JSON") + "\n"));
}
