//! The Telegram channel: the Bot API's `sendMessage`, in its HTML subset, rendered from
//! `KIND.telegram.j2`.
//!
//! A message holds at most [`MAX_CHARS`] characters after Telegram parses it ([`fit`]
//! shortens the longest details, never the link); the acknowledgement link is a URL button
//! when `public_url` is one Telegram accepts (https and a dotted host), else a line of the
//! text. Telegram's limits are kept: at most `max_per_minute` overall (the outbox), one
//! message a second per person and one every three seconds per group or channel (here).
//! Answers: 429 is retried after its `retry_after`; a group that became a supergroup fails
//! with the new chat id to put in the config; "chat not found", a blocked or removed bot
//! and a wrong token fail for good with what to do; 5xx and network errors are retried.
//!
//! The bot token is part of every request's URL. It never reaches an error, a log line or
//! the database: errors are built without the URL and anything Telegram echoes back is
//! redacted.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::channel::{Outgoing, Receipt, SendError, Sender, Sending};
use super::http;
use super::limit::Limiter;
use super::templates::{RenderError, Templates};
use crate::state::TemplateKind;

/// Telegram's limit on a message's text after parsing, in UTF-16 code units.
pub const MAX_CHARS: usize = 4096;

/// The button that opens the acknowledgement page.
pub const BUTTON: &str = "Xác nhận: Đã nhận / Đã hoàn thành";

/// The length of `html` as Telegram counts it after parsing: tags removed, entities one
/// character, in UTF-16 code units.
pub fn visible_len(html: &str) -> usize {
    let mut n = 0;
    let mut chars = html.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '<' => {
                for c in chars.by_ref() {
                    if c == '>' {
                        break;
                    }
                }
            }
            '&' => {
                // An entity counts as the one character it stands for.
                let mut ent = String::new();
                while let Some(&c) = chars.peek() {
                    if c == ';' || ent.len() > 10 {
                        break;
                    }
                    ent.push(c);
                    chars.next();
                }
                if chars.peek() == Some(&';') {
                    chars.next();
                    n += decode_entity(&ent).map_or(1, char::len_utf16);
                } else {
                    n += 1 + ent.encode_utf16().count();
                }
            }
            c => n += c.len_utf16(),
        }
    }
    n
}

fn decode_entity(e: &str) -> Option<char> {
    match e {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "quot" => Some('"'),
        _ => {
            let n = e.strip_prefix('#')?;
            let code = match n.strip_prefix(['x', 'X']) {
                Some(h) => u32::from_str_radix(h, 16).ok()?,
                None => n.parse().ok()?,
            };
            char::from_u32(code)
        }
    }
}

/// Values never shortened: links and machine dates.
fn keep(key: &str) -> bool {
    key.ends_with("url") || key == "iso" || key == "id" || key == "key"
}

/// The longest string value of `v` that may be shortened: (pointer, length in chars).
fn longest_text(v: &Value, path: &str, best: &mut Option<(String, usize)>) {
    match v {
        Value::String(s) => {
            let n = s.chars().count();
            if best.as_ref().is_none_or(|(_, m)| n > *m) {
                *best = Some((path.to_string(), n));
            }
        }
        Value::Object(m) => {
            for (k, v) in m {
                if !keep(k) {
                    longest_text(v, &format!("{path}/{k}"), best);
                }
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                longest_text(v, &format!("{path}/{i}"), best);
            }
        }
        _ => {}
    }
}

/// The lists whose last items may be dropped, each counted in `more_<list>`: a digest's
/// occurrences and failed messages, a config notice's errors.
const LISTS: &[&str] = &["occurrences", "failed", "errors"];

