//! The GitLab runner API client against a test double.
//!
//! No real GitLab can run on this machine, so `FakeGitlab` below is a small HTTP server on
//! 127.0.0.1 implementing the four documented endpoints the client uses (create a runner with a
//! personal access token, register with a legacy registration token, verify, delete). It keeps
//! runners in memory and logs every call, so tests can count what the client did. It can also
//! answer every call with a redirect (`redirect_to`), and `tls_gitlab` wraps a one-answer HTTPS
//! endpoint with a private CA: the only test doubles here, all on loopback.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use provision::gitlab::{Client, GitlabError, Registration, RunnerSpec, Scope, Settings, check_runner, ensure_runner};
use serde_json::{Value, json};

const PAT: &str = "glpat-create-runner-scope";
const REGISTRATION: &str = "GR1348941-registration";
/// A personal access token that exists but cannot create runners.
const READ_ONLY_PAT: &str = "glpat-read-api-only";

#[derive(Default)]
struct State {
    /// (id, token, description, revoked)
    runners: Vec<(u64, String, String, bool)>,
    calls: Vec<String>,
    bodies: Vec<Value>,
    /// Every PRIVATE-TOKEN header received.
    private_tokens: Vec<String>,
    /// When set, every call is answered `307` to this base URL plus the path.
    redirect_to: Option<String>,
}

struct FakeGitlab {
    url: String,
    state: Arc<Mutex<State>>,
}

impl FakeGitlab {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let mut parts = line.split_whitespace();
                let (method, path) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
                let (mut len, mut private_token) = (0usize, None);
                loop {
                    let mut h = String::new();
                    reader.read_line(&mut h).unwrap();
                    if h.trim().is_empty() {
                        break;
                    }
                    let (k, v) = h.split_once(':').unwrap();
                    match k.to_ascii_lowercase().as_str() {
                        "content-length" => len = v.trim().parse().unwrap(),
                        "private-token" => private_token = Some(v.trim().to_string()),
                        _ => {}
                    }
                }
                let mut body = vec![0; len];
                reader.read_exact(&mut body).unwrap();
                let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let mut st = shared.lock().unwrap();
                st.private_tokens.extend(private_token.clone());
                let redirect = st.redirect_to.clone();
                let (status, reply) = handle(&mut st, &method, &path, private_token.as_deref(), body);
                drop(st);
                let text = reply.to_string();
                let mut out = stream;
                let _ = match redirect {
                    Some(to) => write!(out, "HTTP/1.1 307 X\r\nLocation: {to}{path}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
                    None => write!(
                        out,
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                        text.len()
                    ),
                };
            }
        });
        FakeGitlab { url, state }
    }

    fn calls(&self) -> Vec<String> {
        self.state.lock().unwrap().calls.clone()
    }

    fn active_runners(&self) -> usize {
        self.state.lock().unwrap().runners.iter().filter(|r| !r.3).count()
    }

    fn revoke_all(&self) {
        for r in &mut self.state.lock().unwrap().runners {
            r.3 = true;
        }
    }
}

fn handle(st: &mut State, method: &str, path: &str, private_token: Option<&str>, body: Value) -> (u16, Value) {
    st.calls.push(format!("{method} {path}"));
    st.bodies.push(body.clone());
    let token = body["token"].as_str().unwrap_or("").to_string();
    let create = |st: &mut State, prefix: &str| {
        let id = st.runners.len() as u64 + 1;
        let token = format!("{prefix}{id:020}");
        st.runners.push((id, token.clone(), body["description"].as_str().unwrap_or("").into(), false));
        (201, json!({ "id": id, "token": token, "token_expires_at": null }))
    };
    match (method, path) {
        ("GET", "/api/v4/personal_access_tokens/self") => match private_token {
            Some(PAT) => (200, json!({ "scopes": ["create_runner"], "active": true, "revoked": false })),
            Some(READ_ONLY_PAT) => (200, json!({ "scopes": ["read_api"], "active": true, "revoked": false })),
            _ => (401, json!({ "message": "401 Unauthorized" })),
        },
        ("POST", "/api/v4/user/runners") if private_token == Some(PAT) => create(st, "glrt-"),
        ("POST", "/api/v4/user/runners") => (403, json!({ "message": "403 Forbidden - insufficient_scope" })),
        ("POST", "/api/v4/runners") if token == REGISTRATION => create(st, "legacy-"),
        ("POST", "/api/v4/runners") => (403, json!({ "message": "403 Forbidden" })),
        ("POST", "/api/v4/runners/verify") => {
            let ok = st.runners.iter().any(|r| r.1 == token && !r.3);
            if ok { (200, json!({ "id": 1, "token": token })) } else { (403, json!({ "message": "403 Forbidden" })) }
        }
        ("DELETE", "/api/v4/runners") => match st.runners.iter().position(|r| r.1 == token) {
            Some(i) => {
                st.runners.remove(i);
                (204, Value::Null)
            }
            None => (403, json!({ "message": "403 Forbidden" })),
        },
        _ => (404, json!({ "message": "404 Not Found" })),
    }
}

