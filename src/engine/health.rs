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
use crate::sh::{Cmd, Script};

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
    /// The HTTP request the script judges (it runs [`Request::sh`] itself): in the probe, the
    /// engine sends it with every other check's.
    pub request: Option<Request>,
}

/// An HTTP request a check judges by its outcome. In the probe the engine sends every check's
/// request with one `curl` (whose start-up costs more than most checks: ~9 ms on a small host)
/// and hands each check `<curl exit status> <HTTP status>` in `$r`; where it did not (the
/// verify, a curl older than 7.75 without `%{exitcode}`), [`Request::sh`] sends it alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `http://` or `https://` URL (through `unix_socket`, its host part is a placeholder).
    pub url: String,
    /// Connect to this unix socket instead of the URL's host.
    pub unix_socket: Option<String>,
    /// Verify the server with this CA file.
    pub cacert: Option<String>,
}

/// The variable of the probe script holding every batched request's outcome, each as
/// ` k<step>:<exit>:<code>` (`-w` reads a format starting with `@` from a file: no `@`).
const REQUESTS_VAR: &str = "PROVISION_REQUESTS";

impl Request {
    /// A plain request to `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Request { url: url.into(), unix_socket: None, cacert: None }
    }

    /// curl's options for this request, body discarded, bounded in time.
    fn curl_args(&self, cmd: Cmd) -> Cmd {
        let mut cmd = cmd.args(["-s", "-o", "/dev/null", "--max-time", "5"]);
        if let Some(sock) = &self.unix_socket {
            cmd = cmd.arg("--unix-socket").arg(sock);
        }
        if let Some(ca) = &self.cacert {
            cmd = cmd.arg("--cacert").arg(ca);
        }
        cmd
    }

    /// sh leaving `<curl exit status> <HTTP status>` in `$r` (`000` when nothing answered), or
    /// an empty `$r` on a host without curl: the engine's batched outcome when it is there,
    /// else from a request of its own.
    pub fn sh(&self) -> String {
        let curl = self.curl_args(Cmd::new("curl")).args(["-w", "%{http_code}"]).arg(&self.url);
        format!(
            "case ${{r:-}} in [0-9]*' '[0-9][0-9][0-9]) ;; *) r=''; if command -v curl >/dev/null 2>&1; then r=$({curl}); r=\"$? $r\"; fi ;; esac"
        )
    }
}

/// sh sending every `(id, request)` with one curl, in parallel, into the file `out` (a sh
/// word); after it, [`take_request_sh`] gives each check its outcome. Without curl (or with one
/// too old for `--parallel`) the file holds nothing usable and each check sends its own; a curl
/// of 7.66 to 7.74 runs the batch but has no `%{exitcode}`, so its checks send theirs again.
pub fn batch_requests_sh(requests: &[(SectionId, &Request)], out: &str) -> String {
    let mut curl = Cmd::new("curl").args(["-Z", "--no-progress-meter"]);
    for (k, (id, req)) in requests.iter().enumerate() {
        if k > 0 {
            curl = curl.arg("--next");
        }
        curl = req.curl_args(curl).arg("-w").arg(format!(" {id}:%{{exitcode}}:%{{http_code}}")).arg(&req.url);
    }
    format!("( command -v curl >/dev/null 2>&1 && {curl} ) > {out} 2>/dev/null")
}

/// sh reading the batched requests' outcomes from the file `file` (a sh word).
pub fn read_requests_sh(file: &str) -> String {
    format!("IFS= read -r {REQUESTS_VAR} < {file} || true")
}

/// sh setting `$r` to the batched outcome of the request of the check `id` (empty when there
/// is none).
pub fn take_request_sh(id: &SectionId) -> String {
    format!(
        "r=''; case ${{{REQUESTS_VAR}:-}} in *\" {id}:\"*) r=${{{REQUESTS_VAR}#* {id}:}}; r=${{r%% *}}; r=\"${{r%%:*}} ${{r#*:}}\" ;; esac"
    )
}

impl Health {
    /// A check without evidence to show.
    pub fn new(script: impl Into<String>) -> Self {
        Health { script: script.into(), evidence: None, in_probe: true, request: None }
    }

    /// Names the request the script judges (see [`Health::request`]).
    pub fn request(mut self, request: Request) -> Self {
        self.request = Some(request);
        self
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
        Probe::Nothing
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
    let facts = SharedFact::gathered(checks.iter().flat_map(|(i, _)| desired.steps[*i].resource.shared_facts()));
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

    /// Runs `script` with sh and no curl on the PATH, and prints `$r` after it.
    fn r_after(script: &str, requests: &str) -> String {
        let o = std::process::Command::new("/bin/sh")
            .args(["-c", &format!("{script}\nprintf '%s' \"$r\"")])
            .env("PATH", "/nonexistent")
            .env(REQUESTS_VAR, requests)
            .output()
            .unwrap();
        String::from_utf8(o.stdout).unwrap()
    }

    #[test]
    fn each_check_finds_its_batched_outcome_or_sends_its_own_request() {
        let all = " k14:56:000 k20:0:200 k3:7:000";
        assert_eq!(r_after(&take_request_sh(&SectionId::Health(20)), all), "0 200");
        assert_eq!(r_after(&take_request_sh(&SectionId::Health(14)), all), "56 000");
        assert_eq!(r_after(&take_request_sh(&SectionId::Health(3)), all), "7 000", "the last one too");
        assert_eq!(r_after(&take_request_sh(&SectionId::Health(2)), all), "", "k2 is not k20's prefix");
        assert_eq!(r_after(&take_request_sh(&SectionId::Health(4)), ""), "", "no batch (no curl on the host)");
        let req = Request::new("http://10.0.0.1:5000/v2/");
        let own = format!("{}\n{}", take_request_sh(&SectionId::Health(20)), req.sh());
        assert_eq!(r_after(&own, all), "0 200", "the batched outcome is used");
        assert_eq!(r_after(&own, " k20::000"), "", "garbage (an old curl): its own request, and without curl none");
        let batch = batch_requests_sh(&[(SectionId::Health(20), &req)], "\"$pd/requests\"");
        assert!(batch.contains(" -w ' k20:%{exitcode}:%{http_code}' http://10.0.0.1:5000/v2/"), "{batch}");
        let sock = Request { url: "http://d/_ping".into(), unix_socket: Some("/run/d.sock".into()), cacert: Some("/ca.pem".into()) };
        assert!(sock.sh().contains("--unix-socket /run/d.sock --cacert /ca.pem -w '%{http_code}' http://d/_ping"), "{}", sock.sh());
    }

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
