//! Segment files: a run of consecutive records in one append-only file named
//! after its first sequence number. Retention deletes whole segments, which
//! is what gives disk space back.

use std::fs::{File, OpenOptions};
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::record::{decode, Decoded, Record};

/// File name suffix of segments.
const SUFFIX: &str = ".seg";

/// One segment and the in-memory index of its records.
#[derive(Debug)]
pub(super) struct Segment {
    /// Sequence number of the first record (the file name).
    pub(super) first_seq: u64,
    pub(super) path: PathBuf,
    pub(super) file: Arc<File>,
    /// Byte offset of each record: 4 bytes per event.
    offsets: Vec<u32>,
    /// Seconds since `base_ms` at which each record was written: 4 bytes per event.
    ages: Vec<u32>,
    base_ms: u64,
    /// Bytes of valid records.
    pub(super) len: u64,
}

/// What recovery had to drop from a damaged segment.
#[derive(Debug)]
pub(super) struct Damage {
    pub(super) offset: u64,
    pub(super) dropped_bytes: u64,
    pub(super) reason: &'static str,
}

/// The file name of the segment whose first record is at position
/// `first_seq`: the position in 20 digits, so names sort as positions do.
pub fn file_name(first_seq: u64) -> String {
    format!("{first_seq:020}{SUFFIX}")
}

/// Segment files in `dir`, sorted by first sequence number.
pub(super) fn list(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if let Some(seq) = name.strip_suffix(SUFFIX).and_then(|s| s.parse().ok()) {
            found.push((seq, path));
        }
    }
    found.sort();
    Ok(found)
}

impl Segment {
    /// Creates an empty segment starting at `first_seq`, durably named.
    pub(super) fn create(dir: &Path, first_seq: u64, now_ms: u64) -> io::Result<Segment> {
        let path = dir.join(file_name(first_seq));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        File::open(dir)?.sync_all()?;
        Ok(Segment {
            first_seq,
            path,
            file: Arc::new(file),
            offsets: Vec::new(),
            ages: Vec::new(),
            base_ms: now_ms,
            len: 0,
        })
    }

    /// Opens a segment, checking every record; a damaged tail is cut off
    /// (the file is truncated to its valid prefix) and reported.
    pub(super) fn recover(
        path: PathBuf,
        first_seq: u64,
        mut each: impl FnMut(&Record),
    ) -> io::Result<(Segment, Option<Damage>)> {
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        let bytes = std::fs::read(&path)?;
        let mut seg = Segment {
            first_seq,
            path,
            file: Arc::new(file),
            offsets: Vec::new(),
            ages: Vec::new(),
            base_ms: 0,
            len: 0,
        };
        let mut at = 0usize;
        let mut damage = None;
        while at < bytes.len() {
            match decode(&bytes[at..]) {
                Decoded::Record(record, used) if record.seq == seg.next_seq() => {
                    seg.push(at as u64, used as u64, record.unix_ms);
                    each(&record);
                    at += used;
                }
                Decoded::Record(..) => {
                    damage = Some("sequence number out of order");
                    break;
                }
                Decoded::Incomplete => {
                    damage = Some("incomplete record (torn write)");
                    break;
                }
                Decoded::Corrupt(reason) => {
                    damage = Some(reason);
                    break;
                }
            }
        }
        let damage = damage.map(|reason| Damage {
            offset: at as u64,
            dropped_bytes: (bytes.len() - at) as u64,
            reason,
        });
        if damage.is_some() {
            seg.file.set_len(at as u64)?;
            seg.file.sync_all()?;
        }
        Ok((seg, damage))
    }

    /// Sequence number the next record must have.
    pub(super) fn next_seq(&self) -> u64 {
        self.first_seq + self.offsets.len() as u64
    }

    /// Number of records.
    pub(super) fn count(&self) -> usize {
        self.offsets.len()
    }

    /// Indexes a record written at `offset` with `len` bytes.
    pub(super) fn push(&mut self, offset: u64, len: u64, unix_ms: u64) {
        if self.offsets.is_empty() {
            self.base_ms = unix_ms;
        }
        self.offsets
            .push(u32::try_from(offset).expect("segments are rotated long before 4 GiB"));
        self.ages
            .push(u32::try_from(unix_ms.saturating_sub(self.base_ms) / 1000).unwrap_or(u32::MAX));
        self.len = offset + len;
    }

