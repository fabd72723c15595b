//! What falls due between two instants: pure, table-tested without a database.
//!
//! The engine keeps a mark: every step up to it has been enqueued. At each wake it asks
//! [`due`] for the steps after the mark and up to now, given each obligation's recorded
//! state, and enqueues the answer with the new mark in one transaction. The rules (docs/operations.md):
//!
//! - a state silences steps as [`crate::state::ObligationState::silences`] says;
//! - when several steps of one obligation fell due at once (the daemon was down), only the
//!   latest is sent and the earlier ones are recorded skipped;
//! - occurrences whose deadline passed before the database was first created are never
//!   chased (the first start is not a flood);
//! - catching up (the first wake, or the wake after a reload) also looks at the steps before
//!   the mark of obligations not recorded yet (a rule or a unit the new config added), as at
//!   a first start, but never chases a deadline already passed.

use chrono::{DateTime, Duration, Utc};

use super::{Filter, Occurrence, Step, occurrences};
use crate::config::Config;
use crate::state::Recorded;

/// How far back a catch-up looks for occurrences still open.
pub const LOOKBACK_DAYS: i64 = 400;

/// How far ahead [`next`] looks for the next step.
pub const HORIZON_DAYS: i64 = 400;

/// The span a wake looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Every step up to here was enqueued; `None` at the first wake of a database.
    pub mark: Option<DateTime<Utc>>,
    /// Now.
    pub now: DateTime<Utc>,
    /// When the database was first opened.
    pub first_start: DateTime<Utc>,
    /// Catch up obligations not recorded yet (after a reload). The first wake always does.
    pub catch_up: bool,
}

impl Window {
    fn catching_up(&self) -> bool {
        self.catch_up || self.mark.is_none()
    }

    fn after_mark(&self, at: DateTime<Utc>) -> bool {
        self.mark.is_none_or(|m| at > m)
    }
}

/// One step of one occurrence, and the units (indices into `config.units`) it is sent to or
/// recorded skipped for.
#[derive(Debug, Clone)]
pub struct DueStep<'a> {
    /// The occurrence.
    pub occurrence: &'a Occurrence,
    /// Its step.
    pub step: &'a Step,
    /// Units that get it now.
    pub send: Vec<usize>,
    /// Units for which it is recorded `skipped` (a later step is sent instead).
    pub skip: Vec<usize>,
}

/// The occurrences [`due`] must look at for `w`: those with a step in the window, or, when
/// catching up, any still open.
pub fn candidates(cfg: &Config, w: &Window) -> Vec<Occurrence> {
    let tz = cfg.organization.timezone;
    let today = w.now.with_timezone(&tz).date_naive();
    let from = match w.mark {
        Some(m) if !w.catching_up() => m.with_timezone(&tz).date_naive(),
        _ => today - Duration::days(LOOKBACK_DAYS),
    };
    occurrences(cfg, from.min(today), today, Filter::default())
        .into_iter()
        .filter(|occ| occ.deadline.with_timezone(&Utc) > w.first_start)
        .filter(|occ| {
            w.catching_up()
                || occ.steps.iter().any(|s| {
                    let at = s.at.with_timezone(&Utc);
                    at <= w.now && w.after_mark(at)
                })
        })
        .collect()
}

/// The steps of `occurrences` due in `w`, given what is recorded of each obligation
/// (`recorded` of its key; `None` for an obligation not recorded yet).
pub fn due<'a>(
    cfg: &Config,
    occurrences: &'a [Occurrence],
    w: &Window,
    recorded: impl Fn(&str) -> Option<Recorded>,
) -> Vec<DueStep<'a>> {
    let mut out = Vec::new();
    for occ in occurrences {
        let past: Vec<&Step> = occ
            .steps
            .iter()
            .filter(|s| s.at.with_timezone(&Utc) <= w.now)
            .collect();
        let mut send: Vec<Vec<usize>> = vec![Vec::new(); past.len()];
        let mut skip: Vec<Vec<usize>> = vec![Vec::new(); past.len()];
        for &u in &cfg.rules[occ.rule].units {
            let rec = recorded(&occ.obligation_key(cfg, u));
            let state = rec.map(|r| r.state);
            // A catch-up treats an obligation never reminded (not recorded yet, or recorded
            // ahead by the registration) like a first start, but never chases a deadline
            // already passed.
            let new = !rec.is_some_and(|r| r.reminded)
                && w.catching_up()
                && occ.deadline.with_timezone(&Utc) > w.now;
            let due: Vec<usize> = (0..past.len())
                .filter(|&i| new || w.after_mark(past[i].at.with_timezone(&Utc)))
                .filter(|&i| !state.is_some_and(|s| s.silences(past[i].name.kind)))
                .collect();
            if let Some((&latest, earlier)) = due.split_last() {
                send[latest].push(u);
                for &i in earlier {
                    skip[i].push(u);
                }
            }
        }
        for (i, step) in past.into_iter().enumerate() {
            let (send, skip) = (std::mem::take(&mut send[i]), std::mem::take(&mut skip[i]));
            if !send.is_empty() || !skip.is_empty() {
                out.push(DueStep {
                    occurrence: occ,
                    step,
                    send,
                    skip,
                });
            }
        }
    }
    out
}

