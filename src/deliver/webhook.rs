//! The webhook channel: a JSON event POSTed to the unit's URL, signed as the Standard
//! Webhooks specification says (<https://www.standardwebhooks.com>).
//!
//! Headers: `webhook-id` (the message's stable id: the same on every retry, so a receiver
//! drops a duplicate), `webhook-timestamp` (Unix seconds of this attempt) and
//! `webhook-signature`: `v1,` and the base64 HMAC-SHA256 of `id.timestamp.body` under the
//! secret `whsec_<base64>`, one signature per configured secret, space-separated, so a
//! receiver can move to a new secret without losing a message. A 2xx answer is delivery;
//! 408, 425, 429 and 5xx, a timeout (15 s unless `timeout_seconds` says) or a refused
//! connection are retried (not before the
//! `Retry-After` the receiver names); 410 says the endpoint is gone; any other answer,
//! redirects included (they are never followed), fails the message for good. At least
//! once: an answer lost after the receiver took the message means it is sent again, with
//! the same `webhook-id`. The event schema is in docs/channels.md.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};

use super::channel::{Outgoing, Receipt, SendError, Sender, Sending};
use super::http;
use crate::config::Webhook;
use crate::config::{decode_webhook_secret as decode_secret, webhook_shown, webhook_url_problem};
use crate::state::TemplateKind;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The event type of a message kind.
pub fn event_type(kind: TemplateKind) -> &'static str {
    match kind {
        TemplateKind::Before => "reminder.before",
        TemplateKind::Due => "reminder.due",
        TemplateKind::After => "reminder.after",
        TemplateKind::Escalated => "reminder.escalated",
        TemplateKind::Resolved => "obligation.resolved",
        TemplateKind::Digest => "digest",
        TemplateKind::ConfigError => "config.rejected",
        TemplateKind::ChannelLocked => "channel.locked",
        TemplateKind::Test => "test",
    }
}

/// The `webhook-id` of a message: its Message-ID without the angle brackets.
pub fn webhook_id(message_id: &str) -> String {
    message_id
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string()
}

