//! Recovery: a disk log whose segments are truncated or have bytes
//! overwritten at random positions (anywhere, or on a record boundary)
//! opens with every record before the first damage, as documented in
//! `docs/architecture.md` ("Recovery"): the damaged segment is cut to its
//! valid prefix, every later segment is set aside as `*.seg.damaged`, the
//! log appends after the kept records (through new segments), reopens
//! with exactly those, and a hub starts on the directory and serves them.
//!
//! The expected records come from the undamaged files, read with the
//! documented framing only (`len u32 LE | crc u32 | body`), not the hub's
//! decoder.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use ssehub::history::{DiskLog, Log, Retention};
use ssehub::proto::event::Event;
use ssehub::proto::update::{Update, UpdateRequest};

use super::{check, ids_until, publish, runtime};
use crate::common::{publisher_token, TestHub};

/// Retention whose count makes segments of 64 records (an eighth, at
/// least 64), so a case spans up to four segments, and never trims.
fn retention() -> Retention {
    Retention {
        max_count: 512,
        max_bytes: u64::MAX,
        max_age: None,
    }
}

/// Records appended after recovery: enough to fill two new segments.
const AFTER: usize = 140;

/// The topic of every update.
const TOPIC: &str = "urn:recovery";

/// One update to append: its data length and optional fields.
#[derive(Debug, Clone)]
struct Spec {
    data_len: usize,
    private: bool,
    event_type: bool,
    retry: bool,
    alternate: bool,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    /// The file ends there.
    Truncate,
    /// The byte there is XORed with a non-zero mask.
    Overwrite(u8),
}

/// One damage: its kind, which segment, and where in it.
#[derive(Debug, Clone)]
struct Hit {
    kind: Kind,
    segment: Index,
    at: Index,
    /// `at` picks a record boundary rather than any byte.
    on_boundary: bool,
}

#[derive(Debug, Clone)]
struct Case {
    updates: Vec<Spec>,
    /// Appends of 1 to 8 updates, cycled.
    batches: Vec<usize>,
    hits: Vec<Hit>,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        0..300usize,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(data_len, private, event_type, retry, alternate)| Spec {
            data_len,
            private,
            event_type,
            retry,
            alternate,
        })
}

fn hit() -> impl Strategy<Value = Hit> {
    (
        prop_oneof![Just(Kind::Truncate), (1..=255u8).prop_map(Kind::Overwrite)],
        any::<Index>(),
        any::<Index>(),
        any::<bool>(),
    )
        .prop_map(|(kind, segment, at, on_boundary)| Hit {
            kind,
            segment,
            at,
            on_boundary,
        })
}

fn case() -> impl Strategy<Value = Case> {
    (
        vec(spec(), 1..=220),
        vec(1..=8usize, 1..=4),
        vec(hit(), 1..=2),
    )
        .prop_map(|(updates, batches, hits)| Case {
            updates,
            batches,
            hits,
        })
}

fn update(id: String, spec: &Spec) -> Update {
    let mut topics = vec![TOPIC.to_string()];
    if spec.alternate {
        topics.push(format!("{TOPIC}:alternate"));
    }
    UpdateRequest {
        topics,
        id: Some(id),
        data: "d".repeat(spec.data_len),
        private: spec.private,
        event_type: spec.event_type.then(|| "kind".to_string()),
        retry: spec.retry.then(|| "1500".to_string()),
    }
    .validate(String::new)
    .unwrap()
}

/// What an update holds that the log must give back.
type Content = (
    String,
    Vec<String>,
    String,
    bool,
    Option<String>,
    Option<u64>,
);

fn content(u: &Update) -> Content {
    (
        u.id.clone(),
        u.topics.clone(),
        u.data.clone(),
        u.private,
        u.event_type.clone(),
        u.retry,
    )
}

async fn append_all(log: &DiskLog, updates: &[Update], batches: &[usize]) {
    let mut rest = updates;
    for size in batches.iter().cycle() {
        if rest.is_empty() {
            return;
        }
        let (batch, tail) = rest.split_at((*size).min(rest.len()));
        log.append(batch.to_vec()).await.unwrap();
        rest = tail;
    }
}

async fn read_all(log: &DiskLog) -> Vec<Arc<Event>> {
    let mut out: Vec<Arc<Event>> = Vec::new();
    loop {
        let page = log
            .read_after(out.last().map(|e| e.seq), 100)
            .await
            .unwrap();
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

/// The segment files, in order.
fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir.join("log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    found.sort();
    found
}

/// Where each record of a segment ends, read from its framing.
fn record_ends(bytes: &[u8]) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        at += 8 + usize::try_from(len).unwrap();
        ends.push(at);
    }
    assert_eq!(at, bytes.len(), "a segment ends with a whole record");
    ends
}

