//! The worker with the real file transport, a real SQLite file and a manual clock.

use std::path::{Path, PathBuf};

use chrono::TimeZone;

use super::*;
use crate::clock::ManualClock;
use crate::deliver::channel::{Receipt, Sender, Sending};
use crate::deliver::enqueue;
use crate::deliver::templates::Templates;
use crate::plan::{self, Period};
use crate::state::{Channel, MessageStatus, TemplateKind};
use crate::testutil::TempDir;

fn config(dir: &Path, mail_dir: &str) -> Config {
    let text = crate::testutil::ward(
        "public_url = \"https://nhacviec.example.invalid\"\ncoordinator = \"vhxh\"\n[digest]\nto = []",
        &format!(
            "[email]\nfrom = \"Nhắc việc <nhacviec@example.invalid>\"\n[email.file]\ndir = \"{mail_dir}\"\n{}",
            crate::testutil::rule(
                "bao-cao-9-thang",
                "Báo cáo công tác dân vận",
                "period = \"nine-months\"\ndue = { month = \"next\", day = 5, before = true }\nunits = [\"vp\"]\nsubmit_to = \"vhxh\""
            )
        ),
    );
    crate::testutil::config_at(&dir.join("nhacviec.toml"), &text)
}

struct Fixture {
    _dir: TempDir,
    mail: PathBuf,
    store: Arc<Store>,
    clock: Arc<ManualClock>,
    outbox: Outbox,
    current: Arc<Current>,
    key: TokenKey,
}

impl Fixture {
    fn cfg(&self) -> Arc<Config> {
        self.current.config()
    }

    /// The unit that owes the report.
    fn vp(&self) -> usize {
        self.cfg().unit_index("vp").unwrap()
    }
}

fn fixture(mail_dir: &str) -> Fixture {
    fixture_with(mail_dir, |a| a)
}

/// A fixture whose senders `senders` may replace.
fn fixture_with(mail_dir: &str, senders: impl FnOnce(Applied) -> Applied) -> Fixture {
    let dir = TempDir::new("w");
    let cfg = config(&dir.0, mail_dir);
    let t0 = Utc.with_ymd_and_hms(2025, 9, 19, 1, 0, 0).unwrap();
    let clock = Arc::new(ManualClock::new(t0));
    let store = Arc::new(Store::open(&dir.0.join("db"), t0).unwrap());
    let key = TokenKey::from_bytes([7; 32]);
    let (templates, diags) = Templates::load(None);
    assert!(diags.is_empty());
    let applied = senders(Applied::new(cfg, templates.unwrap(), None).unwrap());
    let current = Arc::new(Current::new(applied));
    let outbox = Outbox::new(store.clone(), clock.clone(), current.clone(), key.clone());
    Fixture {
        mail: dir.0.join(mail_dir),
        _dir: dir,
        store,
        clock,
        outbox,
        current,
        key,
    }
}

/// Enqueues vp's first step of the 9-month report 2025 and sets the clock to its instant.
fn enqueue_first_step(f: &Fixture) {
    let cfg = f.cfg();
    let occ = plan::occurrence(&cfg, 0, Period::NineMonths(2025)).unwrap();
    let step = &occ.steps[0];
    let rows = enqueue::step_rows(&cfg, &f.key, &occ, step, &[f.vp()], false);
    f.store.enqueue(f.clock.now(), &[rows], None).unwrap();
    f.clock.set(step.at.with_timezone(&Utc));
}

/// Enqueues every step of the 9-month report 2025 (all due by 15/10/2025).
fn enqueue_all(f: &Fixture) -> usize {
    let cfg = f.cfg();
    let occ = plan::occurrence(&cfg, 0, Period::NineMonths(2025)).unwrap();
    let mut n = 0;
    for step in &occ.steps {
        let rows = enqueue::step_rows(&cfg, &f.key, &occ, step, &[f.vp()], false);
        n += f.store.enqueue(f.clock.now(), &[rows], None).unwrap();
    }
    n
}

