//! Done while a reminder waits for its retry: `kt` is overdue; its `after-1m` notice and the
//! escalated copies to the leadership get a 451 and wait for their retry a minute later;
//! meanwhile the admin records `kt` done. The waiting messages are not sent: they end
//! `skipped`, saying why, the moment the ack is recorded; the retry time passes and nothing
//! leaves; the leadership, which never got the escalation, gets no "[Đã hoàn thành]" notice
//! either.

use super::ack_units;
use crate::support::clock;
use crate::support::config::{Cfg, Security, once, policy};
use crate::support::daemon::Setup;
use crate::support::smtp::{SmtpOpts, SmtpServer};

#[test]
fn done_stops_reminders_waiting_for_a_retry() {
    let smtp = SmtpServer::start(SmtpOpts {
        fail_first: 3,
        ..SmtpOpts::default()
    });
    let rule = once("dot-xuat", "Báo cáo đột xuất", "2025-10-15 10:00")
        .kind("report")
        .units(&["kt"])
        .policy(policy(&[], &["1m"]).escalate_from("1m").keep());
    let cfg = Cfg::new()
        .units(ack_units())
        .rule(rule)
        .smtp(&smtp, Security::None);
    let key = "dot-xuat/2025-10-15/kt";
    // The first start is before the deadline (an obligation whose deadline passed before
    // the database was made is never chased); the daemon is then restarted two seconds
    // before after-1m.
    let mut d = Setup::new(&cfg)
        .clock(&clock("2025-10-15 09:59:00"))
        .start();
    d.wait("the first wake", |d| d.mark());
    d.stop();
    d.restart_at(&clock("2025-10-15 10:00:58"), 1);

    // after-1m: the notice to kt and the escalated copies, each answered 451.
    let rows = d.wait_rows("after-1m tried once", |rows| {
        rows.len() == 3
            && rows
                .iter()
                .all(|r| r.status == "pending" && r.attempts == 1)
    });
    assert_eq!(rows.iter().filter(|r| r.template == "escalated").count(), 2);
    assert_eq!(smtp.events("data").len(), 3);

    // kt is done (recorded by the admin).
    let out = d.cli(&["ack", "--obligation", key, "--done"]);
    assert_eq!(out.status, 0, "{out:?}");
    let rows = d.rows();
    for r in &rows {
        assert_eq!(
            (
                r.status.as_str(),
                r.last_error.as_deref(),
                r.next_attempt_at
            ),
            (
                "skipped",
                Some("not sent: the unit acknowledged done first"),
                None
            ),
            "{r:#?}"
        );
    }

    // Past the retry time (a restart at 10:03, two minutes on): nothing leaves.
    d.stop();
    d.restart_at(&clock("2025-10-15 10:03:00"), 1);
    // The first wake logs "next: …" once it has sent what was due.
    d.wait_log("next: ", 1);
    assert!(d.mark() >= Some(crate::support::vn("2025-10-15 10:03:00")));
    d.stop();
    let after = d.rows();
    assert_eq!(
        after.len(),
        3,
        "no notice of any kind was added: {after:#?}"
    );
    assert!(after.iter().all(|r| r.status == "skipped"), "{after:#?}");
    assert!(smtp.captured().is_empty(), "nothing reached the server");
    assert_eq!(smtp.events("data").len(), 3, "no second attempt");
}
