//! The engine: gather facts → plan → apply → report, one host at a time, all hosts at once.
//!
//! A host's desired state is a list of [`Step`]s (a [`Resource`] plus the handlers it notifies)
//! and a list of [`Handler`]s. The engine sends ONE generated sh script that prints the current
//! state of every resource ([`sections`] delimits the output), plans locally, and, when something
//! differs, sends ONE more script that applies every change in order under a per-host lock.
//! The engine knows nothing of GitLab or Docker: roles build the steps.
//!
//! - [`probe`]: the fact-gathering script and reading its output into findings;
//! - [`gather`]: how each resource's state is read, most of them batched (one `stat`, one
//!   `systemctl show` for all);
//! - [`apply`]: scheduling changes and handlers, and the apply script;
//! - [`sections`]: the framing both scripts' output uses;
//! - [`health`]: whether a service works: checks in the probe, and a verify after changes;
//! - [`outcome`]: from framed output to results (pure);
//! - [`run`]: the executor, over a [`crate::transport::Remote`];
//! - [`progress`]: the reporter and cancel flag the command injects;
//! - [`error`] and [`report`]: what went wrong, and what is shown.

pub mod announce;
pub mod apply;
pub mod error;
pub mod gather;
pub mod health;
pub mod outcome;
pub mod probe;
pub mod progress;
pub mod report;
pub mod run;
pub mod sections;
#[cfg(test)]
mod tests;

pub use gather::Probe;

/// How a resource's current state differs from the desired one, and how to converge it.
#[derive(Debug, Clone)]
pub struct Change {
    /// Short words for what changes, e.g. `["created"]`, `["content", "mode 0600 → 0644"]`.
    pub what: Vec<String>,
    /// What to show with `--diff`.
    pub diff: Option<Diff>,
    /// POSIX sh that converges the resource (runs as root, `set -e`).
    pub script: String,
    /// Local files streamed to the host before the apply script runs (e.g. image archives).
    pub uploads: Vec<Upload>,
}

/// A local file the apply script needs on the host.
#[derive(Debug, Clone, PartialEq)]
pub struct Upload {
    /// Path on this machine.
    pub local: std::path::PathBuf,
    /// Where it lands on the host (root-only; the script removes it when done).
    pub remote: String,
}

impl Change {
    /// A change with a script and nothing to upload or diff.
    pub fn new(what: Vec<String>, script: String) -> Self {
        Change { what, diff: None, script, uploads: Vec::new() }
    }
}

/// A change's diff as shown to the user.
#[derive(Debug, Clone, PartialEq)]
pub enum Diff {
    /// A unified diff.
    Text(String),
    /// The content is secret: only say that it changed.
    Secret,
}

/// Something on a host with a desired state.
pub trait Resource: Send + Sync + std::fmt::Debug {
    /// Stable, human-readable identity, e.g. `file /etc/docker/daemon.json`.
    fn id(&self) -> String;
    /// How its current state is read: its own sh, or one of the facts the engine gathers for
    /// every resource at once (see [`gather`]).
    fn probe(&self) -> Probe;
    /// Compares the probe's output with the desired state: `None` when nothing is to do.
    /// An `Err` means the output could not be understood.
    fn plan(&self, state: &str) -> Result<Option<Change>, String>;

    /// Facts several resources read (e.g. every container of a docker daemon): gathered once
    /// per run into the shell variable named by [`SharedFact::var`], alongside the probe parts
    /// that do not read it; the parts of a resource that declares it (its probe, its health
    /// check) start once it is in.
    fn shared_facts(&self) -> Vec<SharedFact> {
        Vec::new()
    }

    /// For a resource whose probe is [`Probe::Shared`]: its state (what `plan` reads), from
    /// the shared fact's output.
    fn read_shared(&self, _fact: &str) -> String {
        String::new()
    }

    /// For a resource that reads what a handler would affect (see [`announce`]): the handler's
    /// id and a note for the report, from this resource's probe output.
    fn announces(&self, _state: &str) -> Option<(String, String)> {
        None
    }

    /// POSIX sh telling whether the resource's service works (see [`health`]): run in the probe
    /// (after the shared facts the resource declares, and its request's outcome) and in the
    /// verify after an apply that changed something.
    fn health(&self) -> Option<health::Health> {
        None
    }

    /// The change an apply tries once when the resource is as desired but unhealthy (a
    /// crash-looping container is restarted); `None`: nothing to try, it is reported failed.
    fn repair(&self) -> Option<Change> {
        None
    }
}

/// A fact gathered once per run for every resource that needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedFact {
    /// Shell variable holding the fact's output (letters, digits, `_`).
    pub var: String,
    /// POSIX sh printing the fact.
    pub script: String,
    /// How much of it is read: resources may ask for one fact (one variable) at different
    /// depths; the deepest asked for is gathered, and its output holds what the shallower
    /// ones read (a daemon's containers; at depth 1 also its live-restore, which costs the
    /// daemon more).
    pub depth: u8,
}

