//! Mutation fuzzing on stable Rust (cargo-fuzz needs a nightly toolchain, which this machine
//! cannot fetch): the inventory/vars loader and the parsers of what hosts print are fed
//! thousands of mutated inputs from a fixed seed. None may panic; each must give a value or an
//! error. The counts are printed (`cargo test --test fuzz -- --nocapture`).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use provision::engine::{Resource, sections};

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Tokens that mean something to YAML, INI, Jinja or the framing.
const TOKENS: &[&str] = &[
    ":",
    "- ",
    "{",
    "}",
    "[",
    "]",
    "\n",
    "\n  ",
    "\n    ",
    "\t",
    "\"",
    "'",
    "!secret ",
    "!!binary ",
    "&a ",
    "*a",
    "{{",
    "}}",
    "{%",
    "%}",
    "{{ x }}",
    "{{ env('HOME') }}",
    "| to_json",
    "0o777",
    "0644",
    "~",
    "null",
    "yes",
    "1e999",
    "children:",
    "hosts:",
    "vars:",
    "all:",
    "[g:vars]",
    "[g:children]",
    "[master]",
    "ansible_port=x",
    "port: 70000",
    "h[1:3]",
    "h[a:]",
    "=",
    "#",
    "$(reboot)",
    "; rm -rf /",
    "\u{0}",
    "\u{feff}",
    "é",
    "@@",
    "@@N begin r0\n",
    "@@N end r0 1\n",
    "@@N done\n",
    "@@N begin pending\n",
];

fn mutate(rng: &mut Rng, seed: &str) -> String {
    let mut s: Vec<char> = seed.chars().collect();
    for _ in 0..=rng.below(4) {
        let at = rng.below(s.len() + 1);
        match rng.below(5) {
            0 => {
                let end = (at + rng.below(20)).min(s.len());
                s.drain(at..end);
            }
            1 | 2 => {
                let tok: Vec<char> = TOKENS[rng.below(TOKENS.len())].chars().collect();
                s.splice(at..at, tok);
            }
            3 => {
                let from = rng.below(s.len() + 1);
                let end = (from + rng.below(40)).min(s.len());
                let chunk: Vec<char> = s[from..end].to_vec();
                s.splice(at..at, chunk);
            }
            _ => {
                if at < s.len() {
                    s[at] = char::from_u32(rng.below(0x80) as u32).unwrap_or('x');
                }
            }
        }
    }
    s.into_iter().collect()
}

fn no_panic(what: &str, input: &str, f: impl FnOnce()) {
    if catch_unwind(AssertUnwindSafe(f)).is_err() {
        panic!("{what} panicked on input:\n{input:?}");
    }
}

#[test]
fn the_loader_never_panics_on_mutated_inventories_and_vars() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut seeds: Vec<(String, &str)> = Vec::new();
    for p in ["inventory.example.yaml", "inventory.example.ini", "tests/fixtures/precedence/inventory.yaml"] {
        let ext = if p.ends_with(".ini") { "ini" } else { "yaml" };
        seeds.push((std::fs::read_to_string(root.join(p)).unwrap(), ext));
    }
    for e in std::fs::read_dir(root.join("tests/fixtures/bad")).unwrap() {
        let p = e.unwrap().path();
        let ext = if p.extension().is_some_and(|x| x == "ini") { "ini" } else { "yaml" };
        seeds.push((std::fs::read_to_string(&p).unwrap(), ext));
    }
    let vars_seed = "gitlab_url: https://gitlab.example.com\nrunners:\n  - name: \"{{ inventory_hostname }}\"\n    tags: [a, b]\nimage_archives: {}\nmode: \"0644\"\n";
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("group_vars")).unwrap();
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let (mut tried, mut accepted) = (0, 0);
    for i in 0..3000 {
        let (seed, ext) = &seeds[i % seeds.len()];
        let inv = mutate(&mut rng, seed);
        let vars = if i % 3 == 0 { mutate(&mut rng, vars_seed) } else { vars_seed.to_string() };
        let path = dir.path().join(format!("inventory.{ext}"));
        std::fs::write(&path, &inv).unwrap();
        std::fs::write(dir.path().join("group_vars/all.yaml"), &vars).unwrap();
        no_panic("the loader", &format!("{inv}\n--- group_vars/all.yaml\n{vars}"), || {
            if let Ok(p) = provision::project::Project::load(Some(&path), &[])
                && p.hosts(None).is_ok()
            {
                accepted += 1;
            }
        });
        std::fs::remove_file(&path).unwrap();
        tried += 1;
    }
    println!("loader: {tried} mutated inventories+vars, {accepted} accepted, no panic");
    assert!(accepted > 0 && accepted < tried, "the mutations hit both sides: {accepted}/{tried}");
}

#[test]
fn the_probe_output_parsers_never_panic() {
    use provision::resources::{directory::Directory, docker, file::File, package::Package, service::Service};
    let resources: Vec<Box<dyn Resource>> = vec![
        Box::new(File::new("/etc/x", "content\n")),
        Box::new(File::absent("/etc/y")),
        Box::new(Directory::new("/etc/d")),
        Box::new(Service::running("docker.service")),
        Box::new(Package::new("gitlab-runner")),
        Box::new(docker::Container::new("c", "registry:2")),
        Box::new(docker::Image { reference: "registry:2".into(), archive: None, daemon: docker::Daemon::default() }),
    ];
    let states = [
        "state=file\nmode=644\nowner=root\ngroup=root\nsha256=0f0e2c9f2b8c7e1f5d2a1b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70\ncontent=Y29udGVudAo=\n",
        "state=absent\n",
        "state=dir\nmode=755\nowner=root\ngroup=root\n",
        "LoadState=loaded\nUnitFileState=enabled\nActiveState=active\nNeedDaemonReload=no\n",
        "manager=dpkg\nstatus=installed\nversion=1.0-1\n",
        "container=present\nrunning=true\ncontainer_image=sha256:abc\nspec=1234\nimage=sha256:abc\n",
        "image=sha256:abc\n",
    ];
    let framed = format!(
        "{}{}{}",
        "@@N begin r0\nfile 644 root root\n@@N end r0 0\n", "@@N begin pending\nrestart docker\n@@N end pending 0\n", "@@N done\n"
    );
    let mut rng = Rng(0xF00D_2024_0000_0002);
    let mut tried = 0;
    for _ in 0..4000 {
        let out = mutate(&mut rng, &framed);
        no_panic("sections::parse", &out, || {
            let _ = sections::parse(&out, "N");
        });
        for (r, seed) in resources.iter().zip(states) {
            let state = mutate(&mut rng, seed);
            no_panic(&r.id(), &state, || {
                let _ = r.plan(&state);
            });
            tried += 1;
        }
        tried += 1;
    }
    println!("parsers: {tried} mutated outputs, no panic");
}
