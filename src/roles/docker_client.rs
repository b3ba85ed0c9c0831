//! The client side of Docker TLS: the CA and this master's own client certificate, installed where
//! the runner's `tls_cert_path` points (as `ca.pem`, `cert.pem`, `key.pem`, docker's names).
//! The directory is a shared setting (`docker_client_cert_path`): the runner role reads it too.

use super::owned::Owned;
use super::topology::HostFacts;
use super::{Role, RoleContext};
use crate::engine::{Desired, Step};
use crate::error::InputError;
use crate::resources::directory::Directory;
use crate::resources::file::File;

/// The docker_client_certs role.
pub const ROLE: Role = Role { name: "docker_client_certs", defaults: "", specs: &[], build, owns };

fn build(ctx: &RoleContext, desired: &mut Desired) -> Result<(), InputError> {
    let dir = &ctx.facts.common.docker_client_cert_path;
    let certs = ctx.certs;
    desired.steps.push(Step::new(Directory::new(dir).mode(0o700)));
    desired.steps.push(Step::new(File::new(&format!("{dir}/ca.pem"), ctx.read_cert(certs.ca_cert())?)));
    desired.steps.push(Step::new(File::new(&format!("{dir}/cert.pem"), ctx.read_cert(certs.client_cert(ctx.name()))?)));
    desired.steps.push(Step::new(File::new(&format!("{dir}/key.pem"), ctx.read_cert(certs.client_key(ctx.name()))?).mode(0o600).secret()));
    Ok(())
}

/// Certificates only: nothing to show in `debug`.
fn owns(_: &HostFacts, _: &mut Owned) {}
