//! A regular file: content, mode, owner and group, written atomically.

use sha2::{Digest, Sha256};

use super::{first_line, fmt_mode, parse_mode, q, set_meta};
use crate::engine::{Change, Diff, Resource};

/// Files larger than this are not sent back for diffing.
const MAX_DIFF_BYTES: u64 = 256 * 1024;

/// Whether the file should exist.
#[derive(Debug, Clone, PartialEq)]
pub enum Ensure {
    /// Exists with this content.
    Present(Vec<u8>),
    /// Does not exist.
    Absent,
}

/// A managed file.
#[derive(Debug, Clone)]
pub struct File {
    /// Absolute path.
    pub path: String,
    /// Content, or absent.
    pub ensure: Ensure,
    /// Permission bits.
    pub mode: u32,
    /// Owner user name.
    pub owner: String,
    /// Owner group name.
    pub group: String,
    /// Never show or fetch the content (keys, tokens).
    pub secret: bool,
    /// For a secret file: a redacted (current, new) pair to diff instead of the content.
    pub redacted_view: Option<(String, String)>,
    /// sh checking the new content before it replaces the file; `"$t"` is the temp file (e.g.
    /// `dockerd --validate --config-file "$t"`). A failure leaves the file as it was.
    pub validate: Option<String>,
    /// Keep what the file held before (see [`PREVIOUS_SUFFIX`]), so a service that fails with
    /// the new content can be given the old one back ([`restore_previous_script`]).
    pub keep_previous: bool,
}

/// Beside a file written with `keep_previous`: its content before the change.
pub const PREVIOUS_SUFFIX: &str = ".provision-prev";
/// Beside a file written with `keep_previous` that did not exist before the change.
pub const WAS_ABSENT_SUFFIX: &str = ".provision-was-absent";

/// sh putting back what `paths` held before their last change (removing those that did not
/// exist); prints the paths it restored.
pub fn restore_previous_script(paths: &[&str]) -> String {
    let mut s = String::new();
    for p in paths {
        let (prev, absent) = (q(&format!("{p}{PREVIOUS_SUFFIX}")), q(&format!("{p}{WAS_ABSENT_SUFFIX}")));
        s.push_str(&format!(
            "if [ -f {prev} ]; then mv -f {prev} {f}; echo {f}; elif [ -f {absent} ]; then rm -f {f} {absent}; echo {f}; fi
",
            f = q(p)
        ));
    }
    s
}

/// sh forgetting the previous contents of `paths` (the new ones work).
pub fn forget_previous_script(paths: &[&str]) -> String {
    let all: Vec<String> =
        paths.iter().flat_map(|p| [q(&format!("{p}{PREVIOUS_SUFFIX}")), q(&format!("{p}{WAS_ABSENT_SUFFIX}"))]).collect();
    format!(
        "rm -f {}
",
        all.join(" ")
    )
}

impl File {
    /// A root-owned 0644 file with `content`.
    pub fn new(path: &str, content: impl Into<Vec<u8>>) -> Self {
        File {
            path: path.to_string(),
            ensure: Ensure::Present(content.into()),
            mode: 0o644,
            owner: "root".into(),
            group: "root".into(),
            secret: false,
            redacted_view: None,
            validate: None,
            keep_previous: false,
        }
    }

    /// Checks new content with `script` before writing it (see [`File::validate`]).
    pub fn validate(mut self, script: &str) -> Self {
        self.validate = Some(script.to_string());
        self
    }

    /// Keeps the previous content for a rollback (see [`File::keep_previous`]).
    pub fn keep_previous(mut self) -> Self {
        self.keep_previous = true;
        self
    }

    /// A file that must not exist.
    pub fn absent(path: &str) -> Self {
        File { ensure: Ensure::Absent, ..File::new(path, Vec::new()) }
    }

    /// Sets the mode.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Sets owner and group.
    pub fn owner(mut self, owner: &str, group: &str) -> Self {
        self.owner = owner.to_string();
        self.group = group.to_string();
        self
    }

    /// Marks the content secret: never diffed, never read back.
    pub fn secret(mut self) -> Self {
        self.secret = true;
        self
    }

    /// Shows the diff of `current` and `new` for this secret file: both with their secrets
    /// already replaced (e.g. tokens in a config file), so settings changes stay reviewable.
    pub fn redacted_view(mut self, current: String, new: String) -> Self {
        self.redacted_view = Some((current, new));
        self
    }

    fn desired_hash(&self) -> String {
        match &self.ensure {
            Ensure::Present(c) => hex::encode(Sha256::digest(c)),
            Ensure::Absent => String::new(),
        }
    }

