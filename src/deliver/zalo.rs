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
use crate::store::{Store, ZaloTokens};

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
    /// Too many requests, or "try again later": retry with the backoff.
    RateLimited,
    /// The ZNS account's balance is used up: fail, saying to top it up.
    Balance,
    /// Anything else: fail for good, with Zalo's message.
    Other,
}

/// Zalo's error codes nhacviec acts on. Sources: Zalo for Developers, the error tables of
/// the ZNS API and of the Official Account API (developers.zalo.me, "Bảng mã lỗi"), and
/// integrators' notes. The daily-quota code differs between sources, so a message that
/// speaks of a daily quota counts as one too ([`classify`]); -115 "out of quota" is the
/// account's balance, not the day's quota.
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
    (
        -100,
        ZaloError::RateLimited,
        "unknown error, try again later",
    ),
    (
        -115,
        ZaloError::Balance,
        "out of quota: the ZNS account's balance is used up",
    ),
];

/// What an error code (and its message) means for nhacviec.
pub fn classify(code: i64, message: &str) -> ZaloError {
    if let Some((_, e, _)) = CODES.iter().find(|(c, _, _)| *c == code) {
        return *e;
    }
    let m = message.to_lowercase();
    if m.contains("daily quota") || m.contains("daily limit") {
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
    /// When the upkeep's last renewal failed.
    upkeep_failed: std::sync::Mutex<Option<DateTime<Utc>>>,
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

/// How long a stopped channel holds a message before trying it again.
pub const LOCKED_RETRY: Duration = Duration::hours(1);

/// How long the upkeep leaves the token service alone after a failed renewal.
pub const UPKEEP_BACKOFF: Duration = Duration::minutes(10);

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
            upkeep_failed: std::sync::Mutex::new(None),
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

    /// The channel is stopped until an admin imports a new refresh token: the message waits
    /// (an hour at a time, within the usual 48 hours) rather than failing at once.
    fn stopped(why: &str, now: DateTime<Utc>) -> SendError {
        SendError::RetryAt(format!("Zalo is stopped: {why}"), now + LOCKED_RETRY)
    }

    /// The first refresh token, from `refresh_token_file`, stored (once).
    fn bootstrap(&self, now: DateTime<Utc>) -> Result<ZaloTokens, SendError> {
        let file = &self.cfg.refresh_token_file;
        let first = std::fs::read_to_string(file).map_err(|e| {
            SendError::Transient(format!(
                "no Zalo refresh token yet, and {} cannot be read ({e}): put the OA's refresh token there (docs/channels.md)",
                file.display()
            ))
        })?;
        let first = first.trim();
        if first.is_empty() || first.chars().any(char::is_whitespace) {
            return Err(SendError::Transient(format!(
                "{} must hold the OA's refresh token alone, on one line",
                file.display()
            )));
        }
        self.store
            .zalo_bootstrap(first, now)
            .map_err(|e| Self::store_error(&e))?;
        self.store
            .zalo_tokens()
            .map_err(|e| Self::store_error(&e))?
            .ok_or_else(|| SendError::Transient("the Zalo tokens vanished".into()))
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
            None => self.bootstrap(now)?,
        };
        if let Some(why) = tokens.locked {
            return Err(Self::stopped(&why, now));
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

    /// Spends the refresh token for a new pair and returns the access token. The call and
    /// the commit of its answer run as a task of their own, which nothing cancels (not a
    /// shutdown, not a sibling's failure): once Zalo has answered, the new pair is stored.
    async fn renew(&self, refresh_token: &str, now: DateTime<Utc>) -> Result<String, SendError> {
        let job = Renewal {
            client: self.client.clone(),
            url: format!("{}/v4/oa/access_token", self.cfg.oauth_url),
            secret_key: self.secret_key.clone(),
            app_id: self.cfg.app_id.clone(),
            refresh_token: refresh_token.to_string(),
            store: self.store.clone(),
            now,
        };
        let outcome = tokio::spawn(job.run())
            .await
            .map_err(|e| SendError::Transient(format!("the Zalo token renewal stopped ({e})")))?;
        match outcome {
            Renewed::Access(a) => Ok(a),
            Renewed::Failed(e) => Err(SendError::Transient(self.redact(&e, refresh_token))),
            Renewed::Refused { code, said } => {
                let said = self.redact(&said, refresh_token);
                let why = format!(
                    "Zalo refused the OA's refresh token ({code}: {said}): nothing is sent on Zalo until an admin issues a new one: log in to Zalo for Developers as the OA's admin, authorize app {} again for a new refresh token, save it in a file and run `nhacviec zalo token --import FILE` (if a renewal's answer was lost earlier, Zalo may have spent the token then)",
                    self.cfg.app_id
                );
                self.store
                    .zalo_lock(&why, refresh_token, now)
                    .map_err(|e| Self::store_error(&e))?;
                tracing::error!("{why}");
                self.tell_admins(&format!("{code}: {said}"), now);
                Err(Self::stopped(&why, now))
            }
        }
    }

    /// The admins' notice that the channel is stopped (at most one a day).
    fn tell_admins(&self, reason: &str, now: DateTime<Utc>) {
        let notices =
            super::notices::channel_locked(&self.config, crate::state::Channel::Zalo, reason, now);
        if let Err(e) = self.store.enqueue_other(now, &notices) {
            tracing::error!(error = %e, "cannot enqueue the admins' notice of the Zalo lock-out");
        }
    }

    /// `text` without the app's secret key or `token`, the token the request it answers
    /// carried (the only ones Zalo could echo back).
    fn redact(&self, text: &str, token: &str) -> String {
        let out = text.replace(&self.secret_key, "<secret key>");
        if token.is_empty() {
            out
        } else {
            out.replace(token, "<token>")
        }
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
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = match resp.text().await {
            Ok(t) => self.redact(&t, access),
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
        let Some(code) = answer.get("error").and_then(Value::as_i64) else {
            // Not Zalo's answer (a gateway's 429 or 5xx): worth retrying.
            let e = format!(
                "Zalo answered {status} without its error code ({})",
                http::excerpt(&text)
            );
            return Err(match http::retry_after(retry_after.as_deref(), now) {
                Some(at) if status.as_u16() == 429 => SendError::RetryAt(e, at),
                _ => SendError::Transient(e),
            });
        };
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
            ZaloError::RateLimited => SendError::Transient(format!(
                "Zalo is limiting the OA, or asks to try later ({said})"
            )),
            ZaloError::Balance => SendError::Permanent(format!(
                "Zalo: the ZNS account's balance is used up ({said}); top it up in the ZNS console"
            )),
            ZaloError::Other => SendError::Permanent(format!("Zalo refused the message ({said})")),
        })
    }
}

/// What a renewal came to.
enum Renewed {
    /// The new access token (the pair is stored).
    Access(String),
    /// Zalo refused the refresh token: `code` and its words.
    Refused { code: i64, said: String },
    /// Anything else, worth retrying (the text quotes no token).
    Failed(String),
}

/// One renewal: the call to Zalo's token service and the commit of its answer.
struct Renewal {
    client: reqwest::Client,
    url: String,
    secret_key: String,
    app_id: String,
    refresh_token: String,
    store: Arc<Store>,
    now: DateTime<Utc>,
}

impl Renewal {
    async fn run(self) -> Renewed {
        let form = format!(
            "refresh_token={}&app_id={}&grant_type=refresh_token",
            form_escape(&self.refresh_token),
            form_escape(&self.app_id)
        );
        let sent = self
            .client
            .post(&self.url)
            .header("secret_key", &self.secret_key)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                let unknown = if e.is_timeout() {
                    "; Zalo may have taken the refresh token without our hearing it"
                } else {
                    ""
                };
                return Renewed::Failed(format!(
                    "{}{unknown}",
                    http::network_error("Zalo's token service", http::TIMEOUT, e)
                ));
            }
        };
        let status = resp.status();
        let text = match resp.text().await {
            Ok(t) => t,
            Err(_) => {
                return Renewed::Failed(format!(
                    "Zalo's token service answered {status} but the answer was lost: if Zalo spent the refresh token, the next renewal is refused and the channel stops"
                ));
            }
        };
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let token = |k: &str| {
            answer
                .get(k)
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
        };
        if let Some(refresh) = token("refresh_token") {
            let secs = match answer.get("expires_in") {
                Some(Value::String(s)) => s.parse::<i64>().unwrap_or(3600),
                Some(v) => v.as_i64().unwrap_or(3600),
                None => 3600,
            };
            let access = token("access_token");
            // The old refresh token is spent: the new one is stored before anything else,
            // waiting out a database another process holds.
            let mut tries = 0;
            loop {
                let stored = match access {
                    Some(a) => self.store.zalo_store_pair(
                        a,
                        self.now + Duration::seconds(secs),
                        refresh,
                        self.now,
                    ),
                    None => self.store.zalo_import(refresh, self.now),
                };
                match stored {
                    Ok(()) => break,
                    Err(e) if tries < 10 => {
                        tries += 1;
                        tracing::warn!(error = %e, "cannot store the new Zalo tokens yet; trying again");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "the new Zalo tokens could not be stored: the channel will stop at the next renewal");
                        return Renewed::Failed(format!(
                            "the new Zalo tokens could not be stored ({e})"
                        ));
                    }
                }
            }
            tracing::info!(expires_in = secs, "Zalo tokens renewed");
            return match access {
                Some(a) => Renewed::Access(a.to_string()),
                None => Renewed::Failed(
                    "Zalo's token service answered a refresh token without an access token (stored; renewed again next time)".into(),
                ),
            };
        }
        // Its own words only: the body is never quoted (it could hold a token).
        let code = answer.get("error").and_then(Value::as_i64).unwrap_or(0);
        let said = ["error_description", "error_name", "message"]
            .iter()
            .find_map(|k| answer.get(*k).and_then(Value::as_str))
            .unwrap_or("an answer with neither tokens nor an error")
            .to_string();
        match classify(code, &said) {
            ZaloError::RefreshToken => Renewed::Refused { code, said },
            _ if status.is_server_error() || code == 0 => {
                Renewed::Failed(format!("Zalo's token service answered {status}: {said}"))
            }
            _ => Renewed::Failed(format!(
                "Zalo's token service refused the renewal ({code}: {said}); check `channels.zalo.app_id` and the secret key"
            )),
        }
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

    /// At the daemon's first wake, takes the first refresh token and renews it (so a
    /// token that waits for a rare obligation cannot lapse unread); then renews the tokens
    /// when the refresh token is [`KEEP_ALIVE`] old, so it never lapses while nothing is sent;
    /// while the channel is stopped, reminds the admins (once a day). A failed renewal is
    /// not tried again by the upkeep for [`UPKEEP_BACKOFF`].
    fn maintain(&self, now: DateTime<Utc>) -> Upkeep<'_> {
        Box::pin(async move {
            if !self.may_renew {
                return Ok(());
            }
            let _one = self.renewing.lock().await;
            if let Ok(last) = self.upkeep_failed.lock()
                && last.is_some_and(|t| now - t < UPKEEP_BACKOFF)
            {
                return Ok(());
            }
            let stored = self
                .store
                .zalo_tokens()
                .map_err(|e| Self::store_error(&e))?;
            let result = match stored {
                None => match self.bootstrap(now) {
                    Ok(t) => self.renew(&t.refresh_token, now).await.map(|_| ()),
                    Err(e) => Err(e),
                },
                Some(t) if t.locked.is_some() => {
                    self.tell_admins(t.locked.as_deref().unwrap_or_default(), now);
                    Ok(())
                }
                Some(t) if now - t.refresh_issued_at >= KEEP_ALIVE => {
                    tracing::info!(
                        days = (now - t.refresh_issued_at).num_days(),
                        "renewing the Zalo tokens before the refresh token lapses"
                    );
                    self.renew(&t.refresh_token, now).await.map(|_| ())
                }
                Some(_) => Ok(()),
            };
            if let Ok(mut last) = self.upkeep_failed.lock() {
                *last = result.is_err().then_some(now);
            }
            result
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
            classify(-9999, "Daily quota exceeded"),
            ZaloError::Quota,
            "by its message"
        );
        assert_eq!(
            classify(-115, "Out of quota"),
            ZaloError::Balance,
            "the account's balance, not the day's quota"
        );
        assert_eq!(classify(-9999, "Out of quota"), ZaloError::Other);
        assert_eq!(classify(-9999, "Something else"), ZaloError::Other);
        assert_eq!(tracking_id("<a@b>"), tracking_id("<a@b>"));
        assert_eq!(tracking_id("<a@b>").len(), 26);
        assert_eq!(form_escape("ab+/ c"), "ab%2B%2F%20c");
    }
}