fn spec() -> RunnerSpec {
    RunnerSpec {
        description: "ci-master docker".into(),
        tags: vec!["docker".into(), "linux".into()],
        run_untagged: true,
        locked: false,
        scope: Scope::Group(42),
    }
}

/// How tests reach the loopback double: plain http, explicitly allowed.
fn http_ok() -> Settings {
    Settings { allow_http: true, ca_file: None }
}

fn client(url: &str) -> Client {
    Client::new(url, &http_ok()).unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn two_applies_create_exactly_one_runner() {
    let gl = FakeGitlab::start();
    let c = client(&gl.url);
    let reg = Registration::AccessToken(PAT.into());
    let first = rt().block_on(ensure_runner(&c, None, &reg, &spec())).unwrap();
    assert!(first.created && first.token.starts_with("glrt-"));
    let body = gl.state.lock().unwrap().bodies[0].clone();
    assert_eq!(body["runner_type"], "group_type");
    assert_eq!(body["group_id"], 42);
    assert_eq!(body["tag_list"], "docker,linux");
    // The second apply reads the token back from config.toml and keeps it.
    let second = rt().block_on(ensure_runner(&c, Some(&first.token), &reg, &spec())).unwrap();
    assert_eq!(second.token, first.token);
    assert!(!second.created);
    assert_eq!(gl.active_runners(), 1);
    assert_eq!(gl.calls(), ["POST /api/v4/user/runners", "POST /api/v4/runners/verify"]);
}

#[test]
fn a_revoked_token_is_replaced_exactly_once() {
    let gl = FakeGitlab::start();
    let c = client(&gl.url);
    let reg = Registration::AccessToken(PAT.into());
    let first = rt().block_on(ensure_runner(&c, None, &reg, &spec())).unwrap();
    gl.revoke_all();
    let second = rt().block_on(ensure_runner(&c, Some(&first.token), &reg, &spec())).unwrap();
    assert!(second.created && second.token != first.token);
    let third = rt().block_on(ensure_runner(&c, Some(&second.token), &reg, &spec())).unwrap();
    assert!(!third.created);
    let creates = gl.calls().iter().filter(|c| *c == "POST /api/v4/user/runners").count();
    assert_eq!(creates, 2, "one at first, one after the revocation: {:?}", gl.calls());
    assert_eq!(gl.active_runners(), 1);
}

#[test]
fn legacy_registration_and_given_runner_tokens() {
    let gl = FakeGitlab::start();
    let c = client(&gl.url);
    let legacy = rt().block_on(ensure_runner(&c, None, &Registration::RegistrationToken(REGISTRATION.into()), &spec())).unwrap();
    assert!(legacy.created);
    assert_eq!(gl.calls(), ["POST /api/v4/runners"]);
    // A token made in GitLab's UI is verified and used as is.
    let given = rt().block_on(ensure_runner(&c, None, &Registration::RunnerToken(legacy.token.clone()), &spec())).unwrap();
    assert_eq!(given.token, legacy.token);
    assert!(!given.created);
    let bad = rt().block_on(ensure_runner(&c, None, &Registration::RunnerToken("glrt-not-known".into()), &spec())).unwrap_err();
    assert!(matches!(bad, GitlabError::TokenRejected { .. }), "{bad}");
}

#[test]
fn removal_calls_delete() {
    let gl = FakeGitlab::start();
    let c = client(&gl.url);
    let t = rt().block_on(ensure_runner(&c, None, &Registration::AccessToken(PAT.into()), &spec())).unwrap();
    rt().block_on(c.delete_runner(&t.token)).unwrap();
    assert_eq!(gl.calls().last().unwrap(), "DELETE /api/v4/runners");
    assert_eq!(gl.active_runners(), 0);
    rt().block_on(c.delete_runner(&t.token)).expect("deleting a runner that is gone is fine");
}

#[test]
fn errors_are_clear_and_never_contain_tokens() {
    let gl = FakeGitlab::start();
    let c = client(&gl.url);
    let e = rt().block_on(ensure_runner(&c, None, &Registration::AccessToken("glpat-wrong-scope-123".into()), &spec())).unwrap_err();
    let text = e.to_string();
    assert!(text.contains("403") && text.contains("insufficient_scope") && text.contains("POST /api/v4/user/runners"), "{text}");
    assert!(!text.contains("glpat-wrong-scope-123"));
    let e = rt().block_on(ensure_runner(&c, None, &Registration::RegistrationToken("GR-bad".into()), &spec())).unwrap_err();
    assert!(e.to_string().contains("403") && !e.to_string().contains("GR-bad"), "{e}");
    // Nothing listens on this port.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let offline = client(&format!("http://{closed}"));
    let e = rt().block_on(offline.verify("glrt-x")).unwrap_err();
    assert!(matches!(e, GitlabError::Network { .. }) && e.to_string().contains(&closed.to_string()), "{e}");
}

#[test]
fn credentials_never_follow_a_redirect_to_another_origin() {
    let elsewhere = FakeGitlab::start();
    let gl = FakeGitlab::start();
    gl.state.lock().unwrap().redirect_to = Some(elsewhere.url.clone());
    let c = client(&gl.url);
    let e = rt().block_on(ensure_runner(&c, None, &Registration::AccessToken(PAT.into()), &spec())).unwrap_err();
    assert!(matches!(e, GitlabError::Redirect { .. }), "{e}");
    assert!(e.to_string().contains(&elsewhere.url) && !e.to_string().contains(PAT), "{e}");
    let e = rt().block_on(ensure_runner(&c, None, &Registration::RegistrationToken(REGISTRATION.into()), &spec())).unwrap_err();
    assert!(matches!(e, GitlabError::Redirect { .. }), "{e}");
    // The other origin never saw a request: no PRIVATE-TOKEN, no registration token in a body.
    assert!(elsewhere.calls().is_empty(), "{:?}", elsewhere.calls());
    assert_eq!(gl.calls().len(), 2, "one call each, not retried elsewhere: {:?}", gl.calls());
}

#[test]
fn a_same_origin_redirect_is_followed() {
    let gl = FakeGitlab::start();
    // A GitLab behind a path prefix that moved: same scheme, host and port.
    gl.state.lock().unwrap().redirect_to = Some(format!("{}/moved", gl.url));
    let e = rt().block_on(client(&gl.url).verify("glrt-x")).unwrap_err();
    // Each hop redirects again, so the client gives up after a few hops, never leaving the origin.
    assert!(matches!(e, GitlabError::Redirect { .. } | GitlabError::Network { .. }), "{e}");
    assert!(gl.calls().len() > 1, "same-origin hops are followed: {:?}", gl.calls());
    assert!(gl.calls().iter().all(|c| c.contains("/api/v4/runners/verify")), "{:?}", gl.calls());
}

#[test]
fn plain_http_needs_the_explicit_opt_in() {
    let gl = FakeGitlab::start();
    let e = Client::new(&gl.url, &Settings::default()).unwrap_err();
    assert!(matches!(e, GitlabError::InsecureUrl { .. }), "{e}");
    assert!(e.to_string().contains("gitlab_allow_http: true"), "{e}");
    assert!(gl.calls().is_empty());
    let e = Client::new("gitlab.example.com", &http_ok()).unwrap_err();
    assert!(e.to_string().contains("must start with https://"), "{e}");
}

#[test]
fn check_mode_checks_the_token_scope_and_creates_nothing() {
    let gl = FakeGitlab::start();
    let c = client(&gl.url);
    let ok = rt().block_on(check_runner(&c, None, &Registration::AccessToken(PAT.into()), &spec())).unwrap();
    assert_eq!(ok, None, "would be created");
    let e = rt().block_on(check_runner(&c, None, &Registration::AccessToken(READ_ONLY_PAT.into()), &spec())).unwrap_err();
    assert!(matches!(e, GitlabError::AccessToken { .. }), "{e}");
    assert!(e.to_string().contains("create_runner") && e.to_string().contains("read_api"), "{e}");
    let e = rt().block_on(check_runner(&c, None, &Registration::AccessToken("glpat-expired".into()), &spec())).unwrap_err();
    assert!(e.to_string().contains("not accepted"), "{e}");
    assert!(!e.to_string().contains("glpat-expired"), "{e}");
    assert!(gl.calls().iter().all(|c| c == "GET /api/v4/personal_access_tokens/self"), "nothing created: {:?}", gl.calls());
    assert_eq!(gl.active_runners(), 0);
}

/// A one-connection-at-a-time HTTPS endpoint on loopback with a certificate from a private CA;
/// answers `200 {}` to anything, or with `downgrade` a `307` to the same path over plain http
/// (a listener there counts what reaches it). Returns its URL, the CA's PEM and that count.
fn tls_gitlab(downgrade: bool) -> (String, String, Arc<Mutex<usize>>) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let ca_pem = ca_params.self_signed(&ca_key).unwrap().pem();
    let key = KeyPair::generate().unwrap();
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap().signed_by(&key, &issuer).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()))
        .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let plain = TcpListener::bind("127.0.0.1:0").unwrap();
    let plain_url = format!("http://{}", plain.local_addr().unwrap());
    let reached = Arc::new(Mutex::new(0));
    let counter = reached.clone();
    std::thread::spawn(move || {
        for _ in plain.incoming().flatten() {
            *counter.lock().unwrap() += 1;
        }
    });
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let Ok(conn) = rustls::ServerConnection::new(config.clone()) else { continue };
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            let mut reader = BufReader::new(&mut tls);
            let mut first = String::new();
            let _ = reader.read_line(&mut first);
            let path = first.split_whitespace().nth(1).unwrap_or("/").to_string();
            let mut len = 0usize;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':')
                    && k.eq_ignore_ascii_case("content-length")
                {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            let reply = if downgrade {
                format!("HTTP/1.1 307 X\r\nLocation: {plain_url}{path}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            } else {
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}".to_string()
            };
            let _ = tls.write_all(reply.as_bytes());
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    });
    (url, ca_pem, reached)
}

