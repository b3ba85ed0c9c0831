//! Runner-made instances (docker+machine, docker-autoscaler) that no runner in the inventory
//! accounts for: they keep costing money after a runner is renamed or removed.

use aws_sdk_ec2::types::Filter;

use super::client::Clients;
use super::{CloudError, TAG_RUNNER, api};

/// An instance carrying a runner tag.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RunnerInstance {
    /// Instance id.
    pub id: String,
    /// The runner its tag names.
    pub runner: String,
    /// Its state.
    pub state: String,
    /// Its `Name` tag, if any.
    pub name: String,
}

/// Every live instance carrying a runner tag, in the region.
pub async fn runner_instances(c: &Clients) -> Result<Vec<RunnerInstance>, CloudError> {
    let filters = vec![Filter::builder().name("tag-key").values(TAG_RUNNER).build(), super::network::live_instances()];
    let r = c.ec2.describe_instances().set_filters(Some(filters)).send().await.map_err(api("DescribeInstances"))?;
    Ok(r.reservations()
        .iter()
        .flat_map(|r| r.instances())
        .map(|i| {
            let tag = |k: &str| i.tags().iter().find(|t| t.key() == Some(k)).and_then(|t| t.value()).unwrap_or_default().to_string();
            RunnerInstance {
                id: i.instance_id().unwrap_or_default().to_string(),
                runner: tag(TAG_RUNNER),
                state: i.state().and_then(|s| s.name()).map(|n| n.as_str().to_string()).unwrap_or_default(),
                name: tag("Name"),
            }
        })
        .collect())
}

/// The instances whose runner is not in `known`.
pub fn orphans(all: Vec<RunnerInstance>, known: &[String]) -> Vec<RunnerInstance> {
    all.into_iter().filter(|i| !known.contains(&i.runner)).collect()
}
