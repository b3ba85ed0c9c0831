//! `provision cloud plan|apply|destroy|audit`.

use std::io::{BufRead, Write};

use crate::cli::{CloudCommand, Global};
use crate::cloud::{Change, client, spec::CloudSpec};
use crate::error::{EXIT_OK, Error, InputError, Result};
use crate::output::{self, Style, paint};
use crate::project::Project;

/// Runs a `cloud` subcommand.
pub fn run(g: &Global, cmd: &CloudCommand) -> Result<i32> {
    let project = Project::load(g.inventory.as_deref(), &g.extra_vars)?;
    let spec = load_spec(&project)?;
    // Runner names the inventory accounts for (for audit): checked before any API call too.
    let known = if matches!(cmd, CloudCommand::Audit { .. }) { known_runners(&project)? } else { Vec::new() };
    let rt = super::runtime()?;
    rt.block_on(async {
        let c = client::connect(spec.region.as_deref()).await;
        let mut changes = Vec::new();
        let failed = |e: crate::cloud::CloudError| Error::Other(e.to_string());
        match cmd {
            CloudCommand::Plan => {
                crate::cloud::network::converge(&c, &spec, true, &mut changes).await.map_err(failed)?;
                crate::cloud::bucket::converge(&c, &spec, true, &mut changes).await.map_err(failed)?;
                print_changes(&changes, "plan", g.verbose > 0);
            }
            CloudCommand::Apply => {
                let result = async {
                    let out = crate::cloud::network::converge(&c, &spec, false, &mut changes).await?;
                    crate::cloud::bucket::converge(&c, &spec, false, &mut changes).await?;
                    Ok::<_, crate::cloud::CloudError>(out)
                }
                .await;
                print_changes(&changes, "applied", g.verbose > 0);
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
                crate::cloud::network::destroy(&c, &spec, true, &mut changes).await.map_err(failed)?;
                crate::cloud::bucket::destroy(&c, &spec, true, &mut changes).await.map_err(failed)?;
                if changes.is_empty() {
                    output::out(&format!("nothing carries the tags of stack {}\n", spec.stack));
                    return Ok(EXIT_OK);
                }
                print_changes(&changes, "to destroy", true);
                if !*yes && !confirm(&format!("destroy these {} resources of stack {}?", changes.len(), spec.stack))? {
                    return Err(Error::Other("not confirmed: nothing was destroyed".into()));
                }
                let mut done = Vec::new();
                let r = match crate::cloud::network::destroy(&c, &spec, false, &mut done).await {
                    Ok(()) => crate::cloud::bucket::destroy(&c, &spec, false, &mut done).await,
                    e => e,
                };
                r.map_err(failed)?;
                output::out(&format!("destroyed stack {}\n", spec.stack));
            }
            CloudCommand::Audit { terminate, yes } => {
                let all = crate::cloud::audit::runner_instances(&c).await.map_err(failed)?;
                let total = all.len();
                let orphans = crate::cloud::audit::orphans(all, &known);
                for o in &orphans {
                    output::out(&format!("orphan  {}  runner={}  state={}  name={}\n", o.id, o.runner, o.state, o.name));
                }
                output::out(&format!("{total} runner instance(s), {} orphaned\n", orphans.len()));
                if *terminate && !orphans.is_empty() {
                    if !*yes && !confirm(&format!("terminate these {} instances?", orphans.len()))? {
                        return Err(Error::Other("not confirmed: nothing was terminated".into()));
                    }
                    let ids: Vec<String> = orphans.iter().map(|o| o.id.clone()).collect();
                    crate::cloud::network::terminate(&c, &ids).await.map_err(failed)?;
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

fn known_runners(project: &Project) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for h in project.hosts(None)? {
        if let Some(list) = h.vars.get("runners").and_then(|r| r.value.as_array()) {
            names.extend(list.iter().filter_map(|r| r.get("name").and_then(|n| n.as_str()).map(str::to_string)));
        }
    }
    Ok(names)
}

fn print_changes(changes: &[Change], verb: &str, show_ok: bool) {
    let mut counts = [0usize; 3];
    for c in changes {
        let (mark, style, counted) = match c.action {
            "create" => ("+", Style::Green, Some(0)),
            "update" => ("~", Style::Yellow, Some(1)),
            "destroy" => ("-", Style::Red, Some(2)),
            _ => (" ", Style::Dim, None),
        };
        match counted {
            Some(i) => counts[i] += 1,
            None if !show_ok => continue,
            None => {}
        }
        output::out(&format!("  {} {}\n", paint(style, mark), c.what));
    }
    if verb == "to destroy" {
        output::out(&format!("{} to destroy\n", counts[2]));
    } else {
        output::out(&format!("{verb}: {} to create, {} to update, {} to destroy\n", counts[0], counts[1], counts[2]));
    }
}

/// Asks on stderr, reads the answer from stdin (a pipe works; no answer is a no).
fn confirm(question: &str) -> Result<bool> {
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(|e| Error::Other(format!("cannot read the answer: {e}")))?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}
