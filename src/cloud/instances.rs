//! The key pair and the stack's instances: launched with their instance profile, IMDSv2
//! required and an encrypted root volume on the AMI's own root device; kept so on re-apply
//! (profile attached, metadata options, tags, instance type), with what only a replacement
//! could change (AMI, subnet, root size) reported as drift.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, Filter, HttpTokensState, IamInstanceProfileSpecification, InstanceMetadataEndpointState,
    InstanceMetadataOptionsRequest, InstanceStateName, InstanceType, ResourceType, Tag, TagSpecification, VolumeType,
};

use super::security::Groups;
use super::spec::{Ami, Instance, SubnetKind};
use super::tagged::{NEW, filter, ours, tag_of, tagged, tags};
use super::vpc::Network;
use super::{Action, CloudError, Run, TAG_ROLE, api};

/// An instance of the stack, as EC2 reports it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Running {
    /// Inventory name (`Name` tag).
    pub name: String,
    /// `master` or `slave`.
    pub group: String,
    /// Instance id.
    pub id: String,
    /// Public address, if any.
    pub public_ip: Option<String>,
    /// Private address.
    pub private_ip: Option<String>,
    /// Its instance type.
    pub instance_type: String,
    /// Its image.
    #[serde(skip)]
    pub image_id: String,
    /// Its subnet.
    #[serde(skip)]
    pub subnet_id: String,
    /// Its tags.
    #[serde(skip)]
    pub tags: BTreeMap<String, String>,
    /// IMDSv2 required, and the hop limit.
    #[serde(skip)]
    pub imds: (bool, i32),
    /// Its root volume's id.
    #[serde(skip)]
    pub root_volume: Option<String>,
}

/// IMDS hop limit: the masters' runner runs in a container, one hop further from the host.
fn hop_limit(group: &str) -> i32 {
    if group == "master" { 2 } else { 1 }
}

/// The metadata options every instance gets: IMDSv2 only.
pub fn metadata_options(hops: i32) -> InstanceMetadataOptionsRequest {
    InstanceMetadataOptionsRequest::builder()
        .http_tokens(HttpTokensState::Required)
        .http_endpoint(InstanceMetadataEndpointState::Enabled)
        .http_put_response_hop_limit(hops)
        .build()
}

/// Matches instances that are not terminated (or on their way there).
pub fn live_instances() -> Filter {
    filter("instance-state-name", &["pending", "running", "stopping", "stopped"])
}

/// The stack's own instances (masters and slaves) that are not terminated.
pub async fn stack_instances(run: &Run<'_>) -> Result<Vec<Running>, CloudError> {
    let mut filters = ours(run.spec, None);
    filters.push(live_instances());
    let r = run.c.ec2.describe_instances().set_filters(Some(filters)).send().await.map_err(api("DescribeInstances"))?;
    Ok(r.reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter_map(|i| {
            let group = tag_of(i.tags(), TAG_ROLE)?;
            if group != "master" && group != "slave" {
                return None;
            }
            let root = i.root_device_name();
            Some(Running {
                name: tag_of(i.tags(), "Name")?.to_string(),
                group: group.to_string(),
                id: i.instance_id()?.to_string(),
                public_ip: i.public_ip_address().map(str::to_string),
                private_ip: i.private_ip_address().map(str::to_string),
                instance_type: i.instance_type().map(|t| t.as_str().to_string()).unwrap_or_default(),
                image_id: i.image_id().unwrap_or_default().to_string(),
                subnet_id: i.subnet_id().unwrap_or_default().to_string(),
                tags: i.tags().iter().filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string()))).collect(),
                imds: i.metadata_options().map_or((false, 1), |m| {
                    (m.http_tokens() == Some(&HttpTokensState::Required), m.http_put_response_hop_limit().unwrap_or(1))
                }),
                root_volume: i
                    .block_device_mappings()
                    .iter()
                    .find(|b| b.device_name() == root)
                    .and_then(|b| b.ebs())
                    .and_then(|e| e.volume_id())
                    .map(str::to_string),
            })
        })
        .collect())
}