/// Renders the Telegram message of `kind` and fits it in [`MAX_CHARS`]: while it is too
/// long, a long text (a description, an error) is cut, with "…" (all of them at once when
/// one alone cannot make up the excess); then the last items of a digest's or a notice's
/// lists are dropped (as many as the excess calls for) and counted in `more_<list>`; then
/// shorter texts (titles) are cut. If it is still too long, whole lines are dropped before
/// the last two (the link is never cut); if even that does not fit, it is an error that
/// names the template.
pub fn fit(t: &Templates, kind: TemplateKind, ctx: &Value) -> Result<String, RenderError> {
    const SHORTEST: usize = 40;
    const LONG: usize = 200;
    let mut text = t.part(kind, "telegram", ctx)?;
    let mut ctx = ctx.clone();
    for _ in 0..100 {
        let len = visible_len(&text);
        if len <= MAX_CHARS {
            return Ok(text);
        }
        let over = len - MAX_CHARS;
        let mut long = None;
        longest_text(&ctx, "", &mut long);
        let list = LISTS
            .iter()
            .filter_map(|k| Some((*k, ctx.get(*k)?.as_array()?.len())))
            .filter(|(_, n)| *n > 1)
            .max_by_key(|(_, n)| *n);
        match (long, list) {
            (Some((_, n)), _) if n > LONG && n - LONG < over => {
                // One text cannot make up the excess: every long one is cut at once.
                cap_texts(&mut ctx, LONG);
            }
            (Some((ptr, n)), list) if n > LONG || (list.is_none() && n > SHORTEST) => {
                let keep = n.saturating_sub(over + 1).max(SHORTEST).min(n - 1);
                if let Some(v) = ctx.pointer_mut(&ptr)
                    && let Some(s) = v.as_str()
                {
                    let cut: String = s.chars().take(keep).collect();
                    *v = json!(format!("{}…", cut.trim_end()));
                }
            }
            (_, Some((key, n))) => {
                // Drop as many items as the excess is of the whole, at least one.
                let drop = (n * over).div_ceil(len).clamp(1, n - 1);
                if let Some(Value::Array(a)) = ctx.get_mut(key) {
                    a.truncate(n - drop);
                }
                let more_key = format!("more_{key}");
                let more = ctx.get(&more_key).and_then(Value::as_u64).unwrap_or(0);
                ctx[more_key.as_str()] = json!(more + drop as u64);
            }
            _ => break,
        }
        text = t.part(kind, "telegram", &ctx)?;
    }
    let cut = cut_lines(&text);
    if visible_len(&cut) <= MAX_CHARS {
        return Ok(cut);
    }
    Err(RenderError {
        name: format!("{kind}.telegram.j2"),
        detail: format!(
            "the message stays longer than Telegram's {MAX_CHARS} characters even with its details shortened; shorten the template"
        ),
    })
}

/// Cuts every string of `v` longer than `max` characters (links and ids kept) to `max`.
fn cap_texts(v: &mut Value, max: usize) {
    match v {
        Value::String(s) if s.chars().count() > max => {
            let cut: String = s.chars().take(max).collect();
            *s = format!("{}…", cut.trim_end());
        }
        Value::Object(m) => {
            for (k, v) in m.iter_mut() {
                if !keep(k) {
                    cap_texts(v, max);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|v| cap_texts(v, max)),
        _ => {}
    }
}

/// `html` cut to [`MAX_CHARS`] by dropping whole lines before its last two (the link and
/// what closes the message), with a line saying so. The templates keep each tag on one
/// line (docs/channels.md asks the same of the admins' own), so what is left stays valid.
fn cut_lines(html: &str) -> String {
    const GAP: &str = "…";
    let lines: Vec<&str> = html.lines().collect();
    let tail_from = lines.len().saturating_sub(2);
    let tail = lines[tail_from..].join("\n");
    let budget = MAX_CHARS.saturating_sub(visible_len(&tail) + 2 * GAP.len());
    let mut head = Vec::new();
    let mut used = 0;
    for l in &lines[..tail_from] {
        let n = visible_len(l) + 1;
        if used + n > budget {
            break;
        }
        used += n;
        head.push(*l);
    }
    format!("{}\n{GAP}\n{tail}", head.join("\n"))
}

/// True if Telegram takes `url` in a button: https and a dotted host name.
pub fn button_url_ok(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("https://") else {
        return false;
    };
    let host = rest.split(['/', ':', '?', '#']).next().unwrap_or("");
    host.contains('.')
        && host.parse::<std::net::IpAddr>().is_err()
        && !host.starts_with('.')
        && !host.ends_with('.')
}

/// How long to leave between two messages to one chat: a person takes one a second, a
/// group or channel twenty a minute.
fn chat_interval(chat: &str) -> StdDuration {
    if chat.starts_with('-') || chat.starts_with('@') {
        StdDuration::from_secs(3)
    } else {
        StdDuration::from_secs(1)
    }
}

/// Sends through the Bot API.
pub struct TelegramSender {
    client: reqwest::Client,
    api_url: String,
    token: String,
    describe: String,
    /// Each chat's pace.
    chats: Mutex<HashMap<String, Arc<Limiter>>>,
}

impl std::fmt::Debug for TelegramSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelegramSender")
            .field("api_url", &self.api_url)
            .finish_non_exhaustive()
    }
}

