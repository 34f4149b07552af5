//! The tail: a dedicated connection blocked in `XREAD` that turns every new
//! stream entry into an event for this node's fan-out, in stream order.
//!
//! When Redis goes away the node reports not ready, reconnects with
//! exponential backoff and resumes after the last stream id it processed, so
//! no entry Redis accepted is skipped; it is ready again once it has read
//! the stream (Redis loading its data answers the connection, not reads). Entries are numbered without gaps (the
//! append script's `n` field): when the next entry a node reads skips
//! numbers, the stream was trimmed past what the node had read (it was away,
//! or stalled, longer than the history), and the tail reports
//! [`Tailed::Lost`] before that entry.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::{RedisError, Value};

use super::entry::{decode_entry, entry_number, text};
use super::link::{now_ms, Conn, Connector, Link};
use super::State;
use crate::history::tail::{TailSender, Tailed};
use crate::proto::event::Event;

/// How long one XREAD blocks waiting for entries.
const BLOCK: Duration = Duration::from_secs(5);
/// Entries read per XREAD.
const BATCH: usize = 1024;
/// How far before the node opened it starts following, in milliseconds.
const START_MARGIN_MS: u64 = 1000;
/// First and longest pause between reconnection attempts.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(50), Duration::from_secs(2));

/// Follows `stream` until the hub drops the tail's receiver.
pub(super) async fn run(
    connector: Connector,
    stream: String,
    tx: TailSender,
    state: Arc<State>,
    link: Arc<Link>,
) {
    let opened = Instant::now();
    let mut cursor = Cursor::default();
    let mut pause = BACKOFF.0;
    loop {
        let error = match follow(&connector, opened, &stream, &mut cursor, &tx, &state).await {
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

/// How far this node has read the stream.
#[derive(Default)]
struct Cursor {
    /// The stream id of the last entry read.
    id: Option<String>,
    /// Its number (`n` field), if it had one.
    number: Option<u64>,
}

/// Connects, then reads entries after the cursor (see [`start_id`] for the
/// first connection) for as long as the connection works. `Ok` means the
/// hub stopped.
async fn follow(
    connector: &Connector,
    opened: Instant,
    stream: &str,
    cursor: &mut Cursor,
    tx: &TailSender,
    state: &State,
) -> Result<(), RedisError> {
    let mut conn = connector.connect(BLOCK + Duration::from_secs(5)).await?;
    let clock = RedisClock::read(&mut conn).await?;
    let mut from = match cursor.id.clone() {
        Some(id) => id,
        None => start_id(clock.now(), opened.elapsed()),
    };
    cursor.id = Some(from.clone());
    // The first read does not wait for entries: the node is ready once it
    // has read the stream, not merely reached Redis (which answers `TIME`,
    // but not `XREAD`, while it loads its data).
    let mut first = true;
    loop {
        let mut xread = redis::cmd("XREAD");
        xread.arg("COUNT").arg(BATCH);
        if !first {
            xread.arg("BLOCK").arg(crate::clock::millis(BLOCK));
        }
        let reply: Value = xread
            .arg("STREAMS")
            .arg(stream)
            .arg(&from)
            .query_async(&mut conn)
            .await?;
        if std::mem::take(&mut first) && state.set_ready() {
            tracing::info!("following Redis stream {stream} after {from}");
        }
        let entries = entries_of(reply);
        // The newest entry read is as old as the tail lags; none read (the
        // read waited for new ones in vain): no lag.
        let newest = entries.last().and_then(entry_id);
        state.lagging(newest.map_or(0, |id| clock.age(&id)));
        for entry in entries {
            let Some(id) = entry_id(&entry) else {
                tracing::warn!("skipping a stream entry without an id");
                continue;
            };
            if let Some(n) = entry_number(&entry) {
                let missed = skipped(cursor.number, n);
                if missed > 0 {
                    tracing::warn!(
                        "Redis stream {stream} was trimmed past this node's position: the {missed} \
                         entries after {from} are gone; disconnecting this node's subscribers so \
                         they resume from the history"
                    );
                    if !tx.send(Tailed::Lost) {
                        return Ok(());
                    }
                }
                cursor.number = Some(n);
            }
            match decode_entry(entry) {
                Ok((seq, update)) => {
                    state.saw(&update.id);
                    if !tx.send(Tailed::Event(Arc::new(Event::new(seq, update)))) {
                        return Ok(());
                    }
                }
                Err(e) => tracing::warn!("skipping {e}"),
            }
            from = id;
            cursor.id = Some(from.clone());
        }
        if tx.is_closed() {
            return Ok(());
        }
    }
}

/// Where a node that opened `since` ago starts following, Redis's clock
/// reading `now`: the stream id of that moment on Redis's clock (so clock
/// skew between hosts does not matter), less a second. Entries appended
/// while the node was starting or could not reach Redis then still reach
/// the subscribers that connected meanwhile; a few older ones may be fanned
/// out too, which is harmless.
fn start_id(now: u64, since: Duration) -> String {
    let start = now.saturating_sub(crate::clock::millis(since) + START_MARGIN_MS);
    format!("{start}-0")
}

/// Redis's clock as seen from this host: its offset to the local clock,
/// measured once per connection (to within the round trip).
struct RedisClock {
    /// Redis's Unix time less this host's, in milliseconds.
    offset: i128,
}

impl RedisClock {
    /// Reads Redis's clock (`TIME`).
    async fn read(conn: &mut Conn) -> Result<RedisClock, RedisError> {
        let redis = now_ms(conn).await?;
        let local = crate::clock::unix_ms();
        Ok(RedisClock {
            offset: i128::from(redis) - i128::from(local),
        })
    }

    /// Redis's Unix time now, in milliseconds.
    fn now(&self) -> u64 {
        let now = i128::from(crate::clock::unix_ms()) + self.offset;
        u64::try_from(now).unwrap_or(0)
    }

    /// Milliseconds since Redis stamped stream id `id`.
    fn age(&self, id: &str) -> u64 {
        let stamped = id.split('-').next().and_then(|ms| ms.parse::<u64>().ok());
        stamped.map_or(0, |ms| self.now().saturating_sub(ms))
    }
}

/// How many entries were skipped between the entry numbered `last` and
/// the one numbered `n` (none when `last` is unknown, or when `n` does not
/// follow it, as after Redis lost its newest entries in a crash).
fn skipped(last: Option<u64>, n: u64) -> u64 {
    last.map_or(0, |last| n.saturating_sub(last + 1))
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
    fn skipped_entries_are_the_gap_in_numbers() {
        assert_eq!(skipped(None, 7), 0, "nothing read yet");
        assert_eq!(skipped(Some(6), 7), 0);
        assert_eq!(skipped(Some(6), 10), 3);
        assert_eq!(
            skipped(Some(9), 3),
            0,
            "numbers went back: no gap to report"
        );
    }
}
