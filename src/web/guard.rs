//! What protects the pages: the per-address limit on ack POSTs, HTTP Basic auth for
//! `/status` (compared in constant time) and the CSRF token of its forms.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use base64::Engine as _;
use chrono::{DateTime, NaiveDate, Utc};
use sha2::{Digest, Sha256};

use crate::token::TokenKey;

/// At most `per_minute` requests per client address in each clock minute.
#[derive(Debug)]
pub struct RateLimit {
    per_minute: u32,
    seen: Mutex<HashMap<IpAddr, (i64, u32)>>,
}

impl RateLimit {
    /// A limit of `per_minute`.
    pub fn new(per_minute: u32) -> RateLimit {
        RateLimit {
            per_minute,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a request from `ip` at `now`; false if over the limit.
    pub fn allow(&self, ip: IpAddr, now: DateTime<Utc>) -> bool {
        let minute = now.timestamp().div_euclid(60);
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() > 10_000 {
            seen.retain(|_, (m, _)| *m == minute);
        }
        let entry = seen.entry(ip).or_insert((minute, 0));
        if entry.0 != minute {
            *entry = (minute, 0);
        }
        entry.1 += 1;
        entry.1 <= self.per_minute
    }
}

/// Equal in constant time (for equal lengths; here both sides are SHA-256 digests).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks an `Authorization: Basic …` header against user `admin` and `password`. Both sides
/// are hashed first, so the comparison takes the same time whatever the input's length.
pub fn basic_auth_ok(header: Option<&str>, password: &str) -> bool {
    let Some(encoded) = header.and_then(|h| h.strip_prefix("Basic ")) else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let want = Sha256::digest(format!("admin:{password}").as_bytes());
    let got = Sha256::digest(&decoded);
    same(&want, &got)
}

/// The CSRF token of the status page's forms for `day`: derived from the token key, so it
/// needs no session; today's and yesterday's are accepted.
pub fn csrf_token(key: &TokenKey, day: NaiveDate) -> String {
    key.token(&format!("csrf/{day}"))
}

/// True if `token` is today's or yesterday's CSRF token.
pub fn csrf_ok(key: &TokenKey, today: NaiveDate, token: &str) -> bool {
    let yesterday = today.pred_opt().unwrap_or(today);
    [today, yesterday]
        .into_iter()
        .any(|d| same(csrf_token(key, d).as_bytes(), token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_per_address_and_minute() {
        let l = RateLimit::new(2);
        let t = DateTime::from_timestamp(1_700_000_000 - 1_700_000_000 % 60, 0).unwrap();
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(l.allow(a, t) && l.allow(a, t));
        assert!(!l.allow(a, t), "third in the minute");
        assert!(l.allow(b, t), "another address");
        assert!(l.allow(a, t + chrono::Duration::seconds(60)), "next minute");
    }

    #[test]
    fn basic_auth() {
        let header = |s: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(s)
            )
        };
        assert!(basic_auth_ok(Some(&header("admin:mật khẩu")), "mật khẩu"));
        assert!(!basic_auth_ok(Some(&header("admin:sai")), "mật khẩu"));
        assert!(!basic_auth_ok(Some(&header("root:mật khẩu")), "mật khẩu"));
        assert!(!basic_auth_ok(Some("Basic !!!"), "mật khẩu"));
        assert!(!basic_auth_ok(None, "mật khẩu"));
    }

    #[test]
    fn csrf_tokens_last_two_days() {
        let k = TokenKey::from_bytes([1; 32]);
        let d = NaiveDate::from_ymd_opt(2025, 10, 6).unwrap();
        let t = csrf_token(&k, d);
        assert!(csrf_ok(&k, d, &t));
        assert!(csrf_ok(&k, d.succ_opt().unwrap(), &t));
        assert!(!csrf_ok(&k, d + chrono::Duration::days(2), &t));
        assert!(!csrf_ok(&k, d, "0000"));
        assert!(!csrf_ok(&TokenKey::from_bytes([2; 32]), d, &t));
    }
}