impl SharedFact {
    /// Each fact once, at the deepest depth asked for, in order of first use.
    pub fn gathered(facts: impl IntoIterator<Item = SharedFact>) -> Vec<SharedFact> {
        let mut out: Vec<SharedFact> = Vec::new();
        for f in facts {
            debug_assert!(crate::sh::is_var_name(&f.var), "bad shared fact variable {}", f.var);
            match out.iter_mut().find(|g| g.var == f.var) {
                Some(g) if g.depth < f.depth => *g = f,
                Some(_) => {}
                None => out.push(f),
            }
        }
        out
    }
}

/// A boxed future, for the async hooks of [`Deferred`].
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// A step whose desired state depends on a file already on the host, and on something outside
/// it (a config file that keeps the tokens it holds while GitLab still accepts them). The probe
/// also reads [`Deferred::reads`]; before planning, [`Deferred::resolve`] builds the resource
/// from that content. The step's placeholder resource probes the same thing as the resolved one
/// will, so facts still cost one round trip.
pub trait Deferred: Send + Sync {
    /// Absolute path of the (small) file the probe reads.
    fn reads(&self) -> String;
    /// Starts what `resolve` will need that does not depend on the file (e.g. an HTTP client),
    /// so that it is ready by the time the probe returns. Called before the probe (`resolve`
    /// must not rely on it).
    fn prepare(&self) {}
    /// The resource to plan, from the file's current content (`None`: no such file), and
    /// notes for the report. In check mode it must change nothing anywhere.
    fn resolve<'a>(&'a self, current: Option<&'a [u8]>, check: bool) -> BoxFuture<'a, Result<Resolved, String>>;
    /// After an apply: `applied` is whether the resolved change is on the host (`None`:
    /// unknown, the connection was lost). Returns notes for the report.
    fn finish(&self, applied: Option<bool>) -> BoxFuture<'_, Vec<String>>;
}

/// What [`Deferred::resolve`] decided.
#[derive(Debug)]
pub struct Resolved {
    /// The resource to plan and apply.
    pub resource: Box<dyn Resource>,
    /// What happened outside the host, e.g. `runner ci registered`.
    pub notes: Vec<String>,
}

/// A resource and the handlers its change triggers.
pub struct Step {
    /// The resource.
    pub resource: Box<dyn Resource>,
    /// Ids of handlers to run when it changes.
    pub notify: Vec<String>,
    /// Set when the resource is only known after the probe (see [`Deferred`]).
    pub deferred: Option<std::sync::Arc<dyn Deferred>>,
}

impl std::fmt::Debug for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Step").field("resource", &self.resource).field("notify", &self.notify).finish_non_exhaustive()
    }
}

impl Step {
    /// A step notifying nothing.
    pub fn new(resource: impl Resource + 'static) -> Self {
        Step { resource: Box::new(resource), notify: Vec::new(), deferred: None }
    }

    /// A step resolved after the probe; `placeholder` must probe what the resolved resource
    /// will (e.g. a secret file at the same path).
    pub fn deferred(placeholder: impl Resource + 'static, deferred: std::sync::Arc<dyn Deferred>) -> Self {
        Step { resource: Box::new(placeholder), notify: Vec::new(), deferred: Some(deferred) }
    }

    /// Adds a handler to notify on change.
    pub fn notify(mut self, handler: &str) -> Self {
        self.notify.push(handler.to_string());
        self
    }
}

/// An action run once, after the last step that can trigger it, when any of them changed
/// (e.g. `systemctl daemon-reload` after unit files, a docker restart after daemon.json).
#[derive(Debug, Clone)]
pub struct Handler {
    /// Id that steps notify.
    pub id: String,
    /// POSIX sh to run.
    pub script: String,
    /// A prerequisite of every other handler (a daemon-reload): it also runs before any other
    /// handler due after one of its changed notifiers, so a restart never uses stale units.
    pub prerequisite: bool,
}

/// Everything one host should look like.
#[derive(Debug, Default)]
pub struct Desired {
    /// Resources in the order they apply.
    pub steps: Vec<Step>,
    /// Handlers; among those due at the same point, they run in this order.
    pub handlers: Vec<Handler>,
}

impl Desired {
    /// Adds a handler unless one with the same id exists.
    pub fn handler(&mut self, id: &str, script: &str) {
        if !self.handlers.iter().any(|h| h.id == id) {
            self.handlers.push(Handler { id: id.to_string(), script: script.to_string(), prerequisite: false });
        }
    }

    /// Adds a prerequisite handler: it runs before every other handler due at the same point,
    /// and also before any later handler once one of its notifiers changed (a systemd
    /// daemon-reload must precede the restarts that depend on it).
    pub fn handler_first(&mut self, id: &str, script: &str) {
        if !self.handlers.iter().any(|h| h.id == id) {
            self.handlers.insert(0, Handler { id: id.to_string(), script: script.to_string(), prerequisite: true });
        }
    }
}

/// The state of one resource after a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Already as desired.
    Ok,
    /// Changed (or would change, with `--check`).
    Changed,
    /// Could not be probed or converged.
    Failed,
    /// Not attempted because an earlier step failed.
    Skipped,
}
