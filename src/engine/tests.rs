//! The engine's fault handling through a fake [`Remote`] that replays framed output: no host,
//! no root. The fake reads the scripts the engine sends (their nonce and section ids) and
//! answers as a host would in each scenario.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::error::{HostError, NotApplied, StepError};
use super::health::{Health, Verdict};
use super::progress::{Cancel, Context, Event, Reporter};
use super::report::HostReport;
use super::run::{Options, converge};
use super::{Change, Desired, Probe, Resource, Status, Step, Upload};
use crate::transport::{Output, Remote, TransportError};

/// A resource whose probe prints its state; `ok` means nothing to do.
#[derive(Debug)]
struct Fake {
    id: &'static str,
    state: &'static str,
    uploads: Vec<&'static str>,
}

fn fake(id: &'static str, state: &'static str) -> Fake {
    Fake { id, state, uploads: vec![] }
}

impl Resource for Fake {
    fn id(&self) -> String {
        self.id.into()
    }
    fn probe(&self) -> Probe {
        format!("echo {}", self.state).into()
    }
    fn plan(&self, state: &str) -> Result<Option<Change>, String> {
        match state {
            "ok" => Ok(None),
            "garbage" => Err("no idea".into()),
            _ => {
                let mut c = Change::new(vec!["changed".into()], format!("echo applying {}", self.id));
                c.uploads = self
                    .uploads
                    .iter()
                    .map(|u| Upload { local: PathBuf::from(format!("/local/{u}")), remote: format!("/remote/{u}") })
                    .collect();
                Ok(Some(c))
            }
        }
    }
}

/// How the fake host answers the apply script.
#[derive(Debug, Clone)]
enum Apply {
    /// Every part succeeds.
    Done,
    /// Another run holds the lock.
    Locked,
    /// The connection drops after this many parts reported.
    LostAfter(usize),
    /// Another run applied after the probe.
    Changed,
    /// The part with this id fails with exit 1 and this output; the script stops there.
    FailAt(&'static str, &'static str),
}

/// How the fake host answers uploads.
#[derive(Debug, Clone, Copy)]
enum Uploads {
    Succeed,
    /// The user presses Ctrl-C while the first upload streams; it never finishes by itself.
    CtrlCDuringFirst,
    Fail,
}

/// What the engine sent.
#[derive(Debug, Clone, PartialEq)]
enum Call {
    Probe,
    Apply(String),
    Upload(String),
    Run(String),
    Verify,
}

struct FakeHost {
    pending: &'static str,
    apply: Apply,
    uploads: Uploads,
    cancel: Cancel,
    calls: Mutex<Vec<Call>>,
    /// What health checks print in the probe, then in the verify.
    health: (&'static str, &'static str),
}

impl FakeHost {
    fn new(apply: Apply) -> Self {
        FakeHost {
            pending: "",
            apply,
            uploads: Uploads::Succeed,
            cancel: Cancel::new(),
            calls: Mutex::new(vec![]),
            health: ("health=ok", "health=ok"),
        }
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    fn record(&self, c: Call) {
        self.calls.lock().unwrap().push(c);
    }

    fn answer(&self, script: &str) -> Output {
        let Some(nonce) = script.split("printf '@@").nth(1).and_then(|s| s.split(' ').next()) else {
            self.record(Call::Run(script.to_string()));
            return Output { status: Some(0), ..Output::default() };
        };
        // (id, body) of each part, in script order.
        let begin = format!("printf '@@{nonce} begin ");
        let mut parts: Vec<(String, String)> = Vec::new();
        let mut lines = script.lines();
        while let Some(l) = lines.next() {
            if let Some(id) = l.strip_prefix(&begin) {
                let id = id.trim_end_matches("\\n'").to_string();
                let body: Vec<&str> = lines.by_ref().skip(2).take_while(|l| *l != ") 2>&1").collect();
                parts.push((id, body.join("\n")));
            }
        }
        let mut out = String::new();
        let mut section = |id: &str, rc: i32, body: &str| out.push_str(&format!("@@{nonce} begin {id}\n{body}\n@@{nonce} end {id} {rc}\n"));
        if script.contains("while :; do") {
            self.record(Call::Verify);
            for (id, _) in &parts {
                section(id, 0, self.health.1);
            }
            out.push_str(&format!("@@{nonce} done\n"));
            return Output { status: Some(0), stdout: out.into_bytes(), stderr: vec![] };
        }
        let probe = parts.iter().any(|(id, _)| id == "pending");
        if probe {
            self.record(Call::Probe);
            for (id, body) in &parts {
                let text = match id.as_str() {
                    "pending" => self.pending,
                    k if k.starts_with('k') => self.health.0,
                    _ => body.strip_prefix("echo ").unwrap_or(""),
                };
                section(id, 0, text);
            }
            out.push_str(&format!("@@{nonce} done\n"));
            return Output { status: Some(0), stdout: out.into_bytes(), stderr: vec![] };
        }
        self.record(Call::Apply(script.to_string()));
        match &self.apply {
            Apply::Locked => out = format!("@@{nonce} locked\n"),
            Apply::Changed => out = format!("@@{nonce} changed\n"),
            Apply::Done => {
                for (id, _) in &parts {
                    section(id, 0, "");
                }
                out.push_str(&format!("@@{nonce} done\n"));
            }
            Apply::LostAfter(k) => {
                for (id, _) in parts.iter().take(*k) {
                    section(id, 0, "");
                }
            }
            Apply::FailAt(failing, message) => {
                for (id, _) in &parts {
                    if id == failing {
                        section(id, 1, message);
                        out.push_str(&format!("@@{nonce} stopped\n"));
                        break;
                    }
                    section(id, 0, "");
                }
            }
        }
        Output { status: Some(0), stdout: out.into_bytes(), stderr: vec![] }
    }
}

impl Remote for FakeHost {
    async fn run(&self, script: &str) -> Result<Output, TransportError> {
        Ok(self.answer(script))
    }

