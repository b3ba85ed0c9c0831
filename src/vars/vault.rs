//! Ansible Vault: whole vault-encrypted vars files and `!vault |` values, format 1.1 and 1.2
//! (`$ANSIBLE_VAULT;1.2;AES256;<vault id>`): PBKDF2-SHA256 (10,000 rounds) derives the AES-256-CTR
//! key, the HMAC-SHA256 key and the counter from the password and salt; the HMAC is checked before
//! anything is decrypted.
//!
//! Passwords come from `--vault-password-file` (a file that is executable is run and its output
//! used, as Ansible does), `--ask-vault-pass`, or `ANSIBLE_VAULT_PASSWORD_FILE`. Every password
//! given is tried; none matching is one error naming the file or value.

use std::path::{Path, PathBuf};
use std::sync::RwLock;

use aes::cipher::{KeyIvInit, StreamCipher};
use hmac::{KeyInit, Mac};

/// Vault failures.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// No password was given.
    #[error(
        "{0} is vault-encrypted, but no vault password was given (use --vault-password-file, --ask-vault-pass or ANSIBLE_VAULT_PASSWORD_FILE)"
    )]
    NoPassword(String),
    /// No password given decrypts it.
    #[error("{0}: the vault password is wrong (no password given decrypts it)")]
    WrongPassword(String),
    /// Not vault data Ansible would write.
    #[error("{0}: malformed vault data: {1}")]
    Malformed(String, &'static str),
    /// The password file could not be read or run.
    #[error("vault password file {0}: {1}")]
    PasswordFile(String, String),
}

/// Where vault passwords come from, as given on the command line.
#[derive(Debug, Clone, Default)]
pub struct VaultConfig {
    /// `--vault-password-file` paths.
    pub password_files: Vec<PathBuf>,
    /// `--ask-vault-pass`.
    pub ask: bool,
}

static CONFIG: RwLock<Option<VaultConfig>> = RwLock::new(None);
static PASSWORDS: RwLock<Option<Vec<Vec<u8>>>> = RwLock::new(None);

/// Sets the password sources for this process (read once, when first needed).
pub fn configure(config: VaultConfig) {
    *CONFIG.write().expect("vault config poisoned") = Some(config);
    *PASSWORDS.write().expect("vault passwords poisoned") = None;
}

/// True when `text` is a vault envelope.
pub fn is_vault(text: &str) -> bool {
    text.trim_start().starts_with("$ANSIBLE_VAULT;")
}

/// Decrypts a vault envelope; `what` names the file or value in errors.
pub fn decrypt(text: &str, what: &str) -> Result<String, VaultError> {
    let passwords = passwords(what)?;
    let (salt, mac, cipher) = parse(text).map_err(|m| VaultError::Malformed(what.to_string(), m))?;
    for pw in &passwords {
        if let Some(plain) = decrypt_with(pw, &salt, &mac, &cipher) {
            return String::from_utf8(plain).map_err(|_| VaultError::Malformed(what.to_string(), "plaintext is not UTF-8"));
        }
    }
    Err(VaultError::WrongPassword(what.to_string()))
}

/// The three binary fields of a vault body: salt, HMAC, ciphertext.
type Envelope = (Vec<u8>, Vec<u8>, Vec<u8>);

fn parse(text: &str) -> Result<Envelope, &'static str> {
    let mut lines = text.trim().lines();
    let header = lines.next().ok_or("empty")?;
    let fields: Vec<&str> = header.trim().split(';').collect();
    if fields.len() < 3 || fields[0] != "$ANSIBLE_VAULT" || !matches!(fields[1], "1.1" | "1.2") || fields[2] != "AES256" {
        return Err("unsupported header (expected $ANSIBLE_VAULT;1.1;AES256 or 1.2)");
    }
    let body: String = lines.map(str::trim).collect();
    let inner = hex::decode(body).map_err(|_| "body is not hex")?;
    let inner = String::from_utf8(inner).map_err(|_| "body is not text")?;
    let parts: Vec<&str> = inner.split('\n').collect();
    if parts.len() != 3 {
        return Err("body does not have salt, hmac and ciphertext");
    }
    let dec = |s: &str| hex::decode(s.trim()).map_err(|_| "field is not hex");
    Ok((dec(parts[0])?, dec(parts[1])?, dec(parts[2])?))
}