/// The `webhook-signature` header: `v1,<base64>` per key, space-separated.
pub fn sign(keys: &[Vec<u8>], id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter()
        .filter_map(|k| {
            // HMAC takes a key of any length: this never skips one.
            let mut mac = HmacSha256::new_from_slice(k).ok()?;
            mac.update(id.as_bytes());
            mac.update(b".");
            mac.update(timestamp.to_string().as_bytes());
            mac.update(b".");
            mac.update(body);
            Some(format!("v1,{}", B64.encode(mac.finalize().into_bytes())))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn at(ctx: &Value, pointer: &str) -> Value {
    ctx.pointer(pointer).cloned().unwrap_or(Value::Null)
}

/// The event a message becomes (docs/channels.md has the schema).
pub fn event(out: &Outgoing<'_>) -> Value {
    let ctx = out.context;
    let mut data = match out.kind {
        TemplateKind::Before
        | TemplateKind::Due
        | TemplateKind::After
        | TemplateKind::Escalated
        | TemplateKind::Resolved => json!({
            "obligation": out.key,
            "unit": at(ctx, "/unit"),
            "recipient": at(ctx, "/recipient"),
            "rule": {
                "id": at(ctx, "/rule/id"),
                "kind": at(ctx, "/rule/kind"),
                "title": at(ctx, "/rule/title"),
                "description": at(ctx, "/rule/description"),
                "reference": at(ctx, "/rule/reference"),
            },
            "period": {"id": at(ctx, "/period/id"), "label": at(ctx, "/period/label")},
            "step": at(ctx, "/step"),
            "deadline": at(ctx, "/deadline/iso"),
            "last_day": at(ctx, "/last_day/iso"),
            "deadline_words": at(ctx, "/deadline_words"),
            "working_days_left": at(ctx, "/working_days_left"),
            "working_days_late": at(ctx, "/working_days_late"),
            "submit_to": at(ctx, "/submit_to"),
            "ack_url": at(ctx, "/ack_url"),
            "view_url": at(ctx, "/view_url"),
            "unit_url": at(ctx, "/unit_url"),
        }),
        TemplateKind::Digest => json!({
            "date": at(ctx, "/date/iso"),
            "totals": at(ctx, "/totals"),
            "occurrences": at(ctx, "/occurrences"),
            "failed": at(ctx, "/failed"),
            "status_url": at(ctx, "/status_url"),
        }),
        TemplateKind::ConfigError => json!({
            "path": at(ctx, "/path"),
            "errors": at(ctx, "/errors"),
        }),
        TemplateKind::ChannelLocked => json!({
            "channel": at(ctx, "/channel"),
            "reason": at(ctx, "/reason"),
        }),
        TemplateKind::Test => json!({}),
    };
    if out.kind == TemplateKind::Resolved {
        data["done_at"] = at(ctx, "/done_at");
    }
    data["subject"] = json!(out.rendered.subject);
    data["text"] = json!(out.rendered.text);
    data["html"] = json!(out.rendered.html);
    json!({
        "type": event_type(out.kind),
        "id": webhook_id(out.message_id),
        "timestamp": out.date.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "organization": at(ctx, "/org/name"),
        "data": data,
    })
}

/// `text` without the webhook URL, its path or its query (a receiver or a proxy that echoes
/// the request would put a secret they hold into an error others read).
fn scrub(text: &str, url: &str) -> String {
    let mut out = text.replace(url, &webhook_shown(url));
    if let Ok(u) = reqwest::Url::parse(url) {
        let query = u.query().map(|q| format!("?{q}")).unwrap_or_default();
        for part in [format!("{}{query}", u.path()), u.path().to_string(), query] {
            if part.len() > 1 {
                out = out.replace(&part, "/…");
            }
        }
    }
    out
}

/// Sends signed events.
pub struct WebhookSender {
    client: reqwest::Client,
    timeout: std::time::Duration,
    keys: Vec<Vec<u8>>,
}

impl std::fmt::Debug for WebhookSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSender").finish_non_exhaustive()
    }
}

impl WebhookSender {
    /// Reads and decodes the signing secrets now, so a bad one is reported at start or
    /// reload, without its value.
    pub fn new(cfg: &Webhook) -> anyhow::Result<WebhookSender> {
        let mut keys = Vec::new();
        for s in &cfg.secrets {
            let text = s
                .read()
                .map_err(|e| anyhow::anyhow!("cannot read the webhook secret: {e}"))?;
            keys.push(decode_secret(&text).map_err(|e| anyhow::anyhow!("{e} ({})", s.origin()))?);
        }
        let timeout = std::time::Duration::from_secs(u64::from(cfg.timeout_seconds));
        Ok(WebhookSender {
            client: http::client(timeout)?,
            timeout,
            keys,
        })
    }

    async fn post(&self, out: &Outgoing<'_>) -> Result<Receipt, SendError> {
        if let Some(why) = webhook_url_problem(out.to) {
            return Err(SendError::Permanent(format!(
                "the webhook URL {why}; fix `webhook` of the unit"
            )));
        }
        let id = webhook_id(out.message_id);
        let timestamp = out.date.timestamp();
        let body = serde_json::to_vec(&event(out))
            .map_err(|e| SendError::Permanent(format!("cannot encode the event: {e}")))?;
        let signature = sign(&self.keys, &id, timestamp, &body);
        let resp = self
            .client
            .post(out.to)
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(|e| http::network_error("the webhook receiver", self.timeout, e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(Receipt::default());
        }
        let code = status.as_u16();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let (retry_after, location) = (header("retry-after"), header("location"));
        let body = resp.text().await.unwrap_or_default();
        let said = http::excerpt(&scrub(&body, out.to));
        Err(match code {
            408 | 425 | 429 | 500..=599 => {
                let e = format!("the webhook receiver answered {status}: {said}");
                match http::retry_after(retry_after.as_deref(), out.date) {
                    Some(at) => SendError::RetryAt(e, at),
                    None => SendError::Transient(e),
                }
            }
            410 => SendError::Permanent(
                "the webhook receiver answered 410 Gone: the endpoint no longer exists; remove or replace this URL in the unit's `webhook`".into(),
            ),
            300..=399 => SendError::Permanent(format!(
                "the webhook receiver answered {status} (a redirect to {}): redirects are not followed; put the final URL in the unit's `webhook`",
                location
                    .as_deref()
                    .map_or_else(|| "nowhere".into(), crate::config::webhook_shown)
            )),
            _ => SendError::Permanent(format!(
                "the webhook receiver refused the event with {status}: {said}; check the receiver (its URL, and that it verifies signatures with the current secret)"
            )),
        })
    }
}

impl Sender for WebhookSender {
    fn send<'a>(&'a self, out: &'a Outgoing<'a>) -> Sending<'a> {
        Box::pin(self.post(out))
    }

    fn describe(&self) -> &str {
        "webhooks (Standard Webhooks signatures)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vector published with the Standard Webhooks specification (its reference
    /// libraries' tests use the same one).
    #[test]
    fn the_specification_test_vector() {
        let key = decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = sign(
            &[key],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn two_secrets_two_signatures() {
        let a = decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let b = decode_secret(&format!("whsec_{}", B64.encode([7u8; 32]))).unwrap();
        let both = sign(&[b.clone(), a.clone()], "id", 1, b"{}");
        let parts: Vec<&str> = both.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], sign(&[b], "id", 1, b"{}"));
        assert_eq!(parts[1], sign(&[a], "id", 1, b"{}"));
    }

    #[test]
    fn an_echoed_url_is_scrubbed() {
        let url = "https://eoffice.example.vn/hooks/s3cr3t?key=abc";
        assert_eq!(
            scrub(
                &format!("Cannot POST /hooks/s3cr3t?key=abc from {url}"),
                url
            ),
            "Cannot POST /… from https://eoffice.example.vn/…"
        );
        assert_eq!(scrub("no route /hooks/s3cr3t", url), "no route /…");
    }

    #[test]
    fn secrets_that_are_not_whsec_base64_are_refused() {
        assert!(
            decode_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
                .unwrap_err()
                .contains("whsec_")
        );
        assert!(
            decode_secret("whsec_***")
                .unwrap_err()
                .contains("not base64")
        );
        assert!(
            decode_secret("whsec_AAAA")
                .unwrap_err()
                .contains("at least 16")
        );
    }
}
