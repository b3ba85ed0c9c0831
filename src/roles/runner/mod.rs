//! The gitlab-runner on master: installed as a container (default) or as a package, its
//! `config.toml` rendered whole from vars, and each runner registered with GitLab through the
//! REST API from this machine ([`registration`]), keeping the tokens GitLab still accepts.

mod autoscale;
/// The generated cloud inventory's vars the runner reads (typed and checked like role vars).
pub(crate) use autoscale::STACK_SPECS as CLOUD_SPECS;
pub mod config_toml;
pub mod registration;
mod spec;
pub use spec::preview as config_preview;

use std::sync::Arc;

use serde::Deserialize;

use super::checks::{self, RunnerProcess};
use super::owned::{ConfigFormat, Owned};
use super::topology::HostFacts;
use super::{Role, RoleContext, typed};
use crate::engine::{Desired, Step};
use crate::error::InputError;
use crate::resources::directory::Directory;
use crate::resources::docker::{Container, ContainerAbsent, Daemon};
use crate::resources::file::File;
use crate::resources::package::Package;
use crate::resources::service::Service;
use crate::sh;
use crate::vars::resolve::HostVars;
use crate::vars::schema::{Kind, VarSpec};

/// The runner role.
pub const ROLE: Role = Role { name: "runner", defaults: DEFAULTS, specs: SPECS, build, owns };

/// The runner's config file, in `runner_config_dir`.
const CONFIG_FILE: &str = "config.toml";
/// The package's systemd unit.
const PACKAGE_UNIT: &str = "gitlab-runner.service";

const DEFAULTS: &str = r#"runner_install: container
runner_version: "18.10.1"
runner_image: "gitlab/gitlab-runner:alpine-v{{ runner_version }}"
runner_container_name: gitlab-runner
runner_config_dir: /etc/gitlab-runner
runner_stop_timeout: 3600
runner_concurrent: 4
runner_check_interval: 3
runner_package_file: ""
runner_apt_repo: "deb [signed-by=/etc/apt/keyrings/gitlab-runner.asc] https://packages.gitlab.com/runner/gitlab-runner/debian/ bookworm main"
runner_repo_key_file: ""
runner_job_image: "alpine:3.20"
runner_cache_s3_bucket: ""
runner_cache_s3_region: ""
runner_cache_s3_server_address: s3.amazonaws.com
runner_cache_s3_access_key: ""
runner_cache_s3_secret_key: ""
runner_cache_shared: true
gitlab_url: https://gitlab.com
gitlab_api_token: ""
gitlab_registration_token: ""
gitlab_allow_http: false
gitlab_ca_file: ""
runners:
  - name: "{{ inventory_hostname }}-docker"
"#;

const SPECS: &[VarSpec] = &[
    VarSpec { name: "runner_install", kind: Kind::Str, doc: "`container` (default) or `package`" },
    VarSpec { name: "runner_version", kind: Kind::Str, doc: "gitlab-runner version (image tag and package version)" },
    VarSpec { name: "runner_image", kind: Kind::Str, doc: "runner image (container install)" },
    VarSpec { name: "runner_container_name", kind: Kind::Str, doc: "name of the runner container" },
    VarSpec { name: "runner_config_dir", kind: Kind::Str, doc: "directory of config.toml on the host" },
    VarSpec {
        name: "runner_stop_timeout",
        kind: Kind::Int { min: 0, max: 86400 },
        doc: "seconds a stopping runner (SIGQUIT) gets to finish its jobs",
    },
    VarSpec { name: "runner_concurrent", kind: Kind::Int { min: 1, max: 10000 }, doc: "config.toml `concurrent`" },
    VarSpec { name: "runner_check_interval", kind: Kind::Int { min: 0, max: 3600 }, doc: "config.toml `check_interval`" },
    VarSpec { name: "runner_package_file", kind: Kind::Str, doc: "local .deb/.rpm to install (package install, air-gapped)" },
    VarSpec { name: "runner_apt_repo", kind: Kind::Str, doc: "apt source line of GitLab's repository (package install)" },
    VarSpec {
        name: "runner_repo_key_file",
        kind: Kind::Str,
        doc: "local copy of the repository's signing key (package install from the repo)",
    },
    VarSpec { name: "runner_job_image", kind: Kind::Str, doc: "default job image of docker runners" },
    VarSpec { name: "runner_cache_s3_bucket", kind: Kind::Str, doc: "S3 bucket of the shared cache (empty: no cache)" },
    VarSpec { name: "runner_cache_s3_region", kind: Kind::Str, doc: "region of the cache bucket" },
    VarSpec { name: "runner_cache_s3_server_address", kind: Kind::Str, doc: "S3 endpoint" },
    VarSpec { name: "runner_cache_s3_access_key", kind: Kind::Str, doc: "S3 access key (empty: the instance's IAM role)" },
    VarSpec { name: "runner_cache_s3_secret_key", kind: Kind::Str, doc: "S3 secret key (secret)" },
    VarSpec { name: "runner_cache_shared", kind: Kind::Bool, doc: "cache shared between runners" },
    VarSpec { name: "gitlab_url", kind: Kind::Str, doc: "GitLab URL runners register with (default per runner)" },
    VarSpec { name: "gitlab_api_token", kind: Kind::Str, doc: "personal access token with `create_runner` (secret)" },
    VarSpec { name: "gitlab_registration_token", kind: Kind::Str, doc: "legacy registration token (secret)" },
    VarSpec { name: "gitlab_allow_http", kind: Kind::Bool, doc: "accept http:// GitLab URLs (tokens cross the network in clear)" },
    VarSpec { name: "gitlab_ca_file", kind: Kind::Str, doc: "PEM file of a private GitLab CA, trusted besides the system store" },
    VarSpec { name: "runners", kind: Kind::List, doc: "the runners in config.toml (see the README)" },
];

