//! Reading the values a check needs from the fuzzer's bytes: reads past the
//! end give zeros and empty slices, so every input means something.

/// The fuzzer's bytes, read from the front.
pub(crate) struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    /// Reads `data` from its first byte.
    pub(crate) fn new(data: &'a [u8]) -> Input<'a> {
        Input(data)
    }

    /// The next `n` bytes (fewer at the end).
    pub(crate) fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }

    /// The next byte.
    pub(crate) fn byte(&mut self) -> u8 {
        self.bytes(1).first().copied().unwrap_or(0)
    }

    /// The next two bytes, little-endian.
    pub(crate) fn u16(&mut self) -> u16 {
        u16::from(self.byte()) | u16::from(self.byte()) << 8
    }

    /// The next eight bytes, little-endian.
    pub(crate) fn u64(&mut self) -> u64 {
        (0..8).fold(0, |n, i| n | u64::from(self.byte()) << (8 * i))
    }

    /// Every byte not read yet.
    pub(crate) fn rest(self) -> &'a [u8] {
        self.0
    }
}

/// The first line of `text` and the lines after it (at most `most`), split
/// on LF: a matcher and the topics to try on it, say.
pub(crate) fn lines(text: &str, most: usize) -> (&str, Vec<&str>) {
    let mut lines = text.split('\n');
    let first = lines.next().unwrap_or_default();
    (first, lines.take(most).collect())
}
