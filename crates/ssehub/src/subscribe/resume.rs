//! Where a client asks its stream to start: after its cursor, at a time
//! (`since=`), or at its last N matching updates (`rewind=`), and how each
//! becomes a position in the log ([`Start`]) without scanning the history.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{Start, EARLIEST};
use crate::history::{Log, LogError};
use crate::proto::event::Event;

/// The largest `rewind=`: a stream asks for at most this many past updates.
pub const MAX_REWIND: u64 = 10_000;

/// How many updates, matching or not, `rewind=` looks back through at
/// most, from the newest; when fewer than N of them match, the stream
/// starts at the oldest of them.
pub const REWIND_WINDOW: usize = 65_536;

/// Updates read per page while looking back.
const PAGE: usize = 512;

/// Where a client asks its stream to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// Live updates only.
    Live,
    /// After the event with this id (`Last-Event-ID`): see
    /// [`Start::resolve`].
    Cursor(String),
    /// Every retained update appended at or after this time (milliseconds
    /// since the Unix epoch), then live ones.
    Since(u64),
    /// The last this many updates the stream receives (matching its
    /// matchers, private ones only if its token grants them), then live
    /// ones.
    Rewind(u64),
}

/// Why `since=` or `rewind=` was refused (answered `400`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ResumeError {
    /// Not a time the hub reads.
    #[error("invalid since {0:?}: give an RFC 3339 time (2026-12-02T03:00:00Z, 2026-12-02T04:00:00.250+01:00) or Unix milliseconds (1764644400000)")]
    Since(String),
    /// A time before 1970.
    #[error("invalid since {0:?}: the time is before 1970 (Unix milliseconds are not negative)")]
    SinceNegative(String),
    /// Not a count.
    #[error("invalid rewind {0:?}: give a number of updates from 0 to {MAX_REWIND}")]
    Rewind(String),
    /// A negative count.
    #[error("invalid rewind {0:?}: a number of updates is not negative")]
    RewindNegative(String),
    /// More than [`MAX_REWIND`].
    #[error("invalid rewind {0}: at most {MAX_REWIND} updates")]
    RewindTooLarge(String),
    /// Both at once.
    #[error("since and rewind cannot be combined: send one of them")]
    Both,
}

impl Resume {
    /// Reads what the client asked: its cursor wins over `since` and
    /// `rewind` (a reconnecting `EventSource` sends its `Last-Event-ID` on
    /// the URL that asked for them), which may not come together. Both are
    /// checked even when the cursor wins, so a wrong one fails at once.
    pub fn read(
        cursor: Option<String>,
        since: Option<&str>,
        rewind: Option<&str>,
    ) -> Result<Resume, ResumeError> {
        let asked = match (since, rewind) {
            (Some(_), Some(_)) => return Err(ResumeError::Both),
            (Some(since), None) => Resume::Since(parse_since(since)?),
            (None, Some(rewind)) => Resume::Rewind(parse_rewind(rewind)?),
            (None, None) => Resume::Live,
        };
        Ok(cursor.map_or(asked, Resume::Cursor))
    }
}

/// `since=`: an RFC 3339 time, or milliseconds since the Unix epoch.
fn parse_since(text: &str) -> Result<u64, ResumeError> {
    if let Some(digits) = text.strip_prefix('-') {
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ResumeError::SinceNegative(text.into()));
        }
    }
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().map_err(|_| ResumeError::Since(text.into()));
    }
    let time =
        OffsetDateTime::parse(text, &Rfc3339).map_err(|_| ResumeError::Since(text.into()))?;
    u64::try_from(time.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| ResumeError::SinceNegative(text.into()))
}

/// `rewind=`: a count from 0 to [`MAX_REWIND`].
fn parse_rewind(text: &str) -> Result<u64, ResumeError> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if text.strip_prefix('-').is_some_and(digits) {
        return Err(ResumeError::RewindNegative(text.into()));
    }
    if !digits(text) {
        return Err(ResumeError::Rewind(text.into()));
    }
    match text.parse::<u64>() {
        Ok(n) if n <= MAX_REWIND => Ok(n),
        _ => Err(ResumeError::RewindTooLarge(text.into())),
    }
}

impl Start {
    /// Resolves what the client asked to a position, `wants` telling which
    /// events its stream receives (for `rewind`).
    pub async fn resolve(
        log: &dyn Log,
        resume: Resume,
        wants: impl Fn(&Event) -> bool,
    ) -> Result<Start, LogError> {
        match resume {
            Resume::Live => Ok(Start::Live),
            Resume::Cursor(id) => Start::cursor(log, id).await,
            Resume::Since(unix_ms) => Ok(after(log.before_time(unix_ms).await?.as_deref())),
            Resume::Rewind(0) => Start::cursor(log, String::new()).await,
            Resume::Rewind(n) => rewind(log, n, wants).await,
        }
    }
}

/// A stream replaying what follows `event`, or the whole retained history
/// (reported as [`EARLIEST`]) when there is none.
fn after(event: Option<&Event>) -> Start {
    match event {
        Some(event) => Start::After {
            position: Some(event.seq),
            reported: event.update.id.clone(),
        },
        None => Start::After {
            position: None,
            reported: EARLIEST.to_string(),
        },
    }
}

