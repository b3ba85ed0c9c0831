//! The runner cache bucket: encrypted, public access blocked, cache objects expiring after N
//! days, tagged with the stack. A bucket of that name that is not this stack's is an error,
//! never adopted.

use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, BucketLocationConstraint, CreateBucketConfiguration, ExpirationStatus, LifecycleExpiration,
    LifecycleRule, LifecycleRuleFilter, PublicAccessBlockConfiguration, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule, Tag, Tagging,
};

use super::client::Clients;
use super::spec::{Bucket, CloudSpec};
use super::{Action, Change, CloudError, Run, TAG_BY, TAG_STACK, api};

const RULE_ID: &str = "provision-expire-cache";

fn built(call: &'static str) -> impl FnOnce(aws_sdk_s3::error::BuildError) -> CloudError {
    move |e| CloudError::Api { call, message: e.to_string() }
}

/// Whether the bucket exists, and if so whether it carries this stack's tag.
async fn ownership(c: &Clients, spec: &CloudSpec, name: &str) -> Result<Option<bool>, CloudError> {
    if c.s3.head_bucket().bucket(name).send().await.is_err() {
        return Ok(None);
    }
    let tags = match c.s3.get_bucket_tagging().bucket(name).send().await {
        Ok(t) => t.tag_set().to_vec(),
        Err(_) => Vec::new(),
    };
    Ok(Some(tags.iter().any(|t| t.key() == TAG_STACK && t.value() == spec.stack)))
}

