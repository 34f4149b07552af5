//! Tests: RFC 7541 Appendix C, Huffman, malformed input, list limits and
//! round trips through the encoder functions and a test-only encoder.

use std::collections::VecDeque;

use super::huffman::CODES;
use super::table::STATIC_TABLE;
use super::{encode_response, encode_trailers, DecodeError, Decoder};

/// A decoded header list.
type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// Bytes from hex text, whitespace ignored.
fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .map(|b| match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => panic!("not hex: {b}"),
        })
        .collect();
    assert_eq!(digits.len() % 2, 0, "odd hex length");
    digits.chunks(2).map(|p| p[0] << 4 | p[1]).collect()
}

/// Owned fields from string pairs.
fn fields(list: &[(&str, &str)]) -> Fields {
    list.iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

/// Decodes `block` with the given list limit, collecting the fields passed on.
fn decode_limited(
    d: &mut Decoder,
    block: &[u8],
    max_list: usize,
) -> (Fields, Result<(), DecodeError>) {
    let mut out = Vec::new();
    let r = d.decode(block, max_list, |n, v| out.push((n.to_vec(), v.to_vec())));
    (out, r)
}

/// Decodes `block` without a list limit; panics on errors.
fn decode_ok(d: &mut Decoder, block: &[u8]) -> Fields {
    let (out, r) = decode_limited(d, block, usize::MAX);
    r.expect("block decodes");
    out
}

/// The error decoding `block` on a fresh 4096-byte decoder.
fn decode_err(block: &[u8]) -> DecodeError {
    let mut d = Decoder::new(4096);
    decode_limited(&mut d, block, usize::MAX)
        .1
        .expect_err("block is rejected")
}

/// Asserts that `block` is a compression error on a fresh decoder.
fn assert_compression(block: &[u8]) {
    assert!(
        matches!(decode_err(block), DecodeError::Compression(_)),
        "{block:02x?}"
    );
}

/// Asserts the decoder's dynamic table holds `entries` (newest first) and has `size`.
fn assert_table(d: &Decoder, entries: &[(&str, &str)], size: usize) {
    assert_eq!(d.table.fields(), fields(entries));
    assert_eq!(d.table.size(), size);
}

/// Huffman-encodes `src` (Section 5.2: codes MSB first, padded with EOS's 1s).
fn huffman_encode(src: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut acc = 0u64;
    let mut bits = 0u32;
    for &b in src {
        let (code, len) = CODES[usize::from(b)];
        acc = acc << len | u64::from(code);
        bits += u32::from(len);
        while bits >= 8 {
            bits -= 8;
            out.push((acc >> bits).to_le_bytes()[0]);
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        let pad = 8 - bits;
        out.push((acc << pad | ((1 << pad) - 1)).to_le_bytes()[0]);
    }
    out
}

/// Appends an HPACK integer (test-side copy, independent of the encoder's).
fn put_int(out: &mut Vec<u8>, flags: u8, prefix: u32, value: usize) {
    let max = (1usize << prefix) - 1;
    if value < max {
        out.push(flags | u8::try_from(value).unwrap());
    } else {
        out.push(flags | u8::try_from(max).unwrap());
        let mut rest = value - max;
        while rest >= 128 {
            out.push(0x80 | u8::try_from(rest % 128).unwrap());
            rest /= 128;
        }
        out.push(u8::try_from(rest).unwrap());
    }
}

/// Appends a string literal, Huffman-coded or raw.
fn put_str(out: &mut Vec<u8>, s: &[u8], huffman: bool) {
    if huffman {
        let h = huffman_encode(s);
        put_int(out, 0x80, 7, h.len());
        out.extend_from_slice(&h);
    } else {
        put_int(out, 0x00, 7, s.len());
        out.extend_from_slice(s);
    }
}

/// A block with one literal-without-indexing field whose value is the given
/// already-encoded string literal bytes.
fn literal_with_value(encoded_value: &[u8]) -> Vec<u8> {
    let mut b = vec![0x00];
    put_str(&mut b, b"x", false);
    b.extend_from_slice(encoded_value);
    b
}

// ---- RFC 7541 Appendix C.2 ----

#[test]
fn c2_1_literal_with_indexing() {
    let mut d = Decoder::new(4096);
    let got = decode_ok(
        &mut d,
        &hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572"),
    );
    assert_eq!(got, fields(&[("custom-key", "custom-header")]));
    assert_table(&d, &[("custom-key", "custom-header")], 55);
}

#[test]
fn c2_2_literal_without_indexing() {
    let mut d = Decoder::new(4096);
    let got = decode_ok(&mut d, &hex("040c 2f73 616d 706c 652f 7061 7468"));
    assert_eq!(got, fields(&[(":path", "/sample/path")]));
    assert_table(&d, &[], 0);
}

#[test]
fn c2_3_literal_never_indexed() {
    let mut d = Decoder::new(4096);
    let got = decode_ok(&mut d, &hex("1008 7061 7373 776f 7264 0673 6563 7265 74"));
    assert_eq!(got, fields(&[("password", "secret")]));
    assert_table(&d, &[], 0);
}

#[test]
fn c2_4_indexed() {
    let mut d = Decoder::new(4096);
    assert_eq!(decode_ok(&mut d, &hex("82")), fields(&[(":method", "GET")]));
    assert_table(&d, &[], 0);
}

// ---- RFC 7541 Appendix C.3 and C.4: requests ----

/// Decodes the three requests of C.3 / C.4 (given as hex) on one decoder and
/// checks the fields and dynamic table after each.
fn check_requests(blocks: [&str; 3]) {
    let mut d = Decoder::new(4096);
    let got = decode_ok(&mut d, &hex(blocks[0]));
    assert_eq!(
        got,
        fields(&[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            (":authority", "www.example.com"),
        ])
    );
    assert_table(&d, &[(":authority", "www.example.com")], 57);

    let got = decode_ok(&mut d, &hex(blocks[1]));
    assert_eq!(
        got,
        fields(&[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            (":authority", "www.example.com"),
            ("cache-control", "no-cache"),
        ])
    );
    assert_table(
        &d,
        &[
            ("cache-control", "no-cache"),
            (":authority", "www.example.com"),
        ],
        110,
    );

    let got = decode_ok(&mut d, &hex(blocks[2]));
    assert_eq!(
        got,
        fields(&[
            (":method", "GET"),
            (":scheme", "https"),
            (":path", "/index.html"),
            (":authority", "www.example.com"),
            ("custom-key", "custom-value"),
        ])
    );
    assert_table(
        &d,
        &[
            ("custom-key", "custom-value"),
            ("cache-control", "no-cache"),
            (":authority", "www.example.com"),
        ],
        164,
    );
}

#[test]
fn c3_requests_without_huffman() {
    check_requests([
        "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
        "8286 84be 5808 6e6f 2d63 6163 6865",
        "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
    ]);
}

#[test]
fn c4_requests_with_huffman() {
    check_requests([
        "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
        "8286 84be 5886 a8eb 1064 9cbf",
        "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
    ]);
}

// ---- RFC 7541 Appendix C.5 and C.6: responses, 256-byte table ----

/// Decodes the three responses of C.5 / C.6 on one decoder with a 256-byte
/// table and checks the fields and the evictions after each.
fn check_responses(blocks: [&str; 3]) {
    let mut d = Decoder::new(256);
    let got = decode_ok(&mut d, &hex(blocks[0]));
    assert_eq!(
        got,
        fields(&[
            (":status", "302"),
            ("cache-control", "private"),
            ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
            ("location", "https://www.example.com"),
        ])
    );
    assert_table(
        &d,
        &[
            ("location", "https://www.example.com"),
            ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
            ("cache-control", "private"),
            (":status", "302"),
        ],
        222,
    );

    let got = decode_ok(&mut d, &hex(blocks[1]));
    assert_eq!(
        got,
        fields(&[
            (":status", "307"),
            ("cache-control", "private"),
            ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
            ("location", "https://www.example.com"),
        ])
    );
    assert_table(
        &d,
        &[
            (":status", "307"),
            ("location", "https://www.example.com"),
            ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
            ("cache-control", "private"),
        ],
        222,
    );

    let got = decode_ok(&mut d, &hex(blocks[2]));
    assert_eq!(
        got,
        fields(&[
            (":status", "200"),
            ("cache-control", "private"),
            ("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
            ("location", "https://www.example.com"),
            ("content-encoding", "gzip"),
            (
                "set-cookie",
                "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"
            ),
        ])
    );
    assert_table(
        &d,
        &[
            (
                "set-cookie",
                "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
            ),
            ("content-encoding", "gzip"),
            ("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
        ],
        215,
    );
}

#[test]
fn c5_responses_without_huffman() {
    check_responses([
        "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420
         3230 3133 2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77
         7777 2e65 7861 6d70 6c65 2e63 6f6d",
        "4803 3330 37c1 c0bf",
        "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32
         3220 474d 54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a
         584f 5157 454f 5049 5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33
         3630 303b 2076 6572 7369 6f6e 3d31",
    ]);
}

#[test]
fn c6_responses_with_huffman() {
    check_responses([
        "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81
         66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
        "4883 640e ffc1 c0bf",
        "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a
         839b d9ab 77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36
         72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07",
    ]);
}

// ---- Huffman ----

#[test]
fn huffman_code_table_is_canonical_and_complete() {
    // The code is canonical: ordered by (length, symbol), each code is the
    // previous one plus one, shifted left by the length difference.
    let mut order: Vec<usize> = (0..CODES.len()).collect();
    order.sort_by_key(|&s| (CODES[s].1, s));
    let mut expect = 0u32;
    let mut prev_len = CODES[order[0]].1;
    for (i, &s) in order.iter().enumerate() {
        let (code, len) = CODES[s];
        if i > 0 {
            expect = (expect + 1) << (len - prev_len);
        }
        assert_eq!(code, expect, "symbol {s}");
        prev_len = len;
    }
    // Complete: the Kraft sum is exactly 1.
    let kraft: u64 = CODES.iter().map(|&(_, len)| 1u64 << (30 - len)).sum();
    assert_eq!(kraft, 1 << 30);
    assert_eq!(CODES[256], (0x3fff_ffff, 30));
}

#[test]
fn huffman_encoder_matches_rfc_strings() {
    assert_eq!(
        huffman_encode(b"www.example.com"),
        hex("f1e3 c2e5 f23a 6ba0 ab90 f4ff")
    );
    assert_eq!(huffman_encode(b"no-cache"), hex("a8eb 1064 9cbf"));
    assert_eq!(huffman_encode(b"custom-key"), hex("25a8 49e9 5ba9 7d7f"));
    assert_eq!(
        huffman_encode(b"custom-value"),
        hex("25a8 49e9 5bb8 e8b4 bf")
    );
    assert_eq!(huffman_encode(b"302"), hex("6402"));
    assert_eq!(huffman_encode(b"private"), hex("aec3 771a 4b"));
}

#[test]
fn huffman_every_symbol_round_trips() {
    let mut out = Vec::new();
    for b in 0..=255u8 {
        out.clear();
        super::huffman::decode(&huffman_encode(&[b]), &mut out).unwrap();
        assert_eq!(out, [b], "symbol {b}");
        // And surrounded by other symbols, at every bit alignment.
        for prefix in 0..8 {
            let mut s = vec![b'a'; prefix];
            s.push(b);
            s.extend_from_slice(b"0\xff~");
            out.clear();
            super::huffman::decode(&huffman_encode(&s), &mut out).unwrap();
            assert_eq!(out, s);
        }
    }
    let all: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    out.clear();
    super::huffman::decode(&huffman_encode(&all), &mut out).unwrap();
    assert_eq!(out, all);
    out.clear();
    super::huffman::decode(&[], &mut out).unwrap();
    assert!(out.is_empty());
}

#[test]
fn huffman_through_decoder() {
    let mut d = Decoder::new(4096);
    let value: Vec<u8> = (0..=255u8).collect();
    let mut block = vec![0x10];
    put_str(&mut block, b"x-bin", true);
    put_str(&mut block, &value, true);
    assert_eq!(decode_ok(&mut d, &block), vec![(b"x-bin".to_vec(), value)]);
}

#[test]
fn huffman_padding_rules() {
    // 'a' is 00011: three 1s of padding is fine.
    let mut d = Decoder::new(4096);
    assert_eq!(
        decode_ok(&mut d, &literal_with_value(&[0x81, 0x1f])),
        fields(&[("x", "a")])
    );
    // Five 'a's are 25 bits: seven 1s of padding is the most allowed.
    assert_eq!(huffman_encode(b"aaaaa"), [0x18, 0xc6, 0x31, 0xff]);
    let mut d = Decoder::new(4096);
    assert_eq!(
        decode_ok(&mut d, &literal_with_value(&[0x84, 0x18, 0xc6, 0x31, 0xff])),
        fields(&[("x", "aaaaa")])
    );
    // Padding that is not all 1s.
    assert_compression(&literal_with_value(&[0x81, 0x1e]));
    assert_compression(&literal_with_value(&[0x81, 0x18]));
    // Padding longer than seven bits: 'a' then eleven 1s; a whole byte of 1s.
    assert_compression(&literal_with_value(&[0x82, 0x1f, 0xff]));
    assert_compression(&literal_with_value(&[0x81, 0xff]));
    // Five 'a's then a full byte of 1s (15 bits of padding).
    assert_compression(&literal_with_value(&[0x85, 0x18, 0xc6, 0x31, 0xff, 0xff]));
    // EOS (30 1s) in the string.
    assert_compression(&literal_with_value(&[0x84, 0xff, 0xff, 0xff, 0xff]));
    // 'a' then EOS then padding.
    assert_compression(&literal_with_value(&[0x85, 0x1f, 0xff, 0xff, 0xff, 0xff]));
}

// ---- Malformed input ----

#[test]
fn index_zero() {
    assert_compression(&[0x80]);
}

#[test]
fn index_past_the_table() {
    assert_compression(&[0xbe]); // 62, empty dynamic table
    assert_compression(&[0xff, 0x00]); // 127
    assert_compression(&[0x7e, 0x01, b'v']); // literal with name index 62
    assert_compression(&[0x0f, 0x2f, 0x01, b'v']); // literal, name index 62
                                                   // With one entry, 62 is valid and 63 is not.
    let mut d = Decoder::new(4096);
    let got = decode_ok(&mut d, &[0x40, 0x01, b'n', 0x01, b'v', 0xbe]);
    assert_eq!(got, fields(&[("n", "v"), ("n", "v")]));
    let mut d = Decoder::new(4096);
    let r = decode_limited(&mut d, &[0x40, 0x01, b'n', 0x01, b'v', 0xbf], usize::MAX).1;
    assert!(matches!(r, Err(DecodeError::Compression(_))));
    // The static table's last entry is 61.
    let mut d = Decoder::new(4096);
    assert_eq!(
        decode_ok(&mut d, &[0xbd]),
        fields(&[("www-authenticate", "")])
    );
}

#[test]
fn truncated_integer() {
    assert_compression(&[0xff]);
    assert_compression(&[0xff, 0x80]);
    assert_compression(&[0x3f]); // size update, no continuation
    assert_compression(&[0x00, 0x7f]); // string length
}

#[test]
fn integer_overflow() {
    let mut b = vec![0xff];
    b.extend_from_slice(&[0xff; 9]);
    b.push(0x01);
    assert_compression(&b);
    // Ten continuation bytes of zeros (no value overflow, but too long).
    let mut b = vec![0xff];
    b.extend_from_slice(&[0x80; 10]);
    b.push(0x00);
    assert_compression(&b);
    // Above u32::MAX within five continuation bytes.
    assert_compression(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
    // A string length near usize::MAX.
    assert_compression(&[0x00, 0x01, b'n', 0x7f, 0xff, 0xff, 0xff, 0xff, 0x0f]);
}

#[test]
fn string_past_the_end() {
    assert_compression(&[0x00, 0x05, b'a', b'b']);
    assert_compression(&[0x40, 0x01, b'a', 0x03, b'x']);
    assert_compression(&[0x00, 0x01, b'a']); // no value at all
    assert_compression(&[0x00]); // no name at all
    assert_compression(&[0x04, 0x82, 0xff]); // Huffman value past the end
}

#[test]
fn table_size_update_limits() {
    // 0x3f e1 1f is 4096: allowed, as are two updates in a row.
    let mut d = Decoder::new(4096);
    assert_eq!(
        decode_ok(&mut d, &[0x20, 0x3f, 0xe1, 0x1f, 0x82]),
        fields(&[(":method", "GET")])
    );
    // 4097 is above the maximum.
    assert_compression(&[0x3f, 0xe2, 0x1f]);
    let mut d = Decoder::new(0);
    assert!(decode_limited(&mut d, &[0x20], usize::MAX).1.is_ok());
    let r = decode_limited(&mut d, &[0x21], usize::MAX).1;
    assert!(matches!(r, Err(DecodeError::Compression(_))));
}

#[test]
fn table_size_update_after_a_field() {
    assert_compression(&[0x82, 0x20]);
    assert_compression(&[0x40, 0x01, b'n', 0x01, b'v', 0x3f, 0x01]);
    // At the start of the next block it is fine.
    let mut d = Decoder::new(4096);
    decode_ok(&mut d, &[0x82]);
    decode_ok(&mut d, &[0x20, 0x82]);
}

#[test]
fn table_size_update_evicts() {
    let mut d = Decoder::new(4096);
    // Three entries of 34 bytes each.
    decode_ok(
        &mut d,
        &[
            0x40, 1, b'a', 1, b'1', 0x40, 1, b'b', 1, b'2', 0x40, 1, b'c', 1, b'3',
        ],
    );
    assert_table(&d, &[("c", "3"), ("b", "2"), ("a", "1")], 102);
    // Down to 70: the oldest goes.
    decode_ok(&mut d, &[0x3f, 0x27]);
    assert_table(&d, &[("c", "3"), ("b", "2")], 68);
    // New entries now evict within 70 bytes.
    decode_ok(&mut d, &[0x40, 1, b'd', 1, b'4']);
    assert_table(&d, &[("d", "4"), ("c", "3")], 68);
    // An entry larger than the table empties it.
    let mut b = vec![0x40, 1, b'e', 40];
    b.extend_from_slice(&[b'x'; 40]);
    decode_ok(&mut d, &b);
    assert_table(&d, &[], 0);
    // Back up to 4096 (allowed) and to 0 (empties).
    decode_ok(&mut d, &[0x3f, 0xe1, 0x1f, 0x40, 1, b'f', 1, b'5']);
    assert_table(&d, &[("f", "5")], 34);
    decode_ok(&mut d, &[0x20]);
    assert_table(&d, &[], 0);
}

#[test]
fn decoder_is_unusable_after_an_error() {
    let mut d = Decoder::new(4096);
    assert!(matches!(
        decode_limited(&mut d, &[0x80], usize::MAX).1,
        Err(DecodeError::Compression(_))
    ));
    let (got, r) = decode_limited(&mut d, &[0x82], usize::MAX);
    assert!(matches!(r, Err(DecodeError::Compression(_))));
    assert!(got.is_empty());
}

#[test]
fn errors_display() {
    assert_eq!(
        DecodeError::Compression("index 0").to_string(),
        "HPACK decoding error: index 0"
    );
    assert_eq!(
        DecodeError::ListTooLarge.to_string(),
        "header list too large"
    );
    assert_eq!(decode_err(&[0x80]), DecodeError::Compression("index 0"));
}

// ---- Header list size limit ----

#[test]
fn list_too_large_keeps_the_table_in_step() {
    let mut d = Decoder::new(4096);
    let big = vec![b'v'; 100];
    let mut block = vec![0x82]; // :method GET, 42 bytes
    block.push(0x40);
    put_str(&mut block, b"x-big", false);
    put_str(&mut block, &big, true);
    block.push(0x84); // :path /, 38 bytes: never passed on
    let (got, r) = decode_limited(&mut d, &block, 100);
    assert_eq!(r, Err(DecodeError::ListTooLarge));
    assert_eq!(got, fields(&[(":method", "GET")]));
    // The entry was still added, and the decoder is still usable.
    assert_table(&d, &[("x-big", std::str::from_utf8(&big).unwrap())], 137);
    let got = decode_ok(&mut d, &[0xbe]);
    assert_eq!(got, vec![(b"x-big".to_vec(), big)]);
}

#[test]
fn list_limit_is_inclusive() {
    // :method GET (42) + :path / (38) = 80.
    let mut d = Decoder::new(4096);
    let (got, r) = decode_limited(&mut d, &[0x82, 0x84], 80);
    assert_eq!(r, Ok(()));
    assert_eq!(got.len(), 2);
    let (got, r) = decode_limited(&mut d, &[0x82, 0x84], 79);
    assert_eq!(r, Err(DecodeError::ListTooLarge));
    assert_eq!(got.len(), 1);
    // A compression error after the list went too large still wins.
    let (_, r) = decode_limited(&mut d, &[0x82, 0x84, 0x80], 10);
    assert!(matches!(r, Err(DecodeError::Compression(_))));
}

// ---- The response encoder ----

/// The pairs of `list` as byte slices, as the encoder functions take them.
fn roundtrip_fields<'a>(list: &[(&'a str, &'a str)]) -> Vec<(&'a [u8], &'a [u8])> {
    list.iter()
        .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
        .collect()
}

#[test]
fn encode_response_round_trips() {
    let long = "x".repeat(300);
    let list = [
        ("content-type", "text/event-stream"),
        ("cache-control", "no-cache"),
        ("x-accel-buffering", "no"),
        ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
        ("set-cookie", long.as_str()),
        ("www-authenticate", "Bearer"),
        ("x-empty", ""),
        ("accept-ranges", "none"),
        (long.as_str(), "long name"),
    ];
    for status in [200u16, 204, 206, 304, 400, 404, 500, 201, 429, 101, 999] {
        for first in [true, false] {
            let mut out = Vec::new();
            encode_response(&mut out, first, status, roundtrip_fields(&list));
            assert_eq!(out[0] == 0x20, first, "status {status}");
            // The peer may have advertised a table of 0 bytes.
            let mut d = Decoder::new(if first { 0 } else { 4096 });
            let got = decode_ok(&mut d, &out);
            let status = status.to_string();
            let mut want = vec![(":status", status.as_str())];
            want.extend_from_slice(&list);
            assert_eq!(got, fields(&want));
            assert_table(&d, &[], 0);
        }
    }
}

#[test]
fn encode_response_bytes() {
    let mut out = Vec::new();
    encode_response(&mut out, false, 200, []);
    assert_eq!(out, [0x88]);
    out.clear();
    encode_response(&mut out, true, 404, []);
    assert_eq!(out, [0x20, 0x8d]);
    out.clear();
    encode_response(&mut out, false, 201, []);
    assert_eq!(out, [0x08, 0x03, b'2', b'0', b'1']);
    out.clear();
    encode_response(&mut out, false, 429, []);
    assert_eq!(out, [0x08, 0x03, b'4', b'2', b'9']);
    // content-type is static index 31: 4-bit prefix then 16.
    out.clear();
    encode_response(&mut out, false, 200, [(&b"content-type"[..], &b"a"[..])]);
    assert_eq!(out, [0x88, 0x0f, 0x10, 0x01, b'a']);
    // An unknown name is a literal name.
    out.clear();
    encode_response(&mut out, false, 200, [(&b"x-y"[..], &b""[..])]);
    assert_eq!(out, [0x88, 0x00, 0x03, b'x', b'-', b'y', 0x00]);
}

#[test]
fn encode_trailers_round_trips() {
    let list = [("grpc-status", "0"), ("etag", "\"abc\""), ("x", "y")];
    for first in [true, false] {
        let mut out = Vec::new();
        encode_trailers(&mut out, first, roundtrip_fields(&list));
        assert_eq!(out[0] == 0x20, first);
        let mut d = Decoder::new(4096);
        assert_eq!(decode_ok(&mut d, &out), fields(&list));
        assert_table(&d, &[], 0);
    }
    let mut out = Vec::new();
    encode_trailers(&mut out, true, []);
    assert_eq!(out, [0x20]);
    out.clear();
    encode_trailers(&mut out, false, []);
    assert!(out.is_empty());
}

// ---- Randomised round trips through a test-only indexing encoder ----

/// xorshift64*: a small deterministic PRNG.
struct Rng(u64);

impl Rng {
    /// The next 64 random bits.
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n).unwrap()).unwrap()
    }

    /// True one time in `n`.
    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    /// A random byte string of up to `max` bytes drawn from `alphabet`.
    fn bytes(&mut self, max: usize, alphabet: &[u8]) -> Vec<u8> {
        let len = self.below(max + 1);
        (0..len)
            .map(|_| alphabet[self.below(alphabet.len())])
            .collect()
    }
}

/// An encoder using incremental indexing and Huffman coding, with its own
/// model of the dynamic table.
struct TestEncoder {
    /// Entries, newest first.
    table: VecDeque<(Vec<u8>, Vec<u8>)>,
    /// Sum of entry sizes.
    size: usize,
    /// Current maximum size.
    max: usize,
}

impl TestEncoder {
    /// Sets the maximum size, evicting as the decoder must.
    fn set_max(&mut self, max: usize) {
        self.max = max;
        self.evict(max);
    }

    /// Evicts the oldest entries until the size is at most `limit`.
    fn evict(&mut self, limit: usize) {
        while self.size > limit {
            let (n, v) = self.table.pop_back().unwrap();
            self.size -= n.len() + v.len() + 32;
        }
    }

    /// Adds an entry as Section 4.4 says.
    fn add(&mut self, name: &[u8], value: &[u8]) {
        let size = name.len() + value.len() + 32;
        if size > self.max {
            self.table.clear();
            self.size = 0;
        } else {
            self.evict(self.max - size);
            self.table.push_front((name.to_vec(), value.to_vec()));
            self.size += size;
        }
    }

    /// The HPACK index of an exact match and of a name match, if any.
    fn find(&self, name: &[u8], value: &[u8]) -> (Option<usize>, Option<usize>) {
        let all = STATIC_TABLE
            .iter()
            .map(|&(n, v)| (n, v))
            .chain(self.table.iter().map(|(n, v)| (&n[..], &v[..])));
        let mut by_name = None;
        for (i, (n, v)) in all.enumerate() {
            if n == name {
                if v == value {
                    return (Some(i + 1), Some(i + 1));
                }
                by_name.get_or_insert(i + 1);
            }
        }
        (None, by_name)
    }

    /// Appends the block for `list`, after the given table size updates.
    fn encode(&mut self, out: &mut Vec<u8>, updates: &[usize], list: &Fields, rng: &mut Rng) {
        for &u in updates {
            put_int(out, 0x20, 5, u);
            self.set_max(u);
        }
        for (name, value) in list {
            let (exact, by_name) = self.find(name, value);
            if let (Some(i), false) = (exact, rng.one_in(4)) {
                put_int(out, 0x80, 7, i);
                continue;
            }
            let name_index = if rng.one_in(5) { None } else { by_name };
            let kind = rng.below(4);
            let (flags, prefix) = match kind {
                0 => (0x00, 4),
                1 => (0x10, 4),
                _ => (0x40, 6),
            };
            if let Some(i) = name_index {
                put_int(out, flags, prefix, i);
            } else {
                out.push(flags);
                put_str(out, name, rng.one_in(2));
            }
            put_str(out, value, rng.one_in(2));
            if flags == 0x40 {
                self.add(name, value);
            }
        }
    }
}

#[test]
fn random_round_trips_with_indexing_and_huffman() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let name_chars = b"abcdefghijklmnopqrstuvwxyz-0123456789";
    let mut blocks = 0;
    let mut too_large = 0;
    for _conn in 0..300 {
        let setting = [0usize, 64, 100, 256, 4096][rng.below(5)];
        let mut d = Decoder::new(setting);
        let mut enc = TestEncoder {
            table: VecDeque::new(),
            size: 0,
            max: setting,
        };
        // A pool of fields so that indexing finds matches.
        let mut pool: Fields = (0..12)
            .map(|_| {
                let name = if rng.one_in(2) {
                    STATIC_TABLE[rng.below(STATIC_TABLE.len())].0.to_vec()
                } else {
                    rng.bytes(12, name_chars)
                };
                let value = if rng.one_in(3) {
                    rng.bytes(40, &all_bytes)
                } else {
                    rng.bytes(20, b"abc /:;=,0123456789ABC")
                };
                (name, value)
            })
            .collect();
        pool.extend(STATIC_TABLE.iter().map(|&(n, v)| (n.to_vec(), v.to_vec())));
        for _block in 0..15 {
            let mut updates = Vec::new();
            if rng.one_in(4) {
                updates.push(rng.below(setting + 1));
                if rng.one_in(3) {
                    updates.push(rng.below(setting + 1));
                }
            }
            let list: Fields = (0..rng.below(12))
                .map(|_| {
                    if rng.one_in(6) {
                        (rng.bytes(8, name_chars), rng.bytes(300, &all_bytes))
                    } else {
                        pool[rng.below(pool.len())].clone()
                    }
                })
                .collect();
            let mut block = Vec::new();
            enc.encode(&mut block, &updates, &list, &mut rng);
            let limit = if rng.one_in(3) {
                rng.below(600)
            } else {
                usize::MAX
            };
            // What the decoder must pass on: the fields while the list fits.
            let mut want = Vec::new();
            let mut size = 0usize;
            for (n, v) in &list {
                size = size.saturating_add(n.len() + v.len() + 32);
                if size > limit {
                    break;
                }
                want.push((n.clone(), v.clone()));
            }
            let (got, r) = decode_limited(&mut d, &block, limit);
            assert_eq!(got, want);
            if want.len() == list.len() {
                assert_eq!(r, Ok(()));
            } else {
                assert_eq!(r, Err(DecodeError::ListTooLarge));
                too_large += 1;
            }
            // The decoder's table is in step with the encoder's.
            assert_eq!(d.table.fields(), Vec::from(enc.table.clone()));
            assert_eq!(d.table.size(), enc.size);
            blocks += 1;
        }
    }
    assert_eq!(blocks, 4500);
    assert!(too_large > 100, "{too_large}");
}
