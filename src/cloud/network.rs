//! The EC2 side of a stack: VPC, internet gateway, subnets, route table, security groups, key
//! pair and instances. `converge` finds what carries the stack's tags, creates what is missing
//! (or, in a dry run, only says so), and `destroy` removes it all in dependency order.

use std::collections::BTreeSet;
use std::time::Duration;

use aws_sdk_ec2::types::{
    AttributeBooleanValue, BlockDeviceMapping, EbsBlockDevice, Filter, InstanceStateName, InstanceType, IpPermission, IpRange,
    ResourceType, Tag, TagSpecification, UserIdGroupPair, VolumeType,
};

use super::client::Clients;
use super::spec::{Ami, CloudSpec, Instance, SubnetKind};
use super::{Change, CloudError, TAG_BY, TAG_ROLE, TAG_STACK, api};

/// Placeholder for the id of something a dry run would create.
const NEW: &str = "(new)";

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
}

/// What a converge found or made, for the inventory and the runner config.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Outputs {
    /// VPC id.
    pub vpc_id: String,
    /// Public subnet id.
    pub public_subnet_id: String,
    /// Private subnet id.
    pub private_subnet_id: String,
    /// Security group of the masters.
    pub master_sg: String,
    /// Security group of the slaves.
    pub slave_sg: String,
    /// The stack's instances.
    pub instances: Vec<Running>,
}

fn tags(spec: &CloudSpec, role: &str, name: &str) -> Vec<Tag> {
    [(TAG_BY.0, TAG_BY.1), (TAG_STACK, spec.stack.as_str()), (TAG_ROLE, role), ("Name", name)]
        .iter()
        .map(|(k, v)| Tag::builder().key(*k).value(*v).build())
        .collect()
}

fn tagged(spec: &CloudSpec, rt: ResourceType, role: &str, name: &str) -> TagSpecification {
    TagSpecification::builder().resource_type(rt).set_tags(Some(tags(spec, role, name))).build()
}

/// Filters for "this stack's, with this role".
fn ours(spec: &CloudSpec, role: Option<&str>) -> Vec<Filter> {
    let mut f = vec![Filter::builder().name(format!("tag:{TAG_STACK}")).values(&spec.stack).build()];
    if let Some(r) = role {
        f.push(Filter::builder().name(format!("tag:{TAG_ROLE}")).values(r).build());
    }
    f
}

fn tag_of<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter().find(|t| t.key() == Some(key)).and_then(|t| t.value())
}

