//! Differential test against the real peer: every inventory in `tests/fixtures/ansible/` is read
//! by `provision inventory --format json` and by Ansible (`ansible-inventory --list`, and
//! `ansible -m debug` for vars whose value is a template), and hosts, group membership and every
//! var of every host must agree, except the differences listed with their reason in
//! `tests/fixtures/ansible/DIFFERENCES.md`. `ansible-core` is installed from PyPI into a venv under
//! the target directory on first use (as the cloud tests install moto). Vault files are made by
//! the real `ansible-vault`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value as Json, json};

const CORPUS: &str = "tests/fixtures/ansible";

/// The venv's bin directory, with ansible-core installed (once, whichever test asks first), and
/// passlib, which Ansible's `password_hash` needs.
fn ansible_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(install_ansible).clone()
}

fn install_ansible() -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ansible-venv");
    let bin = venv.join("bin");
    let has_passlib = || Command::new(bin.join("python")).args(["-c", "import passlib.hash"]).status().is_ok_and(|s| s.success());
    if bin.join("ansible-inventory").exists() && has_passlib() {
        return bin;
    }
    let venv_ok = || Command::new("python3").args(["-m", "venv"]).arg(&venv).status().is_ok_and(|s| s.success());
    if !venv_ok() {
        // A fresh Debian has python3 without the venv module.
        let _ = Command::new("apt-get").args(["install", "-y", "-q", "python3-venv"]).env("DEBIAN_FRONTEND", "noninteractive").status();
        assert!(venv_ok(), "python3 -m venv failed");
    }
    let ok = Command::new(bin.join("pip")).args(["install", "-q", "ansible-core", "passlib"]).status().is_ok_and(|s| s.success());
    assert!(ok, "pip install ansible-core passlib failed");
    bin
}

/// An environment that keeps Ansible from reading the user's config or writing outside `dir`.
fn ansible_cmd(bin: &Path, tool: &str, dir: &Path) -> Command {
    let cfg = dir.join(".ansible.cfg");
    if !cfg.exists() {
        std::fs::write(&cfg, "[defaults]\n").unwrap();
    }
    let mut c = Command::new(bin.join(tool));
    c.current_dir(dir)
        .env("ANSIBLE_CONFIG", cfg)
        .env("ANSIBLE_HOME", dir.join(".ansible-home"))
        .env("ANSIBLE_LOCAL_TEMP", dir.join(".ansible-tmp"))
        .env("ANSIBLE_DEPRECATION_WARNINGS", "false")
        .env("ANSIBLE_LOCALHOST_WARNING", "false")
        .env("ANSIBLE_INVENTORY_UNPARSED_WARNING", "false")
        .env("ANSIBLE_NOCOLOR", "1")
        .env_remove("ANSIBLE_VAULT_PASSWORD_FILE");
    c
}

/// The inventory file of a case directory.
fn inventory_of(dir: &Path) -> PathBuf {
    for name in ["hosts", "hosts.ini", "inventory.ini", "inventory", "inventory.yml", "inventory.yaml", "inventory.json"] {
        if dir.join(name).is_file() {
            return dir.join(name);
        }
    }
    panic!("no inventory file in {}", dir.display());
}

/// `case/host/var` entries of DIFFERENCES.md (`- case/host/var: reason`), `*` as a wildcard.
fn exceptions() -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(Path::new(CORPUS).join("DIFFERENCES.md")).unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("- `"))
        .filter_map(|l| l.split_once('`'))
        .map(|(key, _)| {
            let mut parts = key.splitn(3, '/');
            let mut next = || parts.next().unwrap_or("*").to_string();
            (next(), next(), next())
        })
        .collect()
}

fn excused(ex: &[(String, String, String)], case: &str, host: &str, var: &str) -> bool {
    let m = |p: &str, v: &str| p == "*" || p == v;
    ex.iter().any(|(c, h, v)| m(c, case) && m(h, host) && m(v, var))
}

/// Host → its groups (transitively, without `all`), from `ansible-inventory --list`.
fn ansible_membership(list: &Json) -> BTreeMap<String, BTreeSet<String>> {
    let groups: Vec<&String> = list.as_object().unwrap().keys().filter(|k| *k != "_meta").collect();
    let mut direct: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for h in list["_meta"]["hostvars"].as_object().into_iter().flatten().map(|(k, _)| k) {
        direct.entry(h.clone()).or_default();
    }
    fn hosts_of(list: &Json, g: &str, out: &mut BTreeSet<String>, seen: &mut BTreeSet<String>) {
        if !seen.insert(g.to_string()) {
            return;
        }
        for h in list[g]["hosts"].as_array().into_iter().flatten() {
            out.insert(h.as_str().unwrap().to_string());
        }
        for c in list[g]["children"].as_array().into_iter().flatten() {
            hosts_of(list, c.as_str().unwrap(), out, seen);
        }
    }
    for g in groups {
        if g == "all" {
            continue;
        }
        let mut hosts = BTreeSet::new();
        hosts_of(list, g, &mut hosts, &mut BTreeSet::new());
        for h in hosts {
            direct.entry(h).or_default().insert(g.clone());
        }
    }
    direct
}

