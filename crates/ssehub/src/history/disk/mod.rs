//! The durable on-disk log (the default store).
//!
//! Updates are appended to segment files by one writer thread that groups
//! every pending append into one write and one `fdatasync`, then
//! acknowledges them: an acknowledged update is on stable storage, and
//! durability does not cost throughput. An in-memory index maps ids to
//! positions and positions to file offsets, so finding an id or a position
//! never scans. Retention (count, bytes, age) deletes whole segments.

mod handoff;
mod record;
mod segment;
mod writer;

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::future::{BoxFuture, FutureExt};
use parking_lot::{Mutex, RwLock};
use tokio::sync::oneshot;

use super::ids::IdGenerator;
use super::log::{Holding, Log, LogError, Retention};
use super::tail::{tail, Tail};
use crate::proto::event::Event;
use crate::proto::update::Update;
use record::{decode, Decoded};
pub use segment::file_name as segment_file_name;
use segment::Segment;

/// Name and version of the on-disk format, written in `log/FORMAT`.
pub const FORMAT: &str = "ssehub-log 1";

/// Why the log could not be opened (stops start-up).
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Another process holds the data directory.
    #[error("another ssehub is already using {0} (its lock is held); stop it or choose another --data-dir")]
    Locked(PathBuf),
    /// The directory was written by an incompatible version.
    #[error("{path} holds history in format {found:?}, but this ssehub reads {FORMAT:?}; refusing to touch it (move it away or run a matching ssehub)")]
    Format {
        /// The log directory.
        path: PathBuf,
        /// What its FORMAT file says.
        found: String,
    },
    /// An I/O error while opening or recovering.
    #[error("cannot open the history in {path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// The on-disk log.
pub struct DiskLog {
    shared: Arc<Shared>,
    requests: std::sync::mpsc::Sender<writer::Command>,
    /// `None` once closed.
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Held until the log is closed: a second hub on the directory fails.
    lock: Mutex<Option<File>>,
    ids: IdGenerator,
}

impl Drop for DiskLog {
    /// Lets the writer finish pending commits and joins it, so the files and
    /// the directory lock are released when this returns.
    fn drop(&mut self) {
        let _ = self.requests.send(writer::Command::Stop);
        if let Some(writer) = self.writer.get_mut().take() {
            let _ = writer.join();
        }
    }
}

struct Shared {
    dir: PathBuf,
    retention: Retention,
    state: RwLock<State>,
    /// Keyed per process, so ids cannot be crafted to collide.
    hasher: std::collections::hash_map::RandomState,
}

struct State {
    segments: VecDeque<Segment>,
    /// Hash of an id to its position. A stale entry (older than `first_seq`)
    /// is ignored; a colliding one is caught by checking the record's id.
    ids: HashMap<u64, u64>,
    /// First retained position (retention may cut inside a segment).
    first_seq: u64,
    next_seq: u64,
    /// The newest events, served to replays without I/O.
    recent: VecDeque<Arc<Event>>,
}

impl State {
    /// Bytes of the retained records from position `first` on.
    fn bytes_from(&self, first: u64) -> u64 {
        self.segments
            .iter()
            .filter(|s| s.next_seq() > first)
            .map(|s| s.len - s.offset_of(first.max(s.first_seq)))
            .sum()
    }

    /// Indexes the update at `seq` by its id's `hash`, unless a retained
    /// update holds that id already: a reused id resolves to the earliest
    /// update that carried it, and once retention drops that one the id is
    /// unknown (answered like an evicted cursor) even if a later retained
    /// update reused it (as docs/protocol.md says).
    fn index(&mut self, hash: u64, seq: u64) {
        let held = self.ids.entry(hash).or_insert(seq);
        if *held < self.first_seq {
            *held = seq;
        }
    }
}

/// The last position a segment may start at. Positions start at 1, and a
/// log appending a million updates a second would take 290,000 years to
/// get here; a segment named otherwise was not written by a log (it is set
/// aside), and positions counted from this one never overflow.
pub const MAX_FIRST_POSITION: u64 = 1 << 63;

