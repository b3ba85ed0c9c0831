//! The user's repo as `provision` sees it: the inventory, the vars files beside it, `-e` extra
//! vars and the template environment, loaded once per command.
//!
//! This is where the inventory's shape (groups, depths, priorities) becomes the ordered list of
//! var layers [`crate::vars`] resolves; vars itself does not know the inventory.

use std::path::Path;

use indexmap::IndexMap;
use minijinja::Environment;
use serde_json::Value as Json;

use crate::error::{Error, InputError, Result, from_many};
use crate::inventory::{self, ALL, Inventory, UNGROUPED, limit};
use crate::transport::connection::{self, Connection};
use crate::vars::resolve::{HostInput, HostVars, resolve_host};
use crate::vars::schema::VarSpec;
use crate::vars::{self, Layer, VarMap, VarSources, schema};

/// What the roles contribute to loading: their defaults and the types of the vars they read.
/// Passed in by the caller so that loading a project does not depend on the roles.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// Role defaults (lowest precedence).
    pub defaults: VarMap,
    /// Vars the roles read, with their types.
    pub specs: Vec<VarSpec>,
    /// The var types a host reads, given its vars (its roles'); `None`: every spec.
    pub scope: Option<fn(&HostVars) -> Vec<VarSpec>>,
}

/// How strictly a host's vars must render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strictness {
    /// Only the connection vars (commands that only connect).
    Connection,
    /// The vars of the host's own roles (a host the command acts on).
    Roles,
    /// The vars of the host's own roles except secrets (a host the run reads but does not act
    /// on: another host never reads its secrets).
    RolesButSecrets,
}

/// Everything loaded from the user's repo.
pub struct Project {
    /// The inventory.
    pub inventory: Inventory,
    /// Vars files, extra vars and role defaults.
    pub sources: VarSources,
    /// Template environment (anchored at the inventory's directory).
    pub env: Environment<'static>,
    /// Types of the vars provision reads: connection vars and the roles' vars.
    pub specs: Vec<VarSpec>,
    /// Warnings found while loading (already printed to stderr).
    pub warnings: Vec<String>,
    /// The var types a host reads, given its vars (from the catalog).
    scope: Option<fn(&HostVars) -> Vec<VarSpec>>,
    /// `hostvars`: every host's merged vars as written (templates in them are not rendered).
    hostvars: Json,
    /// `groups`: the hosts of every group, computed once.
    groups_var: Json,
}

/// A selected host with its resolved vars and connection settings.
#[derive(Debug, Clone)]
pub struct HostSpec {
    /// Resolved vars.
    pub vars: HostVars,
    /// How to reach it.
    pub connection: Connection,
}

/// Prints a warning to stderr, secrets redacted.
fn warn(msg: &str) {
    eprintln!("warning: {}", crate::vars::secret::Redactor::redact(msg));
}

impl Project {
    /// Loads the inventory (`-i` or the default), its vars files and the `-e` extra vars, with
    /// the role catalog (the roles' defaults and var types; the caller passes it, so the project
    /// knows nothing of roles).
    pub fn load_with(inventory_path: Option<&Path>, extra_vars: &[String], catalog: Catalog) -> Result<Project> {
        let path = inventory::locate(inventory_path)?;
        let inventory = inventory::load(&path)?;
        let groups: Vec<String> = inventory.groups.keys().cloned().collect();
        let hosts: Vec<String> = inventory.hosts.keys().cloned().collect();
        let found = vars::files::load(&inventory.dir(), &groups, &hosts).map_err(from_many)?;
        let mut sources = found.sources;
        sources.extra = vars::extra::parse(extra_vars)?;
        sources.defaults = catalog.defaults;
        let env = vars::template::environment(&inventory.dir());
        let specs: Vec<VarSpec> = schema::CONNECTION.iter().copied().chain(catalog.specs.iter().copied()).collect();
        for w in &found.warnings {
            warn(w);
        }
        let mut project = Project {
            inventory,
            sources,
            env,
            specs,
            warnings: found.warnings,
            scope: catalog.scope,
            hostvars: Json::Null,
            groups_var: Json::Null,
        };
        project.hostvars = project.raw_hostvars();
        project.groups_var = serde_json::to_value(project.inventory.all_group_hosts()).unwrap_or(Json::Null);
        Ok(project)
    }

