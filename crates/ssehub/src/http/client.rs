//! The address a request came from, as the server saw the connection.

use std::net::IpAddr;

/// The client's IP address (the connection's peer: a proxy's, behind one),
/// put in each request's extensions by the server for every transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl ClientAddr {
    /// The address of the request whose extensions are `extensions`, if
    /// the server recorded one.
    pub fn of(extensions: &http::Extensions) -> Option<IpAddr> {
        extensions.get::<ClientAddr>().map(|c| c.0)
    }
}
