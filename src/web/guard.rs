//! What protects the pages: the per-address limit on ack POSTs (a token bucket), HTTP Basic
//! auth for `/status` (compared in constant time) with its throttle on failed logins, the
//! CSRF token of its forms, the client's address behind a trusted reverse proxy
//! ([`client_ip`]), which the limit, the throttle and the ack ledger count by, and each
//! address's share of the connections ([`PerAddress`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use chrono::{DateTime, NaiveDate, Utc};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use sha2::{Digest, Sha256};

use crate::clock::{Clock, ClockKind};
use crate::token::TokenKey;

/// The time the ack limit counts in: real time, on a monotonic clock (a step of the wall
/// clock neither opens nor shuts a bucket), also when the daemon runs on a set clock
/// (`NHACVIEC_CLOCK`): the limit is about how fast a real client posts, and a rehearsal at
/// 600× must not let one post 600 times as fast. Only the tests' manual clock
/// ([`crate::clock::ManualClock`]) drives it, so that a test steps across a minute without
/// waiting one.
#[derive(Clone)]
pub struct LimitClock(Source);

#[derive(Clone)]
enum Source {
    /// Real time since this instant (tokio's clock: real, or paused in tests).
    Real(tokio::time::Instant),
    /// The daemon's clock since this instant.
    Daemon(Arc<dyn Clock>, DateTime<Utc>),
}

impl LimitClock {
    /// The time the ack limit of a daemon on `clock` counts in: `clock` itself if it is a
    /// manual clock, real time otherwise.
    pub fn of(clock: &Arc<dyn Clock>) -> LimitClock {
        match clock.kind() {
            ClockKind::Manual => LimitClock(Source::Daemon(clock.clone(), clock.now())),
            ClockKind::System | ClockKind::Set { .. } => {
                LimitClock(Source::Real(tokio::time::Instant::now()))
            }
        }
    }
}

impl LimitClock {
    /// Its time as an instant (for [`LoginThrottle`], which counts in instants): the daemon's
    /// clock when that drives it, otherwise real time since the start, from the epoch.
    pub fn instant(&self) -> DateTime<Utc> {
        match &self.0 {
            Source::Real(origin) => {
                DateTime::UNIX_EPOCH
                    + chrono::Duration::from_std(origin.elapsed()).unwrap_or(chrono::Duration::MAX)
            }
            Source::Daemon(clock, _) => clock.now(),
        }
    }
}

impl std::fmt::Debug for LimitClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            Source::Real(_) => "LimitClock(real)",
            Source::Daemon(..) => "LimitClock(daemon)",
        })
    }
}

impl governor::clock::Clock for LimitClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        let elapsed = match &self.0 {
            Source::Real(origin) => origin.elapsed(),
            Source::Daemon(clock, origin) => (clock.now() - *origin).to_std().unwrap_or_default(),
        };
        Nanos::new(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX))
    }
}

/// Each client's bucket as governor keeps it: its theoretical arrival time (GCRA), in
/// nanoseconds from the limiter's start. Shared with [`RateLimit`], which carries the
/// buckets over to a new limit when a reload changes it.
#[derive(Debug, Clone, Default)]
struct Buckets(Arc<Mutex<HashMap<IpAddr, u64>>>);

impl governor::state::StateStore for Buckets {
    type Key = IpAddr;

    fn measure_and_replace<T, F, E>(&self, key: &IpAddr, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (answer, next) = f(map.get(key).map(|&n| Nanos::new(n)))?;
        map.insert(*key, next.as_u64());
        Ok(answer)
    }
}

/// Clients remembered before the full buckets (those of clients quiet for a while, which a
/// new client's equals) are dropped.
const REMEMBERED: usize = 10_000;

/// The limit in force, and the limiter that keeps it.
struct Bucketed {
    per_minute: u32,
    /// The limiter's start on its clock (what the buckets' times count from).
    start: Nanos,
    limiter: governor::RateLimiter<IpAddr, Buckets, LimitClock, NoOpMiddleware<Nanos>>,
}