/// Newest events kept in memory for replay without I/O.
const RECENT: usize = 4096;

fn now_ms() -> u64 {
    crate::clock::unix_ms()
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> OpenError + '_ {
    move |source| OpenError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// How long opening waits for the data directory's lock: a process
/// forked by the one that held it (a child started at that moment) keeps
/// the lock until its `exec`, and a previous instance may still be exiting.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Takes the exclusive lock on `lock`, waiting at most [`LOCK_WAIT`];
/// `false` if another process holds it all that time.
fn take_lock(lock: &File) -> bool {
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        if lock.try_lock().is_ok() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

impl DiskLog {
    /// Opens (or creates) the log under `data_dir/log`, recovering from a
    /// crash, and starts its writer thread.
    pub fn open(data_dir: &Path, retention: Retention) -> Result<(DiskLog, Tail), OpenError> {
        let dir = data_dir.join("log");
        std::fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        let lock_path = data_dir.join("LOCK");
        let lock = File::create(&lock_path).map_err(io_error(&lock_path))?;
        if !take_lock(&lock) {
            return Err(OpenError::Locked(data_dir.to_path_buf()));
        }
        check_format(&dir)?;

        let hasher = std::collections::hash_map::RandomState::new();
        let mut state = State {
            segments: VecDeque::new(),
            ids: HashMap::new(),
            first_seq: 1,
            next_seq: 1,
            recent: VecDeque::new(),
        };
        let mut last_ms = 0;
        let files = segment::list(&dir).map_err(io_error(&dir))?;
        let mut files = files.into_iter();
        for (first_seq, path) in files.by_ref() {
            if !(1..=MAX_FIRST_POSITION).contains(&first_seq) {
                tracing::error!("history segment {} starts at position {first_seq}, which no log reaches; it is set aside", path.display());
                set_aside(&path);
                continue;
            }
            if !state.segments.is_empty() && first_seq != state.next_seq {
                tracing::error!("history segment {} does not follow position {}; it and later segments are set aside", path.display(), state.next_seq);
                set_aside(&path);
                files.by_ref().for_each(|(_, p)| set_aside(&p));
                break;
            }
            let (seg, damage) = Segment::recover(path.clone(), first_seq, |r| {
                state.index(hasher.hash_one(&r.update.id), r.seq);
                last_ms = r.unix_ms;
            })
            .map_err(io_error(&path))?;
            if state.segments.is_empty() {
                state.first_seq = seg.first_seq;
            }
            state.next_seq = seg.next_seq();
            state.segments.push_back(seg);
            if let Some(d) = damage {
                tracing::warn!(
                    "recovered {}: {} at byte {}, dropped {} bytes after position {}",
                    path.display(),
                    d.reason,
                    d.offset,
                    d.dropped_bytes,
                    state.next_seq - 1
                );
                files.by_ref().for_each(|(_, p)| set_aside(&p));
                break;
            }
        }
        let ids = IdGenerator::default();
        ids.raise_floor(last_ms);
        let events = state.next_seq - state.first_seq;
        tracing::info!(
            "history: {events} updates in {} segment(s) under {}",
            state.segments.len(),
            dir.display()
        );

        let shared = Arc::new(Shared {
            dir,
            retention,
            state: RwLock::new(state),
            hasher,
        });
        shared.maintain(now_ms());
        shared.load_recent();
        let (tail, rx) = tail();
        let bell = handoff::open(tail).map_err(io_error(data_dir))?;
        // Unbounded, but each request is an append awaiting its answer: it
        // holds no more requests than publishes in flight, which the
        // connections and their streams bound, and the subscription events
        // of subscriptions opening or closing, which the same bound holds.
        let (requests, incoming) = std::sync::mpsc::channel();
        let worker = shared.clone();
        let writer = std::thread::Builder::new()
            .name("ssehub-log-writer".into())
            .spawn(move || writer::run(worker, incoming, bell))
            .map_err(io_error(data_dir))?;
        Ok((
            DiskLog {
                shared,
                requests,
                writer: Mutex::new(Some(writer)),
                lock: Mutex::new(Some(lock)),
                ids,
            },
            rx,
        ))
    }
}

/// Appends to `out` the bytes this log writes for `update` at position
/// `seq`, written at `unix_ms` (milliseconds since the Unix epoch). A
/// segment file (named by [`segment_file_name`], in the `log` directory of
/// the data directory, beside a `FORMAT` file holding [`FORMAT`]) is such
/// records back to back, from the position its name gives on: this builds
/// one without a running log, as the fuzz targets do to damage it.
pub fn encode_record(seq: u64, unix_ms: u64, update: &Update, out: &mut Vec<u8>) {
    record::encode(seq, unix_ms, update, out);
}

/// Refuses a directory written in another format; stamps a new one.
fn check_format(dir: &Path) -> Result<(), OpenError> {
    let path = dir.join("FORMAT");
    match std::fs::read_to_string(&path) {
        Ok(found) if found.trim() == FORMAT => Ok(()),
        Ok(found) => Err(OpenError::Format {
            path: dir.to_path_buf(),
            found: found.trim().to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let has_segments = !segment::list(dir).map_err(io_error(dir))?.is_empty();
            if has_segments {
                return Err(OpenError::Format {
                    path: dir.to_path_buf(),
                    found: "(no FORMAT file)".into(),
                });
            }
            std::fs::write(&path, format!("{FORMAT}\n")).map_err(io_error(&path))?;
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io_error(dir))
        }
        Err(e) => Err(io_error(&path)(e)),
    }
}

/// Renames a segment that cannot be used, keeping it for inspection:
/// `N.seg.damaged`, or `N.seg.damaged.K` with the first free K when an
/// earlier incident left one, so no copy kept is ever replaced.
fn set_aside(path: &Path) {
    let first = path.with_extension("seg.damaged");
    let aside = std::iter::once(first.clone())
        .chain((1..).map(|k| first.with_extension(format!("damaged.{k}"))))
        .find(|p| !p.exists())
        .unwrap_or(first);
    if let Err(e) = std::fs::rename(path, &aside) {
        tracing::error!("could not set aside {}: {e}", path.display());
    }
}

/// Decodes the records in `bytes` into events.
fn decode_events(bytes: &[u8]) -> Result<Vec<Arc<Event>>, LogError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        match decode(&bytes[at..]) {
            Decoded::Record(r, used) => {
                out.push(Arc::new(Event::new(r.seq, r.update)));
                at += used;
            }
            _ => {
                return Err(LogError::Corrupt(
                    "a history record failed its checksum on read".into(),
                ))
            }
        }
    }
    Ok(out)
}

