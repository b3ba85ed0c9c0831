//! The inventory: hosts, groups and the variables written directly in it.
//!
//! Two formats are read into the same [`Inventory`]: Ansible's YAML shape ([`yaml`]) and Ansible's
//! INI shape ([`ini`]). Group and host vars files beside the inventory are loaded by
//! [`crate::vars::files`]; `--limit` patterns are in [`limit`].

pub mod ini;
pub mod limit;
pub mod pyliteral;
pub mod yaml;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use crate::error::InputError;
use crate::source::Span;
use crate::vars::VarMap;

/// The name of the group every host belongs to.
pub const ALL: &str = "all";
/// The group of hosts that belong to no group but `all`.
pub const UNGROUPED: &str = "ungrouped";

/// A host as declared in the inventory.
#[derive(Debug, Clone)]
pub struct Host {
    /// Inventory name (also the SSH address unless `address` is set).
    pub name: String,
    /// Where the host was first declared.
    pub span: Span,
    /// Vars written next to the host in the inventory.
    pub vars: VarMap,
}

/// A group as declared in the inventory.
#[derive(Debug, Clone, Default)]
pub struct Group {
    /// Group name.
    pub name: String,
    /// Where the group was first declared (`None` for the implicit `all` and `ungrouped`).
    pub span: Option<Span>,
    /// Hosts listed directly in this group.
    pub hosts: Vec<String>,
    /// Child groups.
    pub children: Vec<String>,
    /// Vars written in the group's `vars:` (or `[group:vars]`).
    pub vars: VarMap,
    /// `ansible_group_priority` from the inventory (Ansible's default is 1): among groups at the
    /// same depth, a higher priority applies later and wins.
    pub priority: Option<i64>,
}

/// A parsed inventory.
#[derive(Debug, Clone)]
pub struct Inventory {
    /// The inventory file.
    pub path: PathBuf,
    /// Hosts in declaration order.
    pub hosts: IndexMap<String, Host>,
    /// Groups in declaration order; always contains `all` and `ungrouped`.
    pub groups: IndexMap<String, Group>,
}

impl Inventory {
    /// An empty inventory for `path` with the implicit groups.
    pub fn new(path: PathBuf) -> Self {
        let mut groups = IndexMap::new();
        for name in [ALL, UNGROUPED] {
            groups.insert(name.to_string(), Group { name: name.to_string(), ..Group::default() });
        }
        Inventory { path, hosts: IndexMap::new(), groups }
    }

