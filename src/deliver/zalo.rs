//! The Zalo channel: Zalo Notification Service (ZNS) template messages to a mobile number,
//! sent through the ward's Official Account.
//!
//! A message is `POST {api_url}/message/template` with the OA's access token: the phone
//! (`84…`), the approved template's id, its parameters (rendered from the config's
//! `[channels.zalo.templates.KIND]`, each cut to its `max_len`) and `tracking_id`, the
//! message's stable id. Tokens live in the database ([`crate::store::ZaloTokens`]): the
//! first refresh token is read once from `refresh_token_file`; an access token is renewed
//! before it expires, and when Zalo calls it invalid (then the send is tried once more).
//! Renewing spends the refresh token (single use), so one renewal runs at a time across the
//! senders, and the new pair is committed before it is used: a crash after Zalo answered
//! still finds the new refresh token. A refused refresh token locks the channel with what
//! the admin must do. [`CODES`] is the one table of Zalo's error codes.
//!
//! Tokens and the app's secret key never reach an error, a log line or a row but their own.

use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveTime, Utc};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::channel::{Outgoing, Receipt, SendError, Sender, Sending, Upkeep};
use super::http;
use super::templates::{RenderError, Templates};
use crate::config::{Config, Zalo};
use crate::state::TemplateKind;
use crate::store::Store;

/// What nhacviec does about an error Zalo answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZaloError {
    /// The access token is invalid or expired: renew it and try once more.
    AccessToken,
    /// The number is not a valid phone number: fail for good.
    BadNumber,
    /// The number has no Zalo account: fail for good.
    NoAccount,
    /// The OA's daily quota is used up: try again after local midnight.
    Quota,
    /// The refresh token is invalid or expired: the channel stops until an admin issues a
    /// new one.
    RefreshToken,
    /// Too many requests: retry with the backoff.
    RateLimited,
    /// Anything else: fail for good, with Zalo's message.
    Other,
}

/// Zalo's error codes nhacviec acts on. Sources: Zalo for Developers, the error tables of
/// the ZNS API and of the Official Account API (developers.zalo.me, "Bảng mã lỗi"), and
/// integrators' notes. The quota code differs between sources, so a message that speaks of
/// quota counts as one too ([`classify`]).
pub const CODES: &[(i64, ZaloError, &str)] = &[
    (
        -124,
        ZaloError::AccessToken,
        "access token invalid or expired",
    ),
    (-216, ZaloError::AccessToken, "access token invalid"),
    (-108, ZaloError::BadNumber, "phone number invalid"),
    (-118, ZaloError::NoAccount, "no Zalo account for the number"),
    (-1144, ZaloError::Quota, "out of daily quota"),
    (
        -144,
        ZaloError::Quota,
        "out of daily quota (another source's code)",
    ),
    (
        -14014,
        ZaloError::RefreshToken,
        "refresh token invalid (already used)",
    ),
    (-14020, ZaloError::RefreshToken, "refresh token expired"),
    (-32, ZaloError::RateLimited, "rate limited"),
];

/// What an error code (and its message) means for nhacviec.
pub fn classify(code: i64, message: &str) -> ZaloError {
    if let Some((_, e, _)) = CODES.iter().find(|(c, _, _)| *c == code) {
        return *e;
    }
    let m = message.to_lowercase();
    if m.contains("quota") {
        ZaloError::Quota
    } else if m.contains("rate limit") || m.contains("too many") {
        ZaloError::RateLimited
    } else {
        ZaloError::Other
    }
}

/// The `tracking_id` of a message: short, stable, derived from its Message-ID.
pub fn tracking_id(message_id: &str) -> String {
    let d = Sha256::digest(message_id.as_bytes());
    let hex: String = d[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("nv{hex}")
}

/// The template id and parameters of a message of `kind` with data `ctx`.
pub fn payload(
    cfg: &Config,
    templates: &Templates,
    kind: TemplateKind,
    ctx: &Value,
) -> Result<Value, RenderError> {
    let missing = |detail: String| RenderError {
        name: format!("channels.zalo.templates.{kind}"),
        detail,
    };
    let Some(z) = &cfg.channels.zalo else {
        return Err(missing("no `[channels.zalo]` in the config".into()));
    };
    let Some(t) = z.templates.get(&kind) else {
        return Err(missing(format!("no ZNS template for `{kind}` messages")));
    };
    let mut data = serde_json::Map::new();
    for (param, expr) in &t.data {
        let mut v = templates
            .render_str(expr, ctx)
            .map_err(|e| missing(format!("parameter `{param}`: {}", e.detail)))?;
        if let Some(&max) = t.max_len.get(param)
            && v.chars().count() > max
        {
            v = v.chars().take(max.saturating_sub(1)).collect::<String>();
            v.push('…');
        }
        data.insert(param.clone(), Value::String(v));
    }
    Ok(json!({"template_id": t.id, "template_data": data}))
}

/// Sends through the OA.
pub struct ZaloSender {
    client: reqwest::Client,
    cfg: Zalo,
    /// The whole config: whom to tell when the channel stops.
    config: Config,
    secret_key: String,
    tz: chrono_tz::Tz,
    store: Arc<Store>,
    /// One renewal at a time.
    renewing: tokio::sync::Mutex<()>,
    /// Whether this process may renew the tokens (the daemon); a command does not, as its
    /// renewal could race the daemon's and spend the single-use refresh token twice.
    may_renew: bool,
}

impl std::fmt::Debug for ZaloSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZaloSender")
            .field("api_url", &self.cfg.api_url)
            .finish_non_exhaustive()
    }
}

