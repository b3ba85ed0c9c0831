//! Secrets in vars never reach plans or diffs.

use crate::harness::*;

#[test]
fn registry_credentials_never_show_in_plans_or_diffs() {
    let _s = serial();
    let secret = "Upstr3am-Passw0rd-xyz";
    for format in ["human", "json"] {
        let o = provision(&[
            "-e",
            "registry_remote_username=ci",
            "-e",
            &format!("registry_remote_password={secret}"),
            "-vvv",
            "plan",
            "--format",
            format,
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        let all = format!("{}{}", text(&o.stdout), text(&o.stderr));
        assert!(!all.contains(secret), "{format}: the password leaked");
        assert!(all.contains("(secret content changed)"), "{format}: the config diff is replaced by a note: {all}");
    }
}
