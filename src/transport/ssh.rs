//! SSH sessions through the `openssh` crate (the system ssh binary, multiplexed).

use openssh::Stdio;

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use openssh::{ControlPersist, KnownHosts, Session, SessionBuilder};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

use super::{HostKeyChecking, Output, Remote, TransportError};
use crate::sh::Cmd;
use crate::transport::connection::Connection;

/// An open connection to one host.
pub struct Ssh {
    session: Session,
    host: String,
    become_root: bool,
    /// Leave the master running for the next run instead of closing it.
    persist: bool,
    /// Whether this is a master left by an earlier run.
    pub reused: bool,
}

impl Ssh {
    /// Opens a connection: reuses a live master connection an earlier run left for exactly these
    /// settings, or starts one. Host keys are checked strictly unless the inventory turned
    /// checking off for this host.
    pub async fn connect(conn: &Connection) -> Result<Ssh, TransportError> {
        let dir = if conn.control_persist > 0 { control_dir(conn) } else { None };
        if let Some(dir) = &dir {
            for (ctl, log) in live_candidates(dir) {
                let session = Session::resume_mux(ctl.clone().into_boxed_path(), Some(log.into_boxed_path()));
                if session.check().await.is_ok() {
                    return Ok(Ssh { session, host: conn.host.clone(), become_root: conn.become_root, persist: true, reused: true });
                }
                // A master that is gone: forget its socket (detach so nothing is closed twice).
                let _ = session.detach();
                if let Some(parent) = ctl.parent() {
                    let _ = std::fs::remove_dir_all(parent);
                }
            }
        }
        Self::connect_new(conn, dir).await
    }

    /// Replaces a reused master that turned out dead on the remote side (a rebooted or
    /// recreated host) with a new connection.
    pub async fn reconnect(self, conn: &Connection) -> Result<Ssh, TransportError> {
        // Asks the stale master to exit, so later runs do not pick it up again.
        let _ = self.session.close().await;
        let dir = if conn.control_persist > 0 { control_dir(conn) } else { None };
        Self::connect_new(conn, dir).await
    }

    /// Starts a new master connection, bypassing any persisted one.
    async fn connect_new(conn: &Connection, dir: Option<PathBuf>) -> Result<Ssh, TransportError> {
        let mut b = SessionBuilder::default();
        if let Some(u) = &conn.user {
            b.user(u.clone());
        }
        if let Some(p) = conn.port {
            b.port(p);
        }
        if let Some(k) = &conn.ssh_key {
            // ssh itself would only say "Permission denied (publickey)".
            if !k.is_file() {
                return Err(TransportError::Connect {
                    host: conn.host.clone(),
                    target: target(conn),
                    reason: format!("the SSH key file {} (ssh_key) does not exist or is not a file", k.display()),
                });
            }
            b.keyfile(k);
        }
        if let Some(f) = &conn.ssh_config_file {
            b.config_file(f);
        }
        if let Some(j) = &conn.jump {
            b.jump_hosts(j.split(',').map(str::trim));
        }
        match conn.host_key_checking {
            HostKeyChecking::Strict | HostKeyChecking::AcceptNew => {
                let trust_new = conn.host_key_checking == HostKeyChecking::AcceptNew;
                b.known_hosts_check(if trust_new { KnownHosts::Add } else { KnownHosts::Strict });
                if let Some(f) = &conn.known_hosts_file {
                    b.user_known_hosts_file(f);
                }
            }
            HostKeyChecking::Off => {
                b.known_hosts_check(KnownHosts::Accept);
                b.user_known_hosts_file("/dev/null");
            }
        }
        b.connect_timeout(std::time::Duration::from_secs(conn.connect_timeout));
        b.server_alive_interval(std::time::Duration::from_secs(5));
        let persist = match (&dir, NonZeroUsize::new(conn.control_persist as usize)) {
            (Some(d), Some(secs)) => {
                b.control_directory(d);
                b.control_persist(ControlPersist::IdleFor(secs));
                true
            }
            _ => {
                b.control_directory(std::env::temp_dir());
                false
            }
        };
        let session = b.connect_mux(&conn.address).await.map_err(|e| TransportError::Connect {
            host: conn.host.clone(),
            target: target(conn),
            reason: explain(&e),
        })?;
        Ok(Ssh { session, host: conn.host.clone(), become_root: conn.become_root, persist, reused: false })
    }

