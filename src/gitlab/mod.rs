//! GitLab's REST API for runners, called from this machine (never from the hosts).
//!
//! Three ways to get a runner's authentication token, matching what users have:
//! a `glrt-` token created in GitLab's UI (verified, used as is), a personal access token with
//! `create_runner` (`POST /api/v4/user/runners`), or a legacy registration token
//! (`POST /api/v4/runners`). [`ensure_runner`] keeps a token that still verifies, so re-runs never
//! create duplicate runners. How URLs, CAs and redirects are handled: [`http`].

pub mod http;

use serde::Deserialize;
use serde_json::{Value as Json, json};

pub use http::{Settings, check_url};

use crate::vars::secret::Redactor;

/// Failures talking to GitLab. Messages never contain tokens.
#[derive(Debug, thiserror::Error)]
pub enum GitlabError {
    /// GitLab could not be reached.
    #[error("cannot reach GitLab at {url}: {reason}")]
    Network {
        /// The URL called (no secrets in it).
        url: String,
        /// What failed.
        reason: String,
    },
    /// GitLab answered with an error status.
    #[error("GitLab answered {status} to {what}: {message}")]
    Status {
        /// What was asked, e.g. `POST /api/v4/user/runners`.
        what: String,
        /// HTTP status.
        status: u16,
        /// GitLab's message (redacted).
        message: String,
    },
    /// The answer was not what the API documents.
    #[error("unexpected answer from GitLab to {what}: {reason}")]
    Decode {
        /// What was asked.
        what: String,
        /// What was wrong.
        reason: String,
    },
    /// A URL that is not a GitLab URL provision can use.
    #[error("GitLab URL `{url}`: {reason}")]
    BadUrl {
        /// The URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// An `http://` URL without the opt-in.
    #[error(
        "GitLab URL `{url}` is plain http: tokens would cross the network in clear; use https://, or set `gitlab_allow_http: true` for a GitLab on a trusted network"
    )]
    InsecureUrl {
        /// The URL.
        url: String,
    },
    /// GitLab redirected to another origin (or from https to http); credentials stay home.
    #[error(
        "GitLab at {url} redirected to {to}: not followed, tokens are only sent to the GitLab URL in the vars (set the URL GitLab redirects to, if it is yours)"
    )]
    Redirect {
        /// The URL in the vars.
        url: String,
        /// Where GitLab wanted to send the request.
        to: String,
    },
    /// `gitlab_ca_file` cannot be used.
    #[error("gitlab_ca_file {}: {reason}", path.display())]
    CaFile {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The personal access token cannot create runners (checked without changing anything).
    #[error("the personal access token for {url} {reason}")]
    AccessToken {
        /// GitLab URL.
        url: String,
        /// What is wrong: expired, revoked, missing scope.
        reason: String,
    },
    /// A `glrt-` token given in the vars is not accepted by GitLab.
    #[error("the runner token given for `{runner}` is not valid for {url} (revoked, or for another GitLab?)")]
    TokenRejected {
        /// Runner name.
        runner: String,
        /// GitLab URL.
        url: String,
    },
}

/// Where a new runner belongs (`POST /api/v4/user/runners`).
#[derive(Debug, Clone, PartialEq)]
pub enum Scope {
    /// An instance runner (admin only).
    Instance,
    /// A group runner.
    Group(u64),
    /// A project runner.
    Project(u64),
}

/// The attributes of a runner to create.
#[derive(Debug, Clone, PartialEq)]
pub struct RunnerSpec {
    /// Runner name (`description` in the API).
    pub description: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Whether it picks up untagged jobs.
    pub run_untagged: bool,
    /// Whether it is locked to its projects.
    pub locked: bool,
    /// Instance, group or project (for the personal-access-token flow).
    pub scope: Scope,
}

/// How this runner gets its token.
#[derive(Debug, Clone, PartialEq)]
pub enum Registration {
    /// A `glrt-` token created in GitLab's UI.
    RunnerToken(String),
    /// A personal access token with the `create_runner` scope.
    AccessToken(String),
    /// A legacy registration token.
    RegistrationToken(String),
}

/// A runner's token and whether it was just created.
#[derive(Debug, Clone, PartialEq)]
pub struct Ensured {
    /// The authentication token for config.toml.
    pub token: String,
    /// True when a runner was created in GitLab by this call.
    pub created: bool,
}

