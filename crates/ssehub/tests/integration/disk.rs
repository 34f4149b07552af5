//! The on-disk log: retention (with disk space really given back), torn
//! tails, format versions, the directory lock, and a full disk.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use reqwest::StatusCode;
use ssehub::history::disk::{OpenError, FORMAT};
use ssehub::history::{DiskLog, Log, LogError, Retention, Tail};
use ssehub::proto::event::Event;
use ssehub::proto::update::{Update, UpdateRequest};

fn update(i: usize, data_len: usize) -> Update {
    UpdateRequest {
        topics: vec!["urn:t".into()],
        id: Some(format!("id-{i}")),
        data: "x".repeat(data_len),
        ..Default::default()
    }
    .validate(String::new)
    .unwrap()
}

fn unlimited() -> Retention {
    Retention {
        max_count: usize::MAX,
        max_bytes: u64::MAX,
        max_age: None,
    }
}

/// Opens the log in `dir` with [`unlimited`] retention changed by `limit`.
fn open_limited(dir: &Path, limit: impl FnOnce(&mut Retention)) -> (DiskLog, Tail) {
    let mut retention = unlimited();
    limit(&mut retention);
    DiskLog::open(dir, retention).unwrap()
}

async fn append(log: &DiskLog, range: std::ops::Range<usize>, data_len: usize) {
    for i in range {
        log.append(vec![update(i, data_len)]).await.unwrap();
    }
}

async fn all(log: &DiskLog) -> Vec<Arc<Event>> {
    let mut out: Vec<Arc<Event>> = Vec::new();
    loop {
        let page = log
            .read_after(out.last().map(|e| e.seq), 1000)
            .await
            .unwrap();
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

fn ids(events: &[Arc<Event>]) -> Vec<String> {
    events.iter().map(|e| e.update.id.clone()).collect()
}

fn expected(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("id-{i}")).collect()
}

/// Bytes of segment files under the data directory.
fn disk_usage(data_dir: &Path) -> u64 {
    std::fs::read_dir(data_dir.join("log"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "seg"))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

#[tokio::test]
async fn survives_reopen_in_order_with_index() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (log, _tail) = DiskLog::open(dir.path(), unlimited()).unwrap();
        append(&log, 0..500, 10).await;
    }
    let (log, _tail) = DiskLog::open(dir.path(), unlimited()).unwrap();
    assert_eq!(ids(&all(&log).await), expected(0..500));
    let at = log.position("id-250").await.unwrap().unwrap();
    assert_eq!(
        ids(&log.read_after(Some(at), 2).await.unwrap()),
        expected(251..253)
    );
    assert_eq!(log.last_id().as_deref(), Some("id-499"));
    log.append(vec![update(500, 1)]).await.unwrap();
    assert_eq!(
        log.position("id-500").await.unwrap(),
        Some(at + 250),
        "positions continue"
    );
}

/// Milliseconds since the Unix epoch, between two pauses, so that what is
/// appended before and after falls in different milliseconds.
async fn instant_between() -> u64 {
    tokio::time::sleep(Duration::from_millis(2)).await;
    let at = ssehub::clock::unix_ms();
    tokio::time::sleep(Duration::from_millis(2)).await;
    at
}

/// The id of the newest event before `unix_ms`, if any.
async fn id_before(log: &DiskLog, unix_ms: u64) -> Option<String> {
    let found = log.before_time(unix_ms).await.unwrap();
    found.map(|e| e.update.id.clone())
}

/// Every retained event, read backward a page of `limit` at a time.
async fn all_backward(log: &DiskLog, limit: usize) -> Vec<Arc<Event>> {
    let mut out: Vec<Arc<Event>> = Vec::new();
    loop {
        let page = log
            .read_before(out.first().map(|e| e.seq), limit)
            .await
            .unwrap();
        if page.is_empty() {
            return out;
        }
        assert!(page.len() <= limit);
        out.splice(0..0, page);
    }
}

/// Batches of this many updates, each its own commit at its own time.
const BATCH: usize = 100;

