//! config.toml as a deferred step: its content depends on the tokens already on the host and on
//! what GitLab says of them, so it is resolved after the probe has read the current file.
//!
//! Per runner: a token GitLab still verifies is kept; a missing or rejected one is replaced by
//! registering the runner (never a duplicate). Runners gone from the vars are deleted from GitLab
//! once the new file is on the host; runners created for a file that did not land are deleted
//! again, so a failed apply leaves no orphan behind.

use std::sync::Mutex;

use super::config_toml::{self, Existing};
use super::spec::PlannedRunner;
use crate::engine::{BoxFuture, Deferred, Resolved};
use crate::gitlab::{Client, check_runner, ensure_runner};
use crate::resources::file::File;
use crate::vars::secret::Redactor;

/// Stands for a token that a real apply would obtain (check mode creates nothing).
const TOKEN_TO_COME: &str = "(registered on apply)";

/// The config.toml of one host and the runners in it.
pub struct RunnerConfig {
    path: String,
    concurrent: u32,
    check_interval: u32,
    runners: Vec<PlannedRunner>,
    outcome: Mutex<Outcome>,
}

/// What the last `resolve` did in GitLab, for `finish`.
#[derive(Default)]
struct Outcome {
    /// Runners created: (name, url, token).
    created: Vec<(String, String, String)>,
    /// Runners to delete once the file is written: (name, what the host had).
    removed: Vec<(String, Existing)>,
}

impl RunnerConfig {
    /// config.toml at `path` with these runners.
    pub fn new(path: String, concurrent: u32, check_interval: u32, runners: Vec<PlannedRunner>) -> Self {
        RunnerConfig { path, concurrent, check_interval, runners, outcome: Mutex::new(Outcome::default()) }
    }

    async fn resolve_now(&self, current: Option<&[u8]>, check: bool) -> Result<Resolved, String> {
        let current = current.map(|c| String::from_utf8_lossy(c).into_owned());
        let existing = current.as_deref().map(config_toml::tokens).unwrap_or_default();
        existing.values().for_each(|e| Redactor::add(&e.token));
        let mut notes = Vec::new();
        let mut outcome = Outcome::default();
        let mut sections = Vec::new();
        for r in &self.runners {
            let (name, url) = (&r.section.name, &r.section.url);
            let client = Client::new(url);
            let had = existing.get(name);
            // A token from another GitLab means nothing to this one: that runner is replaced.
            let have = had.filter(|e| &e.url == url).map(|e| e.token.as_str());
            if let Some(old) = had.filter(|e| &e.url != url) {
                outcome.removed.push((name.clone(), old.clone()));
            }
            let token = if check {
                match check_runner(&client, have, &r.registration, &r.spec).await {
                    Ok(Some(t)) => t,
                    Ok(None) => {
                        notes.push(format!("runner `{name}` would be registered with {url}"));
                        TOKEN_TO_COME.to_string()
                    }
                    Err(e) => return Err(format!("runner `{name}`: {e}")),
                }
            } else {
                match ensure_runner(&client, have, &r.registration, &r.spec).await {
                    Ok(e) => {
                        if e.created {
                            notes.push(format!("runner `{name}` registered with {url}"));
                            outcome.created.push((name.clone(), url.clone(), e.token.clone()));
                        }
                        e.token
                    }
                    Err(e) => {
                        // Runners created for this file would never be used: undo them.
                        let mut msg = format!("runner `{name}`: {e}");
                        for undone in delete_all(outcome.created.iter().map(|(n, u, t)| (n.as_str(), u.as_str(), t.as_str()))).await {
                            msg.push_str(&format!("; {undone}"));
                        }
                        return Err(msg);
                    }
                }
            };
            let mut section = r.section.clone();
            section.token = token;
            sections.push(section);
        }
        for (name, e) in &existing {
            if !self.runners.iter().any(|r| &r.section.name == name) {
                outcome.removed.push((name.clone(), e.clone()));
            }
        }
        for (name, _) in &outcome.removed {
            notes.push(format!("runner `{name}` {} from GitLab", if check { "would be deleted" } else { "to be deleted" }));
        }
        let content = config_toml::render(self.concurrent, self.check_interval, &sections);
        let shown_old = config_toml::redacted(current.as_deref().unwrap_or(""));
        let shown_new = config_toml::redacted(&content);
        *self.outcome.lock().expect("outcome lock") = outcome;
        let file = File::new(&self.path, content).mode(0o600).secret().redacted_view(shown_old, shown_new);
        Ok(Resolved { resource: Box::new(file), notes })
    }

    async fn finish_now(&self, applied: Option<bool>) -> Vec<String> {
        let outcome = std::mem::take(&mut *self.outcome.lock().expect("outcome lock"));
        match applied {
            Some(true) => delete_all(outcome.removed.iter().map(|(n, e)| (n.as_str(), e.url.as_str(), e.token.as_str()))).await,
            Some(false) => {
                let undone = delete_all(outcome.created.iter().map(|(n, u, t)| (n.as_str(), u.as_str(), t.as_str()))).await;
                undone.into_iter().map(|n| format!("{n} (config.toml was not written)")).collect()
            }
            None if !outcome.created.is_empty() => {
                vec!["runners were registered but whether config.toml was written is unknown; the next apply checks".into()]
            }
            None => Vec::new(),
        }
    }
}

/// Deletes runners from GitLab; one note per runner.
async fn delete_all<'a>(runners: impl Iterator<Item = (&'a str, &'a str, &'a str)>) -> Vec<String> {
    let mut notes = Vec::new();
    for (name, url, token) in runners {
        if url.is_empty() {
            notes.push(format!("runner `{name}` has no url in config.toml: delete it in GitLab's UI"));
            continue;
        }
        notes.push(match Client::new(url).delete_runner(token).await {
            Ok(()) => format!("runner `{name}` deleted from {url}"),
            Err(e) => format!("could not delete runner `{name}` from GitLab ({e}): delete it in GitLab's UI"),
        });
    }
    notes
}

impl Deferred for RunnerConfig {
    fn reads(&self) -> String {
        self.path.clone()
    }

    fn resolve<'a>(&'a self, current: Option<&'a [u8]>, check: bool) -> BoxFuture<'a, Result<Resolved, String>> {
        Box::pin(self.resolve_now(current, check))
    }

    fn finish(&self, applied: Option<bool>) -> BoxFuture<'_, Vec<String>> {
        Box::pin(self.finish_now(applied))
    }
}