impl Shared {
    /// Fills the recent-events cache from disk after a restart.
    fn load_recent(&self) {
        let mut st = self.state.write();
        let from = st.next_seq.saturating_sub(RECENT as u64).max(st.first_seq);
        let mut recent = VecDeque::new();
        for seg in st.segments.iter().filter(|s| s.next_seq() > from) {
            let start = seg.offset_of(from.max(seg.first_seq));
            let read = Segment::read(&seg.file, start, seg.len)
                .map_err(|e| LogError::io("cannot read the history", e))
                .and_then(|bytes| decode_events(&bytes));
            match read {
                Ok(events) => recent.extend(events),
                Err(e) => {
                    tracing::warn!(
                        "could not preload recent history from {}: {e}",
                        seg.path.display()
                    );
                    return;
                }
            }
        }
        st.recent = recent;
    }

    /// Where to read `after`'s successors: from memory, or a file range.
    fn locate(&self, after: Option<u64>, limit: usize) -> Located {
        let st = self.state.read();
        let start = after.map_or(st.first_seq, |a| (a + 1).max(st.first_seq));
        if start >= st.next_seq {
            return Located::Memory(Vec::new());
        }
        if let Some(front) = st.recent.front() {
            if start >= front.seq {
                let skip = usize::try_from(start - front.seq).unwrap_or(usize::MAX);
                return Located::Memory(st.recent.iter().skip(skip).take(limit).cloned().collect());
            }
        }
        let i = st.segments.partition_point(|s| s.next_seq() <= start);
        let seg = &st.segments[i];
        let end = (start + limit as u64).min(seg.next_seq());
        Located::File {
            file: seg.file.clone(),
            from: seg.offset_of(start),
            to: seg.offset_of(end),
        }
    }

