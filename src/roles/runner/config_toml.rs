//! gitlab-runner's `config.toml`, rendered whole from vars, and the tokens read back from the
//! one already on a host (so a re-run keeps registered runners instead of creating new ones).

use std::collections::BTreeMap;

use serde_json::Value as Json;
use toml_edit::{Array, ArrayOfTables, DocumentMut, Item, Table, value};

/// The docker executor's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct DockerSection {
    /// Remote daemon, e.g. `tcp://10.0.1.11:2376` (`None`: the local socket).
    pub host: Option<String>,
    /// Verify the daemon's certificate and present the client certificate.
    pub tls_verify: bool,
    /// Directory with `ca.pem`, `cert.pem`, `key.pem`.
    pub tls_cert_path: Option<String>,
    /// Default job image.
    pub image: String,
    /// Run job containers privileged.
    pub privileged: bool,
    /// Volumes mounted into job containers.
    pub volumes: Vec<String>,
    /// A docker engine started as a service beside every job (`dind: per-job`).
    pub dind_service: Option<DindService>,
}

/// GitLab's "Docker-in-Docker with TLS enabled" service: the only container of a job that runs
/// privileged, reached by the job as `docker`.
#[derive(Debug, Clone, PartialEq)]
pub struct DindService {
    /// The pinned dind image (also the pattern of `allowed_privileged_services`).
    pub image: String,
    /// Arguments for the image's entrypoint (`dockerd-entrypoint.sh` takes bare dockerd flags).
    pub command: Vec<String>,
}

/// The name jobs reach their per-job engine by.
pub const DIND_SERVICE_ALIAS: &str = "docker";

/// The S3 cache settings.
#[derive(Debug, Clone, PartialEq)]
pub struct S3Cache {
    /// S3 endpoint, e.g. `s3.amazonaws.com`.
    pub server_address: String,
    /// Bucket.
    pub bucket_name: String,
    /// Bucket region.
    pub bucket_location: String,
    /// Cache shared between runners.
    pub shared: bool,
    /// Access key and secret key (secrets); `None`: the instance's IAM role.
    pub credentials: Option<(String, String)>,
    /// `Insecure` (plain HTTP) for a server provision runs (`None`: left out, AWS).
    pub insecure: Option<bool>,
}

/// One `[[runners]]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct RunnerSection {
    /// Runner name (also its description in GitLab).
    pub name: String,
    /// GitLab URL.
    pub url: String,
    /// Authentication token (secret).
    pub token: String,
    /// Executor (`docker`, `docker+machine`, `docker-autoscaler`, `shell`).
    pub executor: String,
    /// Concurrent jobs of this runner (`None`: unlimited up to `concurrent`).
    pub limit: Option<u32>,
    /// Environment variables for jobs (`KEY=VALUE`).
    pub environment: Vec<String>,
    /// Docker executor settings.
    pub docker: Option<DockerSection>,
    /// S3 cache.
    pub cache: Option<S3Cache>,
    /// Extra keys for anything else, deep-merged into the section (e.g. `{"docker": {"shm_size": 0}}`).
    pub extra: serde_json::Map<String, Json>,
}

/// Renders the whole file.
pub fn render(concurrent: u32, check_interval: u32, runners: &[RunnerSection]) -> String {
    let mut doc = DocumentMut::new();
    doc.decor_mut().set_prefix("# Managed by provision: local changes are overwritten.\n");
    doc["concurrent"] = value(i64::from(concurrent));
    doc["check_interval"] = value(i64::from(check_interval));
    let mut list = ArrayOfTables::new();
    for r in runners {
        let mut t = Table::new();
        t["name"] = value(&r.name);
        t["url"] = value(&r.url);
        t["token"] = value(&r.token);
        t["executor"] = value(&r.executor);
        if let Some(limit) = r.limit {
            t["limit"] = value(i64::from(limit));
        }
        if !r.environment.is_empty() {
            t["environment"] = value(r.environment.iter().collect::<Array>());
        }
        if let Some(d) = &r.docker {
            let mut dt = Table::new();
            if let Some(h) = &d.host {
                dt["host"] = value(h);
            }
            dt["tls_verify"] = value(d.tls_verify);
            if let Some(p) = &d.tls_cert_path {
                dt["tls_cert_path"] = value(p);
            }
            dt["image"] = value(&d.image);
            dt["privileged"] = value(d.privileged);
            dt["volumes"] = value(d.volumes.iter().collect::<Array>());
            if let Some(s) = &d.dind_service {
                render_dind_service(&mut dt, s);
            }
            t["docker"] = Item::Table(dt);
        }
        if let Some(c) = &r.cache {
            let mut ct = Table::new();
            ct["Type"] = value("s3");
            ct["Shared"] = value(c.shared);
            let mut s3 = Table::new();
            s3["ServerAddress"] = value(&c.server_address);
            s3["BucketName"] = value(&c.bucket_name);
            s3["BucketLocation"] = value(&c.bucket_location);
            if let Some(insecure) = c.insecure {
                s3["Insecure"] = value(insecure);
            }
            if let Some((access, secret)) = &c.credentials {
                s3["AccessKey"] = value(access);
                s3["SecretKey"] = value(secret);
            } else {
                s3["AuthenticationType"] = value("iam");
            }
            ct["s3"] = Item::Table(s3);
            t["cache"] = Item::Table(ct);
        }
        merge(&mut t, &r.extra);
        list.push(t);
    }
    doc["runners"] = Item::ArrayOfTables(list);
    doc.to_string()
}

