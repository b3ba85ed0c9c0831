//! Subcommand implementations and the edge where errors become messages and exit codes.

mod apply;
mod cache_keys;
mod certs;
mod cloud;
mod completions;
mod debug;
mod inventory;
mod progress;

use crate::cli::{Cli, Command};
use crate::error::{EXIT_OK, Error, Result};
use crate::output;
use crate::vars::secret::Redactor;

/// Runs the parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    output::init_color(cli.global.color);
    init_tracing(cli.global.verbose);
    crate::vars::vault::configure(crate::vars::vault::VaultConfig {
        password_files: cli.global.vault_password_file.clone(),
        ask: cli.global.ask_vault_pass,
    });
    let color = output::color_enabled();
    let _ = miette::set_hook(Box::new(move |_| Box::new(miette::MietteHandlerOpts::new().color(color).unicode(color).build())));
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            let code = e.exit_code();
            let report = format!("{:?}", miette::Report::new(e));
            eprintln!("{}", Redactor::redact(&report));
            code
        }
    }
}

fn dispatch(cli: Cli) -> Result<i32> {
    let g = &cli.global;
    match &cli.command {
        Command::Inventory(args) => inventory::run(g, args),
        Command::Debug(cmd) => debug::run(g, cmd),
        Command::Apply(args) => apply::run(g, args, false),
        Command::Plan(args) => apply::run(g, args, true),
        Command::Certs(cmd) => certs::run(g, cmd),
        Command::Cloud(cmd) => cloud::run(g, cmd),
        Command::Completions { shell } => completions::completions(*shell),
        Command::Man => completions::man(),
    }
}

fn init_tracing(verbose: u8) {
    let level = match verbose {
        0 => tracing::Level::WARN,
        1 => tracing::Level::INFO,
        2 => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(output::RedactingStderr)
        .with_ansi(output::color_enabled())
        .with_target(false)
        .try_init();
}

/// The async runtime commands that talk to hosts run on.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Other(format!("cannot start the async runtime: {e}")))
}

/// Exit code for a run in which `failed` hosts failed.
pub fn hosts_exit(failed: usize) -> Result<i32> {
    if failed == 0 { Ok(EXIT_OK) } else { Err(Error::HostsFailed(format!("{failed} host(s) failed"))) }
}

/// Loads the user's project with every role's defaults and var types.
pub fn load_project(g: &crate::cli::Global) -> Result<crate::project::Project> {
    crate::project::Project::load(g.inventory.as_deref(), &g.extra_vars)
}
