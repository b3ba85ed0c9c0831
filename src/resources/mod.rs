//! Generic, idempotent resources the engine converges: files, directories, systemd units and
//! their state, docker images and containers, packages. Each reads its state with one sh snippet
//! that prints `key=value` lines ([`crate::sh::Kv`]), compares locally, and converges with
//! another; every script is built with [`crate::sh`], so every value is quoted.

pub mod check;
pub mod digest;
pub mod directory;
pub mod docker;
pub mod file;
pub mod image_archive;
pub mod netlink;
pub mod package;
pub mod service;
pub mod workload;

use crate::sh::{Cmd, Script};

/// Parses an octal mode as `stat -c %a` prints it (`644`) or as written in vars (`0644`).
pub fn parse_mode(mode: &str) -> Result<u32, String> {
    let m = mode.trim().trim_start_matches("0o");
    u32::from_str_radix(m, 8).ok().filter(|m| *m <= 0o7777).ok_or_else(|| format!("`{mode}` is not an octal file mode like 0644"))
}

/// Formats a mode the way users write it.
pub fn fmt_mode(mode: u32) -> String {
    format!("{mode:04o}")
}

/// sh that sets owner, group and mode of the path in the sh variable `var`, refusing a symbolic
/// link (which chmod would follow) and never following one with chown.
pub(crate) fn set_meta(script: &mut Script, var: &str, owner: &str, group: &str, mode: u32) {
    let path = format!("\"${var}\"");
    script.refuse_symlink(var);
    script.cmd(&Cmd::new("chown").arg("-h").end_of_options().arg(format!("{owner}:{group}")).raw(&path));
    script.cmd(&Cmd::new("chmod").end_of_options().arg(fmt_mode(mode)).raw(&path));
}

/// Refuses a path that is not absolute (a relative one would depend on the remote directory
/// and could start with `-`), that climbs with `..` (a name from the vars must not leave the
/// directory it was put in), or that holds a control character or a backslash.
pub(crate) fn check_absolute(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("`{path}` is not an absolute path"));
    }
    // A backslash would be escaped in `sha256sum`'s output, which the batched probe reads.
    if path.split('/').any(|c| c == "..") || path.chars().any(|c| c.is_control() || c == '\\') {
        return Err(format!("`{}` is not a plain absolute path (no `..`, no control characters, no backslash)", path.escape_debug()));
    }
    Ok(())
}