/// Converges the network, security groups, key pair and instances.
pub async fn converge(c: &Clients, spec: &CloudSpec, dry_run: bool, changes: &mut Vec<Change>) -> Result<Outputs, CloudError> {
    let mut out = Outputs::default();
    let name = |role: &str| format!("{}-{role}", spec.stack);
    // VPC
    let vpcs = c.ec2.describe_vpcs().set_filters(Some(ours(spec, Some("vpc")))).send().await.map_err(api("DescribeVpcs"))?;
    out.vpc_id = match vpcs.vpcs().first().and_then(|v| v.vpc_id()) {
        Some(id) => {
            changes.push(Change::new("ok", format!("vpc {id} ({})", spec.vpc_cidr)));
            id.to_string()
        }
        None => {
            changes.push(Change::new("create", format!("vpc {} ({})", name("vpc"), spec.vpc_cidr)));
            if dry_run {
                NEW.to_string()
            } else {
                let r = c
                    .ec2
                    .create_vpc()
                    .cidr_block(spec.vpc_cidr.to_string())
                    .tag_specifications(tagged(spec, ResourceType::Vpc, "vpc", &name("vpc")))
                    .send()
                    .await
                    .map_err(api("CreateVpc"))?;
                let id = r.vpc().and_then(|v| v.vpc_id()).unwrap_or_default().to_string();
                c.ec2
                    .modify_vpc_attribute()
                    .vpc_id(&id)
                    .enable_dns_hostnames(AttributeBooleanValue::builder().value(true).build())
                    .send()
                    .await
                    .map_err(api("ModifyVpcAttribute"))?;
                id
            }
        }
    };
    let vpc = out.vpc_id.clone();
    // Internet gateway, attached.
    let igws = c
        .ec2
        .describe_internet_gateways()
        .set_filters(Some(ours(spec, Some("igw"))))
        .send()
        .await
        .map_err(api("DescribeInternetGateways"))?;
    let igw = match igws.internet_gateways().first() {
        Some(g) => {
            let id = g.internet_gateway_id().unwrap_or_default().to_string();
            let attached = g.attachments().iter().any(|a| a.vpc_id() == Some(vpc.as_str()));
            if attached {
                changes.push(Change::new("ok", format!("internet gateway {id}")));
            } else {
                changes.push(Change::new("update", format!("internet gateway {id} (attach to the vpc)")));
                if !dry_run {
                    c.ec2
                        .attach_internet_gateway()
                        .internet_gateway_id(&id)
                        .vpc_id(&vpc)
                        .send()
                        .await
                        .map_err(api("AttachInternetGateway"))?;
                }
            }
            id
        }
        None => {
            changes.push(Change::new("create", format!("internet gateway {}", name("igw"))));
            if dry_run {
                NEW.to_string()
            } else {
                let r = c
                    .ec2
                    .create_internet_gateway()
                    .tag_specifications(tagged(spec, ResourceType::InternetGateway, "igw", &name("igw")))
                    .send()
                    .await
                    .map_err(api("CreateInternetGateway"))?;
                let id = r.internet_gateway().and_then(|g| g.internet_gateway_id()).unwrap_or_default().to_string();
                c.ec2.attach_internet_gateway().internet_gateway_id(&id).vpc_id(&vpc).send().await.map_err(api("AttachInternetGateway"))?;
                id
            }
        }
    };
    // Subnets.
    for (role, cidr, public) in [("public", spec.public_subnet, true), ("private", spec.private_subnet, false)] {
        let found = c.ec2.describe_subnets().set_filters(Some(ours(spec, Some(role)))).send().await.map_err(api("DescribeSubnets"))?;
        let id = match found.subnets().first() {
            Some(s) => {
                let id = s.subnet_id().unwrap_or_default().to_string();
                changes.push(Change::new("ok", format!("{role} subnet {id} ({cidr})")));
                id
            }
            None => {
                changes.push(Change::new("create", format!("{role} subnet {} ({cidr})", name(role))));
                if dry_run {
                    NEW.to_string()
                } else {
                    let r = c
                        .ec2
                        .create_subnet()
                        .vpc_id(&vpc)
                        .cidr_block(cidr.to_string())
                        .set_availability_zone(spec.availability_zone.clone())
                        .tag_specifications(tagged(spec, ResourceType::Subnet, role, &name(role)))
                        .send()
                        .await
                        .map_err(api("CreateSubnet"))?;
                    let id = r.subnet().and_then(|s| s.subnet_id()).unwrap_or_default().to_string();
                    if public {
                        c.ec2
                            .modify_subnet_attribute()
                            .subnet_id(&id)
                            .map_public_ip_on_launch(AttributeBooleanValue::builder().value(true).build())
                            .send()
                            .await
                            .map_err(api("ModifySubnetAttribute"))?;
                    }
                    id
                }
            }
        };
        if public { out.public_subnet_id = id } else { out.private_subnet_id = id }
    }
    // The public route table: default route through the internet gateway.
    default_route(c, spec, dry_run, changes, ("public-routes", &vpc, &out.public_subnet_id), Via::Gateway(&igw)).await?;
    if spec.nat_gateway {
        nat_gateway(c, spec, dry_run, changes, &out).await?;
    }
    security_groups(c, spec, dry_run, changes, &mut out).await?;
    key_pair(c, spec, dry_run, changes).await?;
    instances(c, spec, dry_run, changes, &mut out).await?;
    Ok(out)
}

