//! YAML read into a tree that remembers where every node came from.
//!
//! Inventories and vars are free-form YAML, so they cannot be deserialized straight into structs;
//! instead each file becomes a [`Node`] tree with a [`Span`] per node and its YAML tag, and the
//! loaders check shapes and types themselves, pointing at the exact node when something is wrong.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Spanned, Tagged};

use crate::error::InputError;
use crate::source::{self, SourceId, Span};

/// A YAML node with its position and tag.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// The node's value.
    pub value: Value,
    /// Where the node starts in its file.
    pub span: Span,
    /// An explicit tag such as `!secret`, if any.
    pub tag: Option<String>,
}

/// A YAML value; mappings keep their order and the position of each key.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `~`, `null` or nothing.
    Null,
    /// A boolean (YAML 1.1 spellings such as `yes` are accepted, as Ansible does).
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A string (numbers with leading zeros such as `0644` stay strings).
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping; keys are strings with their own spans.
    Map(Vec<(Key, Node)>),
}

/// A mapping key and where it is.
#[derive(Clone, Debug, PartialEq)]
pub struct Key {
    /// The key as a string (numeric keys are converted).
    pub name: String,
    /// Where the key is.
    pub span: Span,
}

impl Node {
    /// Human name of the node's type, for "expected X, found Y" messages.
    pub fn kind(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// An error saying this node should have been of another type.
    pub fn type_error(&self, what: &str, expected: &str) -> InputError {
        InputError::at(self.span, format!("{what} must be {expected}, found {}", self.kind()), format!("expected {expected}"))
    }

    /// The mapping entries, or a type error naming `what`.
    pub fn as_map(&self, what: &str) -> Result<&[(Key, Node)], InputError> {
        match &self.value {
            Value::Map(m) => Ok(m),
            _ => Err(self.type_error(what, "a mapping")),
        }
    }

    /// True for `~`/`null`/empty.
    pub fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }

    /// A scalar rendered as a string (for inventory connection fields written as numbers).
    pub fn scalar_string(&self) -> Option<String> {
        match &self.value {
            Value::Str(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(_) => Some(self.span.text()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// Converts to JSON, the form templates and output use.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(entries.iter().map(|(k, v)| (k.name.clone(), v.to_json())).collect()),
        }
    }
}

/// Parses `text` (already registered as `source`) into a node tree. An empty document is `Null`.
pub fn parse(source: SourceId, text: &str) -> Result<Node, InputError> {
    let options = serde_saphyr::options! {
        leading_zero_numbers_as_strings: true,
        with_snippet: false,
    };
    let raw: Option<RawNode> = serde_saphyr::from_str_with_options(text, options).map_err(|e| saphyr_error(source, text, &e))?;
    Ok(match raw {
        Some(raw) => convert(source, text, raw)?,
        None => Node { value: Value::Null, span: Span::new(source, 0, 0), tag: None },
    })
}

/// Reads and registers a YAML file, then parses it.
pub fn load_file(path: &std::path::Path) -> Result<Node, InputError> {
    let text = std::fs::read_to_string(path).map_err(|e| InputError::plain(format!("cannot read {}: {e}", source::display_path(path))))?;
    let id = source::register(path, text.clone());
    parse(id, &text)
}

fn saphyr_error(source: SourceId, text: &str, e: &serde_saphyr::Error) -> InputError {
    // serde-saphyr's own message carries "at line X column Y"; the snippet shows the place instead.
    let message = e.to_string();
    let message = message.split(" at line ").next().unwrap_or(&message).trim().to_string();
    let offset = e
        .location()
        .and_then(|l| l.span().byte_offset().map(|o| o as usize).or_else(|| line_col_offset(text, l.line(), l.column())))
        .unwrap_or(0);
    InputError::at(Span::new(source, offset.min(text.len()), 1), format!("invalid YAML: {message}"), "here")
}

fn line_col_offset(text: &str, line: u64, col: u64) -> Option<usize> {
    let start: usize = text.split_inclusive('\n').take(line.saturating_sub(1) as usize).map(str::len).sum();
    let line_text = text[start..].split('\n').next()?;
    Some(start + line_text.char_indices().nth(col.saturating_sub(1) as usize).map_or(line_text.len(), |(i, _)| i))
}

fn span_of(source: SourceId, text: &str, loc: &serde_saphyr::Location) -> Span {
    let offset = loc.span().byte_offset().map(|o| o as usize).or_else(|| line_col_offset(text, loc.line(), loc.column())).unwrap_or(0);
    let len = loc.span().byte_len().map_or(0, |l| l as usize);
    Span::new(source, offset, len)
}

fn convert(source: SourceId, text: &str, raw: RawNode) -> Result<Node, InputError> {
    let span = span_of(source, text, &raw.referenced);
    let Tagged(raw_value, tag) = raw.value;
    // A plain scalar is typed again from its source text with YAML 1.1 rules (see
    // [`resolve_plain`]); quoted, block and tagged scalars keep what the parser made of them.
    let plain = || {
        if tag.is_some() {
            return None;
        }
        let t = text.get(span.offset..span.offset + span.len)?;
        let single_line = !t.contains('\n');
        (single_line && !t.starts_with(['\'', '"', '|', '>', '&', '*', '!']) && t == t.trim()).then(|| resolve_plain(t))
    };
    let value = match raw_value {
        Raw::Null => Value::Null,
        Raw::Bool(b) => plain().unwrap_or(Value::Bool(b)),
        Raw::Int(i) => plain().unwrap_or(Value::Int(i)),
        Raw::Float(f) => plain().unwrap_or(Value::Float(f)),
        Raw::Str(s) => match plain() {
            Some(v @ (Value::Int(_) | Value::Float(_) | Value::Bool(_))) => v,
            _ => Value::Str(s),
        },
        Raw::Seq(items) => Value::Seq(items.into_iter().map(|i| convert(source, text, i)).collect::<Result<_, _>>()?),
        Raw::Map(entries) => {
            let mut out: Vec<(Key, Node)> = Vec::with_capacity(entries.len());
            for (k, v) in entries {
                let key_node = convert(source, text, k)?;
                let name = match key_node.scalar_string() {
                    Some(name) => name,
                    None => return Err(key_node.type_error("a mapping key", "a string")),
                };
                out.push((Key { name, span: key_node.span }, convert(source, text, v)?));
            }
            Value::Map(out)
        }
    };
    // Only application tags matter here; core-schema tags like !!str were applied by the parser.
    let tag = tag.filter(|t| t.starts_with('!') && !t.starts_with("!!"));
    Ok(Node { value, span, tag })
}

/// Types a plain (unquoted, untagged) scalar as Ansible's YAML loader does: PyYAML's YAML 1.1
/// resolver. Differs from YAML 1.2: `0755` is octal (493), `0b101` binary, `1_000` is 1000,
/// `12:30:00` is base 60 (45000), `yes`/`on`/`off` are booleans but `y`/`n` are strings, and
/// `1e3` (no dot) or `0o755` are strings.
pub fn resolve_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => return Value::Bool(true),
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => return Value::Bool(false),
        _ => {}
    }
    yaml11_int(text).map(Value::Int).or_else(|| yaml11_float(text).map(Value::Float)).unwrap_or_else(|| Value::Str(text.to_string()))
}

