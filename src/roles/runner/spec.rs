//! The `runners` var: one entry per `[[runners]]` section, checked key by key, with defaults
//! from the role's vars and the docker host taken from the slave's inventory entry.

use serde_json::{Map, Value as Json};

use super::config_toml::{DIND_SERVICE_ALIAS, DindService, DockerSection, RunnerSection, S3Cache};
use crate::error::InputError;
use crate::gitlab::{Registration, RunnerSpec, Scope};
use crate::roles::topology::{DIND_DIR_IN_CONTAINER, DindEngine};
use crate::roles::{HostFacts, RoleContext};
use crate::vars::secret::Redactor;

/// Keys a `runners` entry may have.
const KEYS: &[&str] = &[
    "name",
    "url",
    "token",
    "runner_type",
    "group_id",
    "project_id",
    "tags",
    "run_untagged",
    "locked",
    "executor",
    "limit",
    "environment",
    "image",
    "privileged",
    "volumes",
    "slave",
    "docker_host",
    "dind",
    "cache",
    "machine",
    "autoscaler",
    "extra",
];

/// A runner to configure and register.
#[derive(Debug, Clone)]
pub struct PlannedRunner {
    /// Its config.toml section (token filled in at registration).
    pub section: RunnerSection,
    /// How it gets a token.
    pub registration: Registration,
    /// What GitLab is told about it.
    pub spec: RunnerSpec,
}

/// Reads and checks the `runners` var.
pub fn runners(ctx: &RoleContext) -> Result<Vec<PlannedRunner>, InputError> {
    let err = |msg: String| ctx.error_at("runners", msg, "in this `runners` list");
    let list = &super::vars(ctx).runners;
    let mut out: Vec<PlannedRunner> = Vec::new();
    for (i, entry) in list.iter().enumerate() {
        let Json::Object(map) = entry else { return Err(err(format!("runners[{i}] must be a mapping with at least `name`"))) };
        let r = Entry { map, at: format!("runners[{i}]"), err: &err };
        if let Some((key, help)) = crate::vars::schema::unknown_key(map, KEYS) {
            return Err(err(format!("{}: unknown key `{key}`", r.at)).with_help(help));
        }
        let planned = planned(ctx, &r)?;
        if out.iter().any(|o| o.section.name == planned.section.name) {
            return Err(err(format!("{}: a second runner named `{}` (names must be unique on a host)", r.at, planned.section.name)));
        }
        out.push(planned);
    }
    Ok(out)
}

/// Where a runner's jobs get a docker engine from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dind {
    /// No engine of their own: jobs see none.
    Off,
    /// The slave's one dind engine, its socket mounted into every job.
    Shared,
    /// A `docker:dind` service started beside every job, removed with it.
    PerJob,
}

/// What a job needs, beside `DOCKER_HOST=tcp://<service alias>:2376`, to reach its per-job
/// engine over TLS, as GitLab documents for "Docker-in-Docker with TLS enabled" (the dind
/// entrypoint writes the client certificates to `$DOCKER_TLS_CERTDIR/client`, the volume shared
/// with the job).
pub const PER_JOB_ENVIRONMENT: &[&str] = &["DOCKER_TLS_CERTDIR=/certs", "DOCKER_TLS_VERIFY=1", "DOCKER_CERT_PATH=/certs/client"];

/// The volume the dind service and the job share for the client certificates.
pub const PER_JOB_CERTS_VOLUME: &str = "/certs/client";

/// config.toml as the `runners` var renders it, tokens left empty (registration fills them in
/// at apply): the sections `provision` writes, without asking GitLab.
pub fn preview(ctx: &RoleContext) -> Result<String, InputError> {
    let v = super::vars(ctx);
    let sections: Vec<RunnerSection> = runners(ctx)?.into_iter().map(|r| r.section).collect();
    Ok(super::config_toml::render(v.runner_concurrent, v.runner_check_interval, &sections))
}

