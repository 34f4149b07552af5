//! The tail: a dedicated connection blocked in `XREAD` that turns every new
//! stream entry into an event for this node's fan-out, in stream order.
//!
//! When Redis goes away the node reports not ready, reconnects with
//! exponential backoff and resumes after the last stream id it processed, so
//! no entry Redis accepted is skipped, unless the stream was trimmed past
//! that id meanwhile (the append script records the newest entry it
//! trimmed): then the tail reports [`Tailed::Lost`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::{RedisError, Value};
use tokio::sync::mpsc;

use super::entry::{decode_entry, text};
use super::link::{now_ms, Conn, Connector, Link};
use super::{Keys, State};
use crate::history::{Event, Tailed};

/// How long one XREAD blocks waiting for entries.
const BLOCK: Duration = Duration::from_secs(5);
/// Entries read per XREAD.
const BATCH: usize = 1024;
/// How far before the node opened it starts following, in milliseconds.
const START_MARGIN_MS: u64 = 1000;
/// First and longest pause between reconnection attempts.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(50), Duration::from_secs(2));

/// Follows the stream of `keys` until the hub drops the tail's receiver.
pub(super) async fn run(
    connector: Connector,
    keys: Keys,
    tx: mpsc::UnboundedSender<Tailed>,
    state: Arc<State>,
    link: Arc<Link>,
) {
    let opened = Instant::now();
    let mut after: Option<String> = None;
    let mut pause = BACKOFF.0;
    loop {
        let error = match follow(&connector, opened, &keys, &mut after, &tx, &state).await {
            Ok(()) => return,
            Err(e) => e,
        };
        if state.set_unready(&error.to_string()) {
            tracing::warn!("lost Redis: {error}; reconnecting");
            // The command connection is most likely broken too.
            link.forget().await;
            pause = BACKOFF.0;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(BACKOFF.1);
    }
}

/// Connects, then reads entries after `after` (see [`start_id`] for the
/// first connection) for as long as the connection works. `Ok` means the
/// hub stopped. On a reconnection, if the stream lost entries after `after`,
/// reports [`Tailed::Lost`] and goes on after the newest entry it lost.
async fn follow(
    connector: &Connector,
    opened: Instant,
    keys: &Keys,
    after: &mut Option<String>,
    tx: &mpsc::UnboundedSender<Tailed>,
    state: &State,
) -> Result<(), RedisError> {
    let stream = &keys.stream;
    let mut conn = connector.connect(BLOCK + Duration::from_secs(5)).await?;
    let mut from = match after.clone() {
        Some(id) => match trimmed_after(&mut conn, keys, &id).await? {
            Some(gone) => {
                tracing::warn!(
                    "Redis stream {stream} was trimmed past this node's position: entries after \
                     {id} up to {gone} are gone ({} ms of updates); disconnecting this node's \
                     subscribers so they resume from the history",
                    stream_ms(&gone).saturating_sub(stream_ms(&id))
                );
                if tx.send(Tailed::Lost).is_err() {
                    return Ok(());
                }
                gone
            }
            None => id,
        },
        None => start_id(&mut conn, opened.elapsed()).await?,
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
                    if tx
                        .send(Tailed::Event(Arc::new(Event::new(seq, update))))
                        .is_err()
                    {
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

/// Where a node that opened `since` ago starts following: the stream id of
/// that moment on Redis's clock (so clock skew between hosts does not
/// matter), less a second. Entries appended while the node was starting or
/// could not reach Redis then still reach the subscribers that connected
/// meanwhile; a few older ones may be fanned out too, which is harmless.
async fn start_id(conn: &mut Conn, since: Duration) -> Result<String, RedisError> {
    let start = now_ms(conn)
        .await?
        .saturating_sub(since.as_millis() as u64 + START_MARGIN_MS);
    Ok(format!("{start}-0"))
}

/// The newest entry trimmed from the stream (recorded at `keys.trimmed` by
/// the append script) if it is after `after`: entries after `after` are
/// then gone.
async fn trimmed_after(
    conn: &mut Conn,
    keys: &Keys,
    after: &str,
) -> Result<Option<String>, RedisError> {
    let trimmed: Option<String> = redis::cmd("GET")
        .arg(&keys.trimmed)
        .query_async(conn)
        .await?;
    Ok(
        trimmed.filter(|gone| match (parse_id(gone), parse_id(after)) {
            (Some(gone), Some(after)) => gone > after,
            _ => false,
        }),
    )
}

/// Stream id `MS-N` as `(MS, N)`, which order as the ids do.
fn parse_id(id: &str) -> Option<(u64, u64)> {
    let (ms, n) = id.split_once('-')?;
    Some((ms.parse().ok()?, n.parse().ok()?))
}

/// The milliseconds part of stream id `MS-N` (0 if it is not one).
fn stream_ms(id: &str) -> u64 {
    parse_id(id).map_or(0, |(ms, _)| ms)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_compare_as_numbers() {
        assert!(parse_id("10-0") > parse_id("9-5"), "not as strings");
        assert!(parse_id("5-10") > parse_id("5-9"));
        assert_eq!(parse_id("5"), None);
        assert_eq!(stream_ms("1700000000123-4"), 1_700_000_000_123);
    }
}