/// An image: its id and root device name.
pub async fn image(run: &Run<'_>, ami: &Ami) -> Result<(String, String), CloudError> {
    let req = run.c.ec2.describe_images();
    let req = match ami {
        Ami::Id(id) => req.image_ids(id),
        Ami::Name { name, owner } => req.owners(owner).filters(filter("name", &[name])),
    };
    let r = req.send().await.map_err(api("DescribeImages"))?;
    let mut images: Vec<_> = r.images().iter().filter(|i| i.image_id().is_some()).collect();
    images.sort_by_key(|i| i.creation_date().unwrap_or_default().to_string());
    let what = match ami {
        Ami::Id(id) => format!("image {id}"),
        Ami::Name { name, owner } => format!("image named `{name}` owned by {owner}"),
    };
    let i = images.last().ok_or_else(|| CloudError::Api { call: "DescribeImages", message: format!("no {what}") })?;
    // The root volume must be mapped on the image's own root device, or it becomes a second disk.
    Ok((i.image_id().unwrap_or_default().to_string(), i.root_device_name().unwrap_or("/dev/xvda").to_string()))
}

/// An encrypted gp3 root volume on `device`.
pub fn root_volume(device: &str, gb: i32) -> BlockDeviceMapping {
    let disk = EbsBlockDevice::builder().volume_size(gb).volume_type(VolumeType::Gp3).encrypted(true).delete_on_termination(true).build();
    BlockDeviceMapping::builder().device_name(device).ebs(disk).build()
}

/// Imports the key pair.
pub async fn key_pair(run: &mut Run<'_>) -> Result<(), CloudError> {
    let Some((kname, public)) = &run.spec.key_pair else { return Ok(()) };
    let (c, spec) = (run.c, run.spec);
    let found = c.ec2.describe_key_pairs().set_filters(Some(ours(spec, Some("key")))).send().await.map_err(api("DescribeKeyPairs"))?;
    if found.key_pairs().iter().any(|k| k.key_name() == Some(kname.as_str())) {
        run.note(Action::Ok, format!("key pair {kname}"));
        return Ok(());
    }
    run.note(Action::Create, format!("key pair {kname}"));
    if !run.dry_run {
        c.ec2
            .import_key_pair()
            .key_name(kname)
            .public_key_material(aws_sdk_ec2::primitives::Blob::new(public.as_bytes()))
            .tag_specifications(tagged(spec, ResourceType::KeyPair, "key", kname))
            .send()
            .await
            .map_err(api("ImportKeyPair"))?;
    }
    Ok(())
}

/// Where instances go.
pub struct Placement<'a> {
    /// Subnets.
    pub net: &'a Network,
    /// Security groups.
    pub groups: &'a Groups,
    /// Instance profile names by group.
    pub profiles: &'a BTreeMap<String, String>,
}

/// Converges the instances; returns them as they run.
pub async fn converge(run: &mut Run<'_>, at: &Placement<'_>) -> Result<Vec<Running>, CloudError> {
    let existing = stack_instances(run).await?;
    let mut started = Vec::new();
    for inst in run.spec.instances.values() {
        if let Some(r) = existing.iter().find(|r| r.name == inst.name) {
            keep(run, inst, r, at).await?;
            continue;
        }
        run.note(Action::Create, format!("instance {} ({}, {})", inst.name, inst.instance_type, inst.group));
        if !run.dry_run {
            started.push(launch(run, inst, at).await?);
        }
    }
    for r in existing.iter().filter(|r| !run.spec.instances.contains_key(&r.name)) {
        run.note(Action::Destroy, format!("instance {} ({}: no longer in cloud.instances)", r.name, r.id));
        if !run.dry_run {
            terminate(run, std::slice::from_ref(&r.id)).await?;
        }
    }
    if !started.is_empty() {
        wait_state(run, &started, InstanceStateName::Running, "to run").await?;
    }
    if run.dry_run { Ok(existing) } else { stack_instances(run).await }
}

fn subnet_of<'a>(inst: &Instance, net: &'a Network) -> &'a str {
    if inst.subnet == SubnetKind::Public { &net.public_subnet_id } else { &net.private_subnet_id }
}

