//! HPACK header compression for HTTP/2 (RFC 7541), server side.
//!
//! [`Decoder`] decodes the request header blocks of one connection; it owns
//! that connection's dynamic table and nothing else between calls.
//! [`encode_response`] and [`encode_trailers`] write response header blocks
//! without any state: they only use the static table and literals that are
//! never added to a dynamic table, so the peer's decoder table stays empty and
//! this side keeps nothing per connection.
//!
//! Pure code: no I/O, no dependencies beyond `std`.

mod huffman;
mod table;
#[cfg(test)]
mod tests;

use std::fmt;

use table::{DynamicTable, Entry, ENTRY_OVERHEAD, STATIC_LEN, STATIC_TABLE};

/// Why a header block could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// The block is malformed (the reason says how); the decoder is unusable
    /// from then on and the connection must end with `COMPRESSION_ERROR`.
    Compression(&'static str),
    /// The decoded header list is larger than the limit given to
    /// [`Decoder::decode`]; the block was still decoded to its end, so the
    /// decoder stays usable.
    ListTooLarge,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Compression(reason) => write!(f, "HPACK decoding error: {reason}"),
            DecodeError::ListTooLarge => f.write_str("header list too large"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Decodes header blocks of one connection (it owns the dynamic table).
#[derive(Debug)]
pub(crate) struct Decoder {
    /// The dynamic table, shared by all blocks of the connection.
    table: DynamicTable,
    /// The largest size a dynamic table size update may ask for.
    max_size: usize,
    /// A compression error happened: the table is out of step with the peer's.
    failed: bool,
}

impl Decoder {
    /// A decoder whose dynamic table may hold `max_size` bytes (the
    /// `SETTINGS_HEADER_TABLE_SIZE` this side advertised; 4096 by default).
    ///
    /// Allocates nothing until entries are added.
    pub(crate) fn new(max_size: usize) -> Decoder {
        Decoder {
            table: DynamicTable::new(max_size),
            max_size,
            failed: false,
        }
    }

    /// Decodes one complete header block (all HEADERS/CONTINUATION fragments
    /// joined), calling `field(name, value)` for each field in order.
    ///
    /// `max_list_size` bounds the decoded list as `SETTINGS_MAX_HEADER_LIST_SIZE`
    /// counts it (sum of name len + value len + 32 per field). When the list
    /// exceeds it, decoding still runs to the end of the block (so the dynamic
    /// table stays in step with the peer's encoder) but `field` is no longer
    /// called, and the result is `Err(DecodeError::ListTooLarge)`.
    ///
    /// Any malformed input (bad integer, index 0 or out of range, string past
    /// the end, bad Huffman padding/EOS, a table-size update above `max_size`
    /// or not at the block start, integer overflow) is
    /// `Err(DecodeError::Compression(reason))` and the decoder must be
    /// considered unusable (connection error `COMPRESSION_ERROR`); later calls
    /// fail the same way.
    pub(crate) fn decode(
        &mut self,
        block: &[u8],
        max_list_size: usize,
        field: impl FnMut(&[u8], &[u8]),
    ) -> Result<(), DecodeError> {
        if self.failed {
            return Err(DecodeError::Compression(
                "decoder unusable after an earlier error",
            ));
        }
        let mut sink = Sink {
            field,
            size: 0,
            max: max_list_size,
            over: false,
        };
        match self.decode_block(block, &mut sink) {
            Err(reason) => {
                self.failed = true;
                Err(DecodeError::Compression(reason))
            }
            Ok(()) if sink.over => Err(DecodeError::ListTooLarge),
            Ok(()) => Ok(()),
        }
    }

    /// Decodes `block` into `sink`; the error is a compression error's reason.
    fn decode_block<F: FnMut(&[u8], &[u8])>(
        &mut self,
        block: &[u8],
        sink: &mut Sink<F>,
    ) -> Result<(), &'static str> {
        let mut src = Reader { buf: block, pos: 0 };
        // Huffman output of the current field's strings; allocates only if a
        // Huffman-coded string appears.
        let mut scratch = Vec::new();
        let mut field_seen = false;
        while let Some(&first) = block.get(src.pos) {
            if first & 0x80 != 0 {
                // Indexed header field (Section 6.1).
                let index = src.int(7)?;
                let (name, value) = lookup(&self.table, index)?;
                sink.emit(name, value);
            } else if first & 0xe0 == 0x20 {
                // Dynamic table size update (Section 6.3).
                if field_seen {
                    return Err("dynamic table size update after a header field");
                }
                let size = src.int(5)?;
                if size > self.max_size {
                    return Err("dynamic table size update above the advertised maximum");
                }
                self.table.set_max_size(size);
                continue;
            } else {
                // Literal header field with incremental indexing (01, 6-bit
                // index, Section 6.2.1), without indexing (0000, 6.2.2) or
                // never indexed (0001, 6.2.3).
                let add = first & 0x40 != 0;
                let index = src.int(if add { 6 } else { 4 })?;
                scratch.clear();
                let name = if index == 0 {
                    Some(src.string(&mut scratch)?)
                } else {
                    // Check the index before reading on.
                    lookup(&self.table, index)?;
                    None
                };
                let value = src.string(&mut scratch)?.get(block, &scratch);
                let name = match name {
                    Some(loc) => loc.get(block, &scratch),
                    None => lookup(&self.table, index)?.0,
                };
                sink.emit(name, value);
                if add {
                    let entry = Entry::new(name, value);
                    self.table.insert(entry);
                }
            }
            field_seen = true;
        }
        Ok(())
    }
}

/// The field at HPACK `index` (static 1..=61, then dynamic, newest first).
fn lookup(table: &DynamicTable, index: usize) -> Result<(&[u8], &[u8]), &'static str> {
    match index {
        0 => Err("index 0"),
        1..=STATIC_LEN => Ok(STATIC_TABLE[index - 1]),
        _ => table
            .get(index - STATIC_LEN - 1)
            .ok_or("index past the end of the table"),
    }
}

