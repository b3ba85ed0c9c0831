//! The user's repo as `provision` sees it: the inventory, the vars files beside it, `-e` extra
//! vars and the template environment, loaded once per command.

use std::path::Path;

use minijinja::Environment;

use crate::error::{Error, InputError, Result, from_many};
use crate::inventory::connection::Connection;
use crate::inventory::{self, Inventory, limit};
use crate::vars::resolve::{HostVars, resolve_host};
use crate::vars::{self, VarSources, schema};

/// Everything loaded from the user's repo.
pub struct Project {
    /// The inventory.
    pub inventory: Inventory,
    /// Vars files, extra vars and role defaults.
    pub sources: VarSources,
    /// Template environment (anchored at the inventory's directory).
    pub env: Environment<'static>,
}

/// A selected host with its resolved vars and connection settings.
#[derive(Debug, Clone)]
pub struct HostSpec {
    /// Resolved vars.
    pub vars: HostVars,
    /// How to reach it.
    pub connection: Connection,
}

impl Project {
    /// Loads the inventory (`-i` or the default), its vars files and the `-e` extra vars.
    pub fn load(inventory_path: Option<&Path>, extra_vars: &[String]) -> Result<Project> {
        let path = inventory::locate(inventory_path)?;
        let inventory = inventory::load(&path)?;
        let mut sources = vars::files::load(&inventory).map_err(from_many)?;
        sources.extra = vars::extra::parse(extra_vars)?;
        sources.defaults = crate::roles::defaults()?;
        let env = vars::template::environment(&inventory.dir());
        Ok(Project { inventory, sources, env })
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

    /// Resolves and type-checks the vars of each host; reports every error found, not just the
    /// first (the same bad value shared by several hosts is reported once).
    pub fn resolve(&self, hosts: &[String]) -> Result<Vec<HostSpec>> {
        let mut out = Vec::new();
        let mut errors: Vec<InputError> = Vec::new();
        let specs: Vec<schema::VarSpec> = schema::CONNECTION.iter().copied().chain(crate::roles::specs()).collect();
        let push = |e: InputError, errors: &mut Vec<InputError>| {
            if !errors.iter().any(|x| x.span() == e.span() && x.message() == e.message()) {
                errors.push(e);
            }
        };
        for h in hosts {
            match resolve_host(&self.inventory, &self.sources, h, &self.env) {
                Ok(mut hv) => {
                    for e in schema::check(&mut hv, &specs) {
                        push(e, &mut errors);
                    }
                    let connection = Connection::from_vars(&hv, &self.inventory.dir());
                    out.push(HostSpec { vars: hv, connection });
                }
                Err(e) => push(e, &mut errors),
            }
        }
        if errors.is_empty() { Ok(out) } else { Err(from_many(errors)) }
    }

    /// Vars that belong to no host (the `all` group's, role defaults and `-e`), e.g. `cloud`,
    /// which describes hosts that may not exist yet.
    pub fn global_vars(&self) -> Result<HostVars, InputError> {
        const NAME: &str = "(no host)";
        let mut inv = self.inventory.clone();
        let id = crate::source::register_named(NAME.into(), String::new());
        inv.hosts
            .insert(NAME.into(), inventory::Host { name: NAME.into(), span: crate::source::Span::new(id, 0, 0), vars: Default::default() });
        resolve_host(&inv, &self.sources, NAME, &self.env)
    }

    /// Selects with `--limit` and resolves in one go.
    pub fn hosts(&self, pattern: Option<&str>) -> Result<Vec<HostSpec>, Error> {
        let names = self.select(pattern)?;
        self.resolve(&names)
    }
}
