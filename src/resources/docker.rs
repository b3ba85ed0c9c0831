//! Docker images and containers, on the host daemon or any other daemon socket.

use std::collections::BTreeMap;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::{first_line, q};
use crate::engine::{Change, Resource, SharedFact, Upload};

/// How `docker image ls` shows a reference: without `docker.io/` and `library/`, with `:latest`
/// when no tag is given.
fn listed_name(reference: &str) -> String {
    let r = reference.strip_prefix("docker.io/").unwrap_or(reference);
    let r = r.strip_prefix("library/").unwrap_or(r);
    let last = r.rsplit('/').next().unwrap_or(r);
    if last.contains(':') { r.to_string() } else { format!("{r}:latest") }
}

/// Which docker daemon to talk to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Daemon {
    /// `-H` value (e.g. `unix:///run/docker-ci.sock`); `None` is the host's default daemon.
    pub host: Option<String>,
}

impl Daemon {
    /// Every container's state and every tagged image of this daemon, gathered with three
    /// docker calls however many containers and images the roles manage.
    fn facts(&self) -> SharedFact {
        let docker = self.cli();
        let var = format!("PF_docker_{}", &hex::encode(Sha256::digest(docker.as_bytes()))[..8]);
        let script = format!(
            "ids=$({docker} ps -aq 2>/dev/null)\n\
             [ -z \"$ids\" ] || {docker} inspect --type container -f '{{{{.Name}}}} {{{{.State.Running}}}} {{{{.Image}}}} {{{{index .Config.Labels \"{SPEC_LABEL}\"}}}}' $ids 2>/dev/null\n\
             echo @images\n\
             {docker} image ls --no-trunc --format '{{{{.Repository}}}}:{{{{.Tag}}}} {{{{.ID}}}}' 2>/dev/null\n\
             true"
        );
        SharedFact { var, script }
    }

    /// sh printing, from the gathered facts, the container `name`'s state (or `absent`) and,
    /// when `image` is given, that image's id (or `missing_image`).
    fn lookup(&self, name: Option<&str>, image: Option<&str>, missing_image: &str) -> String {
        let var = self.facts().var;
        let mut awk = String::from("/^@images$/ { imgs = 1; next }\n");
        if name.is_some() {
            awk.push_str("!imgs && $1 == \"/\" n { c = $2 \" \" $3 \" \" $4; found = 1 }\n");
        }
        if image.is_some() {
            awk.push_str("imgs && $1 == r { i = $2 }\n");
        }
        let mut end = Vec::new();
        if name.is_some() {
            end.push("print (found ? c : \"absent\")".to_string());
        }
        if image.is_some() {
            end.push(format!("print (i != \"\" ? i : \"{missing_image}\")"));
        }
        awk.push_str(&format!("END {{ {} }}", end.join("; ")));
        format!(
            "printf '%s\\n' \"${var}\" | awk -v n={} -v r={} {}",
            q(name.unwrap_or("")),
            q(&image.map(listed_name).unwrap_or_default()),
            q(&awk)
        )
    }

    /// The `docker` command prefix for this daemon.
    pub fn cli(&self) -> String {
        match &self.host {
            Some(h) => format!("docker -H {}", q(h)),
            None => "docker".to_string(),
        }
    }

    fn label(&self) -> String {
        self.host.as_ref().map(|h| format!(" on {h}")).unwrap_or_default()
    }
}

/// A docker image present on a daemon: pulled, or loaded from a local `docker save` archive
/// (for hosts that cannot reach a registry).
#[derive(Debug, Clone)]
pub struct Image {
    /// Image reference, e.g. `registry:2`.
    pub reference: String,
    /// A `docker save` tar on this machine to upload and load instead of pulling.
    pub archive: Option<PathBuf>,
    /// The daemon.
    pub daemon: Daemon,
}

impl Resource for Image {
    fn id(&self) -> String {
        format!("image {}{}", self.reference, self.daemon.label())
    }

