//! The disk log's recovery (`history::DiskLog::open`): the record decoder
//! and the segment scan on damaged segment files.
//!
//! Input: a mode byte. Damage mode (high bit clear): its low bits pick how
//! many of a fixed set of updates are encoded (`encode_record`) into a
//! segment file, the next byte its first position, then each four bytes a
//! change to the file (flip, set, truncate, insert a run). Raw mode (high
//! bit set): a byte for the first position, one for the retention, then the
//! file's bytes as they are. The file is opened as a log in a temporary
//! data directory. Properties:
//!
//! * opening recovers: it neither panics nor fails, whatever the bytes; a
//!   segment named after a position no log reaches is set aside;
//! * what it keeps is consecutive positions from the segment's first, and
//!   finding any of their ids gives the first position holding it;
//! * with damage, the records the damage left whole (those ending before
//!   the first changed byte) are kept, exactly as encoded, and nothing
//!   after them: a damaged record is never read as another;
//! * the log then takes an append at the next position, and opened again
//!   holds the same records plus that one (recovery cut the file for good).
//!
//! Set `TMPDIR` to a memory file system (`/dev/shm`) to spare the disk.

use std::sync::Arc;

use ssehub::history::disk::{encode_record, segment_file_name, FORMAT, MAX_FIRST_POSITION};
use ssehub::history::{DiskLog, Log, Retention};
use ssehub::proto::event::Event;
use ssehub::proto::update::Update;

use super::input::Input;

/// Positions a segment may start at, picked by a byte: the first, others,
/// around the last one a log accepts, and the last ones a `u64` holds.
const FIRST_POSITIONS: &[u64] = &[
    1,
    2,
    1000,
    0,
    MAX_FIRST_POSITION - 2,
    MAX_FIRST_POSITION,
    MAX_FIRST_POSITION + 1,
    u64::MAX - 2,
    u64::MAX,
];

/// Most changes made to one segment.
const CHANGES: usize = 16;

/// Most events read back at once (far more than a segment here holds).
const READ_LIMIT: usize = 100_000;

/// When the encoded records were written (milliseconds since the epoch).
pub(crate) const WRITTEN_MS: u64 = 1_700_000_000_000;

/// Checks one input; see the module documentation.
pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    let mode = input.byte();
    let first = FIRST_POSITIONS[usize::from(input.byte()) % FIRST_POSITIONS.len()];
    if mode & 0x80 == 0 {
        let updates = updates();
        let count = 1 + usize::from(mode) % updates.len();
        let records: Vec<(u64, Update)> = (first..=u64::MAX).zip(updates).take(count).collect();
        let mut encoded = Vec::new();
        let mut ends = Vec::new();
        for (seq, update) in &records {
            encode_record(*seq, WRITTEN_MS + seq % 1000, update, &mut encoded);
            ends.push(encoded.len());
        }
        let mut damaged = encoded.clone();
        for change in input.rest().chunks(4).take(CHANGES) {
            apply(&mut damaged, change);
        }
        let intact = encoded
            .iter()
            .zip(&damaged)
            .position(|(a, b)| a != b)
            .unwrap_or(encoded.len().min(damaged.len()));
        let whole = if usable(first) {
            ends.iter().filter(|&&end| end <= intact).count()
        } else {
            0
        };
        let kept = recover(first, &damaged, &unlimited());
        let kept: Vec<(u64, Update)> = kept.iter().map(|e| (e.seq, e.update.clone())).collect();
        assert_eq!(
            kept,
            records[..whole],
            "damage from byte {intact} of {ends:?}"
        );
    } else {
        let retention = match input.byte() % 3 {
            0 => unlimited(),
            1 => Retention {
                max_count: 2,
                ..unlimited()
            },
            _ => Retention {
                max_age: Some(std::time::Duration::from_secs(3600)),
                ..unlimited()
            },
        };
        recover(first, input.rest(), &retention);
    }
}

/// Keeps everything.
fn unlimited() -> Retention {
    Retention {
        max_count: usize::MAX,
        max_bytes: u64::MAX,
        max_age: None,
    }
}

/// Applies one change (four bytes: kind, position, value) to `segment`.
fn apply(segment: &mut Vec<u8>, change: &[u8]) {
    let mut change = Input::new(change);
    let kind = change.byte();
    let at = usize::from(change.u16()) % (segment.len() + 1);
    let value = change.byte();
    match kind % 4 {
        0 if at < segment.len() => segment[at] ^= value.max(1),
        1 if at < segment.len() => segment[at] = value,
        2 => segment.truncate(at),
        // A run of one byte value: it can never forge a record (a CRC).
        3 => {
            let run = usize::from(value % 64) + 1;
            segment.splice(at..at, std::iter::repeat_n(kind, run));
        }
        _ => {}
    }
}

