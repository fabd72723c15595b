//! The configs the daemon tests run: a ward ([`ORG`]) whose units ([`unit`]) owe rules
//! ([`once`]) under policies ([`policy`]), put together by [`Cfg`] with a port of its own.
//!
//! The usual scenario is [`tuyen_truyen`]: a one-off task due Wed 15/10/2025 with one
//! reminder five days before the last day, Fri 10/10/2025 08:00; a daemon started at
//! [`FIRST_START`] (Mon 13/10/2025 09:00) finds it past and sends it at once.

use std::fmt::Write as _;

use super::channels::HookServer;
use super::smtp::SmtpServer;
use super::zalo::ZaloServer;

pub const ORG: &str = "Ủy ban nhân dân phường Thử nghiệm";
pub const FROM_NAME: &str = "Nhắc việc UBND phường Thử nghiệm";
pub const FROM_ADDR: &str = "nhacviec@thu.example.vn";
pub const DOMAIN: &str = "thu.example.vn";
pub const ADMIN: &str = "quantri@thu.example.vn";

/// The first start of [`tuyen_truyen`]'s daemons: its reminder (Fri 10/10 08:00) is past,
/// its deadline (the end of Wed 15/10) ahead.
pub const FIRST_START: &str = "2025-10-13T09:00:00+07:00";

/// The due day of [`tuyen_truyen`], which is its period id.
pub const TUYEN_TRUYEN_DUE: &str = "2025-10-15";

pub const TUYEN_TRUYEN: &str = "Tuyên truyền kỷ niệm Ngày thành lập phường";
pub const REFERENCE: &str = "Chương trình 05/CTr-UBND, mục III";

/// The units the tests know, with their names.
const NAMES: &[(&str, &str)] = &[
    ("vhxh", "Phòng Văn hóa – Xã hội"),
    ("vp", "Văn phòng HĐND và UBND phường"),
    ("kt", "Phòng Kinh tế – Hạ tầng – Đô thị"),
    ("hcc", "Trung tâm Phục vụ hành chính công"),
    ("yt", "Trạm Y tế phường"),
    ("th", "Trường Tiểu học Kim Đồng"),
    ("lanh-dao", "Lãnh đạo UBND phường"),
];

/// A known unit's name.
pub fn name(id: &str) -> &'static str {
    NAMES
        .iter()
        .find(|(i, _)| *i == id)
        .map_or_else(|| panic!("no unit `{id}` in the harness"), |(_, n)| n)
}

/// A unit's first address: `{id}@thu.example.vn`.
pub fn address(id: &str) -> String {
    format!("{id}@{DOMAIN}")
}

/// The webhook signing secret of [`Cfg::channels`] (32 bytes of 0x2a).
pub const WEBHOOK_SECRET: &str = "whsec_KioqKioqKioqKioqKioqKioqKioqKioqKioqKio=";

/// The ZNS template id of each kind [`Cfg::zalo`] sets up.
pub const ZALO_TEMPLATES: &[(&str, &str)] = &[
    ("before", "301001"),
    ("due", "301002"),
    ("after", "301003"),
    ("escalated", "301004"),
    ("resolved", "301005"),
];

/// A `[[unit]]`.
#[derive(Debug, Clone)]
pub struct Unit {
    id: String,
    name: String,
    email: Vec<String>,
    escalate_to: Vec<String>,
    telegram: Option<String>,
    webhook: Vec<String>,
    zalo: Vec<String>,
}

/// A known unit with its one address.
pub fn unit(id: &str) -> Unit {
    Unit {
        id: id.to_string(),
        name: name(id).to_string(),
        email: vec![address(id)],
        escalate_to: Vec::new(),
        telegram: None,
        webhook: Vec::new(),
        zalo: Vec::new(),
    }
}

/// Unit number `i` of a crowd: `u007`, "Đơn vị 7", no address yet.
pub fn numbered(i: usize) -> Unit {
    Unit {
        id: format!("u{i:03}"),
        name: format!("Đơn vị {i}"),
        ..unit("vp").emails(&[])
    }
}

/// Known units, in this order.
pub fn units(ids: &[&str]) -> Vec<Unit> {
    ids.iter().map(|id| unit(id)).collect()
}

