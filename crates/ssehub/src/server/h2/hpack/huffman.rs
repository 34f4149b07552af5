//! Huffman decoding of HPACK string literals (RFC 7541 Section 5.2 and
//! Appendix B).
//!
//! The code is decoded four bits at a time with a state machine built once
//! from [`CODES`]: a state is an internal node of the code tree, and each
//! (state, nibble) step yields the next state and at most one symbol (no code
//! is shorter than five bits).

use std::sync::LazyLock;

/// The Huffman code of RFC 7541 Appendix B: `(code, bit length)` for each
/// symbol 0..=255, then EOS (256). Codes are right-aligned.
pub(crate) static CODES: [(u32, u8); 257] = [
    (0x1ff8, 13),
    (0x7f_ffd8, 23),
    (0xfff_ffe2, 28),
    (0xfff_ffe3, 28),
    (0xfff_ffe4, 28),
    (0xfff_ffe5, 28),
    (0xfff_ffe6, 28),
    (0xfff_ffe7, 28),
    (0xfff_ffe8, 28),
    (0xff_ffea, 24),
    (0x3fff_fffc, 30),
    (0xfff_ffe9, 28),
    (0xfff_ffea, 28),
    (0x3fff_fffd, 30),
    (0xfff_ffeb, 28),
    (0xfff_ffec, 28),
    (0xfff_ffed, 28),
    (0xfff_ffee, 28),
    (0xfff_ffef, 28),
    (0xfff_fff0, 28),
    (0xfff_fff1, 28),
    (0xfff_fff2, 28),
    (0x3fff_fffe, 30),
    (0xfff_fff3, 28),
    (0xfff_fff4, 28),
    (0xfff_fff5, 28),
    (0xfff_fff6, 28),
    (0xfff_fff7, 28),
    (0xfff_fff8, 28),
    (0xfff_fff9, 28),
    (0xfff_fffa, 28),
    (0xfff_fffb, 28),
    (0x14, 6),      // ' '
    (0x3f8, 10),    // '!'
    (0x3f9, 10),    // '"'
    (0xffa, 12),    // '#'
    (0x1ff9, 13),   // '$'
    (0x15, 6),      // '%'
    (0xf8, 8),      // '&'
    (0x7fa, 11),    // '\''
    (0x3fa, 10),    // '('
    (0x3fb, 10),    // ')'
    (0xf9, 8),      // '*'
    (0x7fb, 11),    // '+'
    (0xfa, 8),      // ','
    (0x16, 6),      // '-'
    (0x17, 6),      // '.'
    (0x18, 6),      // '/'
    (0x0, 5),       // '0'
    (0x1, 5),       // '1'
    (0x2, 5),       // '2'
    (0x19, 6),      // '3'
    (0x1a, 6),      // '4'
    (0x1b, 6),      // '5'
    (0x1c, 6),      // '6'
    (0x1d, 6),      // '7'
    (0x1e, 6),      // '8'
    (0x1f, 6),      // '9'
    (0x5c, 7),      // ':'
    (0xfb, 8),      // ';'
    (0x7ffc, 15),   // '<'
    (0x20, 6),      // '='
    (0xffb, 12),    // '>'
    (0x3fc, 10),    // '?'
    (0x1ffa, 13),   // '@'
    (0x21, 6),      // 'A'
    (0x5d, 7),      // 'B'
    (0x5e, 7),      // 'C'
    (0x5f, 7),      // 'D'
    (0x60, 7),      // 'E'
    (0x61, 7),      // 'F'
    (0x62, 7),      // 'G'
    (0x63, 7),      // 'H'
    (0x64, 7),      // 'I'
    (0x65, 7),      // 'J'
    (0x66, 7),      // 'K'
    (0x67, 7),      // 'L'
    (0x68, 7),      // 'M'
    (0x69, 7),      // 'N'
    (0x6a, 7),      // 'O'
    (0x6b, 7),      // 'P'
    (0x6c, 7),      // 'Q'
    (0x6d, 7),      // 'R'
    (0x6e, 7),      // 'S'
    (0x6f, 7),      // 'T'
    (0x70, 7),      // 'U'
    (0x71, 7),      // 'V'
    (0x72, 7),      // 'W'
    (0xfc, 8),      // 'X'
    (0x73, 7),      // 'Y'
    (0xfd, 8),      // 'Z'
    (0x1ffb, 13),   // '['
    (0x7_fff0, 19), // '\\'
    (0x1ffc, 13),   // ']'
    (0x3ffc, 14),   // '^'
    (0x22, 6),      // '_'
    (0x7ffd, 15),   // '`'
    (0x3, 5),       // 'a'
    (0x23, 6),      // 'b'
    (0x4, 5),       // 'c'
    (0x24, 6),      // 'd'
    (0x5, 5),       // 'e'
    (0x25, 6),      // 'f'
    (0x26, 6),      // 'g'
    (0x27, 6),      // 'h'
    (0x6, 5),       // 'i'
    (0x74, 7),      // 'j'
    (0x75, 7),      // 'k'
    (0x28, 6),      // 'l'
    (0x29, 6),      // 'm'
    (0x2a, 6),      // 'n'
    (0x7, 5),       // 'o'
    (0x2b, 6),      // 'p'
    (0x76, 7),      // 'q'
    (0x2c, 6),      // 'r'
    (0x8, 5),       // 's'
    (0x9, 5),       // 't'
    (0x2d, 6),      // 'u'
    (0x77, 7),      // 'v'
    (0x78, 7),      // 'w'
    (0x79, 7),      // 'x'
    (0x7a, 7),      // 'y'
    (0x7b, 7),      // 'z'
    (0x7ffe, 15),   // '{'
    (0x7fc, 11),    // '|'
    (0x3ffd, 14),   // '}'
    (0x1ffd, 13),   // '~'
    (0xfff_fffc, 28),
    (0xf_ffe6, 20),
    (0x3f_ffd2, 22),
    (0xf_ffe7, 20),
    (0xf_ffe8, 20),
    (0x3f_ffd3, 22),
    (0x3f_ffd4, 22),
    (0x3f_ffd5, 22),
    (0x7f_ffd9, 23),
    (0x3f_ffd6, 22),
    (0x7f_ffda, 23),
    (0x7f_ffdb, 23),
    (0x7f_ffdc, 23),
    (0x7f_ffdd, 23),
    (0x7f_ffde, 23),
    (0xff_ffeb, 24),
    (0x7f_ffdf, 23),
    (0xff_ffec, 24),
    (0xff_ffed, 24),
    (0x3f_ffd7, 22),
    (0x7f_ffe0, 23),
    (0xff_ffee, 24),
    (0x7f_ffe1, 23),
    (0x7f_ffe2, 23),
    (0x7f_ffe3, 23),
    (0x7f_ffe4, 23),
    (0x1f_ffdc, 21),
    (0x3f_ffd8, 22),
    (0x7f_ffe5, 23),
    (0x3f_ffd9, 22),
    (0x7f_ffe6, 23),
    (0x7f_ffe7, 23),
    (0xff_ffef, 24),
    (0x3f_ffda, 22),
    (0x1f_ffdd, 21),
    (0xf_ffe9, 20),
    (0x3f_ffdb, 22),
    (0x3f_ffdc, 22),
    (0x7f_ffe8, 23),
    (0x7f_ffe9, 23),
    (0x1f_ffde, 21),
    (0x7f_ffea, 23),
    (0x3f_ffdd, 22),
    (0x3f_ffde, 22),
    (0xff_fff0, 24),
    (0x1f_ffdf, 21),
    (0x3f_ffdf, 22),
    (0x7f_ffeb, 23),
    (0x7f_ffec, 23),
    (0x1f_ffe0, 21),
    (0x1f_ffe1, 21),
    (0x3f_ffe0, 22),
    (0x1f_ffe2, 21),
    (0x7f_ffed, 23),
    (0x3f_ffe1, 22),
    (0x7f_ffee, 23),
    (0x7f_ffef, 23),
    (0xf_ffea, 20),
    (0x3f_ffe2, 22),
    (0x3f_ffe3, 22),
    (0x3f_ffe4, 22),
    (0x7f_fff0, 23),
    (0x3f_ffe5, 22),
    (0x3f_ffe6, 22),
    (0x7f_fff1, 23),
    (0x3ff_ffe0, 26),
    (0x3ff_ffe1, 26),
    (0xf_ffeb, 20),
    (0x7_fff1, 19),
    (0x3f_ffe7, 22),
    (0x7f_fff2, 23),
    (0x3f_ffe8, 22),
    (0x1ff_ffec, 25),
    (0x3ff_ffe2, 26),
    (0x3ff_ffe3, 26),
    (0x3ff_ffe4, 26),
    (0x7ff_ffde, 27),
    (0x7ff_ffdf, 27),
    (0x3ff_ffe5, 26),
    (0xff_fff1, 24),
    (0x1ff_ffed, 25),
    (0x7_fff2, 19),
    (0x1f_ffe3, 21),
    (0x3ff_ffe6, 26),
    (0x7ff_ffe0, 27),
    (0x7ff_ffe1, 27),
    (0x3ff_ffe7, 26),
    (0x7ff_ffe2, 27),
    (0xff_fff2, 24),
    (0x1f_ffe4, 21),
    (0x1f_ffe5, 21),
    (0x3ff_ffe8, 26),
    (0x3ff_ffe9, 26),
    (0xfff_fffd, 28),
    (0x7ff_ffe3, 27),
    (0x7ff_ffe4, 27),
    (0x7ff_ffe5, 27),
    (0xf_ffec, 20),
    (0xff_fff3, 24),
    (0xf_ffed, 20),
    (0x1f_ffe6, 21),
    (0x3f_ffe9, 22),
    (0x1f_ffe7, 21),
    (0x1f_ffe8, 21),
    (0x7f_fff3, 23),
    (0x3f_ffea, 22),
    (0x3f_ffeb, 22),
    (0x1ff_ffee, 25),
    (0x1ff_ffef, 25),
    (0xff_fff4, 24),
    (0xff_fff5, 24),
    (0x3ff_ffea, 26),
    (0x7f_fff4, 23),
    (0x3ff_ffeb, 26),
    (0x7ff_ffe6, 27),
    (0x3ff_ffec, 26),
    (0x3ff_ffed, 26),
    (0x7ff_ffe7, 27),
    (0x7ff_ffe8, 27),
    (0x7ff_ffe9, 27),
    (0x7ff_ffea, 27),
    (0x7ff_ffeb, 27),
    (0xfff_fffe, 28),
    (0x7ff_ffec, 27),
    (0x7ff_ffed, 27),
    (0x7ff_ffee, 27),
    (0x7ff_ffef, 27),
    (0x7ff_fff0, 27),
    (0x3ff_ffee, 26),
    (0x3fff_ffff, 30), // EOS
];

