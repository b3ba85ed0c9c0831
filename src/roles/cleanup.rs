//! Cleanup: a systemd service that prunes unused Docker data, and a timer that runs it.

use super::{Role, RoleContext};
use crate::engine::{Desired, Step};
use crate::error::InputError;
use crate::resources::service::{Service, restart_script, unit_file};
use crate::vars::schema::{Kind, VarSpec};

/// The cleanup role.
pub const ROLE: Role = Role {
    name: "cleanup",
    defaults: "cleanup_on_calendar: hourly\ncleanup_prune_filter: until=1h\ncleanup_prune_all: true\n",
    specs: &[
        VarSpec { name: "cleanup_on_calendar", kind: Kind::Str, doc: "when the cleanup timer fires (systemd OnCalendar, default hourly)" },
        VarSpec {
            name: "cleanup_prune_filter",
            kind: Kind::Str,
            doc: "docker prune filter (default until=1h: only data unused for an hour)",
        },
        VarSpec { name: "cleanup_prune_all", kind: Kind::Bool, doc: "also prune unused (not only dangling) images (default true)" },
    ],
    build,
};

const SERVICE: &str = include_str!("templates/docker-cleanup.service.j2");
const TIMER: &str = include_str!("templates/docker-cleanup.timer.j2");

/// A oneshot service running `exec_start`, and its timer, enabled and active.
fn pair(
    ctx: &RoleContext,
    desired: &mut Desired,
    name: &str,
    description: &str,
    exec_start: &str,
    requires: &str,
) -> Result<(), InputError> {
    let mut extra = serde_json::Map::new();
    extra.insert("requires".into(), requires.into());
    extra.insert("description".into(), description.into());
    extra.insert("exec_start".into(), exec_start.into());
    let service = ctx.render_with(&format!("{name}.service"), SERVICE, extra.clone())?;
    let timer = ctx.render_with(&format!("{name}.timer"), TIMER, extra)?;
    let restart_timer = format!("restart {name}.timer");
    let s = unit_file(desired, &format!("{name}.service"), service);
    desired.steps.push(s);
    let t = unit_file(desired, &format!("{name}.timer"), timer).notify(&restart_timer);
    desired.steps.push(t);
    desired.handler(&restart_timer, &restart_script(&format!("{name}.timer"), true));
    desired.steps.push(Step::new(Service::running(&format!("{name}.timer"))));
    Ok(())
}

fn build(ctx: &RoleContext, desired: &mut Desired) -> Result<(), InputError> {
    for name in ["cleanup_on_calendar", "cleanup_prune_filter"] {
        let value = ctx.str(name);
        if value.is_empty() || value.contains(['"', '\\', '\n', '%']) {
            let msg =
                format!("`{name}` must be a non-empty value without quotes, backslashes, % or newlines (it goes into a systemd unit)");
            return Err(ctx.error_at(name, msg, "not allowed here"));
        }
    }
    let prune = format!(
        "system prune --force{} --filter \"{}\"",
        if ctx.var("cleanup_prune_all").as_bool().unwrap_or(true) { " --all" } else { "" },
        ctx.str("cleanup_prune_filter")
    );
    // Builds run on the dedicated CI daemon when there is one: that is the one to prune.
    let (target, unit) = if super::docker_tls::ci_daemon_enabled(ctx.host) {
        (format!("docker -H unix://{}", super::docker_tls::CI_SOCKET), "docker-ci.service")
    } else {
        ("docker".to_string(), "docker.service")
    };
    pair(ctx, desired, "docker-cleanup", "Prune unused Docker data", &format!("{target} {prune}"), unit)?;
    if super::has_role(ctx.host, super::dind::ROLE.name) {
        // Inside the dind container, against its own engine.
        let exec = format!("docker exec {} docker -H unix://{} {prune}", super::dind::CONTAINER, super::dind::SOCKET_IN_CONTAINER);
        pair(ctx, desired, "docker-cleanup-dind", "Prune unused data of the dind engine", &exec, "docker.service")?;
    }
    Ok(())
}