impl Unit {
    /// Its addresses instead.
    pub fn emails(mut self, addresses: &[&str]) -> Unit {
        self.email = addresses.iter().map(|a| a.to_string()).collect();
        self
    }

    /// Its Telegram chat too.
    pub fn telegram(mut self, chat: &str) -> Unit {
        self.telegram = Some(chat.to_string());
        self
    }

    /// Its webhook URLs too.
    pub fn webhooks(mut self, urls: &[&str]) -> Unit {
        self.webhook = urls.iter().map(|a| a.to_string()).collect();
        self
    }

    /// Its Zalo numbers too, as people write them.
    pub fn zalo(mut self, phones: &[&str]) -> Unit {
        self.zalo = phones.iter().map(|a| a.to_string()).collect();
        self
    }

    /// Units its overdue notices escalate to.
    pub fn escalates_to(mut self, ids: &[&str]) -> Unit {
        self.escalate_to = ids.iter().map(|a| a.to_string()).collect();
        self
    }

    pub fn toml(&self) -> String {
        let mut s = format!(
            "\n[[unit]]\nid = \"{}\"\nname = {}\nemail = {}\n",
            self.id,
            toml_str(&self.name),
            toml_list(&self.email)
        );
        if !self.escalate_to.is_empty() {
            let _ = writeln!(s, "escalate_to = {}", toml_list(&self.escalate_to));
        }
        if let Some(t) = &self.telegram {
            let _ = writeln!(s, "telegram = {}", toml_str(t));
        }
        if !self.webhook.is_empty() {
            let _ = writeln!(s, "webhook = {}", toml_list(&self.webhook));
        }
        if !self.zalo.is_empty() {
            let _ = writeln!(s, "zalo = {}", toml_list(&self.zalo));
        }
        s
    }
}

/// A `[policy.NAME]`, named after the rule that uses it.
#[derive(Debug, Clone)]
pub struct Policy {
    before: Vec<String>,
    on_due: bool,
    after: Vec<String>,
    escalate_from: Option<String>,
    on_day_off: Option<String>,
}

/// Steps before and after, no `due` step, no escalation.
pub fn policy(before: &[&str], after: &[&str]) -> Policy {
    Policy {
        before: before.iter().map(|s| s.to_string()).collect(),
        on_due: false,
        after: after.iter().map(|s| s.to_string()).collect(),
        escalate_from: None,
        on_day_off: None,
    }
}

impl Policy {
    /// With the reminder on the last day.
    pub fn on_due(mut self) -> Policy {
        self.on_due = true;
        self
    }

    /// Escalated from this `after` step on.
    pub fn escalate_from(mut self, step: &str) -> Policy {
        self.escalate_from = Some(step.to_string());
        self
    }

    /// `on_day_off = "keep"`: nothing moves off a day off.
    pub fn keep(mut self) -> Policy {
        self.on_day_off = Some("keep".into());
        self
    }

    fn toml(&self, name: &str) -> String {
        let mut s = format!(
            "\n[policy.{name}]\nbefore = {}\non_due = {}\nafter = {}\n",
            toml_list(&self.before),
            self.on_due,
            toml_list(&self.after)
        );
        if let Some(e) = &self.escalate_from {
            let _ = writeln!(s, "escalate_from = \"{e}\"");
        }
        if let Some(o) = &self.on_day_off {
            let _ = writeln!(s, "on_day_off = \"{o}\"");
        }
        s
    }
}

/// A `[[rule]]` with its own policy.
#[derive(Debug, Clone)]
pub struct Rule {
    id: String,
    kind: String,
    title: String,
    due: String,
    units: Vec<String>,
    policy: Option<Policy>,
    reference: Option<String>,
    submit_to: Option<String>,
}

/// A one-off task due on `due`: `"2025-10-15"` (the end of that day) or `"2025-10-15
/// 10:00"` (that time), submitted to `vhxh`, with the default policy until told.
pub fn once(id: &str, title: &str, due: &str) -> Rule {
    let due = match due.split_once(' ') {
        Some((d, t)) => format!("{{ date = \"{d}\", time = \"{t}\" }}"),
        None => format!("{{ date = \"{due}\" }}"),
    };
    Rule {
        id: id.to_string(),
        kind: "task".into(),
        title: title.to_string(),
        due,
        units: Vec::new(),
        policy: None,
        reference: None,
        submit_to: Some("vhxh".into()),
    }
}