    /// Write time of the first record, if any.
    pub(super) fn first_ms(&self) -> Option<u64> {
        (!self.offsets.is_empty()).then_some(self.base_ms)
    }

    /// Byte offset where record `seq` starts (or the end for `next_seq`).
    pub(super) fn offset_of(&self, seq: u64) -> u64 {
        let i = usize::try_from(seq - self.first_seq).unwrap_or(usize::MAX);
        self.offsets.get(i).map_or(self.len, |o| u64::from(*o))
    }

    /// First sequence whose write time is at or after `cutoff_ms`.
    pub(super) fn first_at_or_after(&self, cutoff_ms: u64) -> u64 {
        let cutoff = cutoff_ms.saturating_sub(self.base_ms).div_ceil(1000);
        let i = self.ages.partition_point(|age| u64::from(*age) < cutoff);
        self.first_seq + i as u64
    }

    /// The records (indexes in this segment) that may have been written
    /// either side of `unix_ms`: write times are indexed to the second,
    /// so every record before the range was written before `unix_ms`, and
    /// every one after it later; those inside must be read to tell.
    pub(super) fn around(&self, unix_ms: u64) -> Range<usize> {
        if unix_ms <= self.base_ms {
            return 0..0;
        }
        let second = (unix_ms - self.base_ms) / 1000;
        let start = self.ages.partition_point(|age| u64::from(*age) < second);
        let end = self.ages.partition_point(|age| u64::from(*age) <= second);
        start..end
    }

    /// The byte offsets where the records of `range` (indexes in this
    /// segment) start, followed by where the last one ends.
    pub(super) fn bounds(&self, range: Range<usize>) -> Vec<u64> {
        (range.start..=range.end)
            .map(|i| self.offset_of(self.first_seq + i as u64))
            .collect()
    }

    /// Reads the bytes of records `from..to` (positions in this segment).
    pub(super) fn read(file: &File, start: u64, end: u64) -> io::Result<Vec<u8>> {
        let len = usize::try_from(end - start).map_err(io::Error::other)?;
        let mut buf = vec![0; len];
        file.read_exact_at(&mut buf, start)?;
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::disk::record::encode;
    use crate::proto::update::Update;
    use std::io::Write;

    fn write_records(path: &Path, seqs: std::ops::Range<u64>) -> Vec<u8> {
        let mut buf = Vec::new();
        for seq in seqs {
            let u = Update {
                id: format!("id-{seq}"),
                topics: vec!["t".into()],
                data: "d".into(),
                private: false,
                event_type: None,
                retry: None,
                received: None,
            };
            encode(seq, 1_000 * seq, &u, &mut buf);
        }
        std::fs::File::create(path)
            .unwrap()
            .write_all(&buf)
            .unwrap();
        buf
    }

    #[test]
    fn recovers_valid_prefix_of_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000005.seg");
        let full = write_records(&path, 5..10);
        let cut = full.len() - 3;
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(cut as u64)
            .unwrap();
        let mut seen = Vec::new();
        let (seg, damage) = Segment::recover(path.clone(), 5, |r| seen.push(r.seq)).unwrap();
        assert_eq!(seen, [5, 6, 7, 8]);
        assert_eq!(seg.next_seq(), 9);
        let damage = damage.expect("torn tail reported");
        assert_eq!(damage.offset, seg.len);
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            seg.len,
            "file truncated to the valid prefix"
        );
        assert_eq!(seg.first_at_or_after(7_000), 7);
        assert_eq!(seg.around(7_000), 2..3, "the record written in that second");
        assert_eq!(seg.around(7_999), 2..3);
        assert_eq!(seg.around(4_000), 0..0, "before the first");
        assert_eq!(seg.around(60_000), 4..4, "after the last");
        assert_eq!(seg.bounds(2..3), [seg.offset_of(7), seg.offset_of(8)]);
    }

    #[test]
    fn corrupted_byte_cuts_from_there() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000001.seg");
        let full = write_records(&path, 1..4);
        let mut bytes = full.clone();
        let second = bytes.len() / 3 + 10;
        bytes[second] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let (seg, damage) = Segment::recover(path, 1, |_| {}).unwrap();
        assert_eq!(seg.count(), 1);
        assert!(damage.is_some());
    }
}
