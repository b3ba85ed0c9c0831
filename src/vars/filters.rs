//! Ansible's filters as Ansible renders them: JSON as Python's `json.dumps` writes it, and the
//! dictionary, regex, hash and ternary filters users reach for in vars.

use minijinja::value::{Kwargs, Value};
use minijinja::{Environment, Error, ErrorKind};
use serde_json::Value as Json;

/// Adds the filters to `env`.
pub fn register(env: &mut Environment<'static>) {
    env.add_filter("to_json", |v: Value| Ok::<_, Error>(py_json(&json(&v)?, None, false)));
    env.add_filter("to_nice_json", |v: Value, kw: Kwargs| -> Result<String, Error> {
        let indent: Option<usize> = kw.get("indent")?;
        kw.assert_all_used()?;
        Ok(py_json(&json(&v)?, Some(indent.unwrap_or(4)), true))
    });
    env.add_filter("to_yaml", |v: Value| Ok::<_, Error>(py_yaml(&json(&v)?, false)));
    env.add_filter("to_nice_yaml", |v: Value| Ok::<_, Error>(py_yaml(&json(&v)?, true)));
    env.add_filter("combine", combine);
    env.add_filter("dict2items", dict2items);
    env.add_filter("items2dict", items2dict);
    env.add_filter("ternary", |v: Value, yes: Value, no: Value, none: Option<Value>| match none {
        Some(n) if v.is_none() => n,
        _ => {
            if v.is_true() {
                yes
            } else {
                no
            }
        }
    });
    env.add_filter("regex_replace", regex_replace);
    env.add_filter("hash", hash);
}

fn bad(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

fn json(v: &Value) -> Result<Json, Error> {
    serde_json::to_value(v).map_err(|e| Error::new(ErrorKind::BadSerialization, e.to_string()))
}

/// Python's `json.dumps(v, ensure_ascii=True)`, compact (`", "`/`": "`) or indented.
pub fn py_json(v: &Json, indent: Option<usize>, sort_keys: bool) -> String {
    let mut out = String::new();
    write_json(&mut out, v, indent, sort_keys, 0);
    out
}

fn write_json(out: &mut String, v: &Json, indent: Option<usize>, sort: bool, depth: usize) {
    let nl = |out: &mut String, d: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * d));
        }
    };
    let sep = if indent.is_some() { "," } else { ", " };
    match v {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e16 => out.push_str(&format!("{f:.1}")),
            _ => out.push_str(&n.to_string()),
        },
        Json::String(s) => write_str(out, s),
        Json::Array(a) if a.is_empty() => out.push_str("[]"),
        Json::Array(a) => {
            out.push('[');
            for (i, item) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                nl(out, depth + 1);
                write_json(out, item, indent, sort, depth + 1);
            }
            nl(out, depth);
            out.push(']');
        }
        Json::Object(o) if o.is_empty() => out.push_str("{}"),
        Json::Object(o) => {
            let mut entries: Vec<(&String, &Json)> = o.iter().collect();
            if sort {
                entries.sort_by(|a, b| a.0.cmp(b.0));
            }
            out.push('{');
            for (i, (k, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                nl(out, depth + 1);
                write_str(out, k);
                out.push_str(": ");
                write_json(out, item, indent, sort, depth + 1);
            }
            nl(out, depth);
            out.push('}');
        }
    }
}

fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for u in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn combine(base: Value, rest: minijinja::value::Rest<Value>, kw: Kwargs) -> Result<Value, Error> {
    let recursive: Option<bool> = kw.get("recursive")?;
    let _: Option<String> = kw.get("list_merge")?;
    kw.assert_all_used()?;
    let mut acc = json(&base)?;
    for other in rest.iter() {
        merge_json(&mut acc, json(other)?, recursive.unwrap_or(false));
    }
    Ok(Value::from(minijinja::value::Serde(&acc)))
}

fn merge_json(a: &mut Json, b: Json, recursive: bool) {
    match (a, b) {
        (Json::Object(a), Json::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(&k) {
                    Some(old) if recursive && old.is_object() && v.is_object() => merge_json(old, v, true),
                    _ => {
                        a.insert(k, v);
                    }
                }
            }
        }
        (a, b) => *a = b,
    }
}

fn names(kw: &Kwargs) -> Result<(String, String), Error> {
    let k: Option<String> = kw.get("key_name")?;
    let v: Option<String> = kw.get("value_name")?;
    kw.assert_all_used()?;
    Ok((k.unwrap_or_else(|| "key".into()), v.unwrap_or_else(|| "value".into())))
}

