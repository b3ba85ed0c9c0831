//! `provision apply` and `provision plan`.

use crate::cli::{ApplyArgs, Format, Global};
use crate::engine::report;
use crate::engine::run::{Job, Options, run_all};
use crate::error::{Result, from_many};
use crate::project::Project;
use crate::roles;

/// Runs apply (`plan` = `apply --check --diff`).
pub fn run(g: &Global, args: &ApplyArgs, plan: bool) -> Result<i32> {
    let project = Project::load(g.inventory.as_deref(), &g.extra_vars)?;
    let all_hosts = project.hosts(None)?;
    let hosts = project.hosts(g.limit.as_deref())?;
    // Certificates live on this machine; creating a missing one is not a change to any host,
    // so check mode does it too (the plan can then show the files that would be installed).
    let (certs, outcomes) = super::certs::ensure(&project, &all_hosts, false)?;
    if args.format == Format::Human {
        super::certs::print_outcomes(&outcomes, false);
    }
    // Every host's desired state is built before any host is touched: bad vars anywhere stop
    // the run with nothing applied.
    let fleet = roles::Fleet::new(&project, &all_hosts);
    let mut jobs = Vec::new();
    let mut errors = Vec::new();
    for h in &hosts {
        match roles::desired(&fleet, h, &certs) {
            Ok(desired) => jobs.push(Job { connection: h.connection.clone(), desired }),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(from_many(errors));
    }
    let opts = Options { check: args.check || plan, diff: args.diff || plan, forks: args.forks };
    let rt = super::runtime()?;
    let reports = rt.block_on(run_all(jobs, opts));
    match args.format {
        Format::Human => report::print_human(&reports, opts.check),
        Format::Json => report::print_json(&reports),
    }
    super::hosts_exit(reports.iter().filter(|r| r.failed > 0).count())
}
