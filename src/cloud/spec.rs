//! The `cloud` var: what the stack should contain, checked whole before any API call.

use std::collections::BTreeMap;

use serde_json::{Map, Value as Json};

use crate::error::InputError;
pub use crate::net::Cidr;

/// Which subnet an instance goes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubnetKind {
    /// The public subnet (internet gateway route, public IPs).
    Public,
    /// The private subnet (NAT gateway route when enabled).
    Private,
}

/// How an instance's image is chosen.
#[derive(Debug, Clone, PartialEq)]
pub enum Ami {
    /// An AMI id.
    Id(String),
    /// The newest image matching a name pattern from an owner.
    Name {
        /// Name pattern (`*` wildcards).
        name: String,
        /// Owner account id or alias.
        owner: String,
    },
}

/// One EC2 instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// Its name (the `Name` tag and its inventory name).
    pub name: String,
    /// Inventory group: `master` or `slave`.
    pub group: String,
    /// e.g. `t3.small`.
    pub instance_type: String,
    /// Image.
    pub ami: Ami,
    /// Subnet.
    pub subnet: SubnetKind,
    /// Root volume size in GiB.
    pub root_volume_gb: i32,
    /// Extra tags (the stack's own are always added).
    pub tags: BTreeMap<String, String>,
}

/// The S3 bucket of the runner cache.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    /// Bucket name.
    pub name: String,
    /// Cache objects expire after this many days.
    pub expire_days: i32,
}

/// An autoscaling fleet for a docker-autoscaler runner: a launch template and an auto scaling
/// group GitLab's fleeting plugin scales between 0 and `max_instances`.
#[derive(Debug, Clone, PartialEq)]
pub struct Fleet {
    /// Its name in `cloud.fleets` (the ASG is `<stack>-<name>`).
    pub name: String,
    /// The runner its instances are tagged with (`provision:runner`); default: the fleet's name.
    pub runner: String,
    /// Worker image.
    pub ami: Ami,
    /// Instance types, the first one in the launch template, all of them in the mixed policy.
    pub instance_types: Vec<String>,
    /// Spot instances (mixed instances policy, no on-demand part).
    pub spot: bool,
    /// The group's maximum size.
    pub max_instances: i32,
    /// Root volume size in GiB.
    pub root_volume_gb: i32,
    /// Subnet of the workers.
    pub subnet: SubnetKind,
}

/// The CloudWatch log group of the stack.
#[derive(Debug, Clone, PartialEq)]
pub struct Logs {
    /// Days events are kept.
    pub retention_days: i32,
}

/// The whole stack.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudSpec {
    /// Stack name, in every tag; only resources with it are ever touched.
    pub stack: String,
    /// AWS region (`None`: the SDK's usual lookup).
    pub region: Option<String>,
    /// VPC network.
    pub vpc_cidr: Cidr,
    /// Public subnet.
    pub public_subnet: Cidr,
    /// Private subnet.
    pub private_subnet: Cidr,
    /// Availability zone of both subnets (`None`: AWS chooses).
    pub availability_zone: Option<String>,
    /// A NAT gateway for the private subnet.
    pub nat_gateway: bool,
    /// Who may SSH in.
    pub admin_cidrs: Vec<Cidr>,
    /// Key pair name and public key (OpenSSH format).
    pub key_pair: Option<(String, String)>,
    /// Instances by name.
    pub instances: BTreeMap<String, Instance>,
    /// The cache bucket.
    pub bucket: Option<Bucket>,
    /// TLS port of the slaves' docker daemon (open to the master's security group).
    pub docker_tls_port: i32,
    /// Registry cache port (open inside the VPC).
    pub registry_port: i32,
    /// Where `cloud apply` writes the inventory of the instances.
    pub inventory_file: String,
    /// Fleets for docker-autoscaler runners, by name.
    pub fleets: BTreeMap<String, Fleet>,
    /// The masters run docker+machine runners (amazonec2 driver): a worker profile, the EC2
    /// rights the driver needs, docker's port on the worker group.
    pub docker_machine: bool,
    /// An S3 gateway endpoint, so cache traffic stays off the NAT gateway.
    pub s3_endpoint: bool,
    /// The log group.
    pub logs: Option<Logs>,
}

