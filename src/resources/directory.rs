//! A directory: exists, with mode and owner.

use super::{check_absolute, fmt_mode, parse_mode, set_meta};
use crate::engine::gather::{Expect, PathProbe, Probe};
use crate::engine::{Change, Resource};
use crate::sh::{Cmd, Kv, Script};

/// A managed directory (parents are created as needed).
#[derive(Debug, Clone)]
pub struct Directory {
    /// Absolute path.
    pub path: String,
    /// Must not exist (removed only when empty: it never deletes what it did not create).
    pub absent: bool,
    /// Permission bits.
    pub mode: u32,
    /// Owner user name.
    pub owner: String,
    /// Owner group name.
    pub group: String,
}

impl Directory {
    /// A root-owned 0755 directory.
    pub fn new(path: &str) -> Self {
        Directory { path: path.to_string(), absent: false, mode: 0o755, owner: "root".into(), group: "root".into() }
    }

    /// A directory that must not exist; removal fails if something else is in it.
    pub fn absent(path: &str) -> Self {
        Directory { absent: true, ..Directory::new(path) }
    }

    /// Sets the mode.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }
}

impl Resource for Directory {
    fn id(&self) -> String {
        if self.absent { format!("directory {} (absent)", self.path) } else { format!("directory {}", self.path) }
    }

    fn probe(&self) -> Probe {
        Probe::Path(PathProbe { path: self.path.clone(), expect: Expect::Dir })
    }

    fn plan(&self, state: &str) -> Result<Option<Change>, String> {
        check_absolute(&self.path)?;
        let kv = Kv::parse(state)?;
        let found = kv.require("state")?;
        if self.absent {
            return match found {
                "absent" => Ok(None),
                "dir" => Ok(Some(Change::new(vec!["removed".into()], Cmd::new("rmdir").end_of_options().arg(&self.path).render() + "\n"))),
                "other" | "link" => Err(format!("{} exists and is not a directory", self.path)),
                _ => Err(format!("unexpected state `{found}`")),
            };
        }
        let mut script = Script::new();
        script.set("p", &self.path);
        match found {
            "absent" => {
                // Created with its mode (parents with the usual 0755), then owned.
                script.refuse_symlink("p");
                script.cmd(&Cmd::new("mkdir").arg("-p").arg("-m").arg(fmt_mode(self.mode)).end_of_options().raw("\"$p\""));
                set_meta(&mut script, "p", &self.owner, &self.group, self.mode);
                Ok(Some(Change::new(vec!["created".into()], script.into_string())))
            }
            "other" | "link" => Err(format!("{} exists and is not a directory", self.path)),
            "dir" => {
                let (mode, owner, group) = (kv.require("mode")?, kv.require("owner")?, kv.require("group")?);
                let cur = parse_mode(mode)?;
                let mut what = Vec::new();
                if cur != self.mode {
                    what.push(format!("mode {} → {}", fmt_mode(cur), fmt_mode(self.mode)));
                }
                if owner != self.owner || group != self.group {
                    what.push(format!("owner {owner}:{group} → {}:{}", self.owner, self.group));
                }
                set_meta(&mut script, "p", &self.owner, &self.group, self.mode);
                Ok((!what.is_empty()).then(|| Change { what, diff: None, script: script.into_string(), uploads: vec![] }))
            }
            _ => Err(format!("unexpected state `{found}`")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_create_meta_and_removal() {
        let d = Directory::new("/srv/a b").mode(0o700);
        let c = d.plan("state=absent").unwrap().unwrap();
        assert_eq!(c.what, ["created"]);
        assert!(c.script.contains("p='/srv/a b'\n") && c.script.contains("mkdir -p -m 0700 -- \"$p\""), "{}", c.script);
        assert!(d.plan("state=dir\nmode=700\nowner=root\ngroup=root").unwrap().is_none());
        assert_eq!(d.plan("state=dir\nmode=755\nowner=root\ngroup=root").unwrap().unwrap().what, ["mode 0755 → 0700"]);
        assert!(d.plan("state=link").is_err() && d.plan("state=dir").is_err() && d.plan("dir 755 root root").is_err());
        assert_eq!(Directory::absent("/srv/x").plan("state=dir\nmode=755\nowner=root\ngroup=root").unwrap().unwrap().what, ["removed"]);
        assert!(Directory::new("relative").plan("state=absent").is_err(), "paths are absolute");
    }
}
