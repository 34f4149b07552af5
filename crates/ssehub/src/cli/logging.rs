//! Where and how `serve` logs: to stderr, at the levels `SSEHUB_LOG` sets
//! (an env filter such as `info` or `ssehub=debug,h2=info`; `info` when
//! unset or unreadable), as text or as one JSON object per line.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the log subscriber for the rest of the process. Text is
/// colored only on a terminal, so files and journals get plain lines.
pub(super) fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env("SSEHUB_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        // Each line: timestamp, level, target, then the message and the
        // event's fields at the top level.
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
