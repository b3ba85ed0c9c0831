//! `-e/--extra-vars`: `KEY=VALUE` pairs, `@file.yaml`, or an inline YAML/JSON mapping.

use super::{Layer, VarMap, map_from_node};
use crate::error::InputError;
use crate::source;
use crate::yaml::{Node, Value};

/// Parses each `-e` argument into a layer, in order (later ones win).
pub fn parse(args: &[String]) -> Result<Vec<Layer>, InputError> {
    args.iter().enumerate().map(|(i, a)| parse_one(i + 1, a)).collect()
}

fn parse_one(index: usize, arg: &str) -> Result<Layer, InputError> {
    if let Some(path) = arg.strip_prefix('@') {
        return super::files::load_layer(std::path::Path::new(path));
    }
    let label = format!("-e #{index}");
    let trimmed = arg.trim_start();
    if trimmed.starts_with('{') {
        let id = source::register_named(label.clone(), arg.to_string());
        let node = crate::yaml::parse(id, arg)?;
        return Ok(Layer { vars: map_from_node(&node, &label)?, label });
    }
    // KEY=VALUE pairs, space separated, values may be quoted; values are strings, as in Ansible.
    let id = source::register_named(label.clone(), arg.to_string());
    let mut vars = VarMap::new();
    for (offset, end, token) in super::shlex::split(arg, false).map_err(|m| InputError::plain(format!("{label}: {m}")))? {
        // Quotes are gone from `token`, so spans cover the whole raw word (on char boundaries).
        let word = source::Span::new(id, offset, end - offset);
        let Some((key, value)) = token.split_once('=') else {
            return Err(InputError::at(word, format!("extra var `{token}` is not KEY=VALUE"), "expected KEY=VALUE")
                .with_help("use -e KEY=VALUE, -e @vars.yaml or -e '{\"key\": [1, 2]}'"));
        };
        if key.is_empty() {
            return Err(InputError::at(word, "extra var has an empty name", "empty name"));
        }
        // The value's span starts after the raw word's first `=`, so an error about the value
        // points at it (`-e #2:1:23`), not at the key.
        let span = match arg.get(offset..end).and_then(|raw| raw.find('=')) {
            Some(eq) if offset + eq + 1 < end => source::Span::new(id, offset + eq + 1, end - offset - eq - 1),
            _ => word,
        };
        vars.insert(key.to_string(), Node { value: Value::Str(value.to_string()), span, tag: None });
    }
    Ok(Layer { label, vars })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_files_and_inline_mappings() {
        let layers = parse(&["a=1 b='two words'".into(), "{\"c\": [1, 2]}".into(), "ansible_user=core".into()]).unwrap();
        assert_eq!(layers[0].vars["a"].to_json(), "1");
        assert_eq!(layers[0].vars["b"].to_json(), "two words");
        assert_eq!(layers[1].vars["c"].to_json(), serde_json::json!([1, 2]));
        assert_eq!(layers[2].vars["ansible_user"].to_json(), "core", "Ansible's names are kept as written");
        assert!(parse(&["novalue".into()]).is_err());
    }
}
