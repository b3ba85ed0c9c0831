//! `provision cloud` against moto (PyPI `moto[server]`), a local emulation of the EC2, S3, IAM,
//! Auto Scaling and CloudWatch Logs APIs the official SDK talks to: the test starts one on a
//! free 127.0.0.1 port with dummy credentials (and installs moto first if this machine lacks
//! it). moto neither enforces IAM policies nor refuses to delete a VPC that still holds
//! something, so the tests read the policy documents and check that nothing is left.

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
        .env("AWS_EC2_METADATA_DISABLED", "true")
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
        "import boto3, json\nkw = dict(endpoint_url='{endpoint}', region_name='eu-west-1', aws_access_key_id='testing', aws_secret_access_key='testing')\n\
         ec2 = boto3.client('ec2', **kw)\niam = boto3.client('iam', **kw)\nasg = boto3.client('autoscaling', **kw)\nlogs = boto3.client('logs', **kw)\n{code}"
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
    assert!(text(&plan).contains("plan: 18 to create"), "{}", text(&plan));
    // Not on a terminal and no --yes: apply shows the plan and changes nothing.
    let refused = provision(d, &m.url, &["cloud", "apply"]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(text(&refused).contains("--yes") && text(&refused).contains("nothing was changed"), "{}", text(&refused));
    assert!(!d.join("inventory.cloud.yaml").exists(), "plan writes nothing");
    assert_eq!(
        boto(&m.url, "print(len(ec2.describe_vpcs(Filters=[{'Name': 'tag:provision:stack', 'Values': ['ci-test']}])['Vpcs']))"),
        "0\n"
    );

    let apply = provision(d, &m.url, &["cloud", "apply", "--yes"]);
    assert!(apply.status.success(), "{}", text(&apply));
    assert!(text(&apply).contains("applied: 18 to create"), "{}", text(&apply));
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

    let again = provision(d, &m.url, &["cloud", "apply", "--yes"]);
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
    let resized = provision(d, &m.url, &["cloud", "apply", "--yes"]);
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

    // Audit (scoped to the stack since issue 15): a planted orphan (its runner is in no
    // inventory) is found; an accounted-for one is not; another stack's is not even listed.
    boto(
        &m.url,
        "for s, r in [('ci-test', 'gone-runner'), ('ci-test', 'ci-docker'), ('other-team', 'their-runner')]:\n    ec2.run_instances(ImageId='ami-12c6146b', MinCount=1, MaxCount=1, InstanceType='t3.small', \
         TagSpecifications=[{'ResourceType': 'instance', 'Tags': [{'Key': 'provision:runner', 'Value': r}, {'Key': 'provision:stack', 'Value': s}]}])",
    );
    let audit = provision(d, &m.url, &["cloud", "audit"]);
    assert!(audit.status.success(), "{}", text(&audit));
    assert!(text(&audit).contains("runner=gone-runner") && !text(&audit).contains("runner=ci-docker"), "{}", text(&audit));
    assert!(!text(&audit).contains("their-runner"), "{}", text(&audit));
    assert!(text(&audit).contains("2 runner instance(s) in stack ci-test, 1 orphaned"), "{}", text(&audit));
    let refused = provision(d, &m.url, &["cloud", "audit", "--terminate"]);
    assert_eq!(refused.status.code(), Some(1), "no confirmation, nothing terminated: {}", text(&refused));
    let term = provision(d, &m.url, &["cloud", "audit", "--terminate", "--yes"]);
    assert!(term.status.success(), "{}", text(&term));
    assert!(text(&provision(d, &m.url, &["cloud", "audit"])).contains("1 runner instance(s) in stack ci-test, 0 orphaned"));

    let destroy = provision(d, &m.url, &["cloud", "destroy", "--yes"]);
    assert!(destroy.status.success(), "{}", text(&destroy));
    // What apply created (its policy goes with its role), the NAT's elastic IP, and the runner
    // instance tagged with the stack: destroy owns what the stack's runners made.
    assert!(text(&destroy).contains("19 to destroy"), "{}", text(&destroy));
    let left = boto(
        &m.url,
        "f = [{'Name': 'tag:provision:stack', 'Values': ['ci-test']}]\n\
         live = [i for r in ec2.describe_instances(Filters=f)['Reservations'] for i in r['Instances'] if i['State']['Name'] != 'terminated']\n\
         print(len(ec2.describe_vpcs(Filters=f)['Vpcs']), len(ec2.describe_subnets(Filters=f)['Subnets']), len(ec2.describe_security_groups(Filters=f)['SecurityGroups']), len(live), len(ec2.describe_addresses(Filters=f)['Addresses']))",
    );
    assert_eq!(left, "0 0 0 0 0\n", "nothing of the stack is left");
    assert!(text(&provision(d, &m.url, &["cloud", "plan"])).contains("plan: 18 to create"));
    // Another team's runner instance was not the stack's: destroy left it alone.
    let theirs = boto(
        &m.url,
        "print([i['State']['Name'] for r in ec2.describe_instances(Filters=[{'Name': 'tag:provision:runner', 'Values': ['their-runner']}])['Reservations'] for i in r['Instances']])",
    );
    assert_eq!(theirs, "['running']\n");
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
        ("fleets:\n    docker: {ami: ami-1}\n", "no way out without `cloud.nat_gateway: true`"),
        ("docker_machine: true\n", "docker+machine workers run in the private subnet"),
        ("nat_gateway: true\n  fleets:\n    docker: {ami: ami-1, instance_types: [big]}\n", "does not look like an EC2 instance type"),
        ("logs: {retention_days: 8}\n", "retention_days must be one of"),
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

const AUTOSCALED: &str = "cloud:
  stack: ci-auto
  region: eu-west-1
  nat_gateway: true
  s3_endpoint: true
  docker_machine: true
  admin_cidrs: [203.0.113.0/24]
  key_name: ci-auto
  public_key_file: id.pub
  instances:
    ci-master: {group: master, instance_type: t3.small, ami: ami-12c6146b}
  cache_bucket: {name: ci-auto-cache}
  fleets:
    docker: {ami: ami-12c6146b, instance_types: [t3.medium, t3a.medium], spot: true, max_instances: 5, runner: ci-fleet}
  logs: {retention_days: 14}
";

#[test]
fn keyless_autoscaling_stack_iam_fleets_drift_audit_and_complete_destroy() {
    let m = moto();
    let dir = tempfile::tempdir().unwrap();
    project(dir.path(), INVENTORY, AUTOSCALED);
    let d = dir.path();

    let plan = provision(d, &m.url, &["cloud", "plan"]);
    assert!(plan.status.success(), "{}", text(&plan));
    for line in [
        "+ iam role ci-auto-master (trusted by ec2.amazonaws.com)",
        "+ instance profile ci-auto-master",
        "+ iam role ci-auto-worker",
        "+ instance profile ci-auto-slave",
        "+ iam policy ci-auto-master/provision (CacheList, CacheObjects, MachineDescribe, MachineCreate, MachineLifecycle, MachinePassWorkerRole, FleetScale, FleetDescribe, FleetConnect, Logs)",
        "+ security group ci-auto-workers",
        "+ launch template ci-auto-docker",
        "+ auto scaling group ci-auto-docker (0..5, t3.medium/t3a.medium, spot)",
        "+ s3 gateway endpoint ci-auto-s3",
        "+ log group /provision/ci-auto",
    ] {
        assert!(text(&plan).contains(line), "{line} in {}", text(&plan));
    }
    let json = provision(d, &m.url, &["cloud", "plan", "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&json)));
    assert_eq!(doc["stack"], "ci-auto");
    assert!(doc["summary"]["create"].as_u64().unwrap() > 20, "{doc}");
    assert!(
        doc["changes"].as_array().unwrap().iter().any(|c| c["action"] == "create" && c["what"] == "instance profile ci-auto-master"),
        "{doc}"
    );

    let apply = provision(d, &m.url, &["cloud", "apply", "--yes"]);
    assert!(apply.status.success(), "{}", text(&apply));
    let inv = std::fs::read_to_string(d.join("inventory.cloud.yaml")).unwrap();
    for var in [
        "cloud_stack: \"ci-auto\"",
        "cloud_worker_security_group: \"ci-auto-workers\"",
        "cloud_worker_instance_profile: \"ci-auto-worker\"",
        "\"docker\": \"ci-auto-docker\"",
        "cloud_log_group: \"/provision/ci-auto\"",
        "cloud_private_zone: \"",
    ] {
        assert!(inv.contains(var), "{var} in {inv}");
    }

    // The generated inventory is one provision reads, with the fleet map runners look up.
    let o = Command::new(env!("CARGO_BIN_EXE_provision"))
        .arg("-i")
        .arg(d.join("inventory.cloud.yaml"))
        .args(["inventory", "--format", "json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("\"docker\":\"ci-auto-docker\"") || text(&o).contains("\"docker\": \"ci-auto-docker\""), "{}", text(&o));

    // The master: its instance profile, IMDSv2 with two hops, one encrypted root on the AMI's root device.
    let master = boto(
        &m.url,
        "i = [i for r in ec2.describe_instances(Filters=[{'Name': 'tag:Name', 'Values': ['ci-master']}])['Reservations'] for i in r['Instances']][0]\n\
         root = ec2.describe_images(ImageIds=['ami-12c6146b'])['Images'][0]['RootDeviceName']\n\
         vols = [ec2.describe_volumes(VolumeIds=[b['Ebs']['VolumeId']])['Volumes'][0] for b in i['BlockDeviceMappings']]\n\
         print(i['IamInstanceProfile']['Arn'].split('/')[-1], i['MetadataOptions']['HttpTokens'], i['MetadataOptions']['HttpPutResponseHopLimit'])\n\
         print([b['DeviceName'] == root for b in i['BlockDeviceMappings']], [v['Encrypted'] for v in vols])",
    );
    assert_eq!(master, "ci-auto-master required 2\n[True] [True]\n");

    // The master's policy: the cache bucket only, the fleet's group only, the worker role only.
    let policy = boto(
        &m.url,
        "doc = iam.get_role_policy(RoleName='ci-auto-master', PolicyName='provision')['PolicyDocument']\n\
         doc = json.loads(doc) if isinstance(doc, str) else doc\n\
         st = {s['Sid']: s for s in doc['Statement']}\n\
         print(st['CacheList']['Resource'], st['CacheObjects']['Resource'], st['CacheObjects']['Action'])\n\
         print(st['FleetScale']['Resource'])\n\
         print(st['FleetConnect']['Condition'])\n\
         print(st['MachinePassWorkerRole']['Resource'], st['MachineLifecycle']['Condition'])\n\
         print(st['Logs']['Resource'][0])\n\
         print(iam.get_role(RoleName='ci-auto-master')['Role']['AssumeRolePolicyDocument']['Statement'][0]['Principal'])\n\
         print([p for p in ['ci-auto-master', 'ci-auto-slave', 'ci-auto-worker'] if iam.get_instance_profile(InstanceProfileName=p)['InstanceProfile']['Roles'][0]['RoleName'] == p])",
    );
    let account = "123456789012";
    assert_eq!(
        policy,
        format!(
            "arn:aws:s3:::ci-auto-cache arn:aws:s3:::ci-auto-cache/* ['s3:GetObject', 's3:PutObject']\n\
             ['arn:aws:autoscaling:eu-west-1:{account}:autoScalingGroup:*:autoScalingGroupName/ci-auto-docker']\n\
             {{'StringEquals': {{'ec2:ResourceTag/aws:autoscaling:groupName': ['ci-auto-docker']}}}}\n\
             arn:aws:iam::{account}:role/provision/ci-auto-worker {{'StringEquals': {{'ec2:ResourceTag/provision:stack': 'ci-auto'}}}}\n\
             arn:aws:logs:eu-west-1:{account}:log-group:/provision/ci-auto\n\
             {{'Service': 'ec2.amazonaws.com'}}\n\
             ['ci-auto-master', 'ci-auto-slave', 'ci-auto-worker']\n"
        )
    );

    // The fleet: an empty group, protected from scale-in, tags propagated, spot over two types.
    let fleet = boto(
        &m.url,
        "g = asg.describe_auto_scaling_groups(AutoScalingGroupNames=['ci-auto-docker'])['AutoScalingGroups'][0]\n\
         print(g['MinSize'], g['MaxSize'], g['DesiredCapacity'], g['NewInstancesProtectedFromScaleIn'])\n\
         print(sorted((t['Key'], t['Value'], t['PropagateAtLaunch']) for t in g['Tags'] if t['Key'].startswith('provision')))\n\
         mp = g['MixedInstancesPolicy']\n\
         print([o['InstanceType'] for o in mp['LaunchTemplate']['Overrides']], mp['InstancesDistribution']['OnDemandPercentageAboveBaseCapacity'])\n\
         lt = ec2.describe_launch_template_versions(LaunchTemplateName='ci-auto-docker', Versions=['$Latest'])['LaunchTemplateVersions'][0]['LaunchTemplateData']\n\
         print(lt['MetadataOptions']['HttpTokens'], lt['BlockDeviceMappings'][0]['Ebs']['Encrypted'], len(lt['SecurityGroupIds']))",
    );
    assert_eq!(
        fleet,
        "0 5 0 True\n[('provision:runner', 'ci-fleet', True), ('provision:stack', 'ci-auto', True), ('provisioned-by', 'provision', True)]\n['t3.medium', 't3a.medium'] 0\nrequired True 1\n"
    );
    // The workers' group: SSH and docker+machine's docker port from the masters only.
    let workers = boto(
        &m.url,
        "g = ec2.describe_security_groups(Filters=[{'Name': 'tag:provision:role', 'Values': ['worker-sg']}])['SecurityGroups'][0]\n\
         m = ec2.describe_security_groups(Filters=[{'Name': 'tag:provision:role', 'Values': ['master-sg']}])['SecurityGroups'][0]['GroupId']\n\
         print(sorted((p['FromPort'], [u['GroupId'] == m for u in p['UserIdGroupPairs']], p.get('IpRanges')) for p in g['IpPermissions']))",
    );
    assert_eq!(workers, "[(22, [True], []), (2376, [True], [])]\n");

    let again = provision(d, &m.url, &["cloud", "apply", "--yes"]);
    assert!(again.status.success(), "{}", text(&again));
    assert!(text(&again).contains("applied: 0 to create, 0 to update, 0 to destroy"), "{}", text(&again));

    // The plugin scales the group: re-apply leaves its capacity and its instances alone.
    boto(&m.url, "asg.set_desired_capacity(AutoScalingGroupName='ci-auto-docker', DesiredCapacity=2)");
    let scaled = provision(d, &m.url, &["cloud", "apply", "--yes"]);
    assert!(text(&scaled).contains("applied: 0 to create, 0 to update, 0 to destroy"), "{}", text(&scaled));
    let desired = boto(
        &m.url,
        "print(asg.describe_auto_scaling_groups(AutoScalingGroupNames=['ci-auto-docker'])['AutoScalingGroups'][0]['DesiredCapacity'])",
    );
    assert_eq!(desired, "2\n");
    // Another stack's runner instance is neither listed nor terminated.
    boto(
        &m.url,
        "ec2.run_instances(ImageId='ami-12c6146b', MinCount=1, MaxCount=1, InstanceType='t3.small', \
         TagSpecifications=[{'ResourceType': 'instance', 'Tags': [{'Key': 'provision:runner', 'Value': 'ghost'}, {'Key': 'provision:stack', 'Value': 'other'}]}])",
    );
    // The base inventory has no host with runners: the fleet's members are still accounted for.
    let base = tempfile::tempdir().unwrap();
    project(base.path(), "all:\n  hosts: {}\n", AUTOSCALED);
    let audit = provision(base.path(), &m.url, &["cloud", "audit", "--terminate", "--yes"]);
    assert!(audit.status.success(), "{}", text(&audit));
    assert!(text(&audit).contains("2 runner instance(s) in stack ci-auto, 0 orphaned"), "{}", text(&audit));
    assert!(!text(&audit).contains("ghost"), "{}", text(&audit));

    // A group no declared fleet accounts for: its members are orphans, terminated through the
    // group so that it does not start replacements.
    let fleetless = tempfile::tempdir().unwrap();
    let without: String =
        AUTOSCALED.lines().filter(|l| !l.contains("fleets:") && !l.contains("docker: {ami")).map(|l| format!("{l}\n")).collect();
    project(fleetless.path(), "all:\n  hosts: {}\n", &without);
    let orphaned = provision(fleetless.path(), &m.url, &["cloud", "audit", "--terminate", "--yes"]);
    assert!(orphaned.status.success(), "{}", text(&orphaned));
    assert!(text(&orphaned).contains("2 orphaned") && text(&orphaned).contains("group=ci-auto-docker"), "{}", text(&orphaned));
    let desired = boto(
        &m.url,
        "print(asg.describe_auto_scaling_groups(AutoScalingGroupNames=['ci-auto-docker'])['AutoScalingGroups'][0]['DesiredCapacity'])",
    );
    assert_eq!(desired, "0\n", "terminated with the group's capacity decremented");

    // Drift: a route sent elsewhere is put back; a different image is reported, not acted on.
    let drifted = AUTOSCALED.replace(
        "ci-master: {group: master, instance_type: t3.small, ami: ami-12c6146b}",
        "ci-master: {group: master, instance_type: t3.small, ami: ami-1e749f67}",
    );
    std::fs::write(d.join("group_vars/all.yaml"), &drifted).unwrap();
    boto(
        &m.url,
        "t = ec2.describe_route_tables(Filters=[{'Name': 'tag:provision:role', 'Values': ['private-routes']}])['RouteTables'][0]\n\
         ec2.delete_route(RouteTableId=t['RouteTableId'], DestinationCidrBlock='0.0.0.0/0')",
    );
    let drift = provision(d, &m.url, &["cloud", "plan"]);
    assert!(
        text(&drift).contains("! instance ci-master") && text(&drift).contains("the declared image is ami-1e749f67"),
        "{}",
        text(&drift)
    );
    assert!(text(&drift).contains("0.0.0.0/0 via the nat gateway instead of nothing"), "{}", text(&drift));
    assert!(text(&drift).contains("0 to create, 1 to update, 0 to destroy (1 drifted: replace by hand)"), "{}", text(&drift));
    std::fs::write(d.join("group_vars/all.yaml"), AUTOSCALED).unwrap();
    let fixed = provision(d, &m.url, &["cloud", "apply", "--yes"]);
    assert!(text(&fixed).contains("applied: 0 to create, 1 to update, 0 to destroy"), "{}", text(&fixed));

    // What runners leave behind: a machine in the VPC without the stack's tag, and the
    // `docker-machine` group the driver makes when it is not given one.
    boto(
        &m.url,
        "vpc = ec2.describe_vpcs(Filters=[{'Name': 'tag:provision:stack', 'Values': ['ci-auto']}])['Vpcs'][0]['VpcId']\n\
         sub = ec2.describe_subnets(Filters=[{'Name': 'tag:provision:role', 'Values': ['private']}])['Subnets'][0]['SubnetId']\n\
         ec2.create_security_group(GroupName='docker-machine', Description='made by docker-machine', VpcId=vpc)\n\
         ec2.run_instances(ImageId='ami-12c6146b', MinCount=1, MaxCount=1, SubnetId=sub, \
         TagSpecifications=[{'ResourceType': 'instance', 'Tags': [{'Key': 'provision:runner', 'Value': 'ci-machine'}]}])",
    );
    let destroy = provision(d, &m.url, &["cloud", "destroy", "--yes"]);
    assert!(destroy.status.success(), "{}", text(&destroy));
    for line in [
        "auto scaling group ci-auto-docker",
        "security group docker-machine",
        "runner ci-machine",
        "iam role ci-auto-worker",
        "log group /provision/ci-auto",
    ] {
        assert!(text(&destroy).contains(line), "{line} in {}", text(&destroy));
    }
    let left = boto(
        &m.url,
        "f = [{'Name': 'tag:provision:stack', 'Values': ['ci-auto']}]\n\
         live = [i for r in ec2.describe_instances()['Reservations'] for i in r['Instances'] if i['State']['Name'] != 'terminated' and {'Key': 'provision:stack', 'Value': 'other'} not in i.get('Tags', [])]\n\
         sgs = [g for g in ec2.describe_security_groups()['SecurityGroups'] if g['GroupName'] != 'default' and g.get('VpcId') and g['VpcId'] not in [v['VpcId'] for v in ec2.describe_vpcs()['Vpcs'] if v['IsDefault']]]\n\
         print(len(ec2.describe_vpcs(Filters=f)['Vpcs']), len(ec2.describe_subnets(Filters=f)['Subnets']), len(sgs), len(live), len(ec2.describe_addresses(Filters=f)['Addresses']))\n\
         print(len(asg.describe_auto_scaling_groups()['AutoScalingGroups']), len(ec2.describe_launch_templates()['LaunchTemplates']), len([e for e in ec2.describe_vpc_endpoints()['VpcEndpoints'] if e['State'] != 'deleted']))\n\
         print([r['RoleName'] for r in iam.list_roles()['Roles'] if r['RoleName'].startswith('ci-auto')], [p['InstanceProfileName'] for p in iam.list_instance_profiles()['InstanceProfiles']])\n\
         print([g['logGroupName'] for g in logs.describe_log_groups()['logGroups']], len(ec2.describe_key_pairs(Filters=f)['KeyPairs']))\n\
         print([i['State']['Name'] for r in ec2.describe_instances(Filters=[{'Name': 'tag:provision:runner', 'Values': ['ghost']}])['Reservations'] for i in r['Instances']])",
    );
    assert_eq!(left, "0 0 0 0 0\n0 0 0\n[] []\n[] 0\n['running']\n", "nothing of the stack is left; the other stack's instance is");
}

#[test]
fn static_cache_keys_stay_possible_and_secret() {
    let dir = tempfile::tempdir().unwrap();
    let vars = "cloud:\n  stack: ci-test\nrunner_cache_s3_bucket: ci-cache\nrunner_cache_s3_access_key: AKIAEXAMPLEKEY123\nrunner_cache_s3_secret_key: s3cr3t-Value-42\n";
    project(dir.path(), INVENTORY, vars);
    let o = provision(dir.path(), "http://127.0.0.1:9", &["-vvv", "inventory"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains("s3cr3t-Value-42") && !text(&o).contains("AKIAEXAMPLEKEY123"), "{}", text(&o));
    assert!(text(&o).contains("runner_cache_s3_secret_key"), "{}", text(&o));
}
