//! The signals `serve` answers: SIGTERM and SIGINT stop the hub (a first
//! one starts draining, a second ends the drain early), SIGHUP reloads the
//! certificate.

use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::server::tls::Tls;

/// The signal handlers of `serve`, installed once so that no signal is
/// missed between two waits.
pub(super) struct Signals {
    term: Signal,
    interrupt: Signal,
    hangup: Signal,
}

impl Signals {
    /// Installs the handlers: from now on these signals no longer end the
    /// process by themselves.
    pub(super) fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    /// Waits for SIGTERM or SIGINT; reloads the certificate of `tls` on
    /// SIGHUP meanwhile.
    pub(super) async fn stop(&mut self, tls: Option<&Tls>) {
        loop {
            tokio::select! {
                _ = self.term.recv() => return,
                _ = self.interrupt.recv() => return,
                _ = self.hangup.recv() => reload(tls),
            }
        }
    }
}

/// Reloads the certificate, keeping the current one if the files are
/// unusable.
fn reload(tls: Option<&Tls>) {
    match tls.map(Tls::reload) {
        Some(Ok(f)) => tracing::info!(
            "certificate reloaded: SHA-256 {}, SPKI {}",
            f.sha256,
            f.spki_sha256
        ),
        Some(Err(e)) => {
            tracing::error!("certificate not reloaded, keeping the current one: {e:#}");
        }
        None => tracing::info!("SIGHUP: no TLS listener, nothing to reload"),
    }
}