/// A GitLab instance.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct Created {
    token: String,
}

/// `GET /api/v4/personal_access_tokens/self`: what plan needs of a token.
#[derive(Deserialize)]
struct TokenInfo {
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default = "yes")]
    active: bool,
    #[serde(default)]
    revoked: bool,
    #[serde(default)]
    expires_at: Option<String>,
}

fn yes() -> bool {
    true
}

/// Scopes that allow `POST /api/v4/user/runners`.
const CREATE_RUNNER_SCOPES: &[&str] = &["create_runner", "api"];

impl Client {
    /// A client for the GitLab at `url` (e.g. `https://gitlab.example.com`); refuses `http://`
    /// without `settings.allow_http`.
    pub fn new(url: &str, settings: &Settings) -> Result<Self, GitlabError> {
        check_url(url, settings)?;
        Ok(Client { base: url.trim_end_matches('/').to_string(), http: http::client(settings)? })
    }

    /// Like [`Client::new`], with the HTTP client of `shared` (built once for a run).
    pub fn with_shared(url: &str, settings: &Settings, shared: &http::SharedClient) -> Result<Self, GitlabError> {
        check_url(url, settings)?;
        Ok(Client { base: url.trim_end_matches('/').to_string(), http: shared.get(settings)? })
    }

    /// The GitLab URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        private_token: Option<&str>,
        body: Json,
    ) -> Result<(u16, String), GitlabError> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method.clone(), &url);
        if !body.is_null() {
            req = req.json(&body);
        }
        if let Some(t) = private_token {
            req = req.header("PRIVATE-TOKEN", t);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| GitlabError::Network { url: self.base.clone(), reason: Redactor::redact(&crate::error::chain(&e)) })?;
        if let Some(to) = http::unfollowed_redirect(&resp) {
            return Err(GitlabError::Redirect { url: self.base.clone(), to: Redactor::redact(&to) });
        }
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        Ok((status, text))
    }

    fn status_error(what: &str, status: u16, body: &str) -> GitlabError {
        let message = serde_json::from_str::<Json>(body)
            .ok()
            .and_then(|j| j.get("message").or_else(|| j.get("error")).map(|m| m.to_string()))
            .unwrap_or_else(|| body.chars().take(200).collect());
        GitlabError::Status { what: what.to_string(), status, message: Redactor::redact(&message) }
    }

    /// Whether GitLab accepts `token` as a runner authentication token.
    pub async fn verify(&self, token: &str) -> Result<bool, GitlabError> {
        let what = "POST /api/v4/runners/verify";
        match self.call(reqwest::Method::POST, "/api/v4/runners/verify", None, json!({ "token": token })).await? {
            (200, _) => Ok(true),
            (403 | 404 | 410, _) => Ok(false),
            (status, body) => Err(Self::status_error(what, status, &body)),
        }
    }

    /// Creates a runner with a personal access token; returns its `glrt-` token.
    pub async fn create_runner(&self, access_token: &str, spec: &RunnerSpec) -> Result<String, GitlabError> {
        let mut body = json!({
            "description": spec.description,
            "tag_list": spec.tags.join(","),
            "run_untagged": spec.run_untagged,
            "locked": spec.locked,
        });
        match spec.scope {
            Scope::Instance => body["runner_type"] = json!("instance_type"),
            Scope::Group(id) => {
                body["runner_type"] = json!("group_type");
                body["group_id"] = json!(id);
            }
            Scope::Project(id) => {
                body["runner_type"] = json!("project_type");
                body["project_id"] = json!(id);
            }
        }
        self.created("POST /api/v4/user/runners", "/api/v4/user/runners", Some(access_token), body).await
    }

    /// Registers a runner with a legacy registration token; returns its token.
    pub async fn register_legacy(&self, registration_token: &str, spec: &RunnerSpec) -> Result<String, GitlabError> {
        let body = json!({
            "token": registration_token,
            "description": spec.description,
            "tag_list": spec.tags.join(","),
            "run_untagged": spec.run_untagged,
            "locked": spec.locked,
        });
        self.created("POST /api/v4/runners", "/api/v4/runners", None, body).await
    }

    async fn created(&self, what: &str, path: &str, private_token: Option<&str>, body: Json) -> Result<String, GitlabError> {
        match self.call(reqwest::Method::POST, path, private_token, body).await? {
            (200 | 201, text) => {
                let c: Created =
                    serde_json::from_str(&text).map_err(|e| GitlabError::Decode { what: what.into(), reason: e.to_string() })?;
                Redactor::add(&c.token);
                Ok(c.token)
            }
            (status, text) => Err(Self::status_error(what, status, &text)),
        }
    }

    /// Checks, changing nothing, that a personal access token is active and may create runners
    /// (`GET /api/v4/personal_access_tokens/self`). A GitLab too old for that endpoint (404)
    /// passes: apply will tell.
    pub async fn check_access_token(&self, access_token: &str) -> Result<(), GitlabError> {
        let what = "GET /api/v4/personal_access_tokens/self";
        let refused = |reason: String| GitlabError::AccessToken { url: self.base.clone(), reason };
        let info: TokenInfo =
            match self.call(reqwest::Method::GET, "/api/v4/personal_access_tokens/self", Some(access_token), Json::Null).await? {
                (200, text) => serde_json::from_str(&text).map_err(|e| GitlabError::Decode { what: what.into(), reason: e.to_string() })?,
                (401, _) => return Err(refused("is not accepted (unknown, expired or revoked)".into())),
                (404, _) => return Ok(()),
                (status, text) => return Err(Self::status_error(what, status, &text)),
            };
        if info.revoked || !info.active {
            let when = info.expires_at.map(|d| format!(" (expires_at {d})")).unwrap_or_default();
            return Err(refused(format!("is revoked or expired{when}")));
        }
        if !info.scopes.iter().any(|s| CREATE_RUNNER_SCOPES.contains(&s.as_str())) {
            return Err(refused(format!(
                "lacks the `create_runner` scope (it has: {}): creating runners would fail with 403",
                if info.scopes.is_empty() { "none".to_string() } else { info.scopes.join(", ") }
            )));
        }
        Ok(())
    }

    /// Deletes the runner `token` belongs to. A runner that is already gone is not an error.
    pub async fn delete_runner(&self, token: &str) -> Result<(), GitlabError> {
        match self.call(reqwest::Method::DELETE, "/api/v4/runners", None, json!({ "token": token })).await? {
            (200 | 204 | 403 | 404, _) => Ok(()),
            (status, text) => Err(Self::status_error("DELETE /api/v4/runners", status, &text)),
        }
    }
}