    /// Where the events just before `before` are: from memory, or a file
    /// range within one segment.
    fn locate_before(&self, before: Option<u64>, limit: usize) -> Located {
        let st = self.state.read();
        let end = before.map_or(st.next_seq, |b| b.clamp(st.first_seq, st.next_seq));
        if end <= st.first_seq || limit == 0 {
            return Located::Memory(Vec::new());
        }
        let i = st.segments.partition_point(|s| s.next_seq() < end);
        let seg = &st.segments[i];
        let start = end
            .saturating_sub(limit as u64)
            .max(st.first_seq)
            .max(seg.first_seq);
        if let Some(front) = st.recent.front().filter(|f| f.seq < end) {
            let range = usize::try_from(start.max(front.seq) - front.seq).unwrap_or(usize::MAX)
                ..usize::try_from(end - front.seq).unwrap_or(usize::MAX);
            return Located::Memory(st.recent.range(range).cloned().collect());
        }
        Located::File {
            file: seg.file.clone(),
            from: seg.offset_of(start),
            to: seg.offset_of(end),
        }
    }

    /// The records to read to find the newest one written before
    /// `unix_ms`: in the newest segment whose first record is older,
    /// those written in the same second. `None` if no segment's is.
    fn window_before(&self, unix_ms: u64) -> Option<Window> {
        let st = self.state.read();
        let n = st
            .segments
            .partition_point(|s| s.first_ms().is_some_and(|first| first < unix_ms));
        let seg = &st.segments[n.checked_sub(1)?];
        let around = seg.around(unix_ms);
        Some(Window {
            file: seg.file.clone(),
            before: (seg.first_seq + around.start as u64) - 1,
            bounds: seg.bounds(around),
        })
    }
}

enum Located {
    Memory(Vec<Arc<Event>>),
    File { file: Arc<File>, from: u64, to: u64 },
}

/// Runs `read` off the async threads.
async fn blocking<T: Send + 'static>(
    read: impl FnOnce() -> Result<T, LogError> + Send + 'static,
) -> Result<T, LogError> {
    tokio::task::spawn_blocking(read)
        .await
        .map_err(|e| LogError::io("cannot read the history", std::io::Error::other(e)))?
}

async fn read_located(located: Located) -> Result<Vec<Arc<Event>>, LogError> {
    match located {
        Located::Memory(events) => Ok(events),
        Located::File { file, from, to } => {
            let bytes = blocking(move || {
                Segment::read(&file, from, to)
                    .map_err(|e| LogError::io("cannot read the history", e))
            })
            .await?;
            decode_events(&bytes)
        }
    }
}

/// The records of one segment that may have been written either side of
/// a time (see [`Segment::around`]), to be read to find where it falls.
struct Window {
    file: Arc<File>,
    /// The position of the segment's record before the window.
    before: u64,
    /// Where each record of the window starts, then where the last ends.
    bounds: Vec<u64>,
}

