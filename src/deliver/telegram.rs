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
use std::time::Duration as StdDuration;

use chrono::Duration;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::channel::{Outgoing, SendError, Sender, Sending};
use super::http;
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

/// The longest list of `v` (occurrences, units, errors): its pointer and length.
fn longest_list(v: &Value, path: &str, best: &mut Option<(String, usize)>) {
    match v {
        Value::Array(a) => {
            if a.len() > 1 && best.as_ref().is_none_or(|(_, m)| a.len() > *m) {
                *best = Some((path.to_string(), a.len()));
            }
            for (i, v) in a.iter().enumerate() {
                longest_list(v, &format!("{path}/{i}"), best);
            }
        }
        Value::Object(m) => {
            for (k, v) in m {
                longest_list(v, &format!("{path}/{k}"), best);
            }
        }
        _ => {}
    }
}

/// Renders the Telegram message of `kind` and fits it in [`MAX_CHARS`]: while it is too
/// long, a long text (a description, an error) is cut, with "…"; then the last item of the
/// longest list (a digest's occurrences) is dropped and counted in `more`; then shorter
/// texts (titles) are cut. Links are never cut.
pub fn fit(t: &Templates, kind: TemplateKind, ctx: &Value) -> Result<String, RenderError> {
    const SHORTEST: usize = 40;
    const LONG: usize = 200;
    let mut text = t.part(kind, "telegram", ctx)?;
    let mut ctx = ctx.clone();
    for _ in 0..200 {
        let len = visible_len(&text);
        if len <= MAX_CHARS {
            return Ok(text);
        }
        let over = len - MAX_CHARS;
        let mut long = None;
        longest_text(&ctx, "", &mut long);
        let mut list = None;
        longest_list(&ctx, "", &mut list);
        match (long, list) {
            (Some((ptr, n)), list) if n > LONG || (list.is_none() && n > SHORTEST) => {
                let keep = n.saturating_sub(over + 1).max(SHORTEST).min(n - 1);
                if let Some(v) = ctx.pointer_mut(&ptr)
                    && let Some(s) = v.as_str()
                {
                    let cut: String = s.chars().take(keep).collect();
                    *v = json!(format!("{}…", cut.trim_end()));
                }
            }
            (_, Some((ptr, _))) => {
                if let Some(Value::Array(a)) = ctx.pointer_mut(&ptr) {
                    a.pop();
                }
                let more = ctx.get("more").and_then(Value::as_u64).unwrap_or(0);
                ctx["more"] = json!(more + 1);
            }
            _ => break,
        }
        text = t.part(kind, "telegram", &ctx)?;
    }
    Err(RenderError {
        name: format!("{kind}.telegram.j2"),
        detail: format!(
            "the message stays longer than Telegram's {MAX_CHARS} characters even with its details shortened; shorten the template"
        ),
    })
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
    /// When each chat may get its next message.
    chats: Mutex<HashMap<String, tokio::time::Instant>>,
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
        if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c == '/') {
            anyhow::bail!(
                "the Telegram bot token ({}) is not one: it looks like 123456789:AA… as @BotFather gave it",
                cfg.bot_token.origin()
            );
        }
        Ok(TelegramSender {
            client: http::client(http::TIMEOUT)?,
            describe: format!("Telegram Bot API {}", cfg.api_url),
            api_url: cfg.api_url.clone(),
            token,
            chats: Mutex::new(HashMap::new()),
        })
    }

    /// `text` without the token.
    fn redact(&self, text: &str) -> String {
        text.replace(&self.token, "<bot token>")
    }

    /// Waits until `chat` may get a message.
    async fn pace(&self, chat: &str) {
        let now = tokio::time::Instant::now();
        let at = {
            let mut chats = self.chats.lock().await;
            let next = chats.entry(chat.to_string()).or_insert(now);
            let at = (*next).max(now);
            *next = at + chat_interval(chat);
            at
        };
        if at > now {
            tokio::time::sleep_until(at).await;
        }
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

    async fn post(&self, out: &Outgoing<'_>) -> Result<(), SendError> {
        let body = Self::body(out)?;
        self.pace(out.to).await;
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
        let text = resp.text().await.unwrap_or_default();
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() && answer.get("ok") == Some(&json!(true)) {
            return Ok(());
        }
        let description = answer
            .get("description")
            .and_then(Value::as_str)
            .map_or_else(|| http::excerpt(&text), str::to_string);
        let said = self.redact(&description);
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
            match retry_after {
                Some(s) => SendError::RetryAt(
                    e,
                    out.date + Duration::seconds(s.clamp(0, 86_400)).min(http::MAX_RETRY_AFTER),
                ),
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
