//! The roles' health checks of what no single resource owns: a docker engine answering on its
//! socket (with the host's registry cache as its mirror), the TLS port refusing a client
//! without a certificate, the registry cache answering `/v2/`. Each reads through `curl` when
//! the host has it (a few ms), else through the docker CLI or openssl.

use crate::engine::Step;
use crate::engine::health::{Check, Health, Request, THOROUGH_VAR};
use crate::resources::docker::Daemon;
use crate::sh::{Cmd, Script};

/// A docker engine answers on `socket` and, when `mirror` is given, uses it as a registry
/// mirror. `logs` prints the engine's log (its container's or its unit's). `daemon`: the
/// engine as the resources see it, when they read its shared facts this run.
pub fn engine(what: &str, socket: &str, mirror: Option<&str>, logs: Cmd, daemon: Option<&Daemon>) -> Step {
    let mut s = Script::new();
    s.set("s", socket).set("m", mirror.unwrap_or(""));
    // The mirror only changes with the daemon's config, and any such change is verified: the
    // probe asks the cheap `/_ping` (or, without curl, whether the socket is there), the verify
    // (`PROVISION_THOROUGH`) asks `/info`, which lists the mirrors and costs the daemon more.
    // In the probe, an engine whose API already answered the shared facts needs no request.
    let answered = daemon.map_or_else(|| "false".to_string(), Daemon::answered_check);
    let ping = Request { url: "http://d/_ping".into(), unix_socket: Some(socket.to_string()), cacert: None };
    s.line(&format!(
        "if [ -z \"${{{THOROUGH_VAR}:-}}\" ]; then m=''; if {answered}; then echo health=ok; exit 0; fi; fi\n\
         if [ -n \"$m\" ]; then\n\
         if command -v curl >/dev/null 2>&1; then info=$(curl -sf --max-time 5 --unix-socket \"$s\" http://d/info)\n\
         else info=$(docker --host=\"unix://$s\" info --format '{{{{json .RegistryConfig.Mirrors}}}}' 2>/dev/null); fi\n\
         else\n{ping_sh}\n\
         if [ -n \"$r\" ]; then case $r in '0 200') info=OK ;; *) info='' ;; esac\n\
         elif [ -n \"${{{THOROUGH_VAR}:-}}\" ]; then info=$(docker --host=\"unix://$s\" version --format '{{{{.Server.Version}}}}' 2>/dev/null)\n\
         elif [ -S \"$s\" ]; then info=socket; else info=''; fi\n\
         fi\n\
         if [ -z \"$info\" ]; then printf 'health=failed\\nwhy=the engine does not answer on %s\\n' \"$s\"; exit 0; fi\n\
         if [ -n \"$m\" ]; then case \"$info\" in *\"\\\"$m\\\"\"*|*\"\\\"$m/\\\"\"*) ;; *) printf 'health=failed\\nwhy=its registry mirror is not %s\\n' \"$m\"; exit 0 ;; esac; fi\n\
         echo health=ok",
        ping_sh = ping.sh()
    ));
    let mut health = Health::new(s.into_string()).evidence(logs.render());
    // An engine whose API answered the shared facts needs no request of its own in the probe.
    if daemon.is_none() {
        health = health.request(ping);
    }
    let mut check = Check::new(what.to_string(), health);
    check.facts = daemon.map(|d| d.facts()).into_iter().collect();
    Step::new(check)
}

/// The last lines of the log of `container` (on the host daemon).
fn container_logs(container: &str) -> Cmd {
    Cmd::new("docker").args(["logs", "--tail", "8"]).end_of_options().arg(container)
}

/// The last lines of `unit`'s journal.
pub fn journal(unit: &str) -> Cmd {
    Cmd::new("journalctl").args(["-n", "8", "--no-pager", "-o", "cat", "-u"]).arg(unit)
}