/// An existing instance: fixes what can change in place, reports what cannot.
async fn keep(run: &mut Run<'_>, inst: &Instance, r: &Running, at: &Placement<'_>) -> Result<(), CloudError> {
    let c = run.c;
    let before = run.changes.len();
    let label = format!("instance {} ({})", inst.name, r.id);
    if r.instance_type != inst.instance_type {
        // A type change needs the instance stopped: it restarts with the same disk.
        run.note(Action::Update, format!("{label}: {} → {} (stopped and started again)", r.instance_type, inst.instance_type));
        if !run.dry_run {
            resize(run, &r.id, &inst.instance_type).await?;
        }
    }
    let hops = hop_limit(&inst.group);
    if r.imds != (true, hops) {
        run.note(Action::Update, format!("{label}: require IMDSv2, hop limit {hops}"));
        if !run.dry_run {
            c.ec2
                .modify_instance_metadata_options()
                .instance_id(&r.id)
                .http_tokens(HttpTokensState::Required)
                .http_put_response_hop_limit(hops)
                .http_endpoint(InstanceMetadataEndpointState::Enabled)
                .send()
                .await
                .map_err(api("ModifyInstanceMetadataOptions"))?;
        }
    }
    if let Some(profile) = at.profiles.get(&inst.group) {
        let assoc = c
            .ec2
            .describe_iam_instance_profile_associations()
            .filters(filter("instance-id", &[&r.id]))
            .filters(filter("state", &["associating", "associated"]))
            .send()
            .await
            .map_err(api("DescribeIamInstanceProfileAssociations"))?;
        if assoc.iam_instance_profile_associations().is_empty() {
            // Attached to the running instance: no stop needed.
            run.note(Action::Update, format!("{label}: attach instance profile {profile}"));
            if !run.dry_run {
                c.ec2
                    .associate_iam_instance_profile()
                    .instance_id(&r.id)
                    .iam_instance_profile(IamInstanceProfileSpecification::builder().name(profile).build())
                    .send()
                    .await
                    .map_err(api("AssociateIamInstanceProfile"))?;
            }
        }
    }
    let wrong_tags: Vec<Tag> =
        inst.tags.iter().filter(|(k, v)| r.tags.get(*k) != Some(*v)).map(|(k, v)| Tag::builder().key(k).value(v).build()).collect();
    if !wrong_tags.is_empty() {
        let keys: Vec<&str> = wrong_tags.iter().filter_map(|t| t.key()).collect();
        run.note(Action::Update, format!("{label}: tags {}", keys.join(", ")));
        if !run.dry_run {
            c.ec2.create_tags().resources(&r.id).set_tags(Some(wrong_tags)).send().await.map_err(api("CreateTags"))?;
        }
    }
    // What only a new instance can change: said, never done behind the operator's back.
    let (image_id, _) = image(run, &inst.ami).await?;
    if image_id != r.image_id {
        run.note(Action::Drift, format!("{label}: runs {} but the declared image is {image_id} (replace it to roll)", r.image_id));
    }
    let subnet = subnet_of(inst, at.net);
    if subnet != r.subnet_id && subnet != NEW {
        let kind = if inst.subnet == SubnetKind::Public { "public" } else { "private" };
        run.note(Action::Drift, format!("{label}: in subnet {} but declared in the {kind} subnet {subnet}", r.subnet_id));
    }
    if let Some(vol) = &r.root_volume {
        let v = c.ec2.describe_volumes().volume_ids(vol).send().await.map_err(api("DescribeVolumes"))?;
        if let Some(size) = v.volumes().first().and_then(|v| v.size())
            && size != inst.root_volume_gb
        {
            run.note(Action::Drift, format!("{label}: root volume is {size} GiB, declared {} GiB", inst.root_volume_gb));
        }
    }
    if run.changes.len() == before {
        run.note(Action::Ok, label);
    }
    Ok(())
}

