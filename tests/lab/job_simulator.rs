//! A stand-in for gitlab-runner's docker executor: no real gitlab-runner can run here (and its
//! GitLab neither), so this reads a `[[runners]]` section of the config.toml provision wrote on
//! the master and starts one job the way the executor does with that section (gitlab-runner
//! v18.10.1, executors/docker), on the slave's TLS daemon with the master's client certificate
//! (the runner's own path to it):
//! - a network per job (the executor's FF_NETWORK_PER_BUILD mode);
//! - the section's volumes: `host:container` binds as written, a bare container path as the
//!   executor's reusable cache volume `<job>-cache-<md5 of the path>` (kept after the job, as
//!   the runner keeps it for the next job of that project and slot);
//! - each `[[runners.docker.services]]` entry as a container on the network under its alias,
//!   with the runner's `environment` (the executor passes every job variable to services), the
//!   section's volumes, its command, and privileged when `services_privileged` (else
//!   `privileged`) allows it and its image matches `allowed_privileged_services`;
//! - job containers with the same environment and volumes on the same network;
//! - at the end, service containers removed with their anonymous volumes, and the network.
//!
//! Left out: cloning, the helper image, artifacts, the S3 cache, image pull policies. One
//! substitution: `--privileged` cannot start on this machine (see /work/shared/LAB.md), so a
//! privileged service gets the explicit form the dind role uses there instead
//! ([`Privilege::AllCapsExcept`] with the lab's `dind_cap_drop`).

use std::collections::BTreeSet;

use provision::resources::docker::Privilege;

use crate::harness::*;

/// The parts of a `[[runners]]` section the docker executor uses to start a job.
#[derive(Debug)]
pub struct Section {
    /// `environment`: variables of every job (and so of its services).
    pub environment: Vec<String>,
    /// `[runners.docker] volumes`.
    pub volumes: Vec<String>,
    /// `[runners.docker] privileged`: the job container's.
    pub privileged: bool,
    /// `[runners.docker] services_privileged` (unset: `privileged`).
    pub services_privileged: Option<bool>,
    /// `[runners.docker] allowed_privileged_services` (empty: every service).
    pub allowed_privileged_services: Vec<String>,
    /// `[[runners.docker.services]]`.
    pub services: Vec<Service>,
}

/// One `[[runners.docker.services]]` entry.
#[derive(Debug)]
pub struct Service {
    /// Its image.
    pub name: String,
    /// The name the job reaches it by.
    pub alias: String,
    /// Arguments for its entrypoint.
    pub command: Vec<String>,
}

fn strings(item: Option<&toml_edit::Item>) -> Vec<String> {
    item.and_then(toml_edit::Item::as_array)
        .map(|a| a.iter().map(|v| v.as_str().expect("a list of strings").to_string()).collect())
        .unwrap_or_default()
}