/// Renders `names` for every host with Ansible: `lookup('vars', name)` per var, one task per
/// var so that one failing template does not hide the others. `None` when Ansible fails.
fn ansible_rendered(bin: &Path, dir: &Path, inv: &Path, names: &BTreeSet<String>) -> BTreeMap<(String, String), Option<Json>> {
    let mut out = BTreeMap::new();
    if names.is_empty() {
        return out;
    }
    let tasks: Vec<Json> = names
        .iter()
        .map(|n| json!({"name": n, "debug": {"msg": format!("{{{{ lookup('vars', '{n}') }}}}")}, "ignore_errors": true}))
        .collect();
    let play = json!([{ "hosts": "all", "gather_facts": false, "connection": "local", "tasks": tasks }]);
    let pb = dir.join(".render.yml");
    std::fs::write(&pb, serde_json::to_string(&play).unwrap()).unwrap();
    let o = ansible_cmd(bin, "ansible-playbook", dir)
        .env("ANSIBLE_CALLBACK_RESULT_FORMAT", "json")
        .args(["-i"])
        .arg(inv)
        .args(extra_args(dir))
        .arg(&pb)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&pb);
    // The json callback lives in ansible.posix, which ansible-core lacks: parse the default
    // callback's results (JSON with ANSIBLE_CALLBACK_RESULT_FORMAT=json) instead.
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    let mut task = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some(rest) = line.strip_prefix("TASK [") {
            task = rest.split(']').next().unwrap_or_default().to_string();
            continue;
        }
        let (ok, rest) = if let Some(r) = line.strip_prefix("ok: [") {
            (true, r)
        } else if let Some(r) = line.strip_prefix("fatal: [") {
            (false, r)
        } else {
            continue;
        };
        let host = rest.split(']').next().unwrap_or_default().to_string();
        // The result is a JSON document after `=> `, possibly over several lines.
        let mut doc = rest.split_once("=> ").map(|(_, d)| d.to_string()).unwrap_or_default();
        while serde_json::from_str::<Json>(&doc).is_err() {
            match lines.next() {
                Some(l) => {
                    doc.push('\n');
                    doc.push_str(l);
                }
                None => break,
            }
        }
        let value = serde_json::from_str::<Json>(&doc).ok().filter(|_| ok).map(|d| d["msg"].clone());
        out.insert((host, task.clone()), value);
    }
    out
}

/// Equal, where provision's `***` (a redacted secret, at any depth) matches anything.
fn same(ansible: &Json, provision: &Json) -> bool {
    match (ansible, provision) {
        (_, Json::String(s)) if s == "***" => true,
        (Json::Array(a), Json::Array(p)) => a.len() == p.len() && a.iter().zip(p).all(|(a, p)| same(a, p)),
        (Json::Object(a), Json::Object(p)) => a.len() == p.len() && a.iter().all(|(k, v)| p.get(k).is_some_and(|pv| same(v, pv))),
        _ => ansible == provision,
    }
}

fn contains_template(v: &Json) -> bool {
    match v {
        Json::String(s) => s.contains("{{") || s.contains("{%"),
        Json::Array(a) => a.iter().any(contains_template),
        Json::Object(o) => o.values().any(contains_template),
        _ => false,
    }
}