/// The EOS symbol's number in [`CODES`].
const EOS: u16 = 256;

/// The step taken emits `sym`.
const EMIT: u8 = 1;
/// The step taken reached EOS: the string is malformed.
const FAIL: u8 = 2;
/// The step ends in a state where the string may end: the bits since the
/// last symbol are at most seven 1s (valid padding, Section 5.2).
const ACCEPT: u8 = 4;

/// One (state, nibble) transition.
#[derive(Clone, Copy, Default)]
struct Step {
    /// The state (internal tree node) after the nibble.
    next: u8,
    /// The symbol decoded by this nibble, when `flags` has [`EMIT`].
    sym: u8,
    /// [`EMIT`], [`FAIL`], [`ACCEPT`].
    flags: u8,
}

/// The decoding state machine: `STEPS[state * 16 + nibble]`.
static STEPS: LazyLock<Box<[Step]>> = LazyLock::new(build_steps);

/// A child in the code tree while it is being built.
#[derive(Clone, Copy)]
enum Child {
    /// Not yet filled (never left so for a complete code).
    Empty,
    /// An internal node, by number.
    Node(u8),
    /// A leaf: the symbol (256 = EOS).
    Leaf(u16),
}

/// Builds the tree of [`CODES`] and derives the nibble state machine from it.
fn build_steps() -> Box<[Step]> {
    // Internal nodes: children and whether the path to the node is at most
    // seven 1 bits (a place the string may end). A complete binary tree with
    // 257 leaves has 256 internal nodes, so node numbers fit a u8.
    let mut nodes: Vec<[Child; 2]> = vec![[Child::Empty; 2]];
    let mut accept: Vec<bool> = vec![true];
    for (sym, &(code, len)) in (0u16..).zip(CODES.iter()) {
        let mut cur = 0usize;
        let mut all_ones = true;
        for depth in (0..len).rev() {
            let bit = usize::from((code >> depth) & 1 == 1);
            all_ones &= bit == 1;
            if depth == 0 {
                nodes[cur][bit] = Child::Leaf(sym);
                break;
            }
            cur = match nodes[cur][bit] {
                Child::Node(n) => usize::from(n),
                Child::Empty => {
                    let n = u8::try_from(nodes.len()).expect("at most 256 internal nodes");
                    nodes.push([Child::Empty; 2]);
                    accept.push(all_ones && len - depth <= 7);
                    nodes[cur][bit] = Child::Node(n);
                    usize::from(n)
                }
                Child::Leaf(_) => unreachable!("the Huffman code is prefix-free"),
            };
        }
    }
    let mut steps = vec![Step::default(); nodes.len() * 16].into_boxed_slice();
    for (state, chunk) in steps.chunks_mut(16).enumerate() {
        for (nibble, step) in chunk.iter_mut().enumerate() {
            let mut cur = state;
            for shift in (0..4).rev() {
                match nodes[cur][(nibble >> shift) & 1] {
                    Child::Node(n) => cur = usize::from(n),
                    Child::Leaf(EOS) | Child::Empty => {
                        step.flags = FAIL;
                        break;
                    }
                    Child::Leaf(sym) => {
                        step.sym = u8::try_from(sym).expect("non-EOS symbols are bytes");
                        step.flags = EMIT;
                        cur = 0;
                    }
                }
            }
            step.next = u8::try_from(cur).expect("at most 256 internal nodes");
            if accept[cur] {
                step.flags |= ACCEPT;
            }
        }
    }
    steps
}

/// Appends the Huffman decoding of `src` to `out`.
///
/// Fails on an EOS symbol in the string and on padding that is longer than
/// seven bits or not all 1s.
pub(crate) fn decode(src: &[u8], out: &mut Vec<u8>) -> Result<(), &'static str> {
    let steps = &**STEPS;
    let mut state = 0usize;
    // An empty string is valid (no padding at all).
    let mut accept = true;
    // No code is shorter than five bits.
    out.reserve(src.len().saturating_mul(8) / 5);
    for &byte in src {
        for nibble in [byte >> 4, byte & 0x0f] {
            let step = steps[state * 16 + usize::from(nibble)];
            if step.flags & FAIL != 0 {
                return Err("EOS symbol in Huffman-coded string");
            }
            if step.flags & EMIT != 0 {
                out.push(step.sym);
            }
            state = usize::from(step.next);
            accept = step.flags & ACCEPT != 0;
        }
    }
    if accept {
        Ok(())
    } else {
        Err("invalid Huffman padding")
    }
}
