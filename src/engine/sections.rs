//! The framing of remote script output: each part of a generated script prints between
//! `@@<nonce> begin <id>` and `@@<nonce> end <id> <rc>` lines, and the script ends with
//! `@@<nonce> done`. The nonce is random per run, so nothing a host prints can forge a marker.

use crate::sh::Script;

/// Which part of a generated script a section is: the words both the scripts and the parser use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionId {
    /// A step's probe (in the probe script) or its change (in the apply script): `r<step>`.
    Step(usize),
    /// The file a deferred step's probe reads: `d<step>`.
    Read(usize),
    /// A step's health check, in the probe and the verify script: `k<step>`.
    Health(usize),
    /// The handlers an earlier run owes: `pending`.
    Pending,
    /// The mark the last apply left on the host: `generation`.
    Generation,
    /// Every managed path's metadata, gathered at once (see [`super::gather`]): `paths`.
    Paths,
    /// Every managed unit's state, gathered at once: `units`.
    Units,
    /// A shared fact's output, for the steps that read it here: `f<k>`.
    Fact(usize),
    /// A handler's run after a step: `h<handler>.<after>`.
    Handler {
        /// Index of the handler.
        handler: usize,
        /// Index of the step it runs after.
        after: usize,
    },
    /// An id no generated script uses (kept for the error messages about it).
    Other(String),
}

impl std::fmt::Display for SectionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SectionId::Step(i) => write!(f, "r{i}"),
            SectionId::Read(i) => write!(f, "d{i}"),
            SectionId::Health(i) => write!(f, "k{i}"),
            SectionId::Pending => f.write_str("pending"),
            SectionId::Generation => f.write_str("generation"),
            SectionId::Paths => f.write_str("paths"),
            SectionId::Units => f.write_str("units"),
            SectionId::Fact(k) => write!(f, "f{k}"),
            SectionId::Handler { handler, after } => write!(f, "h{handler}.{after}"),
            SectionId::Other(s) => f.write_str(s),
        }
    }
}

impl From<&str> for SectionId {
    fn from(s: &str) -> Self {
        let num = |t: &str| t.parse::<usize>().ok().filter(|_| t.bytes().all(|b| b.is_ascii_digit()));
        let parsed = match s.split_at_checked(1) {
            _ if s == "pending" => Some(SectionId::Pending),
            _ if s == "generation" => Some(SectionId::Generation),
            _ if s == "paths" => Some(SectionId::Paths),
            _ if s == "units" => Some(SectionId::Units),
            Some(("r", n)) => num(n).map(SectionId::Step),
            Some(("d", n)) => num(n).map(SectionId::Read),
            Some(("k", n)) => num(n).map(SectionId::Health),
            Some(("f", n)) => num(n).map(SectionId::Fact),
            Some(("h", rest)) => rest.split_once('.').and_then(|(h, a)| Some(SectionId::Handler { handler: num(h)?, after: num(a)? })),
            _ => None,
        };
        parsed.unwrap_or_else(|| SectionId::Other(s.to_string()))
    }
}

/// A status line a script prints outside the sections: `@@<nonce> <word>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// Another run holds the host's lock; the apply script changed nothing.
    Locked,
    /// The host has no `flock`; the apply script changed nothing.
    NoFlock,
    /// A step failed and the script ended itself.
    Stopped,
    /// Another run applied to the host after this run's probe; the apply script changed nothing.
    Changed,
    /// A word no generated script prints.
    Other(String),
}

impl Note {
    /// The word on the line.
    pub fn word(&self) -> &str {
        match self {
            Note::Locked => "locked",
            Note::NoFlock => "noflock",
            Note::Stopped => "stopped",
            Note::Changed => "changed",
            Note::Other(s) => s,
        }
    }
}

impl From<&str> for Note {
    fn from(s: &str) -> Self {
        match s {
            "locked" => Note::Locked,
            "noflock" => Note::NoFlock,
            "stopped" => Note::Stopped,
            "changed" => Note::Changed,
            other => Note::Other(other.to_string()),
        }
    }
}

