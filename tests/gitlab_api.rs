//! The GitLab runner API client against a test double.
//!
//! No real GitLab can run on this machine, so `FakeGitlab` below is a small HTTP server on
//! 127.0.0.1 implementing the four documented endpoints the client uses (create a runner with a
//! personal access token, register with a legacy registration token, verify, delete). It keeps
//! runners in memory and logs every call, so tests can count what the client did.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use provision::gitlab::{Client, GitlabError, Registration, RunnerSpec, Scope, ensure_runner};
use serde_json::{Value, json};

const PAT: &str = "glpat-create-runner-scope";
const REGISTRATION: &str = "GR1348941-registration";

#[derive(Default)]
struct State {
    /// (id, token, description, revoked)
    runners: Vec<(u64, String, String, bool)>,
    calls: Vec<String>,
    bodies: Vec<Value>,
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
                let (status, reply) = handle(&mut shared.lock().unwrap(), &method, &path, private_token.as_deref(), body);
                let text = reply.to_string();
                let mut out = stream;
                let _ = write!(
                    out,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                    text.len()
                );
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

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn two_applies_create_exactly_one_runner() {
    let gl = FakeGitlab::start();
    let client = Client::new(&gl.url);
    let reg = Registration::AccessToken(PAT.into());
    let first = rt().block_on(ensure_runner(&client, None, &reg, &spec())).unwrap();
    assert!(first.created && first.token.starts_with("glrt-"));
    let body = gl.state.lock().unwrap().bodies[0].clone();
    assert_eq!(body["runner_type"], "group_type");
    assert_eq!(body["group_id"], 42);
    assert_eq!(body["tag_list"], "docker,linux");
    // The second apply reads the token back from config.toml and keeps it.
    let second = rt().block_on(ensure_runner(&client, Some(&first.token), &reg, &spec())).unwrap();
    assert_eq!(second.token, first.token);
    assert!(!second.created);
    assert_eq!(gl.active_runners(), 1);
    assert_eq!(gl.calls(), ["POST /api/v4/user/runners", "POST /api/v4/runners/verify"]);
}

#[test]
fn a_revoked_token_is_replaced_exactly_once() {
    let gl = FakeGitlab::start();
    let client = Client::new(&gl.url);
    let reg = Registration::AccessToken(PAT.into());
    let first = rt().block_on(ensure_runner(&client, None, &reg, &spec())).unwrap();
    gl.revoke_all();
    let second = rt().block_on(ensure_runner(&client, Some(&first.token), &reg, &spec())).unwrap();
    assert!(second.created && second.token != first.token);
    let third = rt().block_on(ensure_runner(&client, Some(&second.token), &reg, &spec())).unwrap();
    assert!(!third.created);
    let creates = gl.calls().iter().filter(|c| *c == "POST /api/v4/user/runners").count();
    assert_eq!(creates, 2, "one at first, one after the revocation: {:?}", gl.calls());
    assert_eq!(gl.active_runners(), 1);
}

#[test]
fn legacy_registration_and_given_runner_tokens() {
    let gl = FakeGitlab::start();
    let client = Client::new(&gl.url);
    let legacy = rt().block_on(ensure_runner(&client, None, &Registration::RegistrationToken(REGISTRATION.into()), &spec())).unwrap();
    assert!(legacy.created);
    assert_eq!(gl.calls(), ["POST /api/v4/runners"]);
    // A token made in GitLab's UI is verified and used as is.
    let given = rt().block_on(ensure_runner(&client, None, &Registration::RunnerToken(legacy.token.clone()), &spec())).unwrap();
    assert_eq!(given.token, legacy.token);
    assert!(!given.created);
    let bad = rt().block_on(ensure_runner(&client, None, &Registration::RunnerToken("glrt-not-known".into()), &spec())).unwrap_err();
    assert!(matches!(bad, GitlabError::TokenRejected { .. }), "{bad}");
}

#[test]
fn removal_calls_delete() {
    let gl = FakeGitlab::start();
    let client = Client::new(&gl.url);
    let t = rt().block_on(ensure_runner(&client, None, &Registration::AccessToken(PAT.into()), &spec())).unwrap();
    rt().block_on(client.delete_runner(&t.token)).unwrap();
    assert_eq!(gl.calls().last().unwrap(), "DELETE /api/v4/runners");
    assert_eq!(gl.active_runners(), 0);
    rt().block_on(client.delete_runner(&t.token)).expect("deleting a runner that is gone is fine");
}

#[test]
fn errors_are_clear_and_never_contain_tokens() {
    let gl = FakeGitlab::start();
    let client = Client::new(&gl.url);
    let e = rt().block_on(ensure_runner(&client, None, &Registration::AccessToken("glpat-wrong-scope-123".into()), &spec())).unwrap_err();
    let text = e.to_string();
    assert!(text.contains("403") && text.contains("insufficient_scope") && text.contains("POST /api/v4/user/runners"), "{text}");
    assert!(!text.contains("glpat-wrong-scope-123"));
    let e = rt().block_on(ensure_runner(&client, None, &Registration::RegistrationToken("GR-bad".into()), &spec())).unwrap_err();
    assert!(e.to_string().contains("403") && !e.to_string().contains("GR-bad"), "{e}");
    // Nothing listens on this port.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let offline = Client::new(&format!("http://{closed}"));
    let e = rt().block_on(offline.verify("glrt-x")).unwrap_err();
    assert!(matches!(e, GitlabError::Network { .. }) && e.to_string().contains(&closed.to_string()), "{e}");
}
