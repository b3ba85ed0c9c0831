//! Settings several roles share: local image archives, where the docker client certificates
//! go, and the certificate policy. They belong to no single role.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::vars::schema::{Kind, VarSpec};

/// Defaults of the shared settings (YAML, lowest precedence, as shown in the README).
pub const DEFAULTS: &str = "image_archives: {}\n\
                            docker_client_cert_path: /etc/gitlab-runner/docker-certs\n\
                            restart_drain_timeout: 1800\n\
                            certs_dir: certs\n\
                            cert_leaf_days: 825\n\
                            cert_ca_days: 3650\n\
                            cert_renew_before_days: 30\n";

/// Types of the shared settings.
pub const SPECS: &[VarSpec] = &[
    VarSpec { name: "image_archives", kind: Kind::Map, doc: "image reference → local `docker save` tar, loaded instead of pulled" },
    VarSpec { name: "docker_client_cert_path", kind: Kind::Str, doc: "directory for ca.pem, cert.pem and key.pem of the docker client" },
    VarSpec {
        name: "restart_drain_timeout",
        kind: Kind::Int { min: 0, max: 86400 },
        doc: "seconds a docker restart without live-restore, or a dind recreation, waits for runner-* job containers (default 1800; 0: at once)",
    },
    VarSpec { name: "certs_dir", kind: Kind::Str, doc: "where certificates are kept on this machine (relative: beside the inventory)" },
    VarSpec { name: "cert_leaf_days", kind: Kind::Int { min: 1, max: 3650 }, doc: "validity of server and client certificates, in days" },
    VarSpec { name: "cert_ca_days", kind: Kind::Int { min: 1, max: 36500 }, doc: "validity of a new CA, in days" },
    VarSpec {
        name: "cert_renew_before_days",
        kind: Kind::Int { min: 0, max: 3650 },
        doc: "re-issue certificates expiring within this many days",
    },
];

/// The shared settings of one host (the certificate policy is read by `provision certs`).
#[derive(Debug, Clone, Deserialize)]
pub struct CommonVars {
    /// Image reference → local `docker save` archive.
    pub image_archives: BTreeMap<String, String>,
    /// Directory of the docker client's `ca.pem`, `cert.pem`, `key.pem`.
    pub docker_client_cert_path: String,
    /// Seconds a restart or a dind recreation waits for job containers (0: at once).
    pub restart_drain_timeout: u32,
}

/// The certificate settings (`provision certs`, and `apply` before it builds anything), read once
/// like role vars; their defaults are only in [`DEFAULTS`].
#[derive(Debug, Clone, Deserialize)]
pub struct CertVars {
    /// Where certificates are kept on this machine (relative: beside the inventory).
    pub certs_dir: String,
    /// Validity of server and client certificates, in days.
    pub cert_leaf_days: u32,
    /// Validity of a new CA, in days.
    pub cert_ca_days: u32,
    /// Re-issue certificates expiring within this many days.
    pub cert_renew_before_days: u32,
}

impl CertVars {
    /// Reads them from a host's vars.
    pub fn read(vars: &crate::vars::resolve::HostVars) -> Result<Self, crate::error::InputError> {
        super::typed::from_vars(vars, SPECS)
    }
}