/// Checks that each of `instants` (taken before each batch) finds the
/// update before that batch, and `future` the newest, in a log of
/// `batches` that kept the updates from id-2000 on, and that reading
/// backward returns them all.
async fn check_times(log: &DiskLog, instants: &[u64], future: u64) {
    let total = instants.len() * BATCH;
    for (b, at) in instants.iter().enumerate() {
        // Before batch 21, the newest update is gone.
        let want = (b > 20).then(|| format!("id-{}", b * BATCH - 1));
        assert_eq!(id_before(log, *at).await, want, "batch {b}");
    }
    assert_eq!(
        id_before(log, future).await,
        Some(format!("id-{}", total - 1))
    );
    assert_eq!(ids(&all_backward(log, 512).await), expected(2000..total));
    assert_eq!(ids(&all_backward(log, 7).await), expected(2000..total));
    assert!(
        log.read_before(Some(2001), 10).await.unwrap().is_empty(),
        "nothing retained before the first"
    );
}

/// Finds times in segments, within seconds holding many records (so inside
/// the second the search reads records), in the newest events kept in
/// memory and in the older ones read from files, before and after a
/// reopen; times before the oldest retained update find nothing.
#[tokio::test]
async fn finds_times_and_reads_backward_without_scanning() {
    const BATCHES: usize = 80;
    let dir = tempfile::tempdir().unwrap();
    let retention = |r: &mut Retention| r.max_count = 6000;
    let mut instants = Vec::new();
    let (log, _tail) = open_limited(dir.path(), retention);
    for b in 0..BATCHES {
        instants.push(instant_between().await);
        let batch = (b * BATCH..(b + 1) * BATCH).map(|i| update(i, 10));
        log.append(batch.collect()).await.unwrap();
    }
    let future = instant_between().await + 3_600_000;
    check_times(&log, &instants, future).await;
    drop(log);
    let (log, _tail) = open_limited(dir.path(), retention);
    check_times(&log, &instants, future).await;
    let total = BATCHES * BATCH;
    let before_it = instant_between().await;
    log.append(vec![update(total, 1)]).await.unwrap();
    assert_eq!(
        id_before(&log, before_it).await,
        Some(format!("id-{}", total - 1))
    );
    assert_eq!(
        id_before(&log, instant_between().await).await,
        Some(format!("id-{total}"))
    );
}

#[tokio::test]
async fn retention_by_count_gives_space_back() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _tail) = open_limited(dir.path(), |r| r.max_count = 200);
    append(&log, 0..1, 200).await;
    let record = disk_usage(dir.path());
    append(&log, 1..3000, 200).await;
    assert_eq!(ids(&all(&log).await), expected(2800..3000));
    assert_eq!(
        log.position("id-2799").await.unwrap(),
        None,
        "evicted ids are unknown"
    );
    assert!(log.position("id-2800").await.unwrap().is_some());
    // Segments hold an eighth of the limit (at least 64 records), so the
    // retained records plus two segments bound what stays on disk.
    let bound = (200 + 2 * 64) * record;
    let used = disk_usage(dir.path());
    assert!(
        used <= bound,
        "disk use {used} > {bound} ({} written)",
        3000 * record
    );
    drop(log);
    let (log, _tail) = open_limited(dir.path(), |r| r.max_count = 50);
    assert_eq!(
        ids(&all(&log).await),
        expected(2950..3000),
        "a tighter limit applies at start-up"
    );
}

#[tokio::test]
async fn retention_by_bytes_gives_space_back() {
    const LIMIT: u64 = 256 << 10;
    let dir = tempfile::tempdir().unwrap();
    let (log, _tail) = open_limited(dir.path(), |r| r.max_bytes = LIMIT);
    append(&log, 0..2000, 1000).await;
    let kept = all(&log).await;
    let kept_data: u64 = kept.iter().map(|e| e.update.data.len() as u64).sum();
    assert!(
        kept_data <= LIMIT && kept_data > LIMIT * 9 / 10,
        "kept {kept_data} bytes of data"
    );
    assert_eq!(ids(&kept).last().unwrap(), "id-1999");
    // At most the limit plus one segment (an eighth of it, at least 64 KiB) and one record.
    assert!(
        disk_usage(dir.path()) <= LIMIT + (LIMIT / 8).max(64 << 10) + 2048,
        "disk use {}",
        disk_usage(dir.path())
    );
}

