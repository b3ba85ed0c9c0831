//! How a resource's current state is read. Most resources of a host read the same kinds of
//! facts: a path's type, mode and owner, a unit's state, a daemon's containers. Those are
//! gathered with one program for all of them (one `stat`, one `sha256sum`, one `systemctl
//! show`), and each resource's state is cut out of that output here, on this machine, in the
//! format its `plan` reads. A probe's cost on the host is almost all program starts (a few ms
//! each, ~10 for `systemctl` or `curl`), so this is what keeps a no-op run near one round trip
//! however many files and units the roles manage.

use std::collections::BTreeMap;

use super::sections::{Framed, Section, SectionId};
use super::{Desired, SharedFact};
use crate::sh::{Cmd, Script, quote};

/// How the engine reads a resource's current state (what [`super::Resource::plan`] receives).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// The resource's own POSIX sh, run in a subshell as root; it must print nothing that
    /// starts with `@@` at the start of a line (binary data goes through base64).
    Script(String),
    /// A path's metadata, gathered with every other path's: `state=absent`, `state=link`,
    /// `state=other` (not the expected type), or `state=dir`/`state=file` with `mode`, `owner`,
    /// `group` (and, for a file, `sha256` and maybe `content`).
    Path(PathProbe),
    /// A systemd unit's `LoadState`, `UnitFileState`, `ActiveState` and `NeedDaemonReload`, as
    /// `systemctl show` prints them, gathered with every other unit's.
    Unit(String),
    /// Read from a shared fact's output by [`super::Resource::read_shared`], on this machine:
    /// starts no program on the host.
    Shared(SharedFact),
    /// Nothing to read (a check, which only has a health snippet): `plan` gets an empty state.
    Nothing,
}

impl Probe {
    /// The sh of a [`Probe::Script`] (tests read it).
    #[cfg(test)]
    pub fn script(&self) -> &str {
        match self {
            Probe::Script(s) => s,
            other => panic!("not a script probe: {other:?}"),
        }
    }
}

impl From<String> for Probe {
    fn from(script: String) -> Self {
        Probe::Script(script)
    }
}

/// What to read about one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathProbe {
    /// Absolute path; a symbolic link there is reported as one, never followed.
    pub path: String,
    /// What should be there.
    pub expect: Expect,
}

/// The type of a managed path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// A directory.
    Dir,
    /// A regular file, hashed. When its sha256 is not `content_unless`, its content (up to
    /// [`MAX_CONTENT_BYTES`]) comes back too, for the diff; `None` for secrets.
    File {
        /// The sha256 (hex) the file should have.
        content_unless: Option<String>,
    },
}

/// Files larger than this are not sent back for diffing.
pub const MAX_CONTENT_BYTES: u64 = 256 * 1024;

/// Each step's probe, in order: computed once per run, for the script and for [`expand`].
pub fn probes(desired: &Desired) -> Vec<Probe> {
    desired.steps.iter().map(|s| s.resource.probe()).collect()
}

/// The parts of the probe script that gather for several steps at once (`probes`: each step's,
/// see [`probes`]): their ids and bodies.
pub fn batch_parts(probes: &[Probe]) -> Vec<(SectionId, String)> {
    let mut parts = Vec::new();
    let paths: Vec<&PathProbe> = probes.iter().filter_map(|p| if let Probe::Path(p) = p { Some(p) } else { None }).collect();
    if !paths.is_empty() {
        parts.push((SectionId::Paths, paths_script(&paths)));
    }
    let units: Vec<&str> = probes.iter().filter_map(|p| if let Probe::Unit(u) = p { Some(u.as_str()) } else { None }).collect();
    if !units.is_empty() {
        parts.push((SectionId::Units, units_cmd(&units).render()));
    }
    for (k, fact) in shared_read(probes).iter().enumerate() {
        parts.push((SectionId::Fact(k), format!("printf '%s\\n' \"${}\"", fact.var)));
    }
    parts
}

/// The shared facts some step reads on this machine, in order of first use.
fn shared_read(probes: &[Probe]) -> Vec<&SharedFact> {
    let mut facts: Vec<&SharedFact> = Vec::new();
    for p in probes {
        if let Probe::Shared(f) = p
            && !facts.iter().any(|g| g.var == f.var)
        {
            facts.push(f);
        }
    }
    facts
}

