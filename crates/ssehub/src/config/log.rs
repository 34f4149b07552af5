//! How the hub writes its logs (the level is `SSEHUB_LOG`, an env filter).

use std::str::FromStr;

use serde::Deserialize;

use super::{defaults, ConfigError};

/// How log lines are written.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
pub struct LogOptions {
    /// Format of the log lines on stderr: `text` (for people) or `json` (one object per line: timestamp, level, target, message and fields)
    #[arg(long, env = "SSEHUB_LOG_FORMAT", value_name = "text|json")]
    pub log_format: Option<String>,
}

layer!(LogOptions { log_format });

/// How log lines are written.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// The line format.
    pub format: LogFormat,
}

/// The format of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<LogFormat, String> {
        match s.trim() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("unknown log format {other:?}: use text or json")),
        }
    }
}

impl LogOptions {
    /// Applies the default and checks the value.
    pub(super) fn resolve(self) -> Result<LogConfig, ConfigError> {
        let format = defaults::LOG_FORMAT
            .or(self.log_format)
            .parse()
            .map_err(|why| ConfigError::Unusable {
                flag: defaults::LOG_FORMAT.flag,
                why,
            })?;
        Ok(LogConfig { format })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_and_others_are_named() {
        let resolve = |given: Option<&str>| {
            LogOptions {
                log_format: given.map(Into::into),
            }
            .resolve()
        };
        assert_eq!(resolve(None).unwrap().format, LogFormat::Text);
        assert_eq!(resolve(Some("json")).unwrap().format, LogFormat::Json);
        let err = resolve(Some("yaml")).unwrap_err().to_string();
        assert!(
            err.contains("log-format") && err.contains("\"yaml\""),
            "{err}"
        );
    }
}