impl Window {
    /// The position of the newest record of the segment written before
    /// `unix_ms`: a binary search over the window, reading one record at
    /// each step (at most about 17 for a million records in one second).
    fn search(&self, unix_ms: u64) -> Result<u64, LogError> {
        let (mut lo, mut hi) = (0, self.bounds.len() - 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let bytes = Segment::read(&self.file, self.bounds[mid], self.bounds[mid + 1])
                .map_err(|e| LogError::io("cannot read the history", e))?;
            let Decoded::Record(record, _) = decode(&bytes) else {
                return Err(LogError::Corrupt(
                    "a history record failed its checksum on read".into(),
                ));
            };
            if record.unix_ms < unix_ms {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(self.before + lo as u64)
    }
}

impl Log for DiskLog {
    fn append(&self, updates: Vec<Update>) -> BoxFuture<'_, Result<Vec<Arc<Event>>, LogError>> {
        let (reply, done) = oneshot::channel();
        let request = writer::Command::Append(writer::Request { updates, reply });
        let sent = self.requests.send(request);
        async move {
            sent.map_err(|_| LogError::WriterStopped)?;
            done.await.map_err(|_| LogError::WriterStopped)?
        }
        .boxed()
    }

    fn position<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<u64>, LogError>> {
        async move {
            let seq = {
                let st = self.shared.state.read();
                match st.ids.get(&self.shared.hasher.hash_one(id)) {
                    Some(&seq) if seq >= st.first_seq && seq < st.next_seq => seq,
                    _ => return Ok(None),
                }
            };
            // Confirm the id (a 64-bit hash can collide).
            let found = read_located(self.shared.locate(Some(seq - 1), 1)).await?;
            Ok(found
                .first()
                .filter(|e| e.seq == seq && e.update.id == id)
                .map(|e| e.seq))
        }
        .boxed()
    }

    fn read_after(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<Arc<Event>>, LogError>> {
        read_located(self.shared.locate(after, limit)).boxed()
    }

    fn read_before(
        &self,
        before: Option<u64>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<Arc<Event>>, LogError>> {
        read_located(self.shared.locate_before(before, limit)).boxed()
    }

    fn before_time(&self, unix_ms: u64) -> BoxFuture<'_, Result<Option<Arc<Event>>, LogError>> {
        async move {
            let Some(window) = self.shared.window_before(unix_ms) else {
                return Ok(None);
            };
            let seq = if window.bounds.len() > 1 {
                blocking(move || window.search(unix_ms)).await?
            } else {
                window.before
            };
            if seq == 0 {
                return Ok(None);
            }
            // Retention may have dropped it meanwhile: then it is not found.
            let found = read_located(self.shared.locate(Some(seq - 1), 1)).await?;
            Ok(found.into_iter().next().filter(|e| e.seq == seq))
        }
        .boxed()
    }

    fn last_id(&self) -> Option<String> {
        self.shared
            .state
            .read()
            .recent
            .back()
            .map(|e| e.update.id.clone())
    }

    fn new_id(&self) -> String {
        self.ids.next()
    }

    fn holding(&self) -> BoxFuture<'_, Holding> {
        let st = self.shared.state.read();
        let holding = Holding {
            events: Some(st.next_seq - st.first_seq),
            bytes: Some(st.bytes_from(st.first_seq)),
        };
        Box::pin(std::future::ready(holding))
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        let _ = self.requests.send(writer::Command::Stop);
        let writer = self.writer.lock().take();
        async move {
            if let Some(writer) = writer {
                let _ = tokio::task::spawn_blocking(move || writer.join()).await;
            }
            self.lock.lock().take();
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::set_aside;

    #[test]
    fn a_segment_set_aside_twice_keeps_both_copies() {
        let dir = tempfile::tempdir().unwrap();
        let segment = dir.path().join("00000000000000000001.seg");
        for (incident, expected) in [
            ("first", "00000000000000000001.seg.damaged"),
            ("second", "00000000000000000001.seg.damaged.1"),
            ("third", "00000000000000000001.seg.damaged.2"),
        ] {
            std::fs::write(&segment, incident).unwrap();
            set_aside(&segment);
            assert!(!segment.exists());
            let kept = std::fs::read_to_string(dir.path().join(expected)).unwrap();
            assert_eq!(kept, incident);
        }
        // The earlier copies are untouched.
        let first = dir.path().join("00000000000000000001.seg.damaged");
        assert_eq!(std::fs::read_to_string(first).unwrap(), "first");
    }
}
