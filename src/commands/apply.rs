//! `provision apply` and `provision plan`.

use std::sync::Arc;

use super::progress::{Live, watch_ctrl_c};
use crate::cli::{ApplyArgs, Format, Global};
use crate::engine::progress::{Cancel, Context};
use crate::engine::report;
use crate::engine::run::{Job, Options, run_all};
use crate::error::{Result, from_many};
use crate::output;
use crate::roles;

/// The var `--force-restart` sets to 0: how long a restart waits for job containers.
const FORCE_RESTART_VAR: &str = "restart_drain_timeout";

/// Runs apply (`plan` = `apply --check --diff`).
pub fn run(g: &Global, args: &ApplyArgs, plan: bool) -> Result<i32> {
    let project = if args.force_restart {
        // Highest precedence, after the user's own -e: no drain wait anywhere.
        let mut extra = g.extra_vars.clone();
        extra.push(format!("{FORCE_RESTART_VAR}=0"));
        crate::project::Project::load(g.inventory.as_deref(), &extra)?
    } else {
        super::load_project(g)?
    };
    // Hosts outside --limit are read (certificates, topology) but not acted on: their secrets
    // need not be set.
    let (hosts, all_hosts) = project.hosts_and_fleet(g.limit.as_deref())?;
    let check = args.check || plan;
    crate::confirm::assume_yes(args.yes);
    // Check mode changes nothing here either: certificates that would be created or re-issued
    // are made in memory only, so the plan shows the files hosts would get.
    let (certs, outcomes) = super::certs::ensure(&project, &all_hosts, Vec::new(), check)?;
    if args.format == Format::Human {
        super::certs::print_outcomes(&outcomes, false, check);
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
    let opts = Options { check, diff: args.diff || plan, forks: args.forks };
    let human = args.format == Format::Human;
    let live = Arc::new(Live::new(human.then_some(opts.check)));
    // A confirmation (deleting runners from GitLab) is asked with the live lines held.
    let held = live.clone();
    crate::confirm::hold_output_with(move |ask| held.suspend(ask));
    let cancel = Cancel::new();
    watch_ctrl_c(cancel.clone());
    let ctx = Context { cancel, reporter: live.clone() };
    let rt = super::runtime()?;
    let reports = rt.block_on(run_all(jobs, opts, &ctx));
    live.clear();
    if human {
        // Each host's part was printed as it finished.
        output::out(&report::recap_text(&reports, opts.check));
    } else {
        report::print_json(&reports);
    }
    super::hosts_exit(reports.iter().filter(|r| r.failed > 0).count())
}
