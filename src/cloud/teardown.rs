//! `cloud destroy`: everything the stack made, runner-made machines included, in dependency
//! order: fleets first (their groups would replace what is terminated), then every instance in
//! the stack's VPC or tagged with it, the key pair, the NAT gateway and its address, the S3
//! endpoint, every non-default security group in the VPC (docker-machine's own included), the
//! route tables, subnets, internet gateway and VPC, then IAM and the log group.

use std::collections::BTreeSet;

use aws_sdk_ec2::types::Filter;

use super::instances::{live_instances, terminate};
use super::tagged::{filter, ours, remove, tag_of};
use super::{CloudError, Run, TAG_RUNNER, api};

/// Removes the stack; a dry run only lists what would go.
pub async fn destroy(run: &mut Run<'_>) -> Result<(), CloudError> {
    let c = run.c;
    for g in super::fleets::stack_groups(run).await? {
        let name = g.auto_scaling_group_name().unwrap_or_default().to_string();
        super::fleets::remove_group(run, &name, "the stack's fleet").await?;
    }
    let vpcs = c.ec2.describe_vpcs().set_filters(Some(ours(run.spec, None))).send().await.map_err(api("DescribeVpcs"))?;
    let vpc_ids: Vec<String> = vpcs.vpcs().iter().filter_map(|v| v.vpc_id()).map(str::to_string).collect();
    instances(run, &vpc_ids).await?;
    key_pairs(run).await?;
    nat_gateways(run).await?;
    for vpc in &vpc_ids {
        endpoints(run, vpc).await?;
        security_groups(run, vpc).await?;
    }
    network(run, &vpcs).await?;
    super::iam::destroy(run).await?;
    super::logs::destroy(run).await
}

/// Every live instance tagged with the stack (its own and runner-made ones) or inside its VPC.
async fn instances(run: &mut Run<'_>, vpcs: &[String]) -> Result<(), CloudError> {
    let mut queries: Vec<Vec<Filter>> = vec![ours(run.spec, None)];
    if !vpcs.is_empty() {
        let ids: Vec<&str> = vpcs.iter().map(String::as_str).collect();
        queries.push(vec![filter("vpc-id", &ids)]);
    }
    let mut seen = BTreeSet::new();
    let mut labels = Vec::new();
    for mut q in queries {
        q.push(live_instances());
        let r = run.c.ec2.describe_instances().set_filters(Some(q)).send().await.map_err(api("DescribeInstances"))?;
        for i in r.reservations().iter().flat_map(|r| r.instances()) {
            let Some(id) = i.instance_id() else { continue };
            if seen.insert(id.to_string()) {
                let name = tag_of(i.tags(), "Name").unwrap_or("");
                let runner = tag_of(i.tags(), TAG_RUNNER).map(|r| format!(", runner {r}")).unwrap_or_default();
                labels.push(format!("instance {name} ({id}{runner})"));
            }
        }
    }
    for l in labels {
        run.note(super::Action::Destroy, l);
    }
    if !run.dry_run {
        terminate(run, &seen.into_iter().collect::<Vec<_>>()).await?;
    }
    Ok(())
}

async fn key_pairs(run: &mut Run<'_>) -> Result<(), CloudError> {
    let c = run.c;
    let keys = c.ec2.describe_key_pairs().set_filters(Some(ours(run.spec, Some("key")))).send().await.map_err(api("DescribeKeyPairs"))?;
    for k in keys.key_pairs() {
        let n = k.key_name().unwrap_or_default().to_string();
        remove(run, format!("key pair {n}"), || async {
            c.ec2.delete_key_pair().key_name(&n).send().await.map_err(api("DeleteKeyPair"))?;
            Ok(())
        })
        .await?;
    }
    Ok(())
}

async fn nat_gateways(run: &mut Run<'_>) -> Result<(), CloudError> {
    let c = run.c;
    let mut f = ours(run.spec, None);
    f.push(filter("state", &["pending", "available"]));
    let nats = c.ec2.describe_nat_gateways().set_filter(Some(f)).send().await.map_err(api("DescribeNatGateways"))?;
    for n in nats.nat_gateways() {
        let id = n.nat_gateway_id().unwrap_or_default().to_string();
        remove(run, format!("nat gateway {id}"), || async {
            c.ec2.delete_nat_gateway().nat_gateway_id(&id).send().await.map_err(api("DeleteNatGateway"))?;
            Ok(())
        })
        .await?;
    }
    if !run.dry_run && !nats.nat_gateways().is_empty() {
        wait_nat_gone(run).await?;
    }
    let eips = c.ec2.describe_addresses().set_filters(Some(ours(run.spec, None))).send().await.map_err(api("DescribeAddresses"))?;
    for a in eips.addresses() {
        let id = a.allocation_id().unwrap_or_default().to_string();
        remove(run, format!("elastic ip {} ({id})", a.public_ip().unwrap_or_default()), || async {
            c.ec2.release_address().allocation_id(&id).send().await.map_err(api("ReleaseAddress"))?;
            Ok(())
        })
        .await?;
    }
    Ok(())
}

