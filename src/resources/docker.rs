//! Docker images and containers, on the host daemon or any other daemon socket.

use std::collections::BTreeMap;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::engine::health::{Health, THOROUGH_VAR};
use crate::engine::{Change, Probe, Resource, SharedFact, Upload};
use crate::sh::{Cmd, Kv, Script, check_not_option, check_sha256, upload_path};

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

/// The line the shared facts print instead of containers when the host has no `docker` command.
const NO_CLI: &str = "@no-docker-cli";

/// The first line of a daemon's shared facts when its Engine API answered them (so a check of
/// that engine needs no request of its own, see [`Daemon::answered_check`]).
const ANSWERED: &str = "@answered";

/// awk turning the Engine API's container and image lists and its `/info` (one JSON document a
/// line, each followed by `@sep`) into the lines the CLI path prints. Every object of both lists has one
/// `"Id":"` key, and that sequence cannot occur inside a JSON string (its quotes would be
/// escaped), so splitting on it cuts the lists into one chunk per object.
const API_AWK: &str = r#"function val(c, k) {
  if (match(c, "\"" k "\":\"[^\"]*\"")) return substr(c, RSTART + length(k) + 4, RLENGTH - length(k) - 5)
  return ""
}
/^@sep$/ { part++; if (part == 1) print "@images"; if (part == 2) print "@info"; next }
part == 0 {
  n = split($0, c, /"Id":"/)
  for (i = 2; i <= n; i++) {
    name = ""; if (match(c[i], /"Names":\["[^"]*"/)) name = substr(c[i], RSTART + 10, RLENGTH - 11)
    st = val(c[i], "State"); run = (st == "running" || st == "restarting" || st == "paused") ? "true" : "false"
    # No restart count in the list: `?` marks a container up for less than a minute, which a
    # crash loop shows between two restarts (its health then asks for the count).
    rc = (st == "running" && val(c[i], "Status") ~ /^Up (Less than a second|[0-9]+ seconds?)/) ? "?" : "-"
    printf "%s %s %s %s %s %s\n", name, run, val(c[i], "ImageID"), st, rc, val(c[i], "io.provision.spec")
  }
}
part == 1 {
  n = split($0, c, /"Id":"/)
  for (i = 2; i <= n; i++) {
    id = substr(c[i], 1, index(c[i], "\"") - 1)
    if (!match(c[i], /"RepoTags":\[[^]]*\]/)) continue
    m = split(substr(c[i], RSTART + 12, RLENGTH - 13), t, ",")
    for (j = 1; j <= m; j++) { gsub(/"/, "", t[j]); if (t[j] != "") print t[j], id }
  }
}
part == 2 && match($0, /"LiveRestoreEnabled":(true|false)/) { print "live_restore=" substr($0, RSTART + 21, RLENGTH - 21) }"#;

/// Fails a plan on a host without the `docker` command, naming the package to install (Debian 13
/// ships the CLI apart from the engine). A host without it has no containers to remove, so
/// [`ContainerAbsent`] does not ask.
fn cli_present(kv: &Kv) -> Result<(), String> {
    match kv.get("docker") {
        Some("missing") => Err("the `docker` command is missing on this host: install the docker-cli package (Debian 13 and later; \
             docker.io brings it on Debian 12) or Docker's docker-ce-cli"
            .into()),
        _ => Ok(()),
    }
}

impl Daemon {
    /// Every container's state and every tagged image of this daemon, as lines
    /// `/<name> <running> <image id> <state> <restart count> <spec label>`, then `@images`, then
    /// `<repo:tag> <id>` lines. Read with one curl of two Engine API requests over the daemon's
    /// unix socket when the host has `curl` (one process: the CLI's start-up costs ~40 ms a
    /// call), else with three docker calls; either way once however many containers and images
    /// the roles manage. The API's list has no restart count (`-`): the verify, which needs it to see a
    /// container restarting, asks for the thorough path ([`THOROUGH_VAR`]), the CLI's.
    pub(crate) fn facts(&self) -> SharedFact {
        self.facts_at(0)
    }

    /// The daemon's [`Daemon::facts`] and its live-restore setting (`@info`, then
    /// `live_restore=`): one more request, which costs the daemon several ms (it runs `runc`
    /// and `docker-init` to report their versions).
    pub(crate) fn facts_with_live_restore(&self) -> SharedFact {
        self.facts_at(1)
    }

    fn facts_at(&self, depth: u8) -> SharedFact {
        let docker = self.docker();
        let var = format!("PF_docker_{}", &hex::encode(Sha256::digest(docker.render().as_bytes()))[..8]);
        let format = format!(
            "{{{{.Name}}}} {{{{.State.Running}}}} {{{{.Image}}}} {{{{.State.Status}}}} {{{{.RestartCount}}}} {{{{index .Config.Labels \"{SPEC_LABEL}\"}}}}"
        );
        let inspect = docker.clone().args(["inspect", "--type", "container", "-f", &format]).raw("$ids");
        let images = docker.clone().args(["image", "ls", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]);
        let info = match depth {
            0 => String::new(),
            _ => format!("echo @info\n{} 2>/dev/null\n", docker.clone().args(["info", "-f", "live_restore={{.LiveRestoreEnabled}}"])),
        };
        let api = match self.socket() {
            Some(sock) => {
                let curl = Cmd::new("curl")
                    .args(["-sf", "--fail-early", "--max-time", "10", "--unix-socket", &sock, "-w", "\\n@sep\\n"])
                    .args(["http://d/containers/json?all=1", "http://d/images/json"])
                    .args((depth > 0).then_some("http://d/info"));
                let awk = Cmd::new("awk").arg(API_AWK);
                format!(
                    "if [ -z \"${{{THOROUGH_VAR}:-}}\" ] && command -v curl >/dev/null 2>&1 && api=$({curl} 2>/dev/null); then\n\
                     echo {ANSWERED}\nprintf '%s\\n' \"$api\" | {awk}\nexit 0\nfi\n"
                )
            }
            None => String::new(),
        };
        // Without the CLI every container would look absent: say so instead (see `cli_present`).
        let script = format!(
            "command -v docker >/dev/null 2>&1 || {{ echo {NO_CLI}; exit 0; }}\n{api}\
             ids=$({} 2>/dev/null)\n[ -z \"$ids\" ] || {inspect} 2>/dev/null\necho @images\n{images} 2>/dev/null\n{info}true",
            docker.args(["ps", "-aq"])
        );
        SharedFact { var, script, depth }
    }

    /// sh that succeeds when this daemon's shared facts were read through its Engine API in this
    /// run (the daemon answered): a probe-time engine check then starts no program.
    pub fn answered_check(&self) -> String {
        format!("case \"${{{}:-}}\" in {ANSWERED}*) true ;; *) false ;; esac", self.facts().var)
    }

    /// The daemon's unix socket, when it has one (the Engine API is read through it).
    pub(crate) fn socket(&self) -> Option<String> {
        match &self.host {
            None => Some("/var/run/docker.sock".into()),
            Some(h) => h.strip_prefix("unix://").map(str::to_string),
        }
    }

    /// From this daemon's shared facts (`facts`, their output), `key=value` lines: the
    /// container `name`'s state (`container=absent`, or `container=present` with `running`,
    /// `container_image` and `spec`) and, when `image` is given, that image's id (`image=`, or
    /// `missing_image`). Read here rather than on the host: no program starts there for it.
    fn lookup(facts: &str, name: Option<&str>, image: Option<&str>, missing_image: &str) -> String {
        let facts = DaemonFacts::parse(facts);
        let mut out = String::new();
        if facts.no_cli {
            out.push_str("docker=missing\n");
        }
        if let Some(name) = name {
            let wanted = format!("/{name}");
            match facts.containers.iter().rev().find(|c| c.name == wanted && c.image.is_some()) {
                Some(c) => out.push_str(&format!(
                    "container=present\nrunning={}\ncontainer_image={}\nspec={}\n",
                    c.running,
                    c.image.unwrap_or_default(),
                    c.spec
                )),
                None => out.push_str("container=absent\n"),
            }
        }
        if let Some(image) = image {
            let wanted = listed_name(image);
            let id = facts.images.iter().rev().find(|(tag, _)| *tag == wanted).map_or(missing_image, |(_, id)| id);
            out.push_str(&format!("image={id}\n"));
        }
        out
    }

    /// The `docker` command for this daemon (`--host=` joined to its value, which can then
    /// never be read as an option).
    pub fn docker(&self) -> Cmd {
        match &self.host {
            Some(h) => Cmd::new("docker").arg(format!("--host={h}")),
            None => Cmd::new("docker"),
        }
    }

    /// The `docker` command prefix for this daemon, as sh.
    pub fn cli(&self) -> String {
        self.docker().render()
    }

    fn label(&self) -> String {
        self.host.as_ref().map(|h| format!(" on {h}")).unwrap_or_default()
    }
}

/// One container line of a daemon's shared facts.
pub(crate) struct ContainerLine<'a> {
    /// Its name, with the leading `/`.
    pub name: &'a str,
    /// `true` or `false`.
    pub running: &'a str,
    /// Its image's id, when the line has one.
    pub image: Option<&'a str>,
    /// Its spec label (empty when unlabelled).
    pub spec: &'a str,
}

/// A daemon's shared facts (the output of [`Daemon::facts`]) as read here: the one reader of
/// their lines for every resource that reads them.
pub(crate) struct DaemonFacts<'a> {
    /// The host has no `docker` command.
    pub no_cli: bool,
    /// Every container, in the order listed.
    pub containers: Vec<ContainerLine<'a>>,
    /// `(repo:tag, id)` of every tagged image.
    pub images: Vec<(&'a str, &'a str)>,
    /// The daemon's live-restore (`true`/`false`), when read ([`Daemon::facts_with_live_restore`]).
    pub live_restore: Option<&'a str>,
}

impl<'a> DaemonFacts<'a> {
    /// Parses the facts' lines (see [`Daemon::facts`]).
    pub fn parse(facts: &'a str) -> Self {
        let mut out = DaemonFacts { no_cli: false, containers: Vec::new(), images: Vec::new(), live_restore: None };
        let mut block = 0;
        for line in facts.lines() {
            match line {
                NO_CLI => out.no_cli = true,
                "@images" => block = 1,
                "@info" => block = 2,
                _ => {
                    let f: Vec<&str> = line.split(' ').collect();
                    match block {
                        0 if f.len() >= 2 && f[0].starts_with('/') => out.containers.push(ContainerLine {
                            name: f[0],
                            running: f[1],
                            image: f.get(2).copied(),
                            spec: f.get(5).copied().unwrap_or(""),
                        }),
                        1 if f.len() >= 2 => out.images.push((f[0], f[1])),
                        2 => out.live_restore = line.strip_prefix("live_restore=").or(out.live_restore),
                        _ => {}
                    }
                }
            }
        }
        out
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

impl Image {
    /// The change loading the archive at `local`: uploaded to a private random path, its
    /// sha256 checked on the host before `docker load`, and the loaded image's id checked
    /// against the archive's.
    fn load(&self, local: &std::path::Path, what: Option<String>) -> Result<Change, String> {
        let cannot = |e: super::digest::DigestError| format!("cannot read image archive {}: {e}", local.display());
        let digest = super::digest::sha256(local).map_err(cannot)?;
        let archived = super::image_archive::image_id(local, &self.reference).map_err(cannot)?;
        let remote = upload_path("image.tar");
        let docker = self.daemon.docker();
        let mut s = Script::new();
        s.set("f", &remote).set("r", &self.reference).trap_remove(&["f"]);
        s.line(&check_sha256("\"$f\"", &digest));
        s.line(&format!("{} >/dev/null", docker.clone().args(["load", "-i"]).raw("\"$f\"")));
        let inspect = docker.args(["image", "inspect", "-f", "{{.Id}}"]).end_of_options().raw("\"$r\"");
        s.line(&format!("id=$({inspect} 2>/dev/null) || {{ echo \"the archive does not contain $r\" >&2; exit 1; }}"));
        if let Some(id) = archived {
            s.set("want", &id);
            s.line("[ \"$id\" = \"$want\" ] || { echo \"$r was loaded as $id, not as the archive's $want\" >&2; exit 1; }");
        }
        Ok(Change {
            what: vec![what.unwrap_or_else(|| format!("loaded from {}", local.display()))],
            diff: None,
            script: s.into_string(),
            uploads: vec![Upload { local: local.to_path_buf(), remote }],
        })
    }
}

impl Resource for Image {
    fn id(&self) -> String {
        format!("image {}{}", self.reference, self.daemon.label())
    }

    fn probe(&self) -> Probe {
        if self.reference.contains('@') {
            // Pinned by digest: `image ls` shows no tag to match, ask docker directly (it prints
            // an empty line before failing on a missing image: capture, then decide).
            let inspect = self.daemon.docker().args(["image", "inspect", "-f", "{{.Id}}"]).end_of_options().arg(&self.reference);
            return Probe::Script(format!(
                "command -v docker >/dev/null 2>&1 || echo docker=missing\ni=$({inspect} 2>/dev/null) || i=absent\nprintf 'image=%s\\n' \"$i\""
            ));
        }
        Probe::Shared(self.daemon.facts())
    }

    fn read_shared(&self, facts: &str) -> String {
        Daemon::lookup(facts, None, Some(&self.reference), "absent")
    }

    fn shared_facts(&self) -> Vec<SharedFact> {
        vec![self.daemon.facts()]
    }

    fn plan(&self, state: &str) -> Result<Option<Change>, String> {
        check_not_option("image reference", &self.reference)?;
        let kv = Kv::parse(state)?;
        cli_present(&kv)?;
        let found = kv.require("image")?.trim().to_string();
        let mut what = None;
        if found.starts_with("sha256:") {
            // An archive rebuilt under the same tag holds another image: load it again.
            let archived = match &self.archive {
                Some(local) => super::image_archive::image_id(local, &self.reference)
                    .map_err(|e| format!("cannot read image archive {}: {e}", local.display()))?,
                None => None,
            };
            match archived {
                Some(id) if id != found => {
                    what = Some(format!(
                        "reloaded from {} (the archive holds another image)",
                        self.archive.as_ref().map(|p| p.display().to_string()).unwrap_or_default()
                    ))
                }
                _ => return Ok(None),
            }
        } else if found != "absent" {
            return Err(format!("unexpected image `{found}`"));
        }
        Ok(Some(match &self.archive {
            Some(local) => self.load(local, what)?,
            None => {
                let pull = self.daemon.docker().args(["pull", "-q"]).end_of_options().arg(&self.reference);
                Change::new(vec!["pulled".into()], format!("{pull} >/dev/null\n"))
            }
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

impl Privilege {
    /// Its `docker run` options.
    pub fn run_args(&self) -> Vec<String> {
        match self {
            Privilege::Default => Vec::new(),
            Privilege::Privileged => vec!["--privileged".into()],
            Privilege::AllCapsExcept(drop) => {
                let mut args: Vec<String> = [
                    "--cap-add=ALL",
                    "--security-opt",
                    "seccomp=unconfined",
                    "--security-opt",
                    "apparmor=unconfined",
                    "--security-opt",
                    "systempaths=unconfined",
                    "--cgroupns=host",
                    "-v",
                    "/sys/fs/cgroup:/sys/fs/cgroup:rw",
                ]
                .map(String::from)
                .into();
                args.extend(drop.iter().map(|c| format!("--cap-drop={c}")));
                args
            }
        }
    }
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
    /// The image id the container must run, when known before the run (an image loaded from an
    /// archive in the same apply); else the id the reference has on the host now.
    pub image_id: Option<String>,
    /// Where the container's logs go (`None`: the daemon's default driver).
    pub log_driver: Option<LogDriver>,
}

/// A docker logging driver and its options (`--log-driver`, `--log-opt`).
#[derive(Debug, Clone, PartialEq)]
pub struct LogDriver {
    /// Driver name, e.g. `awslogs`.
    pub name: String,
    /// Its options, e.g. `awslogs-group`.
    pub options: BTreeMap<String, String>,
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
            image_id: None,
            log_driver: None,
        }
    }

    /// Hash of the exact `docker run` arguments: any change in what the container is created
    /// with, including how provision renders a spec, recreates it.
    pub fn spec_hash(&self) -> String {
        hex::encode(Sha256::digest(self.run_args().as_bytes()))[..16].to_string()
    }

    fn run_script(&self) -> String {
        let run = self.daemon.docker().args(["run", "-d", "--label", &format!("{SPEC_LABEL}={}", self.spec_hash())]);
        format!("{run} {} >/dev/null\n", self.run_args())
    }

    /// Everything after `docker run -d`, but the spec label. Its rendering is what the spec
    /// hash is taken of: changing it recreates every container, so it stays as it is.
    fn run_args(&self) -> String {
        let mut args = Cmd::tail().arg("--name").arg(&self.name).arg("--restart").arg(&self.restart);
        args = args.arg("--stop-timeout").arg(self.stop_timeout.to_string());
        if let Some(sig) = &self.stop_signal {
            args = args.arg("--stop-signal").arg(sig);
        }
        if let Some(n) = &self.network {
            args = args.arg("--network").arg(n);
        }
        args = args.args(self.privilege.run_args());
        for (k, v) in &self.labels {
            args = args.arg("--label").arg(format!("{k}={v}"));
        }
        for (k, v) in &self.env {
            args = args.arg("-e").arg(format!("{k}={v}"));
        }
        for v in &self.volumes {
            args = args.arg("-v").arg(v);
        }
        for p in &self.ports {
            args = args.arg("-p").arg(p);
        }
        // Only when set, so containers created before this option keep their spec.
        if let Some(d) = &self.log_driver {
            args = args.arg("--log-driver").arg(&d.name);
            for (k, v) in &d.options {
                args = args.arg("--log-opt").arg(format!("{k}={v}"));
            }
        }
        args.arg(&self.image).args(&self.command).render()
    }

    fn remove_script(&self) -> String {
        let docker = self.daemon.docker();
        let stop = docker.clone().args(["stop", "-t", &self.stop_timeout.to_string()]).end_of_options().arg(&self.name);
        let rm = docker.args(["rm", "-f"]).end_of_options().arg(&self.name);
        format!("{stop} >/dev/null 2>&1 || true\n{rm} >/dev/null\n")
    }

    /// Refuses a name or image that docker would read as an option.
    fn check(&self) -> Result<(), String> {
        check_not_option("container name", &self.name)?;
        check_not_option("image reference", &self.image)
    }
}

impl Resource for Container {
    fn id(&self) -> String {
        format!("container {}{}", self.name, self.daemon.label())
    }

    fn probe(&self) -> Probe {
        Probe::Shared(self.daemon.facts())
    }

    fn read_shared(&self, facts: &str) -> String {
        Daemon::lookup(facts, Some(&self.name), Some(&self.image), "none")
    }

    fn shared_facts(&self) -> Vec<SharedFact> {
        vec![self.daemon.facts()]
    }

    fn plan(&self, state: &str) -> Result<Option<Change>, String> {
        self.check()?;
        let kv = Kv::parse(state)?;
        cli_present(&kv)?;
        let image_now = kv.require("image")?;
        let create = || self.run_script();
        match kv.require("container")? {
            "absent" => Ok(Some(Change::new(vec!["created".into()], create()))),
            "present" => {
                let (running, image_id) = (kv.require("running")?, kv.require("container_image")?);
                if !matches!(running, "true" | "false") || !image_id.starts_with("sha256:") {
                    return Err(format!("unexpected container state running={running} container_image={image_id}"));
                }
                let label = kv.get("spec").unwrap_or("");
                let mut why = Vec::new();
                if label != self.spec_hash() {
                    why.push("spec changed");
                }
                let want = self.image_id.as_deref().unwrap_or(image_now);
                if want != "none" && image_id != want {
                    why.push("image changed");
                }
                if !why.is_empty() {
                    let what = vec![format!("recreated ({})", why.join(", "))];
                    return Ok(Some(Change::new(what, format!("{}{}", self.remove_script(), create()))));
                }
                if running == "true" {
                    return Ok(None);
                }
                let start = self.daemon.docker().arg("start").end_of_options().arg(&self.name);
                Ok(Some(Change::new(vec!["started".into()], format!("{start} >/dev/null\n"))))
            }
            other => Err(format!("unexpected container state `{other}`")),
        }
    }

    /// Running, not restarting (the restart count is part of the output, so a verify sees it
    /// climb), from the shared facts; the log's tail as evidence.
    fn health(&self) -> Option<Health> {
        let judge = HEALTH_SH.replace("@NO_CLI", NO_CLI).replace("@FACTS", &self.daemon.facts().var);
        let logs = self.daemon.docker().args(["logs", "--tail", "60"]).end_of_options().arg(&self.name);
        // A Go program's panic ends in its goroutines' stacks: keep the message, not the frames.
        let evidence = format!("{} 2>&1 | grep -v -E -e '^[[:space:]]' -e '^goroutine ' -e '^$' -e '^[^ (]+\\(.*\\)$'", logs.render());
        // Up less than a minute (`restarts=?`): ask the engine for the restart count, so a
        // crash loop seen between two restarts is not taken for a healthy container.
        let recent = match self.daemon.socket() {
            Some(sock) => {
                let inspect = Cmd::new("curl")
                    .args(["-sf", "--max-time", "5", "--unix-socket", &sock])
                    .arg(format!("http://d/containers/{}/json", self.name));
                format!(
                    "\ncase $h in *restarts=\\?*) n=$({inspect} 2>/dev/null | sed -n 's/.*\"RestartCount\":\\([0-9]*\\).*/\\1/p'); \
                     if [ \"${{n:-0}}\" -gt 0 ]; then h=$(printf 'health=failed\\nwhy=the container has restarted %s times and has been up less than a minute' \"$n\"); fi ;; esac"
                )
            }
            None => String::new(),
        };
        let name = crate::sh::quote(&self.name);
        Some(Health::new(format!("n={name}\n{judge}{recent}\nprintf '%s\\n' \"$h\"")).evidence(evidence))
    }

    /// One restart: a container crash-looping since its last change may have hit a passing
    /// fault (the verify tells whether it helped).
    fn repair(&self) -> Option<Change> {
        let restart = self.daemon.docker().args(["restart", "-t", &self.stop_timeout.to_string()]).end_of_options().arg(&self.name);
        Some(Change::new(vec!["restarted (unhealthy)".into()], format!("{restart} >/dev/null\n")))
    }
}

/// sh judging the container `$n` from the shared facts' lines (`@FACTS`: their variable) into
/// `$h`, with the shell's own `read` (the probe starts no program for it).
const HEALTH_SH: &str = r#"nocli=''; found=''; st=''; rc=''
while read -r cn cr ci cs cc cl; do
  case $cn in
    @NO_CLI) nocli=1 ;;
    @images) break ;;
    "/$n") found=1; st=$cs; rc=$cc ;;
  esac
done <<EOF
$@FACTS
EOF
if [ -n "$nocli" ]; then h='health=failed
why=the docker command is missing'
elif [ -z "$found" ]; then h='health=failed
why=no such container'
elif [ "$st" = running ]; then h="health=ok
restarts=$rc"
elif [ "$rc" != - ]; then h="health=failed
why=the container is $st, restarted $rc times"
else h="health=failed
why=the container is $st"
fi"#;

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

    fn probe(&self) -> Probe {
        Probe::Shared(self.daemon.facts())
    }

    fn read_shared(&self, facts: &str) -> String {
        Daemon::lookup(facts, Some(&self.name), None, "none")
    }

    fn shared_facts(&self) -> Vec<SharedFact> {
        vec![self.daemon.facts()]
    }

    fn plan(&self, state: &str) -> Result<Option<Change>, String> {
        check_not_option("container name", &self.name)?;
        match Kv::parse(state)?.require("container")? {
            "absent" => Ok(None),
            "present" => {
                let rm = self.daemon.docker().args(["rm", "-f"]).end_of_options().arg(&self.name);
                Ok(Some(Change::new(vec!["removed".into()], format!("{rm} >/dev/null\n"))))
            }
            other => Err(format!("unexpected container state `{other}`")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn present(running: &str, image: &str, spec: &str, now: &str) -> String {
        format!("container=present\nrunning={running}\ncontainer_image={image}\nspec={spec}\nimage={now}\n")
    }

    #[test]
    fn a_host_without_the_docker_command_is_told_which_package_to_install() {
        let missing = "docker=missing\ncontainer=absent\nimage=none\n";
        let e = Container::new("dind", "docker:dind").plan(missing).unwrap_err();
        assert!(e.contains("`docker` command is missing") && e.contains("docker-cli"), "{e}");
        let e = Image { reference: "registry:2".into(), archive: None, daemon: Daemon::default() }.plan(missing).unwrap_err();
        assert!(e.contains("docker-cli"), "{e}");
        let absent = ContainerAbsent { name: "gitlab-runner".into(), daemon: Daemon::default() };
        assert!(absent.plan(missing).unwrap().is_none(), "no docker, no container to remove");
        assert!(Daemon::default().facts().script.starts_with("command -v docker"));
    }

    fn run_awk(program: &str, env: &[(&str, &str)], input: &str) -> String {
        use std::io::Write;
        let mut child = std::process::Command::new("awk")
            .arg(program)
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()
    }

    #[test]
    fn the_engine_api_lists_read_as_the_cli_prints_them() {
        let containers = r#"[{"Id":"abc","Names":["/registry-cache"],"Image":"registry:2","ImageID":"sha256:111","Labels":{"io.provision.spec":"0123456789abcdef","x":"{\"Id\":\"fake\"}"},"State":"running","Status":"Up 2 hours","NetworkSettings":{"Networks":{"bridge":{"NetworkID":"n1","EndpointID":"e1"}}},"Mounts":[]},{"Id":"def","Names":["/dind"],"Image":"docker:dind","ImageID":"sha256:222","Labels":{},"State":"restarting","Status":"Restarting (1) 2 seconds ago"}]"#;
        let containers = containers.replace(
            "}]",
            r#"},{"Id":"ghi","Names":["/new"],"ImageID":"sha256:333","Labels":{},"State":"running","Status":"Up Less than a second"}]"#,
        );
        let images = r#"[{"Containers":-1,"Created":1,"Id":"sha256:111","Labels":null,"ParentId":"","RepoDigests":["registry@sha256:x"],"RepoTags":["registry:2","localhost:5000/r:2"],"Size":1},{"Containers":-1,"Id":"sha256:333","ParentId":"","RepoTags":[]}]"#;
        let info = r#"{"ID":"x","Containers":3,"Driver":"overlay2","LiveRestoreEnabled":true,"Name":"h","Labels":["Id"]}"#;
        let out = run_awk(API_AWK, &[], &format!("{containers}\n@sep\n{images}\n@sep\n{info}\n@sep\n"));
        assert_eq!(
            out,
            "/registry-cache true sha256:111 running - 0123456789abcdef\n/dind true sha256:222 restarting - \n/new true sha256:333 running ? \n@images\n\
             registry:2 sha256:111\nlocalhost:5000/r:2 sha256:111\n@info\nlive_restore=true\n"
        );
        // What each resource reads from them, here rather than on the host.
        assert_eq!(
            Daemon::lookup(&out, Some("registry-cache"), Some("registry:2"), "none"),
            "container=present\nrunning=true\ncontainer_image=sha256:111\nspec=0123456789abcdef\nimage=sha256:111\n"
        );
        assert_eq!(
            Daemon::lookup(&out, Some("dind"), None, "none"),
            "container=present\nrunning=true\ncontainer_image=sha256:222\nspec=\n"
        );
        assert_eq!(Daemon::lookup(&out, Some("registry"), Some("docker:dind"), "none"), "container=absent\nimage=none\n");
        assert_eq!(Daemon::lookup(&out, None, Some("docker.io/library/registry:2"), "absent"), "image=sha256:111\n");
        assert_eq!(
            Daemon::lookup("@no-docker-cli\n", Some("dind"), Some("docker:dind"), "none"),
            "docker=missing\ncontainer=absent\nimage=none\n"
        );
        let facts = Daemon::default().facts().script;
        assert!(facts.contains("--unix-socket /var/run/docker.sock") && facts.contains("ids=$(docker ps -aq"), "{facts}");
        assert!(!Daemon { host: Some("tcp://h:2376".into()) }.facts().script.contains("curl"), "no socket, no API read");
        // An engine check reads whether the API answered the facts: only the API path marks them.
        let answered = |facts: &str| {
            let d = Daemon::default();
            std::process::Command::new("/bin/sh").args(["-c", &d.answered_check()]).env(d.facts().var, facts).status().unwrap().success()
        };
        assert!(answered("@answered\n/registry-cache true sha256:111 running - x\n@images\n"));
        assert!(!answered("@images\n"), "the CLI fallback (or a daemon that is down) proves nothing");
        assert!(facts.contains("echo @answered\n"), "{facts}");
    }

    #[test]
    fn container_health_from_the_facts() {
        let judge = |lines: &str| {
            let h = Container::new("dind", "docker:dind").health().unwrap();
            let o = std::process::Command::new("/bin/sh")
                .args(["-c", &h.script])
                .env("PATH", "/nonexistent")
                .env(Daemon::default().facts().var, lines)
                .output()
                .unwrap();
            String::from_utf8(o.stdout).unwrap()
        };
        assert_eq!(judge("/dind true sha256:2 running 0 abc\n@images\n"), "health=ok\nrestarts=0\n");
        assert_eq!(
            judge("@answered\n/dind true sha256:2 running - abc\n@images\n"),
            "health=ok\nrestarts=-\n",
            "the API's mark is no container"
        );
        assert_eq!(judge("/dind true sha256:2 restarting 7 abc\n"), "health=failed\nwhy=the container is restarting, restarted 7 times\n");
        assert_eq!(judge("/dind true sha256:2 restarting - \n"), "health=failed\nwhy=the container is restarting\n");
        assert_eq!(judge("/other true sha256:2 running 0 abc\n@images\n/dind x\n"), "health=failed\nwhy=no such container\n");
        assert_eq!(judge("@no-docker-cli\n"), "health=failed\nwhy=the docker command is missing\n");
        assert_eq!(
            judge("/dind' x\n/dind true sha256:2 exited 3 abc\n"),
            "health=failed\nwhy=the container is exited, restarted 3 times\n"
        );
        let h = Container::new("dind", "docker:dind").health().unwrap();
        assert!(h.in_probe && h.evidence.as_deref().unwrap().starts_with("docker logs --tail 60 -- dind 2>&1 | grep -v"), "{h:?}");
        let frames = "panic: unable to configure proxy: dial tcp 127.0.0.1:9: connection refused\n\ngoroutine 1 [running]:\n\
                      main.main()\n\tgithub.com/docker/distribution/cmd/registry/main.go:22 +0x25\n\
                      github.com/spf13/cobra.(*Command).execute(0x17653c0, {0xc0000412a0, 0x1})\n";
        let script = h.evidence.unwrap().replace("docker logs --tail 60 -- dind", &format!("printf '%s' {}", crate::sh::quote(frames)));
        let out = std::process::Command::new("sh").arg("-c").arg(&script).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "panic: unable to configure proxy: dial tcp 127.0.0.1:9: connection refused\n");
        assert_eq!(Container::new("dind", "docker:dind").repair().unwrap().script, "docker restart -t 10 -- dind >/dev/null\n");
    }

    #[test]
    fn a_container_up_for_seconds_is_judged_by_its_restart_count() {
        let dir = tempfile::tempdir().unwrap();
        let curl = dir.path().join("curl");
        let h = Container::new("dind", "docker:dind").health().unwrap();
        let var = Daemon::default().facts().var;
        let judge = |restarts: &str, facts: &str| {
            std::fs::write(&curl, format!("#!/bin/sh\necho '{{\"Id\":\"x\",\"RestartCount\":{restarts},\"Name\":\"/dind\"}}'\n")).unwrap();
            std::fs::set_permissions(&curl, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
            let o = std::process::Command::new("/bin/sh")
                .args(["-c", &h.script])
                .env("PATH", format!("{}:/usr/bin:/bin", dir.path().display()))
                .env(&var, facts)
                .output()
                .unwrap();
            String::from_utf8(o.stdout).unwrap()
        };
        let recent = "@answered\n/dind true sha256:2 running ? abc\n@images\n";
        assert_eq!(judge("4", recent), "health=failed\nwhy=the container has restarted 4 times and has been up less than a minute\n");
        assert_eq!(judge("0", recent), "health=ok\nrestarts=?\n", "just created or restarted by hand: fine");
        let settled = "@answered\n/dind true sha256:2 running - abc\n@images\n";
        assert_eq!(judge("4", settled), "health=ok\nrestarts=-\n", "up for a minute or more: no request");
    }

    #[test]
    fn container_plans() {
        let c = Container::new("reg", "registry:2");
        let h = c.spec_hash();
        assert_eq!(c.plan("container=absent\nimage=none").unwrap().unwrap().what, ["created"]);
        assert!(c.plan(&present("true", "sha256:a", &h, "sha256:a")).unwrap().is_none());
        assert_eq!(c.plan(&present("false", "sha256:a", &h, "sha256:a")).unwrap().unwrap().what, ["started"]);
        assert_eq!(c.plan(&present("true", "sha256:a", &h, "sha256:b")).unwrap().unwrap().what, ["recreated (image changed)"]);
        let mut c2 = c.clone();
        c2.env.insert("A".into(), "1".into());
        let ch = c2.plan(&present("true", "sha256:a", &h, "sha256:a")).unwrap().unwrap();
        assert_eq!(ch.what, ["recreated (spec changed)"]);
        assert!(ch.script.contains("-e A=1") && ch.script.contains("stop -t 10"), "{}", ch.script);
        assert!(c.plan("container=present").is_err(), "truncated");
        assert!(c.plan(&present("maybe", "x", "y", "sha256:a")).is_err());
    }

    #[test]
    fn the_run_arguments_render_as_before_so_no_container_is_recreated_by_an_upgrade() {
        let mut c = Container::new("dind", "docker:dind");
        c.command = vec!["--host=unix:///x".into(), "a b".into()];
        c.env.insert("K".into(), "v w".into());
        c.volumes.push("/a:/b".into());
        c.ports.push("127.0.0.1:5000:5000".into());
        c.labels.insert("l".into(), "1".into());
        c.stop_signal = Some("SIGQUIT".into());
        c.network = Some("host".into());
        c.privilege = Privilege::AllCapsExcept(vec!["SYS_RESOURCE".into()]);
        assert_eq!(
            c.run_args(),
            "--name dind --restart always --stop-timeout 10 --stop-signal SIGQUIT --network host --cap-add=ALL \
             --security-opt seccomp=unconfined --security-opt apparmor=unconfined --security-opt systempaths=unconfined \
             --cgroupns=host -v /sys/fs/cgroup:/sys/fs/cgroup:rw --cap-drop=SYS_RESOURCE --label l=1 -e 'K=v w' -v /a:/b \
             -p 127.0.0.1:5000:5000 docker:dind --host=unix:///x 'a b'"
        );
    }

    #[test]
    fn option_like_names_and_images_are_refused() {
        let c = Container::new("x", "-v/:/host");
        assert!(c.plan("container=absent\nimage=none").is_err());
        let c = Container::new("--privileged", "img");
        assert!(c.plan("container=absent\nimage=none").is_err());
        let i = Image { reference: "-v/:/host".into(), archive: None, daemon: Daemon::default() };
        assert!(i.plan("image=absent").is_err());
        let other = Daemon { host: Some("-x".into()) };
        assert!(other.cli().starts_with("docker --host=-x"), "{}", other.cli());
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
    fn an_archive_goes_to_a_private_random_upload_checked_before_and_after_loading() {
        let dir = tempfile::tempdir().unwrap();
        let id = "a".repeat(64);
        let manifest = format!(r#"[{{"Config":"{id}.json","RepoTags":["x:1"]}}]"#);
        let tar = super::super::image_archive::test_tar(&[("manifest.json", manifest.as_bytes())]);
        let local = dir.path().join("x.tar");
        std::fs::write(&local, &tar).unwrap();
        let i = Image { reference: "x:1".into(), archive: Some(local.clone()), daemon: Daemon::default() };
        let a = i.plan("image=absent").unwrap().unwrap();
        let b = i.plan("image=absent").unwrap().unwrap();
        let remote = &a.uploads[0].remote;
        assert!(remote.starts_with("/var/lib/provision/uploads/") && remote.ends_with(".image.tar"), "{remote}");
        assert_ne!(remote, &b.uploads[0].remote, "two runs never share an upload");
        let sha = hex::encode(Sha256::digest(&tar));
        let s = &a.script;
        assert!(s.find(&sha).unwrap() < s.find("docker load").unwrap(), "the sha256 is checked before loading: {s}");
        assert!(s.contains(&format!("want=sha256:{id}")) && s.contains("not as the archive's"), "the loaded id is checked: {s}");
        assert!(i.plan(&format!("image=sha256:{id}")).unwrap().is_none(), "the archive's image is there");
        assert!(i.plan(&format!("image=sha256:{}", "b".repeat(64))).unwrap().unwrap().what[0].starts_with("reloaded from"));
    }

    #[test]
    fn image_plans() {
        let i = Image { reference: "registry:2".into(), archive: None, daemon: Daemon::default() };
        assert!(i.plan("image=sha256:abc").unwrap().is_none());
        assert_eq!(i.plan("image=absent").unwrap().unwrap().what, ["pulled"]);
        assert!(i.plan("").is_err());
        assert!(i.plan("sha256:abc").is_err());
    }
}