/// Returns a token for the runner: the one already in the host's config.toml when GitLab still
/// accepts it, else a new one by the configured registration. Never creates a runner when a
/// valid one exists.
pub async fn ensure_runner(
    client: &Client,
    existing: Option<&str>,
    registration: &Registration,
    spec: &RunnerSpec,
) -> Result<Ensured, GitlabError> {
    // A token given in the vars is the one to use, whatever the host has.
    if let Registration::RunnerToken(t) = registration {
        Redactor::add(t);
        if !client.verify(t).await? {
            return Err(GitlabError::TokenRejected { runner: spec.description.clone(), url: client.url().to_string() });
        }
        return Ok(Ensured { token: t.clone(), created: false });
    }
    if let Some(token) = existing.filter(|t| !t.is_empty()) {
        Redactor::add(token);
        if client.verify(token).await? {
            return Ok(Ensured { token: token.to_string(), created: false });
        }
    }
    let token = match registration {
        Registration::RunnerToken(_) => unreachable!("handled above"),
        Registration::AccessToken(pat) => client.create_runner(pat, spec).await?,
        Registration::RegistrationToken(reg) => client.register_legacy(reg, spec).await?,
    };
    Ok(Ensured { token, created: true })
}

/// What [`ensure_runner`] would do, changing nothing in GitLab (check mode): `Some(token)` when
/// a token is kept, `None` when a runner would be created (after checking that the personal
/// access token could create it).
pub async fn check_runner(
    client: &Client,
    existing: Option<&str>,
    registration: &Registration,
    spec: &RunnerSpec,
) -> Result<Option<String>, GitlabError> {
    if let Registration::RunnerToken(_) = registration {
        return ensure_runner(client, existing, registration, spec).await.map(|e| Some(e.token));
    }
    if let Some(token) = existing.filter(|t| !t.is_empty()) {
        Redactor::add(token);
        if client.verify(token).await? {
            return Ok(Some(token.to_string()));
        }
    }
    // A legacy registration token cannot be checked without registering a runner.
    if let Registration::AccessToken(pat) = registration {
        client.check_access_token(pat).await?;
    }
    Ok(None)
}
