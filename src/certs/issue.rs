//! Creating the CA and leaf certificates with rcgen.

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SerialNumber};
use time::{Duration, OffsetDateTime};

use super::{CertError, CertsDir, Outcome, Policy, ServerSpec, inspect, write_atomic};
use crate::vars::secret::Redactor;

/// The loaded (or new) CA.
pub(super) struct Ca {
    /// CA certificate PEM.
    pub cert_pem: String,
    key_pem: String,
    /// What happened to it.
    pub outcome: Outcome,
}

/// A leaf to issue.
pub(super) enum Leaf<'a> {
    Server(&'a ServerSpec),
    Client,
}

fn gen_err(e: rcgen::Error) -> CertError {
    CertError::Generate(e.to_string())
}

/// rcgen's defaults (validity 1975–4096, a serial derived from the key) are wrong for real
/// certificates: set both.
fn base_params(sans: Vec<String>, common_name: &str, days: u32) -> Result<CertificateParams, CertError> {
    let mut p = CertificateParams::new(sans).map_err(gen_err)?;
    p.distinguished_name.push(DnType::OrganizationName, "provision");
    p.distinguished_name.push(DnType::CommonName, common_name);
    let now = OffsetDateTime::now_utc();
    // An hour of slack for hosts whose clock is a little behind.
    p.not_before = now - Duration::hours(1);
    p.not_after = now + Duration::days(i64::from(days));
    let mut serial: [u8; 16] = rand::random();
    serial[0] &= 0x7f;
    p.serial_number = Some(SerialNumber::from_slice(&serial));
    Ok(p)
}

/// Loads the CA, or creates it when neither file exists. Never replaces an existing CA.
pub(super) fn ensure_ca(dir: &CertsDir, policy: Policy) -> Result<Ca, CertError> {
    let (cert_path, key_path) = (dir.ca_cert(), dir.ca_key());
    let read = |p: &std::path::Path| std::fs::read_to_string(p).map_err(|source| CertError::Io { path: p.to_path_buf(), source });
    match (cert_path.exists(), key_path.exists()) {
        (true, true) => {
            let info = inspect(&cert_path)?;
            let invalid = |reason: String| CertError::Invalid { path: cert_path.clone(), reason };
            if !info.is_ca {
                return Err(invalid("is not a CA certificate".into()));
            }
            if !info.matches_key(&key_path) {
                return Err(invalid(format!("does not match {}", key_path.display())));
            }
            if info.days_left() < 0 {
                return Err(invalid(
                    "the CA has expired; move ca.pem and ca-key.pem away and run `provision certs generate` to create a new CA (every certificate is then re-issued)".into(),
                ));
            }
            let key_pem = read(&key_path)?;
            Redactor::add(&key_pem);
            Ok(Ca { cert_pem: read(&cert_path)?, key_pem, outcome: Outcome::Kept })
        }
        (false, false) => {
            let key = KeyPair::generate().map_err(gen_err)?;
            let mut p = base_params(vec![], "provision CA", policy.ca_days)?;
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
            let cert = p.self_signed(&key).map_err(gen_err)?;
            let key_pem = key.serialize_pem();
            Redactor::add(&key_pem);
            write_atomic(&key_path, key_pem.as_bytes(), 0o600)?;
            write_atomic(&cert_path, cert.pem().as_bytes(), 0o644)?;
            Ok(Ca { cert_pem: cert.pem(), key_pem, outcome: Outcome::Created })
        }
        (true, false) => Err(CertError::Invalid {
            path: key_path,
            reason: "is missing while ca.pem exists; restore it (the CA is never replaced silently)".into(),
        }),
        (false, true) => Err(CertError::Invalid {
            path: cert_path,
            reason: "is missing while ca-key.pem exists; restore it (the CA is never replaced silently)".into(),
        }),
    }
}

/// Issues a leaf when `why` says so; keeps it otherwise.
pub(super) fn leaf(dir: &CertsDir, ca: &Ca, leaf: Leaf<'_>, policy: Policy, why: Option<String>) -> Result<Outcome, CertError> {
    let Some(why) = why else { return Ok(Outcome::Kept) };
    let (cert_path, key_path, mut params) = match leaf {
        Leaf::Server(s) => {
            let mut p = base_params(s.sans.clone(), &s.host, policy.leaf_days)?;
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            (dir.server_cert(&s.host), dir.server_key(&s.host), p)
        }
        Leaf::Client => {
            let mut p = base_params(vec![], "provision runner client", policy.leaf_days)?;
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            (dir.client_cert(), dir.client_key(), p)
        }
    };
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.use_authority_key_identifier_extension = true;
    let ca_key = KeyPair::from_pem(&ca.key_pem).map_err(gen_err)?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key).map_err(gen_err)?;
    let key = KeyPair::generate().map_err(gen_err)?;
    let cert = params.signed_by(&key, &issuer).map_err(gen_err)?;
    let key_pem = key.serialize_pem();
    Redactor::add(&key_pem);
    write_atomic(&key_path, key_pem.as_bytes(), 0o600)?;
    write_atomic(&cert_path, cert.pem().as_bytes(), 0o644)?;
    Ok(if why == "missing" { Outcome::Created } else { Outcome::Reissued(why) })
}

