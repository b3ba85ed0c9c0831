//! `provision debug`: the troubleshooting one-liners, on many hosts at once.

mod inspect;
mod logs;

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::cli::{DebugCommand, ExecArgs, Global};
use crate::error::Result;
use crate::output::{self, Style, paint};
use crate::project::{HostSpec, Project};
use crate::transport::ssh::Ssh;
use crate::transport::{Output, TransportError};
use crate::vars::template::shell_quote;

/// How many hosts a debug command talks to at once.
const FORKS: usize = 50;

/// Runs a debug subcommand.
pub fn run(g: &Global, cmd: &DebugCommand) -> Result<i32> {
    let project = Project::load(g.inventory.as_deref(), &g.extra_vars)?;
    match cmd {
        DebugCommand::Exec(args) => exec(&project, args),
        DebugCommand::Logs(args) => logs::run(&project, args),
        DebugCommand::Ps(args) => inspect::ps(&project, args),
        DebugCommand::Config(args) => inspect::config(&project, &args.target),
        DebugCommand::Cleanup(args) => inspect::cleanup(&project, args),
    }
}

fn exec(project: &Project, args: &ExecArgs) -> Result<i32> {
    let hosts = project.hosts(Some(&args.target))?;
    let script = args.command.iter().map(|a| shell_quote(a)).collect::<Vec<_>>().join(" ");
    print_grouped(&hosts, &run_on_each(&hosts, |_| script.clone()), |_, out| out.to_string())
}

/// Runs each host's script concurrently; results in host order.
pub(super) fn run_on_each(hosts: &[HostSpec], script: impl Fn(&HostSpec) -> String) -> Vec<Result<Output, TransportError>> {
    let sem = Arc::new(Semaphore::new(FORKS));
    let jobs: Vec<_> = hosts.iter().map(|h| (h.connection.clone(), script(h))).collect();
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return hosts.iter().map(|h| Err(TransportError::Lost { host: h.vars.host.clone(), reason: e.to_string() })).collect(),
    };
    rt.block_on(async {
        let tasks: Vec<_> = jobs
            .into_iter()
            .map(|(conn, script)| {
                let sem = sem.clone();
                tokio::spawn(async move {
                    let _permit = sem.acquire().await;
                    let ssh = Ssh::connect(&conn).await?;
                    let out = ssh.run(&script).await;
                    ssh.close().await;
                    out
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap_or_else(|e| Err(TransportError::Lost { host: "?".into(), reason: e.to_string() })));
        }
        out
    })
}

/// Prints each host's output under a `HOST | rc=N >>` header (`render` may rewrite it, e.g. to
/// redact tokens); exit 1 if any host failed or was unreachable.
pub(super) fn print_grouped(
    hosts: &[HostSpec],
    results: &[Result<Output, TransportError>],
    render: impl Fn(&HostSpec, &str) -> String,
) -> Result<i32> {
    let width = hosts.iter().map(|h| h.vars.host.len()).max().unwrap_or(0);
    let mut failed = 0;
    for (host, result) in hosts.iter().zip(results) {
        let name = output::host_prefix(&host.vars.host, width);
        match result {
            Ok(out) => {
                let rc = out.status.map_or("signal".to_string(), |c| c.to_string());
                let style = if out.success() { Style::Green } else { Style::Red };
                if !out.success() {
                    failed += 1;
                }
                let body = render(host, &format!("{}{}", out.stdout_text(), out.stderr_text()));
                output::out(&format!("{name} | {} >>\n{body}", paint(style, &format!("rc={rc}"))));
            }
            Err(e) => {
                failed += 1;
                output::out(&format!("{name} | {} >>\n{e}\n", paint(Style::Red, "UNREACHABLE")));
            }
        }
    }
    super::hosts_exit(failed)
}

pub(super) use super::runtime;