    /// The directory the inventory lives in; `group_vars/`, `host_vars/` and relative paths in
    /// vars are resolved against it.
    pub fn dir(&self) -> PathBuf {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    /// Declares `name` (idempotently) and returns it for adding members.
    pub fn group_mut(&mut self, name: &str, span: Option<Span>) -> &mut Group {
        let g = self.groups.entry(name.to_string()).or_insert_with(|| Group { name: name.to_string(), ..Group::default() });
        if g.span.is_none() {
            g.span = span;
        }
        g
    }

    /// Declares a host (idempotently), adds it to `group`, and merges `vars` into its own.
    pub fn add_host(&mut self, group: &str, name: &str, span: Span, vars: VarMap) {
        let host = self.hosts.entry(name.to_string()).or_insert_with(|| Host { name: name.to_string(), span, vars: VarMap::new() });
        host.vars.extend(vars);
        let g = self.group_mut(group, None);
        if !g.hosts.iter().any(|h| h == name) {
            g.hosts.push(name.to_string());
        }
    }

    /// Adds `child` under `parent`.
    pub fn add_child(&mut self, parent: &str, child: &str) {
        let g = self.group_mut(parent, None);
        if !g.children.iter().any(|c| c == child) {
            g.children.push(child.to_string());
        }
    }

    /// Links top-level groups under `all`, fills `ungrouped`, and rejects cycles.
    /// Called by both parsers once everything is declared.
    pub fn finish(&mut self) -> Result<(), InputError> {
        // `ansible_group_priority` is a property of the group, not a var (as in Ansible).
        for g in self.groups.values_mut() {
            if let Some(node) = g.vars.shift_remove("ansible_group_priority") {
                let p = node.scalar_string().and_then(|s| s.trim().parse::<i64>().ok());
                g.priority = Some(p.ok_or_else(|| node.type_error("ansible_group_priority", "an integer"))?);
            }
        }
        for h in self.hosts.values() {
            check_host_name(&h.name)
                .map_err(|m| InputError::at(h.span, format!("invalid host name `{}`: {m}", h.name.escape_debug()), m))?;
        }
        let has_parent: HashSet<String> = self.groups.values().flat_map(|g| g.children.iter().cloned()).collect();
        let in_group: HashSet<String> =
            self.groups.values().filter(|g| g.name != ALL && g.name != UNGROUPED).flat_map(|g| g.hosts.iter().cloned()).collect();
        let ungrouped: Vec<String> = self.hosts.keys().filter(|h| !in_group.contains(*h)).cloned().collect();
        // `ungrouped` is only shown under `all` when something is in it, as Ansible does.
        let tops: Vec<String> = self
            .groups
            .keys()
            .filter(|n| *n != ALL && !has_parent.contains(*n) && (*n != UNGROUPED || !ungrouped.is_empty()))
            .cloned()
            .collect();
        for t in tops {
            self.add_child(ALL, &t);
        }
        let all_hosts: Vec<String> = self.hosts.keys().cloned().collect();
        self.groups[UNGROUPED].hosts = ungrouped;
        self.groups[ALL].hosts = all_hosts;
        self.check_cycles()
    }

    fn check_cycles(&self) -> Result<(), InputError> {
        // Iterative DFS with colours (no recursion: 20,000 nested groups must not overflow the
        // stack); the error names the whole loop.
        let idx: HashMap<&str, usize> = self.groups.keys().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
        let children: Vec<Vec<usize>> =
            self.groups.values().map(|g| g.children.iter().filter_map(|c| idx.get(c.as_str()).copied()).collect()).collect();
        // 0: unvisited, 1: on the current path, 2: done.
        let mut colour = vec![0u8; children.len()];
        for root in 0..children.len() {
            if colour[root] != 0 {
                continue;
            }
            let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
            colour[root] = 1;
            while let Some(&mut (node, ref mut next)) = stack.last_mut() {
                if let Some(&c) = children[node].get(*next) {
                    *next += 1;
                    match colour[c] {
                        0 => {
                            colour[c] = 1;
                            stack.push((c, 0));
                        }
                        1 => {
                            let pos = stack.iter().position(|(n, _)| *n == c).unwrap_or(0);
                            let names: Vec<&str> = stack[pos..]
                                .iter()
                                .map(|(n, _)| self.groups[*n].name.as_str())
                                .chain([self.groups[c].name.as_str()])
                                .collect();
                            let msg = format!("groups form a cycle: {}", names.join(" -> "));
                            return Err(match self.groups[c].span {
                                Some(span) => InputError::at(span, msg, "this group contains itself"),
                                None => InputError::plain(msg),
                            });
                        }
                        _ => {}
                    }
                } else {
                    colour[node] = 2;
                    stack.pop();
                }
            }
        }
        Ok(())
    }

    /// Depth of every group below `all` (longest path), used to order group vars: a child group
    /// overrides its parents. Linear: one pass in topological order.
    pub fn depths(&self) -> BTreeMap<String, usize> {
        let idx: HashMap<&str, usize> = self.groups.keys().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
        let mut indegree = vec![0usize; self.groups.len()];
        for g in self.groups.values() {
            for c in &g.children {
                if let Some(&i) = idx.get(c.as_str()) {
                    indegree[i] += 1;
                }
            }
        }
        let mut depth = vec![0usize; self.groups.len()];
        let mut queue: Vec<usize> = (0..self.groups.len()).filter(|i| indegree[*i] == 0).collect();
        while let Some(i) = queue.pop() {
            for c in &self.groups[i].children {
                let Some(&ci) = idx.get(c.as_str()) else { continue };
                depth[ci] = depth[ci].max(depth[i] + 1);
                indegree[ci] -= 1;
                if indegree[ci] == 0 {
                    queue.push(ci);
                }
            }
        }
        self.groups.keys().cloned().zip(depth).collect()
    }

    /// Every group `host` belongs to, directly or through a child group, in Ansible's order:
    /// by depth, then `ansible_group_priority`, then name. The order in which their vars apply.
    pub fn host_groups(&self, host: &str) -> Vec<String> {
        let mut parents: HashMap<&str, Vec<&str>> = HashMap::new();
        for g in self.groups.values() {
            for c in &g.children {
                parents.entry(c.as_str()).or_default().push(g.name.as_str());
            }
        }
        let mut member: HashSet<&str> = HashSet::new();
        let mut stack: Vec<&str> = self.groups.values().filter(|g| g.hosts.iter().any(|h| h == host)).map(|g| g.name.as_str()).collect();
        stack.push(ALL);
        while let Some(g) = stack.pop() {
            if member.insert(g) {
                stack.extend(parents.get(g).into_iter().flatten().copied());
            }
        }
        let depth = self.depths();
        let mut groups: Vec<String> = member.into_iter().map(str::to_string).collect();
        let key = |g: &String| (depth.get(g).copied().unwrap_or(0), self.groups.get(g).and_then(|x| x.priority).unwrap_or(1));
        groups.sort_by(|a, b| key(a).cmp(&key(b)).then_with(|| a.cmp(b)));
        groups
    }

    /// The hosts of every group (including descendants'), in inventory order: Ansible's
    /// `groups` var. Linear in hosts times their groups, not groups squared.
    pub fn all_group_hosts(&self) -> IndexMap<String, Vec<String>> {
        let mut out: IndexMap<String, Vec<String>> = self.groups.keys().map(|g| (g.clone(), Vec::new())).collect();
        for h in self.hosts.keys() {
            for g in self.host_groups(h) {
                if let Some(v) = out.get_mut(&g) {
                    v.push(h.clone());
                }
            }
        }
        out
    }

    /// All hosts of `group`, including those of its descendants, in inventory order.
    pub fn group_hosts(&self, group: &str) -> Vec<String> {
        let mut seen = HashSet::new();
        let mut stack = vec![group.to_string()];
        let mut set = HashSet::new();
        while let Some(g) = stack.pop() {
            if !seen.insert(g.clone()) {
                continue;
            }
            if let Some(grp) = self.groups.get(&g) {
                set.extend(grp.hosts.iter().cloned());
                stack.extend(grp.children.iter().cloned());
            }
        }
        self.hosts.keys().filter(|h| set.contains(*h)).cloned().collect()
    }
}

/// Reads an inventory file, choosing the parser by content: YAML unless it looks like INI.
pub fn load(path: &Path) -> Result<Inventory, InputError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| InputError::plain(format!("cannot read inventory {}: {e}", crate::source::display_path(path))))?;
    let id = crate::source::register(path, text.clone());
    if ini::looks_like_ini(path, &text) {
        ini::parse(path, id, &text)
    } else {
        let node = crate::yaml::parse(id, &text)?;
        yaml::from_node(path, &node)
    }
}

