//! Least-privilege security groups: the masters', the slaves' and, when runners start workers,
//! the workers' (SSH, and docker's port for docker+machine, from the masters only).

use std::collections::BTreeSet;

use aws_sdk_ec2::types::{IpPermission, IpRange, ResourceType, UserIdGroupPair};

use super::tagged::{NEW, ours, tagged};
use super::{Action, CloudError, Run, api};

/// The ids of the stack's groups.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Groups {
    /// The masters' group.
    pub master: String,
    /// The slaves' group.
    pub slave: String,
    /// The workers' group (name, id), when runners start workers.
    pub worker: Option<(String, String)>,
}

/// A wanted ingress rule: port and source (a CIDR or a security group id).
type Rule = (i32, String);

/// Port docker+machine's workers serve docker on.
const MACHINE_DOCKER_PORT: i32 = 2376;

fn wanted_rules(run: &Run<'_>, role: &str, master_sg: &str) -> BTreeSet<Rule> {
    let spec = run.spec;
    match role {
        "worker" => {
            let mut r = BTreeSet::from([(22, master_sg.to_string())]);
            if spec.docker_machine {
                r.insert((MACHINE_DOCKER_PORT, master_sg.to_string()));
            }
            r
        }
        _ => {
            let mut rules: BTreeSet<Rule> = spec.admin_cidrs.iter().map(|c| (22, c.to_string())).collect();
            if role == "slave" {
                // Least privilege: docker's TLS port only from the masters, the cache only in the VPC.
                rules.insert((spec.docker_tls_port, master_sg.to_string()));
                rules.insert((spec.registry_port, spec.vpc_cidr.to_string()));
            }
            rules
        }
    }
}

fn permission((port, source): &Rule) -> IpPermission {
    let p = IpPermission::builder().ip_protocol("tcp").from_port(*port).to_port(*port);
    if source.starts_with("sg-") || source == NEW {
        p.user_id_group_pairs(UserIdGroupPair::builder().group_id(source).build()).build()
    } else {
        p.ip_ranges(IpRange::builder().cidr_ip(source).build()).build()
    }
}

/// Converges the groups in `vpc` and their ingress rules.
pub async fn converge(run: &mut Run<'_>, vpc: &str) -> Result<Groups, CloudError> {
    let mut groups = Groups::default();
    let mut roles = vec!["master", "slave"];
    if run.spec.autoscaled() {
        roles.push("worker");
    }
    for role in roles {
        // `<stack>-workers` is the name docker-machine's driver is given (read-only).
        let gname = if role == "worker" { run.name("workers") } else { run.name(role) };
        let id = group(run, role, &gname, vpc, &groups.master).await?;
        match role {
            "master" => groups.master = id,
            "slave" => groups.slave = id,
            _ => groups.worker = Some((gname, id)),
        }
    }
    Ok(groups)
}

async fn group(run: &mut Run<'_>, role: &str, gname: &str, vpc: &str, master_sg: &str) -> Result<String, CloudError> {
    let (c, spec) = (run.c, run.spec);
    let sg_role = format!("{role}-sg");
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
            run.note(Action::Create, format!("security group {gname}"));
            let id = if run.dry_run {
                NEW.to_string()
            } else {
                c.ec2
                    .create_security_group()
                    .group_name(gname)
                    .description(format!("provision stack {}: {role}s", spec.stack))
                    .vpc_id(vpc)
                    .tag_specifications(tagged(spec, ResourceType::SecurityGroup, &sg_role, gname))
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
    let master = if role == "master" { id.as_str() } else { master_sg };
    let wanted = wanted_rules(run, role, master);
    let missing: Vec<&Rule> = wanted.difference(&current).collect();
    let extra: Vec<&Rule> = current.difference(&wanted).collect();
    if missing.is_empty() && extra.is_empty() {
        if id != NEW {
            run.note(Action::Ok, format!("security group {gname} ({id})"));
        }
        return Ok(id);
    }
    for (verb, rules) in [("allow", &missing), ("revoke", &extra)] {
        if !rules.is_empty() {
            let list: Vec<String> = rules.iter().map(|(p, s)| format!("{p} from {s}")).collect();
            run.note(Action::Update, format!("security group {gname}: {verb} tcp {}", list.join(", ")));
        }
    }
    if run.dry_run {
        return Ok(id);
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
    Ok(id)
}
