//! `provision debug ps`, `config` and `cleanup`.

use crate::cli::PsArgs;
use crate::error::Result;
use crate::project::Project;
use crate::roles;
use crate::vars::template::shell_quote as q;

const PS_FORMAT: &str = "table {{.Names}}\\t{{.Image}}\\t{{.Status}}\\t{{.Ports}}";

/// Containers on the host daemon (and the CI daemon when there is one), or inside dind.
pub fn ps(project: &Project, args: &PsArgs) -> Result<i32> {
    let hosts = project.hosts(Some(&args.target))?;
    let results = super::run_on_each(&hosts, |h| {
        let format = q(PS_FORMAT);
        if args.dind {
            let socket = format!("unix://{}/docker.sock", h.vars.str("dind_socket_dir").unwrap_or("/var/run/provision-dind"));
            return format!("docker -H {} ps -a --format {format}", q(&socket));
        }
        let mut s = format!("docker ps -a --format {format}\n");
        if roles::docker_tls::ci_daemon_enabled(h) {
            s.push_str(&format!(
                "rc=$?; printf '\\n==> CI daemon <==\\n'; docker -H {} ps -a --format {format} || rc=$?; exit $rc\n",
                q(&format!("unix://{}", roles::docker_tls::CI_SOCKET))
            ));
        }
        s
    });
    super::print_grouped(&hosts, &results, |_, out| out.to_string())
}

/// The runner's config.toml (master), or the daemons' and the registry's config (slave), with
/// tokens and passwords redacted: these come from the host's files, not from vars.
pub fn config(project: &Project, target: &str) -> Result<i32> {
    let hosts = project.hosts(Some(target))?;
    let results = super::run_on_each(&hosts, |h| {
        let mut files = Vec::new();
        if roles::has_role(h, roles::runner::ROLE.name) {
            files.push(format!("{}/config.toml", h.vars.str("runner_config_dir").unwrap_or("/etc/gitlab-runner")));
        }
        if roles::has_role(h, roles::docker_tls::ROLE.name) {
            files.push("/etc/docker/daemon.json".into());
            if roles::docker_tls::ci_daemon_enabled(h) {
                files.push("/etc/docker-ci/daemon.json".into());
            }
        }
        if roles::has_role(h, roles::registry::ROLE.name) {
            files.push(format!("{}/config.yml", h.vars.str("registry_config_dir").unwrap_or("/etc/registry-cache")));
        }
        files
            .iter()
            .map(|f| format!("printf '==> %s <==\\n' {f}\nif [ -f {f} ]; then cat {f}; else echo '(not present)'; fi\n", f = q(f)))
            .collect::<String>()
    });
    super::print_grouped(&hosts, &results, |_, out| redact_config(out))
}

/// Replaces the values of token, password and secret keys in TOML, YAML and JSON text.
pub fn redact_config(text: &str) -> String {
    text.lines()
        .map(|line| {
            let lower = line.to_ascii_lowercase();
            let key_end = line.find(['=', ':']);
            match key_end {
                Some(i) if ["token", "password", "secret"].iter().any(|w| lower[..i].contains(w)) => {
                    format!("{} \"***\"{}", &line[..=i], if line.trim_end().ends_with(',') { "," } else { "" })
                }
                _ => line.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + if text.ends_with('\n') { "\n" } else { "" }
}

/// Runs the cleanup service now and shows the journal of that run.
pub fn cleanup(project: &Project, args: &PsArgs) -> Result<i32> {
    let hosts = project.hosts(Some(&args.target))?;
    let unit = if args.dind { "docker-cleanup-dind.service" } else { "docker-cleanup.service" };
    let results = super::run_on_each(&hosts, |_| {
        format!(
            "u={u}\nsystemctl start \"$u\"; rc=$?\ninv=$(systemctl show -p InvocationID --value \"$u\")\n\
             [ -n \"$inv\" ] && journalctl _SYSTEMD_INVOCATION_ID=\"$inv\" --no-pager -o short-iso\n\
             echo \"result: $(systemctl show -p Result --value \"$u\")\"\nexit $rc\n",
            u = q(unit)
        )
    });
    super::print_grouped(&hosts, &results, |_, out| out.to_string())
}

#[cfg(test)]
mod tests {
    use super::redact_config;

    #[test]
    fn tokens_and_passwords_are_redacted() {
        let toml = "[[runners]]\n  name = \"a\"\n  token = \"glrt-abc\"\n  url = \"https://x\"\n";
        assert_eq!(redact_config(toml), "[[runners]]\n  name = \"a\"\n  token = \"***\"\n  url = \"https://x\"\n");
        assert_eq!(redact_config("proxy:\n  password: \"s3\"\n"), "proxy:\n  password: \"***\"\n");
        assert_eq!(redact_config("{\"registry_token\": \"x\",\n}"), "{\"registry_token\": \"***\",\n}");
    }
}