/// Converges the bucket and its settings.
pub async fn converge(run: &mut Run<'_>) -> Result<(), CloudError> {
    let (c, spec, dry_run, changes) = (run.c, run.spec, run.dry_run, &mut run.changes);
    let Some(b) = &spec.bucket else { return Ok(()) };
    let mut created = false;
    match ownership(c, spec, &b.name).await? {
        Some(false) => {
            return Err(CloudError::Api {
                call: "HeadBucket",
                message: format!(
                    "bucket {} exists but is not this stack's (no {TAG_STACK}={} tag): choose another name",
                    b.name, spec.stack
                ),
            });
        }
        Some(true) => {}
        None => {
            changes.push(Change::new(
                Action::Create,
                format!("bucket {} (encrypted, private, cache expires after {} days)", b.name, b.expire_days),
            ));
            if dry_run {
                return Ok(());
            }
            let mut create = c.s3.create_bucket().bucket(&b.name);
            // us-east-1 is the one region that takes no location constraint.
            if c.region != "us-east-1" {
                create = create.create_bucket_configuration(
                    CreateBucketConfiguration::builder().location_constraint(BucketLocationConstraint::from(c.region.as_str())).build(),
                );
            }
            create.send().await.map_err(api("CreateBucket"))?;
            let tags = [(TAG_BY.0, TAG_BY.1), (TAG_STACK, spec.stack.as_str())]
                .iter()
                .map(|(k, v)| Tag::builder().key(*k).value(*v).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(built("PutBucketTagging"))?;
            c.s3.put_bucket_tagging()
                .bucket(&b.name)
                .tagging(Tagging::builder().set_tag_set(Some(tags)).build().map_err(built("PutBucketTagging"))?)
                .send()
                .await
                .map_err(api("PutBucketTagging"))?;
            created = true;
        }
    }
    settings(c, b, dry_run, created, changes).await
}

/// Encryption, public access block and expiry: each checked, and set when it differs (a new
/// bucket's are part of its creation, not reported again).
async fn settings(c: &Clients, b: &Bucket, dry_run: bool, created: bool, changes: &mut Vec<Change>) -> Result<(), CloudError> {
    let encrypted =
        c.s3.get_bucket_encryption()
            .bucket(&b.name)
            .send()
            .await
            .is_ok_and(|r| r.server_side_encryption_configuration().is_some_and(|c| !c.rules().is_empty()));
    let blocked = c.s3.get_public_access_block().bucket(&b.name).send().await.is_ok_and(|r| {
        r.public_access_block_configuration().is_some_and(|p| {
            p.block_public_acls() == Some(true)
                && p.ignore_public_acls() == Some(true)
                && p.block_public_policy() == Some(true)
                && p.restrict_public_buckets() == Some(true)
        })
    });
    let expiring = c.s3.get_bucket_lifecycle_configuration().bucket(&b.name).send().await.is_ok_and(|r| {
        r.rules().iter().any(|rule| rule.id() == Some(RULE_ID) && rule.expiration().and_then(|e| e.days()) == Some(b.expire_days))
    });
    let mut fix = Vec::new();
    if !encrypted {
        fix.push("encryption");
    }
    if !blocked {
        fix.push("public access block");
    }
    if !expiring {
        fix.push("cache expiry");
    }
    if fix.is_empty() {
        if !created {
            changes.push(Change::new(Action::Ok, format!("bucket {}", b.name)));
        }
        return Ok(());
    }
    if !created {
        changes.push(Change::new(Action::Update, format!("bucket {}: {}", b.name, fix.join(", "))));
    }
    if dry_run {
        return Ok(());
    }
    if !encrypted {
        let default = ServerSideEncryptionByDefault::builder()
            .sse_algorithm(ServerSideEncryption::Aes256)
            .build()
            .map_err(built("PutBucketEncryption"))?;
        let conf = ServerSideEncryptionConfiguration::builder()
            .rules(ServerSideEncryptionRule::builder().apply_server_side_encryption_by_default(default).build())
            .build()
            .map_err(built("PutBucketEncryption"))?;
        c.s3.put_bucket_encryption()
            .bucket(&b.name)
            .server_side_encryption_configuration(conf)
            .send()
            .await
            .map_err(api("PutBucketEncryption"))?;
    }
    if !blocked {
        let conf = PublicAccessBlockConfiguration::builder()
            .block_public_acls(true)
            .ignore_public_acls(true)
            .block_public_policy(true)
            .restrict_public_buckets(true)
            .build();
        c.s3.put_public_access_block()
            .bucket(&b.name)
            .public_access_block_configuration(conf)
            .send()
            .await
            .map_err(api("PutPublicAccessBlock"))?;
    }
    if !expiring {
        let rule = LifecycleRule::builder()
            .id(RULE_ID)
            .status(ExpirationStatus::Enabled)
            .filter(LifecycleRuleFilter::builder().prefix("").build())
            .expiration(LifecycleExpiration::builder().days(b.expire_days).build())
            .build()
            .map_err(built("PutBucketLifecycleConfiguration"))?;
        let conf = BucketLifecycleConfiguration::builder().rules(rule).build().map_err(built("PutBucketLifecycleConfiguration"))?;
        c.s3.put_bucket_lifecycle_configuration()
            .bucket(&b.name)
            .lifecycle_configuration(conf)
            .send()
            .await
            .map_err(api("PutBucketLifecycleConfiguration"))?;
    }
    Ok(())
}

/// Empties and deletes the bucket, if it is this stack's.
pub async fn destroy(run: &mut Run<'_>) -> Result<(), CloudError> {
    let (c, spec, dry_run, changes) = (run.c, run.spec, run.dry_run, &mut run.changes);
    let Some(b) = &spec.bucket else { return Ok(()) };
    if ownership(c, spec, &b.name).await? != Some(true) {
        return Ok(());
    }
    changes.push(Change::new(Action::Destroy, format!("bucket {} (and the cache in it)", b.name)));
    if dry_run {
        return Ok(());
    }
    loop {
        let list = c.s3.list_objects_v2().bucket(&b.name).send().await.map_err(api("ListObjectsV2"))?;
        if list.contents().is_empty() {
            break;
        }
        for o in list.contents() {
            if let Some(k) = o.key() {
                c.s3.delete_object().bucket(&b.name).key(k).send().await.map_err(api("DeleteObject"))?;
            }
        }
    }
    c.s3.delete_bucket().bucket(&b.name).send().await.map_err(api("DeleteBucket"))?;
    Ok(())
}
