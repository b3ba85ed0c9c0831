//! The Jinja2 template environment (minijinja) used for vars and rendered files.
//!
//! Undefined variables are errors. Besides minijinja's built-ins it provides the Ansible filters
//! users rely on (`to_json`, `to_nice_json`, `to_yaml`, `to_nice_yaml`, `b64encode`,
//! `b64decode`, `quote`, `bool`, `d`) and lookups for secrets kept out of the repo:
//! `env("NAME")`, `env("NAME", "fallback")`, `file("path")` (relative to the inventory), and
//! Ansible's spelling `lookup("env", "NAME")` / `lookup("file", "path")`.

use std::path::{Path, PathBuf};

use base64::Engine;
use minijinja::value::{Rest, Value};
use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior};

/// Builds the environment; `base_dir` anchors relative paths given to `file()`.
pub fn environment(base_dir: &Path) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_syntax(minijinja::syntax::SyntaxConfig::builder().keep_trailing_newline(true).build().expect("static syntax config"));
    env.add_filter("b64encode", |s: String| base64::engine::general_purpose::STANDARD.encode(s));
    env.add_filter("b64decode", |s: String| -> Result<String, Error> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .map_err(|e| Error::new(ErrorKind::InvalidOperation, format!("b64decode: {e}")))?;
        String::from_utf8(bytes).map_err(|_| Error::new(ErrorKind::InvalidOperation, "b64decode: not UTF-8"))
    });
    env.add_filter("quote", |v: Value| crate::sh::quote(&value_text(&v)));
    env.add_filter("bool", |v: Value| -> bool {
        match v.as_str() {
            Some(s) => matches!(s.to_ascii_lowercase().as_str(), "yes" | "true" | "on" | "1"),
            None => v.is_true(),
        }
    });
    env.add_filter(
        "d",
        |v: Value, default: Option<Value>| if v.is_undefined() || v.is_none() { default.unwrap_or_else(|| Value::from("")) } else { v },
    );
    super::filters::register(&mut env);
    env.add_function("env", env_lookup);
    let dir = base_dir.to_path_buf();
    env.add_function("file", move |path: String| file_lookup(&dir, &path));
    let dir = base_dir.to_path_buf();
    env.add_function("lookup", move |kind: String, args: Rest<Value>| -> Result<Value, Error> {
        let arg = args.first().map(value_text).ok_or_else(|| Error::new(ErrorKind::MissingArgument, "lookup needs a second argument"))?;
        match kind.as_str() {
            "env" => env_lookup(arg, args.get(1).map(value_text)).map(Value::from),
            "file" => file_lookup(&dir, &arg).map(Value::from),
            other => Err(Error::new(ErrorKind::InvalidOperation, format!("lookup(\"{other}\") is not supported; use env or file"))),
        }
    });
    env
}

fn value_text(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

thread_local! {
    /// Set when a template read a value through `env()` or `file()` since the flag was last taken.
    static SECRET_READ: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether a template read through `env()`/`file()` since the last call; resets the flag. What
/// is kept out of the repo is treated as secret.
pub fn take_secret_read() -> bool {
    SECRET_READ.with(|f| f.replace(false))
}

/// Sets the flag [`take_secret_read`] returns.
pub fn mark_secret_read() {
    SECRET_READ.with(|f| f.set(true));
}

fn env_lookup(name: String, default: Option<String>) -> Result<String, Error> {
    mark_secret_read();
    match std::env::var(&name) {
        Ok(v) => Ok(v),
        Err(_) => default.ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidOperation,
                format!("environment variable {name} is not set (give a fallback with env(\"{name}\", \"...\"))"),
            )
        }),
    }
}

fn file_lookup(dir: &Path, path: &str) -> Result<String, Error> {
    mark_secret_read();
    let p = crate::fsutil::expand_path(path, dir);
    std::fs::read_to_string(&p)
        .map(|s| s.trim_end().to_string())
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, format!("cannot read {}: {e}", p.display())))
}

/// Expands a leading `~/` to the user's home directory (relative paths stay relative; see
/// [`crate::fsutil::expand_path`] to anchor them too).
pub fn expand_home(path: &str) -> PathBuf {
    if path.starts_with('~') { crate::fsutil::expand_path(path, Path::new("")) } else { PathBuf::from(path) }
}

/// True when a string contains template syntax and must be rendered.
pub fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(src: &str) -> Result<String, Error> {
        environment(Path::new(".")).render_str(src, minijinja::context! { name => "it's", items => vec![1, 2] })
    }

    #[test]
    fn ansible_filters() {
        assert_eq!(render("{{ name | quote }}").unwrap(), r"'it'\''s'");
        assert_eq!(render("{{ items | to_json }}").unwrap(), "[1, 2]", "as Python's json.dumps writes it");
        assert_eq!(render("{{ 'abc' | b64encode }}").unwrap(), "YWJj");
        assert_eq!(render("{{ 'YWJj' | b64decode }}").unwrap(), "abc");
        assert_eq!(render("{{ missing | default('x') }}").unwrap(), "x");
        assert_eq!(render("{{ missing | d('y') }}").unwrap(), "y");
        assert_eq!(render("{{ 'yes' | bool }}").unwrap(), "True", "Jinja2 prints booleans as Python does");
        assert_eq!(render("{{ items | to_yaml }}").unwrap(), "[1, 2]\n", "flow style for a list of scalars, as PyYAML writes it");
    }

    #[test]
    fn undefined_is_an_error_and_env_needs_a_value() {
        assert_eq!(render("{{ nope }}").unwrap_err().kind(), ErrorKind::UndefinedError);
        assert!(render("{{ env('PROVISION_SURELY_UNSET_VAR') }}").is_err());
        assert_eq!(render("{{ env('PROVISION_SURELY_UNSET_VAR', 'fb') }}").unwrap(), "fb");
        assert_eq!(render("{{ lookup('env', 'PROVISION_SURELY_UNSET_VAR', 'fb') }}").unwrap(), "fb");
    }

    #[test]
    fn quoting_is_shell_safe() {
        let q = crate::sh::quote;
        assert_eq!(q("plain-1.2"), "plain-1.2");
        assert_eq!(q("$(reboot)"), "'$(reboot)'");
        assert_eq!(q("; rm -rf /"), "'; rm -rf /'");
        assert_eq!(q(""), "''");
    }
}
