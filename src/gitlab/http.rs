//! The HTTP side of the GitLab client: which URLs may carry credentials, which CAs are trusted,
//! and which redirects are followed.
//!
//! Credentials (`PRIVATE-TOKEN`, runner and registration tokens in JSON bodies) go only to the
//! origin written in the vars: a redirect to another scheme, host or port is never followed
//! (reqwest would re-send a 307's body and custom headers there), and plain `http://` needs the
//! explicit `gitlab_allow_http` opt-in.

use std::path::PathBuf;

use super::GitlabError;

/// How to reach a GitLab: from the vars `gitlab_allow_http` and `gitlab_ca_file`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    /// Accept `http://` GitLab URLs (tokens then cross the network in clear).
    pub allow_http: bool,
    /// A PEM file with the CA(s) of a self-hosted GitLab, trusted besides the system store.
    pub ca_file: Option<PathBuf>,
}

/// How many same-origin redirects are followed (GitLab itself answers without any).
const MAX_REDIRECTS: usize = 5;

/// `scheme://host:port` of a URL, the unit credentials are scoped to.
fn origin(url: &reqwest::Url) -> (String, Option<String>, Option<u16>) {
    (url.scheme().to_string(), url.host_str().map(str::to_ascii_lowercase), url.port_or_known_default())
}

/// Checks a GitLab URL against the settings: `https://`, or `http://` with the opt-in.
pub fn check_url(url: &str, settings: &Settings) -> Result<reqwest::Url, GitlabError> {
    let bad = |reason: String| GitlabError::BadUrl { url: url.to_string(), reason };
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(bad("must start with https://".into()));
    }
    let parsed = reqwest::Url::parse(url).map_err(|e| bad(e.to_string()))?;
    match parsed.scheme() {
        "http" if !settings.allow_http => Err(GitlabError::InsecureUrl { url: url.to_string() }),
        _ => Ok(parsed),
    }
}

/// An HTTP client built once for the requests of one run (loading the system's CA store costs
/// a few ms), possibly ahead of time ([`SharedClient::prepare`]).
#[derive(Clone, Default)]
pub struct SharedClient(std::sync::Arc<std::sync::Mutex<Option<reqwest::Client>>>);

impl SharedClient {
    /// The client for `settings` (every caller passes the same), built by the first call.
    pub fn get(&self, settings: &Settings) -> Result<reqwest::Client, GitlabError> {
        // Held while building: a second caller waits for the first build rather than repeating it.
        let mut built = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(c) = built.as_ref() {
            return Ok(c.clone());
        }
        let c = client(settings)?;
        *built = Some(c.clone());
        Ok(c)
    }

    /// Builds the client on a thread of its own, to be ready when first needed; an error
    /// surfaces at [`SharedClient::get`].
    pub fn prepare(&self, settings: &Settings) {
        let (me, settings) = (self.clone(), settings.clone());
        std::thread::spawn(move || {
            let _ = me.get(&settings);
        });
    }
}

/// An HTTP client that follows only same-origin redirects and trusts the system store plus
/// `ca_file`.
pub fn client(settings: &Settings) -> Result<reqwest::Client, GitlabError> {
    install_crypto_provider();
    let policy = reqwest::redirect::Policy::custom(|attempt| {
        let same = attempt.previous().first().is_some_and(|first| origin(first) == origin(attempt.url()));
        if same && attempt.previous().len() <= MAX_REDIRECTS { attempt.follow() } else { attempt.stop() }
    });
    let mut builder = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .user_agent(concat!("provision/", env!("CARGO_PKG_VERSION")))
        .redirect(policy)
        .https_only(!settings.allow_http);
    if let Some(path) = &settings.ca_file {
        let ca_err = |reason: String| GitlabError::CaFile { path: path.clone(), reason };
        let pem = std::fs::read(path).map_err(|e| ca_err(e.to_string()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ca_err(e.to_string()))?;
        if certs.is_empty() {
            return Err(ca_err("no PEM certificate in it".into()));
        }
        builder = builder.tls_certs_merge(certs);
    }
    builder.build().map_err(|e| GitlabError::CaFile { path: settings.ca_file.clone().unwrap_or_default(), reason: crate::error::chain(&e) })
}

/// A redirect that was not followed, when `resp` is one: its target, for the error.
pub fn unfollowed_redirect(resp: &reqwest::Response) -> Option<String> {
    resp.status()
        .is_redirection()
        .then(|| resp.headers().get(reqwest::header::LOCATION).and_then(|l| l.to_str().ok()).unwrap_or("(no Location)").to_string())
}

/// reqwest is built without a default TLS crypto provider: use ring (already used for
/// certificates), once per process.
fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