/// What one case found: (compared values, mismatches).
fn compare_case(bin: &Path, case_dir: &Path, defaults: &BTreeSet<String>, ex: &[(String, String, String)]) -> (usize, Vec<String>) {
    let case = case_dir.file_name().unwrap().to_str().unwrap().to_string();
    let inv = inventory_of(case_dir);
    let mut problems = Vec::new();
    let o = ansible_cmd(bin, "ansible-inventory", case_dir).arg("-i").arg(&inv).arg("--list").args(extra_args(case_dir)).output().unwrap();
    assert!(o.status.success(), "{case}: ansible-inventory failed: {}", String::from_utf8_lossy(&o.stderr));
    let list: Json = serde_json::from_slice(&o.stdout).unwrap();
    let ansible_refused = String::from_utf8_lossy(&o.stderr).contains("Unable to parse");
    let p = Command::new(env!("CARGO_BIN_EXE_provision"))
        .current_dir(case_dir)
        .env_remove("ANSIBLE_VAULT_PASSWORD_FILE")
        .args(["-i", inv.to_str().unwrap(), "inventory", "--format", "json"])
        .args(extra_args(case_dir))
        .output()
        .unwrap();
    // An inventory Ansible refuses must be refused too (as bad input, not a crash).
    match (ansible_refused, p.status.code()) {
        (true, Some(2)) => return (1, Vec::new()),
        (true, _) => return (1, vec![format!("{case}: Ansible refuses this inventory, provision reads it")]),
        (false, Some(0)) => {}
        (false, _) => return (0, vec![format!("{case}: provision failed: {}", String::from_utf8_lossy(&p.stderr))]),
    }
    let doc: Json = serde_json::from_slice(&p.stdout).unwrap();
    let mut a_hosts = list["_meta"]["hostvars"].as_object().cloned().unwrap_or_default();
    let membership = ansible_membership(&list);
    // `--list` leaves hosts without vars out of `_meta.hostvars`.
    for h in membership.keys() {
        a_hosts.entry(h.clone()).or_insert_with(|| json!({}));
    }
    let p_hosts = doc["hosts"].as_object().cloned().unwrap_or_default();
    let a_names: BTreeSet<&String> = a_hosts.keys().collect();
    let p_names: BTreeSet<&String> = p_hosts.keys().collect();
    if a_names != p_names {
        problems.push(format!("{case}: hosts differ: ansible {a_names:?}, provision {p_names:?}"));
    }
    let mut templated = BTreeSet::new();
    let mut templated_at = BTreeSet::new();
    let mut compared = 0;
    for (host, avars) in &a_hosts {
        let Some(pdoc) = p_hosts.get(host) else { continue };
        let mut p_groups: BTreeSet<String> = pdoc["groups"].as_array().unwrap().iter().map(|g| g.as_str().unwrap().to_string()).collect();
        let mut a_groups = membership.get(host).cloned().unwrap_or_default();
        a_groups.remove("ungrouped");
        p_groups.remove("ungrouped");
        if a_groups != p_groups && !excused(ex, &case, host, "(groups)") {
            problems.push(format!("{case}/{host}: groups differ: ansible {a_groups:?}, provision {p_groups:?}"));
        }
        let pvars = pdoc["vars"].as_object().unwrap();
        let avars = avars.as_object().unwrap();
        for (name, av) in avars {
            if excused(ex, &case, host, name) {
                continue;
            }
            if contains_template(av) {
                templated.insert(name.clone());
                templated_at.insert((host.clone(), name.clone()));
                continue;
            }
            compared += 1;
            match pvars.get(name) {
                None => problems.push(format!("{case}/{host}: `{name}` missing in provision (ansible: {av})")),
                Some(pv) if !same(av, pv) => problems.push(format!("{case}/{host}: `{name}`: ansible {av}, provision {pv}")),
                Some(_) => {}
            }
        }
        for name in pvars.keys() {
            if !avars.contains_key(name) && !defaults.contains(name) && !excused(ex, &case, host, name) {
                problems.push(format!("{case}/{host}: `{name}` only in provision"));
            }
        }
    }
    let rendered = ansible_rendered(bin, case_dir, &inv, &templated);
    if !templated.is_empty() && rendered.is_empty() {
        problems.push(format!("{case}: could not read Ansible's rendering of {templated:?}"));
    }
    for ((host, name), av) in rendered {
        if !templated_at.contains(&(host.clone(), name.clone())) || excused(ex, &case, &host, &name) {
            continue;
        }
        compared += 1;
        let pdoc = &p_hosts[&host];
        let pv = &pdoc["vars"][&name];
        let unrendered = pdoc["unrendered"].get(&name).is_some();
        match av {
            None if unrendered => {}
            None => problems.push(format!("{case}/{host}: `{name}`: ansible cannot render it, provision gives {pv}")),
            Some(_) if unrendered => {
                problems.push(format!("{case}/{host}: `{name}`: provision left it unrendered: {}", pdoc["unrendered"][&name]))
            }
            Some(av) if !same(&av, pv) => problems.push(format!("{case}/{host}: `{name}` rendered: ansible {av}, provision {pv}")),
            Some(_) => {}
        }
    }
    (compared, problems)
}

/// `--vault-password-file` for cases that have one.
fn extra_args(dir: &Path) -> Vec<String> {
    let pw = dir.join("vault-pass.txt");
    if pw.exists() { vec!["--vault-password-file".into(), pw.display().to_string()] } else { Vec::new() }
}