/// The limit on ack POSTs, `server.ack_per_minute`, as a token bucket per client (governor's
/// GCRA): a client may post `per_minute` times at once, then once every
/// `60 / per_minute` seconds; quiet, its bucket fills again at that pace up to
/// `per_minute`. Unlike a window per clock minute, which let twice the limit through within
/// a second across a minute's boundary, no burst is ever larger than the limit. An IPv6
/// client counts by its /64, as in [`LoginThrottle`].
///
/// The limit follows the config in force: each check passes the value it holds. A reload
/// that leaves it alone keeps every bucket as it is; one that changes it carries each
/// client's used posts over (a client that used 25 of 30 and gets a limit of 10 waits
/// until it is under 10), so a reload never hands out a fresh burst.
pub struct RateLimit {
    clock: LimitClock,
    buckets: Buckets,
    inner: Mutex<Bucketed>,
}

impl std::fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        f.debug_struct("RateLimit")
            .field("per_minute", &inner.per_minute)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

/// governor's quota for `per_minute`: a burst of that many, one back every `60 / per_minute`
/// seconds.
fn quota(per_minute: u32) -> governor::Quota {
    governor::Quota::per_minute(NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN))
}

impl RateLimit {
    /// A limit of `per_minute`, counted in `clock`'s time.
    pub fn new(per_minute: u32, clock: LimitClock) -> RateLimit {
        let buckets = Buckets::default();
        let inner = Mutex::new(Self::limiter(per_minute, &clock, &buckets));
        RateLimit {
            clock,
            buckets,
            inner,
        }
    }

    fn limiter(per_minute: u32, clock: &LimitClock, buckets: &Buckets) -> Bucketed {
        use governor::clock::Clock as _;
        Bucketed {
            per_minute,
            start: clock.now(),
            limiter: governor::RateLimiter::new(quota(per_minute), buckets.clone(), clock.clone()),
        }
    }

    /// The time it counts in, which the login throttle counts in too.
    pub fn clock(&self) -> &LimitClock {
        &self.clock
    }

    /// Counts a request from `ip` under a limit of `per_minute` (the config's, now): `Ok`
    /// if it may pass, else `Err(seconds)` until it may (for `Retry-After`).
    pub fn allow(&self, ip: IpAddr, per_minute: u32) -> Result<(), u64> {
        use governor::clock::Clock as _;
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let now = self.clock.now();
        if inner.per_minute != per_minute {
            self.retune(&inner, per_minute, now);
            *inner = Self::limiter(per_minute, &self.clock, &self.buckets);
        }
        self.forget_full(&inner, now);
        inner.limiter.check_key(&client(ip)).map_err(|not_until| {
            let wait = not_until.wait_time_from(now);
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })?;
        Ok(())
    }

    /// Carries each client's bucket over from `old`'s limit to `per_minute`, for a limiter
    /// that starts at `now`: the posts it used (its arrival time ahead of now, in `old`'s
    /// intervals) stay used, counted in the new interval.
    fn retune(&self, old: &Bucketed, per_minute: u32, now: Nanos) {
        let old_t = quota(old.per_minute).replenish_interval().as_nanos();
        let new_t = quota(per_minute).replenish_interval().as_nanos();
        let now_old = now.as_u64().saturating_sub(old.start.as_u64());
        let mut map = self.buckets.0.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, tat| {
            let used = u128::from(tat.saturating_sub(now_old));
            // A full bucket is a new client's: nothing to carry.
            if used == 0 {
                return false;
            }
            let carried = used * new_t / old_t.max(1);
            *tat = u64::try_from(carried).unwrap_or(u64::MAX);
            true
        });
    }

    /// Past [`REMEMBERED`] clients, drops the full buckets (a new client's equals them).
    fn forget_full(&self, inner: &Bucketed, now: Nanos) {
        let mut map = self.buckets.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > REMEMBERED {
            let now = now.as_u64().saturating_sub(inner.start.as_u64());
            map.retain(|_, tat| *tat > now);
        }
    }
}

/// Equal in constant time (for equal lengths; here both sides are SHA-256 digests).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks an `Authorization: Basic …` header against user `admin` and `password`. Both sides
/// are hashed first, so the comparison takes the same time whatever the input's length. The
/// scheme's name is case-insensitive (RFC 7235 §2.1): `basic` and `BASIC` are Basic too.
pub fn basic_auth_ok(header: Option<&str>, password: &str) -> bool {
    let Some((scheme, encoded)) = header.and_then(|h| h.split_once(' ')) else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("Basic") {
        return false;
    }
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let want = Sha256::digest(format!("admin:{password}").as_bytes());
    let got = Sha256::digest(&decoded);
    same(&want, &got)
}

