//! Access keys of the build cache servers (`cache_server` role), kept like the certificates:
//! generated here, never on a host first, one file per cache server in the certs directory
//! (`cache-server/<host>.keys`, 0600 in a 0700 directory, written atomically), never printed
//! (every key read is registered with the redactor), re-generated only on request
//! (`provision certs rotate-cache-keys`). In check mode new keys stay in memory like new
//! certificates, so the plan shows the files they would change.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{CertError, CertsDir, Outcome};
use crate::vars::secret::Redactor;

/// Characters of an access key (upper case and digits, like AWS's).
const ACCESS_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
/// Characters of a secret key: no character that needs quoting in a URL, a TOML string or sh.
const SECRET_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// The root keys of one cache server (the server's admin, and the runners' S3 keys).
#[derive(Clone, PartialEq, Eq)]
pub struct CacheKeys {
    /// Access key (MinIO's root user).
    pub access_key: String,
    /// Secret key (MinIO's root password).
    pub secret_key: String,
}

// Never shown, even in a debug print.
impl std::fmt::Debug for CacheKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CacheKeys(..)")
    }
}

impl CacheKeys {
    /// New random keys: 20 and 40 characters (about 100 and 238 bits).
    fn generate() -> Self {
        CacheKeys { access_key: random_string(ACCESS_CHARS, 20), secret_key: random_string(SECRET_CHARS, 40) }
    }

    /// A short hash of both keys, for a container label: new keys recreate the server (which
    /// reads them at start) without the label revealing them.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(format!("provision cache keys\0{}\0{}", self.access_key, self.secret_key));
        hex::encode(digest)[..16].to_string()
    }

    /// The file: these keys, and every set they replaced (some may still be on hosts not
    /// applied since a rotation, and so are still to be masked in what is read back from them).
    fn to_file(&self, previous: &[CacheKeys]) -> String {
        let mut text = format!(
            "# Written by provision: the cache server's keys. Keep private.\naccess_key={}\nsecret_key={}\n",
            self.access_key, self.secret_key
        );
        for p in previous {
            text.push_str(&format!("previous_access_key={}\nprevious_secret_key={}\n", p.access_key, p.secret_key));
        }
        text
    }

    /// The current keys and the previous ones (in the order they were replaced) of a file.
    fn parse(text: &str) -> Option<(Self, Vec<Self>)> {
        let values = |key: &str| -> Vec<String> {
            text.lines().filter_map(|l| l.strip_prefix(key)?.strip_prefix('=')).map(str::to_string).collect()
        };
        let one = |key: &str| values(key).into_iter().next();
        let current = CacheKeys { access_key: one("access_key")?, secret_key: one("secret_key")? }.valid()?;
        let previous = values("previous_access_key")
            .into_iter()
            .zip(values("previous_secret_key"))
            .filter_map(|(access_key, secret_key)| CacheKeys { access_key, secret_key }.valid())
            .collect();
        Some((current, previous))
    }

    fn valid(self) -> Option<Self> {
        let valid = |s: &str, chars: &[u8], min: usize| s.len() >= min && s.bytes().all(|b| chars.contains(&b));
        (valid(&self.access_key, ACCESS_CHARS, 3) && valid(&self.secret_key, SECRET_CHARS, 8)).then_some(self)
    }
}

/// Uniform over `chars` (rejection sampling: no modulo bias).
fn random_string(chars: &[u8], len: usize) -> String {
    let limit = 256 - 256 % chars.len();
    let mut out = String::with_capacity(len);
    while out.len() < len {
        let b = usize::from(rand::random::<u8>());
        if b < limit {
            out.push(char::from(chars[b % chars.len()]));
        }
    }
    out
}

impl CertsDir {
    /// The keys file of the cache server `host`.
    pub fn cache_keys(&self, host: &str) -> PathBuf {
        self.root.join("cache-server").join(format!("{host}.keys"))
    }
}

/// Makes sure every cache server in `hosts` has keys; generates new ones for those in `rotate`.
/// Returns what happened (or would, in a dry run), by name.
pub fn ensure(dir: &mut CertsDir, hosts: &[String], rotate: &[String], dry_run: bool) -> Result<Vec<(String, Outcome)>, CertError> {
    let mut out = Vec::new();
    for host in hosts {
        let path = dir.cache_keys(host);
        let (outcome, previous) = if rotate.contains(host) {
            // Every key ever replaced stays listed: a second rotation before an apply must not
            // forget the keys the hosts still hold.
            let previous = read_all(dir, host).map(|(current, mut previous)| {
                previous.push(current);
                previous
            });
            (Outcome::Reissued("rotation requested".into()), previous.unwrap_or_default())
        } else if path.exists() {
            read(dir, host)?;
            (Outcome::Kept, Vec::new())
        } else {
            (Outcome::Created, Vec::new())
        };
        if outcome != Outcome::Kept {
            let keys = CacheKeys::generate();
            register(&keys);
            dir.store(&path, keys.to_file(&previous).as_bytes(), 0o600, dry_run)?;
        }
        out.push((format!("cache keys {host}"), outcome));
    }
    Ok(out)
}