/// Finds the inventory: the given path, else `inventory.yaml`, else `inventory.yml`.
pub fn locate(given: Option<&Path>) -> Result<PathBuf, InputError> {
    if let Some(p) = given {
        if p.exists() {
            return Ok(p.to_path_buf());
        }
        return Err(InputError::plain(format!("inventory {} does not exist", p.display())));
    }
    for candidate in ["inventory.yaml", "inventory.yml"] {
        if Path::new(candidate).exists() {
            return Ok(PathBuf::from(candidate));
        }
    }
    Err(InputError::plain("no inventory.yaml or inventory.yml in the current directory")
        .with_help("pass one with -i PATH (see inventory.example.yaml)"))
}

/// Host names become file and unit names (`certs/server/<host>.pem`): refuse those that would
/// leave their directory or confuse a command line.
pub fn check_host_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty");
    }
    if name == "." || name == ".." || name.contains('/') || name.contains('\\') {
        return Err("a host name cannot be a path");
    }
    if name.starts_with('-') {
        return Err("a host name cannot start with `-`");
    }
    if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("a host name cannot contain spaces or control characters");
    }
    Ok(())
}

/// The most names one host pattern may expand to: far beyond any real fleet, small enough to
/// answer at once.
pub const MAX_RANGE_HOSTS: u64 = 100_000;

