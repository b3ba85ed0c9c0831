//! The client side of Docker TLS: the CA and this master's own client certificate, installed where
//! the runner's `tls_cert_path` points (as `ca.pem`, `cert.pem`, `key.pem`, docker's names).

use super::{Role, RoleContext};
use crate::engine::{Desired, Step};
use crate::error::InputError;
use crate::resources::directory::Directory;
use crate::resources::file::File;
use crate::vars::schema::{Kind, VarSpec};

/// The docker_client_certs role.
pub const ROLE: Role = Role {
    name: "docker_client_certs",
    defaults: "docker_client_cert_path: /etc/gitlab-runner/docker-certs\n",
    specs: &[VarSpec {
        name: "docker_client_cert_path",
        kind: Kind::Str,
        doc: "directory for ca.pem, cert.pem and key.pem of the docker client",
    }],
    build,
};

fn build(ctx: &RoleContext, desired: &mut Desired) -> Result<(), InputError> {
    let dir = ctx.str("docker_client_cert_path");
    let certs = ctx.certs;
    desired.steps.push(Step::new(Directory::new(&dir).mode(0o700)));
    desired.steps.push(Step::new(File::new(&format!("{dir}/ca.pem"), ctx.read_cert(certs.ca_cert())?)));
    desired.steps.push(Step::new(File::new(&format!("{dir}/cert.pem"), ctx.read_cert(certs.client_cert(&ctx.host.vars.host))?)));
    desired
        .steps
        .push(Step::new(File::new(&format!("{dir}/key.pem"), ctx.read_cert(certs.client_key(&ctx.host.vars.host))?).mode(0o600).secret()));
    Ok(())
}
