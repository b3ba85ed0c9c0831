//! Ansible's filters as Ansible renders them: JSON as Python's `json.dumps` writes it, and the
//! dictionary, regex, hash, password_hash and ternary filters users reach for in vars.

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
    env.add_filter("password_hash", password_hash);
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

/// The crypt alphabet: SHA-crypt salts and hashes are written in it.
const CRYPT64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Ansible's `password_hash(hashtype='sha512', salt=None, salt_size=None, rounds=None,
/// ident=None)` for the SHA-crypt types, as Ansible computes it through passlib: without
/// `rounds` it uses its own defaults (656000 for sha512, 535000 for sha256), and the output
/// names the rounds (`$6$rounds=656000$salt$...`) except for crypt's implicit 5000
/// (`$6$salt$...`); the salt is at most 16 characters of the crypt alphabet; without a salt a
/// random one is drawn (16 characters of the same alphabet, or `salt_size`). md5 and blowfish
/// (bcrypt), which Ansible also has, are refused.
fn password_hash(v: Value, args: minijinja::value::Rest<Value>, kw: Kwargs) -> Result<String, Error> {
    const NAMES: [&str; 5] = ["hashtype", "salt", "salt_size", "rounds", "ident"];
    if args.len() > NAMES.len() {
        return Err(bad("password_hash takes at most 5 arguments (hashtype, salt, salt_size, rounds, ident)"));
    }
    let mut given: [Option<Value>; 5] = Default::default();
    for (slot, a) in given.iter_mut().zip(args.iter()) {
        *slot = Some(a.clone());
    }
    for (i, name) in NAMES.iter().enumerate() {
        if let Some(k) = kw.get::<Option<Value>>(name)? {
            if given[i].is_some() {
                return Err(bad(format!("password_hash: `{name}` is given twice")));
            }
            given[i] = Some(k);
        }
    }
    kw.assert_all_used()?;
    // Python's truthiness: Ansible passes on only the arguments that are set and not empty/zero.
    let [hashtype, salt, salt_size, rounds, _ident] = given.map(|a| a.filter(|a| a.is_true()));
    let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_string);
    let int = |v: &Value, name: &str| -> Result<i64, Error> {
        i64::try_from(v.clone())
            .ok()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            .ok_or_else(|| bad(format!("password_hash: `{name}` must be an integer, not {v}")))
    };
    let Some(password) = v.as_str() else {
        return Err(bad(format!("password_hash: the password must be a string, not {}", v.kind())));
    };
    let hashtype = hashtype.map_or_else(|| "sha512".to_string(), |h| text(&h));
    let (id, default_rounds) = match hashtype.as_str() {
        "sha512" | "sha512_crypt" => ("6", 656_000),
        "sha256" | "sha256_crypt" => ("5", 535_000),
        "md5" | "md5_crypt" | "blowfish" | "bcrypt" => {
            return Err(bad(format!("password_hash: hash type `{hashtype}` is not supported by provision (use sha512 or sha256)")));
        }
        other => {
            return Err(bad(format!("password_hash: unknown hash type `{other}` (supported: sha512, sha256)")));
        }
    };
    let salt = match salt {
        Some(s) => {
            let s = text(&s);
            if s.len() > 16 {
                return Err(bad(format!("password_hash: salt too large ({} characters, at most 16)", s.len())));
            }
            if !s.bytes().all(|b| CRYPT64.contains(&b)) {
                return Err(bad(format!("password_hash: invalid characters in salt `{s}` (allowed: a-z A-Z 0-9 . /)")));
            }
            s
        }
        None => {
            let size = match salt_size {
                Some(n) => usize::try_from(int(&n, "salt_size")?)
                    .ok()
                    .filter(|n| *n <= 16)
                    .ok_or_else(|| bad(format!("password_hash: salt_size must be between 0 and 16, not {n}")))?,
                None => 16,
            };
            // 256 is a multiple of 64: every character is equally likely.
            rand::random::<[u8; 16]>()[..size].iter().map(|b| CRYPT64[usize::from(b % 64)] as char).collect()
        }
    };
    let rounds = match rounds {
        Some(r) => int(&r, "rounds")?,
        None => default_rounds,
    };
    let params = u32::try_from(rounds)
        .ok()
        .and_then(|r| sha_crypt::Params::new(r).ok())
        .ok_or_else(|| bad(format!("password_hash: rounds must be between 1000 and 999999999, not {rounds}")))?;
    let (pw, sa) = (password.as_bytes(), salt.as_bytes());
    let encoded = if id == "6" {
        const ORDER: [usize; 64] = [
            42, 21, 0, 1, 43, 22, 23, 2, 44, 45, 24, 3, 4, 46, 25, 26, 5, 47, 48, 27, 6, 7, 49, 28, 29, 8, 50, 51, 30, 9, 10, 52, 31, 32,
            11, 53, 54, 33, 12, 13, 55, 34, 35, 14, 56, 57, 36, 15, 16, 58, 37, 38, 17, 59, 60, 39, 18, 19, 61, 40, 41, 20, 62, 63,
        ];
        crypt64(&sha_crypt::sha512_crypt(pw, sa, params), &ORDER)
    } else {
        const ORDER: [usize; 32] =
            [20, 10, 0, 11, 1, 21, 2, 22, 12, 23, 13, 3, 14, 4, 24, 5, 25, 15, 26, 16, 6, 17, 7, 27, 8, 28, 18, 29, 19, 9, 30, 31];
        crypt64(&sha_crypt::sha256_crypt(pw, sa, params), &ORDER)
    };
    let rounds = if rounds == 5000 { String::new() } else { format!("rounds={rounds}$") };
    Ok(format!("${id}${rounds}{salt}${encoded}"))
}