impl TelegramSender {
    /// Reads the bot token now, so a missing one is reported at start or reload.
    pub fn new(cfg: &crate::config::Telegram) -> anyhow::Result<TelegramSender> {
        let token = cfg
            .bot_token
            .read()
            .map_err(|e| anyhow::anyhow!("cannot read the Telegram bot token: {e}"))?;
        if let Err(why) = crate::config::telegram_token_problem(&token) {
            anyhow::bail!("{why} ({})", cfg.bot_token.origin());
        }
        Ok(TelegramSender {
            client: http::client(http::TIMEOUT)?,
            describe: format!("Telegram Bot API {}", cfg.api_url),
            api_url: cfg.api_url.clone(),
            token,
            chats: Mutex::new(HashMap::new()),
        })
    }

    /// `text` without the token, as it is or percent-encoded, nor its secret half.
    fn redact(&self, text: &str) -> String {
        let mut out = text.replace(&self.token, "<bot token>");
        out = out.replace(&self.token.replace(':', "%3A"), "<bot token>");
        out = out.replace(&self.token.replace(':', "%3a"), "<bot token>");
        if let Some((_, secret)) = self.token.split_once(':') {
            out = out.replace(secret, "<bot token>");
        }
        out
    }

    /// The pace of `chat`.
    async fn chat(&self, chat: &str) -> Arc<Limiter> {
        self.chats
            .lock()
            .await
            .entry(chat.to_string())
            .or_insert_with(|| Arc::new(Limiter::new(chat_interval(chat))))
            .clone()
    }

