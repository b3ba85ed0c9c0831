//! The framing of remote script output: each part of a generated script prints between
//! `@@<nonce> begin <id>` and `@@<nonce> end <id> <rc>` lines, and the script ends with
//! `@@<nonce> done`. The nonce is random per run, so nothing a host prints can forge a marker.

/// One framed part of the output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The id given at `begin`.
    pub id: String,
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
    pub notes: Vec<String>,
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

/// sh that runs `body` as a framed part named `id` in a subshell, with `set -e`, stderr merged.
/// With `stop_on_error`, a failing part ends the whole script (after printing its end marker).
pub fn part(nonce: &str, id: &str, body: &str, stop_on_error: bool) -> String {
    let stop = if stop_on_error { format!("\n[ \"$rc\" -eq 0 ] || {{ printf '@@{nonce} stopped\\n'; exit 0; }}") } else { String::new() };
    format!("printf '@@{nonce} begin {id}\\n'\n(\nset -e\n{body}\n) 2>&1\nrc=$?\nprintf '\\n@@{nonce} end {id} %s\\n' \"$rc\"{stop}\n")
}

/// sh that prints the closing `done` marker.
pub fn done(nonce: &str) -> String {
    format!("printf '@@{nonce} done\\n'\n")
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
                framed.sections.push(Section { id: open_id, rc, body });
            }
            ["done"] => {
                if let Some((open_id, start, _)) = &open {
                    return Err(err(format!("section {open_id} (line {start}) never ended")));
                }
                framed.done = true;
            }
            _ => framed.notes.push(rest.to_string()),
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
