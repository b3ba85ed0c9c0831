//! `provision cloud` against moto (PyPI `moto[server]`), a local emulation of the EC2 and S3
//! APIs the official SDK talks to: the test starts one on a free 127.0.0.1 port with dummy
//! credentials (and installs moto first if this machine lacks it).

use std::path::Path;
use std::process::{Child, Command, Output};

struct Moto {
    child: Child,
    url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn moto() -> Moto {
    let have = Command::new("python3").args(["-c", "import moto.server, boto3"]).status().is_ok_and(|s| s.success());
    if !have {
        let pip = |extra: &[&str]| {
            Command::new("python3").args(["-m", "pip", "install", "-q", "moto[server]"]).args(extra).status().is_ok_and(|s| s.success())
        };
        let has_pip = Command::new("python3").args(["-m", "pip", "--version"]).output().is_ok_and(|o| o.status.success());
        if !has_pip {
            // A fresh Debian has python3 without pip.
            let _ = Command::new("apt-get").args(["install", "-y", "-q", "python3-pip"]).env("DEBIAN_FRONTEND", "noninteractive").status();
        }
        // Debian's python3 refuses pip installs outside a venv (PEP 668) unless told otherwise.
        let ok = pip(&[]) || pip(&["--break-system-packages"]);
        assert!(ok, "installing moto[server] with pip failed");
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new("python3")
        .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Owned by the guard at once, so it is killed and reaped whatever happens next.
    let m = Moto { child, url: format!("http://127.0.0.1:{port}") };
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return m;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("moto did not start on {}", m.url);
}

fn project(dir: &Path, inventory: &str, cloud: &str) {
    std::fs::create_dir_all(dir.join("group_vars")).unwrap();
    std::fs::write(dir.join("inventory.yaml"), inventory).unwrap();
    std::fs::write(dir.join("group_vars/all.yaml"), cloud).unwrap();
    std::fs::write(dir.join("id.pub"), "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGqpWRWVDlNI7zKz9nsv06gnH8T26TX6Y0UPOkqG2pdz test\n").unwrap();
}

fn provision(dir: &Path, endpoint: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_provision"))
        .arg("-i")
        .arg(dir.join("inventory.yaml"))
        .args(args)
        .env("NO_COLOR", "1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_ENDPOINT_URL", endpoint)
        .env_remove("AWS_PROFILE")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Runs boto3 against moto, for what provision itself must not do (planting instances, counting).
fn boto(endpoint: &str, code: &str) -> String {
    let script = format!(
        "import boto3\nec2 = boto3.client('ec2', endpoint_url='{endpoint}', region_name='eu-west-1', aws_access_key_id='testing', aws_secret_access_key='testing')\n{code}"
    );
    let o = Command::new("python3").args(["-c", &script]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const CLOUD: &str = "cloud:
  stack: ci-test
  region: eu-west-1
  nat_gateway: true
  admin_cidrs: [203.0.113.0/24]
  key_name: ci-test
  public_key_file: id.pub
  instances:
    ci-master: {group: master, instance_type: t3.small, ami: ami-12c6146b, tags: {team: ci}}
    ci-slave: {group: slave, instance_type: t3.large, ami: ami-12c6146b, root_volume_gb: 50}
  cache_bucket: {name: ci-test-cache, expire_days: 7}
";

const INVENTORY: &str = "all:\n  children:\n    master:\n      hosts:\n        m1: {ssh_host: 127.0.0.1, runners: [{name: ci-docker}]}\n    slave:\n      hosts: {}\n";

#[test]
fn plan_apply_again_audit_and_destroy_round_trip() {
    let m = moto();
    let dir = tempfile::tempdir().unwrap();
    project(dir.path(), INVENTORY, CLOUD);
    let d = dir.path();

    let plan = provision(d, &m.url, &["cloud", "plan"]);
    assert!(plan.status.success(), "{}", text(&plan));
    assert!(text(&plan).contains("plan: 13 to create"), "{}", text(&plan));
    assert!(!d.join("inventory.cloud.yaml").exists(), "plan writes nothing");
    assert_eq!(
        boto(&m.url, "print(len(ec2.describe_vpcs(Filters=[{'Name': 'tag:provision:stack', 'Values': ['ci-test']}])['Vpcs']))"),
        "0\n"
    );

    let apply = provision(d, &m.url, &["cloud", "apply"]);
    assert!(apply.status.success(), "{}", text(&apply));
    assert!(text(&apply).contains("applied: 13 to create"), "{}", text(&apply));
    let inv = std::fs::read_to_string(d.join("inventory.cloud.yaml")).unwrap();
    assert!(inv.contains("ci-master: {ssh_host: ") && inv.contains("private_address: \"10.0.1."), "{inv}");
    assert!(inv.contains("runner_cache_s3_bucket: \"ci-test-cache\""), "{inv}");
    // The generated inventory is a real inventory provision reads.
    let o = Command::new(env!("CARGO_BIN_EXE_provision"))
        .arg("-i")
        .arg(d.join("inventory.cloud.yaml"))
        .args(["inventory", "--format", "json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));

    let sg_rules = boto(
        &m.url,
        "g = ec2.describe_security_groups(Filters=[{'Name': 'tag:provision:role', 'Values': ['slave-sg']}])['SecurityGroups'][0]\n\
         print(sorted((p['FromPort'], [r['CidrIp'] for r in p['IpRanges']], len(p['UserIdGroupPairs'])) for p in g['IpPermissions']))",
    );
    assert_eq!(sg_rules, "[(22, ['203.0.113.0/24'], 0), (2376, [], 1), (5000, ['10.0.0.0/16'], 0)]\n", "least privilege on the slave");

    let again = provision(d, &m.url, &["cloud", "apply"]);
    assert!(again.status.success(), "{}", text(&again));
    assert!(text(&again).contains("applied: 0 to create, 0 to update, 0 to destroy"), "a second apply changes nothing: {}", text(&again));

    let team = boto(
        &m.url,
        "i = [i for r in ec2.describe_instances(Filters=[{'Name': 'tag:Name', 'Values': ['ci-master']}])['Reservations'] for i in r['Instances']][0]\n\
         print([t['Value'] for t in i['Tags'] if t['Key'] == 'team'])",
    );
    assert_eq!(team, "['ci']\n", "the instance's own tags are there too");

    // A new instance type: the instance is stopped, resized and started, not replaced.
    std::fs::write(d.join("group_vars/all.yaml"), CLOUD.replace("instance_type: t3.large", "instance_type: t3.xlarge")).unwrap();
    let resized = provision(d, &m.url, &["cloud", "apply"]);
    assert!(resized.status.success(), "{}", text(&resized));
    assert!(
        text(&resized).contains("t3.large → t3.xlarge") && text(&resized).contains("applied: 0 to create, 1 to update"),
        "{}",
        text(&resized)
    );
    let kind = boto(
        &m.url,
        "print([i['InstanceType'] for r in ec2.describe_instances(Filters=[{'Name': 'tag:Name', 'Values': ['ci-slave']}])['Reservations'] for i in r['Instances']])",
    );
    assert_eq!(kind, "['t3.xlarge']\n");

    // Audit: a planted orphan (its runner is in no inventory) is found; an accounted-for one is not.
    boto(
        &m.url,
        "for r in ['gone-runner', 'ci-docker']:\n    ec2.run_instances(ImageId='ami-12c6146b', MinCount=1, MaxCount=1, InstanceType='t3.small', \
         TagSpecifications=[{'ResourceType': 'instance', 'Tags': [{'Key': 'provision:runner', 'Value': r}]}])",
    );
    let audit = provision(d, &m.url, &["cloud", "audit"]);
    assert!(audit.status.success(), "{}", text(&audit));
    assert!(text(&audit).contains("runner=gone-runner") && !text(&audit).contains("runner=ci-docker"), "{}", text(&audit));
    assert!(text(&audit).contains("2 runner instance(s), 1 orphaned"), "{}", text(&audit));
    let refused = provision(d, &m.url, &["cloud", "audit", "--terminate"]);
    assert_eq!(refused.status.code(), Some(1), "no confirmation, nothing terminated: {}", text(&refused));
    let term = provision(d, &m.url, &["cloud", "audit", "--terminate", "--yes"]);
    assert!(term.status.success(), "{}", text(&term));
    assert!(text(&provision(d, &m.url, &["cloud", "audit"])).contains("1 runner instance(s), 0 orphaned"));

    let destroy = provision(d, &m.url, &["cloud", "destroy", "--yes"]);
    assert!(destroy.status.success(), "{}", text(&destroy));
    assert!(text(&destroy).contains("14 to destroy"), "{}", text(&destroy));
    let left = boto(
        &m.url,
        "f = [{'Name': 'tag:provision:stack', 'Values': ['ci-test']}]\n\
         live = [i for r in ec2.describe_instances(Filters=f)['Reservations'] for i in r['Instances'] if i['State']['Name'] != 'terminated']\n\
         print(len(ec2.describe_vpcs(Filters=f)['Vpcs']), len(ec2.describe_subnets(Filters=f)['Subnets']), len(ec2.describe_security_groups(Filters=f)['SecurityGroups']), len(live), len(ec2.describe_addresses(Filters=f)['Addresses']))",
    );
    assert_eq!(left, "0 0 0 0 0\n", "nothing of the stack is left");
    assert!(text(&provision(d, &m.url, &["cloud", "plan"])).contains("plan: 13 to create"));
    // The runner instance nobody orphaned was not the stack's: destroy left it alone.
    assert!(text(&provision(d, &m.url, &["cloud", "audit"])).contains("1 runner instance(s), 0 orphaned"));
}

#[test]
fn bad_cloud_vars_are_input_errors_before_any_api_call() {
    // Nothing listens here: an API call would fail with exit 1, not the exit 2 of bad input.
    let nowhere = "http://127.0.0.1:9";
    let cases = [
        (
            "vpc_cidr: 10.0.0.0/16\n  public_subnet_cidr: 10.0.1.0/24\n  private_subnet_cidr: 10.0.1.128/25\n",
            "overlaps cloud.private_subnet_cidr",
        ),
        ("public_subnet_cidr: 10.9.1.0/24\n", "is not inside cloud.vpc_cidr"),
        ("vpc_cidr: 10.0.0.1/16\n", "is not a network like"),
        (
            "instances:\n    m: {group: master, instance_type: large, ami: ami-1}\n  key_name: k\n  public_key_file: id.pub\n",
            "does not look like an EC2 instance type",
        ),
        ("instances:\n    m: {group: boss, ami: ami-1}\n  key_name: k\n  public_key_file: id.pub\n", "group must be `master` or `slave`"),
        ("cache_bucket: {name: Not_A_Bucket}\n", "not a valid S3 bucket name"),
        ("vpc_cidrs: 10.0.0.0/16\n", "unknown key `vpc_cidrs`"),
    ];
    for (extra, message) in cases {
        let dir = tempfile::tempdir().unwrap();
        project(dir.path(), INVENTORY, &format!("cloud:\n  stack: ci-test\n  {extra}"));
        let o = provision(dir.path(), nowhere, &["cloud", "plan"]);
        assert_eq!(o.status.code(), Some(2), "{extra}: {}", text(&o));
        // miette wraps long messages: read them unwrapped.
        let flat = text(&o).replace("\n  | ", " ");
        assert!(flat.contains(message), "{extra}: expected {message:?} in {flat}");
        assert!(text(&o).contains("group_vars/all.yaml"), "names the file: {}", text(&o));
    }
}