/// Failed logins counted per client before it is turned away.
pub const LOGIN_FAILURES: u32 = 10;

/// How long a client's failures count, from its first, in seconds; once it has
/// [`LOGIN_FAILURES`] of them it is turned away (429) until this window ends.
pub const LOGIN_WINDOW: i64 = 60;

/// Failed logins written to the log per window at most; the rest are counted, and the next
/// line written says how many were left out, so a flood does not fill the journal.
pub const LOGGED_FAILURES: u32 = 10;

/// The throttle on failed logins to `/status`: after [`LOGIN_FAILURES`] wrong credentials
/// within [`LOGIN_WINDOW`] from one client, that client is refused (even with the right
/// password, so guessing learns nothing more) until the window ends; other clients are not
/// affected. An IPv6 client counts by its /64, the block one host usually holds. Kept apart
/// from [`RateLimit`], which limits acks; it counts in the same time ([`LimitClock`]): a
/// guesser's minute is a real minute also while the daemon rehearses on a fast clock.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    /// Per client: the start of its window and its failures in it.
    failures: Mutex<HashMap<IpAddr, (DateTime<Utc>, u32)>>,
    /// The log's window: its start, the lines written in it, and failures not written since
    /// the last line.
    log: Mutex<(Option<DateTime<Utc>>, u32, u64)>,
}

/// What to do with a failed login's log line.
#[derive(Debug, PartialEq, Eq)]
pub enum LogLine {
    /// Write it, saying how many failures before it were not written.
    Write { not_logged: u64 },
    /// Leave it out (counted for the next line).
    Skip,
}

impl LoginThrottle {
    /// A throttle with nothing counted.
    pub fn new() -> LoginThrottle {
        LoginThrottle::default()
    }

    /// `Some(seconds)` to wait if `ip` is turned away at `now`.
    pub fn refused(&self, ip: IpAddr, now: DateTime<Utc>) -> Option<u64> {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let (start, n) = failures.get(&client(ip))?;
        let end = *start + chrono::Duration::seconds(LOGIN_WINDOW);
        (*n >= LOGIN_FAILURES && now < end).then(|| {
            let ms = u64::try_from((end - now).num_milliseconds()).unwrap_or(1);
            ms.div_ceil(1000).max(1)
        })
    }

    /// Counts a failed login from `ip` at `now`, and says whether to log it.
    pub fn failed(&self, ip: IpAddr, now: DateTime<Utc>) -> LogLine {
        let window = chrono::Duration::seconds(LOGIN_WINDOW);
        {
            let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
            if failures.len() > 10_000 {
                failures.retain(|_, (start, _)| now < *start + window);
            }
            let entry = failures.entry(client(ip)).or_insert((now, 0));
            if now >= entry.0 + window {
                *entry = (now, 0);
            }
            entry.1 = entry.1.saturating_add(1);
        }
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let (start, written, not_logged) = &mut *log;
        if start.is_none_or(|s| now >= s + window) {
            *start = Some(now);
            *written = 0;
        }
        if *written < LOGGED_FAILURES {
            *written += 1;
            LogLine::Write {
                not_logged: std::mem::take(not_logged),
            }
        } else {
            *not_logged += 1;
            LogLine::Skip
        }
    }
}

/// The connections open from each address (an IPv6 client by its /64), so that no one
/// address holds more than its share of `server.max_connections`: one client that opens
/// connections and says nothing would otherwise take every slot, and everyone else wait.
#[derive(Debug, Default, Clone)]
pub struct PerAddress(Arc<Mutex<HashMap<IpAddr, usize>>>);

/// One connection counted for its address, until dropped.
#[derive(Debug)]
pub struct Counted {
    open: PerAddress,
    client: IpAddr,
}

impl PerAddress {
    /// How many connections one address may hold of `max_connections`: a quarter, but at
    /// least 16 (a browser opens 6 to a host; an office behind one NAT address has several),
    /// and never more than all.
    pub fn share(max_connections: usize) -> usize {
        (max_connections / 4).max(16).min(max_connections)
    }

    /// Counts a connection from `peer`, or `None` when its address holds `share` already.
    pub fn open(&self, peer: IpAddr, share: usize) -> Option<Counted> {
        let client = client(peer);
        let mut open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(client).or_insert(0);
        if *n >= share {
            return None;
        }
        *n += 1;
        Some(Counted {
            open: self.clone(),
            client,
        })
    }

