//! The `--config` TOML file: one flat table whose keys are the settings'
//! names in snake_case.

use std::path::Path;

use clap::Args;

use super::{ConfigError, Options};

/// Reads the settings of a TOML file, refusing a key that names no setting.
pub(super) fn read(path: &Path) -> Result<Options, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text).map_err(|message| ConfigError::Toml {
        path: path.to_path_buf(),
        message,
    })
}

/// Parses a file's text; the error says what is wrong, naming the key.
///
/// [`Options`] is made of groups flattened into one table, and serde
/// cannot refuse unknown keys through a flattened struct, so the keys are
/// checked here against the settings' names, which clap and serde share.
fn parse(text: &str) -> Result<Options, String> {
    let message = |e: toml::de::Error| e.message().to_string();
    let table: toml::Table = text.parse().map_err(message)?;
    let settings = Options::augment_args(clap::Command::new("ssehub"));
    let known: Vec<&str> = settings
        .get_arguments()
        .map(|arg| arg.get_id().as_str())
        .collect();
    if let Some(key) = table.keys().find(|key| !known.contains(&key.as_str())) {
        let expected: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
        return Err(format!(
            "unknown field `{key}`, expected one of {}",
            expected.join(", ")
        ));
    }
    table.try_into().map_err(message)
}
