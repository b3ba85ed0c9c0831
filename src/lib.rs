//! `provision`: stands up and runs self-hosted GitLab CI runner infrastructure over SSH.
//!
//! The crate is laid out by concept: [`cli`] parses arguments, [`inventory`] and [`vars`] turn the
//! user's repo into per-host settings, [`transport`] talks to hosts, and [`commands`] wires them
//! into the subcommands.

pub mod certs;
pub mod cli;
pub mod cloud;
pub mod commands;
pub mod confirm;
pub mod engine;
pub mod error;
pub mod fsutil;
pub mod gitlab;
pub mod inventory;
pub mod net;
pub mod output;
pub mod project;
pub mod resources;
pub mod roles;
pub mod sh;
pub mod source;
pub mod transport;
pub mod vars;
pub mod yaml;