fn emls(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| n.ends_with(".eml"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[tokio::test]
async fn due_messages_are_sent_once_each_with_the_required_headers() {
    let f = fixture("mail");
    // 8 steps for vp; after-3wd and after-7wd are escalated: one more message each.
    assert_eq!(enqueue_all(&f), 10);
    assert_eq!(enqueue_all(&f), 0, "enqueueing again adds nothing");

    // On 19/09 only before-14d is due.
    let o = f.outbox.drain().await.unwrap();
    assert_eq!(
        o,
        Outcome {
            sent: 1,
            retried: 0,
            failed: 0
        }
    );
    // Three weeks later every step is due.
    f.clock.advance(Duration::days(30));
    let o = f.outbox.drain().await.unwrap();
    assert_eq!(o.sent, 9);
    assert_eq!(f.outbox.drain().await.unwrap().total(), 0);
    let files = emls(&f.mail);
    assert_eq!(files.len(), 10, "{files:?}");
    let esc: Vec<&String> = files.iter().filter(|n| n.contains(".after-")).collect();
    assert_eq!(
        esc.len(),
        5,
        "after-1wd; after-3wd and after-7wd to vp and to lanh-dao: {esc:?}"
    );

    let raw = std::fs::read_to_string(f.mail.join(&files[0])).unwrap();
    for header in [
        "MIME-Version: 1.0",
        "Auto-Submitted: auto-generated",
        "List-Id: nhacviec <nhacviec.example.invalid>",
        "Reply-To: vhxh@example.invalid",
        "Message-ID: <bao-cao-9-thang.2025-9M.vp.",
        "Content-Type: multipart/alternative",
        "Subject: =?utf-8?",
    ] {
        assert!(raw.contains(header), "{header} missing:\n{raw}");
    }
    // The link carries the derived token, and the store holds only its hash.
    let token = f.key.token("bao-cao-9-thang/2025-9M/vp");
    for part in decoded_parts(&raw) {
        assert!(part.contains(&format!("/a/{token}")), "{part}");
        assert!(!part.contains("/a/0123"), "not the sample link: {part}");
    }
    let rows = f.store.messages().unwrap();
    assert!(
        rows.iter()
            .all(|m| m.status == MessageStatus::Sent && m.attempts == 1)
    );
    assert!(rows.iter().all(|m| {
        m.subject
            .as_deref()
            .is_some_and(|s| s.contains("9 tháng năm 2025"))
    }));
    // The database and its write-ahead log, where the new rows are until a checkpoint.
    let mut stored = std::fs::read(f.store.path()).unwrap();
    let wal = PathBuf::from(format!("{}-wal", f.store.path().display()));
    stored.extend(std::fs::read(&wal).unwrap_or_default());
    assert!(
        String::from_utf8_lossy(&stored).contains("bao-cao-9-thang/2025-9M/vp"),
        "the rows are in what was read"
    );
    assert!(
        !String::from_utf8_lossy(&stored).contains(&token),
        "no token in the database"
    );
}

#[tokio::test]
async fn transient_failures_back_off_then_give_up_after_48_hours() {
    let f = fixture("mail");
    // The mail folder's place is taken by a file: every write fails, transiently.
    std::fs::write(&f.mail, "not a folder").unwrap();
    enqueue_first_step(&f);
    let start = f.clock.now();
    let mut waits = Vec::new();
    loop {
        let out = f.outbox.drain().await.unwrap();
        if out.failed == 1 {
            break;
        }
        assert_eq!(out.retried, 1);
        let row = &f.store.messages().unwrap()[0];
        assert_eq!(row.status, MessageStatus::Pending);
        assert!(
            row.last_error
                .as_deref()
                .unwrap_or("")
                .contains("cannot create the mail folder")
        );
        let next = row.next_attempt_at.unwrap();
        waits.push((next - f.clock.now()).num_minutes());
        f.clock.set(next);
        assert!(waits.len() < 200, "never gave up");
    }
    assert_eq!(&waits[..8], [1, 2, 4, 8, 16, 32, 60, 60]);
    let row = &f.store.messages().unwrap()[0];
    assert_eq!(row.status, MessageStatus::Failed);
    assert!(
        row.last_error
            .as_deref()
            .unwrap()
            .starts_with("gave up after 48 h of retries")
    );
    assert!(f.clock.now() - start >= Duration::hours(48));
    assert!(f.clock.now() - start < Duration::hours(49));
}

#[tokio::test]
async fn a_message_cut_off_by_a_crash_is_sent_again_with_its_message_id() {
    let f = fixture("mail");
    enqueue_all(&f);
    let claimed = f.store.claim_due(f.clock.now(), 10).unwrap();
    assert_eq!(claimed.len(), 1);
    // The process dies here; at the next start:
    assert_eq!(f.store.recover_sending(f.clock.now()).unwrap(), 1);
    assert_eq!(f.outbox.drain().await.unwrap().sent, 1);
    let files = emls(&f.mail);
    assert_eq!(files.len(), 1);
    assert!(
        files[0].starts_with(
            claimed[0]
                .message_id
                .trim_start_matches('<')
                .trim_end_matches('>')
        )
    );
    assert_eq!(f.store.messages().unwrap()[0].attempts, 2);
}

/// A sender that panics, as lettre did on a CR or LF in a display name.
struct Panicking;

impl Sender for Panicking {
    fn send<'a>(&'a self, _: &'a Outgoing<'a>) -> Sending<'a> {
        Box::pin(async { panic!("header value contains a line break") })
    }

    fn describe(&self) -> &str {
        "a sender that panics"
    }
}