    /// The `sendMessage` request body.
    pub fn body(out: &Outgoing<'_>) -> Result<Value, SendError> {
        let Some(text) = &out.rendered.telegram else {
            return Err(SendError::Permanent(
                "no Telegram text was rendered for this message".into(),
            ));
        };
        let chat_id = match out.to.parse::<i64>() {
            Ok(n) => json!(n),
            Err(_) => json!(out.to),
        };
        let mut body = json!({
            "chat_id": chat_id,
            "text": text,
            "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": true},
        });
        if out.context.get("ack_button") == Some(&json!(true))
            && let Some(url) = out.context.get("ack_url").and_then(Value::as_str)
        {
            body["reply_markup"] = json!({"inline_keyboard": [[{"text": BUTTON, "url": url}]]});
        }
        Ok(body)
    }

    async fn post(&self, out: &Outgoing<'_>) -> Result<Receipt, SendError> {
        let body = Self::body(out)?;
        self.chat(out.to).await.wait().await;
        let url = format!("{}/bot{}/sendMessage", self.api_url, self.token);
        let resp = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(
                |e| match http::network_error("the Telegram Bot API", http::TIMEOUT, e) {
                    SendError::Transient(t) => SendError::Transient(self.redact(&t)),
                    other => other,
                },
            )?;
        let status = resp.status();
        let text = match resp.text().await {
            Ok(t) => self.redact(&t),
            // The message may have been delivered: sent again (at least once).
            Err(e) => {
                return Err(SendError::Transient(self.redact(&format!(
                    "the Telegram Bot API answered {status} but the answer was cut off ({}); the message may arrive twice",
                    e.without_url()
                ))));
            }
        };
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() && answer.get("ok") == Some(&json!(true)) {
            let id = answer.pointer("/result/message_id").map(|v| v.to_string());
            return Ok(Receipt { remote_id: id });
        }
        if status.is_success() {
            return Err(SendError::Transient(format!(
                "the Telegram Bot API answered {status} with something that is not its answer ({}): a proxy in the way? the message may arrive twice",
                http::excerpt(&text)
            )));
        }
        let said = answer
            .get("description")
            .and_then(Value::as_str)
            .map_or_else(|| http::excerpt(&text), str::to_string);
        let code = answer
            .get("error_code")
            .and_then(Value::as_u64)
            .unwrap_or(u64::from(status.as_u16()));
        let params = answer.get("parameters");
        let retry_after = params
            .and_then(|p| p.get("retry_after"))
            .and_then(Value::as_i64);
        let migrated = params
            .and_then(|p| p.get("migrate_to_chat_id"))
            .and_then(Value::as_i64);
        let lower = said.to_lowercase();
        let chat = out.to;
        Err(if let Some(new) = migrated {
            SendError::Permanent(format!(
                "Telegram: the group {chat} became a supergroup with the id {new}: set the unit's `telegram = \"{new}\"` in the config ({said})"
            ))
        } else if code == 429 {
            let e = format!("Telegram is limiting the bot: {said}");
            // Each message Telegram pushes back carries its own "not before"; the chat's pace
            // is not held in real time, which a set clock (tests, rehearsals) would outrun.
            match http::retry_after(retry_after.map(|s| s.to_string()).as_deref(), out.date) {
                Some(at) => SendError::RetryAt(e, at),
                None => SendError::Transient(e),
            }
        } else if code == 401
            || code == 404 && lower.contains("not found") && !lower.contains("chat")
        {
            SendError::Permanent(format!(
                "Telegram refused the bot token ({said}): put the token @BotFather gave (or a new one from /token) in the file of `channels.telegram.bot_token_file`"
            ))
        } else if lower.contains("chat not found") {
            SendError::Permanent(format!(
                "Telegram: chat {chat} not found ({said}): check the unit's `telegram` id, and that the bot was added to the group or the person started it"
            ))
        } else if code == 403 {
            SendError::Permanent(format!(
                "Telegram: the bot cannot write to chat {chat} ({said}): the person blocked the bot or it was removed from the group; ask them to unblock or add it again"
            ))
        } else if code >= 500 || status.is_server_error() {
            SendError::Transient(format!("Telegram answered {status}: {said}"))
        } else {
            SendError::Permanent(format!("Telegram refused the message ({code}): {said}"))
        })
    }
}

