//! Listeners, TLS files, draining and shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use super::{defaults, ConfigError, HumanDuration};

/// Where the hub listens, how long it drains before shutting down, and how
/// long it waits for streams at shutdown.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
pub struct ServerOptions {
    /// Address of the plain HTTP listener (HTTP/1.1 and h2c)
    #[arg(long, env = "SSEHUB_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// Address of the HTTPS listener (HTTP/2 and HTTP/1.1 by ALPN; HTTP/3 on the same UDP port); `none` disables it
    #[arg(long, env = "SSEHUB_TLS_LISTEN", value_name = "ADDR")]
    pub tls_listen: Option<String>,
    /// Serve HTTP/3 over QUIC on the UDP port of --tls-listen
    #[arg(long, env = "SSEHUB_HTTP3", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub http3: Option<bool>,
    /// Longest wait for streams to close at shutdown
    #[arg(long, env = "SSEHUB_SHUTDOWN_TIMEOUT", value_name = "DURATION")]
    pub shutdown_timeout: Option<HumanDuration>,
    /// Time between SIGTERM and the start of shutdown, serving as usual but with /readyz answering 503 so load balancers move new clients away first; a second SIGTERM ends it
    #[arg(long, env = "SSEHUB_DRAIN_DELAY", value_name = "DURATION")]
    pub drain_delay: Option<HumanDuration>,
    /// Address of the plain HTTP listener serving Prometheus metrics at /metrics (keep it private); `none` disables it
    #[arg(long, env = "SSEHUB_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// The browser UI at /.well-known/mercure/ui/ (its live data needs an admin token): `on`, `off`, or `auto` (on when every listener is bound to loopback)
    #[arg(long, env = "SSEHUB_UI", value_name = "auto|on|off")]
    pub ui: Option<String>,
}

layer!(ServerOptions {
    listen,
    tls_listen,
    http3,
    shutdown_timeout,
    drain_delay,
    metrics_listen,
    ui
});

/// The certificate of the HTTPS listener.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
pub struct TlsOptions {
    /// PEM certificate chain for HTTPS [default: a self-signed certificate generated in the data dir]
    #[arg(long, env = "SSEHUB_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert
    #[arg(long, env = "SSEHUB_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
}

layer!(TlsOptions { tls_cert, tls_key });

/// Where the hub listens, how long it drains before shutting down, and how
/// long it waits for streams at shutdown.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Plain HTTP listener address.
    pub listen: SocketAddr,
    /// HTTPS listener address, if enabled.
    pub tls_listen: Option<SocketAddr>,
    /// Whether HTTP/3 is served with TLS.
    pub http3: bool,
    /// Bound on graceful shutdown.
    pub shutdown_timeout: Duration,
    /// Time spent draining (`/readyz` 503) before shutdown begins.
    pub drain_delay: Duration,
    /// Metrics listener address, if enabled.
    pub metrics_listen: Option<SocketAddr>,
    /// Whether the browser UI is served (`--ui`, `auto` resolved).
    pub ui: bool,
}

/// `--ui`: whether the browser UI is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UiMode {
    /// When every listener is bound to a loopback address.
    Auto,
    /// Always.
    On,
    /// Never.
    Off,
}

impl FromStr for UiMode {
    type Err = String;

    fn from_str(s: &str) -> Result<UiMode, String> {
        match s.trim() {
            "auto" => Ok(UiMode::Auto),
            "on" => Ok(UiMode::On),
            "off" => Ok(UiMode::Off),
            other => Err(format!("unknown UI mode {other:?}: use auto, on or off")),
        }
    }
}

/// The certificate of the HTTPS listener.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// Configured certificate, if any (else generated).
    pub cert: Option<PathBuf>,
    /// Configured private key, if any.
    pub key: Option<PathBuf>,
}

impl ServerOptions {
    /// Applies the defaults and parses the addresses.
    pub(super) fn resolve(self) -> Result<ServerConfig, ConfigError> {
        let listen: String = defaults::LISTEN.or(self.listen);
        let tls_listen: String = defaults::TLS_LISTEN.or(self.tls_listen);
        let metrics_listen: String = defaults::METRICS_LISTEN.or(self.metrics_listen);
        let parse = |addr: &str| {
            addr.parse()
                .map_err(|_| ConfigError::BadAddress(addr.to_string()))
        };
        let parse_or_none = |addr: &str| match addr {
            "none" => Ok(None),
            addr => parse(addr).map(Some),
        };
        let listen = parse(&listen)?;
        let tls_listen = parse_or_none(&tls_listen)?;
        let ui = match defaults::UI.or::<String>(self.ui).parse() {
            Ok(UiMode::On) => true,
            Ok(UiMode::Off) => false,
            Ok(UiMode::Auto) => std::iter::once(listen)
                .chain(tls_listen)
                .all(|addr: SocketAddr| addr.ip().is_loopback()),
            Err(why) => {
                return Err(ConfigError::Unusable {
                    flag: defaults::UI.flag,
                    why,
                })
            }
        };
        Ok(ServerConfig {
            listen,
            tls_listen,
            ui,
            metrics_listen: parse_or_none(&metrics_listen)?,
            http3: defaults::HTTP3.or(self.http3),
            shutdown_timeout: defaults::SHUTDOWN_TIMEOUT.or(self.shutdown_timeout).0,
            drain_delay: defaults::DRAIN_DELAY.or(self.drain_delay).0,
        })
    }
}

impl TlsOptions {
    /// The files as configured; missing ones are generated at start-up.
    pub(super) fn resolve(self) -> TlsConfig {
        TlsConfig {
            cert: self.tls_cert,
            key: self.tls_key,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--ui` resolved for these listeners.
    fn ui(mode: Option<&str>, listen: &str, tls_listen: &str) -> Result<bool, ConfigError> {
        ServerOptions {
            ui: mode.map(Into::into),
            listen: Some(listen.into()),
            tls_listen: Some(tls_listen.into()),
            ..ServerOptions::default()
        }
        .resolve()
        .map(|c| c.ui)
    }

    #[test]
    fn ui_auto_is_on_only_when_every_listener_is_loopback() {
        assert!(ui(None, "127.0.0.1:1", "[::1]:2").unwrap());
        assert!(ui(Some("auto"), "127.0.0.1:1", "none").unwrap());
        assert!(!ui(None, "0.0.0.0:1", "none").unwrap());
        assert!(!ui(None, "127.0.0.1:1", "192.0.2.1:2").unwrap());
        assert!(ui(Some("on"), "0.0.0.0:1", "none").unwrap());
        assert!(!ui(Some("off"), "127.0.0.1:1", "none").unwrap());
        let err = ui(Some("yes"), "127.0.0.1:1", "none")
            .unwrap_err()
            .to_string();
        assert!(err.contains("ui") && err.contains("\"yes\""), "{err}");
    }
}
