//! Runner-made instances (docker+machine, docker-autoscaler) of the stack that nothing accounts
//! for: neither a runner of the inventory nor a fleet the stack declares. They keep costing
//! money after a runner is renamed or removed. Only instances tagged with the stack are read:
//! another team's machines in the same region are never listed, let alone terminated.

use aws_sdk_ec2::types::Filter;

use super::tagged::{ours, tag_of};
use super::{CloudError, Run, TAG_RUNNER, api};

/// EC2's tag on the members of an auto scaling group.
const ASG_TAG: &str = "aws:autoscaling:groupName";

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
    /// The auto scaling group it belongs to, if any.
    pub group: Option<String>,
}

/// Every live instance of the stack carrying a runner tag.
pub async fn runner_instances(run: &Run<'_>) -> Result<Vec<RunnerInstance>, CloudError> {
    let mut filters = ours(run.spec, None);
    filters.push(Filter::builder().name("tag-key").values(TAG_RUNNER).build());
    filters.push(super::instances::live_instances());
    let r = run.c.ec2.describe_instances().set_filters(Some(filters)).send().await.map_err(api("DescribeInstances"))?;
    Ok(r.reservations()
        .iter()
        .flat_map(|r| r.instances())
        .map(|i| RunnerInstance {
            id: i.instance_id().unwrap_or_default().to_string(),
            runner: tag_of(i.tags(), TAG_RUNNER).unwrap_or_default().to_string(),
            state: i.state().and_then(|s| s.name()).map(|n| n.as_str().to_string()).unwrap_or_default(),
            name: tag_of(i.tags(), "Name").unwrap_or_default().to_string(),
            group: tag_of(i.tags(), ASG_TAG).map(str::to_string),
        })
        .collect())
}

/// The instances whose runner is not in `known` and that no declared fleet's group holds.
pub fn orphans(run: &Run<'_>, all: Vec<RunnerInstance>, known: &[String]) -> Vec<RunnerInstance> {
    let fleets: Vec<String> = run.spec.fleets.keys().map(|f| run.spec.asg_name(f)).collect();
    all.into_iter().filter(|i| !known.contains(&i.runner) && !i.group.as_ref().is_some_and(|g| fleets.contains(g))).collect()
}

/// Terminates orphans: members of a group through the group (its desired capacity shrinks with
/// them, or it would start replacements), the others directly.
pub async fn terminate(run: &Run<'_>, orphans: &[RunnerInstance]) -> Result<(), CloudError> {
    for o in orphans.iter().filter(|o| o.group.is_some()) {
        run.c
            .asg
            .terminate_instance_in_auto_scaling_group()
            .instance_id(&o.id)
            .should_decrement_desired_capacity(true)
            .send()
            .await
            .map_err(api("TerminateInstanceInAutoScalingGroup"))?;
    }
    let plain: Vec<String> = orphans.iter().filter(|o| o.group.is_none()).map(|o| o.id.clone()).collect();
    super::instances::terminate(run, &plain).await
}
