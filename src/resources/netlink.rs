//! A network interface that must not exist (e.g. the bridge of a removed docker daemon).

use crate::engine::{Change, Probe, Resource};
use crate::sh::{Cmd, Kv, check_name};

/// An interface to delete when present.
#[derive(Debug, Clone)]
pub struct LinkAbsent {
    /// Interface name.
    pub name: String,
}

impl Resource for LinkAbsent {
    fn id(&self) -> String {
        format!("link {} (absent)", self.name)
    }

    fn probe(&self) -> Probe {
        // The host's interfaces are in /sys/class/net (a test, no program started); `ip`
        // where sysfs is not mounted.
        let show = Cmd::new("ip").arg("link").arg("show").arg("dev").arg(&self.name);
        let sys = crate::sh::quote(&format!("/sys/class/net/{}", self.name));
        Probe::Script(format!(
            "if [ -d /sys/class/net ]; then [ -e {sys} ] && p=1 || p=''; else {show} >/dev/null 2>&1 && p=1 || p=''; fi
             if [ -n \"$p\" ]; then echo state=present; else echo state=absent; fi"
        ))
    }

    fn plan(&self, state: &str) -> Result<Option<Change>, String> {
        check_name("interface", &self.name)?;
        match Kv::parse(state)?.require("state")? {
            "absent" => Ok(None),
            "present" => {
                let delete = Cmd::new("ip").arg("link").arg("delete").arg("dev").arg(&self.name);
                Ok(Some(Change::new(vec!["removed".into()], format!("{delete}\n"))))
            }
            other => Err(format!("unexpected `{other}`")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_and_refuses_option_like_names() {
        let l = LinkAbsent { name: "br-ci".into() };
        assert!(l.plan("state=absent").unwrap().is_none());
        assert_eq!(l.plan("state=present").unwrap().unwrap().script, "ip link delete dev br-ci\n");
        assert!(l.plan("present").is_err());
        assert!(LinkAbsent { name: "-all".into() }.plan("state=present").is_err());
    }
}
