//! The VPC (DNS hostnames on), its internet gateway and the public and private subnets.

use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType};

use super::tagged::{NEW, ensure, ours, tagged};
use super::{Action, CloudError, Run, api};

/// The ids of the network's parts ([`NEW`] for what a dry run would create).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Network {
    /// VPC id.
    pub vpc_id: String,
    /// Internet gateway id.
    pub igw_id: String,
    /// Public subnet id.
    pub public_subnet_id: String,
    /// Private subnet id.
    pub private_subnet_id: String,
    /// Availability zone of the private subnet (`eu-west-1a`), empty until it exists.
    pub private_zone: String,
}

/// Converges the VPC, the internet gateway and both subnets.
pub async fn converge(run: &mut Run<'_>) -> Result<Network, CloudError> {
    let (c, spec) = (run.c, run.spec);
    let mut net = Network::default();
    let vpcs = c.ec2.describe_vpcs().set_filters(Some(ours(spec, Some("vpc")))).send().await.map_err(api("DescribeVpcs"))?;
    let found = vpcs.vpcs().first().and_then(|v| v.vpc_id()).map(str::to_string);
    let name = run.name("vpc");
    net.vpc_id = ensure(run, found, &format!("vpc {name} ({})", spec.vpc_cidr), || async {
        let r = c
            .ec2
            .create_vpc()
            .cidr_block(spec.vpc_cidr.to_string())
            .tag_specifications(tagged(spec, ResourceType::Vpc, "vpc", &name))
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
        Ok(id)
    })
    .await?;
    net.igw_id = internet_gateway(run, &net.vpc_id).await?;
    for (role, cidr, public) in [("public", spec.public_subnet, true), ("private", spec.private_subnet, false)] {
        let found = c.ec2.describe_subnets().set_filters(Some(ours(spec, Some(role)))).send().await.map_err(api("DescribeSubnets"))?;
        let zone = found.subnets().first().and_then(|s| s.availability_zone()).unwrap_or_default().to_string();
        let found = found.subnets().first().and_then(|s| s.subnet_id()).map(str::to_string);
        let name = run.name(role);
        let vpc = net.vpc_id.clone();
        let id = ensure(run, found, &format!("{role} subnet {name} ({cidr})"), || async {
            let r = c
                .ec2
                .create_subnet()
                .vpc_id(&vpc)
                .cidr_block(cidr.to_string())
                .set_availability_zone(spec.availability_zone.clone())
                .tag_specifications(tagged(spec, ResourceType::Subnet, role, &name))
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
            Ok(id)
        })
        .await?;
        if public {
            net.public_subnet_id = id;
        } else {
            net.private_zone = if zone.is_empty() && id != NEW { subnet_zone(run, &id).await? } else { zone };
            net.private_subnet_id = id;
        }
    }
    Ok(net)
}

async fn subnet_zone(run: &Run<'_>, id: &str) -> Result<String, CloudError> {
    let r = run.c.ec2.describe_subnets().subnet_ids(id).send().await.map_err(api("DescribeSubnets"))?;
    Ok(r.subnets().first().and_then(|s| s.availability_zone()).unwrap_or_default().to_string())
}

async fn internet_gateway(run: &mut Run<'_>, vpc: &str) -> Result<String, CloudError> {
    let (c, spec) = (run.c, run.spec);
    let igws = c
        .ec2
        .describe_internet_gateways()
        .set_filters(Some(ours(spec, Some("igw"))))
        .send()
        .await
        .map_err(api("DescribeInternetGateways"))?;
    if let Some(g) = igws.internet_gateways().first() {
        let id = g.internet_gateway_id().unwrap_or_default().to_string();
        if g.attachments().iter().any(|a| a.vpc_id() == Some(vpc)) {
            run.note(Action::Ok, format!("internet gateway {id}"));
        } else {
            run.note(Action::Update, format!("internet gateway {id} (attach to the vpc)"));
            if !run.dry_run {
                c.ec2.attach_internet_gateway().internet_gateway_id(&id).vpc_id(vpc).send().await.map_err(api("AttachInternetGateway"))?;
            }
        }
        return Ok(id);
    }
    let name = run.name("igw");
    ensure(run, None, &format!("internet gateway {name}"), || async {
        let r = c
            .ec2
            .create_internet_gateway()
            .tag_specifications(tagged(spec, ResourceType::InternetGateway, "igw", &name))
            .send()
            .await
            .map_err(api("CreateInternetGateway"))?;
        let id = r.internet_gateway().and_then(|g| g.internet_gateway_id()).unwrap_or_default().to_string();
        c.ec2.attach_internet_gateway().internet_gateway_id(&id).vpc_id(vpc).send().await.map_err(api("AttachInternetGateway"))?;
        Ok(id)
    })
    .await
}