/// Applies `hits` to the segment files, whose records end at `ends`;
/// returns, per segment, where its first damage is (its length if none).
fn damage(files: &[PathBuf], ends: &[Vec<usize>], hits: &[Hit]) -> Vec<usize> {
    let mut contents: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    let mut cuts: Vec<usize> = contents.iter().map(Vec::len).collect();
    for hit in hits {
        let s = hit.segment.index(files.len());
        let bytes = &mut contents[s];
        if bytes.is_empty() {
            continue;
        }
        let at = if hit.on_boundary {
            let starts: Vec<usize> = [0]
                .into_iter()
                .chain(ends[s].iter().copied())
                .filter(|start| *start < bytes.len())
                .collect();
            starts[hit.at.index(starts.len())]
        } else {
            hit.at.index(bytes.len())
        };
        match hit.kind {
            Kind::Truncate => bytes.truncate(at),
            Kind::Overwrite(mask) => bytes[at] ^= mask,
        }
        cuts[s] = cuts[s].min(at);
    }
    for (file, bytes) in files.iter().zip(&contents) {
        std::fs::write(file, bytes).unwrap();
    }
    cuts
}

/// What recovery must give: the kept records (as indexes into the
/// appended updates), the length of the segment where it stopped, and the
/// segments after it (set aside).
struct Expected {
    kept: usize,
    /// The segment cut short and its valid prefix, if any was.
    cut: Option<(PathBuf, u64)>,
    aside: Vec<PathBuf>,
}

fn expected(files: &[PathBuf], ends: &[Vec<usize>], cuts: &[usize]) -> Expected {
    let mut kept = 0;
    for (s, (seg_ends, cut)) in ends.iter().zip(cuts).enumerate() {
        let whole = seg_ends.iter().take_while(|end| *end <= cut).count();
        kept += whole;
        if whole < seg_ends.len() {
            let prefix = if whole == 0 { 0 } else { seg_ends[whole - 1] };
            return Expected {
                kept,
                cut: Some((files[s].clone(), prefix as u64)),
                aside: files[s + 1..].to_vec(),
            };
        }
    }
    Expected {
        kept,
        cut: None,
        aside: Vec::new(),
    }
}

async fn check_case(case: &Case) {
    let dir = tempfile::tempdir().unwrap();
    let updates: Vec<Update> = case
        .updates
        .iter()
        .enumerate()
        .map(|(i, spec)| update(format!("id-{i}"), spec))
        .collect();
    {
        let (log, _tail) = DiskLog::open(dir.path(), retention()).unwrap();
        append_all(&log, &updates, &case.batches).await;
    }
    let files = segments(dir.path());
    let ends: Vec<Vec<usize>> = files
        .iter()
        .map(|f| record_ends(&std::fs::read(f).unwrap()))
        .collect();
    let cuts = damage(&files, &ends, &case.hits);
    let want = expected(&files, &ends, &cuts);

    let (log, _tail) = DiskLog::open(dir.path(), retention()).unwrap();
    let recovered: Vec<Content> = read_all(&log)
        .await
        .iter()
        .map(|e| content(&e.update))
        .collect();
    let kept: Vec<Content> = updates[..want.kept].iter().map(content).collect();
    assert_eq!(recovered, kept, "the records before the first damage");
    if let Some((file, len)) = &want.cut {
        let now = std::fs::metadata(file).unwrap().len();
        assert_eq!(now, *len, "{} cut to its valid prefix", file.display());
    }
    for file in &want.aside {
        assert!(!file.exists(), "{} is still a segment", file.display());
        assert!(
            file.with_extension("seg.damaged").exists(),
            "{} set aside",
            file.display()
        );
    }
    for (i, u) in updates.iter().enumerate() {
        let found = log.position(&u.id).await.unwrap();
        assert_eq!(found.is_some(), i < want.kept, "position of {}", u.id);
    }

    // Appends continue after the kept records, through new segments, and
    // a reopened log holds exactly the kept and the new records.
    let more: Vec<Update> = (0..AFTER)
        .map(|i| update(format!("new-{i}"), &case.updates[i % case.updates.len()]))
        .collect();
    append_all(&log, &more, &[16]).await;
    let mut all = kept;
    all.extend(more.iter().map(content));
    let read = |events: Vec<Arc<Event>>| -> Vec<Content> {
        events.iter().map(|e| content(&e.update)).collect()
    };
    assert_eq!(read(read_all(&log).await), all, "appended after recovery");
    log.close().await;
    drop(log);
    let (log, _tail) = DiskLog::open(dir.path(), retention()).unwrap();
    assert_eq!(read(read_all(&log).await), all, "reopened after appending");
    log.close().await;
    drop(log);

    // A hub starts on the directory and replays the same.
    let mut hub = TestHub::start(|o| o.keys.data_dir = Some(dir.path().to_path_buf())).await;
    let mut sub = hub
        .resume(&[TOPIC, &format!("{TOPIC}:alternate")], "earliest")
        .await;
    publish(
        &hub.http,
        &hub.url(),
        &publisher_token(),
        &[("topic", TOPIC), ("id", "fence")],
    )
    .await;
    let ids: Vec<String> = all.iter().map(|c| c.0.clone()).collect();
    assert_eq!(
        ids_until(&mut sub, "fence", "replay").await,
        ids,
        "the hub's replay"
    );
    hub.shutdown().await;
}

/// 32 cases by default (about 7 s here; `PROPTEST_CASES=N` runs N).
#[test]
fn a_damaged_disk_log_keeps_every_record_before_the_damage() {
    let rt = runtime();
    check("recovery", 32, case(), |case| {
        rt.block_on(check_case(&case));
        Ok(())
    });
}