    /// Connections open from `peer`'s address.
    pub fn of(&self, peer: IpAddr) -> usize {
        let open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        open.get(&client(peer)).copied().unwrap_or(0)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut open = self.open.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.client);
            }
        }
    }
}

/// The address a client is counted by: itself, or its /64 for IPv6.
fn client(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(
                v6.to_bits() & !0xffff_ffff_ffff_ffff,
            )),
        },
        v4 => v4,
    }
}

/// The address a request comes from: its TCP peer, unless the peer is one of `trusted` (the
/// reverse proxies in front of the daemon, `server.trusted_proxies`). Then it is the address
/// the proxies report: of the `X-Forwarded-For` entries (all its header lines, in order),
/// the rightmost that is not itself a trusted proxy; without that header, the same of the
/// `for=` parameters of `Forwarded` (RFC 7239). Proxies append to the right, so the
/// entries a client wrote itself lie to the left of the one its first trusted proxy added,
/// and are never reached: a client cannot choose its address. If every entry is a trusted
/// proxy, the leftmost is the client; an entry that is no address (`unknown`, an obfuscated
/// name, garbage) ends the walk at the trusted proxy that reported it. From a peer that is
/// not trusted, the headers are ignored.
pub fn client_ip(
    peer: IpAddr,
    headers: &axum::http::HeaderMap,
    trusted: &[crate::config::IpRange],
) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|r| r.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect()
    };
    let forwarded_for = values("x-forwarded-for");
    let hops: Vec<Option<IpAddr>> = if forwarded_for.is_empty() {
        values("forwarded")
            .iter()
            .flat_map(|v| v.split(','))
            .filter_map(|element| {
                element.split(';').find_map(|pair| {
                    let (k, v) = pair.split_once('=')?;
                    k.trim().eq_ignore_ascii_case("for").then(|| hop(v))
                })
            })
            .collect()
    } else {
        forwarded_for
            .iter()
            .flat_map(|v| v.split(','))
            .map(hop)
            .collect()
    };
    let mut client = peer;
    for h in hops.iter().rev() {
        match h {
            Some(ip) if is_trusted(*ip) => client = *ip,
            Some(ip) => return ip.to_canonical(),
            None => break,
        }
    }
    client.to_canonical()
}