#[tokio::test]
async fn retention_by_age_gives_space_back() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _tail) = open_limited(dir.path(), |r| {
        r.max_age = Some(Duration::from_millis(1500))
    });
    // One commit, so none of them expires while the others are written (300
    // commits, one fsync each, can take longer than the age on a busy machine).
    let updates = (0..300).map(|i| update(i, 500)).collect();
    log.append(updates).await.unwrap();
    let before = disk_usage(dir.path());
    assert!(before > 150_000);
    tokio::time::sleep(Duration::from_millis(1600)).await;
    append(&log, 300..301, 10).await;
    assert_eq!(
        ids(&all(&log).await),
        expected(300..301),
        "older updates expired"
    );
    assert_eq!(log.position("id-0").await.unwrap(), None);
    // The writer's maintenance deletes expired segments even without publishes.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while disk_usage(dir.path()) > 10_000 {
        assert!(
            std::time::Instant::now() < deadline,
            "expired segments still on disk: {}",
            disk_usage(dir.path())
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn last_segment(data_dir: &Path) -> std::path::PathBuf {
    let mut segs: Vec<_> = std::fs::read_dir(data_dir.join("log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    segs.pop().unwrap()
}

#[tokio::test]
async fn torn_tail_keeps_the_valid_prefix() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (log, _tail) = DiskLog::open(dir.path(), unlimited()).unwrap();
        append(&log, 0..10, 100).await;
    }
    let seg = last_segment(dir.path());
    let len = std::fs::metadata(&seg).unwrap().len();
    // A crash in the middle of writing the last record.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 7)
        .unwrap();
    let (log, _tail) = DiskLog::open(dir.path(), unlimited()).unwrap();
    assert_eq!(ids(&all(&log).await), expected(0..9));
    log.append(vec![update(10, 5)]).await.unwrap();
    drop(log);

    // Garbage after the last record (a write that never completed).
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    std::fs::write(&seg, &bytes).unwrap();
    let (log, _tail) = DiskLog::open(dir.path(), unlimited()).unwrap();
    let mut want = expected(0..9);
    want.push("id-10".into());
    assert_eq!(ids(&all(&log).await), want);
}

/// Found by the recovery property (`properties::recovery`): a segment cut
/// short on a record boundary is no damage to itself, but the next one no
/// longer follows it; that one was set aside and the later ones stayed,
/// so the writer, rotating into a stale segment's name, failed every
/// append from then on.
#[tokio::test]
async fn a_segment_that_no_longer_follows_sets_aside_every_later_one() {
    let dir = tempfile::tempdir().unwrap();
    // Segments of 64 updates: 1, 65, 129.
    let count = |r: &mut Retention| r.max_count = 512;
    {
        let (log, _tail) = open_limited(dir.path(), count);
        append(&log, 0..150, 10).await;
    }
    let first = dir.path().join("log/00000000000000000001.seg");
    std::fs::write(&first, b"").unwrap();
    let (log, _tail) = open_limited(dir.path(), count);
    for set_aside in ["00000000000000000065", "00000000000000000129"] {
        let path = dir.path().join("log").join(set_aside);
        assert!(path.with_extension("seg.damaged").exists(), "{set_aside}");
        assert!(!path.with_extension("seg").exists(), "{set_aside}");
    }
    // Through positions 65 and 129 again.
    append(&log, 200..340, 10).await;
    drop(log);
    let (log, _tail) = open_limited(dir.path(), count);
    assert_eq!(ids(&all(&log).await), expected(200..340));
}

#[tokio::test]
async fn another_format_is_refused_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (log, _tail) = DiskLog::open(dir.path(), unlimited()).unwrap();
        append(&log, 0..3, 10).await;
    }
    let format = dir.path().join("log/FORMAT");
    assert_eq!(std::fs::read_to_string(&format).unwrap().trim(), FORMAT);
    std::fs::write(&format, "ssehub-log 999\n").unwrap();
    let before = disk_usage(dir.path());
    let err = DiskLog::open(dir.path(), unlimited())
        .err()
        .expect("refused");
    assert!(matches!(err, OpenError::Format { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("ssehub-log 999") && msg.contains(FORMAT),
        "{msg}"
    );
    assert_eq!(disk_usage(dir.path()), before, "nothing touched");
    std::fs::remove_file(&format).unwrap();
    assert!(
        matches!(
            DiskLog::open(dir.path(), unlimited()),
            Err(OpenError::Format { .. })
        ),
        "segments without FORMAT"
    );
}

#[tokio::test]
async fn second_hub_on_the_same_directory_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = |listen: &str| {
        let mut options = ssehub::config::Options::default();
        options.server.listen = Some(listen.into());
        options.server.tls_listen = Some("none".into());
        options.server.metrics_listen = Some("none".into());
        options.keys.data_dir = Some(dir.path().to_path_buf());
        options.keys.publisher_jwt_key = Some(SECRET.into());
        options.resolve().unwrap()
    };
    let first = ssehub::server::start(config("127.0.0.1:0")).await.unwrap();
    let err = ssehub::server::start(config("127.0.0.1:0"))
        .await
        .err()
        .expect("second refused");
    assert!(format!("{err:#}").contains("already using"), "{err:#}");
    first.shutdown().await;
    let next = ssehub::server::start(config("127.0.0.1:0"))
        .await
        .expect("the directory is free once the first hub has shut down");
    next.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_racing_close_are_acknowledged_exactly_when_stored() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _tail) = DiskLog::open(dir.path(), unlimited()).unwrap();
    let log = Arc::new(log);
    let appends: Vec<_> = (0..300)
        .map(|i| {
            let log = log.clone();
            tokio::spawn(async move { (i, log.append(vec![update(i, 10)]).await.is_ok()) })
        })
        .collect();
    tokio::task::yield_now().await;
    log.close().await;
    let mut acknowledged = Vec::new();
    for append in appends {
        let (i, ok) = append.await.unwrap();
        if ok {
            acknowledged.push(format!("id-{i}"));
        }
    }
    drop(log);
    let (again, _tail) = DiskLog::open(dir.path(), unlimited()).unwrap();
    let mut stored = ids(&all(&again).await);
    stored.sort();
    acknowledged.sort();
    assert_eq!(
        stored, acknowledged,
        "an append is acknowledged if and only if it is stored"
    );
}