/// A deleted NAT gateway holds its elastic IP and subnet until it is gone.
async fn wait_nat_gone(run: &Run<'_>) -> Result<(), CloudError> {
    for _ in 0..180 {
        let mut f = ours(run.spec, None);
        f.push(filter("state", &["pending", "available", "deleting"]));
        let r = run.c.ec2.describe_nat_gateways().set_filter(Some(f)).send().await.map_err(api("DescribeNatGateways"))?;
        if r.nat_gateways().is_empty() {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
    Err(CloudError::Timeout("the nat gateway to be deleted".into()))
}

async fn endpoints(run: &mut Run<'_>, vpc: &str) -> Result<(), CloudError> {
    let c = run.c;
    let f = vec![filter("vpc-id", &[vpc]), filter("vpc-endpoint-state", &["pending", "available"])];
    let eps = c.ec2.describe_vpc_endpoints().set_filters(Some(f)).send().await.map_err(api("DescribeVpcEndpoints"))?;
    for e in eps.vpc_endpoints() {
        let id = e.vpc_endpoint_id().unwrap_or_default().to_string();
        remove(run, format!("vpc endpoint {id} ({})", e.service_name().unwrap_or_default()), || async {
            c.ec2.delete_vpc_endpoints().vpc_endpoint_ids(&id).send().await.map_err(api("DeleteVpcEndpoints"))?;
            Ok(())
        })
        .await?;
    }
    Ok(())
}

/// Every security group in the VPC but its default one, whoever made it (docker-machine makes
/// its own when not given one): AWS refuses to delete a VPC that still has any.
async fn security_groups(run: &mut Run<'_>, vpc: &str) -> Result<(), CloudError> {
    let c = run.c;
    let sgs = c.ec2.describe_security_groups().filters(filter("vpc-id", &[vpc])).send().await.map_err(api("DescribeSecurityGroups"))?;
    let groups: Vec<_> = sgs.security_groups().iter().filter(|g| g.group_name() != Some("default")).collect();
    // Rules referencing another group go first, or that group cannot be deleted.
    if !run.dry_run {
        for g in &groups {
            if !g.ip_permissions().is_empty() {
                c.ec2
                    .revoke_security_group_ingress()
                    .group_id(g.group_id().unwrap_or_default())
                    .set_ip_permissions(Some(g.ip_permissions().to_vec()))
                    .send()
                    .await
                    .map_err(api("RevokeSecurityGroupIngress"))?;
            }
        }
    }
    for g in groups {
        let id = g.group_id().unwrap_or_default().to_string();
        remove(run, format!("security group {} ({id})", g.group_name().unwrap_or_default()), || async {
            c.ec2.delete_security_group().group_id(&id).send().await.map_err(api("DeleteSecurityGroup"))?;
            Ok(())
        })
        .await?;
    }
    Ok(())
}

async fn network(run: &mut Run<'_>, vpcs: &aws_sdk_ec2::operation::describe_vpcs::DescribeVpcsOutput) -> Result<(), CloudError> {
    let c = run.c;
    let rts = c.ec2.describe_route_tables().set_filters(Some(ours(run.spec, None))).send().await.map_err(api("DescribeRouteTables"))?;
    for rt in rts.route_tables() {
        let id = rt.route_table_id().unwrap_or_default().to_string();
        remove(run, format!("route table {id}"), || async {
            for a in rt.associations().iter().filter(|a| !a.main().unwrap_or(false)) {
                if let Some(aid) = a.route_table_association_id() {
                    c.ec2.disassociate_route_table().association_id(aid).send().await.map_err(api("DisassociateRouteTable"))?;
                }
            }
            c.ec2.delete_route_table().route_table_id(&id).send().await.map_err(api("DeleteRouteTable"))?;
            Ok(())
        })
        .await?;
    }
    let subnets = c.ec2.describe_subnets().set_filters(Some(ours(run.spec, None))).send().await.map_err(api("DescribeSubnets"))?;
    for s in subnets.subnets() {
        let id = s.subnet_id().unwrap_or_default().to_string();
        remove(run, format!("subnet {id} ({})", s.cidr_block().unwrap_or_default()), || async {
            c.ec2.delete_subnet().subnet_id(&id).send().await.map_err(api("DeleteSubnet"))?;
            Ok(())
        })
        .await?;
    }
    let igws =
        c.ec2.describe_internet_gateways().set_filters(Some(ours(run.spec, None))).send().await.map_err(api("DescribeInternetGateways"))?;
    for g in igws.internet_gateways() {
        let id = g.internet_gateway_id().unwrap_or_default().to_string();
        remove(run, format!("internet gateway {id}"), || async {
            for a in g.attachments() {
                if let Some(v) = a.vpc_id() {
                    c.ec2
                        .detach_internet_gateway()
                        .internet_gateway_id(&id)
                        .vpc_id(v)
                        .send()
                        .await
                        .map_err(api("DetachInternetGateway"))?;
                }
            }
            c.ec2.delete_internet_gateway().internet_gateway_id(&id).send().await.map_err(api("DeleteInternetGateway"))?;
            Ok(())
        })
        .await?;
    }
    for v in vpcs.vpcs() {
        let id = v.vpc_id().unwrap_or_default().to_string();
        remove(run, format!("vpc {id} ({})", v.cidr_block().unwrap_or_default()), || async {
            c.ec2.delete_vpc().vpc_id(&id).send().await.map_err(api("DeleteVpc"))?;
            Ok(())
        })
        .await?;
    }
    Ok(())
}