    fn probe(&self) -> String {
        if self.reference.contains('@') {
            // Pinned by digest: `image ls` shows no tag to match, ask docker directly (it prints
            // an empty line before failing on a missing image: capture, then decide).
            return format!(
                "i=$({} image inspect -f '{{{{.Id}}}}' {} 2>/dev/null) || i=absent\necho \"$i\"",
                self.daemon.cli(),
                q(&self.reference)
            );
        }
        self.daemon.lookup(None, Some(&self.reference), "absent")
    }

    fn shared_facts(&self) -> Vec<SharedFact> {
        vec![self.daemon.facts()]
    }

    fn plan(&self, state: &str) -> Result<Option<Change>, String> {
        let (head, _) = first_line(state);
        let mut what = None;
        if head.starts_with("sha256:") {
            // An archive rebuilt under the same tag holds another image: load it again.
            let archived = match &self.archive {
                Some(local) => super::image_archive::image_id(local, &self.reference)
                    .map_err(|e| format!("cannot read image archive {}: {e}", local.display()))?,
                None => None,
            };
            match archived {
                Some(id) if id != head => {
                    what = Some(format!(
                        "reloaded from {} (the archive holds another image)",
                        self.archive.as_ref().map(|p| p.display().to_string()).unwrap_or_default()
                    ))
                }
                _ => return Ok(None),
            }
        } else if head != "absent" {
            return Err(format!("unexpected `{head}`"));
        }
        let docker = self.daemon.cli();
        let r = q(&self.reference);
        let check = format!(
            "{docker} image inspect {r} >/dev/null 2>&1 || {{ echo 'the archive does not contain {}' >&2; exit 1; }}\n",
            self.reference.replace('\'', "")
        );
        Ok(Some(match &self.archive {
            Some(local) => {
                let digest = super::file_digest(local).map_err(|e| format!("cannot read image archive {}: {e}", local.display()))?;
                let remote = format!("/var/tmp/provision-image-{}.tar", &digest[..16]);
                let script = format!("f={}\ntrap 'rm -f \"$f\"' EXIT\n{docker} load -i \"$f\" >/dev/null\n{check}", q(&remote));
                Change {
                    what: vec![what.unwrap_or_else(|| format!("loaded from {}", local.display()))],
                    diff: None,
                    script,
                    uploads: vec![Upload { local: local.clone(), remote }],
                }
            }
            None => Change::new(vec!["pulled".into()], format!("{docker} pull -q {r} >/dev/null\n")),
        }))
    }
}

/// How much privilege a container gets.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Privilege {
    /// Docker's defaults.
    #[default]
    Default,
    /// `--privileged`.
    Privileged,
    /// What `--privileged` gives an engine-in-a-container (every capability but the listed
    /// ones, no seccomp/apparmor, unmasked /proc and /sys, writable cgroups), for machines where
    /// `--privileged` itself cannot start (some nested or restricted hosts).
    AllCapsExcept(Vec<String>),
}

/// A container with a fully declared spec. It is recreated when the spec or the image behind
/// its reference changes, and started when stopped.
#[derive(Debug, Clone)]
pub struct Container {
    /// Container name.
    pub name: String,
    /// Image reference.
    pub image: String,
    /// Command and arguments (empty: the image's default).
    pub command: Vec<String>,
    /// Environment.
    pub env: BTreeMap<String, String>,
    /// Labels (part of the spec: a label holding a config file's hash makes a config change
    /// recreate the container).
    pub labels: BTreeMap<String, String>,
    /// `-v` mounts, `src:dst[:opts]`.
    pub volumes: Vec<String>,
    /// `-p` publications, `[ip:]host:container`.
    pub ports: Vec<String>,
    /// Restart policy.
    pub restart: String,
    /// Privilege.
    pub privilege: Privilege,
    /// Network (`None`: the default bridge).
    pub network: Option<String>,
    /// Signal for a graceful stop (e.g. SIGQUIT lets gitlab-runner finish jobs).
    pub stop_signal: Option<String>,
    /// Seconds to wait for a graceful stop before killing.
    pub stop_timeout: u32,
    /// The daemon.
    pub daemon: Daemon,
    /// Env values are secret: never shown.
    pub secret_env: bool,
    /// The image id the container must run, when known before the run (an image loaded from an
    /// archive in the same apply); else the id the reference has on the host now.
    pub image_id: Option<String>,
}

