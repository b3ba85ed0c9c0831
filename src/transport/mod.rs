//! Talking to hosts. [`ssh`] is the only transport: the system `ssh` with one multiplexed master
//! connection per host, so the user's ssh config, agent, known_hosts and ProxyJump just work.

pub mod connection;
pub mod ssh;

use std::future::Future;
use std::path::Path;

/// A host as the engine sees it: something that runs a POSIX sh script and receives files.
/// [`ssh::Ssh`] is the real one; tests replay recorded output through a fake.
pub trait Remote: Sync {
    /// Runs a POSIX sh script of any size (as root) in one round trip and collects its output.
    fn run(&self, script: &str) -> impl Future<Output = Result<Output, TransportError>> + Send;
    /// Like [`Remote::run`], and hands each line of standard output to `on_line` as it arrives,
    /// so a long script can be followed (the apply's "step k/n"). The default, for hosts that
    /// cannot stream, hands the lines over once the script has ended.
    fn run_observed(&self, script: &str, on_line: &(dyn Fn(&str) + Sync)) -> impl Future<Output = Result<Output, TransportError>> + Send {
        async move {
            let out = self.run(script).await?;
            for line in out.stdout_text().lines() {
                on_line(line);
            }
            Ok(out)
        }
    }
    /// Streams the local file `local` to `remote` on the host (root-only mode).
    fn upload(&self, local: &Path, remote: &str) -> impl Future<Output = Result<(), TransportError>> + Send;
}

/// How host keys are checked (`ssh_host_key_checking`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HostKeyChecking {
    /// Only keys already in known_hosts (`true`, the default).
    Strict,
    /// Trust on first use: an unknown key is recorded, a changed one refused (`accept-new`).
    AcceptNew,
    /// Any key, unknown or changed, and nothing recorded (`false`).
    Off,
}

/// What a remote command produced.
#[derive(Debug, Clone, Default)]
pub struct Output {
    /// Exit status (`None` when killed by a signal).
    pub status: Option<i32>,
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
}

impl Output {
    /// True for exit status 0.
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }

    /// Stdout as (lossy) UTF-8.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Stderr as (lossy) UTF-8.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Transport failures.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    /// The SSH connection could not be made.
    #[error("cannot connect to {host} ({target}): {reason}")]
    Connect {
        /// Inventory name.
        host: String,
        /// user@address:port as attempted.
        target: String,
        /// What ssh said.
        reason: String,
    },
    /// The connection broke while a command ran.
    #[error("connection to {host} lost: {reason}")]
    Lost {
        /// Inventory name.
        host: String,
        /// What happened.
        reason: String,
    },
}
