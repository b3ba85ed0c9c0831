//! A docker-autoscaler runner's fleeting plugin lives on a host directory, so an image roll keeps
//! it. The lab's stand-in gitlab-runner cannot download plugins (no registry here ships them):
//! the test shows that a missing plugin is planned for install, and that an installed one
//! (planted as `gitlab-runner fleeting install` would leave it) survives the runner container's
//! recreation.

use crate::harness::*;

fn ids(doc: &serde_json::Value, status: &str) -> Vec<String> {
    doc["hosts"]["lab-master-1"]["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["status"] == status)
        .filter_map(|r| r["id"].as_str().map(str::to_string))
        .collect()
}

const FLEET: &str = r#"{"runners": [{"name": "lab-fleet", "executor": "docker-autoscaler", "autoscaler": {"asg_name": "lab-fleet", "region": "eu-west-1"}}]}"#;
const PLUGIN: &str = "/var/lib/provision/runner/fleeting/plugins/registry.gitlab.com/gitlab-org/fleeting/plugins/aws/1.0.0";

#[test]
fn the_fleeting_plugin_is_installed_when_missing_and_kept_across_an_image_roll() {
    let _s = serial();
    on_host("lab-master-1", "rm -rf /var/lib/provision/runner");
    // Missing: the plan installs it, after the runner container that runs the install.
    let (code, plan) = json_run(&["-e", FLEET, "plan", "--limit", "master"]);
    assert_eq!(code, Some(0), "{plan}");
    let changed = ids(&plan, "changed");
    assert!(changed.contains(&"fleeting plugins in gitlab-runner".to_string()), "{plan}");

    // Installed (as `gitlab-runner fleeting install` leaves it): kept, and mounted in the runner.
    on_host("lab-master-1", &format!("mkdir -p {PLUGIN} && echo plugin > {PLUGIN}/plugin && chmod 700 /var/lib/provision/runner/fleeting"));
    // The lab's own runner goes away: deleting it from GitLab needs --yes without a terminal.
    let (code, doc) = json_run(&["-e", FLEET, "apply", "--yes", "--limit", "master"]);
    assert_eq!(code, Some(0), "{doc}");
    assert!(ids(&doc, "ok").contains(&"fleeting plugins in gitlab-runner".to_string()), "{doc}");
    let inside = "docker exec gitlab-runner sh -c 'find /root/.config/fleeting/plugins -name plugin | wc -l'";
    assert_eq!(on_host("lab-master-1", inside).trim(), "1");

    // An image roll recreates the container: the plugin is still there, nothing reinstalls it.
    let roll = "runner_image=provision-lab/gitlab-runner:2";
    let (code, doc) = json_run(&["-e", FLEET, "-e", roll, "apply", "--limit", "master"]);
    assert_eq!(code, Some(0), "{doc}");
    assert!(ids(&doc, "changed").contains(&"container gitlab-runner".to_string()), "{doc}");
    assert!(ids(&doc, "ok").contains(&"fleeting plugins in gitlab-runner".to_string()), "{doc}");
    assert_eq!(on_host("lab-master-1", "docker inspect -f '{{.Config.Image}}' gitlab-runner").trim(), "provision-lab/gitlab-runner:2");
    assert_eq!(on_host("lab-master-1", inside).trim(), "1", "the plugin survived the roll");

    // Back to the lab's own runner, image and state.
    let (code, doc) = json_run(&["apply", "--yes", "--limit", "master"]);
    assert_eq!(code, Some(0), "{doc}");
    on_host("lab-master-1", "rm -rf /var/lib/provision/runner");
}
