//! `provision certs generate|status|rotate`, and the certificate step of `apply`.

use crate::certs::{CertsDir, Options, Outcome, Policy, ServerSpec, inspect, server_sans};
use crate::cli::{CertsCommand, Global};
use crate::error::{Error, InputError, Result};
use crate::output::{self, Style, paint};
use crate::project::{HostSpec, Project};
use crate::roles;

/// Runs a certs subcommand.
pub fn run(g: &Global, cmd: &CertsCommand) -> Result<i32> {
    let project = super::load_project(g)?;
    let hosts = project.hosts(None)?;
    match cmd {
        CertsCommand::Generate => {
            let (_, outcomes) = ensure(&project, &hosts, Vec::new(), false)?;
            print_outcomes(&outcomes, true, false);
            Ok(0)
        }
        CertsCommand::Rotate { yes } => {
            // Per host: `-l master-2` rotates that master's client certificate alone.
            let rotate: Vec<String> = project.hosts(g.limit.as_deref())?.iter().map(|h| h.vars.host.clone()).collect();
            crate::confirm::assume_yes(*yes);
            let question = format!(
                "re-issue the server and client certificates of {}? Hosts keep the old ones until the next apply",
                rotate.join(", ")
            );
            crate::confirm::confirm(&question).map_err(|why| Error::Other(format!("certs rotate: {why}; nothing was re-issued")))?;
            let (_, outcomes) = ensure(&project, &hosts, rotate, false)?;
            print_outcomes(&outcomes, true, false);
            Ok(0)
        }
        CertsCommand::RotateCacheKeys { yes } => super::cache_keys::rotate(g, &project, &hosts, *yes),
        CertsCommand::Status => status(&project, &hosts),
    }
}

/// The certs directory and policy from the vars (`certs_dir`, `cert_*_days`), the server
/// certificates and the masters' client certificates the inventory needs.
pub fn settings(project: &Project, hosts: &[HostSpec]) -> Result<(CertsDir, Policy, Vec<ServerSpec>, Vec<String>)> {
    let first = hosts.first().ok_or_else(|| InputError::plain("the inventory has no hosts"))?;
    let v = roles::common::CertVars::read(&first.vars)?;
    let dir = crate::fsutil::expand_path(&v.certs_dir, &project.inventory.dir());
    let policy = Policy { leaf_days: v.cert_leaf_days, ca_days: v.cert_ca_days, renew_before_days: v.cert_renew_before_days };
    let mut servers = Vec::new();
    let mut clients = Vec::new();
    for h in hosts {
        if roles::needs_server_cert(h)? {
            let c = &h.connection;
            servers.push(ServerSpec { host: h.vars.host.clone(), sans: server_sans(&h.vars.host, &c.address, &c.private_address) });
        }
        if roles::for_host(h).is_ok_and(|r| r.iter().any(|r| r.name == roles::docker_client::ROLE.name)) {
            clients.push(h.vars.host.clone());
        }
    }
    Ok((CertsDir::new(dir), policy, servers, clients))
}

/// Ensures every certificate the inventory needs exists and is valid, re-issuing those of the
/// `rotate` hosts; `dry_run` (plan, --check) writes nothing and keeps new files in memory.
pub fn ensure(project: &Project, all_hosts: &[HostSpec], rotate: Vec<String>, dry_run: bool) -> Result<(CertsDir, Vec<(String, Outcome)>)> {
    let (mut dir, policy, servers, clients) = settings(project, all_hosts)?;
    if let Some(warning) = dir.ca_key_warning() {
        tracing::warn!("{warning}");
    }
    let opts = Options { policy, rotate, dry_run };
    let mut outcomes = dir.ensure(&servers, &clients, &opts).map_err(|e| Error::Other(format!("certificates: {e}")))?;
    outcomes.extend(super::cache_keys::ensure(&mut dir, all_hosts, &[], dry_run)?);
    Ok((dir, outcomes))
}

/// Prints what happened to each certificate (`all`: also the kept ones; `dry_run`: what would).
pub fn print_outcomes(outcomes: &[(String, Outcome)], all: bool, dry_run: bool) {
    let mut text = String::new();
    let (created, reissued) = if dry_run { ("would create   ", "would re-issue ") } else { ("created  ", "re-issued") };
    for (name, o) in outcomes {
        let line = match o {
            Outcome::Kept if !all => continue,
            Outcome::Kept => format!("{} {name}\n", paint(Style::Green, "kept     ")),
            Outcome::Created => format!("{} {name}\n", paint(Style::Yellow, created)),
            Outcome::Reissued(why) => format!("{} {name}: {why}\n", paint(Style::Yellow, reissued)),
        };
        text.push_str(&format!("certs: {line}"));
    }
    output::out(&text);
}

