//! The build cache servers' keys in `provision certs`: ensured with the certificates (on
//! `apply`, `plan` and `certs generate`), rotated by `provision certs rotate-cache-keys`.

use crate::certs::cache_keys;
use crate::certs::{CertsDir, Outcome};
use crate::cli::Global;
use crate::error::{Error, Result};
use crate::project::{HostSpec, Project};
use crate::roles::cache_server;

/// Makes sure every cache server among `all_hosts` has keys, generating new ones for `rotate`.
pub fn ensure(dir: &mut CertsDir, all_hosts: &[HostSpec], rotate: &[String], dry_run: bool) -> Result<Vec<(String, Outcome)>> {
    let hosts = cache_server::hosts(all_hosts)?;
    cache_keys::ensure(dir, &hosts, rotate, dry_run).map_err(|e| Error::Other(format!("cache server keys: {e}")))
}

/// `certs rotate-cache-keys`: new keys for the cache servers in `--limit` (all without it),
/// after the same confirmation as `certs rotate`. Only the outcome is printed, never a key.
pub fn rotate(g: &Global, project: &Project, hosts: &[HostSpec], yes: bool) -> Result<i32> {
    let limited = project.hosts(g.limit.as_deref())?;
    let rotate = cache_server::hosts(&limited)?;
    if rotate.is_empty() {
        return Err(Error::Other("certs rotate-cache-keys: no cache server (cache_server role) among the hosts".into()));
    }
    crate::confirm::assume_yes(yes);
    let question = format!(
        "generate new keys for the cache servers {}? Servers and runners keep the old ones until the next apply",
        rotate.join(", ")
    );
    crate::confirm::confirm(&question).map_err(|why| Error::Other(format!("certs rotate-cache-keys: {why}; no key was changed")))?;
    let (mut dir, _) = super::certs::ensure(project, hosts, Vec::new(), false)?;
    let outcomes = ensure(&mut dir, hosts, &rotate, false)?;
    super::certs::print_outcomes(&outcomes, true, false);
    Ok(0)
}

/// Registers the keys of every cache server of the inventory with the redactor (best effort:
/// a missing or broken file registers nothing), so output that reads them back from hosts
/// (`debug config` of a master's config.toml, `debug exec`) masks them like other secrets.
pub fn register_known(project: &Project) {
    let Ok(hosts) = project.hosts(None) else { return };
    let Ok((dir, ..)) = super::certs::settings(project, &hosts) else { return };
    for host in cache_server::hosts(&hosts).unwrap_or_default() {
        let _ = cache_keys::read(&dir, &host);
    }
}