    /// Host names selected by `--limit` (every host when `None`).
    pub fn select(&self, pattern: Option<&str>) -> Result<Vec<String>> {
        match pattern {
            Some(p) => Ok(limit::select(&self.inventory, p)?),
            None if self.inventory.hosts.is_empty() => {
                Err(InputError::plain(format!("{} has no hosts", crate::source::display_path(&self.inventory.path))).into())
            }
            None => Ok(self.inventory.hosts.keys().cloned().collect()),
        }
    }

    /// The layers that apply to `host`, lowest precedence first, in Ansible's order: role
    /// defaults, the inventory's vars of `all` then of the host's other groups, `group_vars/all`
    /// then the other groups' files, the host's inventory vars, `host_vars/`, `-e`.
    pub fn layers_for(&self, host: &str) -> Vec<Layer> {
        let inv = &self.inventory;
        let groups = inv.host_groups(host);
        let mut layers = vec![Layer { label: "role defaults".into(), vars: self.sources.defaults.clone() }];
        for g in &groups {
            let vars = &inv.groups[g].vars;
            if !vars.is_empty() {
                layers.push(Layer { label: format!("inventory vars of group {g}"), vars: vars.clone() });
            }
        }
        for g in &groups {
            layers.extend(self.sources.group_files.get(g).into_iter().flatten().cloned());
        }
        if let Some(h) = inv.hosts.get(host).filter(|h| !h.vars.is_empty()) {
            layers.push(Layer { label: format!("inventory vars of host {host}"), vars: h.vars.clone() });
        }
        layers.extend(self.sources.host_files.get(host).into_iter().flatten().cloned());
        layers.extend(self.sources.extra.iter().cloned());
        layers
    }

    /// Every host's merged vars, unrendered, for `hostvars[...]` in templates.
    fn raw_hostvars(&self) -> Json {
        let hosts = self.inventory.hosts.keys().map(|h| {
            let mut vars: serde_json::Map<String, Json> = vars::merge(&self.layers_for(h))
                .into_iter()
                // Secrets stay out: a template reading another host's secret would not know it is one.
                .filter(|(k, (n, _))| !crate::vars::secret::is_secret_node(k, n))
                .map(|(k, (n, _))| (k, n.to_json()))
                .collect();
            vars.insert("inventory_hostname".into(), Json::String(h.clone()));
            (h.clone(), Json::Object(vars))
        });
        Json::Object(hosts.collect())
    }

    /// Ansible's magic vars for `host`.
    fn magic(&self, host: &str, groups: &[String]) -> IndexMap<String, Json> {
        let inv = &self.inventory;
        let mut magic = IndexMap::new();
        magic.insert("inventory_hostname".to_string(), Json::String(host.to_string()));
        magic.insert("inventory_hostname_short".to_string(), Json::String(host.split('.').next().unwrap_or(host).to_string()));
        let mut names: Vec<String> = groups.iter().filter(|g| *g != ALL).cloned().collect();
        names.sort();
        magic.insert("group_names".to_string(), Json::from(names));
        magic.insert("groups".to_string(), self.groups_var.clone());
        magic.insert("hostvars".to_string(), self.hostvars.clone());
        magic.insert("inventory_dir".to_string(), Json::String(inv.dir().display().to_string()));
        magic.insert("inventory_file".to_string(), Json::String(inv.path.display().to_string()));
        magic.insert("playbook_dir".to_string(), Json::String(inv.dir().display().to_string()));
        magic
    }

    /// Whether a var is one provision reads (its template errors are errors).
    fn is_known(&self, name: &str) -> bool {
        self.specs.iter().any(|s| s.name == name) || connection::FAMILIES.iter().any(|(_, names)| names.contains(&name))
    }

