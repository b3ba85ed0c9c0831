//! Redacting config files read back from hosts, from their parsed structure: a value is masked
//! because of what it is (under a secret-named key at any depth, or a `KEY=VALUE` list entry
//! with a secret-named `KEY`, as in `environment` or docker-machine's `MachineOptions`), not
//! because of how its line looks. Values the run knows are secret are masked on top
//! ([`Redactor`]).

use serde_json::Value as Json;
use toml_edit::{DocumentMut, Item, Value};

use super::owned::ConfigFormat;
pub use crate::vars::secret::is_secret_key;
use crate::vars::secret::{MASK, Redactor, mask_assignment};

/// The text of a config file with its secrets masked. Text that does not parse in `format` is
/// masked line by line (any line whose key looks secret), and says so.
pub fn redact(text: &str, format: ConfigFormat) -> String {
    let parsed = match format {
        ConfigFormat::Toml => toml(text),
        ConfigFormat::Json => json(text),
        ConfigFormat::Yaml => Some(yaml(text)),
    };
    match parsed {
        Some(t) => Redactor::redact(&t),
        None => format!("(not valid {format:?}: redacted line by line)\n{}", Redactor::redact(&by_line(text))),
    }
}

fn toml(text: &str) -> Option<String> {
    let mut doc: DocumentMut = text.parse().ok()?;
    toml_table(doc.as_table_mut());
    Some(doc.to_string())
}

fn toml_table(t: &mut dyn toml_edit::TableLike) {
    for (k, item) in t.iter_mut() {
        if is_secret_key(k.get()) {
            toml_mask_item(item);
        } else {
            toml_item(item);
        }
    }
}

fn toml_item(item: &mut Item) {
    match item {
        Item::Table(t) => toml_table(t),
        Item::ArrayOfTables(a) => a.iter_mut().for_each(|t| toml_table(t)),
        Item::Value(v) => toml_value(v),
        Item::None => {}
    }
}

fn toml_value(v: &mut Value) {
    match v {
        Value::InlineTable(t) => toml_table(t),
        Value::Array(a) => {
            for e in a.iter_mut() {
                if let Some(masked) = e.as_str().and_then(mask_assignment) {
                    replace_keeping_decor(e, masked);
                } else {
                    toml_value(e);
                }
            }
        }
        _ => {}
    }
}

fn toml_mask_item(item: &mut Item) {
    match item {
        Item::Value(v) => replace_keeping_decor(v, MASK.to_string()),
        Item::Table(t) => t.iter_mut().for_each(|(_, i)| toml_mask_item(i)),
        Item::ArrayOfTables(a) => a.iter_mut().for_each(|t| t.iter_mut().for_each(|(_, i)| toml_mask_item(i))),
        Item::None => {}
    }
}

fn replace_keeping_decor(v: &mut Value, text: String) {
    let decor = v.decor().clone();
    let mut new = Value::from(text);
    *new.decor_mut() = decor;
    *v = new;
}

fn json(text: &str) -> Option<String> {
    let mut doc: Json = serde_json::from_str(text).ok()?;
    json_value(&mut doc, false);
    Some(serde_json::to_string_pretty(&doc).ok()? + if text.ends_with('\n') { "\n" } else { "" })
}

fn json_value(v: &mut Json, secret: bool) {
    match v {
        Json::Object(m) => m.iter_mut().for_each(|(k, v)| json_value(v, secret || is_secret_key(k))),
        Json::Array(a) => a.iter_mut().for_each(|e| json_value(e, secret)),
        Json::Null => {}
        Json::String(s) if !secret => {
            if let Some(masked) = mask_assignment(s) {
                *s = masked;
            }
        }
        _ if secret => *v = Json::String(MASK.into()),
        _ => {}
    }
}