/// The key of `unit`'s obligation of the usual one-off task.
pub fn tuyen_truyen_key(unit: &str) -> String {
    format!("tuyen-truyen/{TUYEN_TRUYEN_DUE}/{unit}")
}

/// The usual one-off task (see the module's documentation), owed by `units`.
pub fn tuyen_truyen(units: &[&str]) -> Rule {
    once("tuyen-truyen", TUYEN_TRUYEN, TUYEN_TRUYEN_DUE)
        .units(units)
        .policy(policy(&["5d"], &[]))
        .reference(REFERENCE)
}

impl Rule {
    pub fn units(mut self, ids: &[&str]) -> Rule {
        self.units = ids.iter().map(|a| a.to_string()).collect();
        self
    }

    pub fn policy(mut self, p: Policy) -> Rule {
        self.policy = Some(p);
        self
    }

    pub fn reference(mut self, r: &str) -> Rule {
        self.reference = Some(r.to_string());
        self
    }

    pub fn kind(mut self, k: &str) -> Rule {
        self.kind = k.to_string();
        self
    }

    pub fn toml(&self) -> String {
        let mut s = String::new();
        if let Some(p) = &self.policy {
            s.push_str(&p.toml(&self.id));
        }
        let _ = write!(
            s,
            "\n[[rule]]\nid = \"{}\"\nkind = \"{}\"\ntitle = {}\nperiod = \"once\"\ndue = {}\nunits = {}\n",
            self.id,
            self.kind,
            toml_str(&self.title),
            self.due,
            toml_list(&self.units)
        );
        if let Some(r) = &self.reference {
            let _ = writeln!(s, "reference = {}", toml_str(r));
        }
        if let Some(t) = &self.submit_to {
            let _ = writeln!(s, "submit_to = \"{t}\"");
        }
        if self.policy.is_some() {
            let _ = writeln!(s, "policy = \"{}\"", self.id);
        }
        s
    }
}

/// How email leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    /// `security = "none"` to 127.0.0.1, no AUTH.
    None,
    /// `security = "starttls"` to `localhost`, AUTH, the server's CA in `ca_file`.
    StartTls,
    /// `security = "tls"` to 127.0.0.1, AUTH, the server's CA in `ca_file`.
    Tls,
}

/// The SMTP user and password of the servers with AUTH.
pub const SMTP_USER: &str = "nhacviec";
pub const SMTP_PASSWORD: &str = "mật khẩu đúng";

impl Security {
    /// The host the config names: the test certificate is for both.
    pub fn host(self) -> &'static str {
        match self {
            Security::StartTls => "localhost",
            _ => "127.0.0.1",
        }
    }

    /// What `send-test` and the log call the transport.
    pub fn describe(self, port: u16) -> String {
        let how = match self {
            Security::None => "no encryption",
            Security::StartTls => "STARTTLS",
            Security::Tls => "TLS",
        };
        format!("SMTP {}:{port} ({how})", self.host())
    }
}

/// `[email]` to an SMTP server on `port`; with TLS, `ca_file` and AUTH from `password_file`
/// (the files [`Cfg::smtp`] adds).
pub fn smtp_email(port: u16, security: Security) -> String {
    let mut s = format!(
        "\n[email]\nfrom = \"{FROM_NAME} <{FROM_ADDR}>\"\ntransport = \"smtp\"\n\n[email.smtp]\n\
         host = \"{}\"\nport = {port}\nmax_per_minute = 100000\n",
        security.host()
    );
    s.push_str(match security {
        Security::None => "security = \"none\"\n",
        Security::StartTls => "security = \"starttls\"\n",
        Security::Tls => "security = \"tls\"\n",
    });
    if security != Security::None {
        let _ = writeln!(
            s,
            "username = \"{SMTP_USER}\"\npassword_file = \"secrets/smtp-password\"\nca_file = \"certs/ca.pem\""
        );
    }
    s
}

