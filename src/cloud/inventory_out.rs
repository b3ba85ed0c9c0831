//! The inventory `cloud apply` writes: the stack's instances in their groups, with the ids the
//! runner configuration needs as vars. Regenerated whole on every apply.

use super::spec::CloudSpec;
use super::stack::Outputs;

/// The inventory text.
pub fn render(spec: &CloudSpec, out: &Outputs, region: &str) -> String {
    let q = |s: &str| serde_json::Value::String(s.to_string()).to_string();
    let mut y = format!(
        "# Written by `provision cloud apply` for stack {}: regenerated on every apply, do not edit.\n\
         # Use it with `provision -i {} apply`; group_vars/ and host_vars/ beside it apply as usual.\nall:\n  vars:\n",
        spec.stack, spec.inventory_file
    );
    let mut vars = vec![
        ("cloud_stack", spec.stack.clone()),
        ("cloud_region", region.to_string()),
        ("cloud_vpc_id", out.net.vpc_id.clone()),
        ("cloud_public_subnet_id", out.net.public_subnet_id.clone()),
        ("cloud_private_subnet_id", out.net.private_subnet_id.clone()),
        // docker-machine's amazonec2 driver wants the zone as its letter.
        ("cloud_private_zone", out.net.private_zone.strip_prefix(region).unwrap_or_default().to_string()),
        ("cloud_master_security_group", out.groups.master.clone()),
        ("cloud_slave_security_group", out.groups.slave.clone()),
    ];
    if let Some((name, id)) = &out.groups.worker {
        vars.push(("cloud_worker_security_group", name.clone()));
        vars.push(("cloud_worker_security_group_id", id.clone()));
    }
    if let Some(p) = out.profiles.names.get("worker") {
        vars.push(("cloud_worker_instance_profile", p.clone()));
    }
    if let Some(g) = spec.log_group() {
        vars.push(("cloud_log_group", g));
    }
    if let Some(b) = &spec.bucket {
        vars.push(("runner_cache_s3_bucket", b.name.clone()));
        vars.push(("runner_cache_s3_region", region.to_string()));
    }
    for (k, v) in vars {
        y.push_str(&format!("    {k}: {}\n", q(&v)));
    }
    if !spec.fleets.is_empty() {
        // Runners name a fleet (`autoscaler: {fleet: NAME}`); this maps it to its group.
        y.push_str("    cloud_fleets:\n");
        for f in spec.fleets.keys() {
            y.push_str(&format!("      {}: {}\n", q(f), q(&spec.asg_name(f))));
        }
    }
    y.push_str("  children:\n");
    for group in ["master", "slave"] {
        y.push_str(&format!("    {group}:\n      hosts:\n"));
        let hosts: Vec<_> = out.instances.iter().filter(|i| i.group == group).collect();
        if hosts.is_empty() {
            y.truncate(y.len() - "      hosts:\n".len());
            y.push_str("      hosts: {}\n");
        }
        for i in hosts {
            let private = i.private_ip.clone().unwrap_or_default();
            let address = i.public_ip.clone().unwrap_or_else(|| private.clone());
            y.push_str(&format!("        {}: {{ssh_host: {}, private_address: {}}}\n", i.name, q(&address), q(&private)));
        }
    }
    y
}
