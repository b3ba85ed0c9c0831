//! Ctrl-C during `apply`, without the lab: the host is a loopback listener that accepts and then
//! says nothing, so ssh hangs in its handshake. The first SIGINT is answered at once; the second
//! quits at once with 130.

use std::io::Read;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn first_ctrl_c_is_answered_at_once_and_the_second_quits() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepts connections and holds them open, silent, until the test ends.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in listener.incoming().flatten() {
            held.push(c);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("inventory.yaml");
    std::fs::write(
        &inv,
        format!("all:\n  hosts:\n    mute:\n      {{ssh_host: 127.0.0.1, ssh_port: {port}, roles: [], ssh_connect_timeout: 60, ssh_control_persist: 0}}\n"),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_provision"))
        .args(["-i", inv.to_str().unwrap(), "apply"])
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (answered_tx, answered) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut seen = String::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            if seen.contains("interrupted: finishing what hosts are already applying") {
                let _ = answered_tx.send(Instant::now());
            }
        }
        seen
    });
    // Give it time to reach the host (certificates are created first).
    std::thread::sleep(Duration::from_secs(3));
    let int = |pid: u32| assert!(Command::new("kill").args(["-INT", &pid.to_string()]).status().unwrap().success());
    let first = Instant::now();
    int(child.id());
    let at = answered.recv_timeout(Duration::from_secs(1)).expect("the first Ctrl-C is answered within a second");
    assert!(at.duration_since(first) < Duration::from_secs(1));
    std::thread::sleep(Duration::from_millis(500));
    assert!(child.try_wait().unwrap().is_none(), "the first Ctrl-C does not quit");
    let sent = Instant::now();
    int(child.id());
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(sent.elapsed() < Duration::from_secs(2), "the second Ctrl-C quits at once");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(130));
    let seen = reader.join().unwrap();
    assert!(seen.contains("interrupted: finishing what hosts are already applying"), "answered at the first Ctrl-C: {seen}");
}