/// A whole config for a daemon on a port of its own: [`ORG`], coordinated by `vhxh`, no
/// digest, the file transport, then units and rules.
#[derive(Debug, Clone)]
pub struct Cfg {
    /// The HTTP port (free a moment ago).
    pub(crate) port: u16,
    /// Base of the links (`http://127.0.0.1:{port}` unless set).
    pub(crate) public_url: String,
    pub(crate) admins: Vec<String>,
    /// The `[digest]` section's body.
    pub(crate) digest: String,
    /// Lines added to `[server]`.
    pub(crate) server: Vec<String>,
    /// The `[email]` section(s).
    pub(crate) email: String,
    /// Files the config names (secrets, certificates): (path, text).
    pub(crate) files: Vec<(String, String)>,
    pub(crate) units: Vec<Unit>,
    pub(crate) rules: Vec<Rule>,
    /// Anything else, verbatim, at the end.
    pub(crate) extra: String,
}

/// A port free a moment ago, for a daemon to listen on, never handed out twice in this run.
///
/// It comes from below the kernel's ephemeral range (`ip_local_port_range`, 32768 and up
/// by default), where the test servers binding port 0 and every outgoing connection take
/// theirs: a port picked there ("bind port 0, note it, close") could be taken again by one
/// of them before the daemon binds it, and the daemon would refuse to start (seen in CI
/// with four test threads).
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    // A window of 8000 ports below it, starting where this process's id says, so that two
    // test runs at once rarely walk the same ports.
    let window = 8000;
    let base = low.saturating_sub(window).max(1024);
    let start = std::process::id() % window;
    for _ in 0..window {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let port = base + (start + n) % window;
        let Ok(port) = u16::try_from(port) else {
            continue;
        };
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port below {low}");
}

impl Cfg {
    /// The coordinator `vhxh`, the file transport, no rule yet.
    pub fn new() -> Cfg {
        let port = free_port();
        Cfg {
            port,
            public_url: format!("http://127.0.0.1:{port}"),
            admins: Vec::new(),
            digest: "to = []".into(),
            server: Vec::new(),
            email: format!(
                "\n[email]\nfrom = \"{FROM_NAME} <{FROM_ADDR}>\"\ntransport = \"file\"\n"
            ),
            files: Vec::new(),
            units: vec![unit("vhxh")],
            rules: Vec::new(),
            extra: String::new(),
        }
    }

    /// These units too (after `vhxh`).
    pub fn units(mut self, units: impl IntoIterator<Item = Unit>) -> Cfg {
        self.units.extend(units);
        self
    }

    pub fn rule(mut self, rule: Rule) -> Cfg {
        self.rules.push(rule);
        self
    }

    /// Email through `server` with this security (and, with TLS, its CA and the password
    /// file holding [`SMTP_PASSWORD`]).
    pub fn smtp(self, server: &SmtpServer, security: Security) -> Cfg {
        self.smtp_password(server, security, SMTP_PASSWORD)
    }

    /// [`Cfg::smtp`] with another password in the password file.
    pub fn smtp_password(mut self, server: &SmtpServer, security: Security, password: &str) -> Cfg {
        self.email = smtp_email(server.port, security);
        if security != Security::None {
            // An editor leaves a newline: it must not count.
            self.files
                .push(("secrets/smtp-password".into(), format!("{password}\n")));
            if let Some(ca) = &server.ca_pem {
                self.files.push(("certs/ca.pem".into(), super::read(ca)));
            }
        }
        self
    }

    /// Telegram through `server`'s Bot API (its token in `secrets/telegram-token`) and
    /// webhooks signed with [`WEBHOOK_SECRET`] (in `secrets/webhook-secret`), neither rate
    /// limited.
    pub fn channels(mut self, server: &HookServer) -> Cfg {
        let _ = write!(
            self.extra,
            "\n[channels.telegram]\napi_url = \"{}\"\nbot_token_file = \"secrets/telegram-token\"\nmax_per_minute = 100000\n\n[channels.webhook]\nsecret_file = \"secrets/webhook-secret\"\nmax_per_minute = 100000\n",
            server.base()
        );
        self.files.push((
            "secrets/telegram-token".into(),
            format!("{}\n", server.token()),
        ));
        self.files.push((
            "secrets/webhook-secret".into(),
            format!("{WEBHOOK_SECRET}\n"),
        ));
        self
    }