#[tokio::test]
async fn a_send_that_panics_fails_its_message_with_the_reason_and_the_others_go_on() {
    let f = fixture_with("mail", |a| {
        a.with_sender(Channel::Email, Arc::new(Panicking))
    });
    enqueue_all(&f);
    let o = f.outbox.drain().await.unwrap();
    assert_eq!((o.sent, o.failed), (0, 1), "before-14d is due");
    let row = &f.store.messages().unwrap()[0];
    assert_eq!(row.status, MessageStatus::Failed, "never left `sending`");
    let why = row.last_error.as_deref().unwrap();
    assert!(
        why.contains("crashed (header value contains a line break)"),
        "{why}"
    );
    // The next wake has nothing stuck and nothing to do.
    assert_eq!(f.store.outbox_counts().unwrap().sending, 0);
    assert_eq!(f.outbox.drain().await.unwrap().total(), 0);
}

#[tokio::test]
async fn a_channel_the_config_does_not_set_up_fails_at_once_and_says_why() {
    // The fixture's config has no `[channels.webhook]` (removed by a reload, say).
    let f = fixture("mail");
    let m = Message::new(
        "x/1/vp".into(),
        "due".into(),
        Channel::Webhook,
        "https://hooks.example.invalid/x".into(),
        TemplateKind::Due,
        serde_json::json!({}),
        "<x@example.invalid>".into(),
        f.clock.now(),
    );
    f.store.enqueue_other(f.clock.now(), &[m]).unwrap();
    assert_eq!(f.outbox.drain().await.unwrap().failed, 1);
    let row = &f.store.messages().unwrap()[0];
    assert_eq!(row.status, MessageStatus::Failed);
    assert_eq!(
        row.last_error.as_deref(),
        Some(
            "the config in force has no `[channels.webhook]`, so nothing can be sent on webhook: set the channel up again, or take this address off the unit"
        )
    );
}

