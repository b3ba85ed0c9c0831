//! Ansible's INI inventory shape, so an existing `hosts` file works unchanged.
//!
//! ```ini
//! ci-master ansible_host=203.0.113.10
//!
//! [slave]
//! ci-slave ansible_host=203.0.113.11 private_address=10.0.1.11
//!
//! [runners:children]
//! slave
//!
//! [all:vars]
//! ansible_user=root
//! ```
//!
//! Values: integers, floats and `true`/`false` (any case, as Python's `True`) become numbers and
//! booleans; anything else is a string; quote a value to keep it a string.

use std::path::Path;

use super::{Inventory, UNGROUPED, expand_host_range};
use crate::error::InputError;
use crate::source::{SourceId, Span};
use crate::vars::{VarMap, canonical_name};
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
    for raw_line in text.split_inclusive('\n') {
        let start = line_start;
        line_start += raw_line.len();
        let line = strip_comment(raw_line.trim_end_matches(['\n', '\r']));
        let indent = line.len() - line.trim_start().len();
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let at = |offset: usize, len: usize| Span::new(source, start + indent + offset, len);
        if let Some(header) = line.strip_prefix('[') {
            let Some(header) = header.strip_suffix(']') else {
                return Err(InputError::at(at(0, line.len()), "section header is missing `]`", "unclosed section"));
            };
            let (name, kind) = header.split_once(':').unwrap_or((header, ""));
            let name = name.trim().to_string();
            if name.is_empty() {
                return Err(InputError::at(at(0, line.len()), "section has no group name", "empty name"));
            }
            inv.group_mut(&name, Some(at(1, name.len())));
            section = match kind {
                "" => Section::Hosts(name),
                "vars" => Section::Vars(name),
                "children" => Section::Children(name),
                other => {
                    return Err(InputError::at(at(0, line.len()), format!("unknown section kind `:{other}`"), "unknown kind")
                        .with_help("sections are [group], [group:vars] or [group:children]"));
                }
            };
            continue;
        }
        match &section {
            Section::Hosts(group) => {
                let words = split_words(line).map_err(|m| InputError::at(at(0, line.len()), m, "here"))?;
                let (_, host) = &words[0];
                let mut vars = VarMap::new();
                for (off, word) in &words[1..] {
                    let (k, v) = key_value(word)
                        .ok_or_else(|| InputError::at(at(*off, word.len()), format!("`{word}` is not key=value"), "expected key=value"))?;
                    insert_var(&mut vars, k, literal(v, at(*off + k.len() + 1, v.len())), at(*off, k.len()))?;
                }
                let names = expand_host_range(host).map_err(|m| InputError::at(at(0, host.len()), m, "bad host range"))?;
                for name in names {
                    inv.add_host(group, &name, at(0, host.len()), vars.clone());
                }
            }
            Section::Vars(group) => {
                let eq = line
                    .find('=')
                    .ok_or_else(|| InputError::at(at(0, line.len()), format!("`{line}` is not key=value"), "expected key=value"))?;
                let key = line[..eq].trim();
                let value_raw = &line[eq + 1..];
                let value = value_raw.trim();
                let value_off = eq + 1 + (value_raw.len() - value_raw.trim_start().len());
                let value = unquote(value);
                let node = literal_or_quoted(line[value_off..].trim(), &value, at(value_off, line.len() - value_off));
                let mut vars = std::mem::take(&mut inv.group_mut(group, None).vars);
                let res = insert_var(&mut vars, key, node, at(0, key.len()));
                inv.group_mut(group, None).vars = vars;
                res?;
            }
            Section::Children(group) => {
                if inv.hosts.contains_key(line) {
                    return Err(InputError::at(at(0, line.len()), format!("`{line}` is a host, not a group"), "listed as a child group"));
                }
                inv.group_mut(line, Some(at(0, line.len())));
                inv.add_child(group, line);
            }
        }
    }
    inv.finish()?;
    Ok(inv)
}

fn insert_var(vars: &mut VarMap, key: &str, value: Node, key_span: Span) -> Result<(), InputError> {
    let canon = canonical_name(key);
    if vars.contains_key(canon) {
        return Err(InputError::at(key_span, format!("`{canon}` is set twice"), "set again here"));
    }
    vars.insert(canon.to_string(), value);
    Ok(())
}

fn key_value(word: &str) -> Option<(&str, &str)> {
    let (k, v) = word.split_once('=')?;
    (!k.is_empty()).then_some((k, v))
}

fn literal_or_quoted(raw: &str, unquoted: &str, span: Span) -> Node {
    if raw.starts_with(['"', '\'']) { Node { value: Value::Str(unquoted.to_string()), span, tag: None } } else { literal(unquoted, span) }
}

/// Interprets an INI value: integers (without leading zeros), floats and `true`/`false` become
/// typed values, anything else a string. On host lines the word splitter has already removed
/// quotes, so there `port="22"` is a number too; `[group:vars]` lines keep quoted values strings.
fn literal(v: &str, span: Span) -> Node {
    let value = if let Ok(i) = v.parse::<i64>() {
        if v.len() > 1 && v.starts_with('0') { Value::Str(v.to_string()) } else { Value::Int(i) }
    } else if v.eq_ignore_ascii_case("true") {
        Value::Bool(true)
    } else if v.eq_ignore_ascii_case("false") {
        Value::Bool(false)
    } else if let (Ok(f), true) = (v.parse::<f64>(), v.contains('.')) {
        Value::Float(f)
    } else {
        Value::Str(v.to_string())
    };
    Node { value, span, tag: None }
}

fn unquote(v: &str) -> String {
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return v[1..v.len() - 1].to_string();
        }
    }
    v.to_string()
}

/// Drops a `#` or `;` comment that starts a line or follows whitespace, outside quotes.
fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    let mut prev_space = true;
    for (i, c) in line.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if (c == '#' || c == ';') && prev_space => return &line[..i],
            None => {}
        }
        prev_space = c.is_whitespace();
    }
    line
}

/// Splits on whitespace outside quotes, removing the quotes; returns each word with its byte
/// offset in `line`. Used for INI host lines and `-e` pairs.
pub fn split_words(line: &str) -> Result<Vec<(usize, String)>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut start = None;
    let mut quote = None;
    for (i, c) in line.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.push(c),
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                start.get_or_insert(i);
            }
            None if c.is_whitespace() => {
                if let Some(s) = start.take() {
                    words.push((s, std::mem::take(&mut cur)));
                }
            }
            None => {
                start.get_or_insert(i);
                cur.push(c);
            }
        }
    }
    if quote.is_some() {
        return Err("unterminated quote".into());
    }
    if let Some(s) = start {
        words.push((s, cur));
    }
    Ok(words)
}