/// Looks back from the newest update, a page at a time, for the `n`th
/// newest that `wants`, through at most [`REWIND_WINDOW`] updates; the
/// stream starts just before it (before the oldest looked at when fewer
/// match, at the start when the history is exhausted first).
async fn rewind(log: &dyn Log, n: u64, wants: impl Fn(&Event) -> bool) -> Result<Start, LogError> {
    let mut before = None;
    let mut found = 0;
    let mut looked = 0;
    loop {
        let page = log
            .read_before(before, PAGE.min(REWIND_WINDOW - looked))
            .await?;
        let Some(oldest) = page.first() else {
            return Ok(after(None));
        };
        for (i, event) in page.iter().enumerate().rev() {
            found += u64::from(wants(event));
            if found == n {
                return start_before(log, page[..i].last(), event).await;
            }
        }
        looked += page.len();
        if looked >= REWIND_WINDOW {
            return start_before(log, None, oldest).await;
        }
        before = Some(oldest.seq);
    }
}

/// A stream starting at `first`: after `previous`, the update before it,
/// read from the log when not known.
async fn start_before(
    log: &dyn Log,
    previous: Option<&std::sync::Arc<Event>>,
    first: &Event,
) -> Result<Start, LogError> {
    if let Some(previous) = previous {
        return Ok(after(Some(previous)));
    }
    let previous = log.read_before(Some(first.seq), 1).await?;
    Ok(after(previous.last().map(|e| &**e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{MemoryLog, Retention};
    use crate::proto::update::UpdateRequest;

    /// A memory log holding `n` updates, ids `e1` to `eN` at positions 1
    /// to N.
    async fn log_of(n: u64) -> MemoryLog {
        let (log, _tail) = MemoryLog::new(Retention {
            max_count: usize::MAX,
            max_bytes: u64::MAX,
            max_age: None,
        });
        let updates = (1..=n).map(|i| {
            UpdateRequest {
                topics: vec!["t".into()],
                id: Some(format!("e{i}")),
                ..Default::default()
            }
            .validate(String::new)
            .unwrap()
        });
        log.append(updates.collect()).await.unwrap();
        log
    }

    fn after_event(seq: u64) -> Start {
        Start::After {
            position: Some(seq),
            reported: format!("e{seq}"),
        }
    }

    #[tokio::test]
    async fn rewind_counts_back_across_pages_within_its_window() {
        let log = log_of(70_000).await;
        let every_thousandth = |e: &Event| e.seq.is_multiple_of(1000);
        let rewind = |n| Start::resolve(&log, Resume::Rewind(n), every_thousandth);
        assert_eq!(rewind(5).await.unwrap(), after_event(65_999));
        // 66 of the newest 65,536 match: the stream starts at the oldest
        // of those.
        let oldest_looked_at = 70_000 - REWIND_WINDOW as u64 + 1;
        assert_eq!(
            rewind(100).await.unwrap(),
            after_event(oldest_looked_at - 1)
        );
        assert_eq!(rewind(0).await.unwrap(), after_event(70_000));

        let log = log_of(10).await;
        let none = Start::resolve(&log, Resume::Rewind(3), |_| false);
        let everything = Start::After {
            position: None,
            reported: EARLIEST.into(),
        };
        assert_eq!(none.await.unwrap(), everything, "history exhausted");
        let all = Start::resolve(&log, Resume::Rewind(10), |_| true);
        assert_eq!(all.await.unwrap(), everything, "the oldest is the first");
        let nine = Start::resolve(&log, Resume::Rewind(9), |_| true);
        assert_eq!(nine.await.unwrap(), after_event(1));
    }

    #[test]
    fn the_cursor_wins_and_bad_values_are_refused() {
        let read = |cursor: Option<&str>, since, rewind| {
            Resume::read(cursor.map(String::from), since, rewind)
        };
        assert_eq!(read(None, None, None), Ok(Resume::Live));
        assert_eq!(
            read(Some("x"), Some("5"), None),
            Ok(Resume::Cursor("x".into()))
        );
        assert_eq!(read(None, None, Some("3")), Ok(Resume::Rewind(3)));
        assert_eq!(
            read(None, Some("1764644400000"), None),
            Ok(Resume::Since(1_764_644_400_000))
        );
        assert_eq!(
            read(None, Some("2025-12-02T03:00:00.25Z"), None),
            Ok(Resume::Since(1_764_644_400_250))
        );
        assert_eq!(
            read(None, Some("2025-12-02T04:00:00+01:00"), None),
            Ok(Resume::Since(1_764_644_400_000))
        );
        assert_eq!(read(None, Some("1"), Some("1")), Err(ResumeError::Both));
        assert_eq!(
            read(Some("x"), Some("1"), Some("1")),
            Err(ResumeError::Both)
        );
        for bad in [
            "",
            "yesterday",
            "2025-12-02",
            "1.5",
            "+5",
            "2025-12-02T03:00:00",
        ] {
            assert_eq!(
                read(None, Some(bad), None),
                Err(ResumeError::Since(bad.into()))
            );
        }
        for negative in ["-1", "1969-12-31T23:59:59Z"] {
            assert_eq!(
                read(None, Some(negative), None),
                Err(ResumeError::SinceNegative(negative.into()))
            );
        }
        assert_eq!(
            read(None, None, Some("-2")),
            Err(ResumeError::RewindNegative("-2".into()))
        );
        for bad in ["", "ten", "1e3", " 5"] {
            assert_eq!(
                read(None, None, Some(bad)),
                Err(ResumeError::Rewind(bad.into()))
            );
        }
        for large in ["10001", "99999999999999999999999"] {
            assert_eq!(
                read(None, None, Some(large)),
                Err(ResumeError::RewindTooLarge(large.into()))
            );
        }
        assert_eq!(read(None, None, Some("10000")), Ok(Resume::Rewind(10_000)));
    }
}