#[tokio::test]
async fn a_closed_log_stores_what_it_took_then_refuses_appends_and_frees_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _tail) = DiskLog::open(dir.path(), unlimited()).unwrap();
    append(&log, 0..3, 10).await;
    log.close().await;
    let refused = log.append(vec![update(3, 10)]).await;
    assert!(
        matches!(refused, Err(LogError::WriterStopped)),
        "{refused:?}"
    );
    let (again, _tail) =
        DiskLog::open(dir.path(), unlimited()).expect("the directory is free once closed");
    assert_eq!(ids(&all(&again).await), expected(0..3));
}

/// A small tmpfs mounted for the test (CI runs as root), unmounted on drop.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "mounting a tmpfs needs root (CI runs as root)"
        );
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily: the hub's files may still be closing.
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.0.path())
            .status();
    }
}

/// The ids a subscriber replaying `urn:full` from the start receives.
async fn replayed(hub: &TestHub) -> Vec<String> {
    let mut sub = hub.resume(&["urn:full"], "earliest").await;
    let events = sub.drain(Duration::from_millis(500)).await;
    events.into_iter().map(|e| e.last_event_id).collect()
}

#[tokio::test]
async fn full_disk_answers_503_stores_nothing_half_and_recovers() {
    let fs = Tmpfs::mount("2m");
    let data = fs.0.path().join("data");
    let filler = fs.0.path().join("filler");
    std::fs::create_dir(&data).unwrap();
    let mut hub = TestHub::start(|o| o.keys.data_dir = Some(data.clone())).await;
    // Leave little room for the log.
    std::fs::write(&filler, vec![0u8; 1700 << 10]).unwrap();
    let payload = "p".repeat(20_000);
    let mut acknowledged = Vec::new();
    let refusal = loop {
        let (status, body) = hub
            .publish(
                &publisher_token(),
                &[("topic", "urn:full"), ("data", &payload)],
            )
            .await;
        match status {
            StatusCode::OK => acknowledged.push(body),
            _ => break (status, body),
        }
        assert!(acknowledged.len() < 200, "the disk never filled");
    };
    assert_eq!(refusal.0, StatusCode::SERVICE_UNAVAILABLE);
    assert!(refusal.1.contains("No space left"), "{}", refusal.1);

    assert_eq!(
        replayed(&hub).await,
        acknowledged,
        "only acknowledged updates exist"
    );

    std::fs::remove_file(&filler).unwrap();
    let id = hub
        .publish_ok(&[("topic", "urn:full"), ("data", &payload)])
        .await;
    acknowledged.push(id);
    hub.shutdown().await;
    drop(hub);

    let hub = TestHub::start(|o| o.keys.data_dir = Some(data.clone())).await;
    assert_eq!(replayed(&hub).await, acknowledged, "after a restart too");
}