/// The label that records which spec a container was created from.
pub const SPEC_LABEL: &str = "io.provision.spec";

impl Container {
    /// A container with restart policy `always` and docker's defaults otherwise.
    pub fn new(name: &str, image: &str) -> Self {
        Container {
            name: name.to_string(),
            image: image.to_string(),
            command: vec![],
            env: BTreeMap::new(),
            labels: BTreeMap::new(),
            volumes: vec![],
            ports: vec![],
            restart: "always".into(),
            privilege: Privilege::Default,
            network: None,
            stop_signal: None,
            stop_timeout: 10,
            daemon: Daemon::default(),
            secret_env: false,
            image_id: None,
        }
    }

    /// Hash of the exact `docker run` arguments: any change in what the container is created
    /// with, including how provision renders a spec, recreates it.
    pub fn spec_hash(&self) -> String {
        hex::encode(Sha256::digest(self.run_args().as_bytes()))[..16].to_string()
    }

    fn run_script(&self) -> String {
        let label = format!("--label {}", q(&format!("{SPEC_LABEL}={}", self.spec_hash())));
        format!("{} run -d {label} {} >/dev/null\n", self.daemon.cli(), self.run_args())
    }

    /// Everything after `docker run -d`, but the spec label.
    fn run_args(&self) -> String {
        let mut args = vec![
            format!("--name {}", q(&self.name)),
            format!("--restart {}", q(&self.restart)),
            format!("--stop-timeout {}", self.stop_timeout),
        ];
        if let Some(sig) = &self.stop_signal {
            args.push(format!("--stop-signal {}", q(sig)));
        }
        if let Some(n) = &self.network {
            args.push(format!("--network {}", q(n)));
        }
        match &self.privilege {
            Privilege::Default => {}
            Privilege::Privileged => args.push("--privileged".into()),
            Privilege::AllCapsExcept(drop) => {
                args.push(
                    "--cap-add=ALL --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
                     --security-opt systempaths=unconfined --cgroupns=host -v /sys/fs/cgroup:/sys/fs/cgroup:rw"
                        .into(),
                );
                args.extend(drop.iter().map(|c| format!("--cap-drop={}", q(c))));
            }
        }
        args.extend(self.labels.iter().map(|(k, v)| format!("--label {}", q(&format!("{k}={v}")))));
        args.extend(self.env.iter().map(|(k, v)| format!("-e {}", q(&format!("{k}={v}")))));
        args.extend(self.volumes.iter().map(|v| format!("-v {}", q(v))));
        args.extend(self.ports.iter().map(|p| format!("-p {}", q(p))));
        let cmd: Vec<String> = self.command.iter().map(|c| q(c)).collect();
        format!("{} {} {}", args.join(" "), q(&self.image), cmd.join(" ")).trim_end().to_string()
    }

    fn remove_script(&self) -> String {
        let docker = self.daemon.cli();
        let n = q(&self.name);
        format!("{docker} stop -t {} {n} >/dev/null 2>&1 || true\n{docker} rm -f {n} >/dev/null\n", self.stop_timeout)
    }
}

impl Resource for Container {
    fn id(&self) -> String {
        format!("container {}{}", self.name, self.daemon.label())
    }

    fn probe(&self) -> String {
        self.daemon.lookup(Some(&self.name), Some(&self.image), "none")
    }

    fn shared_facts(&self) -> Vec<SharedFact> {
        vec![self.daemon.facts()]
    }

