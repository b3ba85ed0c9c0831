//! `provision cloud`: the AWS side (VPC, subnets, gateways, security groups, key pair, IAM roles
//! and instance profiles, instances, autoscaling fleets, the CloudWatch log group, the S3 cache
//! bucket), declared in the `cloud` var and converged through the official SDK. Everything
//! created carries the stack's tags, and only resources carrying them (or inside the stack's own
//! VPC, on destroy) are ever read as "ours", changed or destroyed.

pub mod audit;
pub mod bucket;
pub mod client;
pub mod fleets;
pub mod iam;
pub mod instances;
pub mod inventory_out;
pub mod logs;
pub mod policy;
pub mod routes;
pub mod security;
pub mod spec;
pub mod stack;
pub mod tagged;
pub mod teardown;
pub mod vpc;

/// Tag every resource carries.
pub const TAG_BY: (&str, &str) = ("provisioned-by", "provision");
/// Tag naming the stack.
pub const TAG_STACK: &str = "provision:stack";
/// Tag naming the role of a resource in the stack (`vpc`, `public`, `master`, ...).
pub const TAG_ROLE: &str = "provision:role";
/// Tag on runner-made instances (docker-machine, autoscaler): which runner they belong to.
pub const TAG_RUNNER: &str = "provision:runner";

/// Failures talking to AWS.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    /// An API call failed.
    #[error("AWS {call} failed: {message}")]
    Api {
        /// The operation, e.g. `CreateVpc`.
        call: &'static str,
        /// AWS's message.
        message: String,
    },
    /// Waiting for a state took too long.
    #[error("timed out waiting for {0}")]
    Timeout(String),
}

/// Wraps an SDK error with the operation's name (and the service's own message).
pub fn api<E: std::error::Error + 'static>(call: &'static str) -> impl FnOnce(E) -> CloudError {
    move |e| CloudError::Api { call, message: crate::error::chain(&e) }
}

/// What a plan line says will happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Already as declared.
    Ok,
    /// Created.
    Create,
    /// Changed in place.
    Update,
    /// Removed.
    Destroy,
    /// Differs from the declaration in a way apply does not change in place (AMI, subnet, root
    /// size of a running instance): reported, left for the operator to replace.
    Drift,
}

/// One line of a plan or of what an apply did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Change {
    /// What happens.
    pub action: Action,
    /// What, e.g. `vpc ci (10.0.0.0/16)`.
    pub what: String,
}

impl Change {
    /// A change.
    pub fn new(action: Action, what: impl Into<String>) -> Self {
        Change { action, what: what.into() }
    }
}

/// One pass over a stack: the clients, the declaration, whether it only looks, and the lines of
/// its plan. Every converging and destroying function takes one.
pub struct Run<'a> {
    /// The SDK clients.
    pub c: &'a client::Clients,
    /// What the stack should be.
    pub spec: &'a spec::CloudSpec,
    /// Only look and report.
    pub dry_run: bool,
    /// The plan lines so far.
    pub changes: Vec<Change>,
}

impl<'a> Run<'a> {
    /// A new pass.
    pub fn new(c: &'a client::Clients, spec: &'a spec::CloudSpec, dry_run: bool) -> Self {
        Run { c, spec, dry_run, changes: Vec::new() }
    }

    /// Records a plan line.
    pub fn note(&mut self, action: Action, what: impl Into<String>) {
        self.changes.push(Change::new(action, what));
    }

    /// The stack's name for one of its parts: `<stack>-<part>`.
    pub fn name(&self, part: &str) -> String {
        format!("{}-{part}", self.spec.stack)
    }
}