    /// A burst: `n` numbered units, each with its own webhook on `server`, all owing the
    /// usual task (due at the first start), webhooks paced at `per_minute`, so the burst
    /// lasts long enough for a test to act in the middle of it.
    pub fn webhook_burst(server: &HookServer, n: usize, per_minute: u32) -> Cfg {
        let mut cfg = Cfg::new()
            .units((0..n).map(|i| numbered(i).webhooks(&[&server.hook_url(&format!("u{i:03}"))])))
            .rule(tuyen_truyen(&["all"]))
            .channels(server);
        let unpaced =
            "[channels.webhook]\nsecret_file = \"secrets/webhook-secret\"\nmax_per_minute = 100000";
        assert!(cfg.extra.contains(unpaced));
        cfg.extra = cfg.extra.replace(
            unpaced,
            &format!("[channels.webhook]\nsecret_file = \"secrets/webhook-secret\"\nmax_per_minute = {per_minute}"),
        );
        cfg
    }

    /// Zalo through `server` (ZNS and OAuth both), its app's secret key and first refresh
    /// token in `secrets/`, a ZNS template for each kind ([`ZALO_TEMPLATES`]), no rate limit.
    pub fn zalo(mut self, server: &ZaloServer) -> Cfg {
        let _ = write!(
            self.extra,
            "\n[channels.zalo]\napp_id = \"{}\"\nsecret_key_file = \"secrets/zalo-secret\"\nrefresh_token_file = \"secrets/zalo-refresh\"\napi_url = \"{base}\"\noauth_url = \"{base}\"\nmax_per_minute = 100000\n",
            server.app_id(),
            base = server.base()
        );
        for (kind, id) in ZALO_TEMPLATES {
            let _ = write!(
                self.extra,
                "\n[channels.zalo.templates.{kind}]\nid = \"{id}\"\ndata = {{ ten_don_vi = \"{{{{ unit.name }}}}\", noi_dung = \"{{{{ rule.title }}}}\", han = \"{{{{ last_day.date }}}}\", ma = \"{{{{ period.id }}}}\" }}\nmax_len = {{ noi_dung = 30 }}\n"
            );
        }
        self.files.push((
            "secrets/zalo-secret".into(),
            format!("{}\n", server.secret_key()),
        ));
        self.files.push((
            "secrets/zalo-refresh".into(),
            format!("{}\n", server.initial_refresh_token()),
        ));
        self
    }

    pub fn admins(mut self, addresses: &[&str]) -> Cfg {
        self.admins = addresses.iter().map(|a| a.to_string()).collect();
        self
    }

    /// The status page on, with this password (in `secrets/admin-password`).
    pub fn admin_password(mut self, password: &str) -> Cfg {
        self.server
            .push("admin_password_file = \"secrets/admin-password\"".into());
        self.files
            .push(("secrets/admin-password".into(), format!("{password}\n")));
        self
    }

    /// A line in `[server]` (`ack_per_minute = 3`).
    pub fn server(mut self, line: &str) -> Cfg {
        self.server.push(line.to_string());
        self
    }

    /// The `[digest]` section's body.
    pub fn digest(mut self, body: &str) -> Cfg {
        self.digest = body.to_string();
        self
    }

    pub fn public_url(mut self, url: &str) -> Cfg {
        self.public_url = url.to_string();
        self
    }

    pub fn extra(mut self, toml: &str) -> Cfg {
        self.extra.push_str(toml);
        self
    }

    /// The file's text.
    pub fn toml(&self) -> String {
        let mut s = format!(
            "[organization]\nname = \"{ORG}\"\npublic_url = \"{}\"\ncoordinator = \"vhxh\"\nadmins = {}\n\n[digest]\n{}\n\n[server]\nlisten = \"127.0.0.1:{}\"\n",
            self.public_url,
            toml_list(&self.admins),
            self.digest,
            self.port
        );
        for line in &self.server {
            let _ = writeln!(s, "{line}");
        }
        s.push_str(&self.email);
        for u in &self.units {
            s.push_str(&u.toml());
        }
        for r in &self.rules {
            s.push_str(&r.toml());
        }
        s.push_str(&self.extra);
        s
    }
}

impl Default for Cfg {
    fn default() -> Cfg {
        Cfg::new()
    }
}

/// A TOML basic string.
pub fn toml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn toml_list(items: &[String]) -> String {
    let inner: Vec<String> = items.iter().map(|i| toml_str(i)).collect();
    format!("[{}]", inner.join(", "))
}
