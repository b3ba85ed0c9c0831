//! systemd units: unit files (which trigger a daemon-reload) and the enabled/active state of a
//! service or timer.

use super::file::File;
use crate::engine::health::Health;
use crate::engine::{Change, Desired, Probe, Resource, Step};
use crate::sh::{Cmd, Kv, Script};

/// Handler id for `systemctl daemon-reload`.
pub const DAEMON_RELOAD: &str = "systemd daemon-reload";

/// `systemctl <verb> -- <unit>`: a unit name can never be read as an option.
fn systemctl(verb: &str, unit: &str) -> Cmd {
    Cmd::new("systemctl").arg(verb).end_of_options().arg(unit)
}

/// Refuses a unit name that is empty, starts with `-`, or holds a `/` or a control character
/// (it becomes a path under /etc/systemd/system and an argument of systemctl).
pub fn check_unit_name(unit: &str) -> Result<(), String> {
    // No glob characters and not all digits: systemctl would expand a pattern (reordering the
    // blocks of the one `systemctl show` that reads every unit) and take digits for a job id.
    let ok = !unit.is_empty()
        && !unit.starts_with('-')
        && !unit.contains('/')
        && !unit.chars().any(|c| c.is_control() || matches!(c, '*' | '?' | '[' | ']' | ' '))
        && !unit.bytes().all(|b| b.is_ascii_digit());
    if ok { Ok(()) } else { Err(format!("`{unit}` is not a valid systemd unit name")) }
}

/// sh for a restart handler: reloads systemd first if the unit's files changed (its handler may
/// come before the daemon-reload handler, which waits for the last unit file), clears a start
/// limit an intentional restart must not trip, then restarts (`try`: only if running).
pub fn restart_script(unit: &str, only_if_running: bool) -> String {
    let verb = if only_if_running { "try-restart" } else { "restart" };
    let mut s = before_restart(unit);
    s.cmd(&systemctl(verb, unit));
    s.into_string()
}

/// sh run before any restart of `unit` (held in `$u` afterwards): a daemon-reload if its files
/// changed, and its start limit cleared.
fn before_restart(unit: &str) -> Script {
    let mut s = Script::new();
    s.set("u", unit);
    s.line(
        "if [ \"$(systemctl show -p NeedDaemonReload --value -- \"$u\")\" = yes ]; then systemctl daemon-reload; fi\n\
         systemctl reset-failed -- \"$u\" 2>/dev/null || true",
    );
    s
}

/// A restart that cannot leave the service down because of a bad config: when `unit` fails to
/// start, `files` get their previous content back (see `File::keep_previous`), the unit is
/// started again with it, and the step fails with the service's own last log lines.
pub fn restart_or_restore_script(unit: &str, files: &[&str]) -> String {
    let mut s = before_restart(unit);
    s.line(&format!(
        "since=$(date '+%Y-%m-%d %H:%M:%S')\n\
         if ! systemctl restart -- \"$u\" 2>/dev/null; then\n\
         why=$(journalctl -u \"$u\" --since \"$since\" --no-pager -o cat 2>/dev/null | grep -v -e '^$' -e 'Scheduled restart' -e 'Stopped ' -e 'Starting ' | tail -n 4)\n\
         restored=$(\n{restore})\n\
         systemctl daemon-reload\n\
         systemctl reset-failed -- \"$u\" 2>/dev/null || true\n\
         if systemctl restart -- \"$u\"; then state='running again with it'; else state='STILL DOWN'; fi\n\
         printf '%s failed to start with the new configuration; restored the previous one (%s) and it is %s.\\n%s said:\\n%s\\n' \"$u\" \"$(echo $restored)\" \"$state\" \"$u\" \"$why\" >&2\n\
         exit 1\n\
         fi\n\
         {forget}",
        restore = super::file::restore_previous_script(files),
        forget = super::file::forget_previous_script(files),
    ));
    s.into_string()
}

/// A unit file under /etc/systemd/system that notifies a daemon-reload (registered on `desired`).
pub fn unit_file(desired: &mut Desired, name: &str, content: String) -> Step {
    unit_file_from(desired, File::new(&format!("/etc/systemd/system/{name}"), content))
}

/// A unit file given as a [`File`] (for options such as `keep_previous`), with a daemon-reload.
/// A whole unit (not a drop-in) is checked with `systemd-analyze verify` before it replaces the
/// old one, where the host has it.
pub fn unit_file_from(desired: &mut Desired, file: File) -> Step {
    desired.handler_first(DAEMON_RELOAD, "systemctl daemon-reload");
    let name = file.path.rsplit('/').next().unwrap_or_default().to_string();
    let whole_unit = !file.path.contains(".d/") && name.contains('.') && !name.ends_with(".conf");
    let file = if whole_unit && file.ensure != super::file::Ensure::Absent {
        // verify needs the unit's own name; the temp file has another.
        let mut check = Script::new();
        check.set("n", &name);
        check.line(
            "if command -v systemd-analyze >/dev/null 2>&1; then vd=$(mktemp -d); cp -- \"$t\" \"$vd/$n\"; \
             systemd-analyze verify \"$vd/$n\"; rc=$?; rm -rf -- \"$vd\"; [ \"$rc\" -eq 0 ]; fi",
        );
        file.validate(check.as_str().trim_end())
    } else {
        file
    };
    Step::new(file).notify(DAEMON_RELOAD)
}