    /// Runs a POSIX sh script of any size (as root through `sudo -n` when the host uses
    /// become) in one round trip, and collects its output.
    ///
    /// The script travels on stdin into a private temp file (in /run, a tmpfs, when writable)
    /// and runs from there with stdin from /dev/null: a command inside it that reads stdin
    /// cannot swallow the rest of the script, and no argument-length limit applies.
    pub async fn run(&self, script: &str) -> Result<Output, TransportError> {
        self.run_observed(script, &|_| {}).await
    }

    /// [`Ssh::run`], handing each line of standard output to `on_line` as it arrives (stderr is
    /// read alongside, so neither pipe can fill and stall the script).
    pub async fn run_observed(&self, script: &str, on_line: &(dyn Fn(&str) + Sync)) -> Result<Output, TransportError> {
        // The script's exit status travels as a stderr trailer and the wrapper itself exits 0:
        // the openssh crate turns a remote status of 127 into an error and drops the output.
        const RUNNER: &str = "umask 077; t=$(mktemp /run/provision.XXXXXX 2>/dev/null || mktemp) || exit 125; \\
            cat > \"$t\" || { rm -f \"$t\"; exit 125; }; sh \"$t\" </dev/null; rc=$?; rm -f \"$t\"; \\
            printf '\\n@@provision-exit %s\\n' \"$rc\" >&2; exit 0";
        let mut cmd = self.session.raw_command(self.wrap(RUNNER));
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let lost = |e: openssh::Error| TransportError::Lost { host: self.host.clone(), reason: explain(&e) };
        let mut child = cmd.spawn().await.map_err(lost)?;
        if let Some(mut pipe) = child.stdin().take() {
            pipe.write_all(script.as_bytes()).await.map_err(|e| TransportError::Lost { host: self.host.clone(), reason: e.to_string() })?;
            drop(pipe);
        }
        let stdout_pipe = child.stdout().take();
        let stderr_pipe = child.stderr().take();
        let read_stdout = async {
            let mut all = Vec::new();
            if let Some(pipe) = stdout_pipe {
                let mut reader = tokio::io::BufReader::new(pipe);
                loop {
                    let from = all.len();
                    match reader.read_until(b'\n', &mut all).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => on_line(String::from_utf8_lossy(&all[from..]).trim_end_matches('\n')),
                    }
                }
            }
            all
        };
        let read_stderr = async {
            let mut all = Vec::new();
            if let Some(mut pipe) = stderr_pipe {
                let _ = pipe.read_to_end(&mut all).await;
            }
            all
        };
        let (stdout, stderr) = tokio::join!(read_stdout, read_stderr);
        let status = child.wait().await.map_err(lost)?;
        let (status, stderr) = split_exit_trailer(stderr, status.code());
        Ok(Output { status, stdout, stderr })
    }

    /// Starts a short POSIX sh command whose output is read as it comes (e.g. `journalctl -f`).
    /// The command is ended on the host when the returned [`Stream`] is dropped: its stdin closes
    /// and a watcher kills it, so nothing keeps running there after the user pressed Ctrl-C.
    pub async fn stream(&self, command: &str) -> Result<Stream<'_>, TransportError> {
        // The command and a stdin watcher race: the command ending ends the stream; stdin
        // closing (the stream dropped) kills the command. fd 3 keeps the real stdin for the
        // watcher, since background jobs get /dev/null; the watcher's own output goes nowhere so
        // only the command holds the channel open.
        let watched = format!(
            "exec 3<&0; ( {command} ) </dev/null & p=$!; \
             ( cat <&3 >/dev/null 2>&1; kill \"$p\" 2>/dev/null ) >/dev/null 2>&1 & w=$!; \
             wait \"$p\"; rc=$?; kill \"$w\" 2>/dev/null; exit $rc"
        );
        let mut cmd = self.session.raw_command(self.wrap(&format!("exec 2>&1; {watched}")));
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null());
        let mut child = cmd.spawn().await.map_err(|e| TransportError::Lost { host: self.host.clone(), reason: explain(&e) })?;
        let stdout = child.stdout().take().expect("stdout was piped");
        Ok(Stream { child, lines: tokio::io::BufReader::new(stdout).lines() })
    }

    /// Streams a local file to `remote` on the host (root-only mode), without holding it in
    /// memory; for image archives and other large inputs of the apply script.
    pub async fn upload(&self, local: &Path, remote: &str) -> Result<(), TransportError> {
        let lost = |reason: String| TransportError::Lost { host: self.host.clone(), reason };
        let mut file = tokio::fs::File::open(local).await.map_err(|e| lost(format!("cannot read {}: {e}", local.display())))?;
        let size = file.metadata().await.map_err(|e| lost(format!("cannot read {}: {e}", local.display())))?.len();
        let script = crate::sh::receive_upload(remote, size);
        let mut cmd = self.session.raw_command(self.wrap(&script));
        cmd.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().await.map_err(|e| lost(explain(&e)))?;
        if let Some(mut pipe) = child.stdin().take() {
            tokio::io::copy(&mut file, &mut pipe).await.map_err(|e| lost(format!("uploading {}: {e}", local.display())))?;
            pipe.shutdown().await.map_err(|e| lost(e.to_string()))?;
        }
        let out = child.wait_with_output().await.map_err(|e| lost(explain(&e)))?;
        if !out.status.success() {
            return Err(lost(format!("writing {remote} failed: {}", String::from_utf8_lossy(&out.stderr).trim())));
        }
        Ok(())
    }

    /// The remote command line that runs `script` with sh, through `sudo -n` when becoming root.
    fn wrap(&self, script: &str) -> String {
        let sh = Cmd::new("sh").arg("-c").arg(script);
        if self.become_root { Cmd::new("sudo").arg("-n").raw(&sh.render()).render() } else { sh.render() }
    }

    /// Ends this use of the connection: a persisted master is left running (it exits by
    /// itself after `ssh_control_persist` idle seconds), any other is closed.
    pub async fn close(self) {
        if self.persist {
            let _ = self.session.detach();
        } else {
            let _ = self.session.close().await;
        }
    }
}