/// Copies a case into a scratch directory (vault files and Ansible's temp files go there).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// Adds vault-encrypted vars made by the real `ansible-vault` to the `edge-vault` case: a whole
/// encrypted group_vars file and a `!vault |` value.
fn add_vault_files(bin: &Path, dir: &Path) {
    std::fs::write(dir.join("vault-pass.txt"), "correct horse\n").unwrap();
    let secret_file = dir.join("group_vars/all/vault.yml");
    std::fs::write(&secret_file, "vault_db_password: s3cr3t-from-file\nvault_api_key: key-123456\n").unwrap();
    let ok = ansible_cmd(bin, "ansible-vault", dir)
        .args(["encrypt", "--vault-password-file", "vault-pass.txt"])
        .arg(&secret_file)
        .status()
        .unwrap();
    assert!(ok.success());
    let o = ansible_cmd(bin, "ansible-vault", dir)
        .args([
            "encrypt_string",
            "--vault-id",
            "prod@vault-pass.txt",
            "--encrypt-vault-id",
            "prod",
            "inline-s3cr3t",
            "--name",
            "inline_secret",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut hv = String::from_utf8(o.stdout).unwrap();
    hv.push_str("db_password_ref: \"{{ vault_db_password }}\"\n");
    std::fs::create_dir_all(dir.join("host_vars")).unwrap();
    std::fs::write(dir.join("host_vars/h1.yml"), hv).unwrap();
}

#[test]
fn provision_reads_inventories_as_ansible_does() {
    let bin = ansible_bin();
    let scratch = tempfile::tempdir().unwrap();
    let defaults: BTreeSet<String> = provision::roles::defaults().unwrap().keys().cloned().collect();
    let ex = exceptions();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(CORPUS).unwrap().flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    cases.sort();
    assert!(cases.len() >= 30, "the corpus has {} inventories", cases.len());
    let (mut agree, mut compared, mut problems) = (0, 0, Vec::new());
    for case in &cases {
        let dir = scratch.path().join(case.file_name().unwrap());
        copy_dir(case, &dir);
        if dir.ends_with("edge-vault") {
            add_vault_files(&bin, &dir);
        }
        let (n, p) = compare_case(&bin, &dir, &defaults, &ex);
        compared += n;
        if p.is_empty() {
            agree += 1;
        }
        problems.extend(p);
    }
    println!("{agree} of {} inventories agree with Ansible ({compared} values compared)", cases.len());
    assert!(problems.is_empty(), "{} differences from Ansible:\n{}", problems.len(), problems.join("\n"));
}

#[test]
fn vault_values_decrypt_to_what_ansible_decrypts() {
    let bin = ansible_bin();
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("edge-vault");
    copy_dir(&Path::new(CORPUS).join("edge-vault"), &dir);
    add_vault_files(&bin, &dir);
    provision::vars::vault::configure(provision::vars::vault::VaultConfig { password_files: vec![dir.join("vault-pass.txt")], ask: false });
    let p = provision::project::Project::load_with(Some(&dir.join("inventory.yml")), &[], provision::roles::catalog().unwrap()).unwrap();
    let h = p.resolve_vars("h1").unwrap();
    assert_eq!(h.get("vault_db_password").unwrap().value, "s3cr3t-from-file");
    assert!(h.get("vault_db_password").unwrap().secret, "a value from an encrypted file is secret");
    assert_eq!(h.get("inline_secret").unwrap().value, "inline-s3cr3t");
    assert!(h.get("inline_secret").unwrap().secret);
    assert!(h.get("db_password_ref").unwrap().secret, "a template reading a vault value is secret");
    // A wrong password is one clear error naming the file.
    std::fs::write(dir.join("wrong.txt"), "nope\n").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_provision"))
        .current_dir(&dir)
        .args(["-i", "inventory.yml", "--vault-password-file", "wrong.txt", "inventory"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("group_vars/all/vault.yml") && err.contains("vault password is wrong"), "{err}");
    // An executable password file is run, as Ansible does.
    let script = dir.join("pass.sh");
    std::fs::write(&script, "#!/bin/sh\necho 'correct horse'\n").unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(&mut std::fs::metadata(&script).unwrap().permissions(), 0o755);
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_provision"))
        .current_dir(&dir)
        .env("ANSIBLE_VAULT_PASSWORD_FILE", &script)
        .args(["-i", "inventory.yml", "inventory", "--format", "json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!out.contains("s3cr3t") && !out.contains("key-123456"), "vault values never print: {out}");
}
