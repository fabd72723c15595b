//! Message templates (minijinja): built-in Vietnamese defaults, overridable file by file.
//!
//! Each message kind has four templates: `KIND.subject.j2`, `KIND.txt.j2`, `KIND.html.j2`
//! (email and webhook) and `KIND.telegram.j2` (Telegram's HTML subset); names starting with
//! `_` are shared parts (`_layout.html.j2`, `_details.txt.j2`, …). The
//! defaults are compiled in from `config/templates/`; a file of the same name in the config's
//! templates folder replaces one. Undefined variables are errors (strict mode), HTML templates
//! escape what they print, and [`Templates::check`] renders every kind on sample data so that
//! `check` (and a reload) reports a broken template with its line before any message needs it.

use std::path::{Path, PathBuf};

use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};
use serde_json::{Value, json};

use crate::config::Diagnostic;
use crate::config::diag::{Diagnostics, Source};
use crate::state::TemplateKind;
use crate::tr;

macro_rules! builtin {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../config/templates/", $name)))),*]
    };
}

/// The compiled-in defaults: (file name, source).
pub const BUILTIN: &[(&str, &str)] = builtin![
    "_layout.html.j2",
    "_details.html.j2",
    "_details.txt.j2",
    "_footer.txt.j2",
    "_details.telegram.j2",
    "before.subject.j2",
    "before.txt.j2",
    "before.html.j2",
    "before.telegram.j2",
    "due.subject.j2",
    "due.txt.j2",
    "due.html.j2",
    "due.telegram.j2",
    "after.subject.j2",
    "after.txt.j2",
    "after.html.j2",
    "after.telegram.j2",
    "escalated.subject.j2",
    "escalated.txt.j2",
    "escalated.html.j2",
    "escalated.telegram.j2",
    "test.subject.j2",
    "test.txt.j2",
    "test.html.j2",
    "test.telegram.j2",
    "digest.subject.j2",
    "digest.txt.j2",
    "digest.html.j2",
    "digest.telegram.j2",
    "config_error.subject.j2",
    "config_error.txt.j2",
    "config_error.html.j2",
    "config_error.telegram.j2",
    "channel_locked.subject.j2",
    "channel_locked.txt.j2",
    "channel_locked.html.j2",
    "channel_locked.telegram.j2",
    "resolved.subject.j2",
    "resolved.txt.j2",
    "resolved.html.j2",
    "resolved.telegram.j2",
];

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// One line.
    pub subject: String,
    /// The text/plain part.
    pub text: String,
    /// The text/html part.
    pub html: String,
    /// The Telegram message (HTML subset), when rendered for Telegram.
    pub telegram: Option<String>,
    /// The ZNS template id and parameters, when rendered for Zalo.
    pub zalo: Option<Value>,
}

/// Why a message could not be rendered.
#[derive(Debug, thiserror::Error)]
#[error("template {name}: {detail}")]
pub struct RenderError {
    /// The template.
    pub name: String,
    /// What minijinja said, with the line.
    pub detail: String,
}

/// Where each template's source came from, for error messages.
#[derive(Debug, Clone)]
struct Origin {
    name: &'static str,
    path: PathBuf,
    text: String,
}

/// The loaded templates.
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
    origins: Vec<Origin>,
}