fn split_sign(t: &str) -> (i64, &str) {
    match t.as_bytes().first() {
        Some(b'-') => (-1, &t[1..]),
        Some(b'+') => (1, &t[1..]),
        _ => (1, t),
    }
}

fn digits_in(s: &str, ok: impl Fn(u8) -> bool) -> bool {
    !s.is_empty() && s.bytes().all(|b| b == b'_' || ok(b))
}

fn yaml11_int(t: &str) -> Option<i64> {
    let (sign, rest) = split_sign(t);
    let clean = |s: &str| s.replace('_', "");
    let v = if let Some(b) = rest.strip_prefix("0b") {
        digits_in(b, |c| c == b'0' || c == b'1').then(|| i64::from_str_radix(&clean(b), 2).ok())??
    } else if let Some(h) = rest.strip_prefix("0x") {
        digits_in(h, |c| c.is_ascii_hexdigit()).then(|| i64::from_str_radix(&clean(h), 16).ok())??
    } else if rest == "0" {
        0
    } else if let Some(o) = rest.strip_prefix('0') {
        digits_in(o, |c| (b'0'..=b'7').contains(&c)).then(|| i64::from_str_radix(&clean(o), 8).ok())??
    } else if rest.contains(':') {
        // Base 60: the first part is [1-9][0-9_]*, the others [0-5]?[0-9].
        let mut parts = rest.split(':');
        let first = parts.next()?;
        if !(first.as_bytes().first().is_some_and(|c| (b'1'..=b'9').contains(c)) && digits_in(first, |c| c.is_ascii_digit())) {
            return None;
        }
        let mut v: i64 = clean(first).parse().ok()?;
        for p in parts {
            if p.is_empty() || p.len() > 2 || !p.bytes().all(|c| c.is_ascii_digit()) || (p.len() == 2 && p.as_bytes()[0] > b'5') {
                return None;
            }
            v = v.checked_mul(60)?.checked_add(p.parse::<i64>().ok()?)?;
        }
        v
    } else if rest.as_bytes().first().is_some_and(|c| (b'1'..=b'9').contains(c)) && digits_in(rest, |c| c.is_ascii_digit()) {
        clean(rest).parse().ok()?
    } else {
        return None;
    };
    v.checked_mul(sign)
}