/// Expands Ansible host ranges such as `web[01:03]` or `db-[a:c]`, with an optional
/// `[start:end:stride]`. A name without brackets expands to itself.
pub fn expand_host_range(name: &str) -> Result<Vec<String>, String> {
    let Some(open) = name.find('[') else { return Ok(vec![name.to_string()]) };
    let close = name[open..].find(']').map(|c| open + c).ok_or_else(|| format!("unclosed `[` in host pattern `{name}`"))?;
    let (prefix, inner, rest) = (&name[..open], &name[open + 1..close], &name[close + 1..]);
    let parts: Vec<&str> = inner.split(':').collect();
    if parts.len() < 2 || parts.len() > 3 {
        return Err(format!("host range `[{inner}]` must be [start:end] or [start:end:stride]"));
    }
    let stride: usize = match parts.get(2) {
        Some(s) => s.parse().ok().filter(|s| *s > 0).ok_or_else(|| format!("bad stride `{s}` in `{name}`"))?,
        None => 1,
    };
    let (start, end) = (parts[0], parts[1]);
    let items: Vec<String> = if let (Ok(a), Ok(b)) = (start.parse::<u64>(), end.parse::<u64>()) {
        if a > b {
            return Err(format!("host range `[{inner}]` ends before it starts"));
        }
        if (b - a) / stride as u64 >= MAX_RANGE_HOSTS {
            return Err(format!("host range `[{inner}]` expands to more than {MAX_RANGE_HOSTS} hosts"));
        }
        let width = if start.len() > 1 && start.starts_with('0') { start.len() } else { 0 };
        (a..=b).step_by(stride).map(|i| format!("{i:0width$}")).collect()
    } else if start.len() == 1 && end.len() == 1 && start <= end {
        let (a, b) = (start.as_bytes()[0], end.as_bytes()[0]);
        (a..=b).step_by(stride).map(|c| (c as char).to_string()).collect()
    } else {
        return Err(format!("host range `[{inner}]` must be numbers or single letters"));
    };
    let tails = expand_host_range(rest)?;
    if (items.len() as u64).saturating_mul(tails.len() as u64) > MAX_RANGE_HOSTS {
        return Err(format!("host pattern `{name}` expands to more than {MAX_RANGE_HOSTS} hosts"));
    }
    let mut out = Vec::new();
    for item in items {
        for tail in &tails {
            out.push(format!("{prefix}{item}{tail}"));
        }
    }
    Ok(out)
}

pub use crate::source::did_you_mean;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ranges_expand_like_ansible() {
        assert_eq!(expand_host_range("web[01:03]").unwrap(), ["web01", "web02", "web03"]);
        assert_eq!(expand_host_range("db-[a:c].lan").unwrap(), ["db-a.lan", "db-b.lan", "db-c.lan"]);
        assert_eq!(expand_host_range("n[0:4:2]").unwrap(), ["n0", "n2", "n4"]);
        assert_eq!(expand_host_range("r[1:2]-[a:b]").unwrap(), ["r1-a", "r1-b", "r2-a", "r2-b"]);
        assert!(expand_host_range("bad[3:1]").is_err());
        assert!(expand_host_range("bad[1:").is_err());
    }

    #[test]
    fn suggestions() {
        assert_eq!(did_you_mean("chidren", ["hosts", "vars", "children"]), Some("children"));
        assert_eq!(did_you_mean("zzz", ["hosts", "vars", "children"]), None);
    }
}