fn dict2items(v: Value, kw: Kwargs) -> Result<Value, Error> {
    let (kn, vn) = names(&kw)?;
    let Json::Object(o) = json(&v)? else { return Err(bad("dict2items requires a dictionary")) };
    let items: Vec<Json> = o.into_iter().map(|(k, v)| serde_json::json!({ kn.clone(): k, vn.clone(): v })).collect();
    Ok(Value::from(minijinja::value::Serde(&items)))
}

fn items2dict(v: Value, kw: Kwargs) -> Result<Value, Error> {
    let (kn, vn) = names(&kw)?;
    let Json::Array(a) = json(&v)? else { return Err(bad("items2dict requires a list")) };
    let mut out = serde_json::Map::new();
    for item in a {
        let key = item.get(&kn).ok_or_else(|| bad(format!("items2dict: an item has no `{kn}`")))?;
        let key = key.as_str().map_or_else(|| key.to_string(), str::to_string);
        out.insert(key, item.get(&vn).cloned().unwrap_or(Json::Null));
    }
    Ok(Value::from(minijinja::value::Serde(&out)))
}

fn regex_replace(s: String, pattern: String, replacement: Option<String>, kw: Kwargs) -> Result<String, Error> {
    let ignorecase: Option<bool> = kw.get("ignorecase")?;
    let multiline: Option<bool> = kw.get("multiline")?;
    kw.assert_all_used()?;
    let re = regex_lite::RegexBuilder::new(&pattern)
        .case_insensitive(ignorecase.unwrap_or(false))
        .multi_line(multiline.unwrap_or(false))
        .build()
        .map_err(|e| bad(format!("regex_replace: {e}")))?;
    // Python writes groups as \1 or \g<name>; the regex crate as ${1} / ${name}.
    let repl = replacement.unwrap_or_default().replace('$', "$$");
    let mut r = String::new();
    let mut chars = repl.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.peek().copied() {
                Some(d) if d.is_ascii_digit() => {
                    chars.next();
                    r.push_str(&format!("${{{d}}}"));
                    continue;
                }
                Some('g') => {
                    chars.next();
                    let name: String = chars.by_ref().skip(1).take_while(|c| *c != '>').collect();
                    r.push_str(&format!("${{{name}}}"));
                    continue;
                }
                Some('\\') => {
                    chars.next();
                }
                _ => {}
            }
        }
        r.push(c);
    }
    Ok(re.replace_all(&s, r.as_str()).into_owned())
}

fn hash(v: Value, algo: Option<String>) -> Result<String, Error> {
    use sha2::Digest;
    let s = v.as_str().map_or_else(|| v.to_string(), str::to_string);
    let b = s.as_bytes();
    Ok(match algo.as_deref().unwrap_or("sha1") {
        "sha1" => hex::encode(sha1::Sha1::digest(b)),
        "md5" => hex::encode(md5::Md5::digest(b)),
        "sha224" => hex::encode(sha2::Sha224::digest(b)),
        "sha256" => hex::encode(sha2::Sha256::digest(b)),
        "sha384" => hex::encode(sha2::Sha384::digest(b)),
        "sha512" => hex::encode(sha2::Sha512::digest(b)),
        other => return Err(bad(format!("hash: unsupported algorithm `{other}`"))),
    })
}

/// `yaml.dump` as Ansible's `to_yaml` (flow style for collections of scalars) and
/// `to_nice_yaml` (block style, 4-space indent) call it: sorted keys, Unicode kept. Long lines
/// are not folded at 80 columns as PyYAML does.
pub fn py_yaml(v: &Json, nice: bool) -> String {
    let mut out = String::new();
    let indent = if nice { 4 } else { 2 };
    if is_scalar(v) || (!nice && is_flat(v)) {
        out.push_str(&flow(v));
        out.push('\n');
        if is_scalar(v) {
            out.push_str("...\n");
        }
        return out;
    }
    block(&mut out, v, 0, indent, nice);
    out
}

fn is_scalar(v: &Json) -> bool {
    !matches!(v, Json::Array(_) | Json::Object(_))
}

fn is_flat(v: &Json) -> bool {
    match v {
        Json::Array(a) => a.iter().all(is_scalar),
        Json::Object(o) => o.values().all(is_scalar),
        _ => true,
    }
}

fn sorted(o: &serde_json::Map<String, Json>) -> Vec<(&String, &Json)> {
    let mut e: Vec<_> = o.iter().collect();
    e.sort_by(|a, b| a.0.cmp(b.0));
    e
}