fn yaml11_float(t: &str) -> Option<f64> {
    match t {
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return Some(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Some(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Some(f64::NAN),
        _ => {}
    }
    let (sign, rest) = split_sign(t);
    let sign = sign as f64;
    // [0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]* : base 60 with a fraction.
    if rest.contains(':') {
        let (whole, frac) = rest.split_once('.')?;
        let mut parts = whole.split(':');
        let first = parts.next()?;
        if !digits_in(first, |c| c.is_ascii_digit())
            || !first.as_bytes()[0].is_ascii_digit()
            || !digits_in(frac, |c| c.is_ascii_digit()) && !frac.is_empty()
        {
            return None;
        }
        let mut v: f64 = first.replace('_', "").parse().ok()?;
        for p in parts {
            if p.is_empty() || p.len() > 2 || !p.bytes().all(|c| c.is_ascii_digit()) || (p.len() == 2 && p.as_bytes()[0] > b'5') {
                return None;
            }
            v = v * 60.0 + p.parse::<f64>().ok()?;
        }
        let f: f64 = format!("0.{}", frac.replace('_', "")).parse().unwrap_or(0.0);
        return Some(sign * (v + f));
    }
    // ([0-9][0-9_]*)?\.[0-9_]*([eE][-+][0-9]+)? — a dot is required; a leading-dot form needs a
    // digit after the dot and no sign.
    let (mantissa, exp) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let (int, frac) = mantissa.split_once('.')?;
    if int.is_empty() {
        if t.starts_with(['-', '+']) || !frac.as_bytes().first().is_some_and(u8::is_ascii_digit) {
            return None;
        }
    } else if !int.as_bytes()[0].is_ascii_digit() || !digits_in(int, |c| c.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|c| c == b'_' || c.is_ascii_digit()) {
        return None;
    }
    if let Some(e) = exp {
        let digits = e.strip_prefix(['-', '+'])?;
        if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
    }
    let text = format!("{int}.{frac}").replace('_', "");
    let text = if text.ends_with('.') { format!("{text}0") } else { text };
    let text = if text.starts_with('.') { format!("0{text}") } else { text };
    let v: f64 = match exp {
        Some(e) => format!("{text}e{e}").parse().ok()?,
        None => text.parse().ok()?,
    };
    Some(sign * v)
}

/// A raw node with the position and tag serde-saphyr captured for it.
type RawNode = Spanned<Tagged<Raw>>;

/// The untyped shape serde-saphyr hands us before spans are converted.
enum Raw {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<RawNode>),
    Map(Vec<(RawNode, RawNode)>),
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_none<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        Raw::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Raw, E> {
        Ok(Raw::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Raw, E> {
        i64::try_from(v).map(Raw::Int).map_err(|_| E::custom("integer too large"))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Raw, E> {
        i64::try_from(v).map(Raw::Int).map_err(|_| E::custom("integer too large"))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Raw, E> {
        i64::try_from(v).map(Raw::Int).map_err(|_| E::custom("integer too large"))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Raw, E> {
        Ok(Raw::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Raw, E> {
        Ok(Raw::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Raw::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Raw::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Node, InputError> {
        let id = source::register_named("test.yaml".into(), text.into());
        parse(id, text)
    }

    #[test]
    fn spans_point_at_values_and_keys() {
        let n = parse_str("a:\n  b: 12\n  c: !secret hunter2\n").unwrap();
        let Value::Map(top) = &n.value else { panic!() };
        let Value::Map(inner) = &top[0].1.value else { panic!() };
        assert_eq!(inner[0].0.name, "b");
        assert_eq!(inner[0].0.span.line_col(), (2, 3));
        assert_eq!(inner[0].1.value, Value::Int(12));
        assert_eq!(inner[0].1.span.line_col(), (2, 6));
        assert_eq!(inner[1].1.tag.as_deref(), Some("!secret"));
        assert_eq!(inner[1].1.value, Value::Str("hunter2".into()));
    }

    #[test]
    fn scalars_typed_as_ansible_yaml_loader_types_them() {
        let n = parse_str("mode: 0644\nbecome: yes\ny: y\nn: n\no: 0o755\ne: 1e3\nf: 1.0e+3\ns: 12:30:00\nu: 1_000\nx: 0x1F\nq: '0644'\nt: !!str 12\nd: 2024-01-02\n").unwrap();
        let j = n.to_json();
        assert_eq!(j["mode"], 420, "a leading zero is octal in YAML 1.1");
        assert_eq!(j["become"], true);
        assert_eq!(j["y"], "y", "y/n are strings for PyYAML");
        assert_eq!(j["n"], "n");
        assert_eq!(j["o"], "0o755", "0o is YAML 1.2 only");
        assert_eq!(j["e"], "1e3", "a float needs a dot in YAML 1.1");
        assert_eq!(j["f"], 1000.0);
        assert_eq!(j["s"], 45000, "sexagesimal");
        assert_eq!(j["u"], 1000);
        assert_eq!(j["x"], 31);
        assert_eq!(j["q"], "0644", "quoted stays a string");
        assert_eq!(j["t"], "12", "an explicit tag wins");
        assert_eq!(j["d"], "2024-01-02");
    }

    #[test]
    fn syntax_error_has_position() {
        let e = parse_str("a:\n  b: 1\n c: 2\n").unwrap_err();
        let (line, _) = e.span().unwrap().line_col();
        assert_eq!(line, 3, "{e:?}");
    }

    #[test]
    fn duplicate_keys_are_errors() {
        assert!(parse_str("a: 1\na: 2\n").is_err());
    }
}
