//! Applying: one script with every change of a host, in order, under a per-host lock, with the
//! handlers the changes trigger.

use super::probe::{self, Facts, Finding, GENERATION_FILE, PENDING_FILE};
use super::sections::{self, Note, SectionId};
use super::{Desired, Handler};
use crate::sh::{Cmd, Script, quote};

/// The lock file that keeps two `provision apply` runs off one host at once.
pub const LOCK_FILE: &str = "/run/provision.lock";

/// What the apply script will do: the steps to change and the handlers due, each with the
/// section id its output will carry.
#[derive(Debug, Default)]
pub struct Schedule {
    /// (step index, script) for each changed step, in order.
    pub steps: Vec<(usize, String)>,
    /// (handler index, after which step index it runs) for each handler due, in order. A
    /// prerequisite handler may appear more than once (see [`schedule`]).
    pub handlers: Vec<(usize, usize)>,
    /// Remote paths of the files uploaded for these steps: removed when the script exits,
    /// whether or not it reached the steps that use them.
    pub uploads: Vec<String>,
    /// The apply mark the probe read ([`GENERATION_FILE`]): when set, the script changes
    /// nothing unless the mark is still this under the lock.
    pub read_generation: Option<String>,
}

/// Chooses what to apply: every change before the first failed step, the handlers those changes
/// trigger, and the handlers an earlier run owes. A handler runs once, right after the last step
/// that can notify it, so a `daemon-reload` lands after all unit files and before services start.
/// A prerequisite handler (daemon-reload) due at a later point also runs before any other
/// handler placed after one of its changed notifiers: a docker restart notified by a new
/// drop-in must not run before systemd has read that drop-in.
pub fn schedule(desired: &Desired, facts: &Facts) -> Schedule {
    let findings = &facts.findings;
    let first_failed = findings.iter().position(|f| matches!(f, Finding::Failed(_))).unwrap_or(findings.len());
    let mut out = Schedule::default();
    for (i, f) in findings.iter().enumerate().take(first_failed) {
        if let Finding::Change(c) = f {
            out.steps.push((i, c.script.clone()));
            out.uploads.extend(c.uploads.iter().map(|u| u.remote.clone()));
        }
    }
    // (handler, position, changed notifiers; an owed handler counts as changed before step 0)
    let mut due: Vec<(usize, usize, Vec<Option<usize>>)> = Vec::new();
    for (h, handler) in desired.handlers.iter().enumerate() {
        let notifiers: Vec<usize> = notifiers(desired, handler);
        let Some(&last) = notifiers.iter().max() else { continue };
        let mut changed: Vec<Option<usize>> =
            notifiers.iter().filter(|i| out.steps.iter().any(|(s, _)| s == *i)).map(|&i| Some(i)).collect();
        if facts.pending.contains(&handler.id) {
            changed.insert(0, None);
        }
        if !changed.is_empty() {
            due.push((h, last, changed));
        }
    }
    for (h, last, _) in due.iter().filter(|(h, ..)| !desired.handlers[*h].prerequisite) {
        out.handlers.push((*h, *last));
    }
    for (p, p_last, changed) in due.iter().filter(|(h, ..)| desired.handlers[*h].prerequisite) {
        let mut dependents: Vec<usize> = out.handlers.iter().map(|&(_, after)| after).filter(|after| after < p_last).collect();
        dependents.sort_unstable();
        dependents.dedup();
        let mut flushed: Option<Option<usize>> = None;
        for at in dependents {
            let pending_before = changed.iter().any(|c| c.is_none_or(|c| c <= at) && flushed.is_none_or(|f| *c > f));
            if pending_before {
                out.handlers.push((*p, at));
                flushed = Some(Some(at));
            }
        }
        if changed.iter().any(|c| flushed.is_none_or(|f| *c > f)) {
            out.handlers.push((*p, *p_last));
        }
    }
    // At one point, prerequisites first, then definition order.
    out.handlers.sort_by_key(|&(h, after)| (after, !desired.handlers[h].prerequisite, h));
    out
}

fn notifiers(desired: &Desired, handler: &Handler) -> Vec<usize> {
    desired.steps.iter().enumerate().filter(|(_, s)| s.notify.contains(&handler.id)).map(|(i, _)| i).collect()
}

impl Schedule {
    /// Whether the apply script has nothing to do.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty() && self.handlers.is_empty()
    }

    /// Each handler due, once, in the order it first runs (a prerequisite handler may run more
    /// than once; it is reported once).
    pub fn due_handlers(&self) -> Vec<usize> {
        let mut due: Vec<usize> = Vec::new();
        for &(h, _) in &self.handlers {
            if !due.contains(&h) {
                due.push(h);
            }
        }
        due
    }
}