impl Templates {
    /// Loads the built-ins, replaced by files of the same name in `dir` where present.
    /// Syntax errors come back as diagnostics with the file, line and column.
    pub fn load(dir: Option<&Path>) -> (Option<Templates>, Vec<Diagnostic>) {
        let mut diags = Diagnostics::default();
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html.j2") || name.ends_with(".telegram.j2") {
                AutoEscape::Html
            } else {
                AutoEscape::None
            }
        });
        env.set_formatter(escape_formatter);
        let mut origins = Vec::new();
        for (name, builtin) in BUILTIN {
            let file = dir.map(|d| d.join(name)).filter(|p| p.is_file());
            let (path, text) = match file {
                Some(p) => match std::fs::read_to_string(&p) {
                    Ok(t) => (p, t),
                    Err(e) => {
                        diags.file_error(&p, tr!("cannot read template: {error}", error = e));
                        continue;
                    }
                },
                None => (
                    PathBuf::from(tr!("(built-in) templates/{name}", name)),
                    (*builtin).to_string(),
                ),
            };
            if let Err(e) = env.add_template_owned(*name, text.clone()) {
                report(&mut diags, &path, &text, &e);
            }
            origins.push(Origin { name, path, text });
        }
        if diags.has_errors() {
            return (None, diags.into_vec());
        }
        let t = Templates { env, origins };
        let problems = t.check();
        let ok = problems.is_empty();
        (ok.then_some(t), problems)
    }

    /// Renders every kind on sample data; each failure is a diagnostic at its line.
    pub fn check(&self) -> Vec<Diagnostic> {
        let mut diags = Diagnostics::default();
        for &kind in TemplateKind::ALL {
            let ctx = sample_of(kind);
            let mut chat = ctx.clone();
            chat["ack_button"] = json!(false);
            for (part, ctx) in [
                ("subject", &ctx),
                ("txt", &ctx),
                ("html", &ctx),
                ("telegram", &chat),
            ] {
                let name = format!("{kind}.{part}.j2");
                if let Err(e) = self.render_one(&name, ctx) {
                    self.report_render(&mut diags, &e);
                }
            }
        }
        diags.into_vec()
    }

    fn report_render(&self, diags: &mut Diagnostics, e: &minijinja::Error) {
        // The error may be in an included or extended template: name that one.
        let name = e.name().unwrap_or_default();
        match self.origins.iter().find(|o| o.name == name) {
            Some(o) => report(diags, &o.path, &o.text, e),
            None => diags.file_error(Path::new("templates"), describe_for_check(e)),
        }
    }

    fn render_one(&self, name: &str, ctx: &Value) -> Result<String, minijinja::Error> {
        self.env
            .get_template(name)?
            .render(minijinja::value::Serde(ctx))
    }

    /// Renders one part (`subject`, `txt`, `html`, `telegram`) of a message of `kind`.
    pub fn part(&self, kind: TemplateKind, part: &str, ctx: &Value) -> Result<String, RenderError> {
        let name = format!("{kind}.{part}.j2");
        self.render_one(&name, ctx).map_err(|e| RenderError {
            name,
            detail: describe(&e),
        })
    }

    /// Renders a template given as text (a ZNS parameter's value) with `ctx`, as the
    /// templates are: strict about undefined variables, no escaping (the text is not HTML).
    pub fn render_str(&self, source: &str, ctx: &Value) -> Result<String, RenderError> {
        self.env
            .render_str(source, minijinja::value::Serde(ctx))
            .map_err(|e| RenderError {
                name: "(a ZNS parameter)".into(),
                detail: describe(&e),
            })
    }

    /// Renders a message of `kind` with `ctx`: subject, text and HTML.
    pub fn render(&self, kind: TemplateKind, ctx: &Value) -> Result<Rendered, RenderError> {
        let part = |p: &str| self.part(kind, p, ctx);
        let subject = part("subject")?
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        Ok(Rendered {
            subject,
            text: part("txt")?,
            html: part("html")?,
            telegram: None,
            zalo: None,
        })
    }
}

/// Escapes `& < > " '` in HTML templates, and nothing else: minijinja's default also
/// escapes `/`, which makes every link and date in the HTML part unreadable to a person
/// looking at the source.
fn escape_formatter(
    out: &mut minijinja::Output,
    state: &mut minijinja::State,
    value: &minijinja::Value,
) -> Result<(), minijinja::Error> {
    if *state.auto_escape() == AutoEscape::Html && !value.is_safe() && !value.is_none() {
        let mut escaped = String::new();
        crate::present::html_escape(&value.to_string(), &mut escaped);
        out.write_str(&escaped).map_err(minijinja::Error::from)
    } else {
        minijinja::escape_formatter(out, state, value)
    }
}

/// minijinja's message with its line, without the source excerpt.
fn describe(e: &minijinja::Error) -> String {
    let mut s = e
        .detail()
        .map_or_else(|| e.kind().to_string(), str::to_string);
    if let Some(line) = e.line() {
        s.push_str(&format!(" (line {line})"));
    }
    s
}

