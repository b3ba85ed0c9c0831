//! Autoscaling runners on AWS: `[runners.machine]` for docker+machine (the amazonec2 driver)
//! and `[runners.autoscaler]` for docker-autoscaler (GitLab's fleeting AWS plugin driving an
//! auto scaling group). Defaults come from the inventory `provision cloud apply` writes
//! (`cloud_region`, `cloud_vpc_id`, `cloud_private_subnet_id`, `cloud_private_zone`, the workers'
//! security group and instance profile, `cloud_fleets`). Machines are tagged with
//! `provision:runner=<runner name>` and the stack, which `provision cloud audit` checks against
//! the inventory. Credentials come from the master's instance profile: no keys by default.
//!
//! On the host, the fleeting plugin is installed once and kept, with docker-machine's machine
//! store, on host directories: recreating the runner container (an image roll) neither loses
//! the plugin nor forgets the live machines.

use crate::vars::schema::{Kind, VarSpec};
use serde::Deserialize;
use serde_json::{Map, Value as Json, json};

use crate::cloud::{TAG_BY, TAG_RUNNER, TAG_STACK};
use crate::engine::{Change, Probe, Resource, Step};
use crate::error::InputError;
use crate::resources::directory::Directory;
use crate::resources::docker::{Container, LogDriver};
use crate::roles::RoleContext;
use crate::sh::{Cmd, quote};

/// Host directory of the fleeting plugins, mounted where `gitlab-runner fleeting install` puts them.
const PLUGIN_DIR: (&str, &str) = ("/var/lib/provision/runner/fleeting", "/root/.config/fleeting");
/// Host directory of docker-machine's store (its machines' keys and state).
const MACHINE_DIR: (&str, &str) = ("/var/lib/provision/runner/machine", "/root/.docker/machine");

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
    "fleet",
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

/// What the inventory `provision cloud apply` writes tells the runners (empty when unset), and
/// the host's runner list: read once from the host's vars.
#[derive(Debug, Clone, Default)]
pub struct StackVars {
    /// `cloud_stack`.
    pub stack: String,
    /// `cloud_region`.
    pub region: String,
    /// `cloud_vpc_id`.
    pub vpc_id: String,
    /// `cloud_private_subnet_id`.
    pub private_subnet_id: String,
    /// `cloud_private_zone`: the zone's letter.
    pub private_zone: String,
    /// `cloud_worker_security_group`: the workers' group name.
    pub worker_security_group: String,
    /// `cloud_worker_instance_profile`.
    pub worker_instance_profile: String,
    /// `cloud_fleets`: fleet name → auto scaling group name.
    pub fleets: Map<String, Json>,
    /// `cloud_log_group`: the stack's CloudWatch log group (empty: none).
    pub log_group: String,
    /// The host's `runners`.
    pub runners: Vec<Map<String, Json>>,
}

/// The generated cloud inventory's vars the runner reads (typed once, see [`StackVars::of`]).
pub(crate) const STACK_SPECS: &[VarSpec] = &[
    VarSpec { name: "cloud_stack", kind: Kind::Str, doc: "the stack's name (generated cloud inventory)" },
    VarSpec { name: "cloud_region", kind: Kind::Str, doc: "the stack's region" },
    VarSpec { name: "cloud_vpc_id", kind: Kind::Str, doc: "the stack's VPC" },
    VarSpec { name: "cloud_private_subnet_id", kind: Kind::Str, doc: "the stack's private subnet" },
    VarSpec { name: "cloud_private_zone", kind: Kind::Str, doc: "the private subnet's zone letter" },
    VarSpec { name: "cloud_worker_security_group", kind: Kind::Str, doc: "the workers' security group name" },
    VarSpec { name: "cloud_worker_instance_profile", kind: Kind::Str, doc: "the workers' instance profile" },
    VarSpec { name: "cloud_fleets", kind: Kind::Map, doc: "fleet name → auto scaling group name" },
    VarSpec { name: "cloud_log_group", kind: Kind::Str, doc: "the stack's CloudWatch log group (cloud.logs)" },
];

