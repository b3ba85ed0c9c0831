//! `provision cloud plan|apply|destroy|audit`.

use std::io::{BufRead, IsTerminal, Write};

use crate::cli::{CloudCommand, Format, Global};
use crate::cloud::{Action, Change, CloudError, Run, client, spec::CloudSpec};
use crate::error::{EXIT_OK, Error, InputError, Result};
use crate::output::{self, Style, paint};
use crate::project::Project;

/// Runs a `cloud` subcommand.
pub fn run(g: &Global, cmd: &CloudCommand) -> Result<i32> {
    let project = super::load_project(g)?;
    let spec = load_spec(&project)?;
    // Runner names the inventory accounts for (for audit): checked before any API call too.
    let known = if matches!(cmd, CloudCommand::Audit { .. }) { known_runners(&project)? } else { Vec::new() };
    let rt = super::runtime()?;
    rt.block_on(async {
        let c = client::connect(spec.region.as_deref()).await;
        let failed = |e: CloudError| Error::Other(e.to_string());
        match cmd {
            CloudCommand::Plan { format } => {
                let mut run = Run::new(&c, &spec, true);
                crate::cloud::stack::converge(&mut run).await.map_err(failed)?;
                match format {
                    Format::Human => print_changes(&run.changes, "plan", g.verbose > 0),
                    Format::Json => output::out(&format!("{}\n", plan_json(&spec, &c.region, &run.changes))),
                }
            }
            CloudCommand::Apply { yes } => {
                let mut plan = Run::new(&c, &spec, true);
                crate::cloud::stack::converge(&mut plan).await.map_err(failed)?;
                let pending = counts(&plan.changes);
                if pending[0] + pending[1] + pending[2] > 0 {
                    print_changes(&plan.changes, "plan", g.verbose > 0);
                    let question = format!("apply these changes to stack {}?", spec.stack);
                    if !*yes && !confirm(&question, "apply")? {
                        return Err(Error::Other("not confirmed: nothing was changed".into()));
                    }
                }
                let mut run = Run::new(&c, &spec, false);
                let result = crate::cloud::stack::converge(&mut run).await;
                print_changes(&run.changes, "applied", g.verbose > 0);
                let out = result.map_err(failed)?;
                let path = project.inventory.dir().join(&spec.inventory_file);
                let text = crate::cloud::inventory_out::render(&spec, &out, &c.region);
                if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
                    crate::certs::write_atomic(&path, text.as_bytes(), 0o644)
                        .map_err(|e| Error::Other(format!("cannot write {}: {e}", path.display())))?;
                    output::out(&format!("wrote {}\n", crate::source::display_path(&path)));
                }
            }
            CloudCommand::Destroy { yes } => {
                let mut plan = Run::new(&c, &spec, true);
                crate::cloud::stack::destroy(&mut plan).await.map_err(failed)?;
                if plan.changes.is_empty() {
                    output::out(&format!("nothing carries the tags of stack {}\n", spec.stack));
                    return Ok(EXIT_OK);
                }
                print_changes(&plan.changes, "to destroy", true);
                let question = format!("destroy these {} resources of stack {}?", plan.changes.len(), spec.stack);
                if !*yes && !confirm(&question, "destroy")? {
                    return Err(Error::Other("not confirmed: nothing was destroyed".into()));
                }
                let mut run = Run::new(&c, &spec, false);
                crate::cloud::stack::destroy(&mut run).await.map_err(failed)?;
                output::out(&format!("destroyed stack {}\n", spec.stack));
            }
            CloudCommand::Audit { terminate, yes } => {
                let run = Run::new(&c, &spec, false);
                let all = crate::cloud::audit::runner_instances(&run).await.map_err(failed)?;
                let total = all.len();
                let orphans = crate::cloud::audit::orphans(&run, all, &known);
                for o in &orphans {
                    let group = o.group.as_deref().map(|g| format!("  group={g}")).unwrap_or_default();
                    output::out(&format!("orphan  {}  runner={}  state={}  name={}{group}\n", o.id, o.runner, o.state, o.name));
                }
                output::out(&format!("{total} runner instance(s) in stack {}, {} orphaned\n", spec.stack, orphans.len()));
                if *terminate && !orphans.is_empty() {
                    if !*yes && !confirm(&format!("terminate these {} instances?", orphans.len()), "audit --terminate")? {
                        return Err(Error::Other("not confirmed: nothing was terminated".into()));
                    }
                    crate::cloud::audit::terminate(&run, &orphans).await.map_err(failed)?;
                    let ids: Vec<&str> = orphans.iter().map(|o| o.id.as_str()).collect();
                    output::out(&format!("terminated {}\n", ids.join(", ")));
                }
            }
        }
        Ok(EXIT_OK)
    })
}