/// SHA-crypt's encoding of a digest: its bytes taken in `order`, three at a time, each group
/// written as 6-bit crypt characters from the low bits up.
fn crypt64(digest: &[u8], order: &[usize]) -> String {
    let mut out = String::new();
    for chunk in order.chunks(3) {
        let w = chunk.iter().enumerate().fold(0u32, |w, (i, &at)| w | u32::from(digest[at]) << (8 * i));
        for k in 0..=chunk.len() {
            out.push(CRYPT64[(w >> (6 * k)) as usize & 63] as char);
        }
    }
    out
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

    fn render(src: &str) -> Result<String, minijinja::Error> {
        crate::vars::template::environment(std::path::Path::new(".")).render_str(src, minijinja::context! {})
    }

    #[test]
    fn password_hash_is_what_ansible_writes() {
        // Values from ansible-core 2.19 with passlib 1.7.4.
        assert_eq!(
            render("{{ 'secret' | password_hash('sha512', 'mysalt', rounds=10000) }}").unwrap(),
            "$6$rounds=10000$mysalt$9XTP7570fxVN/uTspSrH6kRPdR4KKGzGz7.TmJjDYGrKSwZuavW/3YaLur8JX6WP75Czcxa.megIO0lKreY0R."
        );
        assert_eq!(
            render("{{ 'secret' | password_hash('sha512', 'mysalt', rounds=5000) }}").unwrap(),
            "$6$mysalt$UX6P1VKOf6dr0s2pg4pLNvIUB6hLXvP6M5f/Yj9hJgMPdAJ4oArvk5YUD9/XWtk1JOpVwt/JTsczMJr8sFVML1",
            "crypt's implicit 5000 rounds are not written"
        );
        assert_eq!(
            render("{{ 'secret' | password_hash('sha256', 'mysalt', rounds=5000) }}").unwrap(),
            "$5$mysalt$I2SNajjJ3Gc5gIR/tkrLOGngF8wqv59buJCqxh.o9s8"
        );
        // The glibc test vectors (salt longer than 16 is refused, as passlib does).
        assert_eq!(
            render("{{ 'Hello world!' | password_hash('sha256', salt='saltstring', rounds=5000) }}").unwrap(),
            "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5"
        );
        assert_eq!(
            render("{{ 'Hello world!' | password_hash('sha512_crypt', 'saltstring', rounds=5000) }}").unwrap(),
            "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"
        );
    }

    #[test]
    fn password_hash_defaults_and_errors() {
        // Ansible's default rounds are written out; a missing salt is a random one.
        assert!(render("{{ 'secret' | password_hash('sha256', 'mysalt') }}").unwrap().starts_with("$5$rounds=535000$mysalt$"));
        for (src, id) in
            [("{{ 'secret' | password_hash(rounds=1000) }}", "6"), ("{{ 'secret' | password_hash('sha256', rounds=1000) }}", "5")]
        {
            let out = render(src).unwrap();
            let parts: Vec<&str> = out.split('$').collect();
            assert_eq!(parts[1], id, "{out}");
            let salt = parts[3];
            assert_eq!(salt.len(), 16, "{out}");
            assert!(salt.bytes().all(|b| super::CRYPT64.contains(&b)), "{out}");
            assert_eq!(parts[4].len(), if id == "6" { 86 } else { 43 }, "{out}");
            assert_ne!(out, render(src).unwrap(), "a fresh salt each time");
        }
        let short = render("{{ 'x' | password_hash('sha512', salt_size=8, rounds=1000) }}").unwrap();
        assert_eq!(short.split('$').nth(3).unwrap().len(), 8, "{short}");
        for (src, says) in [
            ("{{ 'x' | password_hash('whirlpool', 'salt') }}", "unknown hash type `whirlpool`"),
            ("{{ 'x' | password_hash('md5', 'salt') }}", "hash type `md5` is not supported"),
            ("{{ 'x' | password_hash('sha512', 'bad salt!') }}", "invalid characters in salt"),
            ("{{ 'x' | password_hash('sha512', 'averyveryverylongsalt') }}", "salt too large"),
            ("{{ 'x' | password_hash('sha512', 'salt', rounds=999) }}", "rounds must be between 1000 and 999999999"),
            ("{{ 42 | password_hash('sha512', 'salt') }}", "password must be a string"),
        ] {
            let e = render(src).unwrap_err().to_string();
            assert!(e.contains("password_hash") && e.contains(says), "{src}: {e}");
        }
    }

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
