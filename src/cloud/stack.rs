//! A whole stack, in the order its parts depend on each other: network, ways out, security
//! groups, IAM, log group, key pair, fleets, instances, cache bucket.

use super::iam::Profiles;
use super::instances::{Placement, Running};
use super::security::Groups;
use super::tagged::NEW;
use super::vpc::Network;
use super::{CloudError, Run};

/// What a converge found or made, for the inventory and the runner config.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Outputs {
    /// The network's ids.
    pub net: Network,
    /// The security groups.
    pub groups: Groups,
    /// Instance profiles.
    pub profiles: Profiles,
    /// The stack's instances.
    pub instances: Vec<Running>,
}

/// Converges everything (a dry run only plans).
pub async fn converge(run: &mut Run<'_>) -> Result<Outputs, CloudError> {
    let net = super::vpc::converge(run).await?;
    super::routes::converge(run, &net).await?;
    let groups = super::security::converge(run, &net.vpc_id).await?;
    let profiles = super::iam::converge(run).await?;
    super::logs::converge(run).await?;
    super::instances::key_pair(run).await?;
    if let Some((_, worker_sg)) = &groups.worker {
        super::fleets::converge(run, &net, worker_sg).await?;
    } else if !run.spec.fleets.is_empty() {
        super::fleets::converge(run, &net, NEW).await?;
    }
    let instances = super::instances::converge(run, &Placement { net: &net, groups: &groups, profiles: &profiles.names }).await?;
    super::bucket::converge(run).await?;
    Ok(Outputs { net, groups, profiles, instances })
}

/// Removes everything of the stack (a dry run only lists it).
pub async fn destroy(run: &mut Run<'_>) -> Result<(), CloudError> {
    super::teardown::destroy(run).await?;
    super::bucket::destroy(run).await
}
