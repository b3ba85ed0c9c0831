use crate::harness::*;
use provision::engine::{Desired, Step};
use provision::resources::package::Package;

fn apply(pkg: Package) -> provision::engine::report::HostReport {
    run_desired("lab-slave-1", Desired { steps: vec![Step::new(pkg)], handlers: vec![] })
}

fn pkg(version: &str) -> Package {
    let file = lab_inventory().parent().unwrap().join(format!("state/packages/provision-test-pkg_{version}_all.deb"));
    Package { name: "provision-test-pkg".into(), version: Some(version.into()), file: Some(file), present: true }
}

#[test]
fn install_upgrade_and_remove_from_local_package_files() {
    let _s = serial();
    on_host("lab-slave-1", "dpkg -P provision-test-pkg >/dev/null 2>&1; true");
    let r = apply(pkg("1.0-1"));
    assert_eq!((r.changed, r.failed), (1, 0), "{r:?}");
    assert_eq!(r.resources[0].changes, ["installed 1.0-1"]);
    assert_eq!(on_host("lab-slave-1", "cat /usr/share/provision-test-pkg/version"), "1.0-1\n");
    let r = apply(pkg("1.0-1"));
    assert_eq!((r.changed, r.failed), (0, 0), "{r:?}");
    let r = apply(pkg("2.0-1"));
    assert_eq!(r.resources[0].changes, ["1.0-1 → 2.0-1"], "{r:?}");
    assert_eq!(on_host("lab-slave-1", "cat /usr/share/provision-test-pkg/version"), "2.0-1\n");
    let r = apply(Package { present: false, ..pkg("2.0-1") });
    assert_eq!(r.resources[0].changes, ["removed"], "{r:?}");
    let status = on_host("lab-slave-1", "dpkg-query -W -f '${db:Status-Status}' provision-test-pkg 2>/dev/null || echo gone");
    assert_ne!(status, "installed");
    assert_eq!(on_host("lab-slave-1", "ls /usr/share/provision-test-pkg/version 2>/dev/null || echo gone"), "gone\n");
}