impl CloudSpec {
    /// Whether runners start workers of their own (docker+machine or fleets).
    pub fn autoscaled(&self) -> bool {
        self.docker_machine || !self.fleets.is_empty()
    }

    /// The ASG name of a fleet.
    pub fn asg_name(&self, fleet: &str) -> String {
        format!("{}-{fleet}", self.stack)
    }

    /// The log group name, when logs are on.
    pub fn log_group(&self) -> Option<String> {
        self.logs.as_ref().map(|_| format!("/provision/{}", self.stack))
    }
}

const KEYS: &[&str] = &[
    "stack",
    "region",
    "vpc_cidr",
    "public_subnet_cidr",
    "private_subnet_cidr",
    "availability_zone",
    "nat_gateway",
    "admin_cidrs",
    "key_name",
    "public_key_file",
    "instances",
    "cache_bucket",
    "inventory_file",
    "fleets",
    "docker_machine",
    "s3_endpoint",
    "logs",
];
const FLEET_KEYS: &[&str] =
    &["ami", "ami_name", "ami_owner", "instance_types", "spot", "max_instances", "root_volume_gb", "subnet", "runner"];
const INSTANCE_KEYS: &[&str] = &["group", "instance_type", "ami", "ami_name", "ami_owner", "subnet", "root_volume_gb", "tags"];

