//! Reading existing certificates: SANs, validity, issuer signature, key match.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use x509_parser::extensions::GeneralName;
use x509_parser::pem::parse_x509_pem;

use super::CertError;

/// What a certificate file says.
#[derive(Debug, Clone)]
pub struct CertInfo {
    /// The file.
    pub path: PathBuf,
    /// Subject common name.
    pub common_name: String,
    /// DNS names and IP addresses.
    pub sans: Vec<String>,
    /// Expiry (Unix seconds).
    pub not_after: i64,
    /// Whether it is a CA.
    pub is_ca: bool,
    /// A CA's path length constraint (`Some(0)`: it signs leaves only).
    pub path_len: Option<u32>,
    /// DER bytes.
    der: Vec<u8>,
}

/// Reads a PEM certificate file.
pub fn inspect(path: &Path) -> Result<CertInfo, CertError> {
    let invalid = |reason: String| CertError::Invalid { path: path.to_path_buf(), reason };
    let pem = std::fs::read(path).map_err(|source| CertError::Io { path: path.to_path_buf(), source })?;
    let (_, pem) = parse_x509_pem(&pem).map_err(|e| invalid(format!("not a PEM certificate: {e}")))?;
    let der = pem.contents;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| invalid(format!("not an X.509 certificate: {e}")))?;
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                GeneralName::DNSName(d) => sans.push(d.to_string()),
                GeneralName::IPAddress(b) => {
                    let ip = match b.len() {
                        4 => IpAddr::from(<[u8; 4]>::try_from(*b).expect("4 bytes")),
                        16 => IpAddr::from(<[u8; 16]>::try_from(*b).expect("16 bytes")),
                        _ => continue,
                    };
                    sans.push(ip.to_string());
                }
                _ => {}
            }
        }
    }
    let common_name = cert.subject().iter_common_name().next().and_then(|c| c.as_str().ok()).unwrap_or("").to_string();
    Ok(CertInfo {
        path: path.to_path_buf(),
        common_name,
        sans,
        not_after: cert.validity().not_after.timestamp(),
        is_ca: cert.is_ca(),
        path_len: cert.basic_constraints().ok().flatten().and_then(|bc| bc.value.path_len_constraint),
        der: der.clone(),
    })
}

impl CertInfo {
    /// Days until expiry (negative when expired).
    pub fn days_left(&self) -> i64 {
        (self.not_after - now()) / 86_400
    }

    /// Whether the certificate is signed by the CA in `ca_pem`.
    pub fn signed_by(&self, ca_pem: &str) -> bool {
        let Ok((_, ca)) = parse_x509_pem(ca_pem.as_bytes()) else { return false };
        let Ok((_, ca)) = x509_parser::parse_x509_certificate(&ca.contents) else { return false };
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(&self.der) else { return false };
        cert.verify_signature(Some(ca.public_key())).is_ok()
    }

    /// Whether `key_path` holds the private key of this certificate.
    pub fn matches_key(&self, key_path: &Path) -> bool {
        use rcgen::PublicKeyData;
        let Ok(key_pem) = std::fs::read_to_string(key_path) else { return false };
        let Ok(key) = rcgen::KeyPair::from_pem(&key_pem) else { return false };
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(&self.der) else { return false };
        cert.public_key().subject_public_key.data.as_ref() == key.der_bytes()
    }

    /// Why this leaf must be re-issued, if it must: `wanted_sans` not all covered, expiring
    /// within `renew_days`, not signed by the CA, or not matching its key.
    pub fn problem(&self, wanted_sans: &[String], ca_pem: &str, key_path: &Path, renew_days: u32) -> Option<String> {
        let missing: Vec<&String> = wanted_sans.iter().filter(|s| !self.sans.contains(s)).collect();
        if !missing.is_empty() {
            return Some(format!(
                "SANs no longer match the inventory (missing {})",
                missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ));
        }
        let left = self.days_left();
        if left < i64::from(renew_days) {
            return Some(if left < 0 { "expired".into() } else { format!("expires in {left} days") });
        }
        if !self.signed_by(ca_pem) {
            return Some("not signed by the current CA".into());
        }
        if !self.matches_key(key_path) {
            return Some("does not match its key".into());
        }
        None
    }
}

/// Now, in Unix seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}
