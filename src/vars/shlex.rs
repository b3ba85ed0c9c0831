//! Shell-like word splitting as Python's `shlex.split` does it (POSIX mode), which Ansible uses
//! for INI host lines; also used for `-e KEY=VALUE` pairs.

/// Splits a line as Python's `shlex.split(line, comments=True)` does: on whitespace outside
/// quotes, removing the quotes and backslash escapes; `#` starts a comment where a word could
/// continue or start. Returns each word with its byte offset in `line`. Used for INI host lines
/// and `-e` pairs.
pub fn split_words(line: &str) -> Result<Vec<(usize, String)>, String> {
    Ok(split(line, true)?.into_iter().map(|(s, _, w)| (s, w)).collect())
}

/// As [`split_words`] without comments: for `-e` arguments, where `#` is an ordinary character.
pub fn split_args(line: &str) -> Result<Vec<(usize, String)>, String> {
    Ok(split(line, false)?.into_iter().map(|(s, _, w)| (s, w)).collect())
}

/// Words with their start and end byte offsets (both on character boundaries).
pub fn split(line: &str, comments: bool) -> Result<Vec<(usize, usize, String)>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut start: Option<usize> = None;
    let mut quote: Option<char> = None;
    let mut chars = line.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match quote {
            Some('\'') if c == '\'' => quote = None,
            Some('"') if c == '"' => quote = None,
            Some('"') if c == '\\' => match chars.peek() {
                Some(&(_, n @ ('"' | '\\' | '$' | '`'))) => {
                    cur.push(n);
                    chars.next();
                }
                Some(&(_, '\n')) => {
                    chars.next();
                }
                _ => cur.push('\\'),
            },
            Some(_) => cur.push(c),
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                start.get_or_insert(i);
            }
            None if c == '\\' => {
                start.get_or_insert(i);
                if let Some((_, n)) = chars.next() {
                    cur.push(n);
                }
            }
            None if comments && c == '#' => {
                if let Some(s) = start.take() {
                    words.push((s, i, std::mem::take(&mut cur)));
                }
                break;
            }
            None if c.is_whitespace() => {
                if let Some(s) = start.take() {
                    words.push((s, i, std::mem::take(&mut cur)));
                }
            }
            None => {
                start.get_or_insert(i);
                cur.push(c);
            }
        }
    }
    if quote.is_some() {
        return Err("no closing quotation".into());
    }
    if let Some(s) = start {
        words.push((s, line.len(), cur));
    }
    Ok(words)
}