struct Entry<'a> {
    map: &'a Map<String, Json>,
    at: String,
    err: &'a dyn Fn(String) -> InputError,
}

impl Entry<'_> {
    fn str(&self, key: &str) -> Result<Option<String>, InputError> {
        match self.map.get(key) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::String(s)) => Ok(Some(s.clone())),
            Some(Json::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err((self.err)(format!("{}.{key} must be a string", self.at))),
        }
    }

    fn bool(&self, key: &str) -> Result<Option<bool>, InputError> {
        match self.map.get(key) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::Bool(b)) => Ok(Some(*b)),
            Some(Json::String(s)) if matches!(s.as_str(), "yes" | "true") => Ok(Some(true)),
            Some(Json::String(s)) if matches!(s.as_str(), "no" | "false") => Ok(Some(false)),
            Some(_) => Err((self.err)(format!("{}.{key} must be true or false", self.at))),
        }
    }

    /// `dind`: `true` (the shared engine), `per-job` (a service per job) or `false`.
    fn dind(&self) -> Result<Dind, InputError> {
        match self.map.get("dind") {
            None | Some(Json::Null) | Some(Json::Bool(false)) => Ok(Dind::Off),
            Some(Json::Bool(true)) => Ok(Dind::Shared),
            Some(Json::String(s)) => match s.as_str() {
                "per-job" => Ok(Dind::PerJob),
                "true" | "yes" | "shared" => Ok(Dind::Shared),
                "false" | "no" => Ok(Dind::Off),
                other => Err(self.dind_error(other)),
            },
            Some(other) => Err(self.dind_error(&other.to_string())),
        }
    }

    fn dind_error(&self, got: &str) -> InputError {
        (self.err)(format!(
            "{}.dind `{got}`: expected true (the slave's shared dind engine), per-job (a dind service per job) or false",
            self.at
        ))
    }

    fn uint(&self, key: &str) -> Result<Option<u64>, InputError> {
        match self.map.get(key) {
            None | Some(Json::Null) => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| (self.err)(format!("{}.{key} must be a whole number ≥ 0", self.at))),
        }
    }

    fn list(&self, key: &str) -> Result<Vec<String>, InputError> {
        match self.map.get(key) {
            None | Some(Json::Null) => Ok(Vec::new()),
            Some(Json::Array(a)) => a
                .iter()
                .map(|v| match v {
                    Json::String(s) => Ok(s.clone()),
                    Json::Number(n) => Ok(n.to_string()),
                    _ => Err((self.err)(format!("{}.{key} must be a list of strings", self.at))),
                })
                .collect(),
            Some(_) => Err((self.err)(format!("{}.{key} must be a list of strings", self.at))),
        }
    }
}