/// The runner role's vars (the `runners` entries are read by [`spec::runners`]).
#[derive(Debug, Clone, Deserialize)]
pub struct Vars {
    /// `container` or `package`.
    pub runner_install: Install,
    /// gitlab-runner version.
    pub runner_version: String,
    /// Runner image (container install).
    pub runner_image: String,
    /// Runner container name.
    pub runner_container_name: String,
    /// Directory of config.toml.
    pub runner_config_dir: String,
    /// Seconds a stopping runner gets to finish its jobs.
    pub runner_stop_timeout: u32,
    /// config.toml `concurrent`.
    pub runner_concurrent: u32,
    /// config.toml `check_interval`.
    pub runner_check_interval: u32,
    /// Local package file (empty: from the repository).
    pub runner_package_file: String,
    /// apt source line of GitLab's repository.
    pub runner_apt_repo: String,
    /// Local copy of the repository's signing key.
    pub runner_repo_key_file: String,
    /// Default job image.
    pub runner_job_image: String,
    /// S3 cache bucket (empty: no cache).
    pub runner_cache_s3_bucket: String,
    /// S3 cache region.
    pub runner_cache_s3_region: String,
    /// S3 endpoint.
    pub runner_cache_s3_server_address: String,
    /// S3 access key (empty: the instance's IAM role).
    pub runner_cache_s3_access_key: String,
    /// S3 secret key (secret).
    pub runner_cache_s3_secret_key: String,
    /// Cache shared between runners.
    pub runner_cache_shared: bool,
    /// Default GitLab URL of the runners.
    pub gitlab_url: String,
    /// Personal access token with `create_runner` (secret).
    pub gitlab_api_token: String,
    /// Legacy registration token (secret).
    pub gitlab_registration_token: String,
    /// Accept `http://` GitLab URLs.
    pub gitlab_allow_http: bool,
    /// A private GitLab CA (PEM), trusted besides the system store.
    pub gitlab_ca_file: String,
    /// The `runners` entries, checked key by key in [`spec`].
    pub runners: Vec<serde_json::Value>,
}

/// How gitlab-runner is installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum Install {
    /// The official image, as a container on the host daemon.
    Container,
    /// GitLab's package and its systemd service.
    Package,
}

impl TryFrom<String> for Install {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "container" => Ok(Install::Container),
            "package" => Ok(Install::Package),
            other => Err(format!("runner_install must be `container` or `package`, not `{other}`")),
        }
    }
}

impl Vars {
    /// Reads and checks the role's vars of a host.
    pub fn read(vars: &HostVars) -> Result<Self, InputError> {
        let v: Vars = typed::from_vars(vars, SPECS)?;
        typed::check_at(vars, "runner_image", super::check_image(&v.runner_image))?;
        typed::check_at(vars, "runner_container_name", sh::check_name("runner_container_name", &v.runner_container_name))?;
        typed::check_at(vars, "runner_config_dir", super::check_abs_path("runner_config_dir", &v.runner_config_dir))?;
        Ok(v)
    }
}

/// The role's vars of the host being built.
fn vars<'a>(ctx: &'a RoleContext) -> &'a Vars {
    ctx.facts.runner.as_ref().expect("runner vars of a runner host")
}

/// The runner's config.toml on the host.
fn config_file(v: &Vars) -> String {
    format!("{}/{CONFIG_FILE}", v.runner_config_dir)
}

