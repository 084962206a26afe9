//! Who sent a request, for the per-client rate limit: the connection's address, or, behind
//! trusted proxies, the address the outermost one saw, read from `X-Forwarded-For`.
//!
//! Proxies write that address in several forms: `203.0.113.7`, `203.0.113.7:51234` (Azure
//! Application Gateway), `[2001:db8::7]:443`, `"[2001:db8::7]"`. Each is read. An entry that
//! still does not parse is keyed on its own text: falling back to the connection's address
//! would put every client behind the proxy in the proxy's one bucket, where one abuser would
//! lock everyone out.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;

/// A client, as the rate limit tells clients apart.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// An IPv4 address, or an IPv6 /64 ([`crate::serve::client_key`]).
    Address(IpAddr),
    /// A trusted proxy's entry that is no address (`unknown`, an obfuscated name), at most
    /// [`MAX_UNPARSED`] bytes of it.
    Unparsed(Box<str>),
}

/// The per-client rate limit's buckets, one per [`ClientKey`].
pub type ClientLimiter = governor::DefaultKeyedRateLimiter<ClientKey>;

/// The longest unparsed entry kept as a key: a proxy's text, never a client's, but bounded all
/// the same.
const MAX_UNPARSED: usize = 64;

/// The client of a request from `peer`, behind `hops` trusted proxies. Each proxy appends the
/// address it was reached from to `X-Forwarded-For`, so only the last `hops` entries are
/// trustworthy; anything further left may be forged by the client. A request with fewer
/// entries than that came past the proxies: its connection's address is its own.
pub fn client_of(headers: &HeaderMap, peer: Option<SocketAddr>, hops: usize) -> Option<ClientKey> {
    let peer = peer.map(|p| ClientKey::Address(crate::serve::client_key(p.ip())));
    if hops == 0 {
        return peer;
    }
    let forwarded: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let Some(entry) = forwarded.len().checked_sub(hops).map(|i| forwarded[i]) else {
        return peer;
    };
    Some(match address(entry) {
        Some(ip) => ClientKey::Address(crate::serve::client_key(ip)),
        None => ClientKey::Unparsed(truncated(entry).into()),
    })
}

/// The address of one `X-Forwarded-For` entry, in any of the forms proxies write.
fn address(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim_matches('"');
    if let Ok(ip) = entry.parse() {
        return Some(ip);
    }
    if let Some(bracketed) = entry.strip_prefix('[') {
        let (inside, after) = bracketed.split_once(']')?;
        return port_or_nothing(after)
            .then(|| inside.parse().ok())
            .flatten();
    }
    // IPv4 with a port; a bare IPv6 address (several colons) was parsed above.
    let (host, port) = entry.split_once(':')?;
    let ip: std::net::Ipv4Addr = host.parse().ok()?;
    port_or_nothing(&format!(":{port}")).then_some(IpAddr::V4(ip))
}

/// Whether what follows an address is nothing or `:port`.
fn port_or_nothing(after: &str) -> bool {
    after.is_empty()
        || after
            .strip_prefix(':')
            .is_some_and(|port| port.parse::<u16>().is_ok())
}

fn truncated(entry: &str) -> &str {
    let mut end = entry.len().min(MAX_UNPARSED);
    while !entry.is_char_boundary(end) {
        end -= 1;
    }
    &entry[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(forwarded: &str, hops: usize) -> Option<ClientKey> {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", forwarded.parse().unwrap());
        client_of(&headers, Some("10.0.0.1:443".parse().unwrap()), hops)
    }

    fn at(ip: &str) -> Option<ClientKey> {
        Some(ClientKey::Address(crate::serve::client_key(
            ip.parse().unwrap(),
        )))
    }

    #[test]
    fn every_form_proxies_write_is_read() {
        for (entry, ip) in [
            ("203.0.113.7", "203.0.113.7"),
            ("203.0.113.7:51234", "203.0.113.7"),
            ("\"203.0.113.7:51234\"", "203.0.113.7"),
            ("2001:db8::7", "2001:db8::7"),
            ("[2001:db8::7]", "2001:db8::7"),
            ("[2001:db8::7]:443", "2001:db8::7"),
            ("\"[2001:db8::7]:443\"", "2001:db8::7"),
            ("::ffff:203.0.113.7", "203.0.113.7"),
        ] {
            assert_eq!(client(entry, 1), at(ip), "{entry}");
        }
    }

    #[test]
    fn an_entry_that_is_no_address_is_keyed_on_its_text_never_on_the_proxy() {
        for entry in [
            "unknown",
            "_hidden",
            "203.0.113.7:port",
            "[2001:db8::7]x",
            "1.2.3",
        ] {
            assert_eq!(
                client(entry, 1),
                Some(ClientKey::Unparsed(entry.into())),
                "{entry}"
            );
        }
        let long = "x".repeat(200);
        assert_eq!(
            client(&long, 1),
            Some(ClientKey::Unparsed("x".repeat(MAX_UNPARSED).into()))
        );
    }

    #[test]
    fn only_the_entries_the_trusted_proxies_wrote_count() {
        assert_eq!(client("198.51.100.1, 203.0.113.7:80", 1), at("203.0.113.7"));
        assert_eq!(client("198.51.100.1, 203.0.113.7", 2), at("198.51.100.1"));
        // Fewer entries than proxies: the connection's own address.
        assert_eq!(client("203.0.113.7", 2), at("10.0.0.1"));
        assert_eq!(client("203.0.113.7", 0), at("10.0.0.1"));
    }
}