/// A NAT gateway in the public subnet (with its elastic IP) and the private subnet's default
/// route through it, so private instances reach the internet without being reachable from it.
async fn nat_gateway(c: &Clients, spec: &CloudSpec, dry_run: bool, changes: &mut Vec<Change>, out: &Outputs) -> Result<(), CloudError> {
    let name = format!("{}-nat", spec.stack);
    let mut filters = ours(spec, Some("nat"));
    filters.push(Filter::builder().name("state").values("pending").values("available").build());
    let found = c.ec2.describe_nat_gateways().set_filter(Some(filters)).send().await.map_err(api("DescribeNatGateways"))?;
    let nat = match found.nat_gateways().first().and_then(|n| n.nat_gateway_id()) {
        Some(id) => {
            changes.push(Change::new("ok", format!("nat gateway {id}")));
            id.to_string()
        }
        None => {
            changes.push(Change::new("create", format!("nat gateway {name} (with an elastic IP)")));
            if dry_run {
                NEW.to_string()
            } else {
                let eip = c
                    .ec2
                    .allocate_address()
                    .domain(aws_sdk_ec2::types::DomainType::Vpc)
                    .tag_specifications(tagged(spec, ResourceType::ElasticIp, "nat-ip", &name))
                    .send()
                    .await
                    .map_err(api("AllocateAddress"))?;
                let r = c
                    .ec2
                    .create_nat_gateway()
                    .subnet_id(&out.public_subnet_id)
                    .set_allocation_id(eip.allocation_id().map(str::to_string))
                    .tag_specifications(tagged(spec, ResourceType::Natgateway, "nat", &name))
                    .send()
                    .await
                    .map_err(api("CreateNatGateway"))?;
                r.nat_gateway().and_then(|n| n.nat_gateway_id()).unwrap_or_default().to_string()
            }
        }
    };
    default_route(c, spec, dry_run, changes, ("private-routes", &out.vpc_id, &out.private_subnet_id), Via::Nat(&nat)).await
}

