//! The client's address: the TCP peer, or — when the peer is a trusted reverse proxy — the
//! address that proxy reports in `X-Forwarded-For`. Sign-in rate limits and the audit log key on
//! it, so behind nginx they see each client rather than one proxy.
//!
//! Only proxies the operator lists (`SOCMATE_TRUSTED_PROXIES`) are believed: otherwise any client
//! could send `X-Forwarded-For` and pick its own address.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;

/// An address or a CIDR block, such as `10.0.0.0/8` or `::1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpBlock {
    network: IpAddr,
    prefix: u8,
}

impl IpBlock {
    pub fn parse(text: &str) -> Option<Self> {
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix.parse::<u8>().ok()?)),
            None => (text.trim(), None),
        };
        let network: IpAddr = addr.parse().ok()?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Self { network, prefix })
    }

    pub fn contains(&self, addr: IpAddr) -> bool {
        let bits = |a: IpAddr| -> u128 {
            match a {
                IpAddr::V4(v4) => u128::from(u32::from(v4)) << 96,
                IpAddr::V6(v6) => u128::from(v6),
            }
        };
        // An IPv4 client seen through an IPv6 socket arrives as ::ffff:a.b.c.d.
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            v4 => v4,
        };
        if addr.is_ipv4() != self.network.is_ipv4() {
            return false;
        }
        // Both kinds sit in the top bits (IPv4 shifted up), so a prefix masks from the top.
        let mask = if self.prefix == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(self.prefix))
        };
        bits(addr) & mask == bits(self.network) & mask
    }
}

/// The resolved client address, in request extensions for every handler and layer after
/// [`resolve`].
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);

#[derive(Debug, Default, Clone)]
pub struct TrustedProxies(pub Vec<IpBlock>);

impl TrustedProxies {
    fn trusts(&self, addr: IpAddr) -> bool {
        self.0.iter().any(|block| block.contains(addr))
    }

    /// The client: walking `X-Forwarded-For` from the right (the hop nearest to us), the first
    /// address that is not a trusted proxy. Only consulted when the peer itself is trusted.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map_while(|hop| hop.trim().parse::<IpAddr>().ok())
            .collect();
        hops.iter()
            .rev()
            .find(|hop| !self.trusts(**hop))
            .or(hops.first())
            .copied()
            .unwrap_or(peer)
    }
}

pub async fn resolve(
    State(trusted): State<Arc<TrustedProxies>>,
    mut request: Request,
    next: Next,
) -> Response {
    if let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>() {
        let client = trusted.client(peer.ip(), request.headers());
        request.extensions_mut().insert(ClientAddr(client));
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn forwarded(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn blocks_match_their_networks_only() {
        let block = IpBlock::parse("10.0.0.0/8").unwrap();
        assert!(block.contains(ip("10.200.3.4")));
        assert!(!block.contains(ip("11.0.0.1")));
        assert!(
            IpBlock::parse("127.0.0.1")
                .unwrap()
                .contains(ip("127.0.0.1"))
        );
        assert!(
            !IpBlock::parse("127.0.0.1")
                .unwrap()
                .contains(ip("127.0.0.2"))
        );
        assert!(IpBlock::parse("fd00::/8").unwrap().contains(ip("fd12::1")));
        assert!(
            IpBlock::parse("127.0.0.1")
                .unwrap()
                .contains(ip("::ffff:127.0.0.1"))
        );
        assert!(IpBlock::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        for bad in ["", "10.0.0.0/33", "nonsense", "10.0.0.0/x", "::/129"] {
            assert!(IpBlock::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let none = TrustedProxies::default();
        assert_eq!(
            none.client(ip("127.0.0.1"), &forwarded("203.0.113.7")),
            ip("127.0.0.1")
        );

        let nginx = TrustedProxies(vec![IpBlock::parse("127.0.0.1").unwrap()]);
        assert_eq!(
            nginx.client(ip("127.0.0.1"), &forwarded("203.0.113.7")),
            ip("203.0.113.7")
        );
        // A client that prepends its own entry cannot choose its address: the proxy appended
        // the real one, and the walk starts from the right.
        assert_eq!(
            nginx.client(ip("127.0.0.1"), &forwarded("1.2.3.4, 203.0.113.7")),
            ip("203.0.113.7")
        );
        // Not from the proxy: the header is ignored.
        assert_eq!(
            nginx.client(ip("198.51.100.9"), &forwarded("1.2.3.4")),
            ip("198.51.100.9")
        );
        // Garbage after a valid hop stops the walk; nothing usable: the peer.
        assert_eq!(
            nginx.client(ip("127.0.0.1"), &forwarded("junk")),
            ip("127.0.0.1")
        );
    }
}