/// Privileged for the dind service only (the job container keeps `privileged`), and the
/// service itself as a `[[runners.docker.services]]` entry.
fn render_dind_service(docker: &mut Table, s: &DindService) {
    docker["services_privileged"] = value(true);
    docker["allowed_privileged_services"] = value(Array::from_iter([s.image.as_str()]));
    let mut service = Table::new();
    service["name"] = value(&s.image);
    service["alias"] = value(DIND_SERVICE_ALIAS);
    service["command"] = value(s.command.iter().collect::<Array>());
    let mut services = ArrayOfTables::new();
    services.push(service);
    docker["services"] = Item::ArrayOfTables(services);
}

/// Deep-merges JSON (from vars) into a TOML table: mappings merge, anything else replaces.
fn merge(table: &mut Table, extra: &serde_json::Map<String, Json>) {
    for (k, v) in extra {
        match (v, table.get_mut(k)) {
            (Json::Object(inner), Some(Item::Table(existing))) => merge(existing, inner),
            (Json::Object(inner), _) => {
                let mut t = Table::new();
                merge(&mut t, inner);
                table[k.as_str()] = Item::Table(t);
            }
            (other, _) => {
                if let Some(v) = to_value(other) {
                    table[k.as_str()] = value(v);
                }
            }
        }
    }
}

fn to_value(j: &Json) -> Option<toml_edit::Value> {
    Some(match j {
        Json::Bool(b) => (*b).into(),
        Json::Number(n) => match n.as_i64() {
            Some(i) => i.into(),
            None => n.as_f64()?.into(),
        },
        Json::String(s) => s.as_str().into(),
        Json::Array(a) => a.iter().filter_map(to_value).collect::<Array>().into(),
        // TOML has no null; an inline table for nested mappings inside arrays.
        Json::Null => return None,
        Json::Object(o) => {
            let mut t = toml_edit::InlineTable::new();
            for (k, v) in o {
                if let Some(v) = to_value(v) {
                    t.insert(k, v);
                }
            }
            t.into()
        }
    })
}

/// config.toml as shown in plans and diffs: secrets masked from the parsed file (tokens, S3
/// keys, secret `environment` entries, docker-machine's secret options), whatever file the
/// host had.
pub fn redacted(text: &str) -> String {
    if text.is_empty() {
        return String::new();
    }
    crate::roles::redact::redact(text, crate::roles::owned::ConfigFormat::Toml)
}

/// A runner found in an existing config.toml.
#[derive(Debug, Clone, PartialEq)]
pub struct Existing {
    /// Its authentication token (secret).
    pub token: String,
    /// The GitLab it is registered with.
    pub url: String,
}