/// [`describe`] in the language of `check`: minijinja's own words stay as they are.
fn describe_for_check(e: &minijinja::Error) -> String {
    let detail = e
        .detail()
        .map_or_else(|| kind_words(e.kind()), str::to_string);
    match e.line() {
        Some(line) => tr!("{detail} (line {line})", detail, line),
        None => detail,
    }
}

/// What kind of error minijinja found, in the language of `check` (its own English words
/// for the kinds a template's author meets; the others as minijinja names them).
fn kind_words(kind: ErrorKind) -> String {
    match kind {
        ErrorKind::SyntaxError => tr!("syntax error"),
        ErrorKind::UndefinedError => tr!("undefined value"),
        ErrorKind::TemplateNotFound => tr!("template not found"),
        ErrorKind::InvalidOperation => tr!("invalid operation"),
        ErrorKind::TooManyArguments => tr!("too many arguments"),
        ErrorKind::MissingArgument => tr!("missing argument"),
        ErrorKind::UnknownFilter => tr!("unknown filter"),
        ErrorKind::UnknownFunction => tr!("unknown function"),
        ErrorKind::UnknownTest => tr!("unknown test"),
        ErrorKind::UnknownMethod => tr!("unknown method"),
        ErrorKind::UnknownBlock => tr!("unknown block"),
        ErrorKind::BadEscape => tr!("bad string escape"),
        ErrorKind::BadInclude => tr!("could not render include"),
        ErrorKind::CannotUnpack => tr!("cannot unpack"),
        other => other.to_string(),
    }
}

fn report(diags: &mut Diagnostics, path: &Path, text: &str, e: &minijinja::Error) {
    let src = Source::new(path, text.to_string());
    let kind = kind_words(e.kind());
    let msg = match e.detail() {
        Some(detail) => tr!("template: {kind}: {detail}", kind, detail),
        None => tr!("template: {kind}: {kind}", kind),
    };
    match (e.range(), e.line()) {
        (Some(r), _) => diags.error(&src, r, msg),
        (None, Some(line)) => {
            let offset = text
                .split_inclusive('\n')
                .take(line.saturating_sub(1))
                .map(str::len)
                .sum();
            diags.error(&src, offset..offset, msg);
        }
        (None, None) => diags.file_error(path, msg),
    }
}

/// Sample data with every variable a reminder template may use.
pub fn sample(kind: TemplateKind) -> Value {
    let escalated = kind == TemplateKind::Escalated;
    let kind = kind.as_str();
    let mut ctx = json!({
        "org": {"name": "Ủy ban nhân dân phường Mẫu", "public_url": "http://127.0.0.1:8080"},
        "unit": {"id": "vp", "name": "Văn phòng HĐND và UBND phường"},
        "recipient": {"name": if kind == "escalated" { "Lãnh đạo UBND phường" } else { "Văn phòng HĐND và UBND phường" },
                      "escalation": kind == "escalated"},
        "rule": {"id": "bao-cao-9-thang", "kind": "report", "kind_label": "báo cáo",
                 "title": "Báo cáo kết quả công tác dân vận chính quyền",
                 "description": "Mô tả <mẫu> & chi tiết", "reference": "Chương trình 05/CTr-UBND"},
        "period": {"id": "2025-9M", "label": "9 tháng năm 2025", "once": false},
        "deadline": {"words": "trước ngày 05/10/2025 (Chủ nhật)", "date": "05/10/2025",
                     "weekday": "Chủ nhật", "time": "00:00", "iso": "2025-10-05T00:00:00+07:00"},
        "last_day": {"words": "thứ Sáu 03/10/2025", "date": "03/10/2025", "weekday": "thứ Sáu",
                     "iso": "2025-10-03"},
        "deadline_words": "trước ngày 05/10/2025 (Chủ nhật); hạn làm việc cuối: thứ Sáu 03/10/2025",
        "submit_to": "Phòng Văn hóa – Xã hội",
        "step": {"name": match kind { "before" => "before-7d", "due" => "due", _ => "after-3wd" },
                 "kind": kind},
        "working_days_left": if kind == "before" { json!(5) } else { Value::Null },
        "working_days_late": if kind == "after" || kind == "escalated" { json!(3) } else { Value::Null },
        "ack_url": "http://127.0.0.1:8080/a/0123456789abcdef0123456789abcdef",
        "view_url": "http://127.0.0.1:8080/v/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "unit_url": "http://127.0.0.1:8080/u/fedcba9876543210fedcba9876543210",
    });
    // As sent: the leadership's copy has the read-only view, the unit's the ack link and
    // its own page.
    if let Some(m) = ctx.as_object_mut() {
        if escalated {
            m.remove("ack_url");
            m.remove("unit_url");
        } else {
            m.remove("view_url");
        }
    }
    ctx
}