/// Opens a log whose one segment, at position `first`, holds `segment`;
/// checks what it recovered and returns it.
fn recover(first: u64, segment: &[u8], retention: &Retention) -> Vec<Arc<Event>> {
    let data_dir = tempfile::tempdir().expect("a temporary directory");
    let log_dir = data_dir.path().join("log");
    std::fs::create_dir(&log_dir).expect("the log directory");
    std::fs::write(log_dir.join("FORMAT"), format!("{FORMAT}\n")).expect("FORMAT");
    std::fs::write(log_dir.join(segment_file_name(first)), segment).expect("the segment");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let open = || DiskLog::open(data_dir.path(), retention.clone());
        let (log, _tail) = open().expect("a damaged segment is recovered, not refused");
        let kept = read_all(&log).await;
        let kept_all = kept.first().is_none_or(|e| e.seq == first);
        for (i, event) in kept.iter().enumerate() {
            assert_eq!(
                Some(event.seq),
                kept[0].seq.checked_add(i as u64),
                "positions"
            );
            let earliest = kept.iter().find(|e| e.update.id == event.update.id);
            let found = log.position(&event.update.id).await.expect("the log reads");
            // An id whose earliest update retention dropped is forgotten.
            if kept_all || found.is_some() {
                assert_eq!(
                    found,
                    earliest.map(|e| e.seq),
                    "finding {:?}",
                    event.update.id
                );
            }
        }
        let holding = log.holding().await;
        assert_eq!(holding.events, Some(kept.len() as u64), "the count held");
        let unlimited = retention.max_count == usize::MAX && retention.max_age.is_none();
        // Past what it kept; where it started when it kept nothing, unless
        // retention dropped it all.
        let next = match kept.last() {
            Some(last) => last.seq + 1,
            None if usable(first) => first,
            None => 1,
        };
        let added = log
            .append(vec![updates().remove(0)])
            .await
            .expect("a recovered log takes appends");
        let at = added.first().map(|e| e.seq);
        if kept.is_empty() && !unlimited {
            assert!(at >= Some(next), "appended at {at:?}, before {next}");
        } else {
            assert_eq!(at, Some(next), "the next position");
        }
        log.close().await;
        drop(log);
        if unlimited {
            let (log, _tail) = open().expect("a recovered log opens again");
            let again = read_all(&log).await;
            let expected = kept.iter().chain(&added);
            assert!(
                again
                    .iter()
                    .map(|e| (e.seq, &e.update))
                    .eq(expected.map(|e| (e.seq, &e.update))),
                "opened again, the log holds another history"
            );
            log.close().await;
        }
        kept
    })
}

/// Whether a segment may start at `first`: one starting elsewhere is set
/// aside, not read.
fn usable(first: u64) -> bool {
    (1..=MAX_FIRST_POSITION).contains(&first)
}

/// Every event the log holds.
async fn read_all(log: &DiskLog) -> Vec<Arc<Event>> {
    log.read_after(None, READ_LIMIT)
        .await
        .expect("the log reads")
}

/// The updates damage mode encodes, with every optional field in some.
pub(crate) fn updates() -> Vec<Update> {
    let update = |id: &str, topics: &[&str], data: &str| Update {
        id: id.to_owned(),
        topics: topics.iter().map(|t| (*t).to_owned()).collect(),
        data: data.to_owned(),
        private: false,
        event_type: None,
        retry: None,
        received: None,
    };
    vec![
        update("urn:uuid:1", &["https://example.com/books/1"], "first"),
        Update {
            private: true,
            event_type: Some("note".to_owned()),
            retry: Some(3000),
            ..update("2", &["https://example.com/a", "urn:alt"], "two\nlines\r\n")
        },
        update("3", &["/relative"], ""),
        Update {
            event_type: Some(String::new()),
            ..update("é-4", &["https://example.com/é"], &"long ".repeat(80))
        },
        update(
            "urn:uuid:1",
            &["https://example.com/books/1"],
            "the first id again",
        ),
        Update {
            retry: Some(0),
            ..update("6", &[], "no topic, as a store may hold")
        },
    ]
}
