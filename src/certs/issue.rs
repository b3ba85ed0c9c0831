//! Creating the CA and leaf certificates with rcgen.

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SerialNumber};
use time::{Duration, OffsetDateTime};

use super::{CertError, CertsDir, Outcome, Policy, ServerSpec, inspect};
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
    /// The server certificate of a TLS daemon.
    Server(&'a ServerSpec),
    /// The client certificate of the master with this name.
    Client(&'a str),
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

/// Loads the CA, or creates it when neither file exists (in memory only in a dry run). Never
/// replaces an existing CA.
pub(super) fn ensure_ca(dir: &mut CertsDir, policy: Policy, dry_run: bool) -> Result<Ca, CertError> {
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
            // pathlen:0: the CA signs leaves only; a leaf key can never act as a CA.
            p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
            p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
            let cert = p.self_signed(&key).map_err(gen_err)?;
            let key_pem = key.serialize_pem();
            Redactor::add(&key_pem);
            dir.store(&key_path, key_pem.as_bytes(), 0o600, dry_run)?;
            dir.store(&cert_path, cert.pem().as_bytes(), 0o644, dry_run)?;
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

/// Issues a leaf when `why` says so (in memory only in a dry run); keeps it otherwise.
pub(super) fn leaf(
    dir: &mut CertsDir,
    ca: &Ca,
    leaf: Leaf<'_>,
    policy: Policy,
    why: Option<String>,
    dry_run: bool,
) -> Result<Outcome, CertError> {
    let Some(why) = why else { return Ok(Outcome::Kept) };
    let (cert_path, key_path, mut params) = match leaf {
        Leaf::Server(s) => {
            let mut p = base_params(s.sans.clone(), &s.host, policy.leaf_days)?;
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            (dir.server_cert(&s.host), dir.server_key(&s.host), p)
        }
        Leaf::Client(host) => {
            let mut p = base_params(vec![], &format!("provision client {host}"), policy.leaf_days)?;
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            (dir.client_cert(host), dir.client_key(host), p)
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
    dir.store(&key_path, key_pem.as_bytes(), 0o600, dry_run)?;
    dir.store(&cert_path, cert.pem().as_bytes(), 0o644, dry_run)?;
    Ok(if why == "missing" { Outcome::Created } else { Outcome::Reissued(why) })
}

#[cfg(test)]
mod tests {
    use super::super::*;

    fn spec(sans: &[&str]) -> ServerSpec {
        ServerSpec { host: "ci-slave".into(), sans: sans.iter().map(|s| s.to_string()).collect() }
    }

    fn masters() -> Vec<String> {
        vec!["ci-master".into()]
    }

    fn opts(policy: Policy) -> Options {
        Options { policy, ..Options::default() }
    }

    #[test]
    fn generate_is_idempotent_and_reissues_only_when_needed() {
        let tmp = tempfile::tempdir().unwrap();
        let mut dir = CertsDir::new(tmp.path());
        let o = Options::default();
        let first = dir.ensure(&[spec(&["ci-slave", "10.0.0.5", "127.0.0.1"])], &masters(), &o).unwrap();
        assert!(first.iter().all(|(_, o)| *o == Outcome::Created), "{first:?}");
        let ca_before = std::fs::read(dir.ca_cert()).unwrap();
        let server_before = std::fs::read(dir.server_cert("ci-slave")).unwrap();

        let again = dir.ensure(&[spec(&["ci-slave", "10.0.0.5", "127.0.0.1"])], &masters(), &o).unwrap();
        assert!(again.iter().all(|(_, o)| *o == Outcome::Kept), "{again:?}");
        assert_eq!(std::fs::read(dir.server_cert("ci-slave")).unwrap(), server_before);

        let moved = dir.ensure(&[spec(&["ci-slave", "10.0.0.6", "127.0.0.1"])], &masters(), &o).unwrap();
        assert!(matches!(&moved[1].1, Outcome::Reissued(r) if r.contains("missing 10.0.0.6")), "{moved:?}");
        assert_eq!(moved[2].1, Outcome::Kept, "the client cert is untouched");
        assert_eq!(std::fs::read(dir.ca_cert()).unwrap(), ca_before, "the CA is never replaced");

        let info = inspect(&dir.server_cert("ci-slave")).unwrap();
        assert!(info.sans.contains(&"10.0.0.6".to_string()) && info.sans.contains(&"ci-slave".to_string()), "{:?}", info.sans);
        assert!((824..=825).contains(&info.days_left()), "825-day leaves: {}", info.days_left());
        let ca = inspect(&dir.ca_cert()).unwrap();
        assert!(ca.is_ca && (3649..=3650).contains(&ca.days_left()));

        let all = Options { rotate: vec!["ci-slave".into(), "ci-master".into()], ..Options::default() };
        let rotated = dir.ensure(&[spec(&["ci-slave", "10.0.0.6", "127.0.0.1"])], &masters(), &all).unwrap();
        assert!(
            matches!(rotated[0].1, Outcome::Kept)
                && matches!(rotated[1].1, Outcome::Reissued(_))
                && matches!(rotated[2].1, Outcome::Reissued(_))
        );
    }

    #[test]
    fn one_client_certificate_per_master_rotated_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let mut dir = CertsDir::new(tmp.path());
        let two = vec!["m1".to_string(), "m2".to_string()];
        dir.ensure(&[], &two, &Options::default()).unwrap();
        let (m1, m2) = (inspect(&dir.client_cert("m1")).unwrap(), inspect(&dir.client_cert("m2")).unwrap());
        assert_eq!((m1.common_name.as_str(), m2.common_name.as_str()), ("provision client m1", "provision client m2"));
        assert_ne!(std::fs::read(dir.client_key("m1")).unwrap(), std::fs::read(dir.client_key("m2")).unwrap());
        let ca = std::fs::read_to_string(dir.ca_cert()).unwrap();
        assert!(m1.signed_by(&ca) && m2.signed_by(&ca), "every master's certificate chains to the one CA the daemons trust");
        let m2_before = std::fs::read(dir.client_cert("m2")).unwrap();
        let rotated = dir.ensure(&[], &two, &Options { rotate: vec!["m1".into()], ..Options::default() }).unwrap();
        assert_eq!(rotated[1].1, Outcome::Reissued("rotation requested".into()));
        assert_eq!(rotated[2].1, Outcome::Kept);
        assert_eq!(std::fs::read(dir.client_cert("m2")).unwrap(), m2_before);
    }

    #[test]
    fn the_ca_is_limited_to_signing_leaves() {
        let tmp = tempfile::tempdir().unwrap();
        let mut dir = CertsDir::new(tmp.path());
        dir.ensure(&[], &[], &Options::default()).unwrap();
        let pem = std::fs::read(dir.ca_cert()).unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
        let (_, c) = x509_parser::parse_x509_certificate(&pem.contents).unwrap();
        let bc = c.basic_constraints().unwrap().unwrap().value;
        assert!(bc.ca);
        assert_eq!(bc.path_len_constraint, Some(0), "pathlen:0");
    }

    #[test]
    fn a_dry_run_writes_nothing_and_serves_what_it_would_write() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("certs");
        let mut dir = CertsDir::new(&root);
        let dry = Options { dry_run: true, ..Options::default() };
        let plan = dir.ensure(&[spec(&["ci-slave"])], &masters(), &dry).unwrap();
        assert!(plan.iter().all(|(_, o)| *o == Outcome::Created), "{plan:?}");
        assert!(!root.exists(), "nothing was created on disk");
        assert!(dir.read(&dir.server_cert("ci-slave")).unwrap().starts_with(b"-----BEGIN CERTIFICATE-----"));
        // With a real CA and leaves, a changed address would re-issue: the dry run says so and
        // the files stay as they are.
        let mut real = CertsDir::new(&root);
        real.ensure(&[spec(&["ci-slave"])], &masters(), &Options::default()).unwrap();
        let before = std::fs::read(real.server_cert("ci-slave")).unwrap();
        let mut dir = CertsDir::new(&root);
        let plan = dir.ensure(&[spec(&["ci-slave", "10.9.9.9"])], &masters(), &dry).unwrap();
        assert!(matches!(&plan[1].1, Outcome::Reissued(r) if r.contains("10.9.9.9")), "{plan:?}");
        assert_eq!(std::fs::read(real.server_cert("ci-slave")).unwrap(), before);
        assert_ne!(dir.read(&dir.server_cert("ci-slave")).unwrap(), before);
    }

    #[test]
    fn expiring_within_the_window_is_reissued() {
        let tmp = tempfile::tempdir().unwrap();
        let mut dir = CertsDir::new(tmp.path());
        let short = Policy { leaf_days: 10, ..Policy::default() };
        dir.ensure(&[spec(&["a"])], &masters(), &opts(short)).unwrap();
        let again = dir.ensure(&[spec(&["a"])], &masters(), &opts(Policy::default())).unwrap();
        assert!(matches!(&again[1].1, Outcome::Reissued(r) if r.starts_with("expires in")), "{again:?}");
    }

    #[test]
    fn serials_are_random_and_keys_private() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let mut dir = CertsDir::new(tmp.path());
        dir.ensure(&[spec(&["a"]), ServerSpec { host: "b".into(), sans: vec!["b".into()] }], &masters(), &Options::default()).unwrap();
        let serial = |p: std::path::PathBuf| {
            let pem = std::fs::read(p).unwrap();
            let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
            let (_, c) = x509_parser::parse_x509_certificate(&pem.contents).unwrap();
            c.raw_serial().to_vec()
        };
        assert_ne!(serial(dir.server_cert("ci-slave")), serial(dir.server_cert("b")));
        for key in [dir.ca_key(), dir.server_key("ci-slave"), dir.client_key("ci-master")] {
            assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600, "{}", key.display());
        }
        assert_eq!(dir.ca_key_warning(), None);
        std::fs::set_permissions(dir.ca_key(), std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(dir.ca_key_warning().is_some_and(|w| w.contains("readable by others (mode 0644)")));
    }

    #[test]
    fn writes_never_follow_a_planted_temp_file_or_symlink() {
        let tmp = tempfile::tempdir().unwrap();
        let victim = tmp.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let target = tmp.path().join("ca-key.pem");
        // Whatever name an attacker guesses, the writer only ever opens a file it created.
        for guess in [".ca-key.pem.tmp-0", ".ca-key.pem.tmp"] {
            std::os::unix::fs::symlink(&victim, tmp.path().join(guess)).unwrap();
        }
        write_atomic(&target, b"secret", 0o600).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        assert_eq!(std::fs::read(&target).unwrap(), b"secret");
        let leftovers = std::fs::read_dir(tmp.path()).unwrap().filter(|e| {
            let n = e.as_ref().unwrap().file_name();
            n.to_string_lossy().starts_with(".ca-key.pem.tmp-") && n != ".ca-key.pem.tmp-0"
        });
        assert_eq!(leftovers.count(), 0, "no temp file left behind");
    }

    #[test]
    fn a_ca_without_its_key_is_an_error_not_a_new_ca() {
        let tmp = tempfile::tempdir().unwrap();
        let mut dir = CertsDir::new(tmp.path());
        dir.ensure(&[], &[], &Options::default()).unwrap();
        std::fs::remove_file(dir.ca_key()).unwrap();
        let e = dir.ensure(&[], &[], &Options::default()).unwrap_err();
        assert!(e.to_string().contains("never replaced silently"), "{e}");
    }

    #[test]
    fn a_leaf_from_another_ca_is_reissued() {
        let tmp = tempfile::tempdir().unwrap();
        let mut dir = CertsDir::new(tmp.path());
        dir.ensure(&[spec(&["a"])], &[], &Options::default()).unwrap();
        let other = tempfile::tempdir().unwrap();
        let mut other_dir = CertsDir::new(other.path());
        other_dir.ensure(&[spec(&["a"])], &[], &Options::default()).unwrap();
        std::fs::copy(other_dir.server_cert("ci-slave"), dir.server_cert("ci-slave")).unwrap();
        std::fs::copy(other_dir.server_key("ci-slave"), dir.server_key("ci-slave")).unwrap();
        let again = dir.ensure(&[spec(&["a"])], &[], &Options::default()).unwrap();
        assert_eq!(again[1].1, Outcome::Reissued("not signed by the current CA".into()));
    }
}
