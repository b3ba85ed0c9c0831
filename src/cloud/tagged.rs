//! The one pattern every EC2 resource of a stack follows: found by the stack's tags (and its
//! role in the stack), created with them when missing (a dry run only says so), and removed
//! by id on destroy.

use std::future::Future;

use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};

use super::spec::CloudSpec;
use super::{Action, CloudError, Run, TAG_BY, TAG_ROLE, TAG_STACK};

/// Placeholder for the id of something a dry run would create.
pub const NEW: &str = "(new)";

/// The stack's tags for a resource with `role` and `name`.
pub fn tags(spec: &CloudSpec, role: &str, name: &str) -> Vec<Tag> {
    [(TAG_BY.0, TAG_BY.1), (TAG_STACK, spec.stack.as_str()), (TAG_ROLE, role), ("Name", name)]
        .iter()
        .map(|(k, v)| Tag::builder().key(*k).value(*v).build())
        .collect()
}

/// The stack's tags as a creation-time tag specification.
pub fn tagged(spec: &CloudSpec, rt: ResourceType, role: &str, name: &str) -> TagSpecification {
    TagSpecification::builder().resource_type(rt).set_tags(Some(tags(spec, role, name))).build()
}

/// Filters for "this stack's, with this role".
pub fn ours(spec: &CloudSpec, role: Option<&str>) -> Vec<Filter> {
    let mut f = vec![Filter::builder().name(format!("tag:{TAG_STACK}")).values(&spec.stack).build()];
    if let Some(r) = role {
        f.push(Filter::builder().name(format!("tag:{TAG_ROLE}")).values(r).build());
    }
    f
}

/// A filter on one attribute.
pub fn filter(name: &str, values: &[&str]) -> Filter {
    Filter::builder().name(name).set_values(Some(values.iter().map(|v| v.to_string()).collect())).build()
}

/// The value of a tag.
pub fn tag_of<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter().find(|t| t.key() == Some(key)).and_then(|t| t.value())
}

/// Reports a resource the stack has (`found`: its id) as ok, or one it lacks as to create, and
/// creates it unless this is a dry run (then its id is [`NEW`]). `label` names it in the plan.
pub async fn ensure<F, Fut>(run: &mut Run<'_>, found: Option<String>, label: &str, create: F) -> Result<String, CloudError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<String, CloudError>>,
{
    match found {
        Some(id) => {
            run.note(Action::Ok, format!("{label} ({id})"));
            Ok(id)
        }
        None => {
            run.note(Action::Create, label);
            if run.dry_run { Ok(NEW.to_string()) } else { create().await }
        }
    }
}

/// Reports a resource as to destroy, and deletes it unless this is a dry run.
pub async fn remove<F, Fut>(run: &mut Run<'_>, label: String, delete: F) -> Result<(), CloudError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(), CloudError>>,
{
    run.note(Action::Destroy, label);
    if run.dry_run { Ok(()) } else { delete().await }
}