/// Reads and checks `cloud` (a mapping); `err` points errors at the var; `read_file` reads a
/// local file named in it (the public key).
pub fn parse(
    v: &Json,
    err: &dyn Fn(String) -> InputError,
    read_file: &dyn Fn(&str) -> Result<String, String>,
    ports: (i32, i32),
) -> Result<CloudSpec, InputError> {
    let Json::Object(m) = v else { return Err(err("`cloud` must be a mapping (see the README's Cloud section)".into())) };
    check_keys(m, KEYS, "cloud", err)?;
    let s = |k: &str| -> Result<Option<String>, InputError> {
        match m.get(k) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
            Some(Json::String(_)) => Ok(None),
            Some(_) => Err(err(format!("cloud.{k} must be a string"))),
        }
    };
    let stack = s("stack")?.ok_or_else(|| err("cloud.stack is required: the name every resource is tagged with".into()))?;
    if stack.len() > 32 || !stack.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        return Err(err(format!("cloud.stack `{stack}`: use at most 32 lowercase letters, digits and `-`")));
    }
    let cidr = |k: &str, default: &str| -> Result<Cidr, InputError> {
        let raw = s(k)?.unwrap_or_else(|| default.to_string());
        Cidr::parse(&raw).ok_or_else(|| err(format!("cloud.{k} `{raw}` is not a network like 10.0.1.0/24 (no host bits set)")))
    };
    let vpc_cidr = cidr("vpc_cidr", "10.0.0.0/16")?;
    if !(16..=28).contains(&vpc_cidr.prefix) {
        return Err(err(format!("cloud.vpc_cidr {vpc_cidr}: AWS allows prefixes /16 to /28")));
    }
    let public_subnet = cidr("public_subnet_cidr", "10.0.1.0/24")?;
    let private_subnet = cidr("private_subnet_cidr", "10.0.2.0/24")?;
    for (name, net) in [("public_subnet_cidr", public_subnet), ("private_subnet_cidr", private_subnet)] {
        if !vpc_cidr.contains(net) {
            return Err(err(format!("cloud.{name} {net} is not inside cloud.vpc_cidr {vpc_cidr}")));
        }
    }
    if public_subnet.overlaps(private_subnet) {
        return Err(err(format!("cloud.public_subnet_cidr {public_subnet} overlaps cloud.private_subnet_cidr {private_subnet}")));
    }
    let nat_gateway = match m.get("nat_gateway") {
        None | Some(Json::Null) => false,
        Some(Json::Bool(b)) => *b,
        Some(_) => return Err(err("cloud.nat_gateway must be true or false".into())),
    };
    let admin_cidrs = match m.get("admin_cidrs") {
        None | Some(Json::Null) => Vec::new(),
        Some(Json::Array(a)) => a
            .iter()
            .map(|v| {
                let raw = v.as_str().unwrap_or_default();
                Cidr::parse(raw).ok_or_else(|| err(format!("cloud.admin_cidrs: `{v}` is not a network like 203.0.113.0/24")))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(err("cloud.admin_cidrs must be a list of networks".into())),
    };
    let key_pair = match (s("key_name")?, s("public_key_file")?) {
        (Some(name), Some(file)) => {
            let key = read_file(&file).map_err(|e| err(format!("cloud.public_key_file {file}: {e}")))?;
            if !key.starts_with("ssh-") && !key.starts_with("ecdsa-") {
                return Err(err(format!("cloud.public_key_file {file} does not hold an OpenSSH public key")));
            }
            Some((name, key.trim().to_string()))
        }
        (None, None) => None,
        _ => return Err(err("cloud.key_name and cloud.public_key_file go together".into())),
    };
    let mut instances = BTreeMap::new();
    match m.get("instances") {
        None | Some(Json::Null) => {}
        Some(Json::Object(list)) => {
            for (name, def) in list {
                instances.insert(name.clone(), instance(name, def, err)?);
            }
        }
        Some(_) => return Err(err("cloud.instances must be a mapping of instance name to settings".into())),
    }
    if !instances.is_empty() && key_pair.is_none() {
        return Err(err("cloud.instances need cloud.key_name and cloud.public_key_file (how you will log in)".into()));
    }
    let bucket = match m.get("cache_bucket") {
        None | Some(Json::Null) => None,
        Some(Json::Object(b)) => {
            check_keys(b, &["name", "expire_days"], "cloud.cache_bucket", err)?;
            let name = b.get("name").and_then(Json::as_str).unwrap_or_default().to_string();
            let valid = (3..=63).contains(&name.len())
                && name.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.')
                && name.as_bytes()[0].is_ascii_alphanumeric()
                && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric();
            if !valid {
                return Err(err(format!("cloud.cache_bucket.name `{name}` is not a valid S3 bucket name (3-63 of a-z 0-9 . -)")));
            }
            let expire_days = match b.get("expire_days") {
                None => 14,
                Some(v) => v
                    .as_i64()
                    .filter(|d| (1..=3650).contains(d))
                    .ok_or_else(|| err("cloud.cache_bucket.expire_days must be 1..3650".into()))? as i32,
            };
            Some(Bucket { name, expire_days })
        }
        Some(_) => return Err(err("cloud.cache_bucket must be a mapping with `name`".into())),
    };
    let flag = |k: &str| match m.get(k) {
        None | Some(Json::Null) => Ok(false),
        Some(Json::Bool(b)) => Ok(*b),
        Some(_) => Err(err(format!("cloud.{k} must be true or false"))),
    };
    let mut fleets = BTreeMap::new();
    match m.get("fleets") {
        None | Some(Json::Null) => {}
        Some(Json::Object(list)) => {
            for (name, def) in list {
                fleets.insert(name.clone(), fleet(name, def, err)?);
            }
        }
        Some(_) => return Err(err("cloud.fleets must be a mapping of fleet name to settings".into())),
    }
    let docker_machine = flag("docker_machine")?;
    let logs = match m.get("logs") {
        None | Some(Json::Null) => None,
        Some(Json::Object(l)) => {
            check_keys(l, &["retention_days"], "cloud.logs", err)?;
            // CloudWatch accepts only these retention periods.
            const DAYS: &[i64] = &[1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653];
            let d = l.get("retention_days").map_or(Some(30), Json::as_i64).filter(|d| DAYS.contains(d));
            let d = d.ok_or_else(|| err(format!("cloud.logs.retention_days must be one of CloudWatch's periods: {DAYS:?}")))?;
            Some(Logs { retention_days: d as i32 })
        }
        Some(_) => return Err(err("cloud.logs must be a mapping (`retention_days`)".into())),
    };
    // Workers in the private subnet reach GitLab, registries and S3 only through a NAT gateway.
    let private_workers = docker_machine || fleets.values().any(|f| f.subnet == SubnetKind::Private);
    if private_workers && !nat_gateway {
        let who = if docker_machine { "docker+machine workers".to_string() } else { "the fleets' workers".to_string() };
        return Err(err(format!(
            "{who} run in the private subnet, which has no way out without `cloud.nat_gateway: true`: \
             they could not pull images, reach GitLab or the cache (`s3_endpoint: true` keeps cache traffic off the NAT)"
        )));
    }
    Ok(CloudSpec {
        fleets,
        docker_machine,
        s3_endpoint: flag("s3_endpoint")?,
        logs,
        stack,
        region: s("region")?,
        vpc_cidr,
        public_subnet,
        private_subnet,
        availability_zone: s("availability_zone")?,
        nat_gateway,
        admin_cidrs,
        key_pair,
        instances,
        bucket,
        docker_tls_port: ports.0,
        registry_port: ports.1,
        inventory_file: s("inventory_file")?.unwrap_or_else(|| "inventory.cloud.yaml".into()),
    })
}

fn check_keys(m: &Map<String, Json>, known: &[&str], at: &str, err: &dyn Fn(String) -> InputError) -> Result<(), InputError> {
    match crate::vars::schema::unknown_key(m, known) {
        Some((k, help)) => Err(err(format!("{at}: unknown key `{k}`")).with_help(help)),
        None => Ok(()),
    }
}

/// EC2 instance types look like `t3.small`, `m7i-flex.large`, `c6gn.16xlarge`.
pub fn valid_instance_type(t: &str) -> bool {
    let Some((family, size)) = t.split_once('.') else { return false };
    let fam_ok = family.len() >= 2
        && family.as_bytes()[0].is_ascii_lowercase()
        && family.bytes().any(|b| b.is_ascii_digit())
        && family.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let size_ok = !size.is_empty()
        && size.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && size.ends_with(|c: char| c.is_ascii_lowercase());
    fam_ok && size_ok
}

fn ami(at: &str, m: &Map<String, Json>, err: &dyn Fn(String) -> InputError) -> Result<Ami, InputError> {
    let get = |k: &str| m.get(k).and_then(Json::as_str).map(str::to_string);
    match (get("ami"), get("ami_name"), get("ami_owner")) {
        (Some(id), None, None) if id.starts_with("ami-") => Ok(Ami::Id(id)),
        (Some(id), None, None) => Err(err(format!("{at}.ami `{id}` is not an AMI id (ami-...)"))),
        (None, Some(name), Some(owner)) => Ok(Ami::Name { name, owner }),
        _ => Err(err(format!("{at}: give `ami` (an id), or `ami_name` and `ami_owner`"))),
    }
}

fn subnet(at: &str, m: &Map<String, Json>, default: &str, err: &dyn Fn(String) -> InputError) -> Result<SubnetKind, InputError> {
    match m.get("subnet").and_then(Json::as_str).unwrap_or(default) {
        "public" => Ok(SubnetKind::Public),
        "private" => Ok(SubnetKind::Private),
        other => Err(err(format!("{at}.subnet `{other}`: expected public or private"))),
    }
}

fn root_gb(at: &str, m: &Map<String, Json>, err: &dyn Fn(String) -> InputError) -> Result<i32, InputError> {
    match m.get("root_volume_gb") {
        None => Ok(30),
        Some(v) => {
            Ok(v.as_i64().filter(|g| (8..=16384).contains(g)).ok_or_else(|| err(format!("{at}.root_volume_gb must be 8..16384")))? as i32)
        }
    }
}

fn fleet(name: &str, def: &Json, err: &dyn Fn(String) -> InputError) -> Result<Fleet, InputError> {
    let at = format!("cloud.fleets.{name}");
    let Json::Object(m) = def else { return Err(err(format!("{at} must be a mapping"))) };
    check_keys(m, FLEET_KEYS, &at, err)?;
    if name.is_empty() || name.len() > 64 || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        return Err(err(format!("{at}: fleet names are lowercase letters, digits and `-`")));
    }
    let instance_types: Vec<String> = match m.get("instance_types") {
        None | Some(Json::Null) => vec!["t3.medium".into()],
        Some(Json::Array(a)) if !a.is_empty() => a.iter().map(|t| t.as_str().unwrap_or_default().to_string()).collect(),
        Some(_) => return Err(err(format!("{at}.instance_types must be a non-empty list like [t3.medium, t3a.medium]"))),
    };
    if let Some(bad) = instance_types.iter().find(|t| !valid_instance_type(t)) {
        return Err(err(format!("{at}.instance_types: `{bad}` does not look like an EC2 instance type (e.g. t3.small)")));
    }
    let max_instances = match m.get("max_instances") {
        None => 10,
        Some(v) => v.as_i64().filter(|n| (1..=1000).contains(n)).ok_or_else(|| err(format!("{at}.max_instances must be 1..1000")))? as i32,
    };
    let spot = match m.get("spot") {
        None | Some(Json::Null) => false,
        Some(Json::Bool(b)) => *b,
        Some(_) => return Err(err(format!("{at}.spot must be true or false"))),
    };
    let runner = m.get("runner").and_then(Json::as_str).unwrap_or(name).to_string();
    Ok(Fleet {
        name: name.to_string(),
        runner,
        ami: ami(&at, m, err)?,
        instance_types,
        spot,
        max_instances,
        root_volume_gb: root_gb(&at, m, err)?,
        subnet: subnet(&at, m, "private", err)?,
    })
}