    fn plan(&self, state: &str) -> Result<Option<Change>, String> {
        let (head, rest) = first_line(state);
        let (image_line, _) = first_line(rest);
        if image_line.is_empty() {
            return Err("missing image line".into());
        }
        let words: Vec<&str> = head.split_whitespace().collect();
        let create = || self.run_script();
        match words.as_slice() {
            ["absent"] => Ok(Some(Change::new(vec!["created".into()], create()))),
            [running, image_id, rest @ ..] => {
                if !matches!(*running, "true" | "false") || !image_id.starts_with("sha256:") {
                    return Err(format!("unexpected `{head}`"));
                }
                let label = rest.first().copied().unwrap_or("");
                let mut why = Vec::new();
                if label != self.spec_hash() {
                    why.push("spec changed");
                }
                let want = self.image_id.as_deref().unwrap_or(image_line);
                if want != "none" && *image_id != want {
                    why.push("image changed");
                }
                if !why.is_empty() {
                    let what = vec![format!("recreated ({})", why.join(", "))];
                    return Ok(Some(Change::new(what, format!("{}{}", self.remove_script(), create()))));
                }
                if *running == "true" {
                    return Ok(None);
                }
                Ok(Some(Change::new(vec!["started".into()], format!("{} start {} >/dev/null\n", self.daemon.cli(), q(&self.name)))))
            }
            _ => Err(format!("unexpected `{head}`")),
        }
    }
}

/// A container that must not exist.
#[derive(Debug, Clone)]
pub struct ContainerAbsent {
    /// Container name.
    pub name: String,
    /// The daemon.
    pub daemon: Daemon,
}

impl Resource for ContainerAbsent {
    fn id(&self) -> String {
        format!("container {}{} (absent)", self.name, self.daemon.label())
    }

    fn probe(&self) -> String {
        self.daemon.lookup(Some(&self.name), None, "none")
    }

    fn shared_facts(&self) -> Vec<SharedFact> {
        vec![self.daemon.facts()]
    }

    fn plan(&self, state: &str) -> Result<Option<Change>, String> {
        match first_line(state).0 {
            "absent" => Ok(None),
            s if s.starts_with("true ") || s.starts_with("false ") => {
                Ok(Some(Change::new(vec!["removed".into()], format!("{} rm -f {} >/dev/null\n", self.daemon.cli(), q(&self.name)))))
            }
            other => Err(format!("unexpected `{other}`")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_plans() {
        let c = Container::new("reg", "registry:2");
        let h = c.spec_hash();
        assert_eq!(c.plan("absent\nnone").unwrap().unwrap().what, ["created"]);
        assert!(c.plan(&format!("true sha256:a {h}\nsha256:a")).unwrap().is_none());
        assert_eq!(c.plan(&format!("false sha256:a {h}\nsha256:a")).unwrap().unwrap().what, ["started"]);
        assert_eq!(c.plan(&format!("true sha256:a {h}\nsha256:b")).unwrap().unwrap().what, ["recreated (image changed)"]);
        let mut c2 = c.clone();
        c2.env.insert("A".into(), "1".into());
        let ch = c2.plan(&format!("true sha256:a {h}\nsha256:a")).unwrap().unwrap();
        assert_eq!(ch.what, ["recreated (spec changed)"]);
        assert!(ch.script.contains("-e A=1") && ch.script.contains("stop -t 10"), "{}", ch.script);
        assert!(c.plan("true").is_err(), "truncated");
        assert!(c.plan("maybe x y\nsha256:a").is_err());
    }

    #[test]
    fn values_are_quoted() {
        let mut c = Container::new("x", "img");
        c.command = vec!["sh".into(), "-c".into(), "echo $(reboot); rm -rf /".into()];
        assert!(c.run_script().contains("sh -c 'echo $(reboot); rm -rf /'"), "{}", c.run_script());
    }

    #[test]
    fn listed_names() {
        assert_eq!(listed_name("registry:2"), "registry:2");
        assert_eq!(listed_name("docker.io/library/registry:2"), "registry:2");
        assert_eq!(listed_name("gitlab/gitlab-runner"), "gitlab/gitlab-runner:latest");
        assert_eq!(listed_name("localhost:5000/x/y"), "localhost:5000/x/y:latest");
        assert_eq!(listed_name("localhost:5000/x/y:1"), "localhost:5000/x/y:1");
    }

    #[test]
    fn image_plans() {
        let i = Image { reference: "registry:2".into(), archive: None, daemon: Daemon::default() };
        assert!(i.plan("sha256:abc").unwrap().is_none());
        assert_eq!(i.plan("absent").unwrap().unwrap().what, ["pulled"]);
        assert!(i.plan("").is_err());
    }
}