/// The vars of [`STACK_SPECS`], as they deserialize.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawStackVars {
    cloud_stack: String,
    cloud_region: String,
    cloud_vpc_id: String,
    cloud_private_subnet_id: String,
    cloud_private_zone: String,
    cloud_worker_security_group: String,
    cloud_worker_instance_profile: String,
    cloud_fleets: Map<String, Json>,
    cloud_log_group: String,
}

impl StackVars {
    /// Reads them from a host's vars (unset: empty, the runner then says what is missing; a
    /// wrong type: an error at the var).
    pub fn of(ctx: &RoleContext) -> Result<Self, InputError> {
        let raw: RawStackVars = crate::roles::typed::from_vars(&ctx.host().vars, STACK_SPECS)?;
        Ok(StackVars {
            stack: raw.cloud_stack,
            region: raw.cloud_region,
            vpc_id: raw.cloud_vpc_id,
            private_subnet_id: raw.cloud_private_subnet_id,
            private_zone: raw.cloud_private_zone,
            worker_security_group: raw.cloud_worker_security_group,
            worker_instance_profile: raw.cloud_worker_instance_profile,
            fleets: raw.cloud_fleets,
            log_group: raw.cloud_log_group,
            runners: super::vars(ctx)
                .runners
                .iter()
                .cloned()
                .filter_map(|r| match r {
                    Json::Object(m) => Some(m),
                    _ => None,
                })
                .collect(),
        })
    }

    fn runners_with<'a>(&'a self, executor: &'a str) -> impl Iterator<Item = &'a Map<String, Json>> + 'a {
        self.runners.iter().filter(move |r| r.get("executor").and_then(Json::as_str) == Some(executor))
    }
}

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

