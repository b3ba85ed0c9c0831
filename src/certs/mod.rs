//! Certificates for the Docker TLS daemons: a CA that never leaves this machine, a server
//! certificate per TLS host, and a client certificate for the runner.
//!
//! Layout of the certs directory (default `certs/` beside the inventory):
//! `ca.pem`, `ca-key.pem`, `server/<host>.pem`, `server/<host>-key.pem`, `client/cert.pem`,
//! `client/key.pem`. Keys are 0600 and every file is written atomically. Whether a certificate
//! must be re-issued is decided by reading it (SANs, expiry, issuer, key), never by comparing
//! bytes: ECDSA signatures differ on every run.

mod inspect;
mod issue;

use std::path::{Path, PathBuf};

pub use inspect::{CertInfo, inspect};

/// Validity and renewal settings.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Validity of server and client certificates, in days.
    pub leaf_days: u32,
    /// Validity of the CA, in days.
    pub ca_days: u32,
    /// Re-issue a leaf certificate that expires within this many days.
    pub renew_before_days: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Policy { leaf_days: 825, ca_days: 3650, renew_before_days: 30 }
    }
}

/// A server certificate the inventory asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerSpec {
    /// Inventory name of the host.
    pub host: String,
    /// Names and addresses the certificate must cover.
    pub sans: Vec<String>,
}

/// Certificate errors.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file exists but is not what it should be.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// rcgen could not build a certificate.
    #[error("cannot create a certificate: {0}")]
    Generate(String),
}

/// What happened to one certificate.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Valid and kept.
    Kept,
    /// Created because it was missing.
    Created,
    /// Re-issued, with the reason.
    Reissued(String),
}

/// The certs directory.
#[derive(Debug, Clone)]
pub struct CertsDir {
    /// Its path.
    pub root: PathBuf,
}

impl CertsDir {
    /// The directory at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        CertsDir { root: root.into() }
    }

    /// CA certificate path.
    pub fn ca_cert(&self) -> PathBuf {
        self.root.join("ca.pem")
    }
    /// CA key path.
    pub fn ca_key(&self) -> PathBuf {
        self.root.join("ca-key.pem")
    }
    /// Server certificate of `host`.
    pub fn server_cert(&self, host: &str) -> PathBuf {
        self.root.join("server").join(format!("{host}.pem"))
    }
    /// Server key of `host`.
    pub fn server_key(&self, host: &str) -> PathBuf {
        self.root.join("server").join(format!("{host}-key.pem"))
    }
    /// Client certificate.
    pub fn client_cert(&self) -> PathBuf {
        self.root.join("client").join("cert.pem")
    }
    /// Client key.
    pub fn client_key(&self) -> PathBuf {
        self.root.join("client").join("key.pem")
    }

    /// Makes sure the CA, a server certificate for each spec and the client certificate exist
    /// and are valid; `rotate` re-issues every leaf (never the CA). Returns what happened, by
    /// certificate name.
    pub fn ensure(&self, servers: &[ServerSpec], policy: Policy, rotate: bool) -> Result<Vec<(String, Outcome)>, CertError> {
        let mut out = Vec::new();
        let ca = issue::ensure_ca(self, policy)?;
        out.push(("ca".to_string(), ca.outcome.clone()));
        for s in servers {
            let why = if rotate {
                Some("rotation requested".to_string())
            } else {
                self.leaf_problem(&self.server_cert(&s.host), &self.server_key(&s.host), &s.sans, &ca, policy)?
            };
            out.push((format!("server {}", s.host), issue::leaf(self, &ca, issue::Leaf::Server(s), policy, why)?));
        }
        let why = if rotate {
            Some("rotation requested".to_string())
        } else {
            self.leaf_problem(&self.client_cert(), &self.client_key(), &[], &ca, policy)?
        };
        out.push(("client".to_string(), issue::leaf(self, &ca, issue::Leaf::Client, policy, why)?));
        Ok(out)
    }

    /// Why an existing leaf must be re-issued (`Some("missing")` when absent), or `None`.
    fn leaf_problem(&self, cert: &Path, key: &Path, sans: &[String], ca: &issue::Ca, policy: Policy) -> Result<Option<String>, CertError> {
        if !cert.exists() || !key.exists() {
            return Ok(Some("missing".into()));
        }
        let info = inspect(cert)?;
        Ok(info.problem(sans, &ca.cert_pem, key, policy.renew_before_days))
    }
}

/// The SANs a server certificate for a host needs: its inventory name, addresses, and loopback.
pub fn server_sans(host: &str, address: &str, private_address: &str) -> Vec<String> {
    let mut sans = Vec::new();
    for s in [host, address, private_address, "127.0.0.1", "localhost"] {
        if !s.is_empty() && !sans.iter().any(|x| x == s) {
            sans.push(s.to_string());
        }
    }
    sans
}

/// Writes `data` atomically (temp file + rename) with `mode`.
pub(crate) fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), CertError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| CertError::Io { path: path.to_path_buf(), source };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let tmp = dir.join(format!(".{}.tmp-{}", path.file_name().and_then(|n| n.to_str()).unwrap_or("cert"), std::process::id()));
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp).map_err(io)?;
    f.write_all(data).and_then(|_| f.sync_all()).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}
