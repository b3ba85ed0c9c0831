//! IAM: a role and an instance profile per kind of instance (masters, slaves, and docker+machine
//! workers), trusted by EC2 only, tagged with the stack, under the path `/provision/`; the
//! masters' inline policy derived from the stack ([`super::policy`]). A role of that name
//! without the stack's tag is an error, never adopted.

use aws_sdk_iam::types::Tag;
use serde_json::Value as Json;

use super::policy::{self, Arns};
use super::{Action, CloudError, Run, TAG_BY, TAG_STACK, api};

/// Path of every role and instance profile provision makes.
pub const PATH: &str = "/provision/";
/// Name of the inline policy on a role.
pub const POLICY: &str = "provision";

/// The instance kinds that get a role.
pub fn kinds(run: &Run<'_>) -> Vec<&'static str> {
    let mut k = vec!["master", "slave"];
    if run.spec.docker_machine {
        k.push("worker");
    }
    k
}

/// What the roles converged to.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Profiles {
    /// Instance profile names by kind (`master`, `slave`, `worker`).
    pub names: std::collections::BTreeMap<String, String>,
    /// The masters' policy as written (None: no policy needed).
    pub master_policy: Option<Json>,
}

fn stack_tags(run: &Run<'_>) -> Vec<Tag> {
    [(TAG_BY.0, TAG_BY.1), (TAG_STACK, run.spec.stack.as_str())]
        .iter()
        .filter_map(|(k, v)| Tag::builder().key(*k).value(*v).build().ok())
        .collect()
}

/// Whose a role of a given name is.
enum Owner {
    /// No such role.
    Missing,
    /// The stack's, with this ARN.
    Ours(String),
    /// Someone else's: never adopted, changed or removed.
    Foreign,
}

async fn owner(run: &Run<'_>, name: &str) -> Result<Owner, CloudError> {
    match run.c.iam.get_role().role_name(name).send().await {
        Ok(r) => Ok(match r.role() {
            Some(role) if role.tags().iter().any(|t| t.key() == TAG_STACK && t.value() == run.spec.stack) => {
                Owner::Ours(role.arn().to_string())
            }
            _ => Owner::Foreign,
        }),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_entity_exception()) => Ok(Owner::Missing),
        Err(e) => Err(api("GetRole")(e)),
    }
}

/// The role's ARN when it exists; an error when it exists but is another stack's.
async fn existing_role(run: &Run<'_>, name: &str) -> Result<Option<String>, CloudError> {
    match owner(run, name).await? {
        Owner::Missing => Ok(None),
        Owner::Ours(arn) => Ok(Some(arn)),
        Owner::Foreign => Err(CloudError::Api {
            call: "GetRole",
            message: format!("IAM role {name} exists but is not this stack's (no {TAG_STACK}={} tag)", run.spec.stack),
        }),
    }
}

/// Converges every kind's role, profile and policy.
pub async fn converge(run: &mut Run<'_>) -> Result<Profiles, CloudError> {
    let mut out = Profiles::default();
    for kind in kinds(run) {
        let name = run.name(kind);
        let arn = role(run, &name).await?;
        profile(run, &name).await?;
        let arns = arn.as_deref().and_then(|a| Arns::from_arn(a, &run.c.region));
        let wanted = match (kind, &arns) {
            ("master", Some(a)) => policy::master(run.spec, a),
            ("master", None) => {
                policy::master(run.spec, &Arns { partition: "aws".into(), region: run.c.region.clone(), account: "ACCOUNT".into() })
            }
            _ => None,
        };
        inline_policy(run, &name, arn.is_some(), wanted.as_ref()).await?;
        if kind == "master" {
            out.master_policy = wanted;
        }
        out.names.insert(kind.to_string(), name);
    }
    Ok(out)
}

async fn role(run: &mut Run<'_>, name: &str) -> Result<Option<String>, CloudError> {
    if let Some(arn) = existing_role(run, name).await? {
        run.note(Action::Ok, format!("iam role {name}"));
        return Ok(Some(arn));
    }
    run.note(Action::Create, format!("iam role {name} (trusted by ec2.amazonaws.com)"));
    if run.dry_run {
        return Ok(None);
    }
    let r = run
        .c
        .iam
        .create_role()
        .role_name(name)
        .path(PATH)
        .assume_role_policy_document(policy::trust().to_string())
        .description(format!("provision stack {}", run.spec.stack))
        .set_tags(Some(stack_tags(run)))
        .send()
        .await
        .map_err(api("CreateRole"))?;
    Ok(r.role().map(|r| r.arn().to_string()))
}

