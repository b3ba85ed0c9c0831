//! Python's `ast.literal_eval`, the subset Ansible's INI inventory parser relies on: a value
//! written `5`, `True`, `'a'`, `"'a'"`, `[1, 2]` or `{'k': 'v'}` has the type Python gives it;
//! anything that is not a literal is kept as the string written.

use crate::source::Span;
use crate::yaml::{Node, Value};

/// Evaluates `text` as a Python literal; `None` when Python would refuse it (Ansible then keeps
/// the text as a string). Python's `None` becomes [`Value::Null`].
pub fn literal_eval(text: &str, span: Span) -> Option<Value> {
    let mut p = Parser { s: text.trim_start_matches([' ', '\t']).as_bytes(), i: 0, depth: 0, span };
    let v = p.expr()?;
    p.ws();
    (p.i == p.s.len()).then_some(v)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    depth: usize,
    /// Every nested value points at the whole literal.
    span: Span,
}

impl Parser<'_> {
    fn node(&self, value: Value) -> Node {
        Node { value, span: self.span, tag: None }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    /// Skips whitespace and a `#` comment (Python allows one at the end of an expression).
    fn ws(&mut self) {
        while let Some(c) = self.peek() {
            match c {
                b' ' | b'\t' | b'\x0c' => self.i += 1,
                b'#' => self.i = self.s.len(),
                _ => break,
            }
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expr(&mut self) -> Option<Value> {
        self.ws();
        // Deep nesting is refused rather than recursed into (Python's own limit is similar).
        if self.depth > 100 {
            return None;
        }
        self.depth += 1;
        let v = match self.peek()? {
            b'-' | b'+' => {
                let neg = self.peek() == Some(b'-');
                self.i += 1;
                match self.expr()? {
                    Value::Int(n) => Value::Int(if neg { n.checked_neg()? } else { n }),
                    Value::Float(f) => Value::Float(if neg { -f } else { f }),
                    // -True is -1 in Python.
                    Value::Bool(b) => Value::Int(if neg { -i64::from(b) } else { i64::from(b) }),
                    _ => return None,
                }
            }
            b'[' => Value::Seq(self.items(b']')?.into_iter().map(|v| self.node(v)).collect()),
            b'(' => {
                self.i += 1;
                if self.eat(b')') {
                    Value::Seq(Vec::new())
                } else {
                    let first = self.expr()?;
                    if self.eat(b')') {
                        first
                    } else if self.eat(b',') {
                        let mut rest = vec![first];
                        loop {
                            if self.eat(b')') {
                                break;
                            }
                            rest.push(self.expr()?);
                            if self.eat(b')') {
                                break;
                            }
                            if !self.eat(b',') {
                                return None;
                            }
                        }
                        Value::Seq(rest.into_iter().map(|v| self.node(v)).collect())
                    } else {
                        return None;
                    }
                }
            }
            b'{' => self.dict()?,
            b'\'' | b'"' => self.strings()?,
            c if c.is_ascii_digit() || c == b'.' => self.number()?,
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = self.i;
                while self.peek().is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_') {
                    self.i += 1;
                }
                let word = std::str::from_utf8(&self.s[start..self.i]).ok()?;
                match word {
                    "True" => Value::Bool(true),
                    "False" => Value::Bool(false),
                    "None" => Value::Null,
                    // String prefixes: r'..', b'..', u'..' (f-strings are not literals).
                    w if w.len() <= 2 && w.chars().all(|c| "rRbBuU".contains(c)) && matches!(self.peek(), Some(b'\'' | b'"')) => {
                        self.i = start;
                        self.strings()?
                    }
                    _ => return None,
                }
            }
            _ => return None,
        };
        self.depth -= 1;
        Some(v)
    }

    fn items(&mut self, close: u8) -> Option<Vec<Value>> {
        self.i += 1;
        let mut out = Vec::new();
        loop {
            if self.eat(close) {
                return Some(out);
            }
            out.push(self.expr()?);
            if self.eat(close) {
                return Some(out);
            }
            if !self.eat(b',') {
                return None;
            }
        }
    }

    fn dict(&mut self) -> Option<Value> {
        self.i += 1;
        let mut out = Vec::new();
        let mut set = Vec::new();
        loop {
            if self.eat(b'}') {
                break;
            }
            let k = self.expr()?;
            if self.eat(b':') {
                let v = self.expr()?;
                let name = match k {
                    Value::Str(s) => s,
                    Value::Int(i) => i.to_string(),
                    Value::Bool(b) => b.to_string(),
                    Value::Float(f) => f.to_string(),
                    Value::Null => "null".into(),
                    _ => return None,
                };
                out.push((crate::yaml::Key { name, span: self.span }, self.node(v)));
            } else {
                set.push(self.node(k));
            }
            if self.eat(b'}') {
                break;
            }
            if !self.eat(b',') {
                return None;
            }
        }
        match (out.is_empty(), set.is_empty()) {
            (_, true) => Some(Value::Map(out)),
            (true, false) => Some(Value::Seq(set)),
            _ => None,
        }
    }

    /// One or more adjacent string literals (Python concatenates them).
    fn strings(&mut self) -> Option<Value> {
        let mut out = String::new();
        loop {
            self.ws();
            let start = self.i;
            let mut raw = false;
            while let Some(c) = self.peek().filter(|c| b"rRbBuU".contains(c)) {
                raw |= c == b'r' || c == b'R';
                self.i += 1;
            }
            let Some(q @ (b'\'' | b'"')) = self.peek() else {
                self.i = start;
                break;
            };
            let triple = self.s[self.i..].starts_with(&[q, q, q]);
            self.i += if triple { 3 } else { 1 };
            loop {
                let c = self.peek()?;
                if triple && self.s[self.i..].starts_with(&[q, q, q]) {
                    self.i += 3;
                    break;
                }
                if !triple && c == q {
                    self.i += 1;
                    break;
                }
                if !triple && c == b'\n' {
                    return None;
                }
                if c == b'\\' && !raw {
                    self.i += 1;
                    self.escape(&mut out)?;
                    continue;
                }
                if c == b'\\' && raw {
                    out.push('\\');
                    self.i += 1;
                    if let Some(n) = self.peek() {
                        self.push_char(&mut out, n)?;
                    }
                    continue;
                }
                self.push_char(&mut out, c)?;
            }
        }
        Some(Value::Str(out))
    }

    /// Appends the UTF-8 character starting at the current byte.
    fn push_char(&mut self, out: &mut String, _first: u8) -> Option<()> {
        let rest = std::str::from_utf8(&self.s[self.i..]).ok().or_else(|| {
            let valid = std::str::from_utf8(&self.s[self.i..]).err()?.valid_up_to();
            std::str::from_utf8(&self.s[self.i..self.i + valid]).ok()
        })?;
        let ch = rest.chars().next()?;
        out.push(ch);
        self.i += ch.len_utf8();
        Some(())
    }

    fn escape(&mut self, out: &mut String) -> Option<()> {
        let c = self.peek()?;
        self.i += 1;
        let hex = |p: &mut Self, n: usize| -> Option<char> {
            let h = std::str::from_utf8(p.s.get(p.i..p.i + n)?).ok()?;
            p.i += n;
            char::from_u32(u32::from_str_radix(h, 16).ok()?)
        };
        match c {
            b'n' => out.push('\n'),
            b't' => out.push('\t'),
            b'r' => out.push('\r'),
            b'\\' => out.push('\\'),
            b'\'' => out.push('\''),
            b'"' => out.push('"'),
            b'a' => out.push('\u{7}'),
            b'b' => out.push('\u{8}'),
            b'f' => out.push('\u{c}'),
            b'v' => out.push('\u{b}'),
            b'\n' => {}
            b'x' => out.push(hex(self, 2)?),
            b'u' => out.push(hex(self, 4)?),
            b'U' => out.push(hex(self, 8)?),
            b'0'..=b'7' => {
                let start = self.i - 1;
                while self.i < start + 3 && self.peek().is_some_and(|d| (b'0'..=b'7').contains(&d)) {
                    self.i += 1;
                }
                out.push(char::from_u32(u32::from_str_radix(std::str::from_utf8(&self.s[start..self.i]).ok()?, 8).ok()?)?);
            }
            _ => {
                // Unknown escapes keep their backslash, as in Python.
                out.push('\\');
                self.i -= 1;
                self.push_char(out, c)?;
            }
        }
        Some(())
    }

    fn number(&mut self) -> Option<Value> {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.') {
            // An exponent sign belongs to the number.
            if matches!(self.peek(), Some(b'e' | b'E'))
                && !self.s[start..self.i].starts_with(b"0x")
                && !self.s[start..self.i].starts_with(b"0X")
                && matches!(self.s.get(self.i + 1), Some(b'+' | b'-'))
            {
                self.i += 2;
                continue;
            }
            self.i += 1;
        }
        let t = std::str::from_utf8(&self.s[start..self.i]).ok()?;
        // Underscores only between digits.
        if t.starts_with('_') || t.ends_with('_') || t.contains("__") || t.contains("_.") || t.contains("._") {
            return None;
        }
        let clean = t.replace('_', "");
        let lower = clean.to_ascii_lowercase();
        for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] {
            if let Some(d) = lower.strip_prefix(prefix) {
                return i64::from_str_radix(d, radix).ok().map(Value::Int);
            }
        }
        if lower.bytes().all(|c| c.is_ascii_digit()) {
            // 0755 is a syntax error in Python 3; 000 is zero.
            if lower.len() > 1 && lower.starts_with('0') && !lower.bytes().all(|c| c == b'0') {
                return None;
            }
            return lower.parse().ok().map(Value::Int);
        }
        if lower.ends_with('j') || !lower.bytes().all(|c| c.is_ascii_digit() || b".e+-".contains(&c)) {
            return None;
        }
        lower.parse::<f64>().ok().filter(|f| f.is_finite()).map(Value::Float)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Option<Value> {
        let id = crate::source::register_named("t".into(), v.into());
        literal_eval(v, Span::new(id, 0, v.len()))
    }

    #[test]
    fn literals_as_python_reads_them() {
        assert_eq!(s("5"), Some(Value::Int(5)));
        assert_eq!(s("-5"), Some(Value::Int(-5)));
        assert_eq!(s("0o755"), Some(Value::Int(493)));
        assert_eq!(s("0755"), None, "a syntax error in Python 3: kept as a string");
        assert_eq!(s("1e3"), Some(Value::Float(1000.0)));
        assert_eq!(s("1_000"), Some(Value::Int(1000)));
        assert_eq!(s("True"), Some(Value::Bool(true)));
        assert_eq!(s("true"), None, "only Python's spelling is a boolean");
        assert_eq!(s("None"), Some(Value::Null));
        assert_eq!(s("'abc'"), Some(Value::Str("abc".into())));
        assert_eq!(s("\"'abc'\""), Some(Value::Str("'abc'".into())));
        assert_eq!(s("'a' 'b'"), Some(Value::Str("ab".into())));
        assert_eq!(s("'a\\nb'"), Some(Value::Str("a\nb".into())));
        assert_eq!(s("2 # comment"), Some(Value::Int(2)));
        assert_eq!(s("prod # comment"), None);
        assert!(matches!(s("[1, 'a', (2,)]"), Some(Value::Seq(v)) if v.len() == 3));
        assert!(matches!(s("{'k': 1, 'j': [2]}"), Some(Value::Map(m)) if m.len() == 2));
        assert_eq!(s("(1)"), Some(Value::Int(1)));
        assert_eq!(s("1.5.2"), None);
        assert_eq!(s("é"), None);
        assert_eq!(s(&"[".repeat(10_000)), None, "deep nesting is refused, not a stack overflow");
    }
}