/// Passes decoded fields on while the list stays within its limit.
struct Sink<F> {
    /// The caller's callback.
    field: F,
    /// The list size so far, as `SETTINGS_MAX_HEADER_LIST_SIZE` counts it.
    size: usize,
    /// The limit on `size`.
    max: usize,
    /// `size` went past `max`: no more fields are passed on.
    over: bool,
}

impl<F: FnMut(&[u8], &[u8])> Sink<F> {
    /// Counts one field and passes it on unless the list is too large.
    fn emit(&mut self, name: &[u8], value: &[u8]) {
        self.size = self
            .size
            .saturating_add(name.len())
            .saturating_add(value.len())
            .saturating_add(ENTRY_OVERHEAD);
        if self.size > self.max {
            self.over = true;
        }
        if !self.over {
            (self.field)(name, value);
        }
    }
}

/// Where a decoded string lies: in the block itself or in the scratch buffer
/// (when it was Huffman-coded).
#[derive(Clone, Copy)]
enum Loc {
    /// `block[start..end]`.
    Block(usize, usize),
    /// `scratch[start..end]`.
    Scratch(usize, usize),
}

impl Loc {
    /// The string's bytes.
    fn get<'a>(self, block: &'a [u8], scratch: &'a [u8]) -> &'a [u8] {
        match self {
            Loc::Block(start, end) => &block[start..end],
            Loc::Scratch(start, end) => &scratch[start..end],
        }
    }
}

/// A cursor over a header block.
struct Reader<'a> {
    /// The whole block.
    buf: &'a [u8],
    /// The next byte to read.
    pos: usize,
}

