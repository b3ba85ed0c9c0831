//! Fleets for docker-autoscaler runners: per fleet a launch template (image, first instance
//! type, IMDSv2 with one hop, encrypted root on the image's root device, the workers' security
//! group, the stack's and the runner's tags on instances and volumes) and an auto scaling group
//! (min 0, desired 0 when created, no scaling policy, scale-in protection, mixed instances for
//! spot, tags propagated at launch). The runner's fleeting plugin sets the desired capacity:
//! re-apply never touches it, nor the group's instances.

use aws_sdk_autoscaling::types::{
    AutoScalingGroup, InstancesDistribution, LaunchTemplate, LaunchTemplateOverrides, LaunchTemplateSpecification, MixedInstancesPolicy,
    Tag as AsgTag,
};
use aws_sdk_ec2::types::{
    LaunchTemplateBlockDeviceMappingRequest, LaunchTemplateEbsBlockDeviceRequest, LaunchTemplateHttpTokensState,
    LaunchTemplateInstanceMetadataOptionsRequest, LaunchTemplateTagSpecificationRequest, RequestLaunchTemplateData, ResourceType, Tag,
    VolumeType,
};

use super::spec::{Fleet, SubnetKind};
use super::tagged::{NEW, ours, tagged};
use super::vpc::Network;
use super::{Action, CloudError, Run, TAG_BY, TAG_RUNNER, TAG_STACK, api};

/// The launch template version the groups use: new versions apply to new instances only.
const LATEST: &str = "$Latest";

/// The launch template of a fleet, as wanted.
fn template_data(run: &Run<'_>, f: &Fleet, image: &str, root_device: &str, worker_sg: &str) -> RequestLaunchTemplateData {
    let spec = run.spec;
    let tag_list: Vec<Tag> = [(TAG_BY.0, TAG_BY.1), (TAG_STACK, spec.stack.as_str()), (TAG_RUNNER, f.runner.as_str())]
        .iter()
        .map(|(k, v)| Tag::builder().key(*k).value(*v).build())
        .collect();
    let tags = |rt| LaunchTemplateTagSpecificationRequest::builder().resource_type(rt).set_tags(Some(tag_list.clone())).build();
    let disk = LaunchTemplateEbsBlockDeviceRequest::builder()
        .volume_size(f.root_volume_gb)
        .volume_type(VolumeType::Gp3)
        .encrypted(true)
        .delete_on_termination(true)
        .build();
    RequestLaunchTemplateData::builder()
        .image_id(image)
        .instance_type(f.instance_types[0].as_str().into())
        .security_group_ids(worker_sg)
        .metadata_options(
            LaunchTemplateInstanceMetadataOptionsRequest::builder()
                .http_tokens(LaunchTemplateHttpTokensState::Required)
                .http_put_response_hop_limit(1)
                .build(),
        )
        .block_device_mappings(LaunchTemplateBlockDeviceMappingRequest::builder().device_name(root_device).ebs(disk).build())
        .tag_specifications(tags(ResourceType::Instance))
        .tag_specifications(tags(ResourceType::Volume))
        .build()
}

/// Converges every fleet, and removes the groups of fleets no longer declared.
pub async fn converge(run: &mut Run<'_>, net: &Network, worker_sg: &str) -> Result<(), CloudError> {
    let fleets: Vec<Fleet> = run.spec.fleets.values().cloned().collect();
    for f in &fleets {
        let lt = template(run, f, worker_sg).await?;
        let subnet = if f.subnet == SubnetKind::Public { &net.public_subnet_id } else { &net.private_subnet_id };
        group(run, f, &lt, subnet).await?;
    }
    let wanted: Vec<String> = fleets.iter().map(|f| run.spec.asg_name(&f.name)).collect();
    for g in stack_groups(run).await? {
        let name = g.auto_scaling_group_name().unwrap_or_default().to_string();
        if !wanted.contains(&name) {
            remove_group(run, &name, "no longer in cloud.fleets").await?;
        }
    }
    Ok(())
}