/// Where a route table's default route goes.
enum Via<'a> {
    /// An internet gateway.
    Gateway(&'a str),
    /// A NAT gateway.
    Nat(&'a str),
}

/// The stack's route table `role` in `vpc`: 0.0.0.0/0 via `via`, associated with `subnet`.
async fn default_route(
    c: &Clients,
    spec: &CloudSpec,
    dry_run: bool,
    changes: &mut Vec<Change>,
    (role, vpc, subnet): (&str, &str, &str),
    via: Via<'_>,
) -> Result<(), CloudError> {
    let name = format!("{}-{role}", spec.stack);
    let found = c.ec2.describe_route_tables().set_filters(Some(ours(spec, Some(role)))).send().await.map_err(api("DescribeRouteTables"))?;
    if !found.route_tables().is_empty() {
        changes.push(Change::new("ok", format!("route table {name}")));
        return Ok(());
    }
    let through = match via {
        Via::Gateway(_) => "the internet gateway",
        Via::Nat(_) => "the nat gateway",
    };
    changes.push(Change::new("create", format!("route table {name} (0.0.0.0/0 via {through})")));
    if dry_run {
        return Ok(());
    }
    let r = c
        .ec2
        .create_route_table()
        .vpc_id(vpc)
        .tag_specifications(tagged(spec, ResourceType::RouteTable, role, &name))
        .send()
        .await
        .map_err(api("CreateRouteTable"))?;
    let rt = r.route_table().and_then(|t| t.route_table_id()).unwrap_or_default().to_string();
    let route = c.ec2.create_route().route_table_id(&rt).destination_cidr_block("0.0.0.0/0");
    let route = match via {
        Via::Gateway(id) => route.gateway_id(id),
        Via::Nat(id) => route.nat_gateway_id(id),
    };
    route.send().await.map_err(api("CreateRoute"))?;
    c.ec2.associate_route_table().route_table_id(&rt).subnet_id(subnet).send().await.map_err(api("AssociateRouteTable"))?;
    Ok(())
}

/// A wanted ingress rule: port and source (a CIDR or a security group id).
type Rule = (i32, String);

fn wanted_rules(spec: &CloudSpec, role: &str, master_sg: &str) -> BTreeSet<Rule> {
    let mut rules: BTreeSet<Rule> = spec.admin_cidrs.iter().map(|c| (22, c.to_string())).collect();
    if role == "slave" {
        // Least privilege: docker's TLS port only from the masters, the cache only in the VPC.
        rules.insert((spec.docker_tls_port, master_sg.to_string()));
        rules.insert((spec.registry_port, spec.vpc_cidr.to_string()));
    }
    rules
}

fn permission((port, source): &Rule) -> IpPermission {
    let p = IpPermission::builder().ip_protocol("tcp").from_port(*port).to_port(*port);
    if source.starts_with("sg-") || source == NEW {
        p.user_id_group_pairs(UserIdGroupPair::builder().group_id(source).build()).build()
    } else {
        p.ip_ranges(IpRange::builder().cidr_ip(source).build()).build()
    }
}

async fn security_groups(
    c: &Clients,
    spec: &CloudSpec,
    dry_run: bool,
    changes: &mut Vec<Change>,
    out: &mut Outputs,
) -> Result<(), CloudError> {
    for role in ["master", "slave"] {
        let sg_role = format!("{role}-sg");
        let gname = format!("{}-{role}", spec.stack);
        let found = c
            .ec2
            .describe_security_groups()
            .set_filters(Some(ours(spec, Some(&sg_role))))
            .send()
            .await
            .map_err(api("DescribeSecurityGroups"))?;
        let (id, current): (String, BTreeSet<Rule>) = match found.security_groups().first() {
            Some(g) => {
                let mut cur = BTreeSet::new();
                for p in g.ip_permissions() {
                    let port = p.from_port().unwrap_or(-1);
                    cur.extend(p.ip_ranges().iter().filter_map(|r| r.cidr_ip()).map(|s| (port, s.to_string())));
                    cur.extend(p.user_id_group_pairs().iter().filter_map(|u| u.group_id()).map(|s| (port, s.to_string())));
                }
                (g.group_id().unwrap_or_default().to_string(), cur)
            }
            None => {
                changes.push(Change::new("create", format!("security group {gname}")));
                let id = if dry_run {
                    NEW.to_string()
                } else {
                    c.ec2
                        .create_security_group()
                        .group_name(&gname)
                        .description(format!("provision stack {}: {role}s", spec.stack))
                        .vpc_id(&out.vpc_id)
                        .tag_specifications(tagged(spec, ResourceType::SecurityGroup, &sg_role, &gname))
                        .send()
                        .await
                        .map_err(api("CreateSecurityGroup"))?
                        .group_id()
                        .unwrap_or_default()
                        .to_string()
                };
                (id, BTreeSet::new())
            }
        };
        if role == "master" {
            out.master_sg = id.clone();
        } else {
            out.slave_sg = id.clone();
        }
        let wanted = wanted_rules(spec, role, &out.master_sg);
        let missing: Vec<&Rule> = wanted.difference(&current).collect();
        let extra: Vec<&Rule> = current.difference(&wanted).collect();
        if missing.is_empty() && extra.is_empty() {
            if id != NEW {
                changes.push(Change::new("ok", format!("security group {gname} ({id})")));
            }
            continue;
        }
        for (verb, rules) in [("allow", &missing), ("revoke", &extra)] {
            if !rules.is_empty() {
                let list: Vec<String> = rules.iter().map(|(p, s)| format!("{p} from {s}")).collect();
                changes.push(Change::new("update", format!("security group {gname}: {verb} tcp {}", list.join(", "))));
            }
        }
        if dry_run {
            continue;
        }
        if !missing.is_empty() {
            c.ec2
                .authorize_security_group_ingress()
                .group_id(&id)
                .set_ip_permissions(Some(missing.iter().map(|r| permission(r)).collect()))
                .send()
                .await
                .map_err(api("AuthorizeSecurityGroupIngress"))?;
        }
        if !extra.is_empty() {
            c.ec2
                .revoke_security_group_ingress()
                .group_id(&id)
                .set_ip_permissions(Some(extra.iter().map(|r| permission(r)).collect()))
                .send()
                .await
                .map_err(api("RevokeSecurityGroupIngress"))?;
        }
    }
    Ok(())
}

async fn key_pair(c: &Clients, spec: &CloudSpec, dry_run: bool, changes: &mut Vec<Change>) -> Result<(), CloudError> {
    let Some((kname, public)) = &spec.key_pair else { return Ok(()) };
    let found = c.ec2.describe_key_pairs().set_filters(Some(ours(spec, Some("key")))).send().await.map_err(api("DescribeKeyPairs"))?;
    if found.key_pairs().iter().any(|k| k.key_name() == Some(kname.as_str())) {
        changes.push(Change::new("ok", format!("key pair {kname}")));
        return Ok(());
    }
    changes.push(Change::new("create", format!("key pair {kname}")));
    if !dry_run {
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

/// Matches instances that are not terminated (or on their way there).
pub fn live_instances() -> Filter {
    Filter::builder().name("instance-state-name").values("pending").values("running").values("stopping").values("stopped").build()
}

/// The stack's instances that are not terminated (or on their way there).
pub async fn stack_instances(c: &Clients, spec: &CloudSpec) -> Result<Vec<Running>, CloudError> {
    let mut filters = ours(spec, None);
    filters.push(live_instances());
    let r = c.ec2.describe_instances().set_filters(Some(filters)).send().await.map_err(api("DescribeInstances"))?;
    Ok(r.reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter_map(|i| {
            let group = tag_of(i.tags(), TAG_ROLE)?;
            if group != "master" && group != "slave" {
                return None;
            }
            Some(Running {
                name: tag_of(i.tags(), "Name")?.to_string(),
                group: group.to_string(),
                id: i.instance_id()?.to_string(),
                public_ip: i.public_ip_address().map(str::to_string),
                private_ip: i.private_ip_address().map(str::to_string),
                instance_type: i.instance_type().map(|t| t.as_str().to_string()).unwrap_or_default(),
            })
        })
        .collect())
}

async fn ami_id(c: &Clients, ami: &Ami) -> Result<String, CloudError> {
    match ami {
        Ami::Id(id) => Ok(id.clone()),
        Ami::Name { name, owner } => {
            let r = c
                .ec2
                .describe_images()
                .owners(owner)
                .filters(Filter::builder().name("name").values(name).build())
                .send()
                .await
                .map_err(api("DescribeImages"))?;
            let mut images: Vec<_> = r.images().iter().filter(|i| i.image_id().is_some()).collect();
            images.sort_by_key(|i| i.creation_date().unwrap_or_default().to_string());
            images
                .last()
                .and_then(|i| i.image_id())
                .map(str::to_string)
                .ok_or_else(|| CloudError::Api { call: "DescribeImages", message: format!("no image named `{name}` owned by {owner}") })
        }
    }
}

async fn instances(c: &Clients, spec: &CloudSpec, dry_run: bool, changes: &mut Vec<Change>, out: &mut Outputs) -> Result<(), CloudError> {
    let existing = stack_instances(c, spec).await?;
    let mut started = Vec::new();
    for inst in spec.instances.values() {
        if let Some(r) = existing.iter().find(|r| r.name == inst.name) {
            if r.instance_type == inst.instance_type {
                changes.push(Change::new("ok", format!("instance {} ({})", inst.name, r.id)));
            } else {
                // A type change needs the instance stopped: it restarts with the same disk.
                changes.push(Change::new(
                    "update",
                    format!("instance {} ({}): {} → {} (stopped and started again)", inst.name, r.id, r.instance_type, inst.instance_type),
                ));
                if !dry_run {
                    resize(c, &r.id, &inst.instance_type).await?;
                }
            }
            continue;
        }
        changes.push(Change::new("create", format!("instance {} ({}, {})", inst.name, inst.instance_type, inst.group)));
        if !dry_run {
            started.push(launch(c, spec, inst, out).await?);
        }
    }
    for r in existing.iter().filter(|r| !spec.instances.contains_key(&r.name)) {
        changes.push(Change::new("destroy", format!("instance {} ({}: no longer in cloud.instances)", r.name, r.id)));
        if !dry_run {
            terminate(c, std::slice::from_ref(&r.id)).await?;
        }
    }
    if !started.is_empty() {
        wait_running(c, &started).await?;
    }
    if !dry_run {
        out.instances = stack_instances(c, spec).await?;
    } else {
        out.instances = existing;
    }
    Ok(())
}

async fn resize(c: &Clients, id: &str, instance_type: &str) -> Result<(), CloudError> {
    let ids = [id.to_string()];
    c.ec2.stop_instances().instance_ids(id).send().await.map_err(api("StopInstances"))?;
    wait_state(c, &ids, InstanceStateName::Stopped, "to stop").await?;
    c.ec2
        .modify_instance_attribute()
        .instance_id(id)
        .instance_type(aws_sdk_ec2::types::AttributeValue::builder().value(instance_type).build())
        .send()
        .await
        .map_err(api("ModifyInstanceAttribute"))?;
    c.ec2.start_instances().instance_ids(id).send().await.map_err(api("StartInstances"))?;
    wait_running(c, &ids).await
}

async fn launch(c: &Clients, spec: &CloudSpec, inst: &Instance, out: &Outputs) -> Result<String, CloudError> {
    let (subnet, sg) = (
        if inst.subnet == SubnetKind::Public { &out.public_subnet_id } else { &out.private_subnet_id },
        if inst.group == "master" { &out.master_sg } else { &out.slave_sg },
    );
    let disk = EbsBlockDevice::builder().volume_size(inst.root_volume_gb).volume_type(VolumeType::Gp3).delete_on_termination(true).build();
    let r = c
        .ec2
        .run_instances()
        .image_id(ami_id(c, &inst.ami).await?)
        .instance_type(InstanceType::from(inst.instance_type.as_str()))
        .min_count(1)
        .max_count(1)
        .set_key_name(spec.key_pair.as_ref().map(|k| k.0.clone()))
        .subnet_id(subnet)
        .security_group_ids(sg)
        .block_device_mappings(BlockDeviceMapping::builder().device_name("/dev/xvda").ebs(disk).build())
        .tag_specifications({
            let mut t = tags(spec, &inst.group, &inst.name);
            t.extend(inst.tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()));
            TagSpecification::builder().resource_type(ResourceType::Instance).set_tags(Some(t)).build()
        })
        .send()
        .await
        .map_err(api("RunInstances"))?;
    Ok(r.instances().first().and_then(|i| i.instance_id()).unwrap_or_default().to_string())
}

/// Polls until every instance runs, with a progress line on a terminal.
async fn wait_running(c: &Clients, ids: &[String]) -> Result<(), CloudError> {
    wait_state(c, ids, InstanceStateName::Running, "to run").await
}

async fn wait_state(c: &Clients, ids: &[String], want: InstanceStateName, what: &str) -> Result<(), CloudError> {
    use std::io::IsTerminal;
    let pb = std::io::stderr().is_terminal().then(|| {
        let pb = indicatif::ProgressBar::new_spinner();
        pb.enable_steady_tick(Duration::from_millis(120));
        pb
    });
    for _ in 0..240 {
        let r = c.ec2.describe_instances().set_instance_ids(Some(ids.to_vec())).send().await.map_err(api("DescribeInstances"))?;
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
pub async fn terminate(c: &Clients, ids: &[String]) -> Result<(), CloudError> {
    if ids.is_empty() {
        return Ok(());
    }
    c.ec2.terminate_instances().set_instance_ids(Some(ids.to_vec())).send().await.map_err(api("TerminateInstances"))?;
    wait_state(c, ids, InstanceStateName::Terminated, "to terminate").await
}

/// A deleted NAT gateway holds its elastic IP and subnet until it is gone.
async fn wait_nat_gone(c: &Clients, spec: &CloudSpec) -> Result<(), CloudError> {
    for _ in 0..180 {
        let mut f = ours(spec, None);
        f.push(Filter::builder().name("state").values("pending").values("available").values("deleting").build());
        let r = c.ec2.describe_nat_gateways().set_filter(Some(f)).send().await.map_err(api("DescribeNatGateways"))?;
        if r.nat_gateways().is_empty() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    Err(CloudError::Timeout("the nat gateway to be deleted".into()))
}

/// Removes everything of the stack on EC2, in dependency order; a dry run only lists it.
pub async fn destroy(c: &Clients, spec: &CloudSpec, dry_run: bool, changes: &mut Vec<Change>) -> Result<(), CloudError> {
    let insts = stack_instances(c, spec).await?;
    for i in &insts {
        changes.push(Change::new("destroy", format!("instance {} ({})", i.name, i.id)));
    }
    if !dry_run {
        terminate(c, &insts.iter().map(|i| i.id.clone()).collect::<Vec<_>>()).await?;
    }
    let keys = c.ec2.describe_key_pairs().set_filters(Some(ours(spec, Some("key")))).send().await.map_err(api("DescribeKeyPairs"))?;
    for k in keys.key_pairs() {
        let n = k.key_name().unwrap_or_default();
        changes.push(Change::new("destroy", format!("key pair {n}")));
        if !dry_run {
            c.ec2.delete_key_pair().key_name(n).send().await.map_err(api("DeleteKeyPair"))?;
        }
    }
    let mut nat_filters = ours(spec, None);
    nat_filters.push(Filter::builder().name("state").values("pending").values("available").build());
    let nats = c.ec2.describe_nat_gateways().set_filter(Some(nat_filters)).send().await.map_err(api("DescribeNatGateways"))?;
    for n in nats.nat_gateways() {
        let id = n.nat_gateway_id().unwrap_or_default();
        changes.push(Change::new("destroy", format!("nat gateway {id}")));
        if !dry_run {
            c.ec2.delete_nat_gateway().nat_gateway_id(id).send().await.map_err(api("DeleteNatGateway"))?;
        }
    }
    if !dry_run && !nats.nat_gateways().is_empty() {
        wait_nat_gone(c, spec).await?;
    }
    let eips = c.ec2.describe_addresses().set_filters(Some(ours(spec, None))).send().await.map_err(api("DescribeAddresses"))?;
    for a in eips.addresses() {
        let id = a.allocation_id().unwrap_or_default();
        changes.push(Change::new("destroy", format!("elastic ip {} ({id})", a.public_ip().unwrap_or_default())));
        if !dry_run {
            c.ec2.release_address().allocation_id(id).send().await.map_err(api("ReleaseAddress"))?;
        }
    }
    let sgs = c.ec2.describe_security_groups().set_filters(Some(ours(spec, None))).send().await.map_err(api("DescribeSecurityGroups"))?;
    // Rules referencing another group go first, or that group cannot be deleted.
    for g in sgs.security_groups() {
        let id = g.group_id().unwrap_or_default();
        if !dry_run && !g.ip_permissions().is_empty() {
            c.ec2
                .revoke_security_group_ingress()
                .group_id(id)
                .set_ip_permissions(Some(g.ip_permissions().to_vec()))
                .send()
                .await
                .map_err(api("RevokeSecurityGroupIngress"))?;
        }
    }
    for g in sgs.security_groups() {
        let id = g.group_id().unwrap_or_default();
        changes.push(Change::new("destroy", format!("security group {} ({id})", g.group_name().unwrap_or_default())));
        if !dry_run {
            c.ec2.delete_security_group().group_id(id).send().await.map_err(api("DeleteSecurityGroup"))?;
        }
    }
    let rts = c.ec2.describe_route_tables().set_filters(Some(ours(spec, None))).send().await.map_err(api("DescribeRouteTables"))?;
    for rt in rts.route_tables() {
        let id = rt.route_table_id().unwrap_or_default();
        changes.push(Change::new("destroy", format!("route table {id}")));
        if !dry_run {
            for a in rt.associations().iter().filter(|a| !a.main().unwrap_or(false)) {
                if let Some(aid) = a.route_table_association_id() {
                    c.ec2.disassociate_route_table().association_id(aid).send().await.map_err(api("DisassociateRouteTable"))?;
                }
            }
            c.ec2.delete_route_table().route_table_id(id).send().await.map_err(api("DeleteRouteTable"))?;
        }
    }
    let subnets = c.ec2.describe_subnets().set_filters(Some(ours(spec, None))).send().await.map_err(api("DescribeSubnets"))?;
    for s in subnets.subnets() {
        let id = s.subnet_id().unwrap_or_default();
        changes.push(Change::new("destroy", format!("subnet {id} ({})", s.cidr_block().unwrap_or_default())));
        if !dry_run {
            c.ec2.delete_subnet().subnet_id(id).send().await.map_err(api("DeleteSubnet"))?;
        }
    }
    let igws =
        c.ec2.describe_internet_gateways().set_filters(Some(ours(spec, None))).send().await.map_err(api("DescribeInternetGateways"))?;
    for g in igws.internet_gateways() {
        let id = g.internet_gateway_id().unwrap_or_default();
        changes.push(Change::new("destroy", format!("internet gateway {id}")));
        if !dry_run {
            for a in g.attachments() {
                if let Some(v) = a.vpc_id() {
                    c.ec2.detach_internet_gateway().internet_gateway_id(id).vpc_id(v).send().await.map_err(api("DetachInternetGateway"))?;
                }
            }
            c.ec2.delete_internet_gateway().internet_gateway_id(id).send().await.map_err(api("DeleteInternetGateway"))?;
        }
    }
    let vpcs = c.ec2.describe_vpcs().set_filters(Some(ours(spec, None))).send().await.map_err(api("DescribeVpcs"))?;
    for v in vpcs.vpcs() {
        let id = v.vpc_id().unwrap_or_default();
        changes.push(Change::new("destroy", format!("vpc {id} ({})", v.cidr_block().unwrap_or_default())));
        if !dry_run {
            c.ec2.delete_vpc().vpc_id(id).send().await.map_err(api("DeleteVpc"))?;
        }
    }
    Ok(())
}
