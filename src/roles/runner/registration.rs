//! config.toml as a deferred step: its content depends on the tokens already on the host and on
//! what GitLab says of them, so it is resolved after the probe has read the current file.
//!
//! Per runner: a token GitLab still verifies is kept; a missing or rejected one is replaced by
//! registering the runner (never a duplicate). Runners gone from the vars are deleted from GitLab
//! once the new file is on the host; runners created for a file that did not land are deleted
//! again, so a failed apply leaves no orphan behind.
//!
//! Deleting is destructive and is asked for first (`--yes` without a terminal), and it happens
//! only at GitLab URLs the vars name: the host's config.toml is the host's word, and a
//! compromised host must not choose where this machine sends runner tokens.

use std::sync::Mutex;

use super::config_toml::{self, Existing};
use super::spec::PlannedRunner;
use crate::engine::{BoxFuture, Deferred, Resolved};
use crate::gitlab::{Client, Settings, check_runner, ensure_runner};
use crate::resources::file::File;
use crate::vars::secret::Redactor;

/// Stands for a token that a real apply would obtain (check mode creates nothing).
const TOKEN_TO_COME: &str = "(registered on apply)";

/// Where this host's runners live in GitLab, from the vars.
#[derive(Debug, Clone, Default)]
pub struct GitlabVars {
    /// The host (for questions and messages).
    pub host: String,
    /// `gitlab_allow_http`, `gitlab_ca_file`.
    pub settings: Settings,
    /// `gitlab_url`: besides the runners' own URLs, the one GitLab deletions may go to.
    pub gitlab_url: String,
}

/// The config.toml of one host and the runners in it.
pub struct RunnerConfig {
    path: String,
    concurrent: u32,
    check_interval: u32,
    runners: Vec<PlannedRunner>,
    gitlab: GitlabVars,
    outcome: Mutex<Outcome>,
    /// One HTTP client for every runner's requests, built while the probe runs.
    http: crate::gitlab::http::SharedClient,
}

/// What the last `resolve` did in GitLab, for `finish`.
#[derive(Default)]
struct Outcome {
    /// Runners created: (name, url, token).
    created: Vec<(String, String, String)>,
    /// Runners to delete once the file is written: (name, what the host had).
    removed: Vec<(String, Existing)>,
}

/// The same GitLab, whatever trailing slash or letter case the host part was written with.
fn same_gitlab(a: &str, b: &str) -> bool {
    a.trim_end_matches('/').eq_ignore_ascii_case(b.trim_end_matches('/'))
}

impl RunnerConfig {
    /// config.toml at `path` with these runners, registered with the GitLab(s) in `gitlab`.
    pub fn new(path: String, concurrent: u32, check_interval: u32, runners: Vec<PlannedRunner>, gitlab: GitlabVars) -> Self {
        RunnerConfig {
            path,
            concurrent,
            check_interval,
            runners,
            gitlab,
            outcome: Mutex::new(Outcome::default()),
            http: Default::default(),
        }
    }

    /// Whether `url` is a GitLab the vars name (where deleting runners may happen).
    fn in_vars(&self, url: &str) -> bool {
        same_gitlab(url, &self.gitlab.gitlab_url) || self.runners.iter().any(|r| same_gitlab(url, &r.section.url))
    }

    /// The runners of the host's file that this run removes: gone from the vars, or registered
    /// with another GitLab than the vars now say. Those at a URL the vars do not name are kept
    /// out (with a note): nothing is sent there.
    fn removals(&self, existing: &std::collections::BTreeMap<String, Existing>, notes: &mut Vec<String>) -> Vec<(String, Existing)> {
        let mut removed = Vec::new();
        for (name, e) in existing {
            let wanted = self.runners.iter().find(|r| &r.section.name == name);
            if wanted.is_some_and(|r| same_gitlab(&r.section.url, &e.url)) {
                continue;
            }
            if e.url.is_empty() || self.in_vars(&e.url) {
                removed.push((name.clone(), e.clone()));
            } else {
                notes.push(format!(
                    "runner `{name}` in the host's config.toml is registered at {}, a GitLab the vars do not name: not deleted there (delete it in that GitLab's UI if it is yours)",
                    e.url
                ));
            }
        }
        removed
    }

    /// Asks before runners are deleted from GitLab (`--yes` answers for scripts).
    async fn confirm_removals(&self, removed: &[(String, Existing)]) -> Result<(), String> {
        if removed.is_empty() {
            return Ok(());
        }
        let names = removed.iter().map(|(n, _)| format!("`{n}`")).collect::<Vec<_>>().join(", ");
        let question = format!("{}: delete runner(s) {names}, removed from the vars, from GitLab?", self.gitlab.host);
        let answer = tokio::task::spawn_blocking(move || crate::confirm::confirm(&question)).await;
        match answer {
            Ok(Ok(())) => Ok(()),
            Ok(Err(why)) => Err(format!(
                "runner(s) {names} were removed from the vars and apply would delete them from GitLab, but {why}; config.toml was left as it is"
            )),
            Err(e) => Err(format!("asking for confirmation failed: {e}")),
        }
    }

