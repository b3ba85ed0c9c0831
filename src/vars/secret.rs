//! Which values are secret, and the redactor that keeps them out of everything printed.
//!
//! A var is secret when it is tagged `!secret` in YAML, when its name says so (`*token*`,
//! `*password*`, `*secret*`, `*private_key*`, ...), or when its template reads a secret var.
//! Every secret value is registered with the process-wide [`Redactor`]; all output passes
//! through it, so a secret that ends up inside a rendered file or an error message is still
//! replaced by `***`.

use std::sync::RwLock;

/// The text printed in place of a secret.
pub const MASK: &str = "***";

/// YAML tag that marks a value secret.
pub const TAG: &str = "!secret";

const SECRET_WORDS: [&str; 7] = ["token", "password", "passwd", "secret", "private_key", "access_key", "credential"];

/// True when a var named `name` is secret by convention (including Ansible's `*_pass` names
/// such as `ansible_ssh_pass` and `ansible_become_pass`).
pub fn is_secret_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| lower.contains(w)) || lower.ends_with("_pass") || lower == "pass"
}

/// Whether a key in any spelling (`SecretKey`, `amazonec2-secret-key`, `registry_password`)
/// names a secret.
pub fn is_secret_key(key: &str) -> bool {
    is_secret_name(&key.replace('-', "_")) || key.to_ascii_lowercase().replace(['-', '_'], "").contains("secretkey")
}

/// `KEY=VALUE` with a secret `KEY` (a runner's `environment`, docker-machine's options), masked;
/// `None` for anything else.
pub fn mask_assignment(s: &str) -> Option<String> {
    let (k, _) = s.split_once('=')?;
    let k = k.trim_start_matches('-');
    (!k.is_empty() && is_secret_key(k)).then(|| format!("{}={MASK}", s.split_once('=').map_or("", |(k, _)| k)))
}

/// True when a value is secret by its name or its tag (`!secret`, or `!vault` for values that
/// were encrypted).
pub fn is_secret_node(name: &str, node: &crate::yaml::Node) -> bool {
    is_secret_name(name) || matches!(node.tag.as_deref(), Some(TAG | VAULT_TAG))
}

/// Tag of an Ansible Vault value (decrypted when loaded; the tag stays to mark it secret).
pub const VAULT_TAG: &str = "!vault";

/// A copy of `value` for printing: values under secret-named keys at any depth are masked, so
/// are `KEY=VALUE` strings with a secret `KEY` (`amazonec2-secret-key=...` in a runner's
/// machine options, `AWS_SECRET_ACCESS_KEY=...` in its `environment`), and every registered
/// secret inside a string is replaced.
pub fn redact_json(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        J::String(s) => J::String(mask_assignment(s).unwrap_or_else(|| Redactor::redact(s))),
        J::Array(a) => J::Array(a.iter().map(redact_json).collect()),
        J::Object(o) => {
            J::Object(o.iter().map(|(k, v)| (k.clone(), if is_secret_key(k) { J::String(MASK.into()) } else { redact_json(v) })).collect())
        }
        other => other.clone(),
    }
}

/// Secrets shorter than this are not searched for in output: replacing every `1` or `true`
/// would garble output without protecting anything real.
const MIN_LEN: usize = 4;

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// The process-wide registry of secret strings.
pub struct Redactor;

impl Redactor {
    /// Registers a secret value (and every line of it, for multi-line keys).
    pub fn add(value: &str) {
        let mut s = SECRETS.write().expect("redactor poisoned");
        for v in std::iter::once(value).chain(value.lines()) {
            let v = v.trim();
            if v.len() >= MIN_LEN && !s.iter().any(|x| x == v) {
                s.push(v.to_string());
            }
        }
        // Longest first, so a secret containing another is replaced whole.
        s.sort_by_key(|x| std::cmp::Reverse(x.len()));
    }

    /// Registers every string inside a JSON value.
    pub fn add_json(value: &serde_json::Value) {
        match value {
            serde_json::Value::String(s) => Self::add(s),
            serde_json::Value::Array(a) => a.iter().for_each(Self::add_json),
            serde_json::Value::Object(o) => o.values().for_each(Self::add_json),
            serde_json::Value::Number(n) => Self::add(&n.to_string()),
            _ => {}
        }
    }

    /// Returns `text` with every registered secret replaced by `***`.
    pub fn redact(text: &str) -> String {
        let s = SECRETS.read().expect("redactor poisoned");
        let mut out = text.to_string();
        for secret in s.iter() {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), MASK);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_with_secret_keys_are_masked_inside_lists() {
        let v = serde_json::json!({"machine": {"options": ["amazonec2-region=eu-west-1", "amazonec2-secret-key=AKsecretvalue"]},
            "environment": ["AWS_SECRET_ACCESS_KEY=abc123xyz", "FOO=bar"], "amazonec2-secret-key": "x"});
        let r = redact_json(&v).to_string();
        assert!(!r.contains("AKsecretvalue") && !r.contains("abc123xyz"), "{r}");
        assert!(r.contains("amazonec2-secret-key=***") && r.contains("AWS_SECRET_ACCESS_KEY=***"), "{r}");
        assert!(r.contains("amazonec2-region=eu-west-1") && r.contains("FOO=bar"), "{r}");
        assert!(r.contains(r#""amazonec2-secret-key":"***""#), "{r}");
    }

    #[test]
    fn names_and_redaction() {
        assert!(is_secret_name("runner_token"));
        assert!(is_secret_name("registry_password"));
        assert!(!is_secret_name("runner_image"));
        Redactor::add("glrt-abcdef123456");
        assert_eq!(Redactor::redact("token = \"glrt-abcdef123456\""), "token = \"***\"");
    }
}
