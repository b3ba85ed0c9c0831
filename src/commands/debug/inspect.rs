//! `provision debug ps`, `config` and `cleanup`: the daemons, config files and cleanup
//! services come from what each host's roles own.

use super::Job;
use crate::cli::PsArgs;
use crate::error::Result;
use crate::project::Project;
use crate::roles::owned::{ConfigFile, Owned};
use crate::roles::redact;
use crate::sh::{Cmd, Script};

const PS_FORMAT: &str = "table {{.Names}}\\t{{.Image}}\\t{{.Status}}\\t{{.Ports}}";

/// Containers on the host's daemons (the host daemon, and the CI daemon when there is one), or
/// inside dind.
pub fn ps(project: &Project, limit: Option<&str>, args: &PsArgs) -> Result<i32> {
    let hosts = super::targets(project, limit, &args.target)?;
    let owned = super::owned(project, &hosts)?;
    let jobs: Vec<Job> = owned.iter().map(|o| ps_job(o, args.dind)).collect();
    let results = super::run_on_each(&hosts, jobs);
    super::print_grouped(&hosts, &results, |_, out| out.to_string())
}

fn ps_job(owned: &Owned, dind: bool) -> Job {
    let daemons: Vec<_> = owned.daemons.iter().filter(|d| d.dind == dind).collect();
    if daemons.is_empty() {
        return Job::Skip("no dind engine here (the host has no dind role)".into());
    }
    let mut s = Script::new();
    s.line("rc=0");
    for (i, d) in daemons.iter().enumerate() {
        if i > 0 {
            s.cmd(&Cmd::new("printf").arg("\\n==> %s <==\\n").arg(d.label));
        }
        let cmd = Cmd::new("docker").arg("-H").arg(format!("unix://{}", d.socket)).args(["ps", "-a", "--format", PS_FORMAT]);
        s.cmd(&cmd.raw("|| rc=$?"));
    }
    s.line("exit $rc");
    Job::Run(s.into_string())
}

/// The config files each host's roles write, with secrets redacted from their parsed content:
/// these come from the host's files, not from vars.
pub fn config(project: &Project, limit: Option<&str>, target: &str) -> Result<i32> {
    let hosts = super::targets(project, limit, target)?;
    let owned = super::owned(project, &hosts)?;
    let jobs: Vec<Job> = owned.iter().map(|o| config_job(&o.config_files)).collect();
    let results = super::run_on_each(&hosts, jobs);
    super::print_grouped(&hosts, &results, |i, out| render_config(&owned[i].config_files, out))
}

fn header(path: &str) -> String {
    format!("==> {path} <==")
}

fn config_job(files: &[ConfigFile]) -> Job {
    if files.is_empty() {
        return Job::Skip("no config files here (none of the host's roles writes one)".into());
    }
    let mut s = Script::new();
    for f in files {
        s.set("f", &f.path);
        s.cmd(&Cmd::new("printf").arg("%s\\n").arg(header(&f.path)));
        // A symlink could point anywhere (config.toml's directory is writable from the runner
        // container): it is not followed.
        s.line(
            "if [ -L \"$f\" ]; then echo '(a symlink: not read)'; elif [ -f \"$f\" ]; then cat -- \"$f\"; else echo '(not present)'; fi",
        );
    }
    Job::Run(s.into_string())
}

/// Splits the output at the file headers and redacts each file by its format.
fn render_config(files: &[ConfigFile], out: &str) -> String {
    let mut rendered = String::new();
    let mut current: Option<&ConfigFile> = None;
    let mut body = String::new();
    let flush = |file: Option<&ConfigFile>, body: &mut String, rendered: &mut String| {
        match file {
            Some(f) if !body.starts_with("(not present)") && !body.starts_with("(a symlink") => {
                rendered.push_str(&redact::redact(body, f.format));
            }
            // Anything before the first header, or a placeholder line: not file content.
            _ => rendered.push_str(&crate::vars::secret::Redactor::redact(body)),
        }
        body.clear();
    };
    for line in out.split_inclusive('\n') {
        if let Some(f) = files.iter().find(|f| line.trim_end_matches('\n') == header(&f.path)) {
            flush(current, &mut body, &mut rendered);
            rendered.push_str(line);
            current = Some(f);
        } else {
            body.push_str(line);
        }
    }
    flush(current, &mut body, &mut rendered);
    rendered
}

/// Runs each host's cleanup service now and shows the journal of that run.
pub fn cleanup(project: &Project, limit: Option<&str>, args: &PsArgs) -> Result<i32> {
    let hosts = super::targets(project, limit, &args.target)?;
    let owned = super::owned(project, &hosts)?;
    let jobs: Vec<Job> = owned
        .iter()
        .map(|o| match o.cleanup.iter().find(|c| c.dind == args.dind) {
            Some(c) => Job::Run(cleanup_script(&c.unit)),
            None if args.dind => Job::Skip("no dind cleanup service here (the host has no dind engine)".into()),
            None => Job::Skip("no cleanup service here (the host has no cleanup role; masters have none)".into()),
        })
        .collect();
    let results = super::run_on_each(&hosts, jobs);
    super::print_grouped(&hosts, &results, |_, out| out.to_string())
}

fn cleanup_script(unit: &str) -> String {
    let mut s = Script::new();
    s.set("u", unit);
    s.line("systemctl start \"$u\"; rc=$?");
    s.line("inv=$(systemctl show -p InvocationID --value \"$u\")");
    s.line("[ -n \"$inv\" ] && journalctl _SYSTEMD_INVOCATION_ID=\"$inv\" --no-pager -o short-iso");
    s.line("echo \"result: $(systemctl show -p Result --value \"$u\")\"");
    s.line("exit $rc");
    s.into_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roles::owned::ConfigFormat;

    #[test]
    fn each_file_is_redacted_by_its_format() {
        let files = vec![
            ConfigFile { path: "/etc/gitlab-runner/config.toml".into(), format: ConfigFormat::Toml },
            ConfigFile { path: "/etc/registry-cache/config.yml".into(), format: ConfigFormat::Yaml },
        ];
        let out = "==> /etc/gitlab-runner/config.toml <==\n[[runners]]\n  token = \"glrt-abc\"\n==> /etc/registry-cache/config.yml <==\nproxy:\n  password: \"pw\"\n";
        let shown = render_config(&files, out);
        assert!(shown.contains("token = \"***\"") && shown.contains("password: \"***\"") && !shown.contains("glrt-abc"), "{shown}");
        assert!(matches!(config_job(&[]), Job::Skip(_)));
    }
}