/// The `meta` key of the last quota Zalo reported: `{"daily", "remaining", "at"}`.
pub const QUOTA_META: &str = "zalo_quota";

/// A refresh token this old is renewed even when nothing is sent (they live about three
/// months).
pub const KEEP_ALIVE: Duration = Duration::days(30);

/// How long before its expiry an access token is renewed.
const RENEW_BEFORE: Duration = Duration::minutes(10);

impl ZaloSender {
    /// Reads the app's secret key now; the tokens come from `store`.
    pub fn new(cfg: &Config, store: Arc<Store>) -> anyhow::Result<Option<ZaloSender>> {
        let Some(z) = &cfg.channels.zalo else {
            return Ok(None);
        };
        let secret_key = z
            .secret_key
            .read()
            .map_err(|e| anyhow::anyhow!("cannot read the Zalo app's secret key: {e}"))?;
        Ok(Some(ZaloSender {
            client: http::client(http::TIMEOUT)?,
            cfg: z.clone(),
            config: cfg.clone(),
            secret_key,
            tz: cfg.organization.timezone,
            store,
            renewing: tokio::sync::Mutex::new(()),
            may_renew: true,
        }))
    }

    /// The same, never renewing the tokens (for a command run beside the daemon).
    pub fn without_renewal(mut self) -> ZaloSender {
        self.may_renew = false;
        self
    }

    fn store_error(e: &crate::store::StoreError) -> SendError {
        SendError::Transient(format!("the Zalo tokens cannot be read or written: {e}"))
    }

    /// A usable access token as of `now`: the stored one, or a new one when it is missing,
    /// expiring, or the one Zalo just refused (`refused`).
    async fn access_token(
        &self,
        now: DateTime<Utc>,
        refused: Option<&str>,
    ) -> Result<String, SendError> {
        let _one = self.renewing.lock().await;
        let tokens = match self
            .store
            .zalo_tokens()
            .map_err(|e| Self::store_error(&e))?
        {
            Some(t) => t,
            None if !self.may_renew => {
                return Err(SendError::Permanent(
                    "no Zalo tokens yet: `nhacviec run` takes the first refresh token at its first message on Zalo; start it first".into(),
                ));
            }
            None => {
                let file = &self.cfg.refresh_token_file;
                let first = std::fs::read_to_string(file).map_err(|e| {
                    SendError::Transient(format!(
                        "no Zalo refresh token yet, and {} cannot be read ({e}): put the OA's refresh token there (docs/channels.md)",
                        file.display()
                    ))
                })?;
                self.store
                    .zalo_bootstrap(first.trim(), now)
                    .map_err(|e| Self::store_error(&e))?;
                self.store
                    .zalo_tokens()
                    .map_err(|e| Self::store_error(&e))?
                    .ok_or_else(|| SendError::Transient("the Zalo tokens vanished".into()))?
            }
        };
        if let Some(why) = tokens.locked {
            return Err(SendError::Permanent(why));
        }
        if let (Some(a), Some(exp)) = (&tokens.access_token, tokens.access_expires_at)
            && exp - RENEW_BEFORE > now
            && refused != Some(a.as_str())
        {
            return Ok(a.clone());
        }
        if !self.may_renew {
            return Err(SendError::Permanent(
                "the Zalo access token is missing or expired, and only `nhacviec run` renews it (a renewal here could race the daemon's and spend the single-use refresh token twice): try again once the daemon has sent on Zalo".into(),
            ));
        }
        self.renew(&tokens.refresh_token, now).await
    }