async fn profile(run: &mut Run<'_>, name: &str) -> Result<(), CloudError> {
    let c = run.c;
    let found = match c.iam.get_instance_profile().instance_profile_name(name).send().await {
        Ok(p) => p.instance_profile().map(|p| p.roles().iter().any(|r| r.role_name() == name)),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_entity_exception()) => None,
        Err(e) => return Err(api("GetInstanceProfile")(e)),
    };
    match found {
        Some(true) => run.note(Action::Ok, format!("instance profile {name}")),
        Some(false) => run.note(Action::Update, format!("instance profile {name}: add role {name}")),
        None => run.note(Action::Create, format!("instance profile {name}")),
    }
    if run.dry_run || found == Some(true) {
        return Ok(());
    }
    if found.is_none() {
        c.iam
            .create_instance_profile()
            .instance_profile_name(name)
            .path(PATH)
            .set_tags(Some(stack_tags(run)))
            .send()
            .await
            .map_err(api("CreateInstanceProfile"))?;
    }
    c.iam
        .add_role_to_instance_profile()
        .instance_profile_name(name)
        .role_name(name)
        .send()
        .await
        .map_err(api("AddRoleToInstanceProfile"))?;
    Ok(())
}

async fn inline_policy(run: &mut Run<'_>, role: &str, role_exists: bool, wanted: Option<&Json>) -> Result<(), CloudError> {
    let c = run.c;
    let current = if role_exists || !run.dry_run {
        match c.iam.get_role_policy().role_name(role).policy_name(POLICY).send().await {
            Ok(p) => policy::decode(p.policy_document()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_entity_exception()) => None,
            Err(e) => return Err(api("GetRolePolicy")(e)),
        }
    } else {
        None
    };
    match (wanted, &current) {
        (None, None) => return Ok(()),
        (Some(w), Some(cur)) if w == cur => {
            run.note(Action::Ok, format!("iam policy {role}/{POLICY}"));
            return Ok(());
        }
        (Some(w), cur) => {
            let sids: Vec<&str> = w["Statement"].as_array().into_iter().flatten().filter_map(|s| s["Sid"].as_str()).collect();
            let action = if cur.is_some() { Action::Update } else { Action::Create };
            run.note(action, format!("iam policy {role}/{POLICY} ({})", sids.join(", ")));
            if !run.dry_run {
                c.iam
                    .put_role_policy()
                    .role_name(role)
                    .policy_name(POLICY)
                    .policy_document(w.to_string())
                    .send()
                    .await
                    .map_err(api("PutRolePolicy"))?;
            }
        }
        (None, Some(_)) => {
            run.note(Action::Destroy, format!("iam policy {role}/{POLICY} (nothing in the stack needs it)"));
            if !run.dry_run {
                c.iam.delete_role_policy().role_name(role).policy_name(POLICY).send().await.map_err(api("DeleteRolePolicy"))?;
            }
        }
    }
    Ok(())
}

/// Removes the stack's roles, profiles and policies (only those tagged with the stack).
pub async fn destroy(run: &mut Run<'_>) -> Result<(), CloudError> {
    let c = run.c;
    for kind in ["master", "slave", "worker"] {
        let name = run.name(kind);
        // Another stack's role of that name is not ours to remove.
        let owned = matches!(owner(run, &name).await?, Owner::Ours(_));
        if let Ok(p) = c.iam.get_instance_profile().instance_profile_name(&name).send().await {
            let roles: Vec<String> =
                p.instance_profile().map(|p| p.roles().iter().map(|r| r.role_name().to_string()).collect()).unwrap_or_default();
            if owned || roles.is_empty() && p.instance_profile().is_some_and(|p| p.path() == PATH) {
                run.note(Action::Destroy, format!("instance profile {name}"));
                if !run.dry_run {
                    for r in &roles {
                        c.iam
                            .remove_role_from_instance_profile()
                            .instance_profile_name(&name)
                            .role_name(r)
                            .send()
                            .await
                            .map_err(api("RemoveRoleFromInstanceProfile"))?;
                    }
                    c.iam.delete_instance_profile().instance_profile_name(&name).send().await.map_err(api("DeleteInstanceProfile"))?;
                }
            }
        }
        if !owned {
            continue;
        }
        run.note(Action::Destroy, format!("iam role {name}"));
        if run.dry_run {
            continue;
        }
        let policies = c.iam.list_role_policies().role_name(&name).send().await.map_err(api("ListRolePolicies"))?;
        for p in policies.policy_names() {
            c.iam.delete_role_policy().role_name(&name).policy_name(p).send().await.map_err(api("DeleteRolePolicy"))?;
        }
        c.iam.delete_role().role_name(&name).send().await.map_err(api("DeleteRole"))?;
    }
    Ok(())
}