impl Remote for Ssh {
    fn run(&self, script: &str) -> impl std::future::Future<Output = Result<Output, TransportError>> + Send {
        Ssh::run(self, script)
    }

    fn upload(&self, local: &Path, remote: &str) -> impl std::future::Future<Output = Result<(), TransportError>> + Send {
        Ssh::upload(self, local, remote)
    }

    fn run_observed(
        &self,
        script: &str,
        on_line: &(dyn Fn(&str) + Sync),
    ) -> impl std::future::Future<Output = Result<Output, TransportError>> + Send {
        Ssh::run_observed(self, script, on_line)
    }
}

/// Output of a command started with [`Ssh::stream`], line by line.
pub struct Stream<'s> {
    // Kept alive for its stdin: dropping it ends the command on the host.
    #[allow(dead_code)]
    child: openssh::Child<&'s Session>,
    lines: tokio::io::Lines<tokio::io::BufReader<openssh::ChildStdout>>,
}

impl Stream<'_> {
    /// The next line, or `None` when the command ended.
    pub async fn next_line(&mut self) -> Option<String> {
        self.lines.next_line().await.ok().flatten()
    }
}

/// The private directory holding persisted master sockets for exactly these connection
/// settings, or `None` when no safe place exists (then connections are not persisted).
fn control_dir(conn: &Connection) -> Option<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let uid = effective_uid()?;
    let base = match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("provision"),
        _ => std::env::temp_dir().join(format!("provision-{uid}")),
    };
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&base);
    let meta = std::fs::symlink_metadata(&base).ok()?;
    // Someone else's directory, or one others can write to, is not a place for our sockets.
    if !meta.is_dir() || meta.uid() != uid || meta.permissions().mode() & 0o077 != 0 {
        return None;
    }
    let key = format!("{conn:?}");
    let dir = base.join(&hex::encode(Sha256::digest(key.as_bytes()))[..16]);
    std::fs::DirBuilder::new().mode(0o700).create(&dir).or_else(|e| if dir.is_dir() { Ok(()) } else { Err(e) }).ok()?;
    Some(dir)
}

/// Our effective uid: the owner of `/proc/self` (Linux), without reaching for libc.
fn effective_uid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

/// Sockets of masters earlier runs left in `dir`, newest first.
fn live_candidates(dir: &Path) -> Vec<(PathBuf, PathBuf)> {
    let mut found: Vec<(std::time::SystemTime, PathBuf, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let sub = e.path();
            let ctl = sub.join("master");
            let modified = std::fs::symlink_metadata(&ctl).ok()?.modified().ok()?;
            Some((modified, ctl, sub.join("log")))
        })
        .collect();
    found.sort_by_key(|f| std::cmp::Reverse(f.0));
    found.into_iter().map(|(_, c, l)| (c, l)).collect()
}

