//! The writer thread: group commit, retention and segment rotation.

use std::hash::BuildHasher;
use std::os::unix::fs::FileExt;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use super::handoff::{Bell, Done, Reply};
use super::record::{decode, encode, Decoded};
use super::segment::Segment;
use super::{now_ms, Shared, State, RECENT};
use crate::history::log::LogError;
use crate::proto::event::Event;
use crate::proto::update::Update;

/// What the writer is asked to do.
pub(super) enum Command {
    /// Commit these updates.
    Append(Request),
    /// Commit what was asked before, then stop.
    Stop,
}

/// An append waiting for its commit.
pub(super) struct Request {
    pub(super) updates: Vec<Update>,
    pub(super) reply: Reply,
}

/// Most requests grouped into one commit.
const MAX_BATCH: usize = 4096;
/// How often age retention runs when no publish triggers it.
const MAINTENANCE: Duration = Duration::from_secs(1);
/// Largest segment file, so retention frees space in small steps.
const MAX_SEGMENT_BYTES: u64 = 64 << 20;

/// Runs until it is asked to stop or every sender is gone (the thread owns
/// its arguments).
#[allow(clippy::needless_pass_by_value)]
pub(super) fn run(shared: Arc<Shared>, incoming: Receiver<Command>, bell: Arc<Bell>) {
    let mut buf = Vec::new();
    let mut batch = Vec::new();
    let mut stopping = false;
    while !stopping {
        match incoming.recv_timeout(MAINTENANCE) {
            Ok(Command::Append(first)) => batch.push(first),
            Ok(Command::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {
                shared.maintain(now_ms());
                continue;
            }
        }
        while batch.len() < MAX_BATCH {
            match incoming.try_recv() {
                Ok(Command::Append(r)) => batch.push(r),
                Ok(Command::Stop) => {
                    stopping = true;
                    break;
                }
                Err(_) => break,
            }
        }
        let counts: Vec<usize> = batch.iter().map(|r| r.updates.len()).collect();
        match shared.commit(&mut batch, &mut buf) {
            Ok(events) => {
                let mut events = events.into_iter();
                bell.ring(batch.drain(..).zip(counts).map(|(request, count)| {
                    Done::Appended(request.reply, events.by_ref().take(count).collect())
                }));
            }
            Err(e) => {
                tracing::error!("{e}");
                bell.ring(
                    batch
                        .drain(..)
                        .map(|request| Done::Failed(request.reply, e.clone())),
                );
            }
        }
    }
}

impl Shared {
    /// Writes every update of `batch` with one write and one fdatasync.
    fn commit(
        &self,
        batch: &mut [Request],
        buf: &mut Vec<u8>,
    ) -> Result<Vec<Arc<Event>>, LogError> {
        let now = now_ms();
        let (file, base, first_seq) = {
            let mut st = self.state.write();
            self.rotate_if_needed(&mut st, now)?;
            let active = st
                .segments
                .back()
                .expect("an active segment after rotation");
            (active.file.clone(), active.len, st.next_seq)
        };
        buf.clear();
        let mut spans = Vec::new();
        for (seq, update) in (first_seq..).zip(batch.iter().flat_map(|r| &r.updates)) {
            let start = buf.len();
            encode(seq, now, update, buf);
            spans.push((base + start as u64, (buf.len() - start) as u64));
        }
        let written = file.write_all_at(buf, base).and_then(|()| file.sync_data());
        if let Err(e) = written {
            // Nothing of a failed commit may become visible, now or after a restart.
            let _ = file.set_len(base).and_then(|()| file.sync_data());
            return Err(LogError::io(
                "could not write the history, update not stored",
                e,
            ));
        }

        let mut events = Vec::with_capacity(spans.len());
        let mut st = self.state.write();
        let updates = batch
            .iter_mut()
            .flat_map(|r| std::mem::take(&mut r.updates));
        for ((offset, len), update) in spans.into_iter().zip(updates) {
            let seq = st.next_seq;
            st.segments
                .back_mut()
                .expect("active segment")
                .push(offset, len, now);
            st.index(self.hasher.hash_one(&update.id), seq);
            st.next_seq += 1;
            let event = Arc::new(Event::new(seq, update));
            st.recent.push_back(event.clone());
            events.push(event);
        }
        while st.recent.len() > RECENT {
            st.recent.pop_front();
        }
        let removed = self.retain(&mut st, now);
        drop(st);
        self.delete(removed);
        Ok(events)
    }

    /// Applies age retention and frees segments when nothing is published.
    pub(super) fn maintain(&self, now: u64) {
        let mut st = self.state.write();
        if self.retention.max_age.is_some() {
            let expired = st
                .segments
                .back()
                .is_some_and(|s| s.count() > 0 && st.first_seq >= s.next_seq());
            if expired {
                if let Err(e) = self.start_segment(&mut st, now) {
                    tracing::warn!("{e}");
                }
            }
        }
        let removed = self.retain(&mut st, now);
        drop(st);
        self.delete(removed);
    }

    /// Starts a new segment when the active one is full or old.
    fn rotate_if_needed(&self, st: &mut State, now: u64) -> Result<(), LogError> {
        let limit_bytes = (self.retention.max_bytes / 8).clamp(64 << 10, MAX_SEGMENT_BYTES);
        let limit_count = (self.retention.max_count / 8).max(64);
        let full = match st.segments.back() {
            None => true,
            Some(s) => {
                let old = match (self.retention.max_age, s.first_ms()) {
                    (Some(age), Some(first)) => {
                        now.saturating_sub(first) > crate::clock::millis(age / 8)
                    }
                    _ => false,
                };
                s.count() > 0 && (s.len >= limit_bytes || s.count() >= limit_count || old)
            }
        };
        if full {
            self.start_segment(st, now)?;
        }
        Ok(())
    }

    fn start_segment(&self, st: &mut State, now: u64) -> Result<(), LogError> {
        let seg = Segment::create(&self.dir, st.next_seq, now).map_err(|e| {
            LogError::io(
                "could not start a new history segment, update not stored",
                e,
            )
        })?;
        st.segments.push_back(seg);
        Ok(())
    }

    /// Moves `first_seq` past what retention drops; returns the segments that
    /// are now entirely dropped (never the active one).
    fn retain(&self, st: &mut State, now: u64) -> Vec<Segment> {
        let r = &self.retention;
        let newest = st.next_seq.saturating_sub(1);
        let mut first = st
            .first_seq
            .max(st.next_seq.saturating_sub(r.max_count as u64));
        // Bytes: drop from the oldest until what remains fits (keep the newest).
        let mut kept = st.bytes_from(first);
        for s in &st.segments {
            if s.next_seq() <= first {
                continue;
            }
            if kept <= r.max_bytes || first >= newest {
                break;
            }
            let end = s.offset_of(s.next_seq());
            let from = s.offset_of(first.max(s.first_seq));
            if kept - (end - from) > r.max_bytes {
                kept -= end - from;
                first = s.next_seq();
                continue;
            }
            let excess = kept - r.max_bytes;
            let (mut lo, mut hi) = (first.max(s.first_seq), s.next_seq());
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if s.offset_of(mid) - from >= excess {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
            first = lo;
            break;
        }
        first = first.min(newest.max(st.first_seq));
        // Age.
        if let Some(age) = r.max_age {
            let cutoff = now.saturating_sub(crate::clock::millis(age));
            for s in &st.segments {
                if s.next_seq() <= first {
                    continue;
                }
                let s_first = s.first_at_or_after(cutoff);
                first = first.max(s_first);
                if s_first < s.next_seq() {
                    break;
                }
            }
        }
        st.first_seq = first;
        while st.recent.front().is_some_and(|e| e.seq < first) {
            st.recent.pop_front();
        }
        let mut removed = Vec::new();
        while st.segments.len() > 1 && st.segments[0].next_seq() <= first {
            removed.extend(st.segments.pop_front());
        }
        removed
    }

    /// Deletes dropped segments and forgets their ids.
    fn delete(&self, removed: Vec<Segment>) {
        for seg in removed {
            let ids = self.ids_in(&seg);
            {
                let mut st = self.state.write();
                for (hash, seq) in ids {
                    if st.ids.get(&hash) == Some(&seq) {
                        st.ids.remove(&hash);
                    }
                }
            }
            if let Err(e) = std::fs::remove_file(&seg.path) {
                tracing::warn!("could not delete {}: {e}", seg.path.display());
            }
        }
    }
    /// The id hashes and positions of a segment's records, read back
    /// before it is deleted (ids are not kept in memory).
    fn ids_in(&self, seg: &Segment) -> Vec<(u64, u64)> {
        let bytes = match Segment::read(&seg.file, 0, seg.len) {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::warn!(
                    "could not read {} before deleting it: {e}",
                    seg.path.display()
                );
                return Vec::new();
            }
        };
        let mut out = Vec::with_capacity(seg.count());
        let mut at = 0;
        while let Some(Decoded::Record(r, used)) =
            bytes.get(at..).filter(|b| !b.is_empty()).map(decode)
        {
            out.push((self.hasher.hash_one(&r.update.id), r.seq));
            at += used;
        }
        out
    }
}
