//! `--limit` patterns, as in Ansible: `web1`, `slave`, `ci-*`, `master,slave`, `all,!ci-old`,
//! `slave,&eu` (intersection). `:` also separates patterns.

use std::collections::HashSet;

use super::Inventory;
use crate::error::InputError;

/// The hosts selected by `pattern`, in inventory order. A term that matches nothing is an error,
/// and so is a pattern that selects no host.
pub fn select(inv: &Inventory, pattern: &str) -> Result<Vec<String>, InputError> {
    let mut included: Option<HashSet<String>> = None;
    let mut intersect: Vec<HashSet<String>> = Vec::new();
    let mut excluded = HashSet::new();
    for term in pattern.split([',', ':']).map(str::trim).filter(|t| !t.is_empty()) {
        if let Some(t) = term.strip_prefix('!') {
            excluded.extend(matches(inv, t)?);
        } else if let Some(t) = term.strip_prefix('&') {
            intersect.push(matches(inv, t)?);
        } else {
            included.get_or_insert_with(HashSet::new).extend(matches(inv, term)?);
        }
    }
    // Only exclusions or intersections: start from every host, as Ansible does.
    let mut set = included.unwrap_or_else(|| inv.hosts.keys().cloned().collect());
    for i in intersect {
        set.retain(|h| i.contains(h));
    }
    set.retain(|h| !excluded.contains(h));
    let hosts: Vec<String> = inv.hosts.keys().filter(|h| set.contains(*h)).cloned().collect();
    if hosts.is_empty() {
        return Err(InputError::plain(format!("no host matches `{pattern}`")));
    }
    Ok(hosts)
}

fn matches(inv: &Inventory, term: &str) -> Result<HashSet<String>, InputError> {
    let mut out = HashSet::new();
    if inv.groups.contains_key(term) {
        out.extend(inv.group_hosts(term));
    } else if inv.hosts.contains_key(term) {
        out.insert(term.to_string());
    } else if term.contains(['*', '?', '[']) {
        for g in inv.groups.keys().filter(|g| glob(term, g)) {
            out.extend(inv.group_hosts(g));
        }
        out.extend(inv.hosts.keys().filter(|h| glob(term, h)).cloned());
    }
    if out.is_empty() {
        let names = inv.hosts.keys().chain(inv.groups.keys()).map(String::as_str);
        let mut e = InputError::plain(format!("`{term}` matches no host or group in {}", crate::source::display_path(&inv.path)));
        if let Some(s) = super::did_you_mean(term, names) {
            e = e.with_help(format!("did you mean `{s}`?"));
        }
        return Err(e);
    }
    Ok(out)
}

/// Shell-style glob: `*`, `?` and `[abc]`/`[a-z]`/`[!a]` classes.
pub fn glob(pattern: &str, name: &str) -> bool {
    fn class(p: &[char], c: char) -> Option<(bool, usize)> {
        let mut i = 1;
        let negate = matches!(p.get(1), Some('!' | '^'));
        if negate {
            i += 1;
        }
        let mut hit = false;
        let mut first = true;
        while i < p.len() && (first || p[i] != ']') {
            first = false;
            if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
                hit |= p[i] <= c && c <= p[i + 2];
                i += 3;
            } else {
                hit |= p[i] == c;
                i += 1;
            }
        }
        (i < p.len()).then_some((hit != negate, i + 1))
    }
    fn go(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len()).any(|k| go(&p[1..], &n[k..])),
            Some('?') => !n.is_empty() && go(&p[1..], &n[1..]),
            Some('[') => match (n.first(), class(p, *n.first().unwrap_or(&'\0'))) {
                (Some(_), Some((true, used))) => go(&p[used..], &n[1..]),
                (Some(c), None) => *c == '[' && go(&p[1..], &n[1..]),
                _ => false,
            },
            Some(c) => n.first() == Some(c) && go(&p[1..], &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("ci-*", "ci-slave-1"));
        assert!(!glob("ci-*", "lab-ci"));
        assert!(glob("n?", "n1"));
        assert!(glob("web[0-2]", "web1"));
        assert!(!glob("web[!0-2]", "web1"));
        assert!(glob("*", ""));
    }
}
