//! A precondition checked on the host during the probe: it changes nothing, and fails the
//! probe with the host's own words when the value would make the apply fail (so `plan` reports
//! what `apply` would then fail on).

use crate::engine::{Change, Probe, Resource};
use crate::sh::Script;

/// A check of a value from the vars, run by the probe.
#[derive(Debug, Clone)]
pub struct Check {
    /// What is checked, e.g. `cleanup_on_calendar`.
    pub what: String,
    /// POSIX sh that exits non-zero with a message when the value is refused.
    pub script: String,
}

impl Check {
    /// `value` must parse as a systemd calendar expression (`OnCalendar=`), checked with the
    /// host's `systemd-analyze calendar` where it has one (its systemd is the one that reads it).
    /// When the installed `timer` file already has `OnCalendar=<value>`, the expression was
    /// checked before that file was written: read with sh alone, it costs no program start
    /// (`systemd-analyze` takes ~7 ms on every run otherwise).
    pub fn systemd_calendar(var: &str, value: &str, timer: &str) -> Self {
        let mut s = Script::new();
        s.set("v", var).set("c", value).set("t", timer);
        s.line(
            "if [ -f \"$t\" ] && ! [ -L \"$t\" ]; then while IFS= read -r l; do [ \"$l\" != \"OnCalendar=$c\" ] || { echo ok; exit 0; }; done < \"$t\"; fi\n\
             if command -v systemd-analyze >/dev/null 2>&1; then\n  \
             if ! o=$(systemd-analyze calendar -- \"$c\" 2>&1); then\n    \
             printf '%s: %s is not a systemd calendar expression: %s\\n' \"$v\" \"$c\" \"$(printf '%s' \"$o\" | tail -n 1)\"; exit 1\n  \
             fi\nfi\necho ok",
        );
        Check { what: var.to_string(), script: s.into_string() }
    }
}

impl Resource for Check {
    fn id(&self) -> String {
        format!("check {}", self.what)
    }

    fn probe(&self) -> Probe {
        Probe::Script(self.script.clone())
    }

    fn plan(&self, _state: &str) -> Result<Option<Change>, String> {
        // A refused value already failed the probe; there is never anything to change.
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_calendar_check_quotes_the_value_and_changes_nothing() {
        let c = Check::systemd_calendar("cleanup_on_calendar", "Mon *-*-* 00:00; rm -rf /", "/etc/systemd/system/x.timer");
        assert!(c.script.contains("c='Mon *-*-* 00:00; rm -rf /'"), "{}", c.script);
        assert!(c.script.contains("systemd-analyze calendar -- \"$c\""), "{}", c.script);
        assert!(matches!(c.plan("ok\n"), Ok(None)));
    }

    #[test]
    fn an_expression_the_installed_timer_already_has_is_not_analyzed_again() {
        let dir = tempfile::tempdir().unwrap();
        // A systemd-analyze that refuses everything: only the timer file can make it pass.
        let analyze = dir.path().join("systemd-analyze");
        std::fs::write(&analyze, "#!/bin/sh\necho 'Failed to parse calendar specification' >&2; exit 1\n").unwrap();
        std::fs::set_permissions(&analyze, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let timer = dir.path().join("x.timer");
        std::fs::write(&timer, "[Timer]\nOnCalendar=hourly\nPersistent=true\n").unwrap();
        let run = |value: &str| {
            let c = Check::systemd_calendar("cleanup_on_calendar", value, &timer.display().to_string());
            let o = std::process::Command::new("/bin/sh")
                .args(["-c", &c.script])
                .env("PATH", format!("{}:/usr/bin:/bin", dir.path().display()))
                .output()
                .unwrap();
            (o.status.success(), String::from_utf8_lossy(&o.stdout).into_owned())
        };
        assert_eq!(run("hourly"), (true, "ok\n".to_string()));
        let (ok, out) = run("daily");
        assert!(!ok && out.contains("is not a systemd calendar expression"), "{out}");
    }
}