fn planned(ctx: &RoleContext, r: &Entry) -> Result<PlannedRunner, InputError> {
    let name = r.str("name")?.filter(|n| !n.is_empty()).ok_or_else(|| (r.err)(format!("{}: `name` is required", r.at)))?;
    let url = r.str("url")?.unwrap_or_else(|| super::vars(ctx).gitlab_url.clone());
    if let Err(e) = crate::gitlab::check_url(&url, &super::registration::gitlab_vars(ctx).settings) {
        return Err((r.err)(format!("{}: {e}", r.at)));
    }
    let registration = registration(ctx, r, &name)?;
    let tags = r.list("tags")?;
    let scope = match r.str("runner_type")?.as_deref().unwrap_or("instance_type") {
        "instance" | "instance_type" => Scope::Instance,
        "group" | "group_type" => {
            Scope::Group(r.uint("group_id")?.ok_or_else(|| (r.err)(format!("{}: a group runner needs `group_id`", r.at)))?)
        }
        "project" | "project_type" => {
            Scope::Project(r.uint("project_id")?.ok_or_else(|| (r.err)(format!("{}: a project runner needs `project_id`", r.at)))?)
        }
        other => return Err((r.err)(format!("{}.runner_type `{other}`: expected instance, group or project", r.at))),
    };
    let spec = RunnerSpec {
        description: name.clone(),
        run_untagged: r.bool("run_untagged")?.unwrap_or(tags.is_empty()),
        locked: r.bool("locked")?.unwrap_or(false),
        tags,
        scope,
    };
    let executor = r.str("executor")?.unwrap_or_else(|| "docker".into());
    let mut environment = r.list("environment")?;
    let docker = match executor.as_str() {
        "docker" => Some(docker(ctx, r, &mut environment, true)?),
        // Jobs run on the machines the runner starts, with their own engine.
        e if e.starts_with("docker") => Some(docker(ctx, r, &mut environment, false)?),
        _ => None,
    };
    let mut extra = Map::new();
    match executor.as_str() {
        "docker+machine" => {
            extra.insert(
                "machine".into(),
                super::autoscale::machine(ctx, &name, r.map.get("machine"), &|m| (r.err)(format!("{}.machine: {m}", r.at)))?,
            );
        }
        "docker-autoscaler" => {
            extra.insert(
                "autoscaler".into(),
                super::autoscale::autoscaler(ctx, r.map.get("autoscaler"), &|m| (r.err)(format!("{}.autoscaler: {m}", r.at)))?,
            );
        }
        _ => {}
    }
    match r.map.get("extra") {
        None | Some(Json::Null) => {}
        Some(Json::Object(m)) => merge_json(&mut extra, m),
        Some(_) => return Err((r.err)(format!("{}.extra must be a mapping (merged into the [[runners]] section)", r.at))),
    };
    let cache = if r.bool("cache")?.unwrap_or(true) { cache(ctx, r)? } else { None };
    let mut docker = docker;
    // Autoscaled machines are not provision's hosts: no CA of ours is on them.
    if let (Some(d), Some(c), "docker") = (docker.as_mut(), &cache, executor.as_str()) {
        trust_cache_ca(ctx, r, d, c)?;
    }
    let section = RunnerSection {
        name,
        url,
        token: String::new(),
        executor,
        limit: r.uint("limit")?.map(|l| l as u32),
        environment,
        docker,
        cache,
        extra,
    };
    Ok(PlannedRunner { section, registration, spec })
}

