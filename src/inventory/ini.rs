//! Ansible's INI inventory shape, read as Ansible's `ini` plugin reads it, so an existing
//! `hosts` file works unchanged.
//!
//! ```ini
//! ci-master ansible_host=203.0.113.10
//!
//! [slave]
//! ci-slave ansible_host=203.0.113.11 private_address=10.0.1.11
//! db.example.com:5309
//!
//! [runners:children]
//! slave
//!
//! [all:vars]
//! ansible_user=root
//! ```
//!
//! Host lines are split as a POSIX shell would (quotes removed, `#` starts a comment); `host:port`
//! sets `ansible_port`. Each value is then read as a Python literal ([`super::pyliteral`]):
//! `5`, `True`, `'a'`, `[1, 2]` are typed, anything else (`true`, `0755`, `prod`) stays a string.
//! In `[group:vars]` the text after `=` is read the same way, without shell splitting.

use std::path::Path;

use super::pyliteral::literal_eval;
use super::{ALL, Inventory, UNGROUPED, expand_host_range};
use crate::error::InputError;
use crate::source::{SourceId, Span};
use crate::vars::VarMap;
use crate::vars::shlex::split;
pub use crate::vars::shlex::{split_args, split_words};
use crate::yaml::{Node, Value};

/// True when the file should be read as INI: an `.ini`/`.cfg` extension, no extension with a
/// `[section]` line, or content that is clearly not YAML.
pub fn looks_like_ini(path: &Path, text: &str) -> bool {
    match path.extension().and_then(|e| e.to_str()) {
        Some("yaml" | "yml" | "json") => false,
        Some("ini" | "cfg") => true,
        _ => text.lines().map(str::trim).any(|l| l.starts_with('[') && l.ends_with(']') && !l.contains(',')),
    }
}

enum Section {
    Hosts(String),
    Vars(String),
    Children(String),
}

/// Parses an INI inventory registered as `source`.
pub fn parse(path: &Path, source: SourceId, text: &str) -> Result<Inventory, InputError> {
    let mut inv = Inventory::new(path.to_path_buf());
    let mut section = Section::Hosts(UNGROUPED.to_string());
    let mut line_start = 0;
    // Groups given a `[g]` or `[g:children]` section; a group only named as a child or in a
    // `[g:vars]` header is undefined, as in Ansible (usually a typo).
    let mut declared: std::collections::HashSet<String> = [ALL.to_string(), UNGROUPED.to_string()].into();
    let mut referenced: Vec<(String, Span, String)> = Vec::new();
    for raw_line in text.split_inclusive('\n') {
        let start = line_start;
        line_start += raw_line.len();
        let full = raw_line.trim_end_matches(['\n', '\r']);
        let indent = full.len() - full.trim_start().len();
        let line = full.trim();
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        let at = |offset: usize, len: usize| Span::new(source, start + indent + offset, len);
        // `[2001:db8::1]:22` is a host line; only `[name]` / `[name:kind]` (maybe with a
        // comment after it) is a section, as Ansible's section pattern has it.
        if is_header(line) || (line.starts_with('[') && line.ends_with(']')) {
            section = header(&mut inv, line, &at)?;
            match &section {
                Section::Hosts(g) | Section::Children(g) => {
                    declared.insert(g.clone());
                }
                Section::Vars(g) => {
                    referenced.push((g.clone(), at(0, line.len()), format!("section [{g}:vars] is for undefined group `{g}`")))
                }
            }
            continue;
        }
        match &section {
            Section::Hosts(group) => host_line(&mut inv, group, line, &at)?,
            Section::Vars(group) => {
                let eq = line
                    .find('=')
                    .ok_or_else(|| InputError::at(at(0, line.len()), format!("`{line}` is not key=value"), "expected key=value"))?;
                let key = line[..eq].trim();
                let value = line[eq + 1..].trim();
                let value_off = line.len() - line[eq + 1..].trim_start().len();
                let node = typed(value, at(value_off, value.len()));
                let mut vars = std::mem::take(&mut inv.group_mut(group, None).vars);
                // A later line for the same key wins, as in Ansible.
                vars.insert(key.to_string(), node);
                inv.group_mut(group, None).vars = vars;
            }
            Section::Children(group) => {
                let child = line.split_once(" #").map_or(line, |(c, _)| c).trim();
                if child.contains(char::is_whitespace) || child.contains([':', ']']) {
                    return Err(InputError::at(at(0, line.len()), format!("`{line}` is not a group name"), "expected one group per line"));
                }
                if inv.hosts.contains_key(child) {
                    return Err(InputError::at(at(0, child.len()), format!("`{child}` is a host, not a group"), "listed as a child group"));
                }
                inv.group_mut(child, Some(at(0, child.len())));
                inv.add_child(group, child);
                referenced.push((
                    child.to_string(),
                    at(0, child.len()),
                    format!("section [{group}:children] includes undefined group `{child}`"),
                ));
            }
        }
    }
    if let Some((name, span, msg)) = referenced.into_iter().find(|(g, _, _)| !declared.contains(g)) {
        let mut e = InputError::at(span, msg, "no [group] or [group:children] section defines it");
        if let Some(s) = super::did_you_mean(&name, declared.iter().map(String::as_str)) {
            e = e.with_help(format!("did you mean `{s}`?"));
        } else {
            e = e.with_help(format!("add a `[{name}]` section (it may be empty)"));
        }
        return Err(e);
    }
    inv.finish()?;
    Ok(inv)
}

