//! The IAM policy documents of a stack, derived from what it has: nothing is granted that no
//! part of the stack uses, and every grant AWS can scope to a resource is scoped to it.

use serde_json::{Value as Json, json};

use super::TAG_STACK;
use super::spec::CloudSpec;

/// Where the ARNs point: partition, region and account of the stack.
#[derive(Debug, Clone)]
pub struct Arns {
    /// `aws` (other partitions: `aws-cn`, `aws-us-gov`).
    pub partition: String,
    /// The stack's region.
    pub region: String,
    /// The account id (from an IAM role's ARN).
    pub account: String,
}

impl Arns {
    /// The ARN of an auto scaling group by name (any group id).
    pub fn asg(&self, name: &str) -> String {
        format!("arn:{}:autoscaling:{}:{}:autoScalingGroup:*:autoScalingGroupName/{name}", self.partition, self.region, self.account)
    }

    /// The ARN of one of the stack's IAM roles.
    pub fn role(&self, name: &str) -> String {
        format!("arn:{}:iam::{}:role/provision/{name}", self.partition, self.account)
    }

    fn ec2(&self, what: &str) -> String {
        format!("arn:{}:ec2:{}:{}:{what}", self.partition, self.region, self.account)
    }

    fn log_group(&self, name: &str) -> String {
        format!("arn:{}:logs:{}:{}:log-group:{name}", self.partition, self.region, self.account)
    }

    /// The account id in an ARN (`arn:aws:iam::123456789012:role/x`), with its partition.
    pub fn from_arn(arn: &str, region: &str) -> Option<Arns> {
        let parts: Vec<&str> = arn.split(':').collect();
        (parts.len() >= 6 && parts[0] == "arn").then(|| Arns {
            partition: parts[1].to_string(),
            region: region.to_string(),
            account: parts[4].to_string(),
        })
    }
}

/// Who may assume the stack's roles: EC2 instances only.
pub fn trust() -> Json {
    json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]
    })
}

/// The EC2 actions docker-machine's amazonec2 driver calls to find, start, tag and remove its
/// machines (read-only security group: it never creates or changes one).
const MACHINE_DESCRIBE: &[&str] = &[
    "ec2:DescribeAccountAttributes",
    "ec2:DescribeAvailabilityZones",
    "ec2:DescribeImages",
    "ec2:DescribeInstances",
    "ec2:DescribeKeyPairs",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSpotInstanceRequests",
    "ec2:DescribeSpotPriceHistory",
    "ec2:DescribeSubnets",
    "ec2:DescribeVpcs",
];
const MACHINE_CREATE: &[&str] = &[
    "ec2:CreateKeyPair",
    "ec2:ImportKeyPair",
    "ec2:DeleteKeyPair",
    "ec2:RunInstances",
    "ec2:CreateTags",
    "ec2:RequestSpotInstances",
    "ec2:CancelSpotInstanceRequests",
];
const MACHINE_LIFECYCLE: &[&str] = &["ec2:StartInstances", "ec2:StopInstances", "ec2:RebootInstances", "ec2:TerminateInstances"];

/// The inline policy of the masters (the runner managers), or `None` when they need no rights.
/// `worker_role`: the role docker+machine passes to its workers.
pub fn master(spec: &CloudSpec, arns: &Arns) -> Option<Json> {
    let mut st = Vec::new();
    if let Some(b) = &spec.bucket {
        st.push(json!({"Sid": "CacheList", "Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": format!("arn:{}:s3:::{}", arns.partition, b.name)}));
        st.push(json!({"Sid": "CacheObjects", "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": format!("arn:{}:s3:::{}/*", arns.partition, b.name)}));
    }
    if spec.docker_machine {
        st.push(json!({"Sid": "MachineDescribe", "Effect": "Allow", "Action": MACHINE_DESCRIBE, "Resource": "*"}));
        // RunInstances and CreateTags cannot be scoped to instances that do not exist yet.
        st.push(json!({"Sid": "MachineCreate", "Effect": "Allow", "Action": MACHINE_CREATE, "Resource": "*"}));
        st.push(json!({
            "Sid": "MachineLifecycle", "Effect": "Allow", "Action": MACHINE_LIFECYCLE, "Resource": arns.ec2("instance/*"),
            "Condition": {"StringEquals": {format!("ec2:ResourceTag/{TAG_STACK}"): spec.stack}}
        }));
        st.push(json!({
            "Sid": "MachinePassWorkerRole", "Effect": "Allow", "Action": ["iam:PassRole"], "Resource": arns.role(&format!("{}-worker", spec.stack)),
            "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}
        }));
    }
    if !spec.fleets.is_empty() {
        // As GitLab's fleeting AWS plugin documents it, scoped to the fleets' groups.
        let asgs: Vec<String> = spec.fleets.keys().map(|f| arns.asg(&spec.asg_name(f))).collect();
        let names: Vec<String> = spec.fleets.keys().map(|f| spec.asg_name(f)).collect();
        st.push(json!({"Sid": "FleetScale", "Effect": "Allow", "Action": ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"], "Resource": asgs}));
        st.push(json!({"Sid": "FleetDescribe", "Effect": "Allow", "Action": ["autoscaling:DescribeAutoScalingGroups", "ec2:DescribeInstances"], "Resource": "*"}));
        st.push(json!({
            "Sid": "FleetConnect", "Effect": "Allow", "Action": ["ec2:GetPasswordData", "ec2-instance-connect:SendSSHPublicKey"], "Resource": arns.ec2("instance/*"),
            "Condition": {"StringEquals": {"ec2:ResourceTag/aws:autoscaling:groupName": names}}
        }));
    }
    if let Some(g) = spec.log_group() {
        st.push(json!({
            "Sid": "Logs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            "Resource": [arns.log_group(&g), format!("{}:log-stream:*", arns.log_group(&g))]
        }));
    }
    (!st.is_empty()).then(|| json!({"Version": "2012-10-17", "Statement": st}))
}

/// Decodes a policy document as IAM returns it (URL-encoded JSON; some emulators send it plain).
pub fn decode(doc: &str) -> Option<Json> {
    if let Ok(j) = serde_json::from_str(doc) {
        return Some(j);
    }
    let bytes = doc.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    serde_json::from_slice(&out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_url_encoded_documents() {
        assert_eq!(decode("%7B%22a%22%3A%201%7D"), Some(json!({"a": 1})));
        assert_eq!(decode("{\"a\": 1}"), Some(json!({"a": 1})));
        assert_eq!(decode("%7"), None);
    }

    #[test]
    fn arns_from_a_role() {
        let a = Arns::from_arn("arn:aws:iam::123456789012:role/provision/ci-master", "eu-west-1").unwrap();
        assert_eq!(a.account, "123456789012");
        assert_eq!(a.asg("ci-fleet"), "arn:aws:autoscaling:eu-west-1:123456789012:autoScalingGroup:*:autoScalingGroupName/ci-fleet");
    }
}