/// The apply script. Sections are `r<step>` and `h<handler>.<after>`; the first failure stops it.
pub fn script(desired: &Desired, plan: &Schedule, nonce: &str) -> String {
    let mut s = probe::prelude();
    if !plan.uploads.is_empty() {
        // Before the lock: a run that finds the host locked (or changed) removes its own private
        // uploads too; they are removed however the script ends, whether or not a step used them.
        let rm = Cmd::new("rm").arg("-f").end_of_options().args(&plan.uploads);
        s.line(&format!("trap {} EXIT", quote(&rm.render())));
    }
    take_lock(&mut s, nonce);
    if let Some(seen) = &plan.read_generation {
        // Another run applied since this one read the host: its facts are stale.
        s.set("seen", seen);
        s.line(&format!(
            "[ \"$(cat {GENERATION_FILE} 2>/dev/null)\" = \"$seen\" ] || {{ {} exit 0; }}",
            sections::note_cmd(nonce, &Note::Changed)
        ));
    }
    mark_generation(&mut s, nonce);
    // Record the handlers this run owes before changing anything: if it stops early (a failed
    // step, a lost connection), the next run finds them and runs them.
    if !plan.handlers.is_empty() {
        let mut ids: Vec<&str> = plan.handlers.iter().map(|&(h, _)| desired.handlers[h].id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        s.cmd(&Cmd::new("mkdir").arg("-p").arg("/var/lib/provision"));
        s.cmd(&Cmd::new("printf").arg("%s\\n").args(ids).raw(">").arg(PENDING_FILE));
    }
    let mut handlers = plan.handlers.iter().peekable();
    let handler = |s: &mut Script, h: usize, after: usize| {
        sections::part(s, nonce, &SectionId::Handler { handler: h, after }, &desired.handlers[h].script, true);
    };
    for (i, body) in &plan.steps {
        // Handlers whose last possible notifier comes before this step run first.
        while let Some(&&(h, after)) = handlers.peek().filter(|(_, after)| after < i) {
            handler(&mut s, h, after);
            handlers.next();
        }
        sections::part(&mut s, nonce, &SectionId::Step(*i), body, true);
    }
    for &(h, after) in handlers {
        handler(&mut s, h, after);
    }
    s.cmd(&Cmd::new("rm").arg("-f").arg(PENDING_FILE));
    mark_generation(&mut s, &format!("{nonce}-done"));
    sections::done(&mut s, nonce);
    s.into_string()
}

/// Leaves `mark` in [`GENERATION_FILE`] (written whole: a temp file renamed into place).
fn mark_generation(s: &mut Script, mark: &str) {
    let tmp = format!("{GENERATION_FILE}.tmp");
    s.cmd(&Cmd::new("mkdir").arg("-p").arg("/var/lib/provision"));
    s.cmd(&Cmd::new("printf").arg("%s\\n").arg(mark).raw(">").arg(&tmp));
    s.cmd(&Cmd::new("mv").arg("-f").arg(&tmp).arg(GENERATION_FILE));
}

/// Takes the host's lock for the rest of the script, or ends it with a note saying why not.
/// The lock file is created root-only (0600, and made so if an older run left it 0644): a user
/// who can open it can hold the flock and block every apply.
fn take_lock(s: &mut Script, nonce: &str) {
    s.line(&format!("command -v flock >/dev/null 2>&1 || {{ {} exit 0; }}", sections::note_cmd(nonce, &Note::NoFlock)));
    s.cmd(&Cmd::new("umask").arg("077"));
    s.cmd(&Cmd::new("exec").raw("9>>").arg(LOCK_FILE));
    s.cmd(&Cmd::new("umask").arg("022"));
    s.cmd(&Cmd::new("chmod").arg("600").arg(LOCK_FILE));
    s.line(&format!("flock -n 9 || {{ {} exit 0; }}", sections::note_cmd(nonce, &Note::Locked)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Change, Resource, Step};

    #[derive(Debug)]
    struct Fake(&'static str);

    impl Resource for Fake {
        fn id(&self) -> String {
            self.0.into()
        }
        fn probe(&self) -> crate::engine::Probe {
            String::new().into()
        }
        fn plan(&self, _: &str) -> Result<Option<Change>, String> {
            Ok(None)
        }
    }

    fn change(tag: &str) -> Finding {
        Finding::Change(Change::new(vec![], format!("echo {tag}")))
    }

    fn desired() -> Desired {
        let mut d = Desired::default();
        d.handler("restart app", "systemctl restart app");
        d.handler_first("daemon-reload", "systemctl daemon-reload");
        d.steps = vec![
            Step::new(Fake("unit")).notify("daemon-reload").notify("restart app"),
            Step::new(Fake("config")).notify("restart app"),
            Step::new(Fake("service")),
        ];
        d
    }

    fn order(script: &str) -> Vec<String> {
        script.lines().filter_map(|l| l.strip_prefix("printf '@@N begin ")).map(|l| l.trim_end_matches("\\n'").to_string()).collect()
    }

    #[test]
    fn reload_runs_first_and_handlers_after_their_last_notifier() {
        let d = desired();
        let facts = Facts { findings: vec![change("unit"), Finding::Ok, change("service")], pending: vec![] };
        let plan = schedule(&d, &facts);
        // daemon-reload is due after step 0, restart app after step 1 (its last notifier, even
        // though step 1 itself did not change): both before step 2.
        assert_eq!(order(&script(&d, &plan, "N")), ["r0", "h0.0", "h1.1", "r2"]);
    }

    #[test]
    fn a_reload_due_later_also_runs_before_a_restart_its_notifier_precedes() {
        // A new drop-in (step 0) notifies reload and restart; the restart's last notifier is
        // step 1, the reload's is step 3 (another unit file).
        let mut d = Desired::default();
        d.handler("restart docker", "systemctl restart docker");
        d.handler_first("daemon-reload", "systemctl daemon-reload");
        d.steps = vec![
            Step::new(Fake("drop-in")).notify("daemon-reload").notify("restart docker"),
            Step::new(Fake("daemon.json")).notify("restart docker"),
            Step::new(Fake("container")),
            Step::new(Fake("timer unit")).notify("daemon-reload"),
        ];
        let all = Facts { findings: vec![change("a"), Finding::Ok, change("c"), change("d")], pending: vec![] };
        assert_eq!(order(&script(&d, &schedule(&d, &all), "N")), ["r0", "h0.1", "h1.1", "r2", "r3", "h0.3"]);
        // Only the later unit changed: the restart does not need the reload first.
        let late = Facts { findings: vec![Finding::Ok, change("b"), Finding::Ok, change("d")], pending: vec![] };
        assert_eq!(order(&script(&d, &schedule(&d, &late), "N")), ["r1", "h1.1", "r3", "h0.3"]);
        // Only the drop-in changed: one reload, before the restart.
        let early = Facts { findings: vec![change("a"), Finding::Ok, Finding::Ok, Finding::Ok], pending: vec![] };
        assert_eq!(order(&script(&d, &schedule(&d, &early), "N")), ["r0", "h0.1", "h1.1"]);
        // An owed reload runs before any restart.
        let owed = Facts { findings: vec![Finding::Ok, change("b"), Finding::Ok, Finding::Ok], pending: vec!["daemon-reload".into()] };
        assert_eq!(order(&script(&d, &schedule(&d, &owed), "N")), ["r1", "h0.1", "h1.1"]);
    }

    #[test]
    fn nothing_changed_nothing_due_unless_owed() {
        let d = desired();
        let quiet = Facts { findings: vec![Finding::Ok, Finding::Ok, Finding::Ok], pending: vec![] };
        let p = schedule(&d, &quiet);
        assert!(p.steps.is_empty() && p.handlers.is_empty());
        let owed = Facts { findings: vec![Finding::Ok, Finding::Ok, Finding::Ok], pending: vec!["restart app".into(), "gone".into()] };
        let p = schedule(&d, &owed);
        assert_eq!(p.handlers, [(1, 1)], "an owed handler runs even with no change; unknown ids are ignored");
        let s = script(&d, &p, "N");
        assert!(s.contains("printf '%s\\n' 'restart app' > /var/lib/provision/pending-handlers"), "{s}");
        assert!(s.trim_end().ends_with("printf '@@N done\\n'") && s.contains("rm -f /var/lib/provision/pending-handlers"));
    }

    #[test]
    fn changes_after_a_failed_probe_are_not_applied() {
        let d = desired();
        let facts = Facts {
            findings: vec![change("unit"), Finding::Failed(crate::engine::error::StepError::Unparsable("boom".into())), change("service")],
            pending: vec![],
        };
        let p = schedule(&d, &facts);
        assert_eq!(p.steps.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [0]);
    }
}