#[cfg(test)]
mod tests {
    use super::super::*;

    fn spec(sans: &[&str]) -> ServerSpec {
        ServerSpec { host: "ci-slave".into(), sans: sans.iter().map(|s| s.to_string()).collect() }
    }

    #[test]
    fn generate_is_idempotent_and_reissues_only_when_needed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = CertsDir::new(tmp.path());
        let policy = Policy::default();
        let first = dir.ensure(&[spec(&["ci-slave", "10.0.0.5", "127.0.0.1"])], policy, false).unwrap();
        assert!(first.iter().all(|(_, o)| *o == Outcome::Created), "{first:?}");
        let ca_before = std::fs::read(dir.ca_cert()).unwrap();
        let server_before = std::fs::read(dir.server_cert("ci-slave")).unwrap();

        let again = dir.ensure(&[spec(&["ci-slave", "10.0.0.5", "127.0.0.1"])], policy, false).unwrap();
        assert!(again.iter().all(|(_, o)| *o == Outcome::Kept), "{again:?}");
        assert_eq!(std::fs::read(dir.server_cert("ci-slave")).unwrap(), server_before);

        let moved = dir.ensure(&[spec(&["ci-slave", "10.0.0.6", "127.0.0.1"])], policy, false).unwrap();
        assert!(matches!(&moved[1].1, Outcome::Reissued(r) if r.contains("missing 10.0.0.6")), "{moved:?}");
        assert_eq!(moved[2].1, Outcome::Kept, "the client cert is untouched");
        assert_eq!(std::fs::read(dir.ca_cert()).unwrap(), ca_before, "the CA is never replaced");

        let info = inspect(&dir.server_cert("ci-slave")).unwrap();
        assert!(info.sans.contains(&"10.0.0.6".to_string()) && info.sans.contains(&"ci-slave".to_string()), "{:?}", info.sans);
        assert!((824..=825).contains(&info.days_left()), "825-day leaves: {}", info.days_left());
        let ca = inspect(&dir.ca_cert()).unwrap();
        assert!(ca.is_ca && (3649..=3650).contains(&ca.days_left()));

        let rotated = dir.ensure(&[spec(&["ci-slave", "10.0.0.6", "127.0.0.1"])], policy, true).unwrap();
        assert!(
            matches!(rotated[0].1, Outcome::Kept)
                && matches!(rotated[1].1, Outcome::Reissued(_))
                && matches!(rotated[2].1, Outcome::Reissued(_))
        );
    }

    #[test]
    fn expiring_within_the_window_is_reissued() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = CertsDir::new(tmp.path());
        let short = Policy { leaf_days: 10, ..Policy::default() };
        dir.ensure(&[spec(&["a"])], short, false).unwrap();
        let again = dir.ensure(&[spec(&["a"])], Policy::default(), false).unwrap();
        assert!(matches!(&again[1].1, Outcome::Reissued(r) if r.starts_with("expires in")), "{again:?}");
    }

    #[test]
    fn serials_are_random_and_keys_private() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = CertsDir::new(tmp.path());
        dir.ensure(&[spec(&["a"]), ServerSpec { host: "b".into(), sans: vec!["b".into()] }], Policy::default(), false).unwrap();
        let serial = |p: std::path::PathBuf| {
            let pem = std::fs::read(p).unwrap();
            let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
            let (_, c) = x509_parser::parse_x509_certificate(&pem.contents).unwrap();
            c.raw_serial().to_vec()
        };
        assert_ne!(serial(dir.server_cert("ci-slave")), serial(dir.server_cert("b")));
        for key in [dir.ca_key(), dir.server_key("ci-slave"), dir.client_key()] {
            assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600, "{}", key.display());
        }
    }

    #[test]
    fn a_ca_without_its_key_is_an_error_not_a_new_ca() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = CertsDir::new(tmp.path());
        dir.ensure(&[], Policy::default(), false).unwrap();
        std::fs::remove_file(dir.ca_key()).unwrap();
        let e = dir.ensure(&[], Policy::default(), false).unwrap_err();
        assert!(e.to_string().contains("never replaced silently"), "{e}");
    }

    #[test]
    fn a_leaf_from_another_ca_is_reissued() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = CertsDir::new(tmp.path());
        dir.ensure(&[spec(&["a"])], Policy::default(), false).unwrap();
        let other = tempfile::tempdir().unwrap();
        let other_dir = CertsDir::new(other.path());
        other_dir.ensure(&[spec(&["a"])], Policy::default(), false).unwrap();
        std::fs::copy(other_dir.server_cert("ci-slave"), dir.server_cert("ci-slave")).unwrap();
        std::fs::copy(other_dir.server_key("ci-slave"), dir.server_key("ci-slave")).unwrap();
        let again = dir.ensure(&[spec(&["a"])], Policy::default(), false).unwrap();
        assert_eq!(again[1].1, Outcome::Reissued("not signed by the current CA".into()));
    }
}