fn is_header(line: &str) -> bool {
    let Some(body) = line.strip_prefix('[') else { return false };
    let Some(close) = body.find(']') else { return false };
    let rest = body[close + 1..].trim_start();
    let (name, kind) = body[..close].split_once(':').unwrap_or((&body[..close], ""));
    (rest.is_empty() || rest.starts_with('#'))
        && !name.is_empty()
        && !name.contains(char::is_whitespace)
        && kind.chars().all(|c| c.is_alphanumeric() || c == '_')
}

fn header(inv: &mut Inventory, line: &str, at: &dyn Fn(usize, usize) -> Span) -> Result<Section, InputError> {
    // `[name]` or `[name:kind]`, optionally followed by a comment.
    let close = line.find(']').ok_or_else(|| InputError::at(at(0, line.len()), "section header is missing `]`", "unclosed section"))?;
    let rest = line[close + 1..].trim();
    if !rest.is_empty() && !rest.starts_with('#') {
        return Err(InputError::at(at(0, line.len()), "text after a section header", "unexpected text"));
    }
    let header = &line[1..close];
    let (name, kind) = header.split_once(':').unwrap_or((header, ""));
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(InputError::at(at(0, close + 1), "invalid section header", "expected [group], [group:vars] or [group:children]")
            .with_help("group names cannot be empty or contain spaces"));
    }
    let name = name.to_string();
    inv.group_mut(&name, Some(at(1, name.len())));
    Ok(match kind {
        "" | "hosts" => Section::Hosts(name),
        "vars" => Section::Vars(name),
        "children" => Section::Children(name),
        other => {
            return Err(InputError::at(at(0, line.len()), format!("unknown section kind `:{other}`"), "unknown kind")
                .with_help("sections are [group], [group:vars] or [group:children]"));
        }
    })
}

fn host_line(inv: &mut Inventory, group: &str, line: &str, at: &dyn Fn(usize, usize) -> Span) -> Result<(), InputError> {
    let words = split(line, true).map_err(|m| InputError::at(at(0, line.len()), m, "here"))?;
    let Some((_, _, pattern)) = words.first() else { return Ok(()) };
    let (pattern, port) = split_port(pattern);
    let mut vars = VarMap::new();
    if let Some(p) = port {
        vars.insert("ansible_port".into(), Node { value: Value::Int(p), span: at(0, line.len().min(pattern.len() + 6)), tag: None });
    }
    for (off, end, word) in &words[1..] {
        // Quotes were removed, so the word's span is its whole raw text.
        let span = at(*off, end - off);
        let (k, v) = word
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| InputError::at(span, format!("`{word}` is not key=value"), "expected key=value"))?;
        vars.insert(k.to_string(), typed(v, span));
    }
    let names = expand_host_range(pattern).map_err(|m| InputError::at(at(0, pattern.len()), m, "bad host range"))?;
    for name in names {
        inv.add_host(group, &name, at(0, pattern.len()), vars.clone());
    }
    Ok(())
}

/// `host:port`, `[v6addr]:port` or `web[01:03].lan:2222` → (host pattern, port). A name with
/// other colons (a bare IPv6 address) has no port.
pub fn split_port(pattern: &str) -> (&str, Option<i64>) {
    if let Some(inner) = pattern.strip_prefix('[')
        && let Some((addr, port)) = inner.split_once("]:")
        && addr.contains(':')
    {
        return (addr, port.parse().ok());
    }
    // The last colon outside brackets, with only digits after it and no other colon outside
    // brackets before it.
    let mut depth = 0i32;
    let mut colons = Vec::new();
    for (i, c) in pattern.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ':' if depth == 0 => colons.push(i),
            _ => {}
        }
    }
    if let [i] = colons[..] {
        let port = &pattern[i + 1..];
        if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
            return (&pattern[..i], port.parse().ok());
        }
    }
    (pattern, None)
}

/// An INI value as Ansible types it: a Python literal, else the text as written.
fn typed(v: &str, span: Span) -> Node {
    let value = literal_eval(v, span).unwrap_or_else(|| Value::Str(v.to_string()));
    Node { value, span, tag: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_split_off_host_patterns() {
        assert_eq!(split_port("db.example.com:5309"), ("db.example.com", Some(5309)));
        assert_eq!(split_port("www[01:03].example.com:2222"), ("www[01:03].example.com", Some(2222)));
        assert_eq!(split_port("www[01:03].example.com"), ("www[01:03].example.com", None));
        assert_eq!(split_port("[fe80::1]:22"), ("fe80::1", Some(22)));
        assert_eq!(split_port("fe80::1"), ("fe80::1", None));
    }

    #[test]
    fn words_split_like_shlex() {
        let w: Vec<String> = split_words(r#"h a="'abc'" b='x y' c=d#e f"#).unwrap().into_iter().map(|(_, w)| w).collect();
        assert_eq!(w, ["h", "a='abc'", "b=x y", "c=d"]);
        assert!(split_words("h a='x").is_err());
    }
}