async fn template(run: &mut Run<'_>, f: &Fleet, worker_sg: &str) -> Result<String, CloudError> {
    let (c, spec) = (run.c, run.spec);
    let name = spec.asg_name(&f.name);
    let (image, root_device) = super::instances::image(run, &f.ami).await?;
    let data = template_data(run, f, &image, &root_device, worker_sg);
    let mut filters = ours(spec, Some("fleet"));
    filters.push(super::tagged::filter("launch-template-name", &[&name]));
    let found = c.ec2.describe_launch_templates().set_filters(Some(filters)).send().await.map_err(api("DescribeLaunchTemplates"))?;
    let Some(id) = found.launch_templates().first().and_then(|t| t.launch_template_id()).map(str::to_string) else {
        run.note(
            Action::Create,
            format!("launch template {name} ({}, {} GiB encrypted root, IMDSv2)", f.instance_types[0], f.root_volume_gb),
        );
        if !run.dry_run {
            c.ec2
                .create_launch_template()
                .launch_template_name(&name)
                .launch_template_data(data)
                .tag_specifications(tagged(spec, ResourceType::LaunchTemplate, "fleet", &name))
                .send()
                .await
                .map_err(api("CreateLaunchTemplate"))?;
        }
        return Ok(name);
    };
    let v = c
        .ec2
        .describe_launch_template_versions()
        .launch_template_id(&id)
        .versions(LATEST)
        .send()
        .await
        .map_err(api("DescribeLaunchTemplateVersions"))?;
    let cur = v.launch_template_versions().first().and_then(|v| v.launch_template_data());
    let mut diff = Vec::new();
    if cur.and_then(|d| d.image_id()) != Some(image.as_str()) {
        diff.push(format!("image {image}"));
    }
    if cur.and_then(|d| d.instance_type()).map(|t| t.as_str()) != Some(f.instance_types[0].as_str()) {
        diff.push(format!("instance type {}", f.instance_types[0]));
    }
    let size = cur.and_then(|d| d.block_device_mappings().first()).and_then(|b| b.ebs()).and_then(|e| e.volume_size());
    if size != Some(f.root_volume_gb) {
        diff.push(format!("root {} GiB", f.root_volume_gb));
    }
    if cur.and_then(|d| d.security_group_ids().first()).map(String::as_str) != Some(worker_sg) && worker_sg != NEW {
        diff.push("workers' security group".into());
    }
    if diff.is_empty() {
        run.note(Action::Ok, format!("launch template {name} ({id})"));
        return Ok(name);
    }
    // A new version: the group's next instances use it, running ones are left alone.
    run.note(Action::Update, format!("launch template {name}: new version ({})", diff.join(", ")));
    if !run.dry_run {
        c.ec2
            .create_launch_template_version()
            .launch_template_id(&id)
            .launch_template_data(data)
            .send()
            .await
            .map_err(api("CreateLaunchTemplateVersion"))?;
    }
    Ok(name)
}

fn mixed(f: &Fleet, lt: &str) -> MixedInstancesPolicy {
    let overrides: Vec<LaunchTemplateOverrides> =
        f.instance_types.iter().map(|t| LaunchTemplateOverrides::builder().instance_type(t).build()).collect();
    MixedInstancesPolicy::builder()
        .launch_template(
            LaunchTemplate::builder()
                .launch_template_specification(LaunchTemplateSpecification::builder().launch_template_name(lt).version(LATEST).build())
                .set_overrides(Some(overrides))
                .build(),
        )
        .instances_distribution(
            InstancesDistribution::builder()
                .on_demand_base_capacity(0)
                .on_demand_percentage_above_base_capacity(if f.spot { 0 } else { 100 })
                .spot_allocation_strategy("price-capacity-optimized")
                .build(),
        )
        .build()
}

fn asg_tags(run: &Run<'_>, f: &Fleet, name: &str) -> Vec<AsgTag> {
    [(TAG_BY.0, TAG_BY.1), (TAG_STACK, run.spec.stack.as_str()), (TAG_RUNNER, f.runner.as_str()), ("Name", name)]
        .iter()
        .map(|(k, v)| {
            AsgTag::builder().key(*k).value(*v).propagate_at_launch(true).resource_id(name).resource_type("auto-scaling-group").build()
        })
        .collect()
}

/// The stack's auto scaling groups.
pub async fn stack_groups(run: &Run<'_>) -> Result<Vec<AutoScalingGroup>, CloudError> {
    let f = aws_sdk_autoscaling::types::Filter::builder().name(format!("tag:{TAG_STACK}")).values(&run.spec.stack).build();
    let r = run.c.asg.describe_auto_scaling_groups().filters(f).send().await.map_err(api("DescribeAutoScalingGroups"))?;
    Ok(r.auto_scaling_groups().to_vec())
}