    /// Spends the refresh token for a new pair; stores the pair before returning it.
    async fn renew(&self, refresh_token: &str, now: DateTime<Utc>) -> Result<String, SendError> {
        let url = format!("{}/v4/oa/access_token", self.cfg.oauth_url);
        let form = format!(
            "refresh_token={}&app_id={}&grant_type=refresh_token",
            form_escape(refresh_token),
            form_escape(&self.cfg.app_id)
        );
        let resp = self
            .client
            .post(url)
            .header("secret_key", &self.secret_key)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .map_err(|e| http::network_error("Zalo's token service", http::TIMEOUT, e))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let access = answer.get("access_token").and_then(Value::as_str);
        let refresh = answer.get("refresh_token").and_then(Value::as_str);
        if let (Some(access), Some(refresh)) = (access, refresh) {
            let secs = match answer.get("expires_in") {
                Some(Value::String(s)) => s.parse::<i64>().unwrap_or(3600),
                Some(v) => v.as_i64().unwrap_or(3600),
                None => 3600,
            };
            // Committed before anything else: the old refresh token is spent.
            self.store
                .zalo_store_pair(access, now + Duration::seconds(secs), refresh, now)
                .map_err(|e| Self::store_error(&e))?;
            tracing::info!(expires_in = secs, "Zalo access token renewed");
            return Ok(access.to_string());
        }
        let code = answer.get("error").and_then(Value::as_i64).unwrap_or(0);
        let said = self.redact(
            &answer
                .get("error_description")
                .or_else(|| answer.get("error_name"))
                .or_else(|| answer.get("message"))
                .and_then(Value::as_str)
                .map_or_else(|| http::excerpt(&text), str::to_string),
        );
        match classify(code, &said) {
            ZaloError::RefreshToken => {
                let why = format!(
                    "Zalo refused the OA's refresh token ({code}: {said}): nothing is sent on Zalo until an admin issues a new one: log in to Zalo for Developers as the OA's admin, get a new refresh token for app {} (\"Lấy Access Token\" / OA authorization), save it in a file and run `nhacviec zalo token --import FILE`",
                    self.cfg.app_id
                );
                self.store
                    .zalo_lock(&why, now)
                    .map_err(|e| Self::store_error(&e))?;
                tracing::error!("{why}");
                // The admins hear of it by their other channels, once a day at most.
                let notices = super::notices::channel_locked(
                    &self.config,
                    crate::state::Channel::Zalo,
                    &format!("{code}: {said}"),
                    now,
                );
                if let Err(e) = self.store.enqueue_other(now, &notices) {
                    tracing::error!(error = %e, "cannot enqueue the admins' notice of the Zalo lock-out");
                }
                Err(SendError::Permanent(why))
            }
            _ if status.is_server_error() || code == 0 => Err(SendError::Transient(format!(
                "Zalo's token service answered {status}: {said}"
            ))),
            _ => Err(SendError::Transient(format!(
                "Zalo's token service refused the renewal ({code}: {said}); check `channels.zalo.app_id` and the secret key"
            ))),
        }
    }

    /// `text` without the app's secret key or any stored token.
    fn redact(&self, text: &str) -> String {
        let mut out = text.replace(&self.secret_key, "<secret key>");
        if let Ok(Some(t)) = self.store.zalo_tokens() {
            out = out.replace(&t.refresh_token, "<refresh token>");
            if let Some(a) = &t.access_token {
                out = out.replace(a, "<access token>");
            }
        }
        out
    }

