//! `provision debug`: the troubleshooting one-liners, on many hosts at once.
//!
//! These commands know no path, unit or container name: they ask each host's roles what they
//! own ([`roles::Owned`]). Output from hosts is shown with control characters escaped, so a
//! host cannot drive the terminal; provision's own colors stay.

mod inspect;
mod logs;

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::cli::{DebugCommand, ExecArgs, Global};
use crate::error::{InputError, Result};
use crate::output::{self, Style, paint};
use crate::project::{HostSpec, Project};
use crate::roles::{Fleet, Owned};
use crate::sh::Cmd;
use crate::transport::ssh::Ssh;
use crate::transport::{Output, TransportError};

/// How many hosts a debug command talks to at once.
const FORKS: usize = 50;

/// Runs a debug subcommand.
pub fn run(g: &Global, cmd: &DebugCommand) -> Result<i32> {
    let project = super::load_project(g)?;
    super::cache_keys::register_known(&project);
    let limit = g.limit.as_deref();
    match cmd {
        DebugCommand::Exec(args) => exec(&project, limit, args),
        DebugCommand::Logs(args) => logs::run(&project, limit, args),
        DebugCommand::Ps(args) => inspect::ps(&project, limit, args),
        DebugCommand::Config(args) => inspect::config(&project, limit, &args.target),
        DebugCommand::Cleanup(args) => inspect::cleanup(&project, limit, args),
    }
}

/// The hosts `target` selects, narrowed by `--limit`, resolved.
fn targets(project: &Project, limit: Option<&str>, target: &str) -> Result<Vec<HostSpec>> {
    project.resolve(&target_names(project, limit, target)?)
}

/// The names of the hosts `target` selects, narrowed by `--limit`.
fn target_names(project: &Project, limit: Option<&str>, target: &str) -> Result<Vec<String>> {
    let mut names = project.select(Some(target))?;
    if let Some(l) = limit {
        let allowed = project.select(Some(l))?;
        names.retain(|n| allowed.contains(n));
        if names.is_empty() {
            return Err(InputError::plain(format!("no host matches both `{target}` and --limit `{l}`")).into());
        }
    }
    Ok(names)
}

/// What the roles of each host own, in host order.
fn owned(project: &Project, hosts: &[HostSpec]) -> Result<Vec<Owned>> {
    let fleet = Fleet::new(project, hosts);
    let mut out = Vec::new();
    for h in hosts {
        out.push(Owned::of(&*fleet.host(&h.vars.host)?));
    }
    Ok(out)
}

fn exec(project: &Project, limit: Option<&str>, args: &ExecArgs) -> Result<i32> {
    // Only the connection vars: running a command needs no role var (nor the secrets they read).
    let hosts = project.connections(&target_names(project, limit, &args.target)?)?;
    let mut words = args.command.iter();
    let script = match words.next() {
        Some(program) => Cmd::new(program).args(words).render(),
        None => String::new(),
    };
    let jobs = hosts.iter().map(|_| Job::Run(script.clone())).collect();
    print_grouped(&hosts, &run_on_each(&hosts, jobs), |_, out| out.to_string())
}

/// What a debug command does on one host.
pub(super) enum Job {
    /// Run this script.
    Run(String),
    /// Nothing to run there; say why.
    Skip(String),
}

/// What came of one host's [`Job`].
pub(super) enum HostResult {
    /// The script ran (or the host was unreachable).
    Ran(Result<Output, TransportError>),
    /// Nothing ran, for this reason.
    Skipped(String),
}

/// Runs each host's job (one per host, in host order) concurrently; results in host order.
pub(super) fn run_on_each(hosts: &[HostSpec], jobs: Vec<Job>) -> Vec<HostResult> {
    let sem = Arc::new(Semaphore::new(FORKS));
    let jobs: Vec<_> = hosts.iter().map(|h| h.connection.clone()).zip(jobs).collect();
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            return hosts
                .iter()
                .map(|h| HostResult::Ran(Err(TransportError::Lost { host: h.vars.host.clone(), reason: e.to_string() })))
                .collect();
        }
    };
    rt.block_on(async {
        let tasks: Vec<_> = jobs
            .into_iter()
            .map(|(conn, job)| {
                let sem = sem.clone();
                tokio::spawn(async move {
                    let script = match job {
                        Job::Run(s) => s,
                        Job::Skip(why) => return HostResult::Skipped(why),
                    };
                    let _permit = sem.acquire().await;
                    let ssh = match Ssh::connect(&conn).await {
                        Ok(s) => s,
                        Err(e) => return HostResult::Ran(Err(e)),
                    };
                    let out = ssh.run(&script).await;
                    ssh.close().await;
                    HostResult::Ran(out)
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap_or_else(|e| HostResult::Ran(Err(TransportError::Lost { host: "?".into(), reason: e.to_string() }))));
        }
        out
    })
}

/// Prints each host's output under a `HOST | rc=N >>` header (`render` may rewrite it, e.g. to
/// redact tokens), control characters escaped; exit 1 if any host failed or was unreachable.
pub(super) fn print_grouped(hosts: &[HostSpec], results: &[HostResult], render: impl Fn(usize, &str) -> String) -> Result<i32> {
    let width = hosts.iter().map(|h| h.vars.host.len()).max().unwrap_or(0);
    let mut failed = 0;
    for (i, (host, result)) in hosts.iter().zip(results).enumerate() {
        let name = output::host_prefix(&host.vars.host, width);
        match result {
            HostResult::Ran(Ok(out)) => {
                let rc = out.status.map_or("signal".to_string(), |c| c.to_string());
                let style = if out.success() { Style::Green } else { Style::Red };
                if !out.success() {
                    failed += 1;
                }
                let body = escape_controls(&render(i, &format!("{}{}", out.stdout_text(), out.stderr_text())));
                output::out(&format!("{name} | {} >>\n{body}", paint(style, &format!("rc={rc}"))));
            }
            HostResult::Ran(Err(e)) => {
                failed += 1;
                output::out(&format!("{name} | {} >>\n{}\n", paint(Style::Red, "UNREACHABLE"), escape_controls(&e.to_string())));
            }
            HostResult::Skipped(why) => output::out(&format!("{name} | {} >>\n{why}\n", paint(Style::Yellow, "skipped"))),
        }
    }
    super::hosts_exit(failed)
}

/// Text from a host with every control character but newline and tab shown as `\xNN` /
/// `\u{NNNN}`: escape sequences, carriage returns and backspaces cannot reach the terminal.
pub(super) fn escape_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' | '\t' => out.push(c),
            c if c.is_control() && (c as u32) < 0x100 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') => {
                out.push_str(&format!("\\u{{{:04x}}}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

pub(super) use super::runtime;

#[cfg(test)]
mod tests {
    use super::escape_controls;

    #[test]
    fn host_output_cannot_drive_the_terminal() {
        assert_eq!(escape_controls("ok\n\x1b]0;pwned\x07\x1b[2J\r\tx"), "ok\n\\x1b]0;pwned\\x07\\x1b[2J\\x0d\tx");
        assert_eq!(escape_controls("\u{9b}31m \u{202e}"), "\\x9b31m \\u{202e}");
    }
}
