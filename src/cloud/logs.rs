//! The stack's CloudWatch log group (`/provision/<stack>`): runner logs that outlive the
//! machines that wrote them. Only the masters may write to it (see [`super::policy`]).

use super::{Action, CloudError, Run, TAG_BY, TAG_STACK, api};

async fn retention(run: &Run<'_>, name: &str) -> Result<Option<Option<i32>>, CloudError> {
    let r = run.c.logs.describe_log_groups().log_group_name_prefix(name).send().await.map_err(api("DescribeLogGroups"))?;
    Ok(r.log_groups().iter().find(|g| g.log_group_name() == Some(name)).map(|g| g.retention_in_days()))
}

/// Converges the log group and its retention.
pub async fn converge(run: &mut Run<'_>) -> Result<(), CloudError> {
    let (Some(name), Some(logs)) = (run.spec.log_group(), run.spec.logs.clone()) else { return Ok(()) };
    let c = run.c;
    let days = logs.retention_days;
    match retention(run, &name).await? {
        Some(Some(d)) if d == days => {
            run.note(Action::Ok, format!("log group {name}"));
            return Ok(());
        }
        Some(_) => run.note(Action::Update, format!("log group {name}: keep events {days} days")),
        None => {
            run.note(Action::Create, format!("log group {name} (events kept {days} days)"));
            if !run.dry_run {
                c.logs
                    .create_log_group()
                    .log_group_name(&name)
                    .tags(TAG_BY.0, TAG_BY.1)
                    .tags(TAG_STACK, &run.spec.stack)
                    .send()
                    .await
                    .map_err(api("CreateLogGroup"))?;
            }
        }
    }
    if !run.dry_run {
        c.logs.put_retention_policy().log_group_name(&name).retention_in_days(days).send().await.map_err(api("PutRetentionPolicy"))?;
    }
    Ok(())
}

/// Deletes the log group (and the logs in it).
pub async fn destroy(run: &mut Run<'_>) -> Result<(), CloudError> {
    // Named after the stack whether or not logs are still declared: a group left behind by an
    // earlier `logs:` setting goes too.
    let name = format!("/provision/{}", run.spec.stack);
    if retention(run, &name).await?.is_none() {
        return Ok(());
    }
    run.note(Action::Destroy, format!("log group {name} (and the logs in it)"));
    if !run.dry_run {
        run.c.logs.delete_log_group().log_group_name(&name).send().await.map_err(api("DeleteLogGroup"))?;
    }
    Ok(())
}
