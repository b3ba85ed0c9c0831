//! Loader tests: precedence, limit patterns, templates, secrets, INI, and error positions.

use std::path::Path;

use provision::error::Error;
use provision::project::{HostSpec, Project};
use provision::vars::secret::Redactor;
use serde_json::json;

fn load(inv: &str, extra: &[&str]) -> Project {
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    Project::load(Some(Path::new(inv)), &extra).unwrap_or_else(|e| panic!("{}", render(&e)))
}

fn host(p: &Project, name: &str) -> HostSpec {
    p.resolve(&[name.to_string()]).unwrap_or_else(|e| panic!("{}", render(&e))).remove(0)
}

fn var(h: &HostSpec, name: &str) -> serde_json::Value {
    h.vars.get(name).unwrap_or_else(|| panic!("{name} unset")).value.clone()
}

/// The error as a user sees it, without colours.
fn render(e: &Error) -> String {
    let mut out = String::new();
    miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
        .with_width(100)
        .render_report(&mut out, e)
        .unwrap();
    out
}

fn load_error(inv: &str) -> String {
    let err = Project::load(Some(Path::new(inv)), &[]).and_then(|p| p.hosts(None)).expect_err("should fail");
    assert_eq!(err.exit_code(), 2, "bad input exits 2");
    render(&err)
}

const PREC: &str = "tests/fixtures/precedence/inventory.yaml";

#[test]
fn precedence_follows_ansible_order() {
    let mut p = load(PREC, &["v_extra=cli"]);
    let v_default = provision::yaml::parse(provision::source::register_named("defaults".into(), "x".into()), "role-default").unwrap();
    p.sources.defaults.insert("v_default".into(), v_default.clone());
    p.sources.defaults.insert("v_only_default".into(), v_default);
    let s1 = host(&p, "s1");
    assert_eq!(var(&s1, "v_only_default"), "role-default", "defaults apply when nothing else sets a var");
    assert_eq!(var(&s1, "v_default"), "inv-all", "group all beats role defaults");
    assert_eq!(var(&s1, "v_all"), "file-all", "group_vars/all.yaml beats the inventory's all vars");
    assert_eq!(var(&s1, "v_group"), "file-ci", "parent group beats all");
    assert_eq!(var(&s1, "v_child"), "file-ci", "as in Ansible, every group_vars file beats every inventory group var");
    assert_eq!(var(&s1, "v_host"), "inv-all");
    assert_eq!(var(&s1, "v_extra"), "cli", "-e beats everything");
    assert_eq!(var(&s1, "v_dir"), "second", "files in group_vars/<group>/ apply in name order");
    let m1 = host(&p, "m1");
    assert_eq!(var(&m1, "v_host"), "file-m1", "host_vars file beats the host's inventory vars");
    assert!(m1.vars.get("v_dir").is_none(), "slave vars do not leak to master");
    assert_eq!(m1.connection.user.as_deref(), Some("core"), "`ssh_user` in host_vars beats `ansible_user` in group_vars");
    assert!(m1.connection.become_root, "a non-root user becomes root through sudo by default");
    assert_eq!(s1.connection.user.as_deref(), Some("admin"), "ansible_user is read as user");
    assert_eq!(s1.vars.groups, ["ci", "eu", "slave"], "groups ordered by depth, then name");
}

#[test]
fn templates_resolve_lazily_keep_types_and_taint_secrets() {
    let p = load(PREC, &["private_address=10.1.2.3"]);
    let s1 = host(&p, "s1");
    assert_eq!(var(&s1, "url"), "http://10.1.2.3:8080/", "vars can reference vars defined later");
    assert_eq!(var(&s1, "ports"), json!([8080, 443]), "a single expression keeps its type");
    let header = s1.vars.get("auth_header").unwrap();
    assert!(header.secret, "a template reading a secret is secret");
    assert!(!s1.vars.get("url").unwrap().secret);
    let shown = s1.vars.redacted_json();
    assert_eq!(shown["api_token"], "***");
    assert_eq!(shown["auth_header"], "***");
    assert_eq!(Redactor::redact("token=t0ps3cr3t-value"), "token=***");
    assert_eq!(Redactor::redact("-H 'Bearer t0ps3cr3t-value'"), "-H '***'", "the tainted header is a secret of its own");
}

