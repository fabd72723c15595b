//! No token reaches the logs or the database: with `--log-format json`, links opened, POSTed,
//! forged and truncated (ack links and the units' pages and feeds, one of them rotated),
//! then the log and every file the daemon wrote beside its database searched for every
//! token.

use serde_json::Value;

use super::{UA, ack, site_with};
use crate::support::config::Cfg;
use crate::support::db::random_token;

#[test]
fn no_token_in_logs_or_database() {
    let (mut d, mut tokens) = site_with(&["vp", "kt"], Cfg::new(), &["--log-format", "json"]);
    let forged = random_token();
    // The units' page tokens, before and after a rotation, used as a unit would.
    let unit_token = |d: &crate::support::daemon::Daemon, args: &[&str]| {
        let out = d.cli(args);
        assert_eq!(out.status, 0, "{out:?}");
        let url = out
            .stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("page: "))
            .unwrap()
            .to_string();
        url.rsplit('/').next().unwrap().to_string()
    };
    let old = unit_token(&d, &["links", "--unit", "vp"]);
    let new = unit_token(&d, &["links", "--rotate", "--unit", "vp"]);
    let key = crate::support::config::tuyen_truyen_key("vp");
    for (t, want) in [(&old, 404), (&new, 303)] {
        d.get(&format!("/u/{t}"), &[("User-Agent", UA)]);
        d.get(&format!("/u/{t}.ics"), &[]);
        let r = d.post(
            &format!("/u/{t}"),
            &[],
            &[("obligation", &key), ("action", "seen")],
        );
        assert_eq!(r.status, want, "{r:#?}");
    }
    tokens.insert("vp's page".into(), old);
    tokens.insert("vp's new page".into(), new);
    for t in [&tokens["vp"], &tokens["kt"], &forged] {
        d.get(&format!("/a/{t}"), &[("User-Agent", UA)]);
        d.get(&format!("/a/{}", &t[..31]), &[]);
    }
    assert_eq!(ack(&d, &tokens["vp"], "seen").status, 200);
    assert_eq!(ack(&d, &tokens["vp"], "done").status, 200);
    assert_eq!(ack(&d, &tokens["kt"], "done").status, 200);
    assert_eq!(ack(&d, &forged, "done").status, 404);
    let nope = d.post(&format!("/a/{}", tokens["kt"]), &[], &[("action", "nope")]);
    assert_eq!(nope.status, 400);
    d.stop();

    let log = d.log();
    let mut acked = 0;
    for line in log.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if v["fields"]["message"] == "acknowledged from the web" {
            acked += 1;
        }
    }
    assert_eq!(acked, 3, "the acks are logged, by obligation:\n{log}");
    let files: Vec<_> = std::fs::read_dir(d.path("var"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    assert!(
        files.iter().any(|f| f.ends_with("nhacviec.db")),
        "{files:?}"
    );
    // Everything the daemon created is its user's alone (umask 077), though this test
    // process, which started it, creates files others can read.
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let mine = d.path("made-by-the-test");
    std::fs::write(&mine, "x").unwrap();
    assert_ne!(
        mode(&mine) & 0o044,
        0,
        "the premise: a permissive umask here"
    );
    assert_eq!(mode(&d.path("var")), 0o700);
    assert_eq!(mode(&d.path("var/mail")), 0o700);
    let emls: Vec<_> = std::fs::read_dir(d.path("var/mail"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!emls.is_empty());
    for f in files.iter().chain(&emls) {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }
    for (u, t) in tokens.iter().chain([(&"forged".to_string(), &forged)]) {
        assert!(!log.contains(t.as_str()), "{u}'s token in the log:\n{log}");
        for f in &files {
            let bytes = std::fs::read(f).unwrap();
            assert!(
                !bytes.windows(32).any(|w| w == t.as_bytes()),
                "{u}'s token in {}",
                f.display()
            );
        }
    }
}
