//! A network interface that must not exist (e.g. the bridge of a removed docker daemon).

use super::{first_line, q};
use crate::engine::{Change, Resource};

/// An interface to delete when present.
#[derive(Debug, Clone)]
pub struct LinkAbsent {
    /// Interface name.
    pub name: String,
}

impl Resource for LinkAbsent {
    fn id(&self) -> String {
        format!("link {} (absent)", self.name)
    }

    fn probe(&self) -> String {
        format!("if ip link show {} >/dev/null 2>&1; then echo present; else echo absent; fi", q(&self.name))
    }

    fn plan(&self, state: &str) -> Result<Option<Change>, String> {
        match first_line(state).0 {
            "absent" => Ok(None),
            "present" => Ok(Some(Change::new(vec!["removed".into()], format!("ip link delete {}\n", q(&self.name))))),
            other => Err(format!("unexpected `{other}`")),
        }
    }
}
