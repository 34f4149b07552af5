//! Measures a reconnecting client's replay: the time to the response headers,
//! to the first replayed event, and to the last of N events.
//!
//! `ssehub-bench replay URL TOPIC LAST_EVENT_ID N TOKEN`

use std::time::Instant;

use anyhow::{bail, Context};
use ssehub::proto::sse::Parser;

/// What `ssehub-bench replay` measures.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Subscribe URL of the hub.
    url: String,
    /// Topic to subscribe to.
    topic: String,
    /// `Last-Event-ID` sent: replay starts after it.
    last_event_id: String,
    /// Events to wait for.
    n: usize,
    /// Subscriber token.
    token: String,
}

/// Subscribes with `Last-Event-ID` and prints how long the replay took.
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let Args {
        url,
        topic,
        last_event_id,
        n,
        token,
    } = args;
    let started = Instant::now();
    let mut res = reqwest::Client::new()
        .get(&url)
        .query(&[("topic", &topic)])
        .bearer_auth(&token)
        .header("last-event-id", &last_event_id)
        .send()
        .await
        .context("subscribe")?;
    let headers = started.elapsed();
    if !res.status().is_success() {
        bail!("status {}", res.status());
    }
    let mut parser = Parser::new();
    let (mut received, mut first) = (0usize, None);
    while received < n {
        let Some(chunk) = res.chunk().await.context("read")? else {
            bail!("the stream ended after {received} of {n} events");
        };
        received += parser.feed(&chunk).len();
        if received > 0 && first.is_none() {
            first = Some(started.elapsed());
        }
    }
    let all = started.elapsed();
    println!(
        "headers {:.2} ms, first event {:.2} ms, {n} events {:.1} ms ({:.0} events/s)",
        headers.as_secs_f64() * 1e3,
        first.unwrap_or_default().as_secs_f64() * 1e3,
        all.as_secs_f64() * 1e3,
        n as f64 / all.as_secs_f64()
    );
    Ok(())
}