/// The runners (by name) of an existing config.toml. Text that does not parse yields nothing:
/// the runners are then registered again rather than the run failing.
pub fn tokens(existing: &str) -> BTreeMap<String, Existing> {
    let Ok(doc) = existing.parse::<DocumentMut>() else { return BTreeMap::new() };
    let Some(runners) = doc.get("runners").and_then(Item::as_array_of_tables) else { return BTreeMap::new() };
    runners
        .iter()
        .filter_map(|t| {
            let token = t.get("token")?.as_str()?.to_string();
            let url = t.get("url").and_then(Item::as_str).unwrap_or_default().to_string();
            Some((t.get("name")?.as_str()?.to_string(), Existing { token, url }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runner() -> RunnerSection {
        RunnerSection {
            name: "ci-master-docker".into(),
            url: "https://gitlab.example.com".into(),
            token: "glrt-secret\"quoted".into(),
            executor: "docker".into(),
            limit: Some(4),
            environment: vec!["DOCKER_HOST=unix:///var/run/dind/docker.sock".into()],
            docker: Some(DockerSection {
                host: Some("tcp://10.0.1.11:2376".into()),
                tls_verify: true,
                tls_cert_path: Some("/etc/gitlab-runner/docker-certs".into()),
                image: "alpine:3.20".into(),
                privileged: false,
                volumes: vec!["/cache".into(), "/var/run/provision-dind:/var/run/dind".into()],
                dind_service: None,
            }),
            cache: Some(S3Cache {
                server_address: "s3.amazonaws.com".into(),
                bucket_name: "ci-cache".into(),
                bucket_location: "eu-west-1".into(),
                shared: true,
                credentials: None,
                insecure: None,
            }),
            extra: serde_json::from_str(
                r#"{"docker": {"shm_size": 0, "volumes": ["/cache"]}, "output_limit": 8192, "custom_build_dir": {"enabled": true}}"#,
            )
            .unwrap(),
        }
    }

    #[test]
    fn renders_valid_toml_with_every_section() {
        let text = render(8, 3, &[runner()]);
        let doc: DocumentMut = text.parse().expect("valid TOML");
        assert_eq!(doc["concurrent"].as_integer(), Some(8));
        let r = &doc["runners"].as_array_of_tables().unwrap().get(0).unwrap();
        assert_eq!(r["token"].as_str(), Some("glrt-secret\"quoted"), "values are escaped, not spliced");
        assert_eq!(r["docker"]["host"].as_str(), Some("tcp://10.0.1.11:2376"));
        assert_eq!(r["docker"]["tls_verify"].as_bool(), Some(true));
        assert_eq!(r["docker"]["tls_cert_path"].as_str(), Some("/etc/gitlab-runner/docker-certs"));
        assert_eq!(r["docker"]["shm_size"].as_integer(), Some(0), "extra keys merge into [runners.docker]");
        assert_eq!(r["docker"]["volumes"].as_array().unwrap().len(), 1, "an extra list replaces the rendered one");
        assert_eq!(r["docker"]["image"].as_str(), Some("alpine:3.20"), "merging keeps the other keys");
        assert_eq!(r["cache"]["s3"]["BucketName"].as_str(), Some("ci-cache"));
        assert_eq!(r["output_limit"].as_integer(), Some(8192));
        assert_eq!(r["custom_build_dir"]["enabled"].as_bool(), Some(true));
        assert!(text.starts_with("# Managed by provision"), "{text}");
    }

    #[test]
    fn a_per_job_dind_service_is_the_only_privileged_container() {
        let mut r = runner();
        r.extra = serde_json::Map::new();
        let d = r.docker.as_mut().unwrap();
        d.dind_service =
            Some(DindService { image: "docker:28.5.2-dind".into(), command: vec!["--registry-mirror=http://10.0.1.11:5000".into()] });
        let doc: DocumentMut = render(1, 3, &[r]).parse().expect("valid TOML");
        let docker = &doc["runners"][0]["docker"];
        assert_eq!(docker["privileged"].as_bool(), Some(false), "the job container");
        assert_eq!(docker["services_privileged"].as_bool(), Some(true));
        assert_eq!(docker["allowed_privileged_services"].as_array().unwrap().get(0).unwrap().as_str(), Some("docker:28.5.2-dind"));
        let service = docker["services"].as_array_of_tables().expect("[[runners.docker.services]]").get(0).unwrap();
        assert_eq!(service["name"].as_str(), Some("docker:28.5.2-dind"));
        assert_eq!(service["alias"].as_str(), Some(DIND_SERVICE_ALIAS));
        assert_eq!(service["command"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn diffs_show_no_secret_of_the_parsed_file() {
        let mut r = runner();
        r.environment.push("DEPLOY_TOKEN=env-secret-1".into());
        r.cache.as_mut().unwrap().credentials = Some(("AKIAEXAMPLE".into(), "s3-secret-key-1".into()));
        r.extra.insert(
            "machine".into(),
            serde_json::json!({"MachineOptions": ["amazonec2-region=eu-west-1", "amazonec2-secret-key=aws-secret-1"]}),
        );
        let shown = redacted(&render(1, 3, &[r]));
        for secret in ["glrt-secret", "env-secret-1", "s3-secret-key-1", "aws-secret-1"] {
            assert!(!shown.contains(secret), "{secret} in\n{shown}");
        }
        assert!(shown.contains("amazonec2-region=eu-west-1") && shown.contains("SecretKey = \"***\""), "{shown}");
    }

    #[test]
    fn tokens_are_read_back_by_runner_name() {
        let mut second = runner();
        second.name = "other".into();
        second.token = "glrt-other".into();
        let text = render(2, 3, &[runner(), second]);
        let t = tokens(&text);
        assert_eq!(t["ci-master-docker"].token, "glrt-secret\"quoted");
        assert_eq!(t["other"].token, "glrt-other");
        assert_eq!(t["other"].url, "https://gitlab.example.com");
        assert!(tokens("this is [not toml").is_empty());
        assert!(tokens("concurrent = 1\n").is_empty());
        assert!(tokens("[[runners]]\nname = \"x\"\n").is_empty(), "a runner without a token");
    }
}
