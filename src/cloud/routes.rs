//! Ways out: the public route table (0.0.0.0/0 via the internet gateway), the optional NAT
//! gateway with the private route table, and the optional S3 gateway endpoint.

use aws_sdk_ec2::types::{DomainType, ResourceType, VpcEndpointType};

use super::tagged::{NEW, ensure, filter, ours, tagged};
use super::vpc::Network;
use super::{Action, CloudError, Run, api};

/// Where a route table's default route goes.
#[derive(Debug, Clone, Copy)]
pub enum Via<'a> {
    /// An internet gateway.
    Gateway(&'a str),
    /// A NAT gateway.
    Nat(&'a str),
}

impl Via<'_> {
    fn id(&self) -> &str {
        match self {
            Via::Gateway(id) | Via::Nat(id) => id,
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Via::Gateway(_) => "the internet gateway",
            Via::Nat(_) => "the nat gateway",
        }
    }
}

/// The route table ids the stack routes through (for the S3 endpoint).
#[derive(Debug, Clone, Default)]
pub struct Tables {
    /// Route tables of both subnets (the VPC's main table for a private subnet without NAT).
    pub ids: Vec<String>,
}

/// Converges the route tables, the NAT gateway and the S3 endpoint.
pub async fn converge(run: &mut Run<'_>, net: &Network) -> Result<Tables, CloudError> {
    let mut tables = Tables::default();
    tables.ids.push(default_route(run, ("public-routes", &net.vpc_id, &net.public_subnet_id), Via::Gateway(&net.igw_id)).await?);
    if run.spec.nat_gateway {
        let nat = nat_gateway(run, net).await?;
        tables.ids.push(default_route(run, ("private-routes", &net.vpc_id, &net.private_subnet_id), Via::Nat(&nat)).await?);
    } else if net.vpc_id != NEW {
        let main = run
            .c
            .ec2
            .describe_route_tables()
            .filters(filter("vpc-id", &[&net.vpc_id]))
            .filters(filter("association.main", &["true"]))
            .send()
            .await
            .map_err(api("DescribeRouteTables"))?;
        tables.ids.extend(main.route_tables().iter().filter_map(|t| t.route_table_id()).map(str::to_string));
    }
    if run.spec.s3_endpoint {
        s3_endpoint(run, net, &tables).await?;
    }
    Ok(tables)
}

/// A NAT gateway in the public subnet (with its elastic IP), so private instances reach the
/// internet without being reachable from it.
async fn nat_gateway(run: &mut Run<'_>, net: &Network) -> Result<String, CloudError> {
    let (c, spec) = (run.c, run.spec);
    let name = run.name("nat");
    let mut filters = ours(spec, Some("nat"));
    filters.push(filter("state", &["pending", "available"]));
    let found = c.ec2.describe_nat_gateways().set_filter(Some(filters)).send().await.map_err(api("DescribeNatGateways"))?;
    let found = found.nat_gateways().first().and_then(|n| n.nat_gateway_id()).map(str::to_string);
    ensure(run, found, &format!("nat gateway {name} (with an elastic IP)"), || async {
        let eip = c
            .ec2
            .allocate_address()
            .domain(DomainType::Vpc)
            .tag_specifications(tagged(spec, ResourceType::ElasticIp, "nat-ip", &name))
            .send()
            .await
            .map_err(api("AllocateAddress"))?;
        let r = c
            .ec2
            .create_nat_gateway()
            .subnet_id(&net.public_subnet_id)
            .set_allocation_id(eip.allocation_id().map(str::to_string))
            .tag_specifications(tagged(spec, ResourceType::Natgateway, "nat", &name))
            .send()
            .await
            .map_err(api("CreateNatGateway"))?;
        Ok(r.nat_gateway().and_then(|n| n.nat_gateway_id()).unwrap_or_default().to_string())
    })
    .await
}

