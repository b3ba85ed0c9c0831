//! `provision debug logs`: journals and container logs, by role or by name, grouped per host
//! or followed from every target at once.

use crate::cli::LogsArgs;
use crate::error::Result;
use crate::output;
use crate::project::{HostSpec, Project};
use crate::roles;
use crate::transport::ssh::Ssh;
use crate::vars::template::shell_quote as q;

/// What `debug logs` shows for a host when no unit is named.
pub fn default_units(host: &HostSpec) -> Vec<String> {
    let mut units = Vec::new();
    if roles::has_role(host, roles::docker_tls::ROLE.name) {
        units.push("docker.service".to_string());
        if roles::docker_tls::ci_daemon_enabled(host) {
            units.push("docker-ci.service".to_string());
        }
    }
    if roles::has_role(host, roles::runner::ROLE.name) {
        units.push(match host.vars.str("runner_install") {
            Some("package") => "gitlab-runner.service".to_string(),
            _ => host.vars.str("runner_container_name").unwrap_or("gitlab-runner").to_string(),
        });
    }
    units
}

/// The short names operators use, and what they mean on the host.
fn resolve(name: &str) -> String {
    match name {
        "docker" => "docker.service",
        "docker-ci" => "docker-ci.service",
        "registry" => "registry-cache",
        "cleanup" => "docker-cleanup.service",
        "dind-cleanup" => "docker-cleanup-dind.service",
        other => other,
    }
    .to_string()
}

/// sh printing (or following) the log of `name`: a container's log if a container has that
/// name, else the systemd journal of the unit.
fn log_command(name: &str, args: &LogsArgs) -> String {
    let n = args.lines;
    let follow = if args.follow { " -f" } else { "" };
    let since_j = args.since.as_deref().map(|s| format!(" --since {}", q(s))).unwrap_or_default();
    let journal = format!("journalctl -u {} -n {n} --no-pager -o short-iso{since_j}{follow}", q(name));
    let docker = format!(
        "docker logs --tail {n}{}{follow} {} 2>&1",
        args.since.as_deref().map(|s| format!(" --since {}", q(s))).unwrap_or_default(),
        q(name)
    );
    if name.ends_with(".service") || name.ends_with(".timer") {
        return journal;
    }
    format!(
        "if docker inspect --type container {nq} >/dev/null 2>&1; then {docker}; \
         elif [ -n \"$(systemctl show -p LoadState --value {nq} 2>/dev/null | grep -v not-found)\" ]; then {journal}; \
         else echo 'no container or systemd unit named {plain}'; exit 1; fi",
        nq = q(name),
        plain = name.replace('\'', ""),
    )
}

/// Runs the command.
pub fn run(project: &Project, args: &LogsArgs) -> Result<i32> {
    let hosts = project.hosts(Some(&args.target))?;
    let units = |h: &HostSpec| if args.units.is_empty() { default_units(h) } else { args.units.iter().map(|u| resolve(u)).collect() };
    if args.follow {
        return follow(&hosts, &units, args);
    }
    let results = super::run_on_each(&hosts, |h| {
        units(h)
            .iter()
            .map(|u| format!("printf '==> %s <==\\n' {}\n{}\n", q(u), log_command(u, args)))
            .collect::<Vec<_>>()
            .join("rc=$?; [ \"$rc\" -eq 0 ] || failed=$rc\n")
            + "rc=$?; [ \"$rc\" -eq 0 ] || failed=$rc\nexit ${failed:-0}\n"
    });
    super::print_grouped(&hosts, &results, |_, out| out.to_string())
}

/// Streams every (host, unit) at once, each line prefixed, until Ctrl-C (or every stream ends).
fn follow(hosts: &[HostSpec], units: &dyn Fn(&HostSpec) -> Vec<String>, args: &LogsArgs) -> Result<i32> {
    let pairs: Vec<(HostSpec, String)> = hosts.iter().flat_map(|h| units(h).into_iter().map(move |u| (h.clone(), u))).collect();
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
                                    Some(line) => output::out(&format!("{label} | {line}\n")),
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
