//! Against the local lab: real Debian hosts (systemd, sshd, dockerd) in containers, reached over
//! real SSH on 127.0.0.1. The first test to run brings the lab up (`lab/lab up`, idempotent);
//! it needs root, and installs what it needs on first use. One test binary: every test holds
//! the harness's one lock, so they run one at a time against the shared hosts.
//!
//! The default inventory (`lab/inventory.yaml`) is the Debian 12 pair `lab-master-1` and
//! `lab-slave-1`; `engines` also uses `lab/inventory-trixie.yaml` (Debian 13, Docker 26) and
//! `lab/inventory-ro.yaml` (a slave without a package manager, `/usr` read-only).

mod harness;

mod basics;
mod cache_server;
mod ci_daemon;
mod converge;
mod debug_commands;
mod dind;
mod docker_tls;
mod engine;
mod engine_resources;
mod engines;
mod faults;
mod fleeting;
mod health;
mod interruptions;
mod job_simulator;
mod packages;
mod per_job_dind;
mod registry_cache;
mod roles_safety;
mod runner;
mod safety;
mod secrets;
