//! `provision debug logs`: journals and container logs, by role or by name, grouped per host
//! or followed from every target at once.

use crate::cli::LogsArgs;
use crate::error::Result;
use crate::output;
use crate::project::{HostSpec, Project};
use crate::roles::Owned;
use crate::sh::{Cmd, Script};
use crate::transport::ssh::Ssh;

use super::Job;

/// The units or containers to show on a host: those named (a role's short name such as
/// `registry`, or a unit or container name), else those its roles show by default.
fn units_for(owned: &Owned, named: &[String]) -> Vec<String> {
    if named.is_empty() {
        owned.logs.iter().filter(|l| l.by_default).map(|l| l.name.clone()).collect()
    } else {
        named.iter().map(|n| owned.resolve_log(n)).collect()
    }
}

/// sh printing (or following) the log of `name`: a container's log if a container has that
/// name, else the systemd journal of the unit.
fn log_command(name: &str, args: &LogsArgs) -> String {
    let n = args.lines.to_string();
    let mut journal = Cmd::new("journalctl").arg("-u").arg(name).args(["-n", &n, "--no-pager", "-o", "short-iso"]);
    let mut docker = Cmd::new("docker").args(["logs", "--tail", &n]);
    if let Some(since) = &args.since {
        journal = journal.arg("--since").arg(since);
        docker = docker.arg("--since").arg(since);
    }
    if args.follow {
        journal = journal.arg("-f");
        docker = docker.arg("-f");
    }
    let docker = docker.end_of_options().arg(name).raw("2>&1");
    if name.ends_with(".service") || name.ends_with(".timer") {
        return journal.render();
    }
    let is_container = Cmd::new("docker").args(["inspect", "--type", "container"]).end_of_options().arg(name).raw(">/dev/null 2>&1");
    let load_state = Cmd::new("systemctl").args(["show", "-p", "LoadState", "--value"]).end_of_options().arg(name).raw("2>/dev/null");
    let missing = Cmd::new("printf").arg("%s\\n").arg(format!("no container or systemd unit named {name}"));
    format!(
        "if {is_container}; then {docker}; \
         elif [ -n \"$({load_state} | grep -v not-found)\" ]; then {journal}; \
         else {missing}; exit 1; fi"
    )
}

/// Runs the command.
pub fn run(project: &Project, limit: Option<&str>, args: &LogsArgs) -> Result<i32> {
    let hosts = super::targets(project, limit, &args.target)?;
    let owned = super::owned(project, &hosts)?;
    let units: Vec<Vec<String>> = owned.iter().map(|o| units_for(o, &args.units)).collect();
    if args.follow {
        return follow(&hosts, &units, args);
    }
    let jobs = units
        .iter()
        .map(|units| {
            if units.is_empty() {
                return Job::Skip("nothing to show by default here (name a unit or container)".into());
            }
            let mut s = Script::new();
            for u in units {
                s.cmd(&Cmd::new("printf").arg("==> %s <==\\n").arg(u));
                s.line(&log_command(u, args));
                s.line("rc=$?; [ \"$rc\" -eq 0 ] || failed=$rc");
            }
            s.line("exit ${failed:-0}");
            Job::Run(s.into_string())
        })
        .collect();
    let results = super::run_on_each(&hosts, jobs);
    super::print_grouped(&hosts, &results, |_, out| out.to_string())
}

/// Streams every (host, unit) at once, each line prefixed, until Ctrl-C (or every stream ends).
fn follow(hosts: &[HostSpec], units: &[Vec<String>], args: &LogsArgs) -> Result<i32> {
    let pairs: Vec<(HostSpec, String)> =
        hosts.iter().zip(units).flat_map(|(h, us)| us.iter().map(move |u| (h.clone(), u.clone()))).collect();
    let width = pairs.iter().map(|(h, u)| h.vars.host.len() + u.len() + 1).max().unwrap_or(0);
    let rt = super::runtime()?;
    let failed = rt.block_on(async {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut tasks = tokio::task::JoinSet::new();
        for (host, unit) in pairs {
            let command = log_command(&unit, args);
            let mut stop = stop_rx.clone();
            tasks.spawn(async move {
                let label = output::host_prefix(&format!("{} {unit}", host.vars.host), width);
                let ssh = match Ssh::connect(&host.connection).await {
                    Ok(s) => s,
                    Err(e) => {
                        output::out(&format!("{label} | {e}\n"));
                        return 1;
                    }
                };
                let code = match ssh.stream(&command).await {
                    Ok(mut stream) => {
                        loop {
                            tokio::select! {
                                line = stream.next_line() => match line {
                                    Some(line) => output::out(&format!("{label} | {}\n", super::escape_controls(&line))),
                                    None => break,
                                },
                                _ = stop.changed() => break,
                            }
                        }
                        // Dropping the stream closes its stdin: the follower ends on the host.
                        drop(stream);
                        0
                    }
                    Err(e) => {
                        output::out(&format!("{label} | {e}\n"));
                        1
                    }
                };
                ssh.close().await;
                code
            });
        }
        let mut failed = 0;
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {
                    // Every stream stops, ends its follower on the host and closes its session.
                    let _ = stop_tx.send(true);
                    let drain = async { while tasks.join_next().await.is_some() {} };
                    if tokio::time::timeout(std::time::Duration::from_secs(5), drain).await.is_err() {
                        tasks.abort_all();
                    }
                    break;
                }
                next = tasks.join_next() => match next {
                    Some(Ok(code)) => failed += code,
                    Some(Err(_)) => failed += 1,
                    None => break,
                },
            }
        }
        failed
    });
    super::super::hosts_exit(failed as usize)
}