/// The next step after `now`, of any obligation: what the engine waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Next {
    /// When it leaves.
    pub at: DateTime<Utc>,
    /// "before-14d of bao-cao-nam/2026 at Mon 21/12/2026 08:00" (local time).
    pub text: String,
    /// The step's name (`before-14d`).
    pub step: String,
    /// The occurrence's key (`bao-cao-nam/2026`).
    pub occurrence: String,
    /// When it leaves, in the organization's time zone.
    pub local: chrono::NaiveDateTime,
}

/// The first step after `now` within [`HORIZON_DAYS`].
pub fn next(cfg: &Config, now: DateTime<Utc>) -> Option<Next> {
    let tz = cfg.organization.timezone;
    let today = now.with_timezone(&tz).date_naive();
    let horizon = today + Duration::days(HORIZON_DAYS);
    occurrences(cfg, today, horizon, Filter::default())
        .iter()
        .flat_map(|o| o.steps.iter().map(move |s| (o, s)))
        .filter(|(_, s)| s.at.with_timezone(&Utc) > now)
        .min_by_key(|(_, s)| s.at)
        .map(|(o, s)| Next {
            at: s.at.with_timezone(&Utc),
            text: format!(
                "{} of {} at {}",
                s.name,
                o.key(cfg),
                s.at.format("%a %d/%m/%Y %H:%M")
            ),
            step: s.name.to_string(),
            occurrence: o.key(cfg),
            local: s.at.naive_local(),
        })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use chrono::TimeZone;

    use super::*;
    use crate::state::ObligationState;

    /// Two units owe the 9-month report (deadline before Sun 05/10/2025, last day Fri 03/10;
    /// steps before-14d 19/09, before-7d 26/09, before-3wd 30/09, before-1wd 02/10, due
    /// 03/10, after-1wd 06/10, after-3wd 08/10, after-7wd 14/10, all at 08:00).
    fn cfg() -> Config {
        let fields = r#"period = "nine-months"
due = { month = "next", day = 5, before = true }
units = ["vp", "kt"]"#;
        crate::testutil::ward_config("", &crate::testutil::rule("bc9", "Báo cáo 9 tháng", fields))
    }

    fn at(m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        chrono_tz::Asia::Ho_Chi_Minh
            .with_ymd_and_hms(2025, m, d, h, min, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    /// (step, units sent, units skipped) of each due step.
    type Row = (String, Vec<String>, Vec<String>);

    /// What a case is: its name, the window, the recorded states, what falls due.
    type Case = (
        &'static str,
        Window,
        Vec<(&'static str, ObligationState)>,
        Vec<Row>,
    );

    fn run(w: Window, states: &[(&str, ObligationState)]) -> Vec<Row> {
        let cfg = cfg();
        let states: HashMap<String, Recorded> = states
            .iter()
            .map(|(u, s)| {
                let rec = Recorded {
                    state: *s,
                    reminded: true,
                };
                (format!("bc9/2025-9M/{u}"), rec)
            })
            .collect();
        let occs = candidates(&cfg, &w);
        let ids = |us: &[usize]| us.iter().map(|&u| cfg.units[u].id.clone()).collect();
        due(&cfg, &occs, &w, |k| states.get(k).copied())
            .into_iter()
            .map(|d| (d.step.name.to_string(), ids(&d.send), ids(&d.skip)))
            .collect()
    }

    fn row(step: &str, send: &[&str], skip: &[&str]) -> Row {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect();
        (step.to_string(), v(send), v(skip))
    }

    #[test]
    fn what_falls_due() {
        use ObligationState::*;
        let w = |mark, now, first, catch_up| Window {
            mark,
            now,
            first_start: first,
            catch_up,
        };
        let t0 = at(9, 1, 0, 0);
        let table: Vec<Case> = vec![
            (
                "a step after the mark goes to every unit",
                w(Some(at(9, 26, 7, 59)), at(9, 26, 8, 0), t0, false),
                vec![],
                vec![row("before-7d", &["vp", "kt"], &[])],
            ),
            (
                "nothing between two steps",
                w(Some(at(9, 26, 8, 0)), at(9, 29, 9, 0), t0, false),
                vec![],
                vec![],
            ),
            (
                "after downtime the latest is sent, the earlier skipped",
                w(Some(at(9, 26, 8, 0)), at(10, 3, 9, 0), t0, false),
                vec![("vp", Pending), ("kt", Pending)],
                vec![
                    row("before-3wd", &[], &["vp", "kt"]),
                    row("before-1wd", &[], &["vp", "kt"]),
                    row("due", &["vp", "kt"], &[]),
                ],
            ),
            (
                "seen silences the before steps, done every step",
                w(Some(at(9, 26, 8, 0)), at(10, 3, 9, 0), t0, false),
                vec![("vp", Seen), ("kt", Done)],
                vec![row("due", &["vp"], &[])],
            ),
            (
                "a seen unit's earlier before steps are not recorded either",
                w(Some(at(9, 29, 8, 0)), at(10, 2, 9, 0), t0, false),
                vec![("vp", Seen), ("kt", Pending)],
                vec![
                    row("before-3wd", &[], &["kt"]),
                    row("before-1wd", &["kt"], &[]),
                ],
            ),
            (
                "the first wake sends the latest past step and skips the others",
                w(None, at(9, 29, 9, 0), t0, false),
                vec![],
                vec![
                    row("before-14d", &[], &["vp", "kt"]),
                    row("before-7d", &["vp", "kt"], &[]),
                ],
            ),
            (
                "a deadline that passed before the first start is never chased",
                w(None, at(10, 9, 9, 0), at(10, 6, 0, 0), false),
                vec![],
                vec![],
            ),
            (
                "a catch-up adds the unit not recorded yet, the recorded one only after the mark",
                w(Some(at(9, 29, 9, 0)), at(9, 30, 9, 0), t0, true),
                vec![("vp", Pending)],
                vec![
                    row("before-14d", &[], &["kt"]),
                    row("before-7d", &[], &["kt"]),
                    row("before-3wd", &["vp", "kt"], &[]),
                ],
            ),
            (
                "a catch-up does not chase a deadline already passed",
                w(Some(at(10, 9, 8, 59)), at(10, 9, 9, 0), t0, true),
                vec![("vp", Pending)],
                vec![],
            ),
        ];
        for (what, w, states, want) in table {
            assert_eq!(run(w, &states), want, "{what}");
        }
    }

    /// An obligation recorded ahead but never reminded is caught up like one not recorded
    /// (a reload that added the unit registers it before it enqueues), keeping its state.
    #[test]
    fn a_catch_up_treats_a_registered_obligation_never_reminded_as_new() {
        let cfg = cfg();
        let w = Window {
            mark: Some(at(9, 29, 9, 0)),
            now: at(9, 30, 9, 0),
            first_start: at(9, 1, 0, 0),
            catch_up: true,
        };
        let occs = candidates(&cfg, &w);
        let rec = |k: &str| {
            let state = if k.ends_with("/kt") {
                ObligationState::Pending
            } else {
                ObligationState::Seen
            };
            Some(Recorded {
                state,
                reminded: false,
            })
        };
        let got: Vec<(String, Vec<usize>, Vec<usize>)> = due(&cfg, &occs, &w, rec)
            .into_iter()
            .map(|d| (d.step.name.to_string(), d.send, d.skip))
            .collect();
        let (vp, kt) = (cfg.unit_index("vp").unwrap(), cfg.unit_index("kt").unwrap());
        assert_eq!(
            got,
            [
                ("before-14d".to_string(), vec![], vec![kt]),
                ("before-7d".to_string(), vec![], vec![kt]),
                ("before-3wd".to_string(), vec![kt], vec![]),
            ],
            "vp answered seen ahead: no before step at all"
        );
        assert_ne!(vp, kt);
    }

    #[test]
    fn the_next_step_is_named_with_its_local_time() {
        let n = next(&cfg(), at(9, 26, 8, 0)).unwrap();
        assert_eq!(n.at, at(9, 30, 8, 0));
        assert_eq!(n.text, "before-3wd of bc9/2025-9M at Tue 30/09/2025 08:00");
    }
}
