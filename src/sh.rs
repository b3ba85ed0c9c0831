//! POSIX sh as a structure: quoting, commands from argument lists, and scripts assembled from
//! them. Every script provision sends to a host is built here, so quoting lives in one place.
//!
//! - [`quote`] makes any string one literal sh word.
//! - [`Cmd`] is a command from an argument list: literal words are quoted when rendered,
//!   [`Word::Raw`] words (variable references like `"$t"`) are written as they are.
//! - [`Script`] is a sequence of lines: commands, raw fragments, base64 heredocs, traps and the
//!   temp-file + rename idiom.
//! - [`kv_line`] / [`parse_kv`] are the one `key=value` grammar probes print and plans read.
//! - [`check_not_option`], [`check_unit_value`], [`check_name`] refuse values that would change a
//!   command's meaning (a leading `-`, a newline in a systemd unit line, a path in a name).

use std::fmt::Write as _;

/// Quotes `s` as one literal sh word (single quotes; bare when only safe characters are used).
pub fn quote(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=:@%+,".contains(&b)) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Quotes every item and joins them with spaces.
pub fn quote_all<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    items.into_iter().map(|s| quote(s.as_ref())).collect::<Vec<_>>().join(" ")
}

/// One word of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Word {
    /// A literal value, quoted when rendered.
    Lit(String),
    /// sh written as is: a variable reference (`"$t"`), a redirection, a glob. Never user data.
    Raw(String),
}

/// A command built from an argument list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    words: Vec<Word>,
}

impl Cmd {
    /// A command named `program` (a literal word).
    pub fn new(program: &str) -> Self {
        Cmd { words: vec![Word::Lit(program.to_string())] }
    }

    /// Adds a literal argument.
    pub fn arg(mut self, a: impl AsRef<str>) -> Self {
        self.words.push(Word::Lit(a.as_ref().to_string()));
        self
    }

    /// Adds literal arguments.
    pub fn args<S: AsRef<str>>(mut self, items: impl IntoIterator<Item = S>) -> Self {
        self.words.extend(items.into_iter().map(|a| Word::Lit(a.as_ref().to_string())));
        self
    }

    /// Adds an argument written as is (a variable reference such as `"$t"`).
    pub fn raw(mut self, r: &str) -> Self {
        self.words.push(Word::Raw(r.to_string()));
        self
    }

    /// Adds `--`, after which no argument is read as an option.
    pub fn end_of_options(self) -> Self {
        self.raw("--")
    }

    /// The command as one line of sh.
    pub fn render(&self) -> String {
        self.words
            .iter()
            .map(|w| match w {
                Word::Lit(s) => quote(s),
                Word::Raw(s) => s.clone(),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl std::fmt::Display for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render())
    }
}

/// A script: lines of sh in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Script {
    text: String,
}

/// The heredoc delimiter provision uses; base64 payloads can never contain it.
pub const HEREDOC_END: &str = "PROVISION_EOF";

impl Script {
    /// An empty script.
    pub fn new() -> Self {
        Script::default()
    }

    /// Adds a command line.
    pub fn cmd(&mut self, c: &Cmd) -> &mut Self {
        self.line(&c.render())
    }

    /// Adds sh written as is (control flow around quoted values). A trailing newline is added
    /// when missing.
    pub fn line(&mut self, raw: &str) -> &mut Self {
        self.text.push_str(raw);
        if !raw.ends_with('\n') {
            self.text.push('\n');
        }
        self
    }

    /// Adds another script's lines.
    pub fn append(&mut self, other: &Script) -> &mut Self {
        self.text.push_str(&other.text);
        self
    }

    /// Sets the shell variable `name` (letters, digits, `_`) to the literal `value`.
    pub fn set(&mut self, name: &str, value: &str) -> &mut Self {
        debug_assert!(is_var_name(name), "bad sh variable name {name}");
        self.line(&format!("{name}={}", quote(value)))
    }

    /// Writes `bytes` to `target` (a sh word such as `"$t"`) through a base64 heredoc: any
    /// content, binary included, travels as ASCII that can never end the heredoc early.
    pub fn base64_to(&mut self, target: &str, bytes: &[u8]) -> &mut Self {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        let _ = writeln!(self.text, "base64 -d > {target} <<'{HEREDOC_END}'");
        for chunk in b64.as_bytes().chunks(76) {
            self.text.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
            self.text.push('\n');
        }
        let _ = writeln!(self.text, "{HEREDOC_END}");
        self
    }

    /// Removes the files `vars` (sh variable names) name when the script exits, however it
    /// exits. [`Script::untrap`] cancels it once they are renamed into place.
    pub fn trap_remove(&mut self, vars: &[&str]) -> &mut Self {
        let refs: Vec<String> = vars.iter().map(|v| format!("\"${v}\"")).collect();
        self.line(&format!("trap 'rm -f {}' EXIT", refs.join(" ")))
    }