    /// Resolves the vars of one host (no type checks).
    pub fn resolve_vars(&self, host: &str) -> Result<HostVars, InputError> {
        self.resolve_vars_with(host, &|name| self.is_known(name))
    }

    fn resolve_vars_with(&self, host: &str, strict: &dyn Fn(&str) -> bool) -> Result<HostVars, InputError> {
        let all = self.inventory.host_groups(host);
        let groups: Vec<String> = all.iter().filter(|g| *g != ALL && *g != UNGROUPED).cloned().collect();
        let input = HostInput { host: host.to_string(), magic: self.magic(host, &all), groups, layers: self.layers_for(host) };
        resolve_host(input, &self.env, strict)
    }

    /// Resolves only what reaching the hosts needs, for commands that only connect (`debug
    /// exec`): connection vars are strict; any other var that cannot be rendered (a secret from an
    /// unset `env()`) is kept as written, so a missing secret is an error only where it is used.
    pub fn connections(&self, hosts: &[String]) -> Result<Vec<HostSpec>> {
        self.resolve_with(hosts, Strictness::Connection)
    }

    /// Resolves and type-checks the vars of each host; reports every error found, not just the
    /// first (the same bad value shared by several hosts is reported once). A secret must render
    /// only where the host's own roles read it: a slave does not need the masters' token.
    pub fn resolve(&self, hosts: &[String]) -> Result<Vec<HostSpec>> {
        self.resolve_with(hosts, Strictness::Roles)
    }

    /// Resolves hosts a run reads but does not act on (outside `--limit`): as [`Self::resolve`],
    /// but a secret that cannot be rendered is kept as written (no other host reads it), so
    /// `plan -l slave` works with the masters' `GITLAB_TOKEN` unset.
    pub fn resolve_beside(&self, hosts: &[String]) -> Result<Vec<HostSpec>> {
        self.resolve_with(hosts, Strictness::RolesButSecrets)
    }

    /// Selects with `--limit` and resolves the selected hosts strictly, the others of the
    /// inventory with [`Self::resolve_beside`]: (selected, every host).
    pub fn hosts_and_fleet(&self, pattern: Option<&str>) -> Result<(Vec<HostSpec>, Vec<HostSpec>)> {
        let selected = self.select(pattern)?;
        let hosts = self.resolve(&selected)?;
        let others: Vec<String> = self.inventory.hosts.keys().filter(|h| !selected.contains(h)).cloned().collect();
        let others = self.resolve_beside(&others)?;
        let all =
            self.inventory.hosts.keys().filter_map(|name| hosts.iter().chain(&others).find(|h| &h.vars.host == name).cloned()).collect();
        Ok((hosts, all))
    }

    /// The var types `host` reads and so must render (connection vars always).
    fn host_specs(&self, host: &str, strictness: Strictness) -> Result<Vec<VarSpec>, InputError> {
        let Some(scope) = self.scope.filter(|_| strictness != Strictness::Connection) else {
            return Ok(match strictness {
                Strictness::Connection => schema::CONNECTION.to_vec(),
                _ => self.specs.clone(),
            });
        };
        // The roles are known only from the vars (`roles`, groups): read them leniently first.
        let lenient = self.resolve_vars_with(host, &|_| false)?;
        Ok(schema::CONNECTION.iter().copied().chain(scope(&lenient)).collect())
    }

