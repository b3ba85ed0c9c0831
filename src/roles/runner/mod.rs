//! The gitlab-runner on master: installed as a container (default) or as a package, its
//! `config.toml` rendered whole from vars, and each runner registered with GitLab through the
//! REST API from this machine ([`registration`]), keeping the tokens GitLab still accepts.

mod autoscale;
pub mod config_toml;
pub mod registration;
mod spec;

use std::sync::Arc;

use super::{Role, RoleContext};
use crate::engine::{Desired, Step};
use crate::error::InputError;
use crate::resources::directory::Directory;
use crate::resources::docker::{Container, ContainerAbsent, Daemon};
use crate::resources::file::File;
use crate::resources::package::Package;
use crate::resources::service::Service;
use crate::vars::schema::{Kind, VarSpec};

/// The runner role.
pub const ROLE: Role = Role { name: "runner", defaults: DEFAULTS, specs: SPECS, build };

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
gitlab_allow_http: false
gitlab_ca_file: ""
gitlab_api_token: ""
gitlab_registration_token: ""
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
    VarSpec { name: "gitlab_allow_http", kind: Kind::Bool, doc: "accept http:// GitLab URLs (tokens cross the network in clear)" },
    VarSpec { name: "gitlab_ca_file", kind: Kind::Str, doc: "PEM file of a private GitLab CA, trusted besides the system store" },
    VarSpec { name: "gitlab_api_token", kind: Kind::Str, doc: "personal access token with `create_runner` (secret)" },
    VarSpec { name: "gitlab_registration_token", kind: Kind::Str, doc: "legacy registration token (secret)" },
    VarSpec { name: "runners", kind: Kind::List, doc: "the runners in config.toml (see the README)" },
];

fn build(ctx: &RoleContext, desired: &mut Desired) -> Result<(), InputError> {
    let config_dir = ctx.str("runner_config_dir");
    let runners = spec::runners(ctx)?;
    let config_path = format!("{config_dir}/config.toml");
    desired.steps.push(Step::new(Directory::new(&config_dir).mode(0o700)));
    let config = registration::RunnerConfig::new(
        config_path.clone(),
        ctx.var("runner_concurrent").as_u64().unwrap_or(4) as u32,
        ctx.var("runner_check_interval").as_u64().unwrap_or(3) as u32,
        runners,
        registration::gitlab_vars(ctx),
    );
    // The placeholder probes what the resolved file will: a secret 0600 file at that path.
    desired.steps.push(Step::deferred(File::new(&config_path, Vec::new()).mode(0o600).secret(), Arc::new(config)));
    match ctx.str("runner_install").as_str() {
        "container" => container(ctx, desired, &config_dir),
        "package" => package(ctx, desired),
        other => Err(ctx.error_at(
            "runner_install",
            format!("runner_install must be `container` or `package`, not `{other}`"),
            "unknown install method",
        )),
    }
}

fn container(ctx: &RoleContext, desired: &mut Desired, config_dir: &str) -> Result<(), InputError> {
    // Switching from the package: its service must not run a second runner on the same config.
    desired.steps.push(Step::new(Service::stopped("gitlab-runner.service")));
    let image = ctx.str("runner_image");
    desired.steps.push(super::image_step(ctx, &image, Daemon::default()));
    let mut c = Container::new(&ctx.str("runner_container_name"), &image);
    c.image_id = super::archived_image_id(ctx, &image);
    c.volumes = vec![format!("{config_dir}:/etc/gitlab-runner")];
    let certs = ctx.str("docker_client_cert_path");
    if !certs.is_empty() && !certs.starts_with(&format!("{config_dir}/")) {
        c.volumes.push(format!("{certs}:{certs}:ro"));
    }
    // SIGQUIT: gitlab-runner stops taking jobs and finishes the running ones before exiting.
    c.stop_signal = Some("SIGQUIT".into());
    c.stop_timeout = ctx.var("runner_stop_timeout").as_u64().unwrap_or(3600) as u32;
    autoscale::keep_state(ctx, &mut c, &mut desired.steps);
    let name = c.name.clone();
    desired.steps.push(Step::new(c));
    autoscale::install_plugins(ctx, Some(&name), &mut desired.steps);
    Ok(())
}

fn package(ctx: &RoleContext, desired: &mut Desired) -> Result<(), InputError> {
    // Switching from the container: the container must not run a second runner.
    desired.steps.push(Step::new(ContainerAbsent { name: ctx.str("runner_container_name"), daemon: Daemon::default() }));
    let mut pkg = Package::new("gitlab-runner");
    let file = ctx.str("runner_package_file");
    if file.is_empty() {
        let key = ctx.str("runner_repo_key_file");
        if key.is_empty() {
            return Err(InputError::plain(format!(
                "{}: runner_install is `package` but neither runner_package_file nor runner_repo_key_file is set",
                ctx.host.vars.host
            ))
            .with_help("download GitLab's key once (https://packages.gitlab.com/runner/gitlab-runner/gpgkey) and set runner_repo_key_file, or set runner_package_file to a .deb/.rpm"));
        }
        let key_bytes =
            std::fs::read(ctx.local_path(&key)).map_err(|e| InputError::plain(format!("cannot read runner_repo_key_file {key}: {e}")))?;
        desired.steps.push(Step::new(Directory::new("/etc/apt/keyrings")));
        desired.steps.push(Step::new(File::new("/etc/apt/keyrings/gitlab-runner.asc", key_bytes)));
        let repo = format!("# Managed by provision.\n{}\n", ctx.str("runner_apt_repo"));
        desired.steps.push(Step::new(File::new("/etc/apt/sources.list.d/gitlab-runner.list", repo)));
        pkg.version = Some(ctx.str("runner_version"));
    } else {
        pkg.file = Some(ctx.local_path(&file));
    }
    desired.steps.push(Step::new(pkg));
    autoscale::install_plugins(ctx, None, &mut desired.steps);
    desired.steps.push(Step::new(Service::running("gitlab-runner.service")));
    Ok(())
}