fn build(ctx: &RoleContext, desired: &mut Desired) -> Result<(), InputError> {
    let v = vars(ctx);
    let config_dir = &v.runner_config_dir;
    let runners = spec::runners(ctx)?;
    let config_path = config_file(v);
    desired.steps.push(Step::new(Directory::new(config_dir).mode(0o700)));
    let config = registration::RunnerConfig::new(
        config_path.clone(),
        v.runner_concurrent,
        v.runner_check_interval,
        runners,
        registration::gitlab_vars(ctx),
    );
    // The placeholder probes what the resolved file will: a secret 0600 file at that path.
    desired.steps.push(Step::deferred(File::new(&config_path, Vec::new()).mode(0o600).secret(), Arc::new(config)));
    match v.runner_install {
        Install::Container => container(ctx, v, desired),
        Install::Package => package(ctx, v, desired),
    }
}

fn container(ctx: &RoleContext, v: &Vars, desired: &mut Desired) -> Result<(), InputError> {
    // Switching from the package: its service must not run a second runner on the same config.
    desired.steps.push(Step::new(Service::stopped(PACKAGE_UNIT)));
    let image = &v.runner_image;
    desired.steps.push(ctx.image_step(image, Daemon::default()));
    let mut c = Container::new(&v.runner_container_name, image);
    c.image_id = ctx.archived_image_id(image);
    let config_dir = &v.runner_config_dir;
    c.volumes = vec![format!("{config_dir}:/etc/gitlab-runner")];
    let certs = &ctx.facts.common.docker_client_cert_path;
    if !certs.is_empty() && !certs.starts_with(&format!("{config_dir}/")) {
        c.volumes.push(format!("{certs}:{certs}:ro"));
    }
    // SIGQUIT: gitlab-runner stops taking jobs and finishes the running ones before exiting.
    c.stop_signal = Some("SIGQUIT".into());
    c.stop_timeout = v.runner_stop_timeout;
    autoscale::keep_state(ctx, &mut c, &mut desired.steps)?;
    autoscale::log_to_cloudwatch(ctx, &mut c)?;
    let name = c.name.clone();
    desired.steps.push(Step::new(c));
    autoscale::install_plugins(ctx, Some(&name), &mut desired.steps)?;
    desired.steps.push(checks::runner_config(&config_file(v), RunnerProcess::Container(&name)));
    Ok(())
}

fn package(ctx: &RoleContext, v: &Vars, desired: &mut Desired) -> Result<(), InputError> {
    // Switching from the container: the container must not run a second runner.
    desired.steps.push(Step::new(ContainerAbsent { name: v.runner_container_name.clone(), daemon: Daemon::default() }));
    let mut pkg = Package::new("gitlab-runner");
    if v.runner_package_file.is_empty() {
        let key = &v.runner_repo_key_file;
        if key.is_empty() {
            return Err(InputError::plain(format!(
                "{}: runner_install is `package` but neither runner_package_file nor runner_repo_key_file is set",
                ctx.name()
            ))
            .with_help("download GitLab's key once (https://packages.gitlab.com/runner/gitlab-runner/gpgkey) and set runner_repo_key_file, or set runner_package_file to a .deb/.rpm"));
        }
        let key_bytes =
            std::fs::read(ctx.local_path(key)).map_err(|e| InputError::plain(format!("cannot read runner_repo_key_file {key}: {e}")))?;
        desired.steps.push(Step::new(Directory::new("/etc/apt/keyrings")));
        desired.steps.push(Step::new(File::new("/etc/apt/keyrings/gitlab-runner.asc", key_bytes)));
        let repo = format!("# Managed by provision.\n{}\n", v.runner_apt_repo);
        desired.steps.push(Step::new(File::new("/etc/apt/sources.list.d/gitlab-runner.list", repo)));
        pkg.version = Some(v.runner_version.clone());
    } else {
        pkg.file = Some(ctx.local_path(&v.runner_package_file));
    }
    desired.steps.push(Step::new(pkg));
    autoscale::install_plugins(ctx, None, &mut desired.steps)?;
    desired.steps.push(Step::new(Service::running(PACKAGE_UNIT)));
    desired.steps.push(checks::runner_config(&config_file(v), RunnerProcess::Unit(PACKAGE_UNIT)));
    Ok(())
}

fn owns(host: &HostFacts, owned: &mut Owned) {
    let Some(v) = &host.runner else { return };
    match v.runner_install {
        Install::Package => owned.log(Some("runner"), PACKAGE_UNIT, true),
        Install::Container => owned.log(Some("runner"), v.runner_container_name.clone(), true),
    }
    owned.config(config_file(v), ConfigFormat::Toml);
}