#[tokio::test]
async fn a_reminder_leaving_late_says_so() {
    let f = fixture("mail");
    let cfg = f.cfg();
    let occ = plan::occurrence(&cfg, 0, Period::NineMonths(2025)).unwrap();
    let due = occ
        .steps
        .iter()
        .find(|s| s.name.to_string() == "due")
        .unwrap();
    let rows = enqueue::step_rows(&cfg, &f.key, &occ, due, &[f.vp()], false);
    f.store.enqueue(f.clock.now(), &[rows], None).unwrap();
    // The due reminder of Fri 03/10 leaves on Mon 06/10 (a server down over the weekend).
    f.clock.set(
        chrono_tz::Asia::Ho_Chi_Minh
            .with_ymd_and_hms(2025, 10, 6, 9, 0, 0)
            .unwrap()
            .with_timezone(&Utc),
    );
    assert_eq!(f.outbox.drain().await.unwrap().sent, 1);
    let row = &f.store.messages().unwrap()[0];
    assert_eq!(row.template, TemplateKind::Due, "stored as it was enqueued");
    assert_eq!(
        row.subject.as_deref(),
        Some("[Quá hạn] Báo cáo công tác dân vận 9 tháng năm 2025")
    );
    let eml = std::fs::read_to_string(f.mail.join(&emls(&f.mail)[0])).unwrap();
    let parts = decoded_parts(&eml);
    assert_eq!(parts.len(), 2, "text and HTML: {eml}");
    for part in &parts {
        assert!(
            part.to_lowercase().contains("quá hạn 1 ngày làm việc"),
            "{part}"
        );
        assert!(!part.contains("Hôm nay"), "{part}");
    }
}

/// The bodies of a MIME message's parts, decoded from quoted-printable or base64.
fn decoded_parts(eml: &str) -> Vec<String> {
    use base64::Engine as _;
    let mut parts = Vec::new();
    for chunk in eml.split("Content-Transfer-Encoding: ").skip(1) {
        let (headers, body) = chunk.split_once("\r\n\r\n").unwrap();
        let encoding = headers.lines().next().unwrap();
        let body = &body[..body.find("\r\n--").unwrap_or(body.len())];
        let bytes = match encoding {
            "base64" => base64::engine::general_purpose::STANDARD
                .decode(body.replace("\r\n", ""))
                .unwrap(),
            "quoted-printable" => {
                let soft = body.replace("=\r\n", "");
                let mut out = Vec::new();
                let mut b = soft.bytes();
                while let Some(c) = b.next() {
                    if c == b'=' {
                        let hex = [b.next().unwrap(), b.next().unwrap()];
                        let hex = std::str::from_utf8(&hex).unwrap();
                        out.push(u8::from_str_radix(hex, 16).unwrap());
                    } else {
                        out.push(c);
                    }
                }
                out
            }
            other => other.as_bytes().to_vec(),
        };
        parts.push(String::from_utf8(bytes).unwrap());
    }
    parts
}

#[test]
fn backoff_doubles_from_a_minute_to_an_hour() {
    let mins: Vec<i64> = (1..=9).map(|a| backoff(a).num_minutes()).collect();
    assert_eq!(mins, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
}

/// A sender that asks to come back at the instant the test sets, or delivers when none is.
struct AsksToWait {
    until: std::sync::Mutex<Option<DateTime<Utc>>>,
}

impl Sender for AsksToWait {
    fn send<'a>(&'a self, _: &'a Outgoing<'a>) -> Sending<'a> {
        let until = *self.until.lock().unwrap();
        Box::pin(async move {
            match until {
                Some(at) => Err(SendError::RetryAt("429 Too Many Requests".into(), at)),
                None => Ok(Receipt::default()),
            }
        })
    }

    fn describe(&self) -> &str {
        "a server that asks to wait"
    }
}