/// Removes a unit file (with a daemon-reload).
pub fn unit_file_absent(desired: &mut Desired, name: &str) -> Step {
    desired.handler_first(DAEMON_RELOAD, "systemctl daemon-reload");
    Step::new(File::absent(&format!("/etc/systemd/system/{name}"))).notify(DAEMON_RELOAD)
}

/// The state of a systemd unit.
#[derive(Debug, Clone)]
pub struct Service {
    /// Unit name, e.g. `docker.service`, `docker-cleanup.timer`.
    pub unit: String,
    /// Enabled at boot (`None`: leave as is).
    pub enabled: Option<bool>,
    /// Running now (`None`: leave as is).
    pub active: Option<bool>,
}

impl Service {
    /// Enabled and running.
    pub fn running(unit: &str) -> Self {
        Service { unit: unit.to_string(), enabled: Some(true), active: Some(true) }
    }

    /// Disabled and stopped (a unit that does not exist also counts).
    pub fn stopped(unit: &str) -> Self {
        Service { unit: unit.to_string(), enabled: Some(false), active: Some(false) }
    }
}

const ENABLED_STATES: [&str; 6] = ["enabled", "enabled-runtime", "static", "alias", "indirect", "generated"];

impl Resource for Service {
    fn id(&self) -> String {
        format!("service {}", self.unit)
    }

    fn probe(&self) -> Probe {
        // One systemctl call for every unit of the host (see `gather`); a bad name is refused
        // by `plan` and never reaches it.
        match check_unit_name(&self.unit) {
            Ok(()) => Probe::Unit(self.unit.clone()),
            Err(_) => Probe::Nothing,
        }
    }

    fn plan(&self, state: &str) -> Result<Option<Change>, String> {
        check_unit_name(&self.unit)?;
        let kv = Kv::parse(state)?;
        let prop = |name: &str| kv.get(name).map(str::trim).ok_or_else(|| format!("systemctl did not report {name}"));
        let (load, file_state, active) = (prop("LoadState")?, prop("UnitFileState")?, prop("ActiveState")?);
        let enabled = match (load, file_state) {
            ("not-found", _) => "not-found",
            ("masked", _) => "masked",
            (_, "") => "static",
            (_, s) => s,
        };
        let (mut what, mut script) = (Vec::new(), Script::new());
        let missing = enabled == "not-found";
        if enabled == "masked" && (self.enabled == Some(true) || self.active == Some(true)) {
            return Err(format!("{} is masked; unmask it first (systemctl unmask {})", self.unit, self.unit));
        }
        match self.enabled {
            Some(true) if !ENABLED_STATES.contains(&enabled) => {
                what.push("enabled".into());
                script.cmd(&systemctl("enable", &self.unit));
            }
            Some(false) if enabled == "enabled" => {
                what.push("disabled".into());
                script.cmd(&systemctl("disable", &self.unit));
            }
            _ => {}
        }
        let running = matches!(active, "active" | "reloading" | "activating");
        match self.active {
            Some(true) if !running => {
                what.push("started".into());
                // A unit that failed (or hit its start limit) earlier must be startable again.
                script.line(&format!("{} 2>/dev/null || true", systemctl("reset-failed", &self.unit)));
                script.cmd(&systemctl("start", &self.unit));
            }
            Some(false) if running && !missing => {
                what.push("stopped".into());
                script.cmd(&systemctl("stop", &self.unit));
            }
            _ => {}
        }
        // Starting a unit whose files changed on disk would use the old definition.
        let mut full = Script::new();
        if !what.is_empty() && prop("NeedDaemonReload").is_ok_and(|v| v == "yes") {
            full.line("systemctl daemon-reload");
        }
        full.append(&script);
        Ok((!what.is_empty()).then(|| Change { what, diff: None, script: full.into_string(), uploads: vec![] }))
    }
    /// A unit that should run is active (a timer also has a next elapse time), checked after an
    /// apply only: the probe already reads its active state, and the plan starts it when it is
    /// not. Its journal's tail is the evidence.
    fn health(&self) -> Option<Health> {
        if self.active != Some(true) {
            return None;
        }
        let timer = self.unit.ends_with(".timer");
        let show = Cmd::new("systemctl").args(["show", "-p", "ActiveState", "-p", "SubState"]);
        let show = if timer { show.args(["-p", "NextElapseUSecRealtime", "-p", "NextElapseUSecMonotonic"]) } else { show };
        let awk = Cmd::new("awk").args(["-F=", "-v", if timer { "timer=1" } else { "timer=0" }]).arg(HEALTH_AWK);
        let journal = Cmd::new("journalctl").args(["-n", "8", "--no-pager", "-o", "cat", "-u"]).arg(&self.unit);
        Some(Health::new(format!("{} | {awk}", show.end_of_options().arg(&self.unit).render())).evidence(journal.render()).verify_only())
    }
}