/// A string setting, else `fallback` (the value of the generated inventory's var `var`), else an
/// error naming both.
fn required(m: &Map<String, Json>, key: &str, fallback: &str, var: &str, err: &dyn Fn(String) -> InputError) -> Result<String, InputError> {
    match m.get(key).and_then(Json::as_str).map(str::to_string).or_else(|| Some(fallback.to_string()).filter(|s| !s.is_empty())) {
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
    machine_section(&StackVars::of(ctx)?, name, v, err)
}

fn machine_section(ctx: &StackVars, name: &str, v: Option<&Json>, err: &dyn Fn(String) -> InputError) -> Result<Json, InputError> {
    let m = settings(v, MACHINE_KEYS, err)?;
    let region = required(&m, "region", &ctx.region, "cloud_region", err)?;
    let vpc = required(&m, "vpc_id", &ctx.vpc_id, "cloud_vpc_id", err)?;
    let subnet = required(&m, "subnet_id", &ctx.private_subnet_id, "cloud_private_subnet_id", err)?;
    let s = |k: &str, d: &str| m.get(k).and_then(Json::as_str).unwrap_or(d).to_string();
    let instance_type = s("instance_type", "t3.large");
    if !crate::cloud::spec::valid_instance_type(&instance_type) {
        return Err(err(format!("instance_type `{instance_type}` does not look like an EC2 instance type")));
    }
    // The stack's worker group: the driver must use it as it is, never open ports on it.
    let stack_sg = ctx.worker_security_group.clone();
    let sg = m
        .get("security_group")
        .and_then(Json::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| if stack_sg.is_empty() { "docker-machine".to_string() } else { stack_sg.clone() });
    let mut tags = format!("{},{},{TAG_RUNNER},{name}", TAG_BY.0, TAG_BY.1);
    let stack = &ctx.stack;
    if !stack.is_empty() {
        tags.push_str(&format!(",{TAG_STACK},{stack}"));
    }
    let mut options = vec![
        format!("amazonec2-region={region}"),
        format!("amazonec2-vpc-id={vpc}"),
        format!("amazonec2-subnet-id={subnet}"),
        format!("amazonec2-security-group={sg}"),
        format!("amazonec2-instance-type={instance_type}"),
        format!("amazonec2-tags={tags}"),
    ];
    if !stack_sg.is_empty() && sg == stack_sg {
        options.push("amazonec2-security-group-readonly=true".into());
    }
    if m.get("use_private_address").and_then(Json::as_bool).unwrap_or(true) {
        options.push("amazonec2-use-private-address=true".into());
        options.push("amazonec2-private-address-only=true".into());
    }
    let zone = m.get("zone").and_then(Json::as_str).map(str::to_string).unwrap_or_else(|| ctx.private_zone.clone());
    if !zone.is_empty() {
        options.push(format!("amazonec2-zone={zone}"));
    }
    let profile = &ctx.worker_instance_profile;
    if !profile.is_empty() {
        options.push(format!("amazonec2-iam-instance-profile={profile}"));
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

/// The auto scaling group a runner's `autoscaler` settings name: a fleet of the stack
/// (`fleet`, looked up in `cloud_fleets`) or a group of your own (`asg_name`).
fn asg_of(ctx: &StackVars, m: &Map<String, Json>, err: &dyn Fn(String) -> InputError) -> Result<String, InputError> {
    let get = |k: &str| m.get(k).and_then(Json::as_str).filter(|s| !s.is_empty());
    match (get("fleet"), get("asg_name")) {
        (Some(_), Some(_)) => Err(err("give `fleet` (a fleet of the stack) or `asg_name` (a group of your own), not both".into())),
        (None, Some(asg)) => Ok(asg.to_string()),
        (Some(fleet), None) => match ctx.fleets.get(fleet).and_then(Json::as_str) {
            Some(asg) => Ok(asg.to_string()),
            None => {
                let known: Vec<String> = ctx.fleets.keys().cloned().collect();
                Err(err(format!(
                    "fleet `{fleet}` is not in cloud_fleets (the inventory `provision cloud apply` writes; known: {})",
                    if known.is_empty() { "none".to_string() } else { known.join(", ") }
                )))
            }
        },
        (None, None) => Err(err("`fleet` (a fleet in cloud.fleets) or `asg_name` (an auto scaling group) is required".into())),
    }
}

/// `[runners.autoscaler]` driving the fleet's (or `asg_name`'s) auto scaling group.
pub fn autoscaler(ctx: &RoleContext, v: Option<&Json>, err: &dyn Fn(String) -> InputError) -> Result<Json, InputError> {
    autoscaler_section(&StackVars::of(ctx)?, v, err)
}

fn autoscaler_section(ctx: &StackVars, v: Option<&Json>, err: &dyn Fn(String) -> InputError) -> Result<Json, InputError> {
    let m = settings(v, AUTOSCALER_KEYS, err)?;
    let asg = asg_of(ctx, &m, err)?;
    // The plugin owns its group's desired capacity: two runners on one group fight over it.
    let sharing = ctx
        .runners_with("docker-autoscaler")
        .filter_map(|r| r.get("autoscaler").and_then(Json::as_object))
        .filter(|other| asg_of(ctx, other, &|m| InputError::plain(m)).ok().as_deref() == Some(asg.as_str()))
        .count();
    if sharing > 1 {
        return Err(err(format!("{sharing} runners drive auto scaling group {asg}: give each docker-autoscaler runner its own fleet")));
    }
    let region = required(&m, "region", &ctx.region, "cloud_region", err)?;
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

/// For a runner container: the host directories that outlive it (the fleeting plugins when a
/// docker-autoscaler runner exists, the machine store when a docker+machine one does), created
/// before it and mounted into it.
pub fn keep_state(ctx: &RoleContext, c: &mut Container, steps: &mut Vec<Step>) -> Result<(), InputError> {
    let vars = StackVars::of(ctx)?;
    let wanted = [(PLUGIN_DIR, "docker-autoscaler"), (MACHINE_DIR, "docker+machine")];
    for ((host, inside), executor) in wanted {
        if vars.runners_with(executor).next().is_some() {
            steps.push(Step::new(Directory::new(host).mode(0o700)));
            c.volumes.push(format!("{host}:{inside}"));
        }
    }
    Ok(())
}

/// For a runner container on a stack with `cloud.logs`: its logs go to the stack's CloudWatch
/// log group (the master's instance role may write there and nowhere else), so they outlive the
/// instance. One stream per host.
pub fn log_to_cloudwatch(ctx: &RoleContext, c: &mut Container) -> Result<(), InputError> {
    let vars = StackVars::of(ctx)?;
    if vars.log_group.is_empty() {
        return Ok(());
    }
    let mut options = std::collections::BTreeMap::new();
    options.insert("awslogs-group".to_string(), vars.log_group.clone());
    if !vars.region.is_empty() {
        options.insert("awslogs-region".to_string(), vars.region.clone());
    }
    options.insert("awslogs-stream".to_string(), format!("{}-{}", ctx.name(), c.name));
    c.log_driver = Some(LogDriver { name: "awslogs".into(), options });
    Ok(())
}

/// After the runner (its container, or `None` for the package): the fleeting plugin, installed
/// when a docker-autoscaler runner exists and the plugin directory has none.
pub fn install_plugins(ctx: &RoleContext, container: Option<&str>, steps: &mut Vec<Step>) -> Result<(), InputError> {
    if StackVars::of(ctx)?.runners_with("docker-autoscaler").next().is_some() {
        steps.push(Step::new(FleetingPlugins { container: container.map(str::to_string) }));
    }
    Ok(())
}

/// The fleeting plugins `config.toml` names, installed for the runner.
#[derive(Debug, Clone)]
pub struct FleetingPlugins {
    /// The runner container (`None`: the package's runner, on the host as root).
    pub container: Option<String>,
}

impl FleetingPlugins {
    /// Where the installed plugins are on the host.
    fn dir(&self) -> String {
        // In a container they live under the mounted host directory: kept across image rolls.
        let base = if self.container.is_some() { PLUGIN_DIR.0 } else { "/root/.config/fleeting" };
        format!("{base}/plugins")
    }
}

impl Resource for FleetingPlugins {
    fn id(&self) -> String {
        match &self.container {
            Some(c) => format!("fleeting plugins in {c}"),
            None => "fleeting plugins".into(),
        }
    }

    fn probe(&self) -> Probe {
        format!("if [ -n \"$(ls -A {} 2>/dev/null)\" ]; then echo plugins=installed; else echo plugins=missing; fi", quote(&self.dir()))
            .into()
    }

    fn plan(&self, state: &str) -> Result<Option<Change>, String> {
        match crate::sh::Kv::parse(state)?.require("plugins")? {
            "installed" => Ok(None),
            "missing" => {
                let cmd = match &self.container {
                    Some(c) => Cmd::new("docker").args(["exec", c, "gitlab-runner", "fleeting", "install"]),
                    None => Cmd::new("gitlab-runner").args(["fleeting", "install"]),
                };
                Ok(Some(Change::new(vec!["installed".into()], format!("{}\n", cmd.render()))))
            }
            other => Err(format!("unexpected state `{other}`")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack() -> StackVars {
        let fleets = json!({"fleet": "ci-fleet"}).as_object().cloned().unwrap();
        StackVars {
            stack: "ci".into(),
            region: "eu-west-1".into(),
            vpc_id: "vpc-1".into(),
            private_subnet_id: "subnet-2".into(),
            private_zone: "b".into(),
            worker_security_group: "ci-workers".into(),
            worker_instance_profile: "ci-worker".into(),
            fleets,
            log_group: String::new(),
            runners: Vec::new(),
        }
    }

    fn err(m: String) -> InputError {
        InputError::plain(m)
    }

    #[test]
    fn machine_options_come_from_the_stack() {
        let t = machine_section(&stack(), "ci-machine", None, &err).unwrap();
        let opts: Vec<&str> = t["MachineOptions"].as_array().unwrap().iter().filter_map(Json::as_str).collect();
        for want in [
            "amazonec2-region=eu-west-1",
            "amazonec2-subnet-id=subnet-2",
            "amazonec2-zone=b",
            "amazonec2-security-group=ci-workers",
            "amazonec2-security-group-readonly=true",
            "amazonec2-private-address-only=true",
            "amazonec2-iam-instance-profile=ci-worker",
            "amazonec2-tags=provisioned-by,provision,provision:runner,ci-machine,provision:stack,ci",
        ] {
            assert!(opts.contains(&want), "{want} in {opts:?}");
        }
        assert!(!opts.iter().any(|o| o.contains("access-key") || o.contains("secret")), "keyless: {opts:?}");
        // A group of your own is not the stack's: the driver may manage it.
        let own = machine_section(&stack(), "m", Some(&json!({"security_group": "mine"})), &err).unwrap();
        assert!(!own["MachineOptions"].to_string().contains("readonly"), "{own}");
    }

    #[test]
    fn autoscaler_names_the_fleets_group_once() {
        let t = autoscaler_section(&stack(), Some(&json!({"fleet": "fleet"})), &err).unwrap();
        assert_eq!(t["plugin_config"]["name"], "ci-fleet");
        assert_eq!(t["plugin_config"]["region"], "eu-west-1");
        let unknown = autoscaler_section(&stack(), Some(&json!({"fleet": "nope"})), &err).unwrap_err();
        assert!(unknown.to_string().contains("known: fleet"), "{unknown}");
        let both = autoscaler_section(&stack(), Some(&json!({"fleet": "fleet", "asg_name": "x"})), &err).unwrap_err();
        assert!(both.to_string().contains("not both"), "{both}");
        let mut two = stack();
        let runner =
            |n: &str| json!({"name": n, "executor": "docker-autoscaler", "autoscaler": {"fleet": "fleet"}}).as_object().cloned().unwrap();
        two.runners = vec![runner("a"), runner("b")];
        let e = autoscaler_section(&two, Some(&json!({"fleet": "fleet"})), &err).unwrap_err();
        assert!(e.to_string().contains("2 runners drive auto scaling group ci-fleet"), "{e}");
    }

    #[test]
    fn keyless_cache_and_fleet_render_into_config_toml() {
        use super::super::config_toml::{RunnerSection, S3Cache, render};
        let mut extra = Map::new();
        extra.insert("autoscaler".into(), autoscaler_section(&stack(), Some(&json!({"fleet": "fleet"})), &err).unwrap());
        let section = RunnerSection {
            name: "ci-fleet".into(),
            url: "https://gitlab.example.com".into(),
            token: String::new(),
            executor: "docker-autoscaler".into(),
            limit: None,
            environment: Vec::new(),
            docker: None,
            cache: Some(S3Cache {
                server_address: "s3.amazonaws.com".into(),
                bucket_name: "ci-cache".into(),
                bucket_location: "eu-west-1".into(),
                shared: true,
                credentials: None,
                insecure: None,
            }),
            extra,
        };
        let text = render(4, 3, &[section]);
        let doc: toml_edit::DocumentMut = text.parse().unwrap();
        let r = doc["runners"].as_array_of_tables().unwrap().get(0).unwrap();
        assert_eq!(r["cache"]["s3"]["AuthenticationType"].as_str(), Some("iam"), "{text}");
        assert!(!text.contains("AccessKey") && !text.contains("SecretKey"), "{text}");
        assert_eq!(r["autoscaler"]["plugin_config"]["name"].as_str(), Some("ci-fleet"), "{text}");
    }

    #[test]
    fn plugins_install_only_when_missing() {
        let p = FleetingPlugins { container: Some("gitlab-runner".into()) };
        assert!(p.plan("plugins=installed\n").unwrap().is_none());
        let c = p.plan("plugins=missing\n").unwrap().unwrap();
        assert!(c.script.contains("exec gitlab-runner gitlab-runner fleeting install"), "{}", c.script);
        assert!(p.probe().script().contains("/var/lib/provision/runner/fleeting/plugins"));
        assert!(p.plan("what").is_err());
        let host = FleetingPlugins { container: None };
        assert!(host.probe().script().contains("/root/.config/fleeting/plugins"));
        assert!(host.plan("plugins=missing").unwrap().unwrap().script.starts_with("gitlab-runner fleeting install"));
    }
}