fn flow(v: &Json) -> String {
    match v {
        Json::Array(a) if a.is_empty() => "[]".into(),
        Json::Object(o) if o.is_empty() => "{}".into(),
        Json::Array(a) => format!("[{}]", a.iter().map(flow).collect::<Vec<_>>().join(", ")),
        Json::Object(o) => {
            format!("{{{}}}", sorted(o).iter().map(|(k, v)| format!("{}: {}", scalar_str(k, true), flow(v))).collect::<Vec<_>>().join(", "))
        }
        Json::String(s) => scalar_str(s, true),
        Json::Null => "null".into(),
        Json::Bool(b) => b.to_string(),
        Json::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e16 => format!("{f:.1}"),
            _ => n.to_string(),
        },
    }
}

/// A string as PyYAML writes it: plain when that reads back as the same string, else quoted.
fn scalar_str(s: &str, in_flow: bool) -> String {
    let reads_back = matches!(crate::yaml::resolve_plain(s), crate::yaml::Value::Str(_));
    let special_start =
        s.starts_with(['-', '?', ':', ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '\'', '"', '%', '@', '`', ' ']);
    let bad_inside =
        s.contains(": ") || s.contains(" #") || s.ends_with(':') || s.ends_with(' ') || (in_flow && s.contains([',', '[', ']', '{', '}']));
    if !s.is_empty() && reads_back && !special_start && !bad_inside && !s.chars().any(|c| c.is_control()) {
        return s.to_string();
    }
    if s.chars().any(|c| c.is_control()) {
        return serde_json::to_string(s).unwrap_or_default();
    }
    format!("'{}'", s.replace('\'', "''"))
}

fn block(out: &mut String, v: &Json, depth: usize, indent: usize, nice: bool) {
    let pad = " ".repeat(depth);
    match v {
        Json::Object(o) => {
            for (k, item) in sorted(o) {
                out.push_str(&format!("{pad}{}:", scalar_str(k, false)));
                match item {
                    Json::Array(a) if !a.is_empty() && (nice || !is_flat(item)) => {
                        out.push('\n');
                        // PyYAML does not indent a list under a mapping key.
                        block(out, item, depth, indent, nice);
                    }
                    Json::Object(m) if !m.is_empty() && (nice || !is_flat(item)) => {
                        out.push('\n');
                        block(out, item, depth + indent, indent, nice);
                    }
                    _ => out.push_str(&format!(" {}\n", flow(item))),
                }
            }
        }
        Json::Array(a) => {
            for item in a {
                match item {
                    Json::Array(x) if !x.is_empty() && (nice || !is_flat(item)) => {
                        out.push_str(&format!("{pad}-"));
                        let mut inner = String::new();
                        block(&mut inner, item, depth + 2, indent, nice);
                        out.push_str(&format!(" {}", inner.trim_start()));
                    }
                    Json::Object(m) if !m.is_empty() && (nice || !is_flat(item)) => {
                        let mut inner = String::new();
                        block(&mut inner, item, depth + indent, indent, nice);
                        out.push_str(&format!("{pad}-{}", &inner[depth + 1..]));
                    }
                    _ => out.push_str(&format!("{pad}- {}\n", flow(item))),
                }
            }
        }
        _ => out.push_str(&format!("{pad}{}\n", flow(v))),
    }
}

#[cfg(test)]
mod tests {
    use super::{py_json, py_yaml};
    use serde_json::json;

    #[test]
    fn json_is_written_as_python_writes_it() {
        let v = json!({"z": 1, "b": "é", "c": [1, 2]});
        assert_eq!(py_json(&v, None, false), r#"{"z": 1, "b": "\u00e9", "c": [1, 2]}"#);
        assert_eq!(py_json(&v, Some(4), true), "{\n    \"b\": \"\\u00e9\",\n    \"c\": [\n        1,\n        2\n    ],\n    \"z\": 1\n}");
        assert_eq!(py_json(&json!(1.0), None, false), "1.0");
    }

    #[test]
    fn yaml_is_written_as_pyyaml_writes_it() {
        let v = json!({"z": 1, "b": "x y", "c": [1, 2], "d": {"e": true}, "q": "yes"});
        assert_eq!(py_yaml(&v, false), "b: x y\nc: [1, 2]\nd: {e: true}\nq: 'yes'\nz: 1\n");
        assert_eq!(py_yaml(&v, true), "b: x y\nc:\n- 1\n- 2\nd:\n    e: true\nq: 'yes'\nz: 1\n");
    }
}
