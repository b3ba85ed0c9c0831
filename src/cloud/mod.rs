//! `provision cloud`: the AWS side (VPC, subnets, internet gateway, security groups, key pair,
//! instances, the S3 cache bucket), declared in the `cloud` var and converged through the
//! official SDK. Everything created carries the stack's tags, and only resources carrying them
//! are ever read as "ours", changed or destroyed.

pub mod audit;
pub mod bucket;
pub mod client;
pub mod inventory_out;
pub mod network;
pub mod spec;

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

/// One line of a plan or of what an apply did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Change {
    /// `create`, `update`, `destroy` or `ok`.
    pub action: &'static str,
    /// What, e.g. `vpc ci (10.0.0.0/16)`.
    pub what: String,
}

impl Change {
    /// A change.
    pub fn new(action: &'static str, what: impl Into<String>) -> Self {
        Change { action, what: what.into() }
    }
}