/// The TLS port answers a TLS handshake verified with `ca` and refuses a client without a
/// certificate (the host holds no client key, and needs none for this). `unit` holds the port.
pub fn tls(address: &str, port: u16, ca: &str, unit: &str) -> Step {
    let target = if matches!(address, "" | "0.0.0.0" | "::") { "127.0.0.1" } else { address };
    let mut s = Script::new();
    s.set("a", target).set("p", &port.to_string()).set("ca", ca);
    let req = Request { url: format!("https://{target}:{port}/version"), unix_socket: None, cacert: Some(ca.to_string()) };
    s.line(&req.sh());
    s.line(
        "if [ -n \"$r\" ]; then\n\
         rc=${r%% *}\n\
         case $rc in\n\
         35|56) echo health=ok ;;\n\
         0) printf 'health=failed\\nwhy=port %s answers without a client certificate\\n' \"$p\" ;;\n\
         7) printf 'health=failed\\nwhy=nothing listens on %s:%s\\n' \"$a\" \"$p\" ;;\n\
         60|77|51) printf 'health=failed\\nwhy=the certificate on port %s is not one %s signed\\n' \"$p\" \"$ca\" ;;\n\
         *) printf 'health=failed\\nwhy=no TLS answer on %s:%s (curl exit %s)\\n' \"$a\" \"$p\" \"$rc\" ;;\n\
         esac\n\
         else\n\
         out=$(openssl s_client -connect \"$a:$p\" -CAfile \"$ca\" -verify_return_error </dev/null 2>&1)\n\
         case \"$out\" in\n\
         *'Verify return code: 0 (ok)'*) echo health=ok ;;\n\
         *) printf 'health=failed\\nwhy=no verified TLS handshake on %s:%s\\n' \"$a\" \"$p\" ;;\n\
         esac\n\
         fi",
    );
    Step::new(Check::new(format!("docker TLS on port {port}"), Health::new(s.into_string()).evidence(journal(unit).render()).request(req)))
}

/// The registry cache answers `/v2/` on `address:port` (200, or 401 with auth).
pub fn registry(address: &str, port: u16, container: &str) -> Step {
    let mut s = Script::new();
    let req = Request::new(format!("http://{address}:{port}/v2/"));
    s.set("u", &req.url).set("c", container);
    s.line(&req.sh());
    s.line(
        "if [ -n \"$r\" ]; then code=${r#* }\n\
         else code=$(docker exec \"$c\" wget -q -S -O /dev/null http://127.0.0.1:5000/v2/ 2>&1 | awk '/HTTP\\// { print $2; exit }'); fi\n\
         case \"$code\" in\n\
         200|401) echo health=ok ;;\n\
         *) printf 'health=failed\\nwhy=%s answered %s\\n' \"$u\" \"${code:-nothing}\" ;;\n\
         esac",
    );
    let logs = container_logs(container);
    Step::new(Check::new(format!("registry cache on port {port}"), Health::new(s.into_string()).evidence(logs.render()).request(req)))
}