    /// One `message/template` call: the receipt, or what went wrong.
    async fn call(
        &self,
        access: &str,
        body: &Value,
        now: DateTime<Utc>,
    ) -> Result<Result<Receipt, (ZaloError, String)>, SendError> {
        let url = format!("{}/message/template", self.cfg.api_url);
        let resp = self
            .client
            .post(url)
            .header("access_token", access)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| http::network_error("Zalo's ZNS service", http::TIMEOUT, e))?;
        let status = resp.status();
        let text = match resp.text().await {
            Ok(t) => self.redact(&t),
            Err(e) => {
                return Err(SendError::Transient(format!(
                    "Zalo answered {status} but the answer was cut off ({}); the message may arrive twice",
                    e.without_url()
                )));
            }
        };
        let answer: Value = serde_json::from_str(&text).map_err(|_| {
            SendError::Transient(format!(
                "Zalo answered {status} with something that is not its answer ({})",
                http::excerpt(&text)
            ))
        })?;
        let code = answer.get("error").and_then(Value::as_i64).unwrap_or(-1);
        if code == 0 {
            let id = answer
                .pointer("/data/msg_id")
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string));
            if let Some(q) = answer.pointer("/data/quota") {
                let num = |v: &Value| {
                    v.as_str()
                        .and_then(|s| s.parse::<i64>().ok())
                        .or_else(|| v.as_i64())
                };
                let seen = json!({
                    "daily": num(&q["dailyQuota"]),
                    "remaining": num(&q["remainingQuota"]),
                    "at": now.to_rfc3339(),
                });
                let _ = self.store.set_meta(QUOTA_META, &seen.to_string());
            }
            return Ok(Ok(Receipt { remote_id: id }));
        }
        let said = answer
            .get("message")
            .and_then(Value::as_str)
            .map_or_else(|| http::excerpt(&text), str::to_string);
        Ok(Err((classify(code, &said), format!("{code}: {said}"))))
    }

    /// The next local midnight after `now`, plus a minute.
    fn after_midnight(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let tomorrow = now.with_timezone(&self.tz).date_naive() + Duration::days(1);
        crate::plan::local(self.tz, tomorrow, NaiveTime::MIN).with_timezone(&Utc)
            + Duration::minutes(1)
    }

    async fn post(&self, out: &Outgoing<'_>) -> Result<Receipt, SendError> {
        let Some(p) = &out.rendered.zalo else {
            return Err(SendError::Permanent(
                "no Zalo template data was rendered for this message".into(),
            ));
        };
        let mut body = json!({
            "phone": out.to,
            "template_id": p["template_id"],
            "template_data": p["template_data"],
            "tracking_id": tracking_id(out.message_id),
        });
        if self.cfg.development {
            body["mode"] = json!("development");
        }
        let mut access = self.access_token(out.date, None).await?;
        let mut answer = self.call(&access, &body, out.date).await?;
        if let Err((ZaloError::AccessToken, _)) = &answer {
            // Refused before its time (revoked, or renewed elsewhere): renew, try once more.
            access = self.access_token(out.date, Some(&access)).await?;
            answer = self.call(&access, &body, out.date).await?;
        }
        let (kind, said) = match answer {
            Ok(receipt) => return Ok(receipt),
            Err(e) => e,
        };
        let to = out.to;
        Err(match kind {
            ZaloError::AccessToken => SendError::Transient(format!(
                "Zalo refused a freshly renewed access token ({said})"
            )),
            ZaloError::BadNumber => SendError::Permanent(format!(
                "Zalo: {to} is not a valid phone number ({said}); fix the unit's `zalo` (its other channels are unaffected)"
            )),
            ZaloError::NoAccount => SendError::Permanent(format!(
                "Zalo: {to} has no Zalo account ({said}); ask the unit for a number on Zalo, or take it off `zalo` (its other channels are unaffected)"
            )),
            ZaloError::Quota => SendError::RetryAt(
                format!(
                    "Zalo: the OA's daily quota is used up ({said}); sent again after midnight"
                ),
                self.after_midnight(out.date),
            ),
            ZaloError::RefreshToken => SendError::Permanent(format!("Zalo: {said}")),
            ZaloError::RateLimited => {
                SendError::Transient(format!("Zalo is limiting the OA ({said})"))
            }
            ZaloError::Other => SendError::Permanent(format!("Zalo refused the message ({said})")),
        })
    }
}

/// `application/x-www-form-urlencoded` escaping of one value.
fn form_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Sender for ZaloSender {
    fn send<'a>(&'a self, out: &'a Outgoing<'a>) -> Sending<'a> {
        Box::pin(self.post(out))
    }

    /// Renews the tokens when the refresh token is [`KEEP_ALIVE`] old, so that it never
    /// lapses (they live about three months) while nothing is sent on Zalo.
    fn maintain(&self, now: DateTime<Utc>) -> Upkeep<'_> {
        Box::pin(async move {
            if !self.may_renew {
                return Ok(());
            }
            let _one = self.renewing.lock().await;
            let tokens = self
                .store
                .zalo_tokens()
                .map_err(|e| Self::store_error(&e))?;
            match tokens {
                Some(t) if t.locked.is_none() && now - t.refresh_issued_at >= KEEP_ALIVE => {
                    tracing::info!(
                        days = (now - t.refresh_issued_at).num_days(),
                        "renewing the Zalo tokens before the refresh token lapses"
                    );
                    self.renew(&t.refresh_token, now).await.map(|_| ())
                }
                _ => Ok(()),
            }
        })
    }

    fn describe(&self) -> &str {
        "Zalo Notification Service"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_messages() {
        assert_eq!(classify(-124, ""), ZaloError::AccessToken);
        assert_eq!(classify(-118, ""), ZaloError::NoAccount);
        assert_eq!(classify(-14020, ""), ZaloError::RefreshToken);
        assert_eq!(
            classify(-9999, "Out of quota"),
            ZaloError::Quota,
            "by its message"
        );
        assert_eq!(classify(-9999, "Something else"), ZaloError::Other);
        assert_eq!(tracking_id("<a@b>"), tracking_id("<a@b>"));
        assert_eq!(tracking_id("<a@b>").len(), 26);
        assert_eq!(form_escape("ab+/ c"), "ab%2B%2F%20c");
    }
}