fn instance(name: &str, def: &Json, err: &dyn Fn(String) -> InputError) -> Result<Instance, InputError> {
    let at = format!("cloud.instances.{name}");
    let Json::Object(m) = def else { return Err(err(format!("{at} must be a mapping"))) };
    check_keys(m, INSTANCE_KEYS, &at, err)?;
    let get = |k: &str| m.get(k).and_then(Json::as_str).map(str::to_string);
    let group = get("group").unwrap_or_default();
    if group != "master" && group != "slave" {
        return Err(err(format!("{at}.group must be `master` or `slave`")));
    }
    let instance_type = get("instance_type").unwrap_or_else(|| "t3.medium".into());
    if !valid_instance_type(&instance_type) {
        return Err(err(format!("{at}.instance_type `{instance_type}` does not look like an EC2 instance type (e.g. t3.small)")));
    }
    let ami = ami(&at, m, err)?;
    let subnet = subnet(&at, m, "public", err)?;
    let root_volume_gb = root_gb(&at, m, err)?;
    let tags = match m.get("tags") {
        None | Some(Json::Null) => BTreeMap::new(),
        Some(Json::Object(t)) => t
            .iter()
            .map(|(k, v)| match v {
                Json::String(s) => Ok((k.clone(), s.clone())),
                other => Ok((k.clone(), other.to_string())),
            })
            .collect::<Result<_, InputError>>()?,
        Some(_) => return Err(err(format!("{at}.tags must be a mapping of tag names to values"))),
    };
    if tags.keys().any(|k| k.starts_with("provision") || k == "Name") {
        return Err(err(format!("{at}.tags: `Name` and `provision*` tags are provision's own")));
    }
    Ok(Instance { name: name.to_string(), group, instance_type, ami, subnet, root_volume_gb, tags })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_and_instance_types() {
        let vpc = Cidr::parse("10.0.0.0/16").unwrap();
        assert!(vpc.contains(Cidr::parse("10.0.1.0/24").unwrap()));
        assert!(!vpc.contains(Cidr::parse("10.1.1.0/24").unwrap()));
        assert!(Cidr::parse("10.0.1.0/24").unwrap().overlaps(Cidr::parse("10.0.0.0/23").unwrap()));
        assert!(Cidr::parse("10.0.1.5/24").is_none(), "host bits");
        for ok in ["t3.small", "m7i-flex.large", "c6gn.16xlarge", "t2.micro"] {
            assert!(valid_instance_type(ok), "{ok}");
        }
        for bad in ["t3", "small", "t3.", "T3.small", "t.small", "t3.16", "t3.small.x"] {
            assert!(!valid_instance_type(bad), "{bad}");
        }
    }
}