/// awk judging a unit from `systemctl show` (`timer`: it must also have a next elapse time).
const HEALTH_AWK: &str = r#"{ v[$1] = substr($0, length($1) + 2) }
END {
  next_at = v["NextElapseUSecRealtime"]; if (next_at == "" || next_at == "0") next_at = v["NextElapseUSecMonotonic"]
  if (next_at == "infinity" || next_at == "0") next_at = ""
  if (v["ActiveState"] != "active") { print "health=failed"; print "why=it is " v["ActiveState"] " (" v["SubState"] ")" }
  else if (timer && next_at == "") { print "health=failed"; print "why=the timer is active but has no next elapse time" }
  else { print "health=ok"; print "state=" v["ActiveState"] "/" v["SubState"] }
}"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_names_that_systemctl_would_expand_or_take_for_a_job_are_refused() {
        for bad in ["docker*.service", "d?cker.service", "[d]ocker.service", "42", "-x.service", "a/b.service", "a b.service"] {
            assert!(check_unit_name(bad).is_err(), "{bad}");
            assert_eq!(Service::running(bad).probe(), Probe::Nothing, "{bad} stays out of the batched systemctl");
        }
        assert_eq!(Service::running("docker-ci.service").probe(), Probe::Unit("docker-ci.service".into()));
        assert!(check_unit_name("getty@tty1.service").is_ok());
    }

    #[test]
    fn health_is_active_and_for_a_timer_a_next_elapse() {
        let h = Service::running("docker.service").health().unwrap();
        assert!(!h.in_probe, "the probe's active state stands for it");
        assert!(h.script.starts_with("systemctl show -p ActiveState -p SubState -- docker.service | awk -F= -v timer=0"), "{}", h.script);
        assert_eq!(h.evidence.as_deref(), Some("journalctl -n 8 --no-pager -o cat -u docker.service"));
        assert!(Service::stopped("x.service").health().is_none());
        let judge = |timer: &str, input: &str| {
            use std::io::Write;
            let mut c = std::process::Command::new("awk")
                .args(["-F=", "-v", timer, HEALTH_AWK])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
            String::from_utf8(c.wait_with_output().unwrap().stdout).unwrap()
        };
        assert_eq!(judge("timer=0", "ActiveState=active\nSubState=running\n"), "health=ok\nstate=active/running\n");
        assert_eq!(judge("timer=0", "ActiveState=failed\nSubState=failed\n"), "health=failed\nwhy=it is failed (failed)\n");
        let timer =
            "ActiveState=active\nSubState=waiting\nNextElapseUSecRealtime=Tue 2026-11-24 03:00:00 UTC\nNextElapseUSecMonotonic=infinity\n";
        assert!(judge("timer=1", timer).starts_with("health=ok"));
        let none = "ActiveState=active\nSubState=elapsed\nNextElapseUSecRealtime=\nNextElapseUSecMonotonic=infinity\n";
        assert!(judge("timer=1", none).contains("no next elapse time"));
    }

    #[test]
    fn plans_enable_and_start() {
        let s = Service::running("docker-cleanup.timer");
        let show = |load: &str, file: &str, active: &str| format!("LoadState={load}\nActiveState={active}\nUnitFileState={file}");
        let c = s.plan(&show("loaded", "disabled", "inactive")).unwrap().unwrap();
        assert_eq!(c.what, ["enabled", "started"]);
        assert!(s.plan(&show("loaded", "enabled", "active")).unwrap().is_none());
        assert!(s.plan(&show("loaded", "static", "active")).unwrap().is_none());
        assert!(s.plan(&show("masked", "masked", "inactive")).is_err());
        assert!(s.plan("garbage").is_err());
        assert!(s.plan("LoadState=loaded\nActiveState=active").is_err(), "truncated output");
        let gone = Service::stopped("old.service");
        assert!(gone.plan(&show("not-found", "", "inactive")).unwrap().is_none(), "a missing unit is stopped");
        let c = gone.plan(&show("loaded", "enabled", "active")).unwrap().unwrap();
        assert_eq!(c.what, ["disabled", "stopped"]);
    }
}