/// One `systemctl show` for every unit: it prints a block per unit, in order, separated by
/// empty lines.
fn units_cmd(units: &[&str]) -> Cmd {
    Cmd::new("systemctl")
        .args(["show", "-p", "LoadState", "-p", "UnitFileState", "-p", "ActiveState", "-p", "NeedDaemonReload"])
        .end_of_options()
        .args(units)
}

/// sh printing one `stat` line per existing path (`<type>|<mode>|<owner>|<group>|<path>`, a
/// symbolic link as itself), `@sha256`, `sha256sum`'s lines for the regular files among the
/// paths expected to be files, and, after `@content`, `<base64> <path>` for each file whose
/// hash is not the desired one and that is small enough to diff.
fn paths_script(paths: &[&PathProbe]) -> String {
    let mut s = Script::new();
    let stat = Cmd::new("stat").args(["-c", "%F|%a|%U|%G|%n"]).end_of_options().args(paths.iter().map(|p| p.path.as_str()));
    s.line(&format!("{stat} 2>/dev/null || true"));
    s.line("echo @sha256");
    let files: Vec<&PathProbe> = paths.iter().copied().filter(|p| matches!(p.expect, Expect::File { .. })).collect();
    if files.is_empty() {
        return s.into_string();
    }
    // Only regular files are hashed: sha256sum would follow a link and read as root whatever
    // it points at.
    s.line(&format!(
        "set --\nfor f in {}; do if [ -f \"$f\" ] && [ ! -L \"$f\" ]; then set -- \"$@\" \"$f\"; fi; done",
        crate::sh::quote_all(files.iter().map(|p| p.path.as_str()))
    ));
    s.line("[ $# -eq 0 ] || { sums=$(sha256sum -- \"$@\" 2>/dev/null) || true; printf '%s\\n' \"$sums\"; }");
    let wanted: Vec<(&str, &str)> = files
        .iter()
        .filter_map(|p| match &p.expect {
            Expect::File { content_unless: Some(h) } => Some((p.path.as_str(), h.as_str())),
            _ => None,
        })
        .collect();
    if wanted.is_empty() {
        return s.into_string();
    }
    // Only a file that differs is read back, whole (for the diff): a no-op run reads none.
    let cases: String = wanted.iter().map(|(p, h)| format!("{}) w={h} ;;\n", quote(p))).collect();
    s.line("echo @content");
    s.line(&format!(
        "[ $# -eq 0 ] || printf '%s\\n' \"$sums\" | while IFS= read -r l; do\nf=${{l#*  }}\ncase $f in\n{cases}*) continue ;;\nesac\n\
         [ \"${{l%% *}}\" = \"$w\" ] || [ \"$(stat -c %s -- \"$f\")\" -gt {MAX_CONTENT_BYTES} ] || \
         printf '%s %s\\n' \"$(base64 < \"$f\" | tr -d '\\n')\" \"$f\"\ndone"
    ));
    s.into_string()
}

/// One path's `stat` line.
struct Stat<'a> {
    kind: &'a str,
    mode: &'a str,
    owner: &'a str,
    group: &'a str,
}

/// The paths part's output, by path.
#[derive(Default)]
struct PathFacts<'a> {
    stat: BTreeMap<&'a str, Stat<'a>>,
    sha256: BTreeMap<&'a str, &'a str>,
    content: BTreeMap<&'a str, &'a str>,
}

