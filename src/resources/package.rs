//! An OS package, installed with apt (Debian, Ubuntu) or yum/dnf (RHEL family), from the
//! distribution's repositories or from a local `.deb`/`.rpm` file for hosts without them.

use std::path::PathBuf;

use super::{first_line, q};
use crate::engine::{Change, Resource, Upload};

/// A managed package.
#[derive(Debug, Clone)]
pub struct Package {
    /// Package name.
    pub name: String,
    /// Wanted version (`None`: any); `17.5.0` matches an installed `17.5.0-1`.
    pub version: Option<String>,
    /// A local package file to upload and install instead of using repositories.
    pub file: Option<PathBuf>,
    /// Installed (true) or removed (false).
    pub present: bool,
}

impl Package {
    /// Any version of `name`, from the repositories.
    pub fn new(name: &str) -> Self {
        Package { name: name.to_string(), version: None, file: None, present: true }
    }

    fn version_matches(&self, installed: &str) -> bool {
        match &self.version {
            None => true,
            Some(v) => installed == v || installed.strip_prefix(v.as_str()).is_some_and(|rest| rest.starts_with(['-', '~', '+'])),
        }
    }

    fn install_script(&self, manager: &str) -> (String, Vec<Upload>) {
        if let Some(local) = &self.file {
            let ext = if manager == "dpkg" { "deb" } else { "rpm" };
            let digest = super::file_digest(local).unwrap_or_default();
            let remote = format!("/var/tmp/provision-pkg-{}.{ext}", &digest[..16.min(digest.len())]);
            let install = if manager == "dpkg" {
                "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --allow-downgrades \"$f\" >/dev/null"
            } else {
                "yum install -y -q \"$f\" >/dev/null"
            };
            let script = format!("f={}\ntrap 'rm -f \"$f\"' EXIT\n{install}\n", q(&remote));
            return (script, vec![Upload { local: local.clone(), remote }]);
        }
        let script = if manager == "dpkg" {
            let spec = q(&match &self.version {
                Some(v) => format!("{}={v}*", self.name),
                None => self.name.clone(),
            });
            // A stale package list is the usual reason apt cannot find a version: refresh once.
            format!(
                "export DEBIAN_FRONTEND=noninteractive\napt-get install -y -q --allow-downgrades {spec} >/dev/null 2>&1 || {{ apt-get update -q >/dev/null && apt-get install -y -q --allow-downgrades {spec} >/dev/null; }}\n"
            )
        } else {
            let spec = q(&match &self.version {
                Some(v) => format!("{}-{v}", self.name),
                None => self.name.clone(),
            });
            format!("yum install -y -q {spec} >/dev/null\n")
        };
        (script, vec![])
    }
}

impl Resource for Package {
    fn id(&self) -> String {
        format!("package {}", self.name)
    }

    fn probe(&self) -> String {
        let n = q(&self.name);
        format!(
            "if command -v dpkg-query >/dev/null 2>&1; then\n  s=$(dpkg-query -W -f '${{db:Status-Status}} ${{Version}}' {n} 2>/dev/null) || s=not-installed\n  echo \"dpkg $s\"\n\
             elif command -v rpm >/dev/null 2>&1; then\n  if v=$(rpm -q --qf '%{{VERSION}}-%{{RELEASE}}' {n} 2>/dev/null); then echo \"rpm installed $v\"; else echo 'rpm not-installed'; fi\n\
             else echo none; fi"
        )
    }

    fn plan(&self, state: &str) -> Result<Option<Change>, String> {
        let (head, _) = first_line(state);
        let words: Vec<&str> = head.split_whitespace().collect();
        let (manager, installed) = match words.as_slice() {
            ["none"] => return Err("the host has neither dpkg nor rpm".into()),
            [m @ ("dpkg" | "rpm"), "installed", version] => (*m, Some(*version)),
            [m @ ("dpkg" | "rpm"), _status, ..] => (*m, None),
            _ => return Err(format!("unexpected `{head}`")),
        };
        match (self.present, installed) {
            (true, Some(v)) if self.version_matches(v) => Ok(None),
            (true, current) => {
                let (script, uploads) = self.install_script(manager);
                let what = match (current, &self.version) {
                    (Some(cur), Some(want)) => format!("{cur} → {want}"),
                    (Some(cur), None) => format!("reinstalled over {cur}"),
                    (None, Some(want)) => format!("installed {want}"),
                    (None, None) => "installed".into(),
                };
                Ok(Some(Change { what: vec![what], diff: None, script, uploads }))
            }
            (false, None) => Ok(None),
            (false, Some(_)) => {
                let n = q(&self.name);
                let script = if manager == "dpkg" {
                    format!("DEBIAN_FRONTEND=noninteractive apt-get remove -y -q {n} >/dev/null\n")
                } else {
                    format!("yum remove -y -q {n} >/dev/null\n")
                };
                Ok(Some(Change::new(vec!["removed".into()], script)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_states() {
        let mut p = Package::new("gitlab-runner");
        p.version = Some("17.5.0".into());
        assert!(p.plan("dpkg installed 17.5.0-1").unwrap().is_none());
        assert_eq!(p.plan("dpkg installed 17.4.0-1").unwrap().unwrap().what, ["17.4.0-1 → 17.5.0"]);
        assert!(p.plan("dpkg installed 17.5.01").unwrap().is_some(), "17.5.01 is not 17.5.0");
        assert_eq!(p.plan("dpkg not-installed").unwrap().unwrap().what, ["installed 17.5.0"]);
        assert!(p.plan("rpm installed 17.5.0-1").unwrap().is_none());
        assert!(p.plan("none").is_err());
        assert!(p.plan("").is_err());
        let c = p.plan("dpkg not-installed").unwrap().unwrap();
        assert!(c.script.contains("'gitlab-runner=17.5.0*'"), "{}", c.script);
        p.present = false;
        assert_eq!(p.plan("dpkg installed 1").unwrap().unwrap().what, ["removed"]);
        assert!(p.plan("dpkg config-files 1").unwrap().is_none());
    }
}