/// Where gitlab-runner runs: its container on the host daemon, or its systemd unit.
#[derive(Debug, Clone, Copy)]
pub enum RunnerProcess<'a> {
    /// The container of that name.
    Container(&'a str),
    /// The unit of that name (package install).
    Unit(&'a str),
}

/// gitlab-runner has loaded the current `config` (a path on the host): since the file last
/// changed, its log says `Configuration loaded` (it re-reads the file when its mtime changes,
/// within seconds) and no later `Failed to load config`. The container's log is read through
/// the Engine API with curl; without curl the probe skips it (the CLI costs ~50 ms) and the
/// verify uses `docker logs`.
pub fn runner_config(config: &str, process: RunnerProcess) -> Step {
    let mut s = Script::new();
    let (c, u) = match process {
        RunnerProcess::Container(c) => (c, ""),
        RunnerProcess::Unit(u) => ("", u),
    };
    s.set("f", config).set("c", c).set("u", u);
    s.line(&format!(
        "m=$(stat -c %.9Y \"$f\" 2>/dev/null || stat -c %Y \"$f\" 2>/dev/null) || {{ printf 'health=failed\\nwhy=%s is missing\\n' \"$f\"; exit 0; }}\n\
         if [ -z \"$c\" ]; then log=$(journalctl -u \"$u\" --since \"@${{m%.*}}\" -o cat --no-pager 2>/dev/null)\n\
         elif command -v curl >/dev/null 2>&1; then log=$(curl -s --max-time 5 --unix-socket /var/run/docker.sock \"http://d/containers/$c/logs?stdout=1&stderr=1&since=$m\" | tr -d '\\000')\n\
         elif [ -n \"${{{THOROUGH_VAR}:-}}\" ]; then log=$(docker logs --since \"$m\" \"$c\" 2>&1)\n\
         else echo health=ok; exit 0; fi\n\
         case $(printf '%s\\n' \"$log\" | grep -a -e 'Configuration loaded' -e 'Failed to load config' | tail -n 1) in\n\
         *'Configuration loaded'*) echo health=ok ;;\n\
         *'Failed to load config'*) printf 'health=failed\\nwhy=gitlab-runner refused %s (see its log)\\n' \"$f\" ;;\n\
         *) printf 'health=failed\\nwhy=gitlab-runner has not loaded %s since it last changed\\n' \"$f\" ;;\n\
         esac"
    ));
    let logs = match process {
        RunnerProcess::Container(c) => container_logs(c),
        RunnerProcess::Unit(u) => journal(u),
    };
    Step::new(Check::new("gitlab-runner loaded config.toml".to_string(), Health::new(s.into_string()).evidence(logs.render())))
}

/// The build cache server answers on `url` (its bucket on the published address; with `ca`,
/// over TLS verified with it) and refuses a request without keys (403), and its bucket answers
/// `stat` (`with_keys`: the server's own client, run with the server's keys).
pub fn cache_bucket(url: &str, ca: Option<&str>, with_keys: &Cmd, container: &str) -> Step {
    let mut s = Script::new();
    s.set("u", url).set("ca", ca.unwrap_or(""));
    let req = Request { url: url.to_string(), unix_socket: None, cacert: ca.map(str::to_string) };
    s.line(&req.sh());
    s.line(
        "if [ -n \"$r\" ]; then\n\
         code=${r#* }\n\
         case \"$code\" in\n\
         403) ;;\n\
         000) printf 'health=failed\\nwhy=no verified answer from %s\\n' \"$u\"; exit 0 ;;\n\
         *) printf 'health=failed\\nwhy=%s answered %s to a request without keys (expected 403)\\n' \"$u\" \"$code\"; exit 0 ;;\n\
         esac\n\
         fi",
    );
    s.line(&format!(
        "if {} >/dev/null 2>&1; then echo health=ok; else printf 'health=failed\\nwhy=the bucket of %s does not answer\\n' \"$u\"; fi",
        with_keys.render()
    ));
    let logs = container_logs(container);
    Step::new(Check::new(format!("cache server {url}"), Health::new(s.into_string()).evidence(logs.render()).request(req)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(step: &Step, path: &str) -> String {
        let h = step.resource.health().unwrap();
        let out = std::process::Command::new("sh").arg("-c").arg(&h.script).env("PATH", path).output().unwrap();
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn checks_say_what_does_not_answer() {
        let dir = tempfile::tempdir().unwrap();
        let e = engine(
            "dind engine",
            &dir.path().join("none.sock").display().to_string(),
            Some("http://10.0.0.5:5000"),
            Cmd::new("true"),
            None,
        );
        assert_eq!(e.resource.id(), "check dind engine");
        let out = run(&e, "/usr/bin:/bin");
        assert!(out.starts_with("health=failed\nwhy=the engine does not answer on "), "{out}");
        let r = registry("127.0.0.1", 1, "registry-cache");
        let out = run(&r, "/usr/bin:/bin");
        assert!(out.starts_with("health=failed\nwhy=http://127.0.0.1:1/v2/ answered "), "{out}");
        let c = cache_bucket("https://127.0.0.1:1/runner-cache", Some("/nonexistent/ca.crt"), &Cmd::new("true"), "cache-server");
        let out = run(&c, "/usr/bin:/bin");
        assert!(out.starts_with("health=failed\nwhy=no verified answer from https://127.0.0.1:1/runner-cache"), "{out}");
        let t = tls("0.0.0.0", 1, "/nonexistent/ca.pem", "docker.service");
        let out = run(&t, "/usr/bin:/bin");
        assert!(out.starts_with("health=failed\nwhy="), "{out}");
        assert!(t.resource.health().unwrap().script.contains("a=127.0.0.1"), "a wildcard bind is checked on loopback");
    }

    /// A stand-in journalctl (no journal here) printing what the runner logged.
    fn runner_check(log: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        std::fs::write(&config, "concurrent = 1\n").unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let journalctl = bin.join("journalctl");
        std::fs::write(&journalctl, format!("#!/bin/sh\nprintf '%s' '{log}'\n")).unwrap();
        std::fs::set_permissions(&journalctl, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let step = runner_config(&config.display().to_string(), RunnerProcess::Unit("gitlab-runner"));
        run(&step, &format!("{}:/usr/bin:/bin", bin.display()))
    }

    #[test]
    fn the_runner_check_reads_the_last_load_since_the_config_changed() {
        assert_eq!(runner_check("Starting multi-runner\nConfiguration loaded  builds=0\n"), "health=ok\n");
        let refused = runner_check("Configuration loaded  builds=0\nFailed to load config toml: line 3\n");
        assert!(refused.starts_with("health=failed\nwhy=gitlab-runner refused "), "{refused}");
        assert!(!refused.contains("line 3"), "the runner's message (it may quote the file) stays in its log: {refused}");
        let silent = runner_check("Starting multi-runner\n");
        assert!(silent.contains("has not loaded") && silent.contains("since it last changed"), "{silent}");
        assert_eq!(runner_check("Failed to load config x\nConfiguration loaded  builds=0\n"), "health=ok\n", "a later load wins");
    }
}