/// Sample data for a message of `kind`, as [`Templates::check`] renders it.
pub fn sample_of(kind: TemplateKind) -> Value {
    match kind {
        TemplateKind::Test => sample_test(),
        TemplateKind::Digest => sample_digest(),
        TemplateKind::ConfigError => sample_config_error(),
        TemplateKind::ChannelLocked => json!({
            "org": {"name": "Ủy ban nhân dân phường Mẫu", "public_url": "http://127.0.0.1:8080"},
            "at": "08:00 thứ Hai 06/10/2025",
            "channel": "zalo",
            "app_id": "1234567890",
            "reason": "-14014: Invalid refresh token",
        }),
        TemplateKind::Resolved => {
            // As sent: the data of the escalated notice, without an ack link.
            let mut c = sample(TemplateKind::Escalated);
            c["done_at"] = json!("09:15 thứ Năm 09/10/2025");
            if let Some(m) = c.as_object_mut() {
                m.remove("ack_url");
            }
            c
        }
        _ => sample(kind),
    }
}

/// Sample data for the daily digest.
pub fn sample_digest() -> Value {
    json!({
        "org": {"name": "Ủy ban nhân dân phường Mẫu", "public_url": "http://127.0.0.1:8080"},
        "recipient": {"name": "Phòng Văn hóa – Xã hội"},
        "date": {"words": "thứ Hai 06/10/2025", "iso": "2025-10-06"},
        "totals": {"done": 1, "seen": 1, "pending": 0, "overdue": 1, "open": 1},
        "occurrences": [{
            "key": "bao-cao-9-thang/2025-9M",
            "title": "Báo cáo kết quả công tác dân vận chính quyền",
            "period_label": "9 tháng năm 2025",
            "deadline_words": "trước ngày 05/10/2025 (Chủ nhật); hạn làm việc cuối: thứ Sáu 03/10/2025",
            "overdue": true,
            "counts": {"done": 1, "seen": 1, "pending": 0, "overdue": 1},
            "units": [
                {"id": "vp", "name": "Văn phòng <HĐND>", "state": "done", "state_label": "Đã hoàn thành", "color": "#15803d", "at": "08:10 03/10/2025"},
                {"id": "kt", "name": "Phòng Kinh tế", "state": "overdue", "state_label": "Quá hạn", "color": "#b91c1c", "at": null},
            ],
        }],
        "failed": [{"recipient": "x@example.invalid", "about": "bao-cao-9-thang/2025-9M/kt, after-1wd", "error": "550 5.1.1 Mailbox unavailable"}],
        "status_url": "http://127.0.0.1:8080/status",
    })
}

/// Sample data for the notice of a config that failed to load.
pub fn sample_config_error() -> Value {
    json!({
        "org": {"name": "Ủy ban nhân dân phường Mẫu", "public_url": "http://127.0.0.1:8080"},
        "path": "/etc/nhacviec/nhacviec.toml",
        "at": "08:00 thứ Hai 06/10/2025",
        "errors": ["/etc/nhacviec/nhacviec.toml:12:9: error: unknown unit `vhx`; did you mean `vhxh`?"],
    })
}

