//! A regular file: content, mode, owner and group, written atomically.

use sha2::{Digest, Sha256};

use super::{check_absolute, fmt_mode, parse_mode, set_meta};
use crate::engine::gather::{Expect, MAX_CONTENT_BYTES as MAX_DIFF_BYTES, PathProbe, Probe};
use crate::engine::{Change, Diff, Resource};
use crate::sh::{Cmd, Kv, Script};

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
    let mut s = Script::new();
    for p in paths {
        s.set("f", p);
        s.line(&format!(
            "if [ -f \"$f\"{PREVIOUS_SUFFIX} ]; then mv -f -- \"$f\"{PREVIOUS_SUFFIX} \"$f\"; echo \"$f\"; \
             elif [ -f \"$f\"{WAS_ABSENT_SUFFIX} ]; then rm -f -- \"$f\" \"$f\"{WAS_ABSENT_SUFFIX}; echo \"$f\"; fi"
        ));
    }
    s.into_string()
}

/// sh forgetting the previous contents of `paths` (the new ones work).
pub fn forget_previous_script(paths: &[&str]) -> String {
    let all = paths.iter().flat_map(|p| [format!("{p}{PREVIOUS_SUFFIX}"), format!("{p}{WAS_ABSENT_SUFFIX}")]);
    Cmd::new("rm").arg("-f").end_of_options().args(all).render() + "\n"
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

    /// sh that writes the content atomically: a fresh temp file in the same directory (created
    /// exclusively, 0600, under umask 077: no one else reads a byte or plants a name), given
    /// its final owner and mode, checked, then renamed over the target. A reader never sees a
    /// partial file.
    fn write_script(&self, content: &[u8]) -> String {
        let (dir, _) = self.dir_and_name();
        let mut s = Script::new();
        s.line("umask 077");
        s.set("d", dir).set("f", &self.path);
        s.line("(umask 022; mkdir -p -- \"$d\")");
        s.private_temp("t", "d");
        s.trap_remove(if self.keep_previous { &["t", "k"] } else { &["t"] });
        s.base64_to("\"$t\"", content);
        set_meta(&mut s, "t", &self.owner, &self.group, self.mode);
        if let Some(v) = &self.validate {
            s.line(&format!("( {v} ) >&2 || {{ echo \"the new content of $f was refused (not written)\" >&2; exit 1; }}"));
        }
        if self.keep_previous {
            // Only the first change since the last good restart is kept: that is what worked.
            // The copy also goes through a fresh temp file, never through a planted name.
            s.line(&format!(
                "if [ ! -e \"$f\"{PREVIOUS_SUFFIX} ] && [ ! -L \"$f\"{PREVIOUS_SUFFIX} ] && [ ! -e \"$f\"{WAS_ABSENT_SUFFIX} ] && [ ! -L \"$f\"{WAS_ABSENT_SUFFIX} ]; then"
            ));
            s.private_temp("k", "d");
            s.line(&format!(
                "if [ -f \"$f\" ]; then cp -p -- \"$f\" \"$k\"; mv -f -- \"$k\" \"$f\"{PREVIOUS_SUFFIX}; else mv -f -- \"$k\" \"$f\"{WAS_ABSENT_SUFFIX}; fi\nfi"
            ));
        }
        s.line("if [ -L \"$f\" ] || [ -d \"$f\" ]; then echo \"refusing $f: it is a symbolic link or a directory\" >&2; exit 1; fi");
        s.line("mv -f -- \"$t\" \"$f\"");
        s.untrap();
        s.into_string()
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

    fn probe(&self) -> Probe {
        let content_unless = (!self.secret && self.ensure != Ensure::Absent).then(|| self.desired_hash());
        Probe::Path(PathProbe { path: self.path.clone(), expect: Expect::File { content_unless } })
    }

    fn plan(&self, state: &str) -> Result<Option<Change>, String> {
        check_absolute(&self.path)?;
        let kv = Kv::parse(state)?;
        match (kv.require("state")?, &self.ensure) {
            ("absent", Ensure::Absent) => Ok(None),
            ("absent", Ensure::Present(c)) => Ok(Some(Change {
                what: vec!["created".into()],
                diff: self.diff(None, true),
                script: self.write_script(c),
                uploads: vec![],
            })),
            ("link" | "other", _) => Err(format!("{} exists and is not a regular file; remove it or fix the path", self.path)),
            ("file", ensure) => {
                let hash = kv.require("sha256")?;
                if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(format!("bad sha256 `{hash}`"));
                }
                let current = match kv.get("content") {
                    Some(b64) => {
                        use base64::Engine;
                        Some(base64::engine::general_purpose::STANDARD.decode(b64.trim()).map_err(|e| format!("bad content: {e}"))?)
                    }
                    None => None,
                };
                let Ensure::Present(content) = ensure else {
                    let mut s = Script::new();
                    s.cmd(&Cmd::new("rm").arg("-f").end_of_options().arg(&self.path));
                    return Ok(Some(Change {
                        what: vec!["removed".into()],
                        diff: self.diff(current.as_deref(), current.is_some() || self.secret),
                        script: s.into_string(),
                        uploads: vec![],
                    }));
                };
                let (mode, owner, group) = (kv.require("mode")?, kv.require("owner")?, kv.require("group")?);
                let cur_mode = parse_mode(mode)?;
                let content_differs = hash != self.desired_hash();
                let mut what = Vec::new();
                if content_differs {
                    what.push("content".to_string());
                }
                if cur_mode != self.mode {
                    what.push(format!("mode {} → {}", fmt_mode(cur_mode), fmt_mode(self.mode)));
                }
                if owner != self.owner || group != self.group {
                    what.push(format!("owner {owner}:{group} → {}:{}", self.owner, self.group));
                }
                if what.is_empty() {
                    return Ok(None);
                }
                let (script, diff) = if content_differs {
                    (self.write_script(content), self.diff(current.as_deref(), current.is_some()))
                } else {
                    let mut s = Script::new();
                    s.set("f", &self.path);
                    set_meta(&mut s, "f", &self.owner, &self.group, self.mode);
                    (s.into_string(), None)
                };
                Ok(Some(Change { what, diff, script, uploads: vec![] }))
            }
            (other, _) => Err(format!("unexpected state `{other}`")),
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
            if with_content { format!("\ncontent={}", base64::engine::general_purpose::STANDARD.encode(content)) } else { String::new() };
        format!("state=file\nmode={mode}\nowner=root\ngroup=root\nsha256={h}{c}")
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
        assert_eq!(f.probe(), Probe::Path(PathProbe { path: "/etc/key.pem".into(), expect: Expect::File { content_unless: None } }));
        let c = f.plan("state=absent").unwrap().unwrap();
        assert_eq!(c.diff, Some(Diff::Secret));
    }

    #[test]
    fn malformed_states_are_errors() {
        let f = File::new("/etc/x", "a");
        let h = "0".repeat(64);
        for s in [
            "",
            "state=file\nmode=644\nowner=root",
            "state=file\nmode=644\nowner=root\ngroup=root\nsha256=zz",
            &format!("state=file\nmode=999\nowner=root\ngroup=root\nsha256={h}"),
            &format!("state=file\nmode=644\nowner=root\nsha256={h}"),
            "weird",
            "state=link",
            "state=weird",
        ] {
            assert!(f.plan(s).is_err(), "{s:?}");
        }
    }

    /// The state the engine's batched probe reads for `f`, gathered with the local sh.
    fn probe_locally(f: &File) -> String {
        let Probe::Path(p) = f.probe() else { panic!("a file's probe is a path") };
        crate::engine::gather::tests::gather_paths_locally(&[p]).remove(0)
    }

    /// Probes, plans and applies `f` with the local sh, as the engine would on a host.
    fn converge(f: &File) -> Option<Change> {
        let state = probe_locally(f);
        let change = f.plan(&state).unwrap();
        if let Some(c) = &change {
            let (ok, _, err) = crate::sh::run_locally(&c.script, b"");
            assert!(ok, "{err}\n{}", c.script);
        }
        change
    }

    #[test]
    fn writes_never_go_through_a_planted_temp_name_and_leave_no_temp_file() {
        if !crate::sh::is_root() {
            return; // files are chowned to root
        }
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a b");
        std::fs::create_dir(&sub).unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        // The temp name earlier versions used, planted as a symlink to another file.
        std::os::unix::fs::symlink(&victim, sub.join(".key.pem.provision-tmp")).unwrap();
        let path = sub.join("key.pem");
        let f = File::new(path.to_str().unwrap(), "SECRET\n").mode(0o600).secret();
        assert_eq!(converge(&f).unwrap().what, ["created"]);
        assert_eq!(std::fs::read(&path).unwrap(), b"SECRET\n");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep", "the planted link was not written through");
        assert!(converge(&f).is_none(), "converged");
        let f = File::new(path.to_str().unwrap(), "NEW\n").mode(0o640).keep_previous();
        assert_eq!(converge(&f).unwrap().what, ["content", "mode 0600 → 0640"]);
        assert_eq!(std::fs::read(sub.join(format!("key.pem{PREVIOUS_SUFFIX}"))).unwrap(), b"SECRET\n", "the previous content is kept");
        let (ok, out, _) = crate::sh::run_locally(&restore_previous_script(&[path.to_str().unwrap()]), b"");
        assert!(ok && out.contains("key.pem"), "{out}");
        assert_eq!(std::fs::read(&path).unwrap(), b"SECRET\n", "restored");
        let left: Vec<String> = std::fs::read_dir(&sub).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(left.len(), 2, "only the file and the planted link remain: {left:?}");
        // A mode-only change refuses a file swapped for a symlink since the probe.
        let victim_mode = std::fs::metadata(&victim).unwrap().permissions().mode();
        let meta = File::new(path.to_str().unwrap(), "SECRET\n").mode(0o604);
        let c = meta.plan(&probe_locally(&meta)).unwrap().unwrap();
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        let (ok, _, err) = crate::sh::run_locally(&c.script, b"");
        assert!(!ok && err.contains("symbolic link"), "{err}");
        assert_eq!(std::fs::metadata(&victim).unwrap().permissions().mode(), victim_mode, "chmod did not follow the link");
    }

    #[test]
    fn temp_files_are_private_before_a_byte_is_written() {
        let s = File::new("/etc/x", "secret").mode(0o600).write_script(b"secret");
        let at = |needle: &str| s.find(needle).unwrap_or_else(|| panic!("{needle} in {s}"));
        assert!(at("umask 077") < at("mktemp") && at("mktemp") < at("base64 -d"), "{s}");
        assert!(!s.contains("provision-tmp'") && s.contains("/.provision-tmp.XXXXXX"), "a fresh random name: {s}");
        assert!(s.contains("chown -h -- root:root \"$t\""), "{s}");
    }

    #[test]
    fn paths_that_climb_or_are_relative_are_refused() {
        for p in ["/etc/systemd/system/../../../root/x", "relative", "/etc/a\nb", "/etc/a\\b"] {
            assert!(File::new(p, "x").plan("state=absent").is_err(), "{p}");
        }
    }

    #[test]
    fn paths_are_quoted() {
        let f = File::new("/tmp/a b/$(reboot)", "x");
        let script = crate::engine::gather::tests::paths_script_for(&[f.probe()]);
        assert!(script.contains(" -- '/tmp/a b/$(reboot)' "), "{script}");
        assert!(f.write_script(b"x").contains("d='/tmp/a b'\n"));
    }
}
