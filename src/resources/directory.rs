//! A directory: exists, with mode and owner.

use super::{first_line, fmt_mode, parse_mode, q, set_meta};
use crate::engine::{Change, Resource};

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

    fn probe(&self) -> String {
        format!(
            "d={}\nif [ -d \"$d\" ] && [ ! -L \"$d\" ]; then stat -c 'dir %a %U %G' \"$d\"; elif [ -e \"$d\" ]; then echo other; else echo absent; fi",
            q(&self.path)
        )
    }

    fn plan(&self, state: &str) -> Result<Option<Change>, String> {
        let (head, _) = first_line(state);
        let meta = set_meta(&q(&self.path), &self.owner, &self.group, self.mode);
        let words = head.split_whitespace().collect::<Vec<_>>();
        if self.absent {
            return match words.as_slice() {
                ["absent"] => Ok(None),
                ["dir", ..] => Ok(Some(Change::new(vec!["removed".into()], format!("rmdir {}\n", q(&self.path))))),
                ["other"] => Err(format!("{} exists and is not a directory", self.path)),
                _ => Err(format!("unexpected state `{head}`")),
            };
        }
        match words.as_slice() {
            ["absent"] => Ok(Some(Change::new(vec!["created".into()], format!("mkdir -p {}\n{meta}", q(&self.path))))),
            ["other"] => Err(format!("{} exists and is not a directory", self.path)),
            ["dir", mode, owner, group] => {
                let cur = parse_mode(mode)?;
                let mut what = Vec::new();
                if cur != self.mode {
                    what.push(format!("mode {} → {}", fmt_mode(cur), fmt_mode(self.mode)));
                }
                if *owner != self.owner || *group != self.group {
                    what.push(format!("owner {owner}:{group} → {}:{}", self.owner, self.group));
                }
                Ok((!what.is_empty()).then_some(Change { what, diff: None, script: meta, uploads: vec![] }))
            }
            _ => Err(format!("unexpected state `{head}`")),
        }
    }
}