/// Sample data for the test message.
pub fn sample_test() -> Value {
    json!({
        "org": {"name": "Ủy ban nhân dân phường Mẫu", "public_url": "http://127.0.0.1:8080"},
        "sent_at": "08:00 thứ Sáu 03/10/2025",
        "transport": "SMTP mail.example.invalid:587",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_in_english_are_minijinjas_words() {
        use ErrorKind::*;
        for kind in [
            SyntaxError,
            UndefinedError,
            TemplateNotFound,
            InvalidOperation,
            TooManyArguments,
            MissingArgument,
            UnknownFilter,
            UnknownFunction,
            UnknownTest,
            UnknownMethod,
            UnknownBlock,
            BadEscape,
            BadInclude,
            CannotUnpack,
        ] {
            assert_eq!(kind_words(kind), kind.to_string());
        }
    }

    #[test]
    fn builtins_render_every_kind() {
        let (t, diags) = Templates::load(None);
        assert!(diags.is_empty(), "{diags:#?}");
        let t = t.unwrap();
        use TemplateKind::*;
        for kind in [Before, Due, After, Escalated] {
            let r = t.render(kind, &sample(kind)).unwrap();
            assert!(!r.subject.contains('\n'));
            for text in [&r.text, &r.html] {
                // What every message must say (docs/operations.md).
                for must in [
                    "Văn phòng HĐND và UBND phường",
                    "Báo cáo kết quả công tác dân vận chính quyền",
                    "9 tháng năm 2025",
                    "trước ngày 05/10/2025 (Chủ nhật); hạn làm việc cuối: thứ Sáu 03/10/2025",
                    "Phòng Văn hóa – Xã hội",
                    "Chương trình 05/CTr-UBND",
                ] {
                    assert!(text.contains(must), "{kind}: {must:?} missing in\n{text}");
                }
                // The unit's copy carries its ack link; the leadership's a read-only view.
                let ack = "http://127.0.0.1:8080/a/0123456789abcdef0123456789abcdef";
                let view = "http://127.0.0.1:8080/v/0123456789abcdef";
                if kind == Escalated {
                    assert!(text.contains(view) && !text.contains(ack), "{text}");
                } else {
                    assert!(text.contains(ack) && !text.contains(view), "{text}");
                }
            }
            assert!(
                r.html.contains("Mô tả &lt;mẫu&gt; &amp; chi tiết"),
                "HTML is escaped"
            );
            assert!(r.text.contains("Mô tả <mẫu> & chi tiết"), "text is not");
        }
        let esc = t.render(Escalated, &sample(Escalated)).unwrap();
        assert!(
            esc.subject
                .contains("Văn phòng HĐND và UBND phường chưa hoàn thành")
        );
        assert!(
            esc.text
                .contains("Đơn vị Văn phòng HĐND và UBND phường chưa hoàn thành")
        );
    }

    fn dir_with(name: &str, text: &str) -> crate::testutil::TempDir {
        let d = crate::testutil::TempDir::new("tpl");
        std::fs::write(d.join(name), text).unwrap();
        d
    }

    #[test]
    fn an_override_replaces_one_file() {
        let d = dir_with("due.subject.j2", "Hạn: {{ period.label }}\n");
        let (t, diags) = Templates::load(Some(&d.0));
        assert!(diags.is_empty(), "{diags:#?}");
        let r = t
            .unwrap()
            .render(TemplateKind::Due, &sample(TemplateKind::Due))
            .unwrap();
        assert_eq!(r.subject, "Hạn: 9 tháng năm 2025");
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let d = dir_with("after.txt.j2", "Dòng 1\nDòng 2 {{ unit.nam }}\n");
        let (t, diags) = Templates::load(Some(&d.0));
        assert!(t.is_none());
        assert_eq!(diags.len(), 1, "{diags:#?}");
        let shown = diags[0].to_string();
        let want = format!("{}:2:", d.join("after.txt.j2").display());
        assert!(shown.starts_with(&want), "{shown}");
        assert!(shown.contains("undefined"), "{shown}");

        let d2 = dir_with(
            "before.html.j2",
            "{% extends \"_layout.html.j2\" %}\n{% block body %}{% if %}{% endblock %}\n",
        );
        let (t, diags) = Templates::load(Some(&d2.0));
        assert!(t.is_none());
        let shown = diags[0].to_string();
        assert!(
            shown.starts_with(&format!("{}:2:", d2.join("before.html.j2").display())),
            "{shown}"
        );
        assert!(shown.contains("syntax error"), "{shown}");
    }
}