/// A server's "not before" is kept when it is later than the backoff, the backoff when it
/// is sooner; past 48 hours of retries the message is given up like any other.
#[tokio::test]
async fn a_retry_waits_for_the_server_s_instant_or_the_backoff_whichever_is_later() {
    let asks = Arc::new(AsksToWait {
        until: std::sync::Mutex::new(None),
    });
    let sender = asks.clone();
    let f = fixture_with("mail", move |a| a.with_sender(Channel::Email, sender));
    enqueue_first_step(&f);
    let next = |f: &Fixture| f.store.messages().unwrap()[0].next_attempt_at.unwrap();

    // 10 minutes, later than the first backoff (1 minute): 10 minutes.
    let t = f.clock.now();
    *asks.until.lock().unwrap() = Some(t + Duration::minutes(10));
    assert_eq!(f.outbox.drain().await.unwrap().retried, 1);
    assert_eq!(next(&f), t + Duration::minutes(10));
    // 30 seconds, sooner than the second backoff (2 minutes): 2 minutes.
    let t = next(&f);
    f.clock.set(t);
    *asks.until.lock().unwrap() = Some(t + Duration::seconds(30));
    assert_eq!(f.outbox.drain().await.unwrap().retried, 1);
    assert_eq!(next(&f), t + Duration::minutes(2));
    // Two days later, still asked to wait: given up.
    f.clock.set(t + Duration::hours(48));
    *asks.until.lock().unwrap() = Some(t + Duration::hours(49));
    assert_eq!(f.outbox.drain().await.unwrap().failed, 1);
    let row = &f.store.messages().unwrap()[0];
    assert_eq!(row.status, MessageStatus::Failed);
    assert_eq!(
        row.last_error.as_deref(),
        Some("gave up after 48 h of retries: 429 Too Many Requests")
    );
}

/// A lane claims only its own channel's messages.
#[tokio::test]
async fn a_claim_of_one_channel_leaves_the_others() {
    let f = fixture("mail");
    let now = f.clock.now();
    let message = |channel, to: &str| {
        Message::new(
            "x/1/vp".into(),
            "due".into(),
            channel,
            to.into(),
            TemplateKind::Due,
            serde_json::json!({}),
            format!("<{channel}@example.invalid>"),
            now,
        )
    };
    let ms = [
        message(Channel::Email, "vp@example.invalid"),
        message(Channel::Telegram, "-100"),
        message(Channel::Webhook, "https://hooks.example.invalid/x"),
    ];
    f.store.enqueue_other(now, &ms).unwrap();
    let got = f
        .store
        .claim_due_on(now, Some(Channel::Telegram), 10)
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].channel, Channel::Telegram);
    assert_eq!(
        f.store.next_attempt_on(Some(Channel::Telegram)).unwrap(),
        None,
        "nothing of Telegram left pending"
    );
    assert_eq!(
        f.store.next_attempt_on(Some(Channel::Webhook)).unwrap(),
        Some(now)
    );
    let rest = f.store.claim_due(now, 10).unwrap();
    let mut channels: Vec<Channel> = rest.iter().map(|m| m.channel).collect();
    channels.sort();
    assert_eq!(channels, [Channel::Email, Channel::Webhook]);
}

/// A run of failures keeps its first instant and its latest error, says when its error
/// changes, and ends at the first success, telling since when it lasted.
#[test]
fn a_run_of_failures_keeps_its_start_and_ends_at_a_success() {
    let t = |s: i64| Utc.timestamp_opt(1_760_000_000 + s, 0).unwrap();
    let f = Failing::default();
    assert_eq!(f.record(t(0), None), Run::Fine);
    assert_eq!(f.get(), None);
    assert_eq!(f.record(t(1), Some("disk full".into())), Run::Began);
    assert_eq!(f.record(t(2), Some("disk full".into())), Run::Same);
    assert_eq!(f.record(t(3), Some("read-only".into())), Run::Changed);
    assert_eq!(f.get(), Some((t(1), "read-only".to_string())));
    assert_eq!(f.record(t(4), None), Run::Ended(t(1)));
    assert_eq!(f.get(), None);
    assert_eq!(f.record(t(5), Some("disk full".into())), Run::Began);
    assert_eq!(f.get(), Some((t(5), "disk full".to_string())));
    // A figure that moves (the free space of a full disk) is not a new reason; the latest
    // words are kept for `/healthz`.
    let full = |kib: u32| {
        Some(format!(
            "database or disk is full (var is full, {kib} KiB free)"
        ))
    };
    assert_eq!(f.record(t(6), full(812)), Run::Changed);
    assert_eq!(f.record(t(7), full(640)), Run::Same);
    assert_eq!(f.record(t(8), full(1008)), Run::Same);
    assert_eq!(f.get(), Some((t(5), full(1008).unwrap())));
}