/// YAML keeps its layout: the value of a secret key (the rest of its line and every line
/// indented below it) is replaced by `"***"`. Keys are found by parsing, so quoting, flow
/// style or comments cannot hide one.
fn yaml(text: &str) -> String {
    let id = crate::source::register_named("(config read from a host)".into(), text.to_string());
    let Ok(node) = crate::yaml::parse(id, text) else {
        return format!("(not valid YAML: redacted line by line)\n{}", by_line(text));
    };
    let mut keys = Vec::new();
    yaml_secret_keys(&node, &mut keys);
    let mut lines: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
    for offset in keys {
        let line = text[..offset.min(text.len())].matches('\n').count();
        let Some(l) = lines.get(line).cloned() else { continue };
        let indent = l.len() - l.trim_start().len();
        let col = offset - text[..offset].rfind('\n').map_or(0, |i| i + 1);
        let Some(colon) = l[col.min(l.len())..].find(':').map(|c| c + col) else { continue };
        let nl = if l.ends_with('\n') { "\n" } else { "" };
        lines[line] = format!("{}: \"{MASK}\"{nl}", &l[..colon]);
        // A block value below the key is part of the secret.
        let mut next = line + 1;
        while let Some(n) = lines.get(next) {
            let t = n.trim_start();
            if !t.is_empty() && n.len() - t.len() <= indent {
                break;
            }
            lines[next] = if n.trim().is_empty() { n.clone() } else { String::new() };
            next += 1;
        }
    }
    lines.concat()
}

fn yaml_secret_keys(node: &crate::yaml::Node, out: &mut Vec<usize>) {
    use crate::yaml::Value as Y;
    match &node.value {
        Y::Map(entries) => {
            for (k, v) in entries {
                if is_secret_key(&k.name) {
                    out.push(k.span.offset);
                } else {
                    yaml_secret_keys(v, out);
                }
            }
        }
        Y::Seq(items) => items.iter().for_each(|i| yaml_secret_keys(i, out)),
        _ => {}
    }
}

/// The last resort for text that does not parse: any `key = value` / `key: value` line with a
/// secret-looking key loses its value.
fn by_line(text: &str) -> String {
    text.split_inclusive('\n')
        .map(|line| match line.find(['=', ':']) {
            Some(i) if is_secret_key(line[..i].trim().trim_matches('"')) => {
                format!("{} \"{MASK}\"{}", &line[..=i], if line.ends_with('\n') { "\n" } else { "" })
            }
            _ => line.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_secrets_at_any_depth_and_in_assignments() {
        let text = "concurrent = 1\n[[runners]]\n  name = \"a\"\n  token = \"glrt-abc\"\n  environment = [\"A=1\", \"MY_TOKEN=zzz\"]\n  [runners.cache.s3]\n    AccessKey = \"AKIA\"\n    SecretKey = \"s3-secret\"\n  [runners.machine]\n    MachineOptions = [\"amazonec2-region=eu\", \"amazonec2-secret-key=aws-secret\"]\n";
        let out = redact(text, ConfigFormat::Toml);
        for s in ["glrt-abc", "zzz", "s3-secret", "aws-secret"] {
            assert!(!out.contains(s), "{s} in {out}");
        }
        assert!(out.contains("token = \"***\"") && out.contains("\"A=1\"") && out.contains("amazonec2-region=eu"), "{out}");
        assert!(out.contains("SecretKey = \"***\"") && out.contains("\"amazonec2-secret-key=***\""), "{out}");
    }

    #[test]
    fn yaml_and_json_keep_their_shape() {
        let y = "proxy:\n  remoteurl: \"https://x\"\n  username: \"ci\"\n  password: \"p: w\" # note\nother:\n  secret: |\n    line1\n    line2\nlast: 1\n";
        let out = redact(y, ConfigFormat::Yaml);
        assert!(out.contains("password: \"***\"\n") && out.contains("remoteurl: \"https://x\""), "{out}");
        assert!(!out.contains("p: w") && !out.contains("line1") && out.contains("last: 1"), "{out}");
        let j = "{\"hosts\": [\"unix:///x\"], \"registry_token\": \"x\", \"tlsverify\": true}\n";
        let out = redact(j, ConfigFormat::Json);
        assert!(out.contains("\"registry_token\": \"***\"") && out.contains("\"tlsverify\": true"), "{out}");
        assert!(redact("not [toml", ConfigFormat::Toml).starts_with("(not valid Toml"));
    }
}