async fn group(run: &mut Run<'_>, f: &Fleet, lt: &str, subnet: &str) -> Result<(), CloudError> {
    let c = run.c;
    let name = run.spec.asg_name(&f.name);
    let r = c.asg.describe_auto_scaling_groups().auto_scaling_group_names(&name).send().await.map_err(api("DescribeAutoScalingGroups"))?;
    let Some(g) = r.auto_scaling_groups().first() else {
        run.note(
            Action::Create,
            format!(
                "auto scaling group {name} (0..{}, {}{})",
                f.max_instances,
                f.instance_types.join("/"),
                if f.spot { ", spot" } else { "" }
            ),
        );
        if !run.dry_run {
            c.asg
                .create_auto_scaling_group()
                .auto_scaling_group_name(&name)
                .min_size(0)
                .max_size(f.max_instances)
                .desired_capacity(0)
                .vpc_zone_identifier(subnet)
                .mixed_instances_policy(mixed(f, lt))
                .new_instances_protected_from_scale_in(true)
                .set_tags(Some(asg_tags(run, f, &name)))
                .send()
                .await
                .map_err(api("CreateAutoScalingGroup"))?;
        }
        return Ok(());
    };
    if !g.tags().iter().any(|t| t.key() == Some(TAG_STACK) && t.value() == Some(run.spec.stack.as_str())) {
        return Err(CloudError::Api {
            call: "DescribeAutoScalingGroups",
            message: format!("auto scaling group {name} exists but is not this stack's (no {TAG_STACK}={} tag)", run.spec.stack),
        });
    }
    let mut diff = Vec::new();
    if g.max_size() != Some(f.max_instances) {
        diff.push(format!("max {}", f.max_instances));
    }
    if g.vpc_zone_identifier() != Some(subnet) && subnet != NEW {
        diff.push(format!("subnet {subnet}"));
    }
    let types: Vec<&str> = g
        .mixed_instances_policy()
        .and_then(|m| m.launch_template())
        .map(|l| l.overrides().iter().filter_map(|o| o.instance_type()).collect())
        .unwrap_or_default();
    if types != f.instance_types.iter().map(String::as_str).collect::<Vec<_>>() {
        diff.push(format!("instance types {}", f.instance_types.join("/")));
    }
    let spot_now =
        g.mixed_instances_policy().and_then(|m| m.instances_distribution()).and_then(|d| d.on_demand_percentage_above_base_capacity());
    if spot_now.is_some_and(|p| (p == 0) != f.spot) {
        diff.push(if f.spot { "spot".into() } else { "on demand".into() });
    }
    if diff.is_empty() {
        run.note(Action::Ok, format!("auto scaling group {name}"));
        return Ok(());
    }
    // Never the desired capacity: that is the fleeting plugin's.
    run.note(Action::Update, format!("auto scaling group {name}: {}", diff.join(", ")));
    if !run.dry_run {
        c.asg
            .update_auto_scaling_group()
            .auto_scaling_group_name(&name)
            .max_size(f.max_instances)
            .vpc_zone_identifier(subnet)
            .mixed_instances_policy(mixed(f, lt))
            .send()
            .await
            .map_err(api("UpdateAutoScalingGroup"))?;
    }
    Ok(())
}

/// Force-deletes a group (its instances go with it) and its launch template.
pub async fn remove_group(run: &mut Run<'_>, name: &str, why: &str) -> Result<(), CloudError> {
    let c = run.c;
    run.note(Action::Destroy, format!("auto scaling group {name} and its instances ({why})"));
    if !run.dry_run {
        c.asg
            .delete_auto_scaling_group()
            .auto_scaling_group_name(name)
            .force_delete(true)
            .send()
            .await
            .map_err(api("DeleteAutoScalingGroup"))?;
        wait_group_gone(run, name).await?;
    }
    let mut filters = ours(run.spec, Some("fleet"));
    filters.push(super::tagged::filter("launch-template-name", &[name]));
    let found = c.ec2.describe_launch_templates().set_filters(Some(filters)).send().await.map_err(api("DescribeLaunchTemplates"))?;
    for t in found.launch_templates() {
        let id = t.launch_template_id().unwrap_or_default().to_string();
        run.note(Action::Destroy, format!("launch template {name} ({id})"));
        if !run.dry_run {
            c.ec2.delete_launch_template().launch_template_id(&id).send().await.map_err(api("DeleteLaunchTemplate"))?;
        }
    }
    Ok(())
}

async fn wait_group_gone(run: &Run<'_>, name: &str) -> Result<(), CloudError> {
    for _ in 0..300 {
        let r = run
            .c
            .asg
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(name)
            .send()
            .await
            .map_err(api("DescribeAutoScalingGroups"))?;
        if r.auto_scaling_groups().is_empty() {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
    Err(CloudError::Timeout(format!("auto scaling group {name} to be deleted")))
}