    async fn upload(&self, _local: &Path, remote: &str) -> Result<(), TransportError> {
        self.record(Call::Upload(remote.to_string()));
        match self.uploads {
            Uploads::Succeed => Ok(()),
            Uploads::Fail => Err(TransportError::Lost { host: "h".into(), reason: "disk full".into() }),
            Uploads::CtrlCDuringFirst => {
                self.cancel.cancel();
                std::future::pending().await
            }
        }
    }
}

fn three_changes() -> Desired {
    let mut d = Desired::default();
    d.handler("restart app", "systemctl restart app");
    d.steps = vec![Step::new(fake("a", "old")).notify("restart app"), Step::new(fake("b", "old")), Step::new(fake("c", "old"))];
    d
}

fn run(host: &FakeHost, desired: Desired) -> HostReport {
    run_mode(host, desired, false)
}

fn run_mode(host: &FakeHost, mut desired: Desired, check: bool) -> HostReport {
    let ctx = Context { cancel: host.cancel.clone(), ..Context::default() };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(converge(host, "h", &mut desired, Options { check, diff: false, forks: 1 }, &ctx))
}

fn statuses(r: &HostReport) -> Vec<(String, Status, Option<String>)> {
    r.resources.iter().map(|x| (x.id.clone(), x.status, x.error.as_ref().map(ToString::to_string))).collect()
}

#[test]
fn everything_applies_and_the_handler_runs_after_its_notifier() {
    let host = FakeHost::new(Apply::Done);
    let r = run(&host, three_changes());
    assert_eq!(r.changed, 4, "{r:?}");
    assert_eq!(r.resources[3].id, "handler restart app");
    assert!(r.error.is_none());
}

#[test]
fn connection_lost_after_step_k_leaves_the_rest_unknown() {
    // Parts in the script: r0, h0.0, r1, r2. Two reported: r0 and the handler.
    let host = FakeHost::new(Apply::LostAfter(2));
    let r = run(&host, three_changes());
    let lost = Some(StepError::ConnectionLost.to_string());
    assert_eq!(
        statuses(&r),
        [
            ("a".into(), Status::Changed, None),
            ("b".into(), Status::Failed, lost.clone()),
            ("c".into(), Status::Failed, lost),
            ("handler restart app".into(), Status::Changed, None),
        ]
    );
    assert!(matches!(r.error, Some(HostError::ApplyLost)), "{r:?}");
    assert_eq!(r.failed, 2);
}

#[test]
fn a_held_lock_changes_nothing_and_says_why() {
    let host = FakeHost::new(Apply::Locked);
    let r = run(&host, three_changes());
    assert_eq!((r.changed, r.skipped), (0, 3), "{r:?}");
    assert!(r.resources.iter().all(|x| x.error == Some(StepError::NotApplied(NotApplied::Locked))));
    assert!(r.error.as_ref().unwrap().to_string().contains("another provision run is applying to this host"));
}

#[test]
fn ctrl_c_during_an_upload_applies_nothing_and_removes_what_was_uploaded() {
    let mut host = FakeHost::new(Apply::Done);
    host.uploads = Uploads::CtrlCDuringFirst;
    let mut d = three_changes();
    d.steps[1] = Step::new(Fake { id: "b", state: "old", uploads: vec!["one", "two"] });
    let r = run(&host, d);
    assert_eq!(r.error.as_ref().unwrap().to_string(), "interrupted (Ctrl-C): nothing was changed on this host");
    assert_eq!(r.skipped, 3, "{r:?}");
    let calls = host.calls();
    assert_eq!(
        calls,
        [Call::Probe, Call::Upload("/remote/one".into()), Call::Run("rm -f -- /remote/one".into())],
        "the partial upload is removed, the second never starts, no apply script runs"
    );
}

#[test]
fn ctrl_c_before_planning_acts_nowhere() {
    // Cancelled while the probe ran: nothing is resolved (no GitLab call), scheduled or applied.
    let host = FakeHost::new(Apply::Done);
    host.cancel.cancel();
    let r = run(&host, three_changes());
    assert_eq!(r.error.as_ref().unwrap().to_string(), "interrupted (Ctrl-C): nothing was changed on this host");
    assert_eq!(host.calls(), [Call::Probe], "no upload, no apply script");
}

#[test]
fn a_host_waiting_for_its_turn_does_not_start_after_ctrl_c() {
    let host = FakeHost::new(Apply::Done);
    let ctx = Context { cancel: host.cancel.clone(), ..Context::default() };
    ctx.cancel.cancel();
    let conn = crate::transport::connection::Connection::local_for_tests("h");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let reports = rt.block_on(super::run::run_all(
        vec![super::run::Job { connection: conn, desired: three_changes() }],
        Options { check: false, diff: false, forks: 1 },
        &ctx,
    ));
    assert_eq!(reports[0].error.as_ref().unwrap().to_string(), "interrupted (Ctrl-C): nothing was changed on this host");
    assert!(host.calls().is_empty(), "it never connected");
}

#[test]
fn a_failed_upload_fails_its_step_and_applies_nothing() {
    let mut host = FakeHost::new(Apply::Done);
    host.uploads = Uploads::Fail;
    let mut d = three_changes();
    d.steps[2] = Step::new(Fake { id: "c", state: "old", uploads: vec!["one"] });
    let r = run(&host, d);
    assert_eq!(r.error.as_ref().unwrap().to_string(), "an upload failed; nothing was applied");
    assert_eq!(statuses(&r)[2], ("c".into(), Status::Failed, Some("connection to h lost: disk full".into())));
    assert_eq!(statuses(&r)[0].1, Status::Skipped);
    assert_eq!(host.calls().last(), Some(&Call::Run("rm -f -- /remote/one".into())));
}

#[test]
fn owed_handlers_run_again_with_nothing_else_to_do() {
    let mut host = FakeHost::new(Apply::Done);
    host.pending = "restart app\n";
    let mut d = Desired::default();
    d.handler("restart app", "systemctl restart app");
    d.steps = vec![Step::new(fake("a", "ok")).notify("restart app")];
    let r = run(&host, d);
    assert_eq!(statuses(&r), [("a".into(), Status::Ok, None), ("handler restart app".into(), Status::Changed, None)]);
    let Some(Call::Apply(script)) = host.calls().pop() else { panic!("no apply script: {:?}", host.calls()) };
    assert!(script.contains("printf '%s\\n' 'restart app' > /var/lib/provision/pending-handlers"), "{script}");
}

#[test]
fn a_failing_handler_fails_and_stops_the_script() {
    let host = FakeHost::new(Apply::FailAt("h0.0", "Job for app.service failed."));
    let r = run(&host, three_changes());
    assert_eq!(
        statuses(&r),
        [
            ("a".into(), Status::Changed, None),
            ("b".into(), Status::Skipped, Some("not attempted: an earlier step failed".into())),
            ("c".into(), Status::Skipped, Some("not attempted: an earlier step failed".into())),
            ("handler restart app".into(), Status::Failed, Some("exit 1: Job for app.service failed.".into())),
        ]
    );
    assert!(r.error.is_none(), "a stopped script is not a lost connection");
}

#[test]
fn an_unparsable_probe_fails_its_step_and_nothing_after_it_is_attempted() {
    let host = FakeHost::new(Apply::Done);
    let mut d = three_changes();
    d.steps[1] = Step::new(fake("b", "garbage"));
    let r = run(&host, d);
    let s = statuses(&r);
    assert_eq!(s[1], ("b".into(), Status::Failed, Some("cannot understand the current state: no idea".into())));
    assert_eq!(s[2], ("c".into(), Status::Skipped, Some("not attempted: an earlier resource failed".into())));
    let Some(Call::Apply(script)) = host.calls().pop() else { panic!("no apply script") };
    assert!(script.contains("echo applying a") && !script.contains("echo applying c"), "only changes before the failure apply");
}

#[test]
fn check_mode_sends_no_apply_script() {
    let host = FakeHost::new(Apply::Done);
    let mut d = three_changes();
    let ctx = Context::default();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let r = rt.block_on(converge(&host, "h", &mut d, Options { check: true, diff: false, forks: 1 }, &ctx));
    assert_eq!(r.changed, 4);
    assert_eq!(host.calls(), [Call::Probe]);
}

#[test]
fn the_lock_file_is_created_root_only() {
    let host = FakeHost::new(Apply::Done);
    run(&host, three_changes());
    let Some(Call::Apply(script)) = host.calls().pop() else { panic!("no apply script") };
    let lock = script.lines().position(|l| l == "exec 9>> /run/provision.lock").expect("the lock is opened");
    let lines: Vec<&str> = script.lines().collect();
    assert_eq!(lines[lock - 1], "umask 077", "created 0600");
    assert_eq!(lines[lock + 1..lock + 3], ["umask 022", "chmod 600 /run/provision.lock"], "an older 0644 file is fixed");
}

#[test]
fn logged_scripts_leave_out_file_contents() {
    let script = "d=/etc\nbase64 -d > \"$t\" <<'PROVISION_EOF'\nc2VjcmV0\nc2VjcmV0\nPROVISION_EOF\nmv -f \"$t\" x\n";
    assert_eq!(
        super::run::without_heredocs(script),
        "d=/etc\nbase64 -d > \"$t\" <<'PROVISION_EOF'\n[2 line(s) of content not shown]\nPROVISION_EOF\nmv -f \"$t\" x\n"
    );
}

#[test]
fn a_host_another_run_applied_to_since_the_probe_is_left_alone() {
    let host = FakeHost::new(Apply::Changed);
    let r = run(&host, three_changes());
    assert_eq!(
        r.error.as_ref().unwrap().to_string(),
        "the host changed since it was read (another provision run applied to it); nothing was changed"
    );
    assert_eq!((r.changed, r.skipped), (0, 3), "{r:?}");
    let Some(Call::Apply(script)) = host.calls().pop() else { panic!("no apply script") };
    let check = script.lines().position(|l| l.contains("/var/lib/provision/generation 2>/dev/null)\" = \"$seen\"")).expect("checked");
    let lock = script.lines().position(|l| l.starts_with("flock -n 9")).unwrap();
    assert!(lock < check, "checked under the lock");
    assert!(script.lines().any(|l| l == "seen=''"), "the probe found no mark: {script}");
}

/// A service as configured whose health the fake host decides; a restart is its repair.
#[derive(Debug)]
struct Service(&'static str);

impl Resource for Service {
    fn id(&self) -> String {
        self.0.into()
    }
    fn probe(&self) -> Probe {
        Probe::Script("echo ok".into())
    }
    fn plan(&self, state: &str) -> Result<Option<Change>, String> {
        Fake::plan(&fake(self.0, "ok"), state)
    }
    fn health(&self) -> Option<Health> {
        Some(Health::new("check it").evidence("show its log"))
    }
    fn repair(&self) -> Option<Change> {
        Some(Change::new(vec!["restarted (unhealthy)".into()], "restart it".into()))
    }
}

const CRASHING: &str = "health=failed\nwhy=the container is restarting\n--\ndockerd: unknown flag --bogus";

fn one_service(state: &'static str) -> Desired {
    Desired { steps: vec![Step::new(fake("config", state)), Step::new(Service("container dind"))], ..Desired::default() }
}

#[test]
fn plan_reports_an_unhealthy_service_with_its_log_and_changes_nothing() {
    let mut host = FakeHost::new(Apply::Done);
    host.health = (CRASHING, "health=ok");
    let r = run_mode(&host, one_service("ok"), true);
    assert_eq!(host.calls(), [Call::Probe]);
    assert_eq!(r.failed, 1, "{r:?}");
    let e = r.resources[1].error.as_ref().unwrap().to_string();
    assert_eq!(e, "unhealthy: the container is restarting\ndockerd: unknown flag --bogus");
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["resources"][1]["health"]["status"], "failed");
    assert_eq!(json["resources"][1]["health"]["evidence"], "dockerd: unknown flag --bogus");
    assert!(json["resources"][0].get("health").is_none(), "no check, no health field");
}

#[test]
fn apply_restarts_an_unhealthy_service_once_and_the_verify_judges() {
    let mut host = FakeHost::new(Apply::Done);
    host.health = (CRASHING, "health=ok\nrestarts=0");
    let r = run(&host, one_service("ok"));
    assert!(matches!(host.calls()[..], [Call::Probe, Call::Apply(_), Call::Verify]), "{:?}", host.calls());
    assert_eq!(statuses(&r)[1], ("container dind".into(), Status::Changed, None));
    assert_eq!(r.resources[1].changes, ["restarted (unhealthy)"]);
    assert_eq!(r.resources[1].health, Some(Verdict::Ok));
    // Still crashing after the restart: failed, with the verify's evidence.
    host.health = (CRASHING, CRASHING);
    host.calls.lock().unwrap().clear();
    let r = run(&host, one_service("ok"));
    assert_eq!(r.failed, 1);
    assert!(r.resources[1].error.as_ref().unwrap().to_string().contains("unknown flag --bogus"));
}

#[test]
fn a_change_is_verified_and_a_healthy_no_op_costs_no_extra_round_trip() {
    let mut host = FakeHost::new(Apply::Done);
    host.health = ("health=failed\nwhy=not created yet", CRASHING);
    // The service is down because of what is about to change: plan says what changes.
    let r = run_mode(&host, one_service("old"), true);
    assert_eq!((r.changed, r.failed), (1, 0), "{r:?}");
    host.calls.lock().unwrap().clear();
    let r = run(&host, one_service("old"));
    assert!(matches!(host.calls()[..], [Call::Probe, Call::Apply(_), Call::Verify]), "{:?}", host.calls());
    assert_eq!((r.changed, r.failed), (1, 1), "the config changed, the service it broke failed: {r:?}");
    let host = FakeHost::new(Apply::Done);
    let r = run(&host, one_service("ok"));
    assert_eq!(host.calls(), [Call::Probe]);
    assert_eq!((r.ok, r.resources[1].health.clone()), (2, Some(Verdict::Ok)));
}

/// Records the events a run reports.
#[derive(Default)]
struct Recorder(Mutex<Vec<Event>>);

impl Reporter for Recorder {
    fn event(&self, _host: &str, event: &Event) {
        self.0.lock().unwrap().push(event.clone());
    }
}

#[test]
fn each_part_of_the_apply_script_is_reported_as_step_k_of_n_when_it_begins() {
    // Parts in the script: r0, h0.0, r1, r2; the connection is lost after the second.
    let host = FakeHost::new(Apply::LostAfter(2));
    let recorder = Arc::new(Recorder::default());
    let ctx = Context { cancel: host.cancel.clone(), reporter: recorder.clone() };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(converge(&host, "h", &mut three_changes(), Options { check: false, diff: false, forks: 1 }, &ctx));
    let steps: Vec<String> =
        recorder.0.lock().unwrap().iter().filter(|e| matches!(e, Event::Step { .. })).map(ToString::to_string).collect();
    assert_eq!(steps, ["applying step 1/4: a", "applying step 2/4: handler restart app"]);
}

/// A resource whose probe is the given sh.
#[derive(Debug)]
struct ProbeSh(&'static str);

impl Resource for ProbeSh {
    fn id(&self) -> String {
        "sh".into()
    }
    fn probe(&self) -> Probe {
        Probe::Script(self.0.into())
    }
    fn plan(&self, _state: &str) -> Result<Option<Change>, String> {
        Ok(None)
    }
}

#[test]
fn probe_parts_run_at_once_and_their_output_comes_in_order() {
    // The first part waits for a file only the second one creates: run one after the other,
    // the first would give up after its bounded wait.
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("flag").display().to_string();
    let wait: &'static str = Box::leak(
        format!("i=0; while [ ! -e {flag} ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; [ -e {flag} ] && echo first")
            .into_boxed_str(),
    );
    let touch: &'static str = Box::leak(format!("touch {flag}; echo second").into_boxed_str());
    let d = Desired { steps: vec![Step::new(ProbeSh(wait)), Step::new(ProbeSh(touch))], ..Desired::default() };
    let nonce = "0123456789abcdef";
    let script = super::probe::script(&d, &super::gather::probes(&d), nonce);
    let out = std::process::Command::new("/bin/sh").arg("-c").arg(&script).output().unwrap();
    let framed = super::sections::parse(&String::from_utf8_lossy(&out.stdout), nonce).unwrap();
    let bodies: Vec<(String, i32, String)> = framed.sections.iter().map(|s| (s.id.to_string(), s.rc, s.body.trim().to_string())).collect();
    assert_eq!(bodies[0], ("r0".to_string(), 0, "first".to_string()), "{bodies:?}");
    assert_eq!(bodies[1], ("r1".to_string(), 0, "second".to_string()), "{bodies:?}");
    assert!(framed.done);
}

/// A resource whose state is read from a shared fact here (see `Probe::Shared`).
#[derive(Debug)]
struct FromShared;

impl Resource for FromShared {
    fn id(&self) -> String {
        "from shared".into()
    }
    fn shared_facts(&self) -> Vec<super::SharedFact> {
        vec![super::SharedFact { var: "PF_test".into(), script: "echo one; echo two".into(), depth: 0 }]
    }
    fn probe(&self) -> Probe {
        Probe::Shared(self.shared_facts().remove(0))
    }
    fn read_shared(&self, fact: &str) -> String {
        format!("lines={}", fact.lines().count())
    }
    fn plan(&self, state: &str) -> Result<Option<Change>, String> {
        if state == "lines=2" { Ok(None) } else { Err(format!("read `{state}`")) }
    }
}

#[test]
fn batched_facts_reach_each_step_as_the_state_its_plan_reads() {
    use crate::resources::directory::Directory;
    use crate::resources::file::File;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    std::fs::write(format!("{d}/same"), "a\n").unwrap();
    std::fs::write(format!("{d}/other"), "old\n").unwrap();
    let out = |cmd: &str| String::from_utf8(std::process::Command::new("id").arg(cmd).output().unwrap().stdout).unwrap().trim().to_string();
    let (user, group) = (out("-un"), out("-gn"));
    let file = |name: &str, content: &str| Step::new(File::new(&format!("{d}/{name}"), content).owner(&user, &group));
    let desired = Desired {
        steps: vec![
            file("same", "a\n"),
            Step::new(ProbeSh("")),
            file("other", "new\n"),
            Step::new(FromShared),
            Step::new(Directory { owner: user.clone(), group: group.clone(), ..Directory::new(&format!("{d}/sub")) }),
            Step::new(ProbeSh("echo ok")),
        ],
        ..Desired::default()
    };
    let nonce = "0123456789abcdef";
    let probes = super::gather::probes(&desired);
    let script = super::probe::script(&desired, &probes, nonce);
    assert_eq!(script.matches("stat -c '%F").count(), 1, "one stat for every path: {script}");
    let output = std::process::Command::new("/bin/sh").arg("-c").arg(&script).output().unwrap();
    let mut framed = super::sections::parse(&String::from_utf8_lossy(&output.stdout), nonce).unwrap();
    super::gather::expand(&desired, &probes, &mut framed);
    let facts = super::probe::read_facts(&desired, &framed).unwrap();
    let what: Vec<String> = facts
        .findings
        .iter()
        .map(|f| match f {
            super::probe::Finding::Ok => "ok".to_string(),
            super::probe::Finding::Change(c) => c.what.join(","),
            super::probe::Finding::Failed(e) => format!("failed: {e}"),
        })
        .collect();
    assert_eq!(what, ["ok", "ok", "content", "ok", "created", "ok"]);
    let super::probe::Finding::Change(c) = &facts.findings[2] else { unreachable!() };
    let Some(super::Diff::Text(diff)) = &c.diff else { panic!("{:?}", c.diff) };
    assert!(diff.contains("-old\n+new\n"), "the old content came back for the diff: {diff}");
}