#[test]
fn env_and_file_lookups() {
    // SAFETY: tests in this binary do not read this variable concurrently.
    unsafe { std::env::set_var("PROVISION_TEST_TOKEN", "from-the-env-1234") };
    let p = load(PREC, &["{\"gitlab_token\": \"{{ env('PROVISION_TEST_TOKEN') }}\", \"motd\": \"{{ file('group_vars/ci.yml') }}\"}"]);
    let s1 = host(&p, "s1");
    assert_eq!(var(&s1, "gitlab_token"), "from-the-env-1234");
    assert!(s1.vars.get("gitlab_token").unwrap().secret, "*token* names are secret");
    assert!(var(&s1, "motd").as_str().unwrap().starts_with("v_group: file-ci"), "file() is relative to the inventory");
}

#[test]
fn limit_patterns() {
    let p = load(PREC, &[]);
    let sel = |pat: &str| p.select(Some(pat)).map_err(|e| render(&e));
    assert_eq!(sel("s1").unwrap(), ["s1"]);
    assert_eq!(sel("slave").unwrap(), ["s1", "s2"]);
    assert_eq!(sel("ci").unwrap(), ["s1", "s2", "m1"], "a parent group selects its children's hosts");
    assert_eq!(sel("s*").unwrap(), ["s1", "s2"]);
    assert_eq!(sel("m1,s2").unwrap(), ["s2", "m1"], "inventory order, not pattern order");
    assert_eq!(sel("all,!s1").unwrap(), ["s2", "m1"]);
    assert_eq!(sel("!m1").unwrap(), ["s1", "s2"], "only exclusions start from all hosts");
    assert_eq!(sel("slave,&eu").unwrap(), ["s1"]);
    assert_eq!(sel("ci:!eu").unwrap(), ["s2"], "colon separates patterns too");
    let e = sel("slvae").unwrap_err();
    assert!(e.contains("matches no host or group") && e.contains("did you mean `slave`"), "{e}");
    assert!(sel("slave,!slave").unwrap_err().contains("no host matches"));
}

#[test]
fn ini_inventory_matches_yaml() {
    let to_doc = |path: &str| {
        let p = load(path, &[]);
        let hosts = p.hosts(None).unwrap();
        hosts.iter().map(|h| (h.vars.host.clone(), h.vars.groups.clone(), h.vars.redacted_json())).collect::<Vec<_>>()
    };
    assert_eq!(to_doc("inventory.example.ini"), to_doc("inventory.example.yaml"));
}

#[test]
fn ini_parsing_details() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hosts");
    std::fs::write(
        &path,
        "# comment\nlonely ansible_port=2222\n\n[web]\nweb[01:02] role=\"front end\" weight=3 # trailing\n\n[db]\ndb1\n\n[prod:children]\nweb\ndb\n\n[prod:vars]\nenv = 'production'\nreplicas=2\ndebug=False\n",
    )
    .unwrap();
    let p = load(path.to_str().unwrap(), &[]);
    assert_eq!(p.select(Some("prod")).unwrap(), ["web01", "web02", "db1"]);
    assert_eq!(p.select(Some("ungrouped")).unwrap(), ["lonely"]);
    let web = host(&p, "web02");
    assert_eq!(var(&web, "role"), "front end");
    assert_eq!(var(&web, "weight"), 3);
    assert_eq!(var(&web, "env"), "production");
    assert_eq!(var(&web, "replicas"), 2);
    assert_eq!(var(&web, "debug"), false);
    assert_eq!(host(&p, "lonely").connection.port, Some(2222));
}

#[test]
fn error_bad_indentation() {
    insta::assert_snapshot!(load_error("tests/fixtures/bad/indent.yaml"));
}

#[test]
fn error_unknown_group_key() {
    insta::assert_snapshot!(load_error("tests/fixtures/bad/unknown_key.yaml"));
}

#[test]
fn error_wrong_type() {
    insta::assert_snapshot!(load_error("tests/fixtures/bad/wrong_type.yaml"));
}

#[test]
fn error_undefined_template_variable() {
    insta::assert_snapshot!(load_error("tests/fixtures/bad/undefined_var.yaml"));
}