impl Sender for TelegramSender {
    fn send<'a>(&'a self, out: &'a Outgoing<'a>) -> Sending<'a> {
        Box::pin(self.post(out))
    }

    fn describe(&self) -> &str {
        &self.describe
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::templates::sample;

    #[test]
    fn lengths_as_telegram_counts_them() {
        assert_eq!(visible_len("<b>Hạn</b> &amp; &lt;x&gt;"), 9);
        assert_eq!(visible_len("&#39;&#x2f;"), 2);
        assert_eq!(visible_len("😀"), 2, "UTF-16 code units");
        assert_eq!(visible_len("a & b"), 5, "a bare ampersand is one character");
    }

    #[test]
    fn buttons_only_for_urls_telegram_takes() {
        assert!(button_url_ok("https://nhacviec.donghai.gov.vn/a/x"));
        assert!(!button_url_ok("http://nhacviec.donghai.gov.vn/a/x"));
        assert!(!button_url_ok("https://127.0.0.1:8080/a/x"));
        assert!(!button_url_ok("https://localhost/a/x"));
    }

    #[test]
    fn a_long_message_is_shortened_but_keeps_its_link() {
        let (t, _) = Templates::load(None);
        let t = t.unwrap();
        let mut ctx = sample(TemplateKind::Before);
        ctx["ack_button"] = json!(false);
        ctx["rule"]["description"] = json!("Mô tả <dài> & ".repeat(600));
        let text = fit(&t, TemplateKind::Before, &ctx).unwrap();
        assert!(visible_len(&text) <= MAX_CHARS, "{}", visible_len(&text));
        assert!(
            visible_len(&text) > MAX_CHARS - 200,
            "cut only what is needed"
        );
        assert!(text.contains("http://127.0.0.1:8080/a/0123456789abcdef0123456789abcdef"));
        assert!(text.contains("Mô tả &lt;dài&gt; &amp;"), "still escaped");
        assert!(text.contains('…'));
    }

    #[test]
    fn a_digest_of_many_units_and_a_notice_of_many_errors_fit() {
        let (t, _) = Templates::load(None);
        let t = t.unwrap();
        let mut ctx = crate::deliver::templates::sample_digest();
        let mut occ = ctx["occurrences"][0].clone();
        let unit = occ["units"][1].clone();
        occ["units"] = json!(vec![unit; 40]);
        ctx["occurrences"] = json!(vec![occ; 10]);
        let text = fit(&t, TemplateKind::Digest, &ctx).unwrap();
        assert!(visible_len(&text) <= MAX_CHARS);
        assert!(text.contains("nội dung khác"), "{text}");
        assert!(
            text.ends_with("Bảng theo dõi: http://127.0.0.1:8080/status"),
            "{text}"
        );

        let mut ctx = crate::deliver::templates::sample_config_error();
        let e = ctx["errors"][0].clone();
        ctx["errors"] = json!(vec![e; 500]);
        ctx["ack_button"] = json!(false);
        let text = fit(&t, TemplateKind::ConfigError, &ctx).unwrap();
        assert!(visible_len(&text) <= MAX_CHARS);
        assert!(
            text.contains("có 500 lỗi"),
            "the count is the whole: {text}"
        );
        assert!(text.contains("lỗi khác"), "{text}");

        // 150 failed messages with long errors: the errors cut at once, then the list.
        let mut ctx = crate::deliver::templates::sample_digest();
        let mut f = ctx["failed"][0].clone();
        f["error"] = json!("5xx ".repeat(80));
        ctx["failed"] = json!(vec![f; 150]);
        let text = fit(&t, TemplateKind::Digest, &ctx).unwrap();
        assert!(visible_len(&text) <= MAX_CHARS);
        assert!(text.contains("tin khác."), "{text}");
        assert!(
            !text.contains("nội dung khác"),
            "no occurrence was dropped: {text}"
        );

        // One occurrence of 400 units: no list to shorten, whole lines go.
        let mut ctx = crate::deliver::templates::sample_digest();
        let unit = ctx["occurrences"][0]["units"][1].clone();
        ctx["occurrences"][0]["units"] = json!(vec![unit; 400]);
        let text = fit(&t, TemplateKind::Digest, &ctx).unwrap();
        assert!(visible_len(&text) <= MAX_CHARS, "{}", visible_len(&text));
        assert!(text.contains("\n…\n"), "{text}");
        assert!(text.contains("http://127.0.0.1:8080/status"));
    }

    #[test]
    fn a_long_digest_drops_occurrences_and_says_how_many() {
        let (t, _) = Templates::load(None);
        let t = t.unwrap();
        let mut ctx = crate::deliver::templates::sample_digest();
        let one = ctx["occurrences"][0].clone();
        ctx["occurrences"] = json!(vec![one; 80]);
        let text = fit(&t, TemplateKind::Digest, &ctx).unwrap();
        assert!(visible_len(&text) <= MAX_CHARS);
        assert!(text.contains("nội dung khác"), "{text}");
        assert!(text.contains("http://127.0.0.1:8080/status"));
    }
}