impl PartialEq<&str> for Note {
    fn eq(&self, other: &&str) -> bool {
        self.word() == *other
    }
}

/// One framed part of the output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The id given at `begin`.
    pub id: SectionId,
    /// Exit status of the part.
    pub rc: i32,
    /// What it printed.
    pub body: String,
}

/// Parsed output of a framed script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framed {
    /// Complete sections in order.
    pub sections: Vec<Section>,
    /// Whether the `done` line was seen (false: the script stopped early or output was cut).
    pub done: bool,
    /// Extra status lines the script printed (`@@<nonce> <word> ...` other than the framing).
    pub notes: Vec<Note>,
}

impl Framed {
    /// The section with this id, if the output has it.
    pub fn section(&self, id: &SectionId) -> Option<&Section> {
        self.sections.iter().find(|s| &s.id == id)
    }

    /// Whether the script printed this note.
    pub fn has(&self, note: &Note) -> bool {
        self.notes.contains(note)
    }
}

/// Output that does not follow the framing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed output from host (line {line}): {reason}")]
pub struct FrameError {
    /// 1-based line of the problem.
    pub line: usize,
    /// What was wrong.
    pub reason: String,
}

/// A fresh random nonce for one script.
pub fn nonce() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Adds to `script` a part that runs `body` as the framed section `id` in a subshell, with
/// `set -e`, stderr merged. With `stop_on_error`, a failing part ends the whole script (after
/// printing its end marker and the [`Note::Stopped`] note).
pub fn part(script: &mut Script, nonce: &str, id: &SectionId, body: &str, stop_on_error: bool) {
    framed(script, nonce, id, body, "");
    if stop_on_error {
        script.line(&format!("[ \"$rc\" -eq 0 ] || {{ {} exit 0; }}", note_cmd(nonce, &Note::Stopped)));
    }
}

/// Adds to `script` a part like [`part`] (never stopping the script) that runs in the
/// background, its framed output going to the file `out` (a sh word, e.g. `"$pd/3"`): the
/// caller waits for every such part and prints their files in order. Probe parts only read,
/// so they can run at once; most of their time is spent starting small programs and waiting
/// for daemons, which then overlaps.
pub fn background_part(script: &mut Script, nonce: &str, id: &SectionId, body: &str, out: &str) {
    script.line("{");
    framed(script, nonce, id, body, &format!("; }} > {out} &"));
}

/// The begin marker, `body` in a `set -e` subshell with stderr merged, `rc`, the end marker
/// (followed by `end_suffix` on its line).
fn framed(script: &mut Script, nonce: &str, id: &SectionId, body: &str, end_suffix: &str) {
    script.line(&format!("printf '@@{nonce} begin {id}\\n'"));
    script.line("(").line("set -e").line(body).line(") 2>&1").line("rc=$?");
    script.line(&format!("printf '\\n@@{nonce} end {id} %s\\n' \"$rc\"{end_suffix}"));
}

/// The section a line of output begins, if it is a begin marker of the script with `nonce`
/// (for following a script's output as it arrives).
pub fn begun(line: &str, nonce: &str) -> Option<SectionId> {
    line.strip_prefix("@@")?.strip_prefix(nonce)?.strip_prefix(" begin ").map(SectionId::from)
}

/// sh (one command ending in `;`) that prints `note`.
pub fn note_cmd(nonce: &str, note: &Note) -> String {
    format!("printf '@@{nonce} {}\\n';", note.word())
}

/// Adds to `script` the closing `done` marker.
pub fn done(script: &mut Script, nonce: &str) {
    script.line(&format!("printf '@@{nonce} done\\n'"));
}

