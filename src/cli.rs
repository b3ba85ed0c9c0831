//! Command-line interface: global flags and subcommands.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::output::ColorChoice;

/// Stands up and runs self-hosted GitLab CI runner infrastructure over SSH.
#[derive(Debug, Parser)]
#[command(name = "provision", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags accepted by every subcommand.
#[derive(Debug, Args)]
pub struct Global {
    /// Inventory file, YAML or Ansible INI [default: inventory.yaml, then inventory.yml]
    #[arg(short, long, global = true, value_name = "PATH", env = "PROVISION_INVENTORY")]
    pub inventory: Option<PathBuf>,

    /// Extra vars, highest precedence: KEY=VALUE, @file.yaml, or an inline YAML/JSON mapping
    #[arg(short = 'e', long = "extra-vars", global = true, value_name = "VARS")]
    pub extra_vars: Vec<String>,

    /// Only these hosts: a host, a group, a glob (ci-*), comma-separated, !name to exclude
    #[arg(short, long, global = true, value_name = "PATTERN")]
    pub limit: Option<String>,

    /// More log output (-v info, -vv debug, -vvv trace); logs go to stderr, secrets redacted
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Ansible Vault password file (run if executable); may be repeated
    #[arg(long, global = true, value_name = "PATH", env = "ANSIBLE_VAULT_PASSWORD_FILE")]
    pub vault_password_file: Vec<PathBuf>,

    /// Ask for the Ansible Vault password on the terminal
    #[arg(long, global = true)]
    pub ask_vault_pass: bool,

    /// When to colour output (NO_COLOR is respected with auto)
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Readable text.
    Human,
    /// One JSON document on stdout.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Converge hosts to the state the inventory and vars describe, and report what changed
    Apply(ApplyArgs),
    /// Show what `apply` would change, changing nothing (= apply --check --diff)
    Plan(ApplyArgs),
    /// Print the resolved hosts, groups and vars (secrets redacted)
    Inventory(InventoryArgs),
    /// Manage the CA, server and client certificates in certs/
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Troubleshoot hosts: logs, containers, configs, ad-hoc commands, cleanup
    #[command(subcommand)]
    Debug(DebugCommand),
    /// Provision the AWS network, instances and S3 cache
    #[command(subcommand)]
    Cloud(CloudCommand),
    /// Print a shell completion script: `provision completions bash > /etc/bash_completion.d/provision`
    Completions {
        /// The shell
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print the man page (roff): `provision man > /usr/local/share/man/man1/provision.1`
    Man,
}

/// Shells `completions` writes scripts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    /// bash
    Bash,
    /// zsh
    Zsh,
    /// fish
    Fish,
}

/// Flags of `apply` and `plan`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Change nothing; report what would change
    #[arg(long)]
    pub check: bool,
    /// Show unified diffs of changed files (secrets are never shown)
    #[arg(long)]
    pub diff: bool,
    /// How many hosts to work on at once
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub forks: usize,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Do not ask before destructive actions (deleting runners removed from the vars from
    /// GitLab); without a terminal they are refused unless this is given
    #[arg(long)]
    pub yes: bool,
    /// Restart docker daemons and recreate dind at once, even while CI jobs (runner-*
    /// containers) run there: the same as `-e restart_drain_timeout=0`
    #[arg(long)]
    pub force_restart: bool,
}

/// Flags of `inventory`.
#[derive(Debug, Args)]
pub struct InventoryArgs {
    /// Only this host
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

/// `certs` subcommands.
#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Create the CA and any missing or invalid server/client certificates
    Generate,
    /// List certificates, their SANs and expiry, and whether they match the inventory
    Status,
    /// Re-issue the server and client certificates of the hosts in --limit (all without it; the
    /// CA is kept), after a confirmation
    Rotate {
        /// Do not ask for confirmation (required without a terminal)
        #[arg(long)]
        yes: bool,
    },
    /// Generate new keys for the build cache servers in --limit (all without it), after a
    /// confirmation; the next apply gives them to the servers and their runners
    RotateCacheKeys {
        /// Do not ask for confirmation (required without a terminal)
        #[arg(long)]
        yes: bool,
    },
}

/// `debug` subcommands. TARGET is a host, group or pattern, as for --limit.
#[derive(Debug, Subcommand)]
pub enum DebugCommand {
    /// Show logs of the units and containers that matter for each target's role
    Logs(LogsArgs),
    /// List containers on the host daemon (or inside dind)
    Ps(PsArgs),
    /// Show the runner's config.toml (master) or daemon/registry config (slave), tokens redacted
    Config(TargetArgs),
    /// Run a command on every target in parallel
    Exec(ExecArgs),
    /// Run the cleanup service now and show its journal
    Cleanup(PsArgs),
}

/// A debug target.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// Host, group or pattern
    pub target: String,
}

/// Flags of `debug logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Host, group or pattern
    pub target: String,
    /// Units or containers (default: those of the host's role)
    pub units: Vec<String>,
    /// Number of lines
    #[arg(short = 'n', long, default_value_t = 100)]
    pub lines: u32,
    /// Follow: stream new lines from every target until Ctrl-C
    #[arg(short, long)]
    pub follow: bool,
    /// Only lines since this time (journalctl/docker syntax, e.g. "10 min ago", 1h)
    #[arg(long)]
    pub since: Option<String>,
}

/// Flags of `debug ps` and `debug cleanup`.
#[derive(Debug, Args)]
pub struct PsArgs {
    /// Host, group or pattern
    pub target: String,
    /// Inside the dind container instead of the host daemon
    #[arg(long)]
    pub dind: bool,
}

/// Flags of `debug exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Host, group or pattern
    pub target: String,
    /// The command and its arguments (after --)
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// `cloud` subcommands.
#[derive(Debug, Subcommand)]
pub enum CloudCommand {
    /// Show what would be created, changed or destroyed
    Plan {
        /// Output format
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
    },
    /// Show the plan, then create or update the cloud resources (after confirmation)
    Apply {
        /// Do not ask for confirmation (required when stdin is not a terminal)
        #[arg(long)]
        yes: bool,
    },
    /// Destroy everything this stack created
    Destroy {
        /// Do not ask for confirmation
        #[arg(long)]
        yes: bool,
    },
    /// Find runner instances no runner in the inventory accounts for
    Audit {
        /// Terminate the orphans found (after confirmation)
        #[arg(long)]
        terminate: bool,
        /// Do not ask for confirmation
        #[arg(long)]
        yes: bool,
    },
}
