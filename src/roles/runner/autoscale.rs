//! Autoscaling runners on AWS: `[runners.machine]` for docker+machine (the amazonec2 driver)
//! and `[runners.autoscaler]` for docker-autoscaler (GitLab's fleeting AWS plugin driving an
//! auto scaling group). Defaults come from the inventory `provision cloud apply` writes
//! (`cloud_region`, `cloud_vpc_id`, `cloud_private_subnet_id`). Machines are tagged with
//! `provision:runner=<runner name>`, which `provision cloud audit` checks against the inventory.

use serde_json::{Map, Value as Json, json};

use crate::cloud::{TAG_BY, TAG_RUNNER};
use crate::error::InputError;
use crate::roles::RoleContext;

const MACHINE_KEYS: &[&str] = &[
    "idle_count",
    "idle_time",
    "max_builds",
    "instance_type",
    "spot",
    "spot_price",
    "region",
    "vpc_id",
    "subnet_id",
    "zone",
    "security_group",
    "ami",
    "use_private_address",
    "options",
];
const AUTOSCALER_KEYS: &[&str] = &[
    "asg_name",
    "region",
    "plugin",
    "capacity_per_instance",
    "max_use_count",
    "max_instances",
    "idle_count",
    "idle_time",
    "username",
    "use_external_addr",
];

fn settings(v: Option<&Json>, known: &[&str], err: &dyn Fn(String) -> InputError) -> Result<Map<String, Json>, InputError> {
    let m = match v {
        None | Some(Json::Null) => Map::new(),
        Some(Json::Object(m)) => m.clone(),
        Some(_) => return Err(err("must be a mapping".into())),
    };
    if let Some((k, help)) = crate::vars::schema::unknown_key(&m, known) {
        return Err(err(format!("unknown key `{k}`")).with_help(help));
    }
    Ok(m)
}

/// A string setting, else the var, else an error naming both.
fn required(
    m: &Map<String, Json>,
    key: &str,
    ctx: &RoleContext,
    var: &str,
    err: &dyn Fn(String) -> InputError,
) -> Result<String, InputError> {
    match m.get(key).and_then(Json::as_str).map(str::to_string).or_else(|| Some(ctx.str(var)).filter(|s| !s.is_empty())) {
        Some(v) => Ok(v),
        None => Err(err(format!("`{key}` is needed: set it, or use the inventory `provision cloud apply` writes (it sets `{var}`)"))),
    }
}

fn int(m: &Map<String, Json>, key: &str, default: i64, err: &dyn Fn(String) -> InputError) -> Result<i64, InputError> {
    match m.get(key) {
        None => Ok(default),
        Some(v) => v.as_i64().filter(|n| *n >= 0).ok_or_else(|| err(format!("`{key}` must be a whole number ≥ 0"))),
    }
}

/// `[runners.machine]` for the runner `name`.
pub fn machine(ctx: &RoleContext, name: &str, v: Option<&Json>, err: &dyn Fn(String) -> InputError) -> Result<Json, InputError> {
    let m = settings(v, MACHINE_KEYS, err)?;
    let region = required(&m, "region", ctx, "cloud_region", err)?;
    let vpc = required(&m, "vpc_id", ctx, "cloud_vpc_id", err)?;
    let subnet = required(&m, "subnet_id", ctx, "cloud_private_subnet_id", err)?;
    let s = |k: &str, d: &str| m.get(k).and_then(Json::as_str).unwrap_or(d).to_string();
    let instance_type = s("instance_type", "t3.large");
    if !crate::cloud::spec::valid_instance_type(&instance_type) {
        return Err(err(format!("instance_type `{instance_type}` does not look like an EC2 instance type")));
    }
    let mut options = vec![
        format!("amazonec2-region={region}"),
        format!("amazonec2-vpc-id={vpc}"),
        format!("amazonec2-subnet-id={subnet}"),
        format!("amazonec2-security-group={}", s("security_group", "docker-machine")),
        format!("amazonec2-instance-type={instance_type}"),
        format!("amazonec2-tags={},{},{TAG_RUNNER},{name}", TAG_BY.0, TAG_BY.1),
    ];
    if m.get("use_private_address").and_then(Json::as_bool).unwrap_or(true) {
        options.push("amazonec2-use-private-address=true".into());
    }
    if let Some(zone) = m.get("zone").and_then(Json::as_str) {
        options.push(format!("amazonec2-zone={zone}"));
    }
    if let Some(ami) = m.get("ami").and_then(Json::as_str) {
        options.push(format!("amazonec2-ami={ami}"));
    }
    if m.get("spot").and_then(Json::as_bool).unwrap_or(false) {
        options.push("amazonec2-request-spot-instance=true".into());
        if let Some(p) = m.get("spot_price").and_then(Json::as_str) {
            options.push(format!("amazonec2-spot-price={p}"));
        }
    }
    if let Some(extra) = m.get("options").and_then(Json::as_array) {
        options.extend(extra.iter().filter_map(Json::as_str).map(str::to_string));
    }
    let mut t = json!({
        "IdleCount": int(&m, "idle_count", 0, err)?,
        "IdleTime": int(&m, "idle_time", 1800, err)?,
        "MachineDriver": "amazonec2",
        "MachineName": format!("{name}-%s"),
        "MachineOptions": options,
    });
    let max_builds = int(&m, "max_builds", 0, err)?;
    if max_builds > 0 {
        t["MaxBuilds"] = json!(max_builds);
    }
    Ok(t)
}

/// `[runners.autoscaler]` driving the auto scaling group `asg_name`.
pub fn autoscaler(ctx: &RoleContext, v: Option<&Json>, err: &dyn Fn(String) -> InputError) -> Result<Json, InputError> {
    let m = settings(v, AUTOSCALER_KEYS, err)?;
    let asg = m
        .get("asg_name")
        .and_then(Json::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| err("`asg_name` (the auto scaling group) is required".into()))?;
    let region = required(&m, "region", ctx, "cloud_region", err)?;
    let s = |k: &str, d: &str| m.get(k).and_then(Json::as_str).unwrap_or(d).to_string();
    Ok(json!({
        "plugin": s("plugin", "aws"),
        "capacity_per_instance": int(&m, "capacity_per_instance", 1, err)?,
        "max_use_count": int(&m, "max_use_count", 1, err)?,
        "max_instances": int(&m, "max_instances", 10, err)?,
        "plugin_config": { "name": asg, "region": region },
        "connector_config": {
            "username": s("username", "ec2-user"),
            "use_external_addr": m.get("use_external_addr").and_then(Json::as_bool).unwrap_or(false),
        },
        "policy": [{ "idle_count": int(&m, "idle_count", 1, err)?, "idle_time": s("idle_time", "20m0s") }],
    }))
}
