//! Whose forwarding headers are believed: the one rule for the client's
//! address behind reverse proxies, for the server's own `_system` records
//! and for the Rust client's request context (the Python client states it
//! again in its own language, `trailmark/_ip.py`, with the same cases).

use std::net::IpAddr;

/// The proxies whose forwarding headers are believed: addresses and
/// networks (`10.0.0.1`, `10.0.0.0/8`, `fd00::/8`). Empty: no header is
/// believed, the client is the TCP peer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl TrustedProxies {
    /// A bad entry (an empty one too) is an error naming it, never
    /// skipped.
    pub fn parse<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> Result<Self, String> {
        let mut out = Vec::new();
        for item in items {
            let item = item.as_ref().trim();
            let bad = || format!("trusted proxies: {item:?} is not an IP address or network");
            let (addr, bits) = match item.split_once('/') {
                Some((a, b)) => (a, Some(b.parse::<u8>().map_err(|_| bad())?)),
                None => (item, None),
            };
            let ip = addr.parse::<IpAddr>().map_err(|_| bad())?.to_canonical();
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let bits = bits.unwrap_or(max);
            if bits > max {
                return Err(bad());
            }
            out.push((ip, bits));
        }
        Ok(Self(out))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|(net, bits)| match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), *bits),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), *bits),
            _ => false,
        })
    }

    /// The client's address: the peer, unless the peer is a trusted
    /// proxy; then the nearest address in the forwarding chain (the
    /// `Forwarded` header's `for` values when the header is given, else
    /// `X-Forwarded-For`'s; every occurrence of the header, in order) that
    /// is not one. An unreadable hop stops the walk: nothing behind it is
    /// believed.
    pub fn client_ip<'a>(
        &self,
        peer: IpAddr,
        forwarded: impl IntoIterator<Item = &'a str>,
        x_forwarded_for: impl IntoIterator<Item = &'a str>,
    ) -> IpAddr {
        let mut addr = peer.to_canonical();
        if !self.contains(addr) {
            return addr;
        }
        let forwarded: Vec<&str> = forwarded.into_iter().filter(|v| !v.is_empty()).collect();
        let chain: Vec<&str> = if forwarded.is_empty() {
            x_forwarded_for
                .into_iter()
                .flat_map(|v| v.split(','))
                .collect()
        } else {
            forwarded
                .into_iter()
                .flat_map(|v| v.split(','))
                .flat_map(|element| element.split(';'))
                .filter_map(|pair| {
                    let (name, value) = pair.split_once('=')?;
                    name.trim().eq_ignore_ascii_case("for").then_some(value)
                })
                .collect()
        };
        for hop in chain.iter().rev().filter(|h| !h.trim().is_empty()) {
            let Some(hop) = hop_ip(hop) else {
                return addr;
            };
            addr = hop;
            if !self.contains(addr) {
                return addr;
            }
        }
        addr
    }
}

/// As given: `10.0.0.0/8, 192.0.2.1/32`.
impl std::fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (ip, bits)) in self.0.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{ip}/{bits}")?;
        }
        Ok(())
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let full = usize::from(bits / 8);
    let rest = bits % 8;
    if a[..full] != b[..full] {
        return false;
    }
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        a[full] & mask == b[full] & mask
    }
}

/// One hop of a forwarding chain: `203.0.113.7`, `203.0.113.7:4711`,
/// `"[2001:db8::1]:4711"`, `2001:db8::1`.
fn hop_ip(text: &str) -> Option<IpAddr> {
    let text = text.trim().trim_matches('"');
    let text = if let Some(rest) = text.strip_prefix('[') {
        &rest[..rest.find(']')?]
    } else if text.matches(':').count() == 1 {
        text.split(':').next()?
    } else {
        text
    };
    text.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// The cases both statements of the rule answer alike (this one, and
    /// the Python client's `trailmark/_ip.py`, whose tests read the same
    /// file).
    #[test]
    fn forwarded_addresses_are_believed_only_through_trusted_proxies() {
        let table: serde_json::Value =
            serde_json::from_str(include_str!("../tests/client-ip.json")).unwrap();
        let strings = |v: &serde_json::Value| -> Vec<String> {
            v.as_array()
                .map(|a| a.iter().map(|s| s.as_str().unwrap().to_owned()).collect())
                .unwrap_or_default()
        };
        let cases = table["cases"].as_array().unwrap();
        assert!(cases.len() >= 10);
        for case in cases {
            let proxies = TrustedProxies::parse(strings(&case["trusted"])).unwrap();
            let forwarded = strings(&case["forwarded"]);
            let xff = strings(&case["x_forwarded_for"]);
            let client = proxies.client_ip(
                ip(case["peer"].as_str().unwrap()),
                forwarded.iter().map(String::as_str),
                xff.iter().map(String::as_str),
            );
            assert_eq!(
                client.to_string(),
                case["client"].as_str().unwrap(),
                "{}",
                case["name"]
            );
        }
        for bad in strings(&table["bad"]) {
            let e = TrustedProxies::parse([bad.as_str()]).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }
}
