//! `ssehub publish`: one update POSTed to a hub as a Mercure form, the id
//! the hub gave it printed.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method};
use http_body_util::{BodyExt, Limited};

use super::client::{Action, HubArgs};

/// Longest wait for the hub's answer, from connecting to its last byte.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Longest id read back.
const MAX_ID: usize = 4096;

/// The options of `ssehub publish`.
#[derive(Debug, clap::Args)]
pub(super) struct PublishArgs {
    #[command(flatten)]
    hub: HubArgs,
    /// Topic of the update (repeatable; the first is its canonical topic).
    #[arg(long, value_name = "TOPIC", required = true)]
    topic: Vec<String>,
    /// The update's data [default: read from stdin].
    #[arg(
        long,
        value_name = "TEXT",
        conflicts_with = "data_file",
        allow_hyphen_values = true
    )]
    data: Option<String>,
    /// Read the update's data from this file.
    #[arg(long, value_name = "FILE")]
    data_file: Option<PathBuf>,
    /// The SSE event type (`event:`) [default: none, so clients see "message"].
    #[arg(long = "type", value_name = "TYPE")]
    event_type: Option<String>,
    /// The update's id [default: one the hub generates].
    #[arg(long, value_name = "ID")]
    id: Option<String>,
    /// Deliver only to subscribers whose token grants one of the topics.
    #[arg(long)]
    private: bool,
    /// Reconnection time to advertise to subscribers (`retry:`), in milliseconds.
    #[arg(long, value_name = "MS")]
    retry: Option<u64>,
    /// Publish the data's bytes as they are, whatever they hold, as
    /// `data:application/octet-stream;base64,…` (the binary convention the
    /// JavaScript client delivers as a `Uint8Array`).
    #[arg(long)]
    base64: bool,
    /// Print a JSON object ({"id":…,"topics":[…]}) instead of the id alone.
    #[arg(long)]
    json: bool,
}

/// What starts the data of an update that carries bytes (`--base64`).
const BINARY_PREFIX: &str = "data:application/octet-stream;base64,";

impl PublishArgs {
    /// Publishes and prints the id.
    pub(super) fn run(self) -> anyhow::Result<()> {
        let data = self.data()?;
        let mut form = form_urlencoded::Serializer::new(String::new());
        for topic in &self.topic {
            form.append_pair("topic", topic);
        }
        form.append_pair("data", &data);
        if self.private {
            form.append_pair("private", "on");
        }
        if let Some(id) = &self.id {
            form.append_pair("id", id);
        }
        if let Some(event_type) = &self.event_type {
            form.append_pair("type", event_type);
        }
        if let Some(retry) = self.retry {
            form.append_pair("retry", &retry.to_string());
        }
        let body = Bytes::from(form.finish());
        let hub = self.hub.hub()?;
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let id = runtime.block_on(async {
            let (_connection, response) = hub
                .send(Method::POST, None, headers, body, Action::Publish, TIMEOUT)
                .await?;
            let body = tokio::time::timeout(
                TIMEOUT,
                Limited::new(response.into_body(), MAX_ID).collect(),
            )
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "the hub at {} accepted the update but did not send its id within {TIMEOUT:?}",
                    hub.url()
                )
            })?
            .map_err(|e| {
                anyhow::anyhow!(
                    "the hub at {} accepted the update but its answer broke off: {e}",
                    hub.url()
                )
            })?;
            anyhow::Ok(String::from_utf8_lossy(&body.to_bytes()).trim().to_string())
        })?;
        let line = if self.json {
            serde_json::json!({ "id": id, "topics": self.topic }).to_string()
        } else {
            id
        };
        // The update is published whether or not stdout can take its id.
        let _ = writeln!(std::io::stdout(), "{line}");
        Ok(())
    }

    /// The data: `--data`, the file of `--data-file`, or stdin; under
    /// `--base64`, their bytes encoded by the binary convention.
    fn data(&self) -> anyhow::Result<String> {
        let (bytes, from) = self.bytes()?;
        if self.base64 {
            use base64::Engine as _;
            let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
            return Ok(format!("{BINARY_PREFIX}{encoded}"));
        }
        String::from_utf8(bytes).map_err(|_| {
            anyhow::anyhow!(
                "the data from {from} is not UTF-8 text: add --base64 to publish its bytes as they are"
            )
        })
    }

    /// The data's bytes, and where they came from.
    fn bytes(&self) -> anyhow::Result<(Vec<u8>, String)> {
        if let Some(data) = &self.data {
            return Ok((data.clone().into_bytes(), "--data".to_string()));
        }
        Ok(match &self.data_file {
            Some(path) => (
                std::fs::read(path).map_err(|e| {
                    anyhow::anyhow!(
                        "cannot read --data-file {}: {e}: give a readable file, or the data with --data TEXT",
                        path.display()
                    )
                })?,
                format!("--data-file {}", path.display()),
            ),
            None => {
                let mut stdin = std::io::stdin();
                if stdin.is_terminal() {
                    eprintln!(
                        "reading the data from stdin (end it with Ctrl-D), or pass --data TEXT"
                    );
                }
                let mut bytes = Vec::new();
                stdin
                    .read_to_end(&mut bytes)
                    .map_err(|e| anyhow::anyhow!("cannot read the data from stdin: {e}: pass --data TEXT or --data-file FILE"))?;
                (bytes, "stdin".to_string())
            }
        })
    }
}
