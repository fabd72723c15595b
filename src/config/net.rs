//! IP addresses and CIDR ranges, as `server.trusted_proxies` lists them.

use std::fmt;
use std::net::IpAddr;

/// An IP address or a CIDR range: `10.0.0.0/8`, `2001:db8::/32`, or a bare address (a range
/// of one). Kept as written (`10.0.0.1/8` stays so, and `check` warns about it); matching
/// looks only at the prefix. An IPv4 address written as IPv4-mapped IPv6 (`::ffff:10.0.0.1`),
/// as a dual-stack listener reports IPv4 peers, counts as the IPv4 one on both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    addr: IpAddr,
    prefix: u8,
}

impl IpRange {
    /// `10.0.0.0/8`, `192.0.2.7`, `2001:db8::/32`, `::1`; `None` for anything else (a prefix
    /// longer than the address, a host name, a port).
    pub fn parse(s: &str) -> Option<IpRange> {
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = addr.parse().ok()?;
        let addr = addr.to_canonical();
        let max = Self::bits(addr);
        let prefix = match prefix {
            None => max,
            // Digits only: `u8::from_str` would take `+8`.
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().ok().filter(|&p| p <= max)?
            }
            Some(_) => return None,
        };
        Some(IpRange { addr, prefix })
    }

    fn bits(addr: IpAddr) -> u8 {
        match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        }
    }

    /// The prefix length: 32 or 128 for a single address, 0 for every address.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The range with the bits past its prefix cleared (`10.0.0.0/8` for `10.0.0.1/8`).
    pub fn network(&self) -> IpRange {
        IpRange {
            addr: mask(self.addr, self.prefix),
            prefix: self.prefix,
        }
    }

    /// True if `ip` is in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        Self::bits(ip) == Self::bits(self.addr)
            && mask(ip, self.prefix) == mask(self.addr, self.prefix)
    }
}

/// `addr` with the bits past the first `prefix` cleared.
fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let keep = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((a.to_bits() & keep).into())
        }
        IpAddr::V6(a) => {
            let keep = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((a.to_bits() & keep).into())
        }
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix == Self::bits(self.addr) {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_parse_and_match_by_their_prefix() {
        let r = IpRange::parse("10.0.0.0/8").unwrap();
        assert!(r.contains(ip("10.255.1.2")));
        assert!(!r.contains(ip("11.0.0.1")));
        assert!(
            r.contains(ip("::ffff:10.1.2.3")),
            "IPv4-mapped counts as IPv4"
        );
        assert!(
            !r.contains(ip("::a00:1")),
            "an IPv6 address is not in an IPv4 range"
        );
        let one = IpRange::parse(" 127.0.0.1 ").unwrap();
        assert_eq!((one.prefix(), one.to_string()), (32, "127.0.0.1".into()));
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        let v6 = IpRange::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")) && !v6.contains(ip("2001:db9::1")));
        assert!(
            IpRange::parse("::ffff:192.0.2.1")
                .unwrap()
                .contains(ip("192.0.2.1"))
        );
        let all = IpRange::parse("0.0.0.0/0").unwrap();
        assert!(all.contains(ip("203.0.113.9")) && all.prefix() == 0);
        // Host bits past the prefix are kept as written, and ignored when matching.
        let loose = IpRange::parse("10.0.0.1/8").unwrap();
        assert_eq!(loose.network().to_string(), "10.0.0.0/8");
        assert_ne!(loose, loose.network());
        assert!(loose.contains(ip("10.9.9.9")));
        for bad in [
            "",
            "10.0.0.0/33",
            "::1/129",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0.0/-1",
            "10.0.0",
            "localhost",
            "10.0.0.1:80",
            "[::1]",
            "10.0.0.0/8/8",
        ] {
            assert_eq!(IpRange::parse(bad), None, "{bad:?}");
        }
    }
}
