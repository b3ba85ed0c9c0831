//! Cleanup: a systemd service that prunes unused Docker data, and a timer that runs it; a
//! second pair prunes the dind engine when the host has one.

use serde::Deserialize;
use serde_json::json;

use super::owned::{CleanupUnit, Owned};
use super::topology::{DIND_CONTAINER, DindEngine, HOST_UNIT, HostFacts};
use super::{Role, RoleContext, typed};
use crate::engine::{Desired, Step};
use crate::error::InputError;
use crate::resources::check::Check;
use crate::resources::service::{Service, restart_script, unit_file};
use crate::vars::resolve::HostVars;
use crate::vars::schema::{Kind, VarSpec};

/// The cleanup role.
pub const ROLE: Role = Role {
    name: "cleanup",
    defaults: "cleanup_on_calendar: hourly\ncleanup_prune_filter: until=1h\ncleanup_prune_all: true\n",
    specs: SPECS,
    build,
    owns,
};

const SPECS: &[VarSpec] = &[
    VarSpec { name: "cleanup_on_calendar", kind: Kind::Str, doc: "when the cleanup timer fires (systemd OnCalendar, default hourly)" },
    VarSpec { name: "cleanup_prune_filter", kind: Kind::Str, doc: "docker prune filter (default until=1h: only data unused for an hour)" },
    VarSpec { name: "cleanup_prune_all", kind: Kind::Bool, doc: "also prune unused (not only dangling) images (default true)" },
];

/// The service pruning the daemon builds run on.
const UNIT: &str = "docker-cleanup";
/// The service pruning the dind engine.
const DIND_UNIT: &str = "docker-cleanup-dind";

/// The cleanup role's vars.
#[derive(Debug, Clone, Deserialize)]
pub struct Vars {
    /// systemd `OnCalendar` of the timers.
    pub cleanup_on_calendar: String,
    /// `docker system prune --filter` value.
    pub cleanup_prune_filter: String,
    /// Prune unused images too, not only dangling ones.
    pub cleanup_prune_all: bool,
}

impl Vars {
    /// Reads and checks the role's vars: both values go into systemd unit lines.
    pub fn read(vars: &HostVars) -> Result<Self, InputError> {
        let v: Vars = typed::from_vars(vars, SPECS)?;
        for (name, value) in [("cleanup_on_calendar", &v.cleanup_on_calendar), ("cleanup_prune_filter", &v.cleanup_prune_filter)] {
            if value.is_empty() || value.contains(['"', '\\', '\n', '%']) {
                let msg =
                    format!("`{name}` must be a non-empty value without quotes, backslashes, % or newlines (it goes into a systemd unit)");
                typed::check_at(vars, name, Err(msg))?;
            }
        }
        Ok(v)
    }

    /// The prune arguments (a systemd command line, not sh: the filter is double-quoted, and
    /// checked to contain no quote, backslash or `%`).
    fn prune(&self) -> String {
        format!("system prune --force{} --filter \"{}\"", if self.cleanup_prune_all { " --all" } else { "" }, self.cleanup_prune_filter)
    }
}

const SERVICE: &str = include_str!("templates/docker-cleanup.service.j2");
const TIMER: &str = include_str!("templates/docker-cleanup.timer.j2");

/// A oneshot service running `exec_start`, and its timer, enabled and active.
fn pair(
    ctx: &RoleContext,
    v: &Vars,
    desired: &mut Desired,
    name: &str,
    description: &str,
    exec_start: &str,
    requires: &str,
) -> Result<(), InputError> {
    let values = json!({
        "requires": requires,
        "description": description,
        "exec_start": exec_start,
        "cleanup_on_calendar": v.cleanup_on_calendar,
    });
    let values = values.as_object().expect("an object").clone();
    let service = ctx.render(&format!("{name}.service"), SERVICE, values.clone())?;
    let timer = ctx.render(&format!("{name}.timer"), TIMER, values)?;
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
    let v = ctx.facts.cleanup.as_ref().expect("cleanup vars of a cleanup host");
    let prune = v.prune();
    // Builds run on the dedicated CI daemon when there is one: that is the one to prune.
    let topology = ctx.topology();
    let target = topology.build_daemon().cli();
    // systemd would refuse a bad expression only when the timer loads: check it while probing.
    let timer = format!("/etc/systemd/system/{UNIT}.timer");
    desired.steps.push(Step::new(Check::systemd_calendar("cleanup_on_calendar", &v.cleanup_on_calendar, &timer)));
    pair(ctx, v, desired, UNIT, "Prune unused Docker data", &format!("{target} {prune}"), topology.build_unit())?;
    if topology.dind.is_some() {
        // Inside the dind container, against its own engine.
        let exec = format!("docker exec {DIND_CONTAINER} docker -H unix://{} {prune}", DindEngine::socket_in_container());
        pair(ctx, v, desired, DIND_UNIT, "Prune unused data of the dind engine", &exec, HOST_UNIT)?;
    }
    Ok(())
}

fn owns(host: &HostFacts, owned: &mut Owned) {
    owned.log(Some("cleanup"), format!("{UNIT}.service"), false);
    owned.cleanup.push(CleanupUnit { unit: format!("{UNIT}.service"), dind: false });
    if host.topology.dind.is_some() {
        owned.log(Some("dind-cleanup"), format!("{DIND_UNIT}.service"), false);
        owned.cleanup.push(CleanupUnit { unit: format!("{DIND_UNIT}.service"), dind: true });
    }
}