    async fn resolve_now(&self, current: Option<&[u8]>, check: bool) -> Result<Resolved, String> {
        let current = current.map(|c| String::from_utf8_lossy(c).into_owned());
        let existing = current.as_deref().map(config_toml::tokens).unwrap_or_default();
        existing.values().for_each(|e| Redactor::add(&e.token));
        let mut notes = Vec::new();
        let mut outcome = Outcome { removed: self.removals(&existing, &mut notes), ..Outcome::default() };
        // Before anything is created in GitLab: a refusal then leaves nothing behind.
        if !check {
            self.confirm_removals(&outcome.removed).await?;
        }
        let mut sections = Vec::new();
        for r in &self.runners {
            let (name, url) = (&r.section.name, &r.section.url);
            let client = Client::with_shared(url, &self.gitlab.settings, &self.http).map_err(|e| format!("runner `{name}`: {e}"))?;
            // A token from another GitLab means nothing to this one: that runner is replaced.
            let have = existing.get(name).filter(|e| same_gitlab(&e.url, url)).map(|e| e.token.as_str());
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
                        let created = outcome.created.iter().map(|(n, u, t)| (n.as_str(), u.as_str(), t.as_str()));
                        for undone in delete_all(&self.gitlab.settings, created).await {
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
        for (name, _) in &outcome.removed {
            notes.push(if check {
                format!("runner `{name}` would be deleted from GitLab (apply asks first; --yes without a terminal)")
            } else {
                format!("runner `{name}` to be deleted from GitLab")
            });
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
            Some(true) => {
                let removed = outcome.removed.iter().map(|(n, e)| (n.as_str(), e.url.as_str(), e.token.as_str()));
                delete_all(&self.gitlab.settings, removed).await
            }
            Some(false) => {
                let created = outcome.created.iter().map(|(n, u, t)| (n.as_str(), u.as_str(), t.as_str()));
                let undone = delete_all(&self.gitlab.settings, created).await;
                undone.into_iter().map(|n| format!("{n} (config.toml was not written)")).collect()
            }
            None if !outcome.created.is_empty() => {
                vec!["runners were registered but whether config.toml was written is unknown; the next apply checks".into()]
            }
            None => Vec::new(),
        }
    }
}

/// Deletes runners from GitLab (URLs already checked against the vars); one note per runner.
async fn delete_all<'a>(settings: &Settings, runners: impl Iterator<Item = (&'a str, &'a str, &'a str)>) -> Vec<String> {
    let mut notes = Vec::new();
    for (name, url, token) in runners {
        if url.is_empty() {
            notes.push(format!("runner `{name}` has no url in config.toml: delete it in GitLab's UI"));
            continue;
        }
        let deleted = match Client::new(url, settings) {
            Ok(client) => client.delete_runner(token).await,
            Err(e) => Err(e),
        };
        notes.push(match deleted {
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

    fn prepare(&self) {
        self.http.prepare(&self.gitlab.settings);
    }

    fn resolve<'a>(&'a self, current: Option<&'a [u8]>, check: bool) -> BoxFuture<'a, Result<Resolved, String>> {
        Box::pin(self.resolve_now(current, check))
    }

    fn finish(&self, applied: Option<bool>) -> BoxFuture<'_, Vec<String>> {
        Box::pin(self.finish_now(applied))
    }
}

/// The GitLab vars of a host: `gitlab_url`, `gitlab_allow_http`, `gitlab_ca_file` (relative to
/// the inventory).
pub fn gitlab_vars(ctx: &crate::roles::RoleContext) -> GitlabVars {
    let v = super::vars(ctx);
    let ca = &v.gitlab_ca_file;
    GitlabVars {
        host: ctx.name().to_string(),
        settings: Settings { allow_http: v.gitlab_allow_http, ca_file: (!ca.is_empty()).then(|| ctx.local_path(ca)) },
        gitlab_url: v.gitlab_url.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST_FILE: &str = r#"concurrent = 1
[[runners]]
name = "old"
url = "https://gitlab.example.com/"
token = "glrt-old"
[[runners]]
name = "planted"
url = "https://attacker.example"
token = "glrt-planted"
"#;

    fn config() -> RunnerConfig {
        let gitlab =
            GitlabVars { host: "ci-master".into(), settings: Settings::default(), gitlab_url: "https://gitlab.example.com".into() };
        RunnerConfig::new("/etc/gitlab-runner/config.toml".into(), 1, 3, Vec::new(), gitlab)
    }

    #[test]
    fn runners_are_deleted_only_at_gitlab_urls_in_the_vars() {
        let existing = config_toml::tokens(HOST_FILE);
        let mut notes = Vec::new();
        let removed = config().removals(&existing, &mut notes);
        assert_eq!(removed.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["old"], "the host's file does not pick the URL");
        assert!(notes.iter().any(|n| n.contains("planted") && n.contains("not deleted there")), "{notes:?}");
    }

    #[test]
    fn deleting_without_a_terminal_or_yes_is_refused_before_anything_changes() {
        if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            return;
        }
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let Err(e) = rt.block_on(config().resolve_now(Some(HOST_FILE.as_bytes()), false)) else { panic!("not refused") };
        assert!(e.contains("`old`") && e.contains("pass --yes") && e.contains("config.toml was left as it is"), "{e}");
        assert!(!e.contains("planted"), "{e}");
        // plan only says what apply would do.
        let Ok(plan) = rt.block_on(config().resolve_now(Some(HOST_FILE.as_bytes()), true)) else { panic!("plan failed") };
        assert!(plan.notes.iter().any(|n| n.contains("`old` would be deleted from GitLab (apply asks first")), "{:?}", plan.notes);
    }
}