    /// Cancels the EXIT trap.
    pub fn untrap(&mut self) -> &mut Self {
        self.line("trap - EXIT")
    }

    /// The script's text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The script's text, owned.
    pub fn into_string(self) -> String {
        self.text
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }
}

impl std::fmt::Display for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl From<Script> for String {
    fn from(s: Script) -> String {
        s.text
    }
}

/// Whether `name` is a valid sh variable name.
pub fn is_var_name(name: &str) -> bool {
    let mut b = name.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_') && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// sh printing `key=VALUE` on one line, where `value_expr` is sh (a `"$var"` or `"$(cmd)"`);
/// newlines in the value are folded to spaces so a value is always one line.
pub fn kv_line(key: &str, value_expr: &str) -> String {
    debug_assert!(key.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || c == b'-'), "bad key {key}");
    format!("printf '%s=%s\\n' {key} \"$(printf '%s' {value_expr} | tr '\\n' ' ')\"")
}

/// Parses `key=value` lines (the value is everything after the first `=`); lines without `=`
/// are an error naming the line. Later keys repeat earlier ones in order.
pub fn parse_kv(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        let (k, v) = line.split_once('=').ok_or_else(|| format!("expected `key=value`, got `{line}`"))?;
        out.push((k.trim().to_string(), v.to_string()));
    }
    Ok(out)
}

/// The value of `key` in parsed `key=value` lines (the last one wins).
pub fn kv_get<'a>(kv: &'a [(String, String)], key: &str) -> Option<&'a str> {
    kv.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Refuses a value that a command would read as an option (it starts with `-`).
pub fn check_not_option(what: &str, value: &str) -> Result<(), String> {
    if value.starts_with('-') {
        return Err(format!("{what} `{value}` starts with `-` and would be read as an option"));
    }
    Ok(())
}

/// Refuses a value that would break out of one systemd unit line: a newline (a new directive)
/// or a control character. `%` is allowed only when `allow_percent` (systemd expands it).
pub fn check_unit_value(what: &str, value: &str, allow_percent: bool) -> Result<(), String> {
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(format!("{what} contains a control character ({c:?}); a systemd unit value must be one line"));
    }
    if !allow_percent && value.contains('%') {
        return Err(format!("{what} contains `%`, which systemd would expand as a specifier (write `%%`)"));
    }
    Ok(())
}

/// Refuses a name that becomes a path component, unit or container name: non-empty, at most
/// 253 characters of letters, digits, `.`, `_`, `-`, not starting with `-` or `.`.
pub fn check_name(what: &str, value: &str) -> Result<(), String> {
    let ok = !value.is_empty()
        && value.len() <= 253
        && !value.starts_with(['-', '.'])
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!("{what} `{value}` is not a valid name (letters, digits, `.`, `_`, `-`; not starting with `-` or `.`)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_what_needs_it() {
        assert_eq!(quote("abc-1.2/x"), "abc-1.2/x");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's $(x)"), r"'it'\''s $(x)'");
    }

    #[test]
    fn commands_quote_literals_and_keep_raw_words() {
        let c = Cmd::new("docker").arg("run").arg("--name").arg("a b").end_of_options().raw("\"$t\"");
        assert_eq!(c.render(), "docker run --name 'a b' -- \"$t\"");
    }

    #[test]
    fn base64_payload_round_trips_through_a_heredoc() {
        let mut s = Script::new();
        s.base64_to("\"$t\"", b"PROVISION_EOF\n\x00\xff");
        let text = s.into_string();
        assert!(text.starts_with("base64 -d > \"$t\" <<'PROVISION_EOF'\n"));
        assert_eq!(text.matches("PROVISION_EOF").count(), 2, "the payload never contains the delimiter: {text}");
    }

    #[test]
    fn kv_lines_parse_back() {
        let kv = parse_kv("a=1\nb=x=y\n\nb=2\n").unwrap();
        assert_eq!(kv_get(&kv, "a"), Some("1"));
        assert_eq!(kv_get(&kv, "b"), Some("2"));
        assert!(parse_kv("nokey").is_err());
    }

    #[test]
    fn refuses_options_newlines_and_paths() {
        assert!(check_not_option("image", "-v/:/host").is_err());
        assert!(check_not_option("image", "docker:dind").is_ok());
        assert!(check_unit_value("arg", "a\nExecStartPre=/bin/x", false).is_err());
        assert!(check_unit_value("arg", "100%", false).is_err());
        assert!(check_unit_value("arg", "--debug", false).is_ok());
        assert!(check_name("host", "../../x").is_err());
        assert!(check_name("host", "lab-slave-1").is_ok());
    }
}