/// Takes the `@@provision-exit N` trailer off stderr: the script's own status. Without it (the
/// connection dropped, or the wrapper could not run) the ssh status stands.
fn split_exit_trailer(mut stderr: Vec<u8>, ssh_status: Option<i32>) -> (Option<i32>, Vec<u8>) {
    const MARK: &[u8] = b"\n@@provision-exit ";
    let Some(pos) = stderr.windows(MARK.len()).rposition(|w| w == MARK) else { return (ssh_status, stderr) };
    let tail = String::from_utf8_lossy(&stderr[pos + MARK.len()..]).trim().to_string();
    match tail.parse::<i32>() {
        Ok(rc) => {
            stderr.truncate(pos);
            (Some(rc), stderr)
        }
        Err(_) => (ssh_status, stderr),
    }
}

fn target(conn: &Connection) -> String {
    let user = conn.user.as_deref().map(|u| format!("{u}@")).unwrap_or_default();
    let port = conn.port.map(|p| format!(":{p}")).unwrap_or_default();
    format!("{user}{}{port}", conn.address)
}

/// ssh's own words, which name the real problem (refused, host key, permission denied).
fn explain(e: &openssh::Error) -> String {
    let msg = crate::error::chain(e);
    let msg = msg.trim().replace('\n', " ").replace('\r', "");
    match host_key_problem(&msg) {
        Some(problem) => format!("{msg} ({})", problem.advice()),
        None => msg,
    }
}

/// Why ssh refused a host key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HostKeyProblem {
    /// The key differs from the one recorded: possibly an attack.
    Changed,
    /// No key is recorded for the host.
    Unknown,
}

impl HostKeyProblem {
    /// What to do about it. A changed key is never answered with "turn checking off".
    fn advice(self) -> &'static str {
        match self {
            HostKeyProblem::Changed => {
                "the host key CHANGED since it was recorded: someone may be intercepting the connection; verify the new key with \
                 the host's owner, then remove the old entry (ssh-keygen -R) from known_hosts"
            }
            HostKeyProblem::Unknown => {
                "the host key is unknown: add it to known_hosts after checking it, or set ssh_host_key_checking: accept-new \
                 to trust it on first use (a later change is still refused)"
            }
        }
    }
}

/// Reads ssh's words for a refused host key.
fn host_key_problem(msg: &str) -> Option<HostKeyProblem> {
    if msg.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") || (msg.contains("Host key for") && msg.contains("has changed")) {
        Some(HostKeyProblem::Changed)
    } else if msg.contains("Host key verification failed") || msg.contains("host key is known for") {
        Some(HostKeyProblem::Unknown)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::{HostKeyProblem, host_key_problem, split_exit_trailer};

    #[test]
    fn an_unknown_key_suggests_accept_new_and_a_changed_one_never_suggests_turning_checking_off() {
        let unknown =
            "No ED25519 host key is known for [127.0.0.1]:2222 and you have requested strict checking. Host key verification failed.";
        assert_eq!(host_key_problem(unknown), Some(HostKeyProblem::Unknown));
        assert!(HostKeyProblem::Unknown.advice().contains("ssh_host_key_checking: accept-new"));
        let changed = "@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@ ... Host key for [127.0.0.1]:2222 has changed and you have \
                       requested strict checking. Host key verification failed.";
        assert_eq!(host_key_problem(changed), Some(HostKeyProblem::Changed));
        assert!(!HostKeyProblem::Changed.advice().contains("ssh_host_key_checking"));
        assert_eq!(host_key_problem("Connection refused"), None);
    }

    #[test]
    fn exit_trailer() {
        assert_eq!(split_exit_trailer(b"oops\n\n@@provision-exit 127\n".to_vec(), Some(0)), (Some(127), b"oops\n".to_vec()));
        assert_eq!(split_exit_trailer(b"\n@@provision-exit 0\n".to_vec(), Some(0)), (Some(0), vec![]));
        assert_eq!(split_exit_trailer(b"cut off".to_vec(), None), (None, b"cut off".to_vec()));
        assert_eq!(split_exit_trailer(b"\n@@provision-exit x\n".to_vec(), Some(3)).0, Some(3));
    }
}