#[test]
fn error_undefined_in_expression() {
    insta::assert_snapshot!(load_error("tests/fixtures/bad/undefined_expr.yaml"));
}

#[test]
fn error_group_cycle() {
    insta::assert_snapshot!(load_error("tests/fixtures/bad/group_cycle.yaml"));
}

#[test]
fn error_vars_loop() {
    insta::assert_snapshot!(load_error("tests/fixtures/bad/vars_loop.yaml"));
}

#[test]
fn error_hosts_as_list() {
    insta::assert_snapshot!(load_error("tests/fixtures/bad/hosts_list.yaml"));
}

#[test]
fn error_top_level_vars() {
    insta::assert_snapshot!(load_error("tests/fixtures/bad/top_level_vars.yaml"));
}

#[test]
fn error_ini_section_kind() {
    insta::assert_snapshot!(load_error("tests/fixtures/bad/section.ini"));
}

#[test]
fn error_ini_wrong_type() {
    insta::assert_snapshot!(load_error("tests/fixtures/bad/ini_port.ini"));
}

#[test]
fn error_duplicate_host() {
    insta::assert_snapshot!(load_error("tests/fixtures/bad/duplicate_host.yaml"));
}

#[test]
fn group_vars_for_unknown_group_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("inventory.yaml"), "all:\n  children:\n    slave:\n      hosts:\n        s1:\n").unwrap();
    std::fs::create_dir(dir.path().join("group_vars")).unwrap();
    std::fs::write(dir.path().join("group_vars/slaves.yaml"), "x: 1\n").unwrap();
    let p = Project::load(Some(&dir.path().join("inventory.yaml")), &[]).unwrap_or_else(|e| panic!("{}", render(&e)));
    let text = p.warnings.join("\n");
    assert!(text.contains("slaves.yaml is for group `slaves`, which the inventory does not have; it is ignored"), "{text}");
    assert!(text.contains("did you mean `slave`?"), "{text}");
}

#[test]
fn error_retired_connection_name_says_what_to_write() {
    insta::assert_snapshot!(load_error("tests/fixtures/bad/retired_name.yaml"));
}

/// Writes `files` (path, content) into a fresh directory and loads `inventory.yaml` or `hosts`.
fn project_in(files: &[(&str, &str)]) -> (tempfile::TempDir, Result<Project, Error>) {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let inv = if dir.path().join("hosts").exists() { "hosts" } else { "inventory.yaml" };
    let p = Project::load(Some(&dir.path().join(inv)), &[]);
    (dir, p)
}

#[test]
fn unused_vars_only_ansible_can_render_do_not_stop_provision() {
    let (_d, p) = project_in(&[(
        "inventory.yaml",
        "all:\n  vars:\n    fact: \"{{ ansible_default_ipv4.address }}\"\n    loopy: \"{{ item.name }}\"\n  hosts:\n    h1: {ansible_host: 10.0.0.1}\n",
    )]);
    let p = p.unwrap();
    let h = host(&p, "h1");
    let fact = h.vars.get("fact").unwrap();
    assert_eq!(fact.value, "{{ ansible_default_ipv4.address }}", "kept as written");
    assert!(fact.note.as_deref().unwrap().contains("ansible_default_ipv4"), "{:?}", fact.note);
    // A var provision reads keeps its strict error.
    let (_d, p) = project_in(&[("inventory.yaml", "all:\n  hosts:\n    h1: {ansible_host: \"{{ ansible_default_ipv4.address }}\"}\n")]);
    let e = render(&p.unwrap().hosts(None).unwrap_err());
    assert!(e.contains("undefined"), "{e}");
}

#[test]
fn undefined_errors_name_the_variable() {
    let (_d, p) = project_in(&[("inventory.yaml", "all:\n  vars:\n    runner_concurrent: \"{{ [nope, 1] }}\"\n  hosts:\n    h1:\n")]);
    let e = render(&p.unwrap().hosts(None).unwrap_err());
    assert!(e.contains("undefined variable `nope`"), "{e}");
}