fn load_spec(project: &Project) -> Result<CloudSpec> {
    let vars = project.global_vars()?;
    let Some(cloud) = vars.get("cloud") else {
        return Err(InputError::plain("no `cloud` var: describe the stack in group_vars/all.yaml (see the README's Cloud section)").into());
    };
    let span = cloud.span;
    let err = move |m: String| InputError::at(span, m, "in `cloud`");
    let dir = project.inventory.dir().to_path_buf();
    let read = move |f: &str| {
        let p = crate::vars::template::expand_home(f);
        let p = if p.is_absolute() { p } else { dir.join(p) };
        std::fs::read_to_string(&p).map_err(|e| e.to_string())
    };
    let port = |name: &str, default: i64| vars.get(name).and_then(|v| v.value.as_i64()).unwrap_or(default) as i32;
    Ok(crate::cloud::spec::parse(&cloud.value, &err, &read, (port("docker_tls_port", 2376), port("registry_port", 5000)))?)
}

/// The runner names of the inventory's hosts: none when it has no hosts (a base inventory
/// before `cloud apply` wrote the hosts' one; the stack's fleets still count as accounted for).
fn known_runners(project: &Project) -> Result<Vec<String>> {
    let mut names = Vec::new();
    if project.inventory.hosts.is_empty() {
        return Ok(names);
    }
    for h in project.hosts(None)? {
        if let Some(list) = h.vars.get("runners").and_then(|r| r.value.as_array()) {
            names.extend(list.iter().filter_map(|r| r.get("name").and_then(|n| n.as_str()).map(str::to_string)));
        }
    }
    Ok(names)
}

/// Creates, updates, destroys and drifts in `changes`.
fn counts(changes: &[Change]) -> [usize; 4] {
    let mut n = [0usize; 4];
    for c in changes {
        match c.action {
            Action::Create => n[0] += 1,
            Action::Update => n[1] += 1,
            Action::Destroy => n[2] += 1,
            Action::Drift => n[3] += 1,
            Action::Ok => {}
        }
    }
    n
}

/// The plan as one JSON document.
fn plan_json(spec: &CloudSpec, region: &str, changes: &[Change]) -> serde_json::Value {
    let n = counts(changes);
    serde_json::json!({
        "stack": spec.stack,
        "region": region,
        "changes": changes,
        "summary": {"create": n[0], "update": n[1], "destroy": n[2], "drift": n[3]},
    })
}

fn print_changes(changes: &[Change], verb: &str, show_ok: bool) {
    for c in changes {
        let (mark, style) = match c.action {
            Action::Create => ("+", Style::Green),
            Action::Update => ("~", Style::Yellow),
            Action::Destroy => ("-", Style::Red),
            Action::Drift => ("!", Style::Yellow),
            Action::Ok if show_ok => (" ", Style::Dim),
            Action::Ok => continue,
        };
        output::out(&format!("  {} {}\n", paint(style, mark), c.what));
    }
    let n = counts(changes);
    let drift = if n[3] > 0 { format!(" ({} drifted: replace by hand)", n[3]) } else { String::new() };
    if verb == "to destroy" {
        output::out(&format!("{} to destroy\n", n[2]));
    } else {
        output::out(&format!("{verb}: {} to create, {} to update, {} to destroy{drift}\n", n[0], n[1], n[2]));
    }
}

/// Asks on a terminal; anywhere else the command needs `--yes` (`what` names it).
fn confirm(question: &str, what: &str) -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        eprintln!("stdin is not a terminal: run `provision cloud {what} --yes` to go ahead without a question");
        return Ok(false);
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(|e| Error::Other(format!("cannot read the answer: {e}")))?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}