/// The keys of the cache server `host` (what a dry run would have written, else the file),
/// registered with the redactor.
pub fn read(dir: &CertsDir, host: &str) -> Result<CacheKeys, CertError> {
    Ok(read_all(dir, host)?.0)
}

/// The current keys and every previous set, all registered with the redactor.
fn read_all(dir: &CertsDir, host: &str) -> Result<(CacheKeys, Vec<CacheKeys>), CertError> {
    let path = dir.cache_keys(host);
    let io = |source| CertError::Io { path: path.clone(), source };
    let text = String::from_utf8(dir.read(&path).map_err(io)?).unwrap_or_default();
    let (keys, previous) = CacheKeys::parse(&text).ok_or_else(|| invalid(&path))?;
    for k in std::iter::once(&keys).chain(&previous) {
        register(k);
    }
    Ok((keys, previous))
}

fn invalid(path: &Path) -> CertError {
    CertError::Invalid {
        path: path.to_path_buf(),
        reason: "is not a cache keys file (access_key=..., secret_key=...): remove it and run `provision certs generate`".into(),
    }
}

fn register(keys: &CacheKeys) {
    Redactor::add(&keys.access_key);
    Redactor::add(&keys.secret_key);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_kept_rotated_on_request_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let mut dir = CertsDir::new(tmp.path());
        let hosts = vec!["slave-1".to_string()];
        assert_eq!(ensure(&mut dir, &hosts, &[], true).unwrap()[0].1, Outcome::Created);
        assert!(!dir.cache_keys("slave-1").exists(), "a dry run writes nothing");
        assert_eq!(read(&dir, "slave-1").unwrap().secret_key.len(), 40, "but serves what it would write");
        let mut dir = CertsDir::new(tmp.path());
        ensure(&mut dir, &hosts, &[], false).unwrap();
        let first = read(&dir, "slave-1").unwrap();
        let mode = std::fs::metadata(dir.cache_keys("slave-1")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(ensure(&mut dir, &hosts, &[], false).unwrap()[0].1, Outcome::Kept);
        assert_eq!(read(&dir, "slave-1").unwrap(), first);
        assert!(matches!(ensure(&mut dir, &hosts, &hosts, false).unwrap()[0].1, Outcome::Reissued(_)));
        let second = read(&dir, "slave-1").unwrap();
        let file = std::fs::read_to_string(dir.cache_keys("slave-1")).unwrap();
        assert!(file.contains(&format!("previous_secret_key={}\n", first.secret_key)), "the old keys stay known, to be masked");
        assert_ne!(second.access_key, first.access_key);
        assert_ne!(second.secret_key, first.secret_key);
        assert!(!format!("{second:?}").contains(&second.secret_key));
        assert_ne!(second.fingerprint(), first.fingerprint());
        assert!(!second.fingerprint().contains(&second.secret_key[..8]));
        std::fs::write(dir.cache_keys("slave-1"), "secret_key=x\n").unwrap();
        assert!(ensure(&mut dir, &hosts, &[], false).is_err(), "a broken file is reported, not replaced");
    }

    /// Two rotations before an apply: the hosts may still hold the first keys, so the file
    /// keeps them too (and `read` registers them with the redactor).
    #[test]
    fn every_replaced_key_stays_known_across_rotations() {
        let tmp = tempfile::tempdir().unwrap();
        let mut dir = CertsDir::new(tmp.path());
        let hosts = vec!["slave-1".to_string()];
        ensure(&mut dir, &hosts, &[], false).unwrap();
        let first = read(&dir, "slave-1").unwrap();
        ensure(&mut dir, &hosts, &hosts, false).unwrap();
        let second = read(&dir, "slave-1").unwrap();
        ensure(&mut dir, &hosts, &hosts, false).unwrap();
        let (third, previous) = read_all(&dir, "slave-1").unwrap();
        assert_eq!(previous, [first.clone(), second.clone()]);
        assert_ne!(third, second);
        let file = std::fs::read_to_string(dir.cache_keys("slave-1")).unwrap();
        for old in [&first, &second] {
            assert!(file.contains(&format!("previous_secret_key={}\n", old.secret_key)), "{file}");
            assert_eq!(Redactor::redact(&old.secret_key), "***");
        }
    }
}
