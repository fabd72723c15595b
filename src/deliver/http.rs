//! What the HTTP channels (webhook, Telegram) share: one client that never follows a
//! redirect and gives up after [`TIMEOUT`], the classification of answers and network
//! errors into sent / retry / failed, and `Retry-After`.
//!
//! Errors from the HTTP client print the URL they were about; the Telegram bot token is in
//! its URL, so every error text is built here without the URL ([`reqwest::Error::without_url`])
//! and the callers redact their secret from anything the other side echoes back.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};

use super::channel::SendError;

/// How long one request may take, connection included, unless the channel says otherwise.
pub const TIMEOUT: StdDuration = StdDuration::from_secs(15);

/// At most this much of an answer's body is kept in an error.
const BODY_EXCERPT: usize = 300;

/// The longest wait a `Retry-After` may ask for; a longer one is cut to it.
pub const MAX_RETRY_AFTER: Duration = Duration::hours(6);

/// The client for one channel: no redirects, a timeout, our user agent; TLS by rustls with
/// the *ring* provider (the one lettre already brings), certificates checked against the
/// system's roots.
pub fn client(timeout: StdDuration) -> anyhow::Result<reqwest::Client> {
    // Installed once per process; a second call finds it there, which is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("nhacviec/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| anyhow::anyhow!("cannot build the HTTP client: {}", e.without_url()))
}

/// A network error (refused, reset, timeout, TLS): worth retrying. The text never holds the
/// URL.
pub fn network_error(what: &str, timeout: StdDuration, e: reqwest::Error) -> SendError {
    if e.is_builder() {
        return SendError::Permanent(format!(
            "{what}: the address cannot be used ({})",
            e.without_url()
        ));
    }
    let why = if e.is_timeout() {
        format!("no answer within {} s", timeout.as_secs())
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else if e.is_body() || e.is_decode() {
        "the answer was cut off".to_string()
    } else {
        "the connection failed".to_string()
    };
    let e = e.without_url();
    let mut detail = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        src = s.source();
    }
    SendError::Transient(format!("{what}: {why} ({detail})"))
}

/// When `Retry-After` (seconds, or an HTTP date) says to come back, from `now`; at most
/// [`MAX_RETRY_AFTER`] ahead.
pub fn retry_after(value: Option<&str>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let v = value?.trim();
    let at = match v.parse::<u64>() {
        Ok(secs) => now + Duration::seconds(i64::try_from(secs.min(86_400)).unwrap_or(86_400)),
        Err(_) => DateTime::parse_from_rfc2822(v).ok()?.with_timezone(&Utc),
    };
    Some(at.clamp(now, now + MAX_RETRY_AFTER))
}

/// The start of an answer's body, on one line, for an error text.
pub fn excerpt(body: &str) -> String {
    let one_line: String = body
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let t = one_line.trim();
    match t.char_indices().nth(BODY_EXCERPT) {
        Some((i, _)) => format!("{}…", &t[..i]),
        None => t.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn retry_after_in_seconds_or_a_date_within_bounds() {
        let now = Utc.with_ymd_and_hms(2025, 10, 3, 1, 0, 0).unwrap();
        assert_eq!(
            retry_after(Some("120"), now),
            Some(now + Duration::seconds(120))
        );
        assert_eq!(
            retry_after(Some("Fri, 03 Oct 2025 01:05:00 GMT"), now),
            Some(now + Duration::minutes(5))
        );
        assert_eq!(
            retry_after(Some("Fri, 03 Oct 2025 00:05:00 GMT"), now),
            Some(now),
            "a past date: now"
        );
        assert_eq!(
            retry_after(Some("999999"), now),
            Some(now + MAX_RETRY_AFTER)
        );
        assert_eq!(retry_after(Some("soon"), now), None);
        assert_eq!(retry_after(None, now), None);
    }

    #[test]
    fn excerpts_are_one_short_line() {
        assert_eq!(excerpt(" a\r\nb "), "a  b");
        assert_eq!(excerpt(&"x".repeat(400)).chars().count(), BODY_EXCERPT + 1);
    }
}
