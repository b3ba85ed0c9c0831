//! Certificates for the Docker TLS daemons: a CA that never leaves this machine, a server
//! certificate per TLS host, and a client certificate per master (a master's key is worth one
//! master: it can be rotated alone, and the daemons' logs name which master connected).
//!
//! Layout of the certs directory (default `certs/` beside the inventory):
//! `ca.pem`, `ca-key.pem`, `server/<host>.pem`, `server/<host>-key.pem`, `client/<host>.pem`,
//! `client/<host>-key.pem`. Keys are 0600, directories 0700, and every file is written through
//! a fresh `create_new` temp file renamed into place. Whether a certificate must be re-issued is
//! decided by reading it (SANs, expiry, issuer, key), never by comparing bytes: ECDSA signatures
//! differ on every run.
//!
//! Check mode (`plan`, `apply --check`) writes nothing: what would be created or re-issued is
//! kept in memory ([`CertsDir::read`] serves it), so the plan shows the files hosts would get.

pub mod cache_keys;
mod inspect;
mod issue;

use std::collections::BTreeMap;
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

// The defaults users get come from the shared settings (`roles::common::DEFAULTS`); this one
// is the library's own, for callers that build a `CertsDir` without vars (tests, `Options`).
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

/// What to do: which leaves to re-issue regardless, and whether to write.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Validity and renewal.
    pub policy: Policy,
    /// Re-issue the server and client certificates of these hosts (`certs rotate`).
    pub rotate: Vec<String>,
    /// Change nothing on disk; keep new files in memory.
    pub dry_run: bool,
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

/// The certs directory, and in check mode the files a real run would write.
#[derive(Debug, Clone)]
pub struct CertsDir {
    /// Its path.
    pub root: PathBuf,
    /// Files a dry run would have written, by path.
    staged: BTreeMap<PathBuf, Vec<u8>>,
}

impl CertsDir {
    /// The directory at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        CertsDir { root: root.into(), staged: BTreeMap::new() }
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
    /// Client certificate of the master `host`.
    pub fn client_cert(&self, host: &str) -> PathBuf {
        self.root.join("client").join(format!("{host}.pem"))
    }
    /// Client key of the master `host`.
    pub fn client_key(&self, host: &str) -> PathBuf {
        self.root.join("client").join(format!("{host}-key.pem"))
    }

    /// A certificate or key: what a dry run would have written, else the file.
    pub fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        match self.staged.get(path) {
            Some(data) => Ok(data.clone()),
            None => std::fs::read(path),
        }
    }

    /// Writes a file (atomically), or stages it in a dry run.
    fn store(&mut self, path: &Path, data: &[u8], mode: u32, dry_run: bool) -> Result<(), CertError> {
        if dry_run {
            self.staged.insert(path.to_path_buf(), data.to_vec());
            Ok(())
        } else {
            write_atomic(path, data, mode)
        }
    }

    /// Makes sure the CA, a server certificate for each spec and a client certificate for each
    /// master in `clients` exist and are valid; re-issues the leaves of `opts.rotate` (never the
    /// CA). Returns what happened (or would, in a dry run), by certificate name.
    pub fn ensure(&mut self, servers: &[ServerSpec], clients: &[String], opts: &Options) -> Result<Vec<(String, Outcome)>, CertError> {
        let policy = opts.policy;
        let mut out = Vec::new();
        let ca = issue::ensure_ca(self, policy, opts.dry_run)?;
        out.push(("ca".to_string(), ca.outcome.clone()));
        let rotated = |host: &str| opts.rotate.iter().any(|h| h == host).then(|| "rotation requested".to_string());
        for s in servers {
            let why = match rotated(&s.host) {
                Some(why) => Some(why),
                None => self.leaf_problem(&self.server_cert(&s.host), &self.server_key(&s.host), &s.sans, &ca, policy)?,
            };
            out.push((format!("server {}", s.host), issue::leaf(self, &ca, issue::Leaf::Server(s), policy, why, opts.dry_run)?));
        }
        for host in clients {
            let why = match rotated(host) {
                Some(why) => Some(why),
                None => self.leaf_problem(&self.client_cert(host), &self.client_key(host), &[], &ca, policy)?,
            };
            out.push((format!("client {host}"), issue::leaf(self, &ca, issue::Leaf::Client(host), policy, why, opts.dry_run)?));
        }
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

    /// A warning when the CA key can be read by anyone but its owner, or is not a plain file.
    pub fn ca_key_warning(&self) -> Option<String> {
        use std::os::unix::fs::PermissionsExt;
        let key = self.ca_key();
        let meta = std::fs::symlink_metadata(&key).ok()?;
        if !meta.file_type().is_file() {
            return Some(format!("{} is not a regular file (a symlink?): keep the CA key a private file", key.display()));
        }
        let mode = meta.permissions().mode() & 0o777;
        (mode & 0o077 != 0).then(|| {
            format!(
                "{} is readable by others (mode {mode:04o}): anyone who reads it can reach every docker daemon; chmod 600 it",
                key.display()
            )
        })
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

/// Writes `data` atomically with `mode`: into a new temp file in the same directory, created
/// exclusively (`O_EXCL`: a planted file or symlink is never written through) with its final
/// mode before a byte is written, then renamed over `path`. New directories are 0700.
pub(crate) fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), CertError> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let io = |source| CertError::Io { path: path.to_path_buf(), source };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("cert");
    let (tmp, mut file) = loop {
        let tmp = dir.join(format!(".{name}.tmp-{:016x}", rand::random::<u64>()));
        match std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp) {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io(e)),
        }
    };
    let written = file
        .write_all(data)
        .and_then(|_| file.sync_all())
        .and_then(|_| std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(mode)))
        .and_then(|_| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    Ok(())
}
