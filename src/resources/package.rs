//! An OS package, installed with apt (Debian, Ubuntu) or yum/dnf (RHEL family), from the
//! distribution's repositories or from a local `.deb`/`.rpm` file for hosts without them.

use std::path::PathBuf;

use crate::engine::{Change, Probe, Resource, Upload};
use crate::sh::{Cmd, Kv, Script, check_not_option, check_sha256, upload_path};

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

    fn install_script(&self, manager: &str) -> Result<(String, Vec<Upload>), String> {
        let mut s = Script::new();
        if let Some(local) = &self.file {
            let ext = if manager == "dpkg" { "deb" } else { "rpm" };
            let digest = super::digest::sha256(local).map_err(|e| e.to_string())?;
            // A private, random name per run; checked against the local file before use.
            let remote = upload_path(&format!("pkg.{ext}"));
            s.set("f", &remote).trap_remove(&["f"]);
            s.line(&check_sha256("\"$f\"", &digest));
            let install = if manager == "dpkg" {
                "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --allow-downgrades \"$f\" >/dev/null"
            } else {
                "yum install -y -q \"$f\" >/dev/null"
            };
            s.line(install);
            return Ok((s.into_string(), vec![Upload { local: local.clone(), remote }]));
        }
        if manager == "dpkg" {
            let spec = match &self.version {
                Some(v) => format!("{}={v}*", self.name),
                None => self.name.clone(),
            };
            let install = Cmd::new("apt-get").args(["install", "-y", "-q", "--allow-downgrades"]).end_of_options().arg(&spec);
            // A stale package list is the usual reason apt cannot find a version: refresh once.
            s.line("export DEBIAN_FRONTEND=noninteractive");
            s.line(&format!("{install} >/dev/null 2>&1 || {{ apt-get update -q >/dev/null && {install} >/dev/null; }}"));
        } else {
            let spec = match &self.version {
                Some(v) => format!("{}-{v}", self.name),
                None => self.name.clone(),
            };
            s.line(&format!("{} >/dev/null", Cmd::new("yum").args(["install", "-y", "-q"]).end_of_options().arg(&spec)));
        }
        Ok((s.into_string(), vec![]))
    }
}

impl Resource for Package {
    fn id(&self) -> String {
        format!("package {}", self.name)
    }

    fn probe(&self) -> Probe {
        let mut s = Script::new();
        s.set("n", &self.name);
        s.line(
            "if command -v dpkg-query >/dev/null 2>&1; then\necho manager=dpkg\n\
             dpkg-query -W -f 'status=${db:Status-Status}\\nversion=${Version}\\n' \"$n\" 2>/dev/null || echo status=not-installed\n\
             elif command -v rpm >/dev/null 2>&1; then\necho manager=rpm\n\
             if v=$(rpm -q --qf '%{VERSION}-%{RELEASE}' \"$n\" 2>/dev/null); then printf 'status=installed\\nversion=%s\\n' \"$v\"; else echo status=not-installed; fi\n\
             else echo manager=none; fi",
        );
        s.into_string().into()
    }

    fn plan(&self, state: &str) -> Result<Option<Change>, String> {
        check_not_option("package name", &self.name)?;
        let kv = Kv::parse(state)?;
        let manager = match kv.require("manager")? {
            "none" => return Err("the host has neither dpkg nor rpm".into()),
            m @ ("dpkg" | "rpm") => m,
            other => return Err(format!("unexpected manager `{other}`")),
        };
        let installed = match kv.require("status")? {
            "installed" => Some(kv.require("version")?),
            _ => None,
        };
        match (self.present, installed) {
            (true, Some(v)) if self.version_matches(v) => Ok(None),
            (true, current) => {
                let (script, uploads) = self.install_script(manager)?;
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
                let script = if manager == "dpkg" {
                    let remove = Cmd::new("apt-get").args(["remove", "-y", "-q"]).end_of_options().arg(&self.name);
                    format!("DEBIAN_FRONTEND=noninteractive {remove} >/dev/null\n")
                } else {
                    format!("{} >/dev/null\n", Cmd::new("yum").args(["remove", "-y", "-q"]).end_of_options().arg(&self.name))
                };
                Ok(Some(Change::new(vec!["removed".into()], script)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(manager: &str, status: &str, version: &str) -> String {
        format!("manager={manager}\nstatus={status}\nversion={version}\n")
    }

    #[test]
    fn versions_and_states() {
        let mut p = Package::new("gitlab-runner");
        p.version = Some("17.5.0".into());
        assert!(p.plan(&state("dpkg", "installed", "17.5.0-1")).unwrap().is_none());
        assert_eq!(p.plan(&state("dpkg", "installed", "17.4.0-1")).unwrap().unwrap().what, ["17.4.0-1 → 17.5.0"]);
        assert!(p.plan(&state("dpkg", "installed", "17.5.01")).unwrap().is_some(), "17.5.01 is not 17.5.0");
        assert_eq!(p.plan("manager=dpkg\nstatus=not-installed").unwrap().unwrap().what, ["installed 17.5.0"]);
        assert!(p.plan(&state("rpm", "installed", "17.5.0-1")).unwrap().is_none());
        assert!(p.plan("manager=none").is_err());
        assert!(p.plan("").is_err());
        assert!(p.plan("manager=dpkg\nstatus=installed").is_err(), "installed without a version");
        let c = p.plan("manager=dpkg\nstatus=not-installed").unwrap().unwrap();
        assert!(c.script.contains("'gitlab-runner=17.5.0*'"), "{}", c.script);
        p.present = false;
        assert_eq!(p.plan(&state("dpkg", "installed", "1")).unwrap().unwrap().what, ["removed"]);
        assert!(p.plan(&state("dpkg", "config-files", "1")).unwrap().is_none());
        assert!(Package::new("-oDebug::pkgProblemResolver=1").plan("manager=dpkg\nstatus=not-installed").is_err());
    }

    #[test]
    fn a_local_package_goes_to_a_private_random_upload_checked_before_use() {
        let dir = tempfile::tempdir().unwrap();
        let deb = dir.path().join("p.deb");
        std::fs::write(&deb, b"deb").unwrap();
        let p = Package { file: Some(deb), ..Package::new("p") };
        let a = p.plan("manager=dpkg\nstatus=not-installed").unwrap().unwrap();
        let b = p.plan("manager=dpkg\nstatus=not-installed").unwrap().unwrap();
        let remote = &a.uploads[0].remote;
        assert!(remote.starts_with("/var/lib/provision/uploads/") && remote.ends_with(".pkg.deb"), "{remote}");
        assert_ne!(remote, &b.uploads[0].remote, "two runs never share an upload");
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"deb"));
        assert!(a.script.find(&sha).unwrap() < a.script.find("apt-get install").unwrap(), "{}", a.script);
    }
}