    fn resolve_with(&self, hosts: &[String], strictness: Strictness) -> Result<Vec<HostSpec>> {
        let mut out = Vec::new();
        let mut errors: Vec<InputError> = Vec::new();
        let push = |e: InputError, errors: &mut Vec<InputError>| {
            if !errors.iter().any(|x| x.span() == e.span() && x.message() == e.message()) {
                errors.push(e);
            }
        };
        let mut warned = std::collections::HashSet::new();
        for h in hosts {
            let specs = match self.host_specs(h, strictness) {
                Ok(s) => s,
                Err(e) => {
                    push(e, &mut errors);
                    continue;
                }
            };
            let in_scope =
                |name: &str| specs.iter().any(|s| s.name == name) || connection::FAMILIES.iter().any(|(_, names)| names.contains(&name));
            // A secret must render only where the host's roles read it (a slave does not need the
            // masters' token); other vars provision knows stay strict, so a broken value is found
            // on every host it is written for.
            let secret = crate::vars::secret::is_secret_name;
            let strict = |name: &str| match strictness {
                Strictness::Connection => in_scope(name),
                Strictness::Roles => in_scope(name) || (self.is_known(name) && !secret(name)),
                Strictness::RolesButSecrets => !secret(name) && self.is_known(name),
            };
            match self.resolve_vars_with(h, &strict) {
                Ok(mut hv) => {
                    // Types are checked where the var rendered (a secret left as written is not read).
                    let checked: Vec<VarSpec> = match strictness {
                        Strictness::Connection => specs.clone(),
                        _ => self
                            .specs
                            .iter()
                            .filter(|s| in_scope(s.name) || hv.get(s.name).is_some_and(|r| r.note.is_none()))
                            .copied()
                            .collect(),
                    };
                    for e in schema::check(&mut hv, &checked) {
                        push(e, &mut errors);
                    }
                    for w in self.typo_warnings(&hv) {
                        if warned.insert(w.clone()) {
                            warn(&w);
                        }
                    }
                    match Connection::from_vars(&hv, &self.inventory.dir()) {
                        Ok(connection) => out.push(HostSpec { vars: hv, connection }),
                        Err(e) => push(e, &mut errors),
                    }
                }
                Err(e) => push(e, &mut errors),
            }
        }
        if errors.is_empty() { Ok(out) } else { Err(from_many(errors)) }
    }

    /// A var one edit away from a var provision reads is probably a typo of it.
    pub fn typo_warnings(&self, hv: &HostVars) -> Vec<String> {
        let known: Vec<&str> = self
            .specs
            .iter()
            .map(|s| s.name)
            .chain(connection::FAMILIES.iter().flat_map(|(_, n)| n.iter().copied()))
            .chain(connection::RETIRED.iter().map(|(old, _)| *old))
            .collect();
        let mut out = Vec::new();
        for (name, r) in &hv.vars {
            if name.len() < 4 || known.contains(&name.as_str()) || r.rank == 0 {
                continue;
            }
            if let Some(k) = known.iter().find(|k| crate::source::edit_distance(name, k) == 1) {
                let k = connection::RETIRED.iter().find(|(old, _)| old == k).map_or(*k, |(_, new)| *new);
                out.push(format!("{}: `{name}` is not a var provision reads; did you mean `{k}`?", r.span.location()));
            }
        }
        out
    }

    /// Vars that belong to no host (the `all` group's, role defaults and `-e`), e.g. `cloud`,
    /// which describes hosts that may not exist yet.
    pub fn global_vars(&self) -> Result<HostVars, InputError> {
        let layers = vec![
            Layer { label: "role defaults".into(), vars: self.sources.defaults.clone() },
            Layer { label: "inventory vars of group all".into(), vars: self.inventory.groups[ALL].vars.clone() },
        ];
        let layers = layers
            .into_iter()
            .chain(self.sources.group_files.get(ALL).into_iter().flatten().cloned())
            .chain(self.sources.extra.iter().cloned())
            .collect();
        let input = HostInput { host: "(no host)".into(), groups: Vec::new(), layers, magic: self.magic("(no host)", &[ALL.to_string()]) };
        resolve_host(input, &self.env, &|name| self.is_known(name))
    }

    /// Selects with `--limit` and resolves in one go.
    pub fn hosts(&self, pattern: Option<&str>) -> Result<Vec<HostSpec>, Error> {
        let names = self.select(pattern)?;
        self.resolve(&names)
    }
}