/// The stack's route table `role` in `vpc`: 0.0.0.0/0 via `via`, associated with `subnet`. A
/// table whose default route went elsewhere (or away) is drift: the route is put back.
async fn default_route(run: &mut Run<'_>, (role, vpc, subnet): (&str, &str, &str), via: Via<'_>) -> Result<String, CloudError> {
    let (c, spec) = (run.c, run.spec);
    let name = run.name(role);
    let found = c.ec2.describe_route_tables().set_filters(Some(ours(spec, Some(role)))).send().await.map_err(api("DescribeRouteTables"))?;
    if let Some(t) = found.route_tables().first() {
        let id = t.route_table_id().unwrap_or_default().to_string();
        let default = t.routes().iter().find(|r| r.destination_cidr_block() == Some("0.0.0.0/0"));
        let target = default.and_then(|r| r.gateway_id().or(r.nat_gateway_id()));
        if target == Some(via.id()) || via.id() == NEW {
            run.note(Action::Ok, format!("route table {name} ({id})"));
            return Ok(id);
        }
        run.note(
            Action::Update,
            format!("route table {name} ({id}): 0.0.0.0/0 via {} instead of {}", via.label(), target.unwrap_or("nothing")),
        );
        if !run.dry_run {
            if default.is_some() {
                c.ec2.delete_route().route_table_id(&id).destination_cidr_block("0.0.0.0/0").send().await.map_err(api("DeleteRoute"))?;
            }
            create_default(run, &id, via).await?;
        }
        return Ok(id);
    }
    run.note(Action::Create, format!("route table {name} (0.0.0.0/0 via {})", via.label()));
    if run.dry_run {
        return Ok(NEW.to_string());
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
    create_default(run, &rt, via).await?;
    c.ec2.associate_route_table().route_table_id(&rt).subnet_id(subnet).send().await.map_err(api("AssociateRouteTable"))?;
    Ok(rt)
}

async fn create_default(run: &Run<'_>, table: &str, via: Via<'_>) -> Result<(), CloudError> {
    let route = run.c.ec2.create_route().route_table_id(table).destination_cidr_block("0.0.0.0/0");
    let route = match via {
        Via::Gateway(id) => route.gateway_id(id),
        Via::Nat(id) => route.nat_gateway_id(id),
    };
    route.send().await.map_err(api("CreateRoute"))?;
    Ok(())
}

/// An S3 gateway endpoint on the stack's route tables: cache traffic goes straight to S3,
/// not through (and billed by) the NAT gateway.
async fn s3_endpoint(run: &mut Run<'_>, net: &Network, tables: &Tables) -> Result<(), CloudError> {
    let (c, spec) = (run.c, run.spec);
    let mut f = ours(spec, Some("s3-endpoint"));
    f.push(filter("vpc-endpoint-state", &["pending", "available"]));
    let found = c.ec2.describe_vpc_endpoints().set_filters(Some(f)).send().await.map_err(api("DescribeVpcEndpoints"))?;
    let found = found.vpc_endpoints().first().and_then(|e| e.vpc_endpoint_id()).map(str::to_string);
    let name = run.name("s3");
    let service = format!("com.amazonaws.{}.s3", c.region);
    let ids: Vec<String> = tables.ids.iter().filter(|t| *t != NEW).cloned().collect();
    ensure(run, found, &format!("s3 gateway endpoint {name} ({service})"), || async {
        let r = c
            .ec2
            .create_vpc_endpoint()
            .vpc_id(&net.vpc_id)
            .vpc_endpoint_type(VpcEndpointType::Gateway)
            .service_name(&service)
            .set_route_table_ids(Some(ids))
            .tag_specifications(tagged(spec, ResourceType::VpcEndpoint, "s3-endpoint", &name))
            .send()
            .await
            .map_err(api("CreateVpcEndpoint"))?;
        Ok(r.vpc_endpoint().and_then(|e| e.vpc_endpoint_id()).unwrap_or_default().to_string())
    })
    .await?;
    Ok(())
}