/// Parses framed output. Lines outside sections (e.g. a login banner) are ignored; a section
/// that does not end, an end that does not match its begin, or anything after `done` is an error.
pub fn parse(output: &str, nonce: &str) -> Result<Framed, FrameError> {
    let marker = format!("@@{nonce} ");
    let mut framed = Framed { sections: Vec::new(), done: false, notes: Vec::new() };
    let mut open: Option<(String, usize, String)> = None;
    for (i, line) in output.split('\n').enumerate() {
        let lineno = i + 1;
        let err = |reason: String| FrameError { line: lineno, reason };
        let Some(rest) = line.strip_prefix(&marker) else {
            if framed.done && !line.is_empty() {
                return Err(err("output after the end marker".into()));
            }
            if let Some((_, _, body)) = open.as_mut() {
                body.push_str(line);
                body.push('\n');
            }
            continue;
        };
        let words: Vec<&str> = rest.split(' ').collect();
        match words.as_slice() {
            ["begin", id] => {
                if let Some((open_id, _, _)) = &open {
                    return Err(err(format!("section {id} begins inside unfinished section {open_id}")));
                }
                open = Some((id.to_string(), lineno, String::new()));
            }
            ["end", id, rc] => {
                let Some((open_id, _, mut body)) = open.take() else { return Err(err(format!("section {id} ends but never began"))) };
                if open_id != *id {
                    return Err(err(format!("section {open_id} ends as {id}")));
                }
                let rc = rc.parse().map_err(|_| err(format!("bad exit status `{rc}`")))?;
                // The framing adds one newline before the end marker, and the split one more.
                body.pop();
                if body.ends_with('\n') {
                    body.pop();
                }
                framed.sections.push(Section { id: SectionId::from(open_id.as_str()), rc, body });
            }
            ["done"] => {
                if let Some((open_id, start, _)) = &open {
                    return Err(err(format!("section {open_id} (line {start}) never ended")));
                }
                framed.done = true;
            }
            _ => framed.notes.push(Note::from(rest)),
        }
    }
    if let Some((id, start, _)) = open {
        return Err(FrameError { line: start, reason: format!("output ends inside section {id} (connection lost or output cut)") });
    }
    Ok(framed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: &str = "abc123";

    #[test]
    fn parses_sections_and_keeps_bodies_exact() {
        let out = "banner\n@@abc123 begin r0\nline1\nline2\n\n@@abc123 end r0 0\n@@abc123 begin r1\n\n@@abc123 end r1 3\n@@abc123 done\n";
        let f = parse(out, N).unwrap();
        assert!(f.done);
        assert_eq!(f.sections[0], Section { id: "r0".into(), rc: 0, body: "line1\nline2".into() });
        assert_eq!(f.sections[1], Section { id: "r1".into(), rc: 3, body: String::new() });
    }

    #[test]
    fn body_without_trailing_newline() {
        let f = parse("@@abc123 begin r0\nno newline\n@@abc123 end r0 0\n@@abc123 done\n", N).unwrap();
        assert_eq!(f.sections[0].body, "no newline");
    }

    #[test]
    fn forged_markers_with_another_nonce_are_body_text() {
        let f = parse("@@abc123 begin r0\n@@evil begin r9\n\n@@abc123 end r0 0\n@@abc123 done\n", N).unwrap();
        assert_eq!(f.sections.len(), 1);
        assert_eq!(f.sections[0].body, "@@evil begin r9");
    }

    #[test]
    fn truncated_and_malformed_output_is_an_error_not_a_panic() {
        let cases = [
            "@@abc123 begin r0\npartial",
            "@@abc123 begin r0\n@@abc123 begin r1\n",
            "@@abc123 end r0 0\n",
            "@@abc123 begin r0\n\n@@abc123 end r1 0\n",
            "@@abc123 begin r0\n\n@@abc123 end r0 x\n",
            "@@abc123 begin r0\n@@abc123 done\n",
            "@@abc123 done\nextra\n",
        ];
        for c in cases {
            assert!(parse(c, N).is_err(), "{c:?} should be rejected");
        }
        // Every prefix of a good output parses or errors, never panics.
        let good = "@@abc123 begin r0\nx\n\n@@abc123 end r0 0\n@@abc123 done\n";
        for i in 0..good.len() {
            let _ = parse(&good[..i], N);
        }
    }

    #[test]
    fn stopped_early_is_not_done() {
        let f = parse("@@abc123 begin r0\nboom\n\n@@abc123 end r0 1\n@@abc123 stopped\n", N).unwrap();
        assert!(!f.done);
        assert_eq!(f.notes, ["stopped"]);
    }
}