    fn dir_and_name(&self) -> (&str, &str) {
        match self.path.rsplit_once('/') {
            Some(("", name)) => ("/", name),
            Some((dir, name)) => (dir, name),
            None => (".", self.path.as_str()),
        }
    }

    /// sh that writes the content atomically: a temp file in the same directory with the final
    /// owner and mode, then a rename. A reader never sees a partial file.
    fn write_script(&self, content: &[u8]) -> String {
        use base64::Engine;
        let (dir, name) = self.dir_and_name();
        let b64 = base64::engine::general_purpose::STANDARD.encode(content);
        let mut lines = String::new();
        for chunk in b64.as_bytes().chunks(76) {
            lines.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
            lines.push('\n');
        }
        let validate = match &self.validate {
            Some(v) => format!(
                "( {v} ) >&2 || {{ echo 'the new content of {} was refused (not written)' >&2; exit 1; }}\n",
                self.path.replace('\'', "")
            ),
            None => String::new(),
        };
        let keep = if self.keep_previous {
            // Only the first change since the last good restart is kept: that is what worked.
            let (prev, absent) = (q(&format!("{}{PREVIOUS_SUFFIX}", self.path)), q(&format!("{}{WAS_ABSENT_SUFFIX}", self.path)));
            format!(
                "if [ ! -f {prev} ] && [ ! -f {absent} ]; then if [ -f {p} ]; then cp -p {p} {prev}; else : > {absent}; fi; fi\n",
                p = q(&self.path)
            )
        } else {
            String::new()
        };
        format!(
            "d={dir}\nt=\"$d\"/{tmp}\ntrap 'rm -f \"$t\"' EXIT\nmkdir -p \"$d\"\nbase64 -d > \"$t\" <<'PROVISION_EOF'\n{lines}PROVISION_EOF\n{meta}{validate}{keep}mv -f \"$t\" {path}\ntrap - EXIT\n",
            dir = q(dir),
            tmp = q(&format!(".{name}.provision-tmp")),
            meta = set_meta("\"$t\"", &self.owner, &self.group, self.mode),
            path = q(&self.path),
        )
    }

    fn diff(&self, current: Option<&[u8]>, current_known: bool) -> Option<Diff> {
        if self.secret {
            return Some(match &self.redacted_view {
                Some((o, n)) => {
                    let before = if o.is_empty() { "/dev/null" } else { self.path.as_str() };
                    Diff::Text(unified(o, n, before, &self.path))
                }
                None => Diff::Secret,
            });
        }
        let new: &[u8] = match &self.ensure {
            Ensure::Present(c) => c,
            Ensure::Absent => b"",
        };
        if !current_known {
            return Some(Diff::Text(format!("(file larger than {} KiB: not diffed)", MAX_DIFF_BYTES / 1024)));
        }
        let old = current.unwrap_or(b"");
        match (std::str::from_utf8(old), std::str::from_utf8(new)) {
            (Ok(o), Ok(n)) => {
                let before = if current.is_some() { self.path.clone() } else { "/dev/null".into() };
                let after = if self.ensure == Ensure::Absent { "/dev/null".to_string() } else { self.path.clone() };
                Some(Diff::Text(unified(o, n, &before, &after)))
            }
            _ => Some(Diff::Text("(binary content changed)".into())),
        }
    }
}

/// A unified diff with three lines of context.
fn unified(old: &str, new: &str, before: &str, after: &str) -> String {
    similar::TextDiff::from_lines(old, new).unified_diff().context_radius(3).header(before, after).to_string()
}

impl Resource for File {
    fn id(&self) -> String {
        format!("file {}", self.path)
    }

    fn probe(&self) -> String {
        let fetch = if self.secret || self.ensure == Ensure::Absent {
            String::new()
        } else {
            format!(
                "  if [ \"$h\" != {} ] && [ \"$(stat -c %s \"$f\")\" -le {MAX_DIFF_BYTES} ]; then echo content; base64 < \"$f\"; fi\n",
                q(&self.desired_hash())
            )
        };
        format!(
            "f={}\nif [ -L \"$f\" ]; then echo link\nelif [ -f \"$f\" ]; then\n  stat -c 'file %a %U %G' \"$f\"\n  h=$(sha256sum < \"$f\"); h=${{h%% *}}; echo \"sha256 $h\"\n{fetch}elif [ -e \"$f\" ]; then echo other\nelse echo absent\nfi",
            q(&self.path)
        )
    }