async fn resize(run: &Run<'_>, id: &str, instance_type: &str) -> Result<(), CloudError> {
    let c = run.c;
    let ids = [id.to_string()];
    c.ec2.stop_instances().instance_ids(id).send().await.map_err(api("StopInstances"))?;
    wait_state(run, &ids, InstanceStateName::Stopped, "to stop").await?;
    c.ec2
        .modify_instance_attribute()
        .instance_id(id)
        .instance_type(aws_sdk_ec2::types::AttributeValue::builder().value(instance_type).build())
        .send()
        .await
        .map_err(api("ModifyInstanceAttribute"))?;
    c.ec2.start_instances().instance_ids(id).send().await.map_err(api("StartInstances"))?;
    wait_state(run, &ids, InstanceStateName::Running, "to run").await
}

async fn launch(run: &Run<'_>, inst: &Instance, at: &Placement<'_>) -> Result<String, CloudError> {
    let (c, spec) = (run.c, run.spec);
    let sg = if inst.group == "master" { &at.groups.master } else { &at.groups.slave };
    let (image_id, root_device) = image(run, &inst.ami).await?;
    let profile = at.profiles.get(&inst.group).map(|p| IamInstanceProfileSpecification::builder().name(p).build());
    let mut instance_tags = tags(spec, &inst.group, &inst.name);
    instance_tags.extend(inst.tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()));
    let mut attempt = 0;
    loop {
        let r = c
            .ec2
            .run_instances()
            .image_id(&image_id)
            .instance_type(InstanceType::from(inst.instance_type.as_str()))
            .min_count(1)
            .max_count(1)
            .set_key_name(spec.key_pair.as_ref().map(|k| k.0.clone()))
            .subnet_id(subnet_of(inst, at.net))
            .security_group_ids(sg)
            .set_iam_instance_profile(profile.clone())
            .metadata_options(metadata_options(hop_limit(&inst.group)))
            .block_device_mappings(root_volume(&root_device, inst.root_volume_gb))
            .tag_specifications(
                TagSpecification::builder().resource_type(ResourceType::Instance).set_tags(Some(instance_tags.clone())).build(),
            )
            .tag_specifications(tagged(spec, ResourceType::Volume, &inst.group, &inst.name))
            .send()
            .await;
        match r {
            Ok(r) => return Ok(r.instances().first().and_then(|i| i.instance_id()).unwrap_or_default().to_string()),
            // IAM is eventually consistent: a profile made seconds ago may not be usable yet.
            Err(e) if attempt < 10 && crate::error::chain(&e).contains("nstance profile") => {
                attempt += 1;
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
            Err(e) => return Err(api("RunInstances")(e)),
        }
    }
}

/// Polls until every instance is in `want`, with a progress line on a terminal.
pub async fn wait_state(run: &Run<'_>, ids: &[String], want: InstanceStateName, what: &str) -> Result<(), CloudError> {
    use std::io::IsTerminal;
    let pb = std::io::stderr().is_terminal().then(|| {
        let pb = indicatif::ProgressBar::new_spinner();
        pb.enable_steady_tick(Duration::from_millis(120));
        pb
    });
    for _ in 0..240 {
        let r = run.c.ec2.describe_instances().set_instance_ids(Some(ids.to_vec())).send().await.map_err(api("DescribeInstances"))?;
        let states: Vec<InstanceStateName> =
            r.reservations().iter().flat_map(|r| r.instances()).filter_map(|i| i.state().and_then(|s| s.name()).cloned()).collect();
        let done = states.iter().filter(|s| **s == want).count();
        if let Some(pb) = &pb {
            pb.set_message(format!("waiting for instances {what}: {done}/{}", ids.len()));
        }
        if done == ids.len() {
            if let Some(pb) = pb {
                pb.finish_and_clear();
            }
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    Err(CloudError::Timeout(format!("instances {} {what}", ids.join(", "))))
}

/// Terminates instances and waits until they are gone.
pub async fn terminate(run: &Run<'_>, ids: &[String]) -> Result<(), CloudError> {
    if ids.is_empty() {
        return Ok(());
    }
    run.c.ec2.terminate_instances().set_instance_ids(Some(ids.to_vec())).send().await.map_err(api("TerminateInstances"))?;
    wait_state(run, ids, InstanceStateName::Terminated, "to terminate").await
}
