//! Who a limit counts: a client address, or a token's subject.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

/// A client address as the limits count it: an IPv4 address, or the /64
/// network of an IPv6 address. One IPv6 host is commonly given a whole /64,
/// so counting single IPv6 addresses would let it appear as many clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// An IPv4 client (an IPv4-mapped IPv6 address counts as its IPv4 one).
    V4(Ipv4Addr),
    /// The first 64 bits of an IPv6 client's address.
    V6Network(u64),
}

impl From<IpAddr> for ClientKey {
    fn from(ip: IpAddr) -> ClientKey {
        match ip {
            IpAddr::V4(v4) => ClientKey::V4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey::V4(v4),
                None => ClientKey::V6Network(
                    u64::try_from(v6.to_bits() >> 64).expect("the top 64 bits fit"),
                ),
            },
        }
    }
}

impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientKey::V4(v4) => write!(f, "{v4}"),
            ClientKey::V6Network(net) => {
                let ip = std::net::Ipv6Addr::from_bits(u128::from(*net) << 64);
                write!(f, "{ip}/64")
            }
        }
    }
}

/// Who sends a request, for limits counted per sender: the token's subject
/// when it names one, else the client's address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Sender {
    /// A token's `sub`.
    Subject(Arc<str>),
    /// A client without a subject.
    Client(ClientKey),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_count_by_network() {
        let key = |s: &str| ClientKey::from(s.parse::<IpAddr>().unwrap());
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:192.0.2.7"), key("192.0.2.7"));
        assert_eq!(key("2001:db8:1:2::1").to_string(), "2001:db8:1:2::/64");
        assert_eq!(key("192.0.2.7").to_string(), "192.0.2.7");
    }
}