#[test]
fn secrets_are_redacted_at_any_depth() {
    unsafe { std::env::set_var("PROVISION_TEST_FROM_ENV", "env-secret-value") };
    let (_d, p) = project_in(&[(
        "inventory.yaml",
        "all:\n  vars:\n    ansible_ssh_pass: ssh-pass-value\n    ansible_become_pass: become-pass-value\n    db_pass: db-pass-value\n    from_env: \"{{ env('PROVISION_TEST_FROM_ENV') }}\"\n    deep:\n      - name: r1\n        token: nested-token-value\n      - name: r2\n        note: !secret nested-tagged-value\n  hosts:\n    h1:\n",
    )]);
    let p = p.unwrap();
    let shown = serde_json::to_string(&host(&p, "h1").vars.redacted_json()).unwrap();
    for s in ["ssh-pass-value", "become-pass-value", "db-pass-value", "env-secret-value", "nested-token-value", "nested-tagged-value"] {
        assert!(!shown.contains(s), "{s} printed: {shown}");
    }
    assert!(shown.contains("\"name\":\"r1\""), "non-secret siblings stay: {shown}");
}

#[test]
fn host_names_that_would_be_paths_are_refused() {
    for name in ["../../x", "a/b", "-oProxyCommand=x"] {
        let (_d, p) = project_in(&[("inventory.yaml", &format!("all:\n  hosts:\n    \"{name}\":\n"))]);
        let e = render(&p.err().unwrap_or_else(|| panic!("{name} accepted")));
        assert!(e.contains("invalid host name"), "{e}");
    }
}

#[test]
fn hostile_inventories_fail_fast_without_panicking() {
    // A multi-byte character right after a quote once split a char in two.
    let (_d, p) = project_in(&[("hosts", "h \"a\"é={{nope}}\n")]);
    assert!(p.is_ok() || p.as_ref().err().unwrap().exit_code() == 2);
    let (_d, p) = project_in(&[("hosts", "[g]\nh[0:30000000]\n")]);
    assert!(render(&p.err().expect("huge range")).contains("more than 100000 hosts"));
    let (_d, p) = project_in(&[("hosts", "[g]\nh[0:99999999999]\n")]);
    assert!(p.is_err());
    // 20,000 nested groups: no stack overflow (an iterative walk; about 3 s here, where 6,000
    // took over 20 s before: measured, not asserted, as timing depends on the machine's load).
    let mut ini = String::from("[g0]\nh1\n");
    for i in 1..20_000 {
        ini.push_str(&format!("[g{i}:children]\ng{}\n", i - 1));
    }
    let (_d, p) = project_in(&[("hosts", &ini)]);
    let p = p.unwrap();
    assert_eq!(host(&p, "h1").vars.groups.len(), 20_000);
}

#[test]
fn connection_vars_do_not_collide_and_follow_ansible_precedence() {
    let (_d, p) = project_in(&[
        (
            "inventory.yaml",
            "all:\n  vars:\n    ansible_user: deploy\n  hosts:\n    h1:\n      ansible_host: 10.0.0.1\n      ansible_ssh_host: 10.0.0.2\n      ansible_port: 2201\n      ansible_ssh_port: 2202\n    h2:\n      ansible_host: 10.0.0.3\n      ssh_host: 10.0.0.4\n      ssh_user: root\n      tcp: \"tcp://{{ ansible_host }}:2376\"\n",
        ),
        ("host_vars/h2.yaml", "ansible_user: fromfile\n"),
    ]);
    let p = p.unwrap();
    let h1 = host(&p, "h1");
    assert_eq!(h1.connection.address, "10.0.0.2", "ansible_ssh_host beats ansible_host");
    assert_eq!(h1.connection.port, Some(2202));
    assert_eq!(h1.connection.user.as_deref(), Some("deploy"));
    let h2 = host(&p, "h2");
    assert_eq!(h2.connection.address, "10.0.0.4", "provision's own name beats Ansible's on the same level");
    assert_eq!(h2.connection.user.as_deref(), Some("fromfile"), "a higher level wins whatever the spelling");
    assert_eq!(var(&h2, "tcp"), "tcp://10.0.0.3:2376", "Ansible's names are readable in templates");
    // An application's `port` cannot change how provision connects: it is refused with the new name.
    let (_d, p) = project_in(&[("inventory.yaml", "all:\n  hosts:\n    h1:\n"), ("group_vars/all.yaml", "port: 8080\n")]);
    let e = render(&p.unwrap().hosts(None).unwrap_err());
    assert!(e.contains("`port` is no longer a connection var") && e.contains("ssh_port"), "{e}");
    // Addresses are validated when loaded.
    let (_d, p) = project_in(&[("inventory.yaml", "all:\n  hosts:\n    h1: {ansible_host: \"10.0.0.1\\0evil\"}\n")]);
    let e = render(&p.unwrap().hosts(None).unwrap_err());
    assert!(e.contains("invalid ssh host"), "{e}");
}