    fn plan(&self, state: &str) -> Result<Option<Change>, String> {
        let (head, rest) = first_line(state);
        let words: Vec<&str> = head.split_whitespace().collect();
        match (words.as_slice(), &self.ensure) {
            (["absent"], Ensure::Absent) => Ok(None),
            (["absent"], Ensure::Present(c)) => Ok(Some(Change {
                what: vec!["created".into()],
                diff: self.diff(None, true),
                script: self.write_script(c),
                uploads: vec![],
            })),
            (["link" | "other"], _) => Err(format!("{} exists and is not a regular file; remove it or fix the path", self.path)),
            (["file", mode, owner, group], ensure) => {
                let mut lines = rest.lines();
                let hash = lines.next().and_then(|l| l.strip_prefix("sha256 ")).ok_or("missing sha256 line")?.trim();
                if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(format!("bad sha256 `{hash}`"));
                }
                let current = match lines.next() {
                    Some("content") => {
                        use base64::Engine;
                        let b64: String = lines.collect::<Vec<_>>().concat();
                        Some(base64::engine::general_purpose::STANDARD.decode(b64.trim()).map_err(|e| format!("bad content: {e}"))?)
                    }
                    Some(other) => return Err(format!("unexpected line `{other}`")),
                    None => None,
                };
                let Ensure::Present(content) = ensure else {
                    return Ok(Some(Change {
                        what: vec!["removed".into()],
                        diff: self.diff(current.as_deref(), current.is_some() || self.secret),
                        script: format!("rm -f {}\n", q(&self.path)),
                        uploads: vec![],
                    }));
                };
                let cur_mode = parse_mode(mode)?;
                let content_differs = hash != self.desired_hash();
                let mut what = Vec::new();
                if content_differs {
                    what.push("content".to_string());
                }
                if cur_mode != self.mode {
                    what.push(format!("mode {} → {}", fmt_mode(cur_mode), fmt_mode(self.mode)));
                }
                if *owner != self.owner || *group != self.group {
                    what.push(format!("owner {owner}:{group} → {}:{}", self.owner, self.group));
                }
                if what.is_empty() {
                    return Ok(None);
                }
                let (script, diff) = if content_differs {
                    (self.write_script(content), self.diff(current.as_deref(), current.is_some()))
                } else {
                    (set_meta(&q(&self.path), &self.owner, &self.group, self.mode), None)
                };
                Ok(Some(Change { what, diff, script, uploads: vec![] }))
            }
            _ => Err(format!("unexpected state `{head}`")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(content: &[u8], mode: &str, with_content: bool) -> String {
        use base64::Engine;
        let h = hex::encode(Sha256::digest(content));
        let c =
            if with_content { format!("\ncontent\n{}", base64::engine::general_purpose::STANDARD.encode(content)) } else { String::new() };
        format!("file {mode} root root\nsha256 {h}{c}")
    }

    #[test]
    fn same_content_and_meta_is_ok() {
        let f = File::new("/etc/x", "a\n");
        assert!(f.plan(&state(b"a\n", "644", false)).unwrap().is_none());
    }

    #[test]
    fn content_change_has_a_unified_diff() {
        let f = File::new("/etc/x", "a\nb\n");
        let c = f.plan(&state(b"a\n", "644", true)).unwrap().unwrap();
        assert_eq!(c.what, ["content"]);
        let Some(Diff::Text(d)) = c.diff else { panic!() };
        assert!(d.contains("--- /etc/x\n+++ /etc/x\n") && d.contains("+b\n"), "{d}");
    }

    #[test]
    fn mode_only_change_does_not_rewrite() {
        let f = File::new("/etc/x", "a\n").mode(0o600);
        let c = f.plan(&state(b"a\n", "644", false)).unwrap().unwrap();
        assert_eq!(c.what, ["mode 0644 → 0600"]);
        assert!(!c.script.contains("base64"), "{}", c.script);
    }

    #[test]
    fn secrets_are_never_diffed_or_fetched() {
        let f = File::new("/etc/key.pem", "PRIVATE").secret();
        assert!(!f.probe().contains("base64"));
        let c = f.plan("absent").unwrap().unwrap();
        assert_eq!(c.diff, Some(Diff::Secret));
    }

    #[test]
    fn malformed_states_are_errors() {
        let f = File::new("/etc/x", "a");
        for s in ["", "file 644 root", "file 644 root root\nsha256 zz", "file 999 root root\nsha256 ".to_string().as_str(), "weird", "link"]
        {
            assert!(f.plan(s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn paths_are_quoted() {
        let f = File::new("/tmp/a b/$(reboot)", "x");
        assert!(f.probe().starts_with("f='/tmp/a b/$(reboot)'\n"));
        assert!(f.write_script(b"x").contains("d='/tmp/a b'\n"));
    }
}