/// Deep-merges `over` into `base`: mappings merge, anything else replaces.
fn merge_json(base: &mut Map<String, Json>, over: &Map<String, Json>) {
    for (k, v) in over {
        match (base.get_mut(k), v) {
            (Some(Json::Object(b)), Json::Object(o)) => merge_json(b, o),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

fn registration(ctx: &RoleContext, r: &Entry, name: &str) -> Result<Registration, InputError> {
    if let Some(t) = r.str("token")?.filter(|t| !t.is_empty()) {
        Redactor::add(&t);
        return Ok(Registration::RunnerToken(t));
    }
    let v = super::vars(ctx);
    if !v.gitlab_api_token.is_empty() {
        return Ok(Registration::AccessToken(v.gitlab_api_token.clone()));
    }
    if !v.gitlab_registration_token.is_empty() {
        return Ok(Registration::RegistrationToken(v.gitlab_registration_token.clone()));
    }
    Err((r.err)(format!("{}: runner `{name}` has no way to register with GitLab", r.at)).with_help(
        "give it `token: glrt-...` (created in GitLab's UI), or set gitlab_api_token (a personal access token with \
         create_runner) or the legacy gitlab_registration_token, e.g. `gitlab_api_token: \"{{ env('GITLAB_TOKEN') }}\"`",
    ))
}

/// `[runners.docker]`: by default the TLS daemon of the first slave, with the client
/// certificates installed on this host.
fn docker(ctx: &RoleContext, r: &Entry, environment: &mut Vec<String>, on_slave: bool) -> Result<DockerSection, InputError> {
    let mut volumes = r.list("volumes")?;
    if volumes.is_empty() {
        volumes.push("/cache".into());
    }
    let slave = if on_slave { slave(ctx, r)? } else { None };
    // The host where jobs run (the slave, else this one).
    let jobs_host: &HostFacts = slave.as_deref().unwrap_or(ctx.facts);
    let mut dind_service = None;
    match r.dind()? {
        Dind::Off => {}
        Dind::Shared => {
            // A path on the jobs' host, beside its dind engine.
            let engine =
                jobs_host.topology.dind.as_ref().ok_or_else(|| {
                    (r.err)(format!("{}.dind: `{}` runs no dind engine (it lacks the dind role)", r.at, jobs_host.name()))
                })?;
            volumes.push(format!("{}:{DIND_DIR_IN_CONTAINER}", engine.host_socket_dir));
            environment.push(format!("DOCKER_HOST=unix://{}", DindEngine::socket_in_container()));
        }
        Dind::PerJob => {
            dind_service = Some(per_job(jobs_host, r)?);
            volumes.push(PER_JOB_CERTS_VOLUME.into());
            environment.push(format!("DOCKER_HOST=tcp://{DIND_SERVICE_ALIAS}:2376"));
            environment.extend(PER_JOB_ENVIRONMENT.iter().map(|e| e.to_string()));
        }
    }
    let host = match r.str("docker_host")? {
        Some(h) if !h.is_empty() => Some(h),
        _ => match &slave {
            Some(s) => Some(s.topology.tcp_url(&s.spec.connection.private_address).ok_or_else(|| {
                (r.err)(format!("{}: slave `{}` has no TLS docker daemon (docker_tls role): set `docker_host`", r.at, s.name()))
            })?),
            None => None,
        },
    };
    let tls = host.as_deref().is_some_and(|h| h.starts_with("tcp://"));
    Ok(DockerSection {
        tls_verify: tls,
        tls_cert_path: tls.then(|| ctx.facts.common.docker_client_cert_path.clone()),
        host,
        image: r.str("image")?.unwrap_or_else(|| super::vars(ctx).runner_job_image.clone()),
        privileged: r.bool("privileged")?.unwrap_or(false),
        volumes,
        dind_service,
    })
}

/// `dind: per-job`: the service runs the jobs' host's pinned `dind_image` (its dind role loads
/// it there, on the daemon builds use), its mirror the host's registry cache so every per-job
/// engine pulls through it instead of from the internet.
fn per_job(jobs_host: &HostFacts, r: &Entry) -> Result<DindService, InputError> {
    let dind = jobs_host.dind.as_ref().ok_or_else(|| {
        (r.err)(format!("{}.dind: per-job runs `{}`'s pinned dind_image, and that host lacks the dind role", r.at, jobs_host.name()))
    })?;
    let command = jobs_host.topology.mirror.iter().map(|m| format!("--registry-mirror={m}")).collect();
    Ok(DindService { image: dind.dind_image.clone(), command })
}

/// The runner's slave (its `slave` key, else the first host of the `slave` group), read from
/// the run's fleet; `None` when there is none (jobs then use the local socket).
fn slave(ctx: &RoleContext, r: &Entry) -> Result<Option<std::sync::Arc<HostFacts>>, InputError> {
    let inv = &ctx.project().inventory;
    let name = match r.str("slave")? {
        Some(n) => {
            if !inv.hosts.contains_key(&n) {
                return Err((r.err)(format!("{}.slave: no host `{n}` in the inventory", r.at)));
            }
            n
        }
        None => match crate::inventory::limit::select(inv, "slave").ok().and_then(|h| h.into_iter().next()) {
            Some(n) => n,
            None => return Ok(None),
        },
    };
    let slave = ctx.fleet.host(&name).map_err(|e| InputError::plain(format!("reading slave `{name}` for {}: {e}", r.at)))?;
    Ok(Some(slave))
}

/// `[runners.cache]`: the S3 bucket of the vars (AWS, or a server set up by hand), else the
/// cache server provision runs for this runner (see [`cache_server_host`]), else none.
fn cache(ctx: &RoleContext, r: &Entry) -> Result<Option<S3Cache>, InputError> {
    let v = super::vars(ctx);
    if v.runner_cache_s3_bucket.is_empty() {
        return cache_server(ctx, r);
    }
    let (access, secret) = (&v.runner_cache_s3_access_key, &v.runner_cache_s3_secret_key);
    Redactor::add(secret);
    Ok(Some(S3Cache {
        server_address: v.runner_cache_s3_server_address.clone(),
        bucket_name: v.runner_cache_s3_bucket.clone(),
        bucket_location: v.runner_cache_s3_region.clone(),
        shared: v.runner_cache_shared,
        credentials: (!access.is_empty()).then(|| (access.clone(), secret.clone())),
        insecure: None,
    }))
}

/// The cache server of the runner's slave, else of the first host of the `cache` group, with
/// the keys provision generated for it; plain HTTP (`Insecure = true`) only when that server
/// was asked to serve it.
fn cache_server(ctx: &RoleContext, r: &Entry) -> Result<Option<S3Cache>, InputError> {
    let Some(host) = cache_server_host(ctx, r)? else { return Ok(None) };
    let server = host.cache_server.as_ref().expect("a cache server host has its vars");
    let keys = crate::certs::cache_keys::read(ctx.certs, host.name())
        .map_err(|e| (r.err)(format!("{}: the keys of cache server `{}`: {e} (run `provision certs generate`)", r.at, host.name())))?;
    Ok(Some(S3Cache {
        server_address: server.server_address(&host.spec.connection.private_address),
        bucket_name: server.cache_server_bucket.clone(),
        bucket_location: crate::roles::cache_server::REGION.into(),
        shared: super::vars(ctx).runner_cache_shared,
        credentials: Some((keys.access_key, keys.secret_key)),
        insecure: Some(!server.cache_server_tls),
    }))
}

/// Where job and helper containers find provision's CA: Go (the runner helper that uploads and
/// downloads the cache) reads every file in `/etc/ssl/certs` besides the system bundle.
pub const CA_IN_JOBS: &str = "/etc/ssl/certs/provision-ca.pem";

/// With provision's own cache server over TLS, its certificate is signed by provision's CA,
/// which no image trusts: the job's host has that CA (its docker TLS directory, or the client
/// certificate directory when jobs run on this host), and `[runners.docker] volumes` mounts it
/// read-only into every container of a job, the helper's included (gitlab-runner binds the same
/// volumes there). config.toml has no CA setting for the cache.
fn trust_cache_ca(ctx: &RoleContext, r: &Entry, docker: &mut DockerSection, cache: &S3Cache) -> Result<(), InputError> {
    if cache.insecure != Some(false) {
        return Ok(());
    }
    let ca = match slave(ctx, r)? {
        Some(s) => s.docker_tls.as_ref().map(|t| format!("{}/ca.pem", t.docker_tls_dir)),
        None => Some(format!("{}/ca.pem", ctx.facts.common.docker_client_cert_path)),
    };
    if let Some(ca) = ca {
        docker.volumes.push(format!("{ca}:{CA_IN_JOBS}:ro"));
    }
    Ok(())
}

/// The host whose cache server the runner uses: its slave when that runs one, else the first
/// host of the `cache` group that runs one.
fn cache_server_host(ctx: &RoleContext, r: &Entry) -> Result<Option<std::sync::Arc<HostFacts>>, InputError> {
    if let Some(s) = slave(ctx, r)?.filter(|s| s.cache_server.is_some()) {
        return Ok(Some(s));
    }
    let inv = &ctx.project().inventory;
    for name in crate::inventory::limit::select(inv, "cache").unwrap_or_default() {
        let host = ctx.fleet.host(&name).map_err(|e| InputError::plain(format!("reading cache host `{name}` for {}: {e}", r.at)))?;
        if host.cache_server.is_some() {
            return Ok(Some(host));
        }
    }
    Ok(None)
}