impl<'a> PathFacts<'a> {
    fn parse(body: &'a str) -> PathFacts<'a> {
        let mut facts = PathFacts::default();
        let mut block = 0;
        for line in body.lines() {
            match line {
                "@sha256" => block = 1,
                "@content" => block = 2,
                _ if block == 0 => {
                    let f: Vec<&str> = line.splitn(5, '|').collect();
                    if let [kind, mode, owner, group, path] = f[..] {
                        facts.stat.insert(path, Stat { kind, mode, owner, group });
                    }
                }
                _ if block == 1 => {
                    if let Some((h, p)) = line.split_once("  ") {
                        facts.sha256.insert(p, h);
                    }
                }
                _ => {
                    if let Some((b64, p)) = line.split_once(' ') {
                        facts.content.insert(p, b64);
                    }
                }
            }
        }
        facts
    }

    /// The state a path resource's `plan` reads.
    fn state(&self, probe: &PathProbe) -> String {
        let path = probe.path.as_str();
        let Some(st) = self.stat.get(path) else { return "state=absent".into() };
        let meta = format!("mode={}\nowner={}\ngroup={}", st.mode, st.owner, st.group);
        match (&probe.expect, st.kind) {
            (_, "symbolic link") => "state=link".into(),
            (Expect::Dir, "directory") => format!("state=dir\n{meta}"),
            (Expect::File { .. }, "regular file" | "regular empty file") => {
                let mut s = format!("state=file\n{meta}");
                if let Some(h) = self.sha256.get(path) {
                    s.push_str(&format!("\nsha256={h}"));
                }
                if let Some(c) = self.content.get(path) {
                    s.push_str(&format!("\ncontent={c}"));
                }
                s
            }
            _ => "state=other".into(),
        }
    }
}

/// Replaces the batch parts' sections in `framed` (the output of the probe built from
/// `probes`) with one `r<step>` section per step they gathered for (and an empty one for each
/// step with nothing to read), so that the rest of the engine reads every step's state the
/// same way. A failed batch part fails each of its steps with its output.
pub fn expand(desired: &Desired, probes: &[Probe], framed: &mut Framed) {
    let take = |framed: &mut Framed, id: &SectionId| {
        let at = framed.sections.iter().position(|s| &s.id == id)?;
        Some(framed.sections.remove(at))
    };
    let paths = take(framed, &SectionId::Paths);
    let units = take(framed, &SectionId::Units);
    let shared_facts = shared_read(probes);
    let shared: Vec<Option<Section>> = (0..shared_facts.len()).map(|k| take(framed, &SectionId::Fact(k))).collect();
    let unit_count = probes.iter().filter(|p| matches!(p, Probe::Unit(_))).count();
    let unit_blocks = units.as_ref().map(|u| unit_blocks(u, unit_count));
    let path_facts = paths.as_ref().filter(|p| p.rc == 0).map(|p| PathFacts::parse(&p.body));
    let mut unit_k = 0;
    for (i, probe) in probes.iter().enumerate() {
        let step = |rc: i32, body: String| Section { id: SectionId::Step(i), rc, body };
        let section = match probe {
            Probe::Nothing => Some(step(0, String::new())),
            Probe::Script(_) => continue,
            Probe::Path(p) => match (&paths, &path_facts) {
                (Some(_), Some(facts)) => Some(step(0, facts.state(p))),
                (Some(part), None) => Some(step(part.rc, part.body.clone())),
                _ => None,
            },
            Probe::Unit(_) => {
                unit_k += 1;
                unit_blocks.as_ref().map(|b| match b {
                    Ok(blocks) => step(0, blocks[unit_k - 1].to_string()),
                    Err((rc, body)) => step(*rc, body.clone()),
                })
            }
            Probe::Shared(f) => {
                let k = shared_facts.iter().position(|g| g.var == f.var).unwrap_or(usize::MAX);
                shared.get(k).and_then(Option::as_ref).map(|s| match s.rc {
                    0 => step(0, desired.steps[i].resource.read_shared(&s.body)),
                    rc => step(rc, s.body.clone()),
                })
            }
        };
        if let Some(section) = section {
            framed.sections.push(section);
        }
    }
}

/// `systemctl show`'s output cut into one block per unit, or the exit status and output every
/// unit is failed with.
fn unit_blocks(part: &Section, units: usize) -> Result<Vec<&str>, (i32, String)> {
    if part.rc != 0 {
        return Err((part.rc, part.body.clone()));
    }
    let blocks: Vec<&str> = part.body.trim().split("\n\n").collect();
    if blocks.len() != units {
        return Err((1, format!("systemctl show printed {} blocks for {units} units:\n{}", blocks.len(), part.body)));
    }
    Ok(blocks)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Runs the paths part for `probes` on this machine (as `sh`) and returns each one's state.
    pub(crate) fn gather_paths_locally(probes: &[PathProbe]) -> Vec<String> {
        let refs: Vec<&PathProbe> = probes.iter().collect();
        let (ok, out, err) = crate::sh::run_locally(&format!("set -e\n{}", paths_script(&refs)), b"");
        assert!(ok, "{err}");
        let facts = PathFacts::parse(&out);
        probes.iter().map(|p| facts.state(p)).collect()
    }

    /// The paths part for these probes (each a [`Probe::Path`]).
    pub(crate) fn paths_script_for(probes: &[Probe]) -> String {
        let paths: Vec<&PathProbe> = probes.iter().filter_map(|p| if let Probe::Path(p) = p { Some(p) } else { None }).collect();
        paths_script(&paths)
    }

    #[test]
    fn paths_are_read_with_one_stat_and_one_sha256sum() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap().to_string();
        std::fs::write(format!("{d}/same"), "a\n").unwrap();
        std::fs::write(format!("{d}/other"), "old\n").unwrap();
        std::fs::write(format!("{d}/empty"), "").unwrap();
        std::fs::write(format!("{d}/with space  twice"), "x").unwrap();
        std::os::unix::fs::symlink(format!("{d}/same"), format!("{d}/link")).unwrap();
        std::fs::create_dir(format!("{d}/sub")).unwrap();
        let sha = |c: &[u8]| {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(c))
        };
        let file =
            |name: &str, want: Option<String>| PathProbe { path: format!("{d}/{name}"), expect: Expect::File { content_unless: want } };
        let probes = vec![
            file("same", Some(sha(b"a\n"))),
            file("other", Some(sha(b"new\n"))),
            file("empty", Some(sha(b"x"))),
            file("with space  twice", None),
            file("link", Some(sha(b"b"))),
            file("missing", None),
            file("sub", None),
            PathProbe { path: format!("{d}/sub"), expect: Expect::Dir },
            PathProbe { path: format!("{d}/same"), expect: Expect::Dir },
        ];
        let states = gather_paths_locally(&probes);
        let kv = |s: &str, k: &str| crate::sh::Kv::parse(s).unwrap().get(k).map(str::to_string);
        assert_eq!(kv(&states[0], "state").as_deref(), Some("file"));
        assert_eq!(kv(&states[0], "sha256"), Some(sha(b"a\n")));
        assert_eq!(kv(&states[0], "content"), None, "an unchanged file is not read back");
        assert_eq!(kv(&states[1], "content").as_deref(), Some("b2xkCg=="), "a changed one is, for the diff");
        assert_eq!(kv(&states[2], "sha256"), Some(sha(b"")));
        assert_eq!(kv(&states[2], "content").as_deref(), Some(""));
        assert_eq!(kv(&states[3], "sha256"), Some(sha(b"x")), "{}", states[3]);
        assert_eq!(states[4], "state=link", "a link is never followed");
        assert_eq!(states[5], "state=absent");
        assert_eq!(states[6], "state=other");
        assert!(states[7].starts_with("state=dir\nmode=7"), "{}", states[7]);
        assert_eq!(states[8], "state=other");
        let me = kv(&states[0], "owner").unwrap();
        assert!(!me.is_empty() && kv(&states[0], "mode").unwrap().len() == 3, "{}", states[0]);
    }

    #[test]
    fn units_are_cut_into_blocks_and_a_failed_call_fails_each() {
        let part = Section { id: SectionId::Units, rc: 0, body: "LoadState=loaded\nActiveState=active\n\nLoadState=not-found\n".into() };
        assert_eq!(unit_blocks(&part, 2).unwrap(), ["LoadState=loaded\nActiveState=active", "LoadState=not-found"]);
        assert!(unit_blocks(&part, 3).unwrap_err().1.contains("2 blocks for 3 units"));
        let failed = Section { id: SectionId::Units, rc: 1, body: "Failed to connect to bus".into() };
        assert_eq!(unit_blocks(&failed, 2).unwrap_err(), (1, "Failed to connect to bus".to_string()));
    }
}