fn status(project: &Project, hosts: &[HostSpec]) -> Result<i32> {
    let (dir, policy, servers, clients) = settings(project, hosts)?;
    let mut rows = vec![("CERTIFICATE".to_string(), "SANS".to_string(), "EXPIRES".to_string(), "STATUS".to_string())];
    let mut bad = 0;
    let ca_pem = std::fs::read_to_string(dir.ca_cert()).unwrap_or_default();
    let mut row = |name: String, cert: std::path::PathBuf, key: std::path::PathBuf, sans: &[String], is_ca: bool| {
        let (sans_txt, expires, state) = match inspect(&cert) {
            Err(_) if !cert.exists() => ("-".into(), "-".into(), "missing".to_string()),
            Err(e) => ("-".into(), "-".into(), format!("unreadable: {e}")),
            Ok(info) => {
                let date = time::OffsetDateTime::from_unix_timestamp(info.not_after).map(|t| t.date().to_string()).unwrap_or_default();
                let state = if is_ca {
                    match info.days_left() {
                        d if d < 0 => "expired".to_string(),
                        d if d < i64::from(policy.renew_before_days) => format!("expires in {d} days"),
                        _ => "ok".into(),
                    }
                } else {
                    info.problem(sans, &ca_pem, &key, policy.renew_before_days).unwrap_or_else(|| "ok".into())
                };
                (if info.sans.is_empty() { "-".into() } else { info.sans.join(", ") }, format!("{date} ({} days)", info.days_left()), state)
            }
        };
        // Expiring soon is re-issued by the next apply; everything else needs attention.
        if state != "ok" && !state.starts_with("expires in") {
            bad += 1;
        }
        rows.push((name, sans_txt, expires, state));
    };
    row("ca".into(), dir.ca_cert(), dir.ca_key(), &[], true);
    for s in &servers {
        row(format!("server {}", s.host), dir.server_cert(&s.host), dir.server_key(&s.host), &s.sans, false);
    }
    for host in &clients {
        row(format!("client {host}"), dir.client_cert(host), dir.client_key(host), &[], false);
    }
    let w: [usize; 3] = [
        rows.iter().map(|r| r.0.len()).max().unwrap_or(0),
        rows.iter().map(|r| r.1.len()).max().unwrap_or(0),
        rows.iter().map(|r| r.2.len()).max().unwrap_or(0),
    ];
    let mut text = format!("certificates in {}\n", crate::source::display_path(&dir.root));
    for (i, (a, b, c, d)) in rows.iter().enumerate() {
        let state = if i == 0 {
            d.clone()
        } else if d == "ok" {
            paint(Style::Green, d)
        } else if d.starts_with("expires in") {
            paint(Style::Yellow, d)
        } else {
            paint(Style::Red, d)
        };
        text.push_str(&format!("{a:<w0$}  {b:<w1$}  {c:<w2$}  {state}\n", w0 = w[0], w1 = w[1], w2 = w[2]));
    }
    if inspect(&dir.ca_cert()).is_ok_and(|ca| ca.is_ca && ca.path_len != Some(0)) {
        text.push_str(&format!(
            "{} the CA has no pathlen:0 (made by an older provision): a leaf key could act as a CA; a new CA (see the README) has it\n",
            paint(Style::Yellow, "note:")
        ));
    }
    if dir.root.join("client/cert.pem").exists() {
        text.push_str(&format!(
            "{} client/cert.pem and client/key.pem are from before per-master client certificates and no longer used: delete them\n",
            paint(Style::Yellow, "note:")
        ));
    }
    // A CA key others can read lets them reach every daemon: it needs attention like a bad cert.
    if let Some(warning) = dir.ca_key_warning() {
        text.push_str(&format!("{} {warning}\n", paint(Style::Red, "warning:")));
        bad += 1;
    }
    output::out(&text);
    if bad > 0 { Err(Error::HostsFailed(format!("{bad} certificate(s) missing, expired or not matching the inventory"))) } else { Ok(0) }
}