fn decrypt_with(password: &[u8], salt: &[u8], mac: &[u8], cipher: &[u8]) -> Option<Vec<u8>> {
    let mut key = [0u8; 80];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, salt, 10_000, &mut key);
    let (aes_key, rest) = key.split_at(32);
    let (hmac_key, iv) = rest.split_at(32);
    let mut m = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(hmac_key).ok()?;
    m.update(cipher);
    m.verify_slice(mac).ok()?;
    let mut data = cipher.to_vec();
    let mut c = ctr::Ctr128BE::<aes::Aes256>::new_from_slices(aes_key, iv).ok()?;
    c.apply_keystream(&mut data);
    // PKCS#7 padding.
    let pad = *data.last()? as usize;
    if pad == 0 || pad > 16 || pad > data.len() || !data[data.len() - pad..].iter().all(|b| *b as usize == pad) {
        return None;
    }
    data.truncate(data.len() - pad);
    Some(data)
}

fn passwords(what: &str) -> Result<Vec<Vec<u8>>, VaultError> {
    if let Some(p) = PASSWORDS.read().expect("vault passwords poisoned").clone() {
        return if p.is_empty() { Err(VaultError::NoPassword(what.to_string())) } else { Ok(p) };
    }
    let config = CONFIG.read().expect("vault config poisoned").clone().unwrap_or_default();
    let mut files = config.password_files.clone();
    if files.is_empty()
        && let Some(f) = std::env::var_os("ANSIBLE_VAULT_PASSWORD_FILE").filter(|f| !f.is_empty())
    {
        files.push(PathBuf::from(f));
    }
    let mut out = Vec::new();
    for f in &files {
        out.push(read_password_file(f)?);
    }
    if config.ask {
        out.push(ask()?);
    }
    *PASSWORDS.write().expect("vault passwords poisoned") = Some(out.clone());
    if out.is_empty() { Err(VaultError::NoPassword(what.to_string())) } else { Ok(out) }
}

fn read_password_file(path: &Path) -> Result<Vec<u8>, VaultError> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display().to_string();
    let path = crate::fsutil::expand_path(&path.to_string_lossy(), Path::new("."));
    let meta = std::fs::metadata(&path).map_err(|e| VaultError::PasswordFile(shown.clone(), e.to_string()))?;
    let bytes = if meta.permissions().mode() & 0o111 != 0 {
        // An executable password file is a script that prints the password, as in Ansible.
        let out = std::process::Command::new(&path)
            .stdin(std::process::Stdio::inherit())
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| VaultError::PasswordFile(shown.clone(), format!("cannot run it: {e}")))?;
        if !out.status.success() {
            return Err(VaultError::PasswordFile(shown, format!("the script failed ({})", out.status)));
        }
        out.stdout
    } else {
        std::fs::read(&path).map_err(|e| VaultError::PasswordFile(shown.clone(), e.to_string()))?
    };
    let text = String::from_utf8_lossy(&bytes);
    let pw = text.trim_end_matches(['\n', '\r']).trim().as_bytes().to_vec();
    if pw.is_empty() {
        return Err(VaultError::PasswordFile(shown, "it is empty".into()));
    }
    Ok(pw)
}

fn ask() -> Result<Vec<u8>, VaultError> {
    use std::io::{BufRead, Write};
    let tty = || std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty");
    let err = |e: std::io::Error| VaultError::PasswordFile("--ask-vault-pass".into(), format!("no terminal: {e}"));
    let mut out = tty().map_err(err)?;
    let stty = |arg: &str| {
        let _ = std::process::Command::new("stty")
            .arg(arg)
            .stdin(tty().map(std::process::Stdio::from).unwrap_or(std::process::Stdio::null()))
            .status();
    };
    write!(out, "Vault password: ").map_err(err)?;
    stty("-echo");
    let mut line = String::new();
    let res = std::io::BufReader::new(tty().map_err(err)?).read_line(&mut line);
    stty("echo");
    let _ = writeln!(out);
    res.map_err(err)?;
    Ok(line.trim_end_matches(['\n', '\r']).as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Made with `ansible-vault encrypt_string --vault-password-file pw.txt hunter2` (pw.txt: `pw`).
    const SAMPLE: &str = "$ANSIBLE_VAULT;1.1;AES256
          61373962333931386632373034366662626333666538386564393231313265346566633936393361
          3235363331326638653364396138326436366565363731320a316637663435636564363137313530
          38663036393438613234643031636264646666323563316562623161636163636232303336366464
          6235313561333162660a333136663630373033623262656463633566653533613837323664663664
          6538";

    #[test]
    fn parses_envelope_and_refuses_garbage() {
        assert!(is_vault(SAMPLE));
        let (salt, mac, cipher) = parse(SAMPLE).unwrap();
        assert_eq!(decrypt_with(b"pw", &salt, &mac, &cipher).as_deref(), Some(&b"hunter2"[..]));
        assert_eq!(decrypt_with(b"wrong", &salt, &mac, &cipher), None, "the HMAC refuses a wrong password");
        assert!(parse("$ANSIBLE_VAULT;9.9;AES256\n00").is_err());
        assert!(parse("$ANSIBLE_VAULT;1.1;AES256\nzz").is_err());
    }
}