impl Section {
    /// The section of runner `name` in the config.toml text `config`.
    pub fn read(config: &str, name: &str) -> Section {
        let doc: toml_edit::DocumentMut = config.parse().expect("config.toml parses");
        let runner = doc["runners"]
            .as_array_of_tables()
            .expect("[[runners]]")
            .iter()
            .find(|t| t.get("name").and_then(toml_edit::Item::as_str) == Some(name))
            .unwrap_or_else(|| panic!("no runner `{name}` in\n{config}"));
        let docker = runner["docker"].as_table().expect("[runners.docker]");
        let services = docker
            .get("services")
            .and_then(toml_edit::Item::as_array_of_tables)
            .map(|a| {
                a.iter()
                    .map(|s| Service {
                        name: s["name"].as_str().unwrap().to_string(),
                        alias: s.get("alias").and_then(toml_edit::Item::as_str).unwrap_or_default().to_string(),
                        command: strings(s.get("command")),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Section {
            environment: strings(runner.get("environment")),
            volumes: strings(docker.get("volumes")),
            privileged: docker.get("privileged").and_then(toml_edit::Item::as_bool).unwrap_or(false),
            services_privileged: docker.get("services_privileged").and_then(toml_edit::Item::as_bool),
            allowed_privileged_services: strings(docker.get("allowed_privileged_services")),
            services,
        }
    }

    /// Whether the executor starts `service` privileged (an allow-list entry is an exact name or
    /// ends in `*`: the patterns provision writes; the executor matches doublestar globs).
    fn service_privileged(&self, service: &Service) -> bool {
        let allowed = self.allowed_privileged_services.is_empty()
            || self.allowed_privileged_services.iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => service.name.starts_with(prefix),
                None => &service.name == p,
            });
        self.services_privileged.unwrap_or(self.privileged) && allowed
    }
}

/// Runs docker on the slave's TLS daemon with the master's client certificate; it must succeed.
fn docker(args: &[&str]) -> String {
    let o = laptop_docker().args(args).output().unwrap();
    assert!(o.status.success(), "docker {args:?}: {}{}", text(&o.stdout), text(&o.stderr));
    text(&o.stdout)
}

/// One simulated job: its network, services and volumes on the slave, removed on drop.
pub struct Job {
    /// `runner-sim-project-<project>-concurrent-<slot>`, the executor's naming.
    pub id: String,
    network: String,
    binds: Vec<String>,
    environment: Vec<String>,
    image: String,
    privileged: bool,
    services: Vec<String>,
}

impl Job {
    /// Starts job `slot` of project `project` for `section`: network, volumes, services. Job
    /// containers run `image`; `cap_drop` is the lab's substitution for `--privileged`.
    pub fn start(section: &Section, project: u32, slot: u32, image: &str, cap_drop: &[String]) -> Job {
        let id = format!("runner-sim-project-{project}-concurrent-{slot}");
        let network = format!("{id}-network");
        docker(&["network", "create", "--label", "provision-sim=1", &network]);
        let binds = section
            .volumes
            .iter()
            .map(|v| {
                if v.contains(':') {
                    return v.clone();
                }
                let name = format!("{id}-cache-{:032x}", md5(v));
                docker(&["volume", "create", "--label", "provision-sim=1", &name]);
                format!("{name}:{v}")
            })
            .collect();
        let mut job = Job {
            id,
            network,
            binds,
            environment: section.environment.clone(),
            image: image.to_string(),
            privileged: section.privileged,
            services: Vec::new(),
        };
        for (i, s) in section.services.iter().enumerate() {
            let name = format!("{}-{}-{i}", job.id, s.alias);
            let privilege = if section.service_privileged(s) { Privilege::AllCapsExcept(cap_drop.to_vec()) } else { Privilege::Default };
            let mut args: Vec<String> =
                ["run", "-d", "--name", &name, "--label", "provision-sim=1", "--network", &job.network].map(String::from).into();
            args.extend(["--network-alias".into(), s.alias.clone()]);
            args.extend(privilege.run_args());
            args.extend(job.env_and_volumes());
            args.push(s.name.clone());
            args.extend(s.command.iter().cloned());
            docker(&args.iter().map(String::as_str).collect::<Vec<_>>());
            job.services.push(name);
        }
        job
    }

    fn env_and_volumes(&self) -> Vec<String> {
        let env = self.environment.iter().flat_map(|e| ["-e".to_string(), e.clone()]);
        env.chain(self.binds.iter().flat_map(|b| ["-v".to_string(), b.clone()])).collect()
    }

    /// Runs `script` (sh) in a job container of this job; its output, whatever the exit code.
    pub fn run(&self, script: &str) -> Output {
        let mut args: Vec<String> = ["run", "--rm", "--label", "provision-sim=1", "--network", &self.network].map(String::from).into();
        if self.privileged {
            args.push("--privileged".into());
        }
        args.extend(self.env_and_volumes());
        args.extend(["--entrypoint".into(), "sh".into(), self.image.clone(), "-c".into(), script.into()]);
        laptop_docker().args(&args).output().unwrap()
    }

    /// The service containers' logs, for failure messages.
    pub fn service_logs(&self) -> String {
        self.services.iter().map(|s| text(&laptop_docker().args(["logs", "--tail", "20", s]).output().unwrap().stderr)).collect()
    }
}

impl Drop for Job {
    /// As the executor ends a job: services removed with their anonymous volumes, then the
    /// network (the cache volumes stay for the next job of this project and slot).
    fn drop(&mut self) {
        for s in &self.services {
            let _ = laptop_docker().args(["rm", "-f", "-v", s]).output();
        }
        let _ = laptop_docker().args(["network", "rm", &self.network]).output();
    }
}

/// The executor's cache volumes of simulated jobs, which outlive them by design; removed here
/// as the slave's cleanup would.
pub fn remove_cache_volumes() {
    let names = docker(&["volume", "ls", "-q", "--filter", "label=provision-sim=1"]);
    for name in names.lines() {
        docker(&["volume", "rm", name]);
    }
}

/// What exists on the slave's daemon: container, network and volume names.
pub fn slave_objects() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (kind, args) in [
        ("container", &["ps", "-a", "--format", "{{.Names}}"][..]),
        ("network", &["network", "ls", "--format", "{{.Name}}"][..]),
        ("volume", &["volume", "ls", "--format", "{{.Name}}"][..]),
    ] {
        out.extend(docker(args).lines().map(|l| format!("{kind} {l}")));
    }
    out
}

/// The md5 of a volume's path, as the executor names cache volumes (`md5sum` of this machine).
fn md5(path: &str) -> u128 {
    let mut child = Command::new("md5sum").stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(path.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    u128::from_str_radix(text(&out.stdout).split_whitespace().next().unwrap(), 16).unwrap()
}