#[test]
fn a_private_gitlab_ca_is_trusted_through_gitlab_ca_file() {
    let (url, ca_pem, _) = tls_gitlab(false);
    // The system store does not know the private CA: refused.
    let e = rt().block_on(Client::new(&url, &Settings::default()).unwrap().verify("glrt-x")).unwrap_err();
    assert!(matches!(e, GitlabError::Network { .. }), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("gitlab-ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    let trusted = Client::new(&url, &Settings { allow_http: false, ca_file: Some(ca_file) }).unwrap();
    assert!(rt().block_on(trusted.verify("glrt-x")).unwrap(), "verified through the private CA");
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let e = Client::new(&url, &Settings { allow_http: false, ca_file: Some(junk) }).unwrap_err();
    assert!(matches!(e, GitlabError::CaFile { .. }), "{e}");
}

#[test]
fn an_https_to_http_downgrade_is_never_followed() {
    let (url, ca_pem, reached) = tls_gitlab(true);
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("gitlab-ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    // Even with http allowed for the GitLab URL, an https GitLab never sends credentials to http.
    for allow_http in [false, true] {
        let c = Client::new(&url, &Settings { allow_http, ca_file: Some(ca_file.clone()) }).unwrap();
        let e = rt().block_on(ensure_runner(&c, None, &Registration::AccessToken(PAT.into()), &spec())).unwrap_err();
        assert!(matches!(e, GitlabError::Redirect { .. }), "{e}");
        assert!(e.to_string().contains("http://127.0.0.1"), "{e}");
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(*reached.lock().unwrap(), 0, "nothing reached the plain-http listener");
}