/// One hop of `X-Forwarded-For` or `Forwarded: for=`: `192.0.2.1`, `"[2001:db8::1]:4711"`,
/// `192.0.2.1:80`, `2001:db8::1`; `None` for `unknown`, `_hidden` or garbage.
fn hop(text: &str) -> Option<IpAddr> {
    let t = text.trim().trim_matches('"').trim();
    if let Ok(ip) = t.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = t.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    t.parse::<std::net::SocketAddrV4>()
        .ok()
        .map(|a| IpAddr::V4(*a.ip()))
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

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// A limit on a manual clock, and the clock.
    fn manual_limit(per_minute: u32) -> (RateLimit, Arc<crate::clock::ManualClock>) {
        let t = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let clock = Arc::new(crate::clock::ManualClock::new(t));
        let daemon: Arc<dyn Clock> = clock.clone();
        (RateLimit::new(per_minute, LimitClock::of(&daemon)), clock)
    }

    #[test]
    fn a_changed_limit_carries_each_clients_used_posts_over() {
        let (l, clock) = manual_limit(2);
        let s = chrono::Duration::seconds;
        let (a, b) = (ip("192.0.2.1"), ip("192.0.2.2"));
        let passed =
            |ip: IpAddr, n: u32, limit: u32| (0..n).filter(|_| l.allow(ip, limit).is_ok()).count();
        assert_eq!(passed(a, 3, 2), 2);
        assert_eq!(l.allow(a, 2), Err(30), "one back in 60 / 2 s");
        // The same limit (a reload of something else): the bucket as it was.
        assert_eq!(passed(a, 1, 2), 0);
        // Raised to 5: the two used stay used, three more pass.
        assert_eq!(passed(a, 6, 5), 3);
        assert_eq!(l.allow(a, 5), Err(12));
        // Lowered to 1 with five used: it waits until it is under one, 5 × 60 s.
        assert_eq!(l.allow(a, 1), Err(300));
        assert_eq!(passed(b, 2, 1), 1, "another client has its own bucket");
        clock.advance(s(299));
        assert_eq!(l.allow(a, 1), Err(1));
        clock.advance(s(1));
        assert_eq!(passed(a, 2, 1), 1);
        // Quiet for a while, a client gets the whole burst of a new limit.
        clock.advance(s(600));
        assert_eq!(passed(a, 5, 4), 4);
        assert_eq!(passed(b, 5, 4), 4);
    }

    #[test]
    fn the_client_behind_a_trusted_proxy_is_the_rightmost_hop_not_trusted() {
        let trusted: Vec<crate::config::IpRange> = ["127.0.0.1", "10.0.0.0/8", "2001:db8:f::/48"]
            .iter()
            .map(|r| crate::config::IpRange::parse(r).unwrap())
            .collect();
        let proxy = "10.1.2.3";
        // (the TCP peer, the request's headers, the client it is counted as)
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case] = &[
            (proxy, &[], proxy),
            (proxy, &[("x-forwarded-for", "203.0.113.7")], "203.0.113.7"),
            // What the client wrote itself lies left of what the proxy added.
            (
                proxy,
                &[("x-forwarded-for", "198.51.100.1, 203.0.113.7")],
                "203.0.113.7",
            ),
            (
                proxy,
                &[("x-forwarded-for", "203.0.113.7,10.9.9.9 , 127.0.0.1")],
                "203.0.113.7",
            ),
            (
                proxy,
                &[
                    ("x-forwarded-for", "198.51.100.1"),
                    ("x-forwarded-for", "203.0.113.7, 10.0.0.5"),
                ],
                "203.0.113.7",
            ),
            (
                proxy,
                &[("x-forwarded-for", "10.0.0.5, 10.0.0.6")],
                "10.0.0.5",
            ),
            (
                proxy,
                &[("x-forwarded-for", "unknown, 10.0.0.6")],
                "10.0.0.6",
            ),
            (proxy, &[("x-forwarded-for", "1.2.3.4, rác")], proxy),
            (proxy, &[("x-forwarded-for", "2001:db8::1")], "2001:db8::1"),
            (
                proxy,
                &[("x-forwarded-for", "[2001:db8::1]:443")],
                "2001:db8::1",
            ),
            (proxy, &[("x-forwarded-for", "192.0.2.9:5000")], "192.0.2.9"),
            (
                proxy,
                &[("x-forwarded-for", "::ffff:192.0.2.9")],
                "192.0.2.9",
            ),
            (
                proxy,
                &[("forwarded", "for=192.0.2.60;proto=http;by=203.0.113.43")],
                "192.0.2.60",
            ),
            (
                proxy,
                &[(
                    "forwarded",
                    "for=198.51.100.1, for=\"[2001:db8:cafe::17]:4711\";proto=https, For=10.0.0.7",
                )],
                "2001:db8:cafe::17",
            ),
            (
                proxy,
                &[("forwarded", "for=_hidden, for=10.0.0.7")],
                "10.0.0.7",
            ),
            // X-Forwarded-For first: nginx appends to it.
            (
                proxy,
                &[
                    ("forwarded", "for=198.51.100.9"),
                    ("x-forwarded-for", "203.0.113.7"),
                ],
                "203.0.113.7",
            ),
            // A dual-stack listener's IPv4 peer, and an IPv6 proxy.
            (
                "::ffff:127.0.0.1",
                &[("x-forwarded-for", "203.0.113.7")],
                "203.0.113.7",
            ),
            (
                "2001:db8:f:1::2",
                &[("x-forwarded-for", "203.0.113.7")],
                "203.0.113.7",
            ),
            // From a peer that is no trusted proxy, the headers are ignored.
            (
                "198.51.100.20",
                &[
                    ("x-forwarded-for", "203.0.113.7"),
                    ("forwarded", "for=203.0.113.8"),
                ],
                "198.51.100.20",
            ),
            (
                "2001:db8:e::1",
                &[("x-forwarded-for", "203.0.113.7")],
                "2001:db8:e::1",
            ),
        ];
        for (peer, headers, want) in cases {
            let mut h = axum::http::HeaderMap::new();
            for (k, v) in *headers {
                h.append(*k, v.parse().unwrap());
            }
            assert_eq!(
                client_ip(ip(peer), &h, &trusted),
                ip(want),
                "from {peer} with {headers:?}"
            );
        }
        let mut h = axum::http::HeaderMap::new();
        h.append("x-forwarded-for", "203.0.113.7".parse().unwrap());
        assert_eq!(client_ip(ip(proxy), &h, &[]), ip(proxy), "no proxy trusted");
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
        // The scheme is case-insensitive (RFC 7235 §2.1; curl and some proxies write it so).
        let right = header("admin:mật khẩu");
        let encoded = right.strip_prefix("Basic ").unwrap();
        for scheme in ["basic", "BASIC", "bAsIc"] {
            let h = format!("{scheme} {encoded}");
            assert!(basic_auth_ok(Some(&h), "mật khẩu"), "{h}");
        }
        for h in [
            format!("Bearer {encoded}"),
            format!("Basicx {encoded}"),
            encoded.to_string(),
        ] {
            assert!(!basic_auth_ok(Some(&h), "mật khẩu"), "{h}");
        }
    }

    #[test]
    fn login_failures_are_throttled_per_client_and_logged_sparingly() {
        let t = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let s = chrono::Duration::seconds;
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let l = LoginThrottle::new();
        for i in 0..LOGIN_FAILURES {
            assert_eq!(
                l.refused(a, t + s(i.into())),
                None,
                "failure {i} is answered"
            );
            l.failed(a, t + s(i.into()));
        }
        // Turned away until a minute after the first failure, with the seconds left.
        assert_eq!(l.refused(a, t + s(10)), Some(50));
        assert_eq!(
            l.refused(a, t + s(59) + chrono::Duration::milliseconds(500)),
            Some(1)
        );
        assert_eq!(l.refused(b, t + s(10)), None, "another client is not");
        assert_eq!(l.refused(a, t + s(60)), None, "the window has passed");
        // A new window counts from zero.
        l.failed(a, t + s(61));
        assert_eq!(l.refused(a, t + s(62)), None);

        // An IPv6 client counts by its /64; a v4-mapped address as the v4 one.
        let l = LoginThrottle::new();
        for i in 0..LOGIN_FAILURES {
            let ip: IpAddr = format!("2001:db8:1:2::{i:x}").parse().unwrap();
            l.failed(ip, t);
        }
        assert!(
            l.refused("2001:db8:1:2::ffff".parse().unwrap(), t)
                .is_some()
        );
        assert!(l.refused("2001:db8:1:3::1".parse().unwrap(), t).is_none());
        for _ in 0..LOGIN_FAILURES {
            l.failed("::ffff:192.0.2.9".parse().unwrap(), t);
        }
        assert!(l.refused("192.0.2.9".parse().unwrap(), t).is_some());

        // The log: the first LOGGED_FAILURES of a window, then silence; the first line of
        // the next window says how many were left out.
        let l = LoginThrottle::new();
        let lines: Vec<LogLine> = (0..1000).map(|_| l.failed(b, t)).collect();
        let written = lines.iter().filter(|x| **x != LogLine::Skip).count();
        assert_eq!(written, LOGGED_FAILURES as usize);
        assert_eq!(l.failed(b, t + s(60)), LogLine::Write { not_logged: 990 });
        assert_eq!(l.failed(b, t + s(61)), LogLine::Write { not_logged: 0 });
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

    #[test]
    fn each_address_holds_its_share_of_the_connections_until_they_close() {
        assert_eq!(PerAddress::share(512), 128);
        assert_eq!(PerAddress::share(40), 16);
        assert_eq!(PerAddress::share(4), 4);
        let open = PerAddress::default();
        let a = ip("203.0.113.7");
        let mut held: Vec<Counted> = (0..3).map(|_| open.open(a, 3).unwrap()).collect();
        assert!(open.open(a, 3).is_none(), "a fourth");
        assert!(open.open(ip("203.0.113.8"), 3).is_some(), "another address");
        // An IPv6 client counts by its /64; a v4-mapped address as the v4 one.
        let v6: Vec<Counted> = (0..3)
            .map(|i| open.open(ip(&format!("2001:db8::{i}")), 3).unwrap())
            .collect();
        assert!(open.open(ip("2001:db8::ffff:1"), 3).is_none());
        assert!(open.open(ip("::ffff:203.0.113.7"), 3).is_none());
        held.pop();
        assert_eq!(open.of(a), 2);
        assert!(open.open(ip("::ffff:203.0.113.7"), 3).is_some());
        drop(v6);
        assert_eq!(open.of(ip("2001:db8::5")), 0);
        assert!(
            open.0.lock().unwrap().get(&ip("2001:db8::")).is_none(),
            "forgotten"
        );
    }
}
