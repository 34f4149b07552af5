//! The tail: a dedicated connection blocked in `XREAD` that turns every new
//! stream entry into an event for this node's fan-out, in stream order.
//!
//! When Redis goes away the node reports not ready, reconnects with
//! exponential backoff and resumes after the last stream id it processed, so
//! no entry Redis accepted is skipped.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{Client, RedisError, Value};
use tokio::sync::mpsc;

use super::entry::{decode_entry, text};
use super::link::{connection_config, Link};
use super::State;
use crate::history::Event;

/// How long one XREAD blocks waiting for entries.
const BLOCK: Duration = Duration::from_secs(5);
/// Entries read per XREAD.
const BATCH: usize = 1024;
/// First and longest pause between reconnection attempts.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(50), Duration::from_secs(2));

/// Follows `stream` until the hub drops the tail's receiver.
pub(super) async fn run(
    client: Client,
    stream: String,
    tx: mpsc::UnboundedSender<Arc<Event>>,
    state: Arc<State>,
    link: Arc<Link>,
) {
    let mut after: Option<String> = None;
    let mut pause = BACKOFF.0;
    loop {
        let error = match follow(&client, &stream, &mut after, &tx, &state).await {
            Ok(()) => return,
            Err(e) => e,
        };
        if state.set_unready(&error.to_string()) {
            tracing::warn!("lost Redis: {error}; reconnecting");
            // The command connection is most likely broken too.
            link.forget().await;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(BACKOFF.1);
        if state.is_ready() {
            pause = BACKOFF.0;
        }
    }
}

/// Connects, then reads entries after `after` (the stream's newest entry at
/// the first connection) for as long as the connection works. `Ok` means the
/// hub stopped.
async fn follow(
    client: &Client,
    stream: &str,
    after: &mut Option<String>,
    tx: &mpsc::UnboundedSender<Arc<Event>>,
    state: &State,
) -> Result<(), RedisError> {
    let config = connection_config(Some(BLOCK + Duration::from_secs(5)));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    let mut from = match after.take() {
        Some(id) => id,
        None => newest(&mut conn, stream).await?,
    };
    *after = Some(from.clone());
    if state.set_ready() {
        tracing::info!("following Redis stream {stream} after {from}");
    }
    loop {
        let reply: Value = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(BATCH)
            .arg("BLOCK")
            .arg(BLOCK.as_millis() as u64)
            .arg("STREAMS")
            .arg(stream)
            .arg(&from)
            .query_async(&mut conn)
            .await?;
        for entry in entries_of(reply) {
            let Some(id) = entry_id(&entry) else {
                tracing::warn!("skipping a stream entry without an id");
                continue;
            };
            match decode_entry(entry) {
                Ok((seq, update)) => {
                    state.saw(&update.id);
                    if tx.send(Arc::new(Event::new(seq, update))).is_err() {
                        return Ok(());
                    }
                }
                Err(e) => tracing::warn!("skipping {e}"),
            }
            from = id;
            *after = Some(from.clone());
        }
        if tx.is_closed() {
            return Ok(());
        }
    }
}

/// The id of the stream's newest entry, or `0-0` when it is empty.
async fn newest(conn: &mut MultiplexedConnection, stream: &str) -> Result<String, RedisError> {
    let reply: Value = redis::cmd("XREVRANGE")
        .arg(stream)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(conn)
        .await?;
    Ok(entries_of_range(reply)
        .into_iter()
        .next()
        .and_then(|e| entry_id(&e))
        .unwrap_or_else(|| "0-0".into()))
}

/// The entries of an XREAD reply for one stream (nil when it timed out).
fn entries_of(reply: Value) -> Vec<Value> {
    let Value::Array(streams) = reply else {
        return Vec::new();
    };
    streams
        .into_iter()
        .filter_map(|s| match s {
            Value::Array(mut pair) if pair.len() == 2 => pair.pop(),
            _ => None,
        })
        .flat_map(entries_of_range)
        .collect()
}

fn entries_of_range(reply: Value) -> Vec<Value> {
    match reply {
        Value::Array(entries) => entries,
        _ => Vec::new(),
    }
}

fn entry_id(entry: &Value) -> Option<String> {
    match entry {
        Value::Array(parts) => parts.first().cloned().and_then(text),
        _ => None,
    }
}
