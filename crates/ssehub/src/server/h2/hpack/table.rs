//! The HPACK static table (RFC 7541 Appendix A) and the dynamic table
//! (RFC 7541 Section 2.3.2 and Section 4).

use std::collections::VecDeque;

/// Number of entries in the static table; dynamic indices start after it.
pub(crate) const STATIC_LEN: usize = 61;

/// The static table, RFC 7541 Appendix A. Index `i` (1-based) is `STATIC_TABLE[i - 1]`.
pub(crate) static STATIC_TABLE: [(&[u8], &[u8]); STATIC_LEN] = [
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
];

/// The 1-based static index of the first entry named `name`, if any.
pub(crate) fn static_name_index(name: &[u8]) -> Option<usize> {
    STATIC_TABLE
        .iter()
        .position(|&(n, _)| n == name)
        .map(|i| i + 1)
}

/// Per-entry overhead the RFC adds to name and value lengths (Section 4.1).
pub(crate) const ENTRY_OVERHEAD: usize = 32;

/// One dynamic-table entry: name and value in a single allocation.
#[derive(Debug)]
pub(crate) struct Entry {
    /// `name` followed by `value`.
    bytes: Box<[u8]>,
    /// Where the name ends and the value starts in `bytes`.
    name_len: usize,
}

impl Entry {
    /// An entry holding a copy of `name` and `value`.
    pub(crate) fn new(name: &[u8], value: &[u8]) -> Entry {
        let mut bytes = Vec::with_capacity(name.len() + value.len());
        bytes.extend_from_slice(name);
        bytes.extend_from_slice(value);
        Entry {
            bytes: bytes.into_boxed_slice(),
            name_len: name.len(),
        }
    }

    /// The entry's name and value.
    fn field(&self) -> (&[u8], &[u8]) {
        self.bytes.split_at(self.name_len)
    }

    /// The entry's size as the RFC counts it (Section 4.1).
    fn size(&self) -> usize {
        self.bytes.len() + ENTRY_OVERHEAD
    }
}

/// The dynamic table of one decoding context, newest entry first.
#[derive(Debug)]
pub(crate) struct DynamicTable {
    /// Entries, newest at the front, oldest at the back.
    entries: VecDeque<Entry>,
    /// Sum of the entries' sizes.
    size: usize,
    /// Current maximum size (as last set by a dynamic table size update).
    max_size: usize,
}

impl DynamicTable {
    /// An empty table whose maximum size is `max_size`; allocates nothing.
    pub(crate) fn new(max_size: usize) -> DynamicTable {
        DynamicTable {
            entries: VecDeque::new(),
            size: 0,
            max_size,
        }
    }

    /// The field at 0-based dynamic position `i` (0 is the newest entry).
    pub(crate) fn get(&self, i: usize) -> Option<(&[u8], &[u8])> {
        self.entries.get(i).map(Entry::field)
    }

    /// Changes the maximum size, evicting the oldest entries until the table fits.
    pub(crate) fn set_max_size(&mut self, max_size: usize) {
        self.max_size = max_size;
        self.evict_to(max_size);
        if self.entries.is_empty() {
            // A table shrunk to nothing holds no memory either.
            self.entries.shrink_to_fit();
        }
    }

    /// Adds `entry` as the newest entry, evicting old entries to make room;
    /// an entry larger than the maximum size empties the table and is not
    /// added (Section 4.4).
    pub(crate) fn insert(&mut self, entry: Entry) {
        let size = entry.size();
        if size > self.max_size {
            self.entries.clear();
            self.size = 0;
            return;
        }
        self.evict_to(self.max_size - size);
        self.entries.push_front(entry);
        self.size += size;
    }

    /// Evicts the oldest entries until the table's size is at most `limit`.
    fn evict_to(&mut self, limit: usize) {
        while self.size > limit {
            let Some(entry) = self.entries.pop_back() else {
                break;
            };
            self.size -= entry.size();
        }
    }

    /// The table's size as the RFC counts it.
    #[cfg(test)]
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// The entries, newest first, as owned pairs (for assertions).
    #[cfg(test)]
    pub(crate) fn fields(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.entries
            .iter()
            .map(|e| {
                let (n, v) = e.field();
                (n.to_vec(), v.to_vec())
            })
            .collect()
    }
}