#[test]
fn typos_of_known_vars_warn() {
    let (_d, p) = project_in(&[("inventory.yaml", "all:\n  vars:\n    cleanup_on_calender: daily\n    ssh_prot: 22\n  hosts:\n    h1:\n")]);
    let p = p.unwrap();
    let warnings = p.typo_warnings(&host(&p, "h1").vars).join("\n");
    assert!(warnings.contains("did you mean `cleanup_on_calendar`?"), "{warnings}");
    assert!(warnings.contains("did you mean `ssh_port`?"), "{warnings}");
}

#[test]
fn group_priority_orders_groups_of_the_same_depth() {
    let (_d, p) = project_in(&[("hosts", "[a]\nh\n[b]\nh\n[a:vars]\nv=a\nansible_group_priority=10\n[b:vars]\nv=b\n")]);
    let p = p.unwrap();
    let h = host(&p, "h");
    assert_eq!(var(&h, "v"), "a", "a higher priority applies later");
    assert!(h.vars.get("ansible_group_priority").is_none(), "the priority is not a var, as in Ansible");
}

#[test]
fn commands_that_only_connect_do_not_need_unrelated_secrets() {
    let (_d, p) = project_in(&[(
        "inventory.yaml",
        // In `master`: the runner role reads the token, so resolving the host for its roles needs it.
        "all:\n  vars:\n    gitlab_api_token: \"{{ env('PROVISION_TEST_SURELY_UNSET') }}\"\n  children:\n    master:\n      hosts:\n        h1: {ansible_host: 10.0.0.1}\n",
    )]);
    let p = p.unwrap();
    let names = vec!["h1".to_string()];
    let c = p.connections(&names).unwrap_or_else(|e| panic!("{}", render(&e)));
    assert_eq!(c[0].connection.address, "10.0.0.1");
    let e = render(&p.resolve(&names).unwrap_err());
    assert!(e.contains("PROVISION_TEST_SURELY_UNSET"), "where the secret is used it is still required: {e}");
}

#[test]
fn a_slave_does_not_need_the_masters_token() {
    let (_d, p) = project_in(&[(
        "inventory.yaml",
        "all:\n  vars:\n    gitlab_api_token: \"{{ env('PROVISION_TEST_SURELY_UNSET') }}\"\n    api: \"{{ undefined_var }}\"\n  children:\n    \
         master:\n      hosts:\n        m1: {ansible_host: 10.0.0.1}\n    slave:\n      hosts:\n        s1: {ansible_host: 10.0.0.2}\n",
    )]);
    let p = p.unwrap();
    // The slave's roles do not read the token: resolving it for them works.
    let s = p.resolve(&["s1".to_string()]).unwrap_or_else(|e| panic!("{}", render(&e)));
    assert!(s[0].vars.get("gitlab_api_token").unwrap().note.is_some(), "kept as written, not rendered");
    // `plan -l slave`: the slave strictly, the master (read, not acted on) without its secrets.
    let (hosts, all) = p.hosts_and_fleet(Some("slave")).unwrap_or_else(|e| panic!("{}", render(&e)));
    assert_eq!(hosts.len(), 1);
    assert_eq!(all.iter().map(|h| h.vars.host.as_str()).collect::<Vec<_>>(), ["m1", "s1"]);
    let fleet = provision::roles::Fleet::new(&p, &all);
    fleet.host("m1").unwrap_or_else(|e| panic!("{e}"));
    // Where the token is used it is still required.
    let e = render(&p.hosts_and_fleet(Some("master")).unwrap_err());
    assert!(e.contains("PROVISION_TEST_SURELY_UNSET"), "{e}");
    let e = render(&p.hosts_and_fleet(None).unwrap_err());
    assert!(e.contains("PROVISION_TEST_SURELY_UNSET"), "{e}");
}