impl Reader<'_> {
    /// Reads an integer with a `prefix`-bit prefix (Section 5.1), starting at
    /// the current byte, whose high bits are ignored.
    ///
    /// Values above `u32::MAX` or with more than five continuation bytes are
    /// rejected: no valid index, length or table size comes near them.
    fn int(&mut self, prefix: u32) -> Result<usize, &'static str> {
        let mask = (1u8 << prefix) - 1;
        let first = self.byte("truncated integer")? & mask;
        if first < mask {
            return Ok(usize::from(first));
        }
        let mut value = u64::from(mask);
        let mut shift = 0u32;
        loop {
            let byte = self.byte("truncated integer")?;
            if shift > 28 {
                return Err("integer overflow");
            }
            value += u64::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                break;
            }
        }
        u32::try_from(value)
            .ok()
            .and_then(|v| usize::try_from(v).ok())
            .ok_or("integer overflow")
    }

    /// Reads a string literal (Section 5.2); Huffman-coded strings are decoded
    /// onto the end of `scratch`.
    fn string(&mut self, scratch: &mut Vec<u8>) -> Result<Loc, &'static str> {
        let huffman = self.buf.get(self.pos).ok_or("truncated string")? & 0x80 != 0;
        let len = self.int(7)?;
        let start = self.pos;
        let end = match start.checked_add(len) {
            Some(end) if end <= self.buf.len() => end,
            _ => return Err("string past the end of the block"),
        };
        self.pos = end;
        if huffman {
            let from = scratch.len();
            huffman::decode(&self.buf[start..end], scratch)?;
            Ok(Loc::Scratch(from, scratch.len()))
        } else {
            Ok(Loc::Block(start, end))
        }
    }

    /// The next byte, or `Err(err)` at the end of the block.
    fn byte(&mut self, err: &'static str) -> Result<u8, &'static str> {
        let byte = *self.buf.get(self.pos).ok_or(err)?;
        self.pos += 1;
        Ok(byte)
    }
}

/// Appends the header block of a response: `:status` then the fields.
///
/// Names must be lowercase (HTTP/2 requires it; this is not checked).
/// `first`: this is the first block this side sends on the connection; it
/// then starts with a dynamic table size update to 0 (so the peer's decoder
/// knows this encoder uses no dynamic table whatever
/// `SETTINGS_HEADER_TABLE_SIZE` it advertised).
///
/// `status` should be a three-digit status code; other values are written
/// as their decimal digits.
pub(crate) fn encode_response<'a>(
    out: &mut Vec<u8>,
    first: bool,
    status: u16,
    fields: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
) {
    debug_assert!((100..=999).contains(&status), "status {status}");
    if first {
        encode_int(out, 0x20, 5, 0);
    }
    // The static table's `:status` entries (indices 8..=14).
    let indexed = match status {
        200 => Some(8),
        204 => Some(9),
        206 => Some(10),
        304 => Some(11),
        400 => Some(12),
        404 => Some(13),
        500 => Some(14),
        _ => None,
    };
    if let Some(index) = indexed {
        encode_int(out, 0x80, 7, index);
    } else {
        // Literal without indexing, name `:status` (index 8).
        encode_int(out, 0x00, 4, 8);
        let mut digits = [0u8; 5];
        let mut start = digits.len();
        let mut rest = status;
        loop {
            start -= 1;
            digits[start] = b"0123456789"[usize::from(rest % 10)];
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        encode_string(out, &digits[start..]);
    }
    encode_fields(out, fields);
}

/// Appends a trailer block (fields only, no pseudo-header), with the same
/// rules for `first` as [`encode_response`].
pub(crate) fn encode_trailers<'a>(
    out: &mut Vec<u8>,
    first: bool,
    fields: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
) {
    if first {
        encode_int(out, 0x20, 5, 0);
    }
    encode_fields(out, fields);
}

/// Appends each field as a literal without indexing (Section 6.2.2), naming
/// it by static index when the static table has the name.
fn encode_fields<'a>(out: &mut Vec<u8>, fields: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) {
    for (name, value) in fields {
        if let Some(index) = table::static_name_index(name) {
            encode_int(out, 0x00, 4, index);
        } else {
            out.push(0x00);
            encode_string(out, name);
        }
        encode_string(out, value);
    }
}

/// Appends a raw (not Huffman-coded) string literal (Section 5.2).
fn encode_string(out: &mut Vec<u8>, s: &[u8]) {
    encode_int(out, 0x00, 7, s.len());
    out.extend_from_slice(s);
}

/// Appends `value` as an integer with a `prefix`-bit prefix (Section 5.1),
/// `flags` holding the first byte's bits above the prefix.
fn encode_int(out: &mut Vec<u8>, flags: u8, prefix: u32, value: usize) {
    let mask = (1usize << prefix) - 1;
    if value < mask {
        out.push(flags | low_byte(value));
        return;
    }
    out.push(flags | low_byte(mask));
    let mut rest = value - mask;
    while rest >= 0x80 {
        out.push(0x80 | low_byte(rest & 0x7f));
        rest >>= 7;
    }
    out.push(low_byte(rest));
}

/// The low eight bits of `v`.
fn low_byte(v: usize) -> u8 {
    v.to_le_bytes()[0]
}
