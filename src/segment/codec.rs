//! Column-block payload codecs of the `.seg` segment format.
//!
//! This module owns the bytes of one block payload: a type-specific
//! pre-encoding followed (for most encodings) by one zstd frame. Framing,
//! crc32, min/max and null handling belong to the segment writer; the values
//! given to an encoder are the non-null ones, and the block's validity bitmap
//! is itself encoded with [`encode_bool`]. The value count is stored by the
//! writer in the block header and passed back to the decoder.
//!
//! # Payload layout
//!
//! Every payload starts with a 1-byte encoding tag. All multi-byte integers
//! are fixed-width little-endian; there are no varints anywhere. "zstd frame"
//! means one standard zstd frame (RFC 8878) running to the end of the
//! payload; except for string `ZSTD` payloads, its decompressed size is fully
//! determined by the header fields and `count`, and any other size is an
//! error. Tags are shared across column types
//! but each type accepts only some of them; any other tag is
//! [`CodecError::UnknownTag`].
//!
//! | tag | name         | used by                        |
//! |-----|--------------|--------------------------------|
//! | 0   | `PLAIN`      | i64, timestamp, u64, f64, bool, str |
//! | 1   | `ZSTD`       | bool, str                      |
//! | 2   | `CONST`      | i64, timestamp, u64, f64, bool |
//! | 3   | `DELTA`      | i64, timestamp, u64            |
//! | 4   | `DECIMAL`    | f64                            |
//! | 5   | `XOR_PLANES` | f64                            |
//!
//! ## Integers (i64, timestamp, u64)
//!
//! u64 values are handled as their two's-complement i64 bit pattern; all
//! arithmetic below wraps modulo 2^64.
//!
//! * `PLAIN` (0): `count` × 8-byte LE values. Used for blocks of fewer than 3
//!   values and whenever `DELTA` would not be smaller.
//! * `CONST` (2): one 8-byte LE value, repeated `count` times (`count` ≥ 1).
//! * `DELTA` (3): order-`k` differences, zigzag, the low `w` bits of each
//!   residual in planes, the rest as patched exceptions, then zstd:
//!
//!   ```text
//!   u8      tag = 3
//!   u8      order k ∈ {0, 1, 2}
//!   u8      width w, in bits ∈ {0, 4, 8, 16, 24, 32, 40, 48, 56, 64}
//!   u32     n_exc      number of exceptions; ≤ count - k; 0 if w = 64
//!   k × u64 initial values: k ≥ 1: v[0]; k = 2: then v[1] - v[0]
//!   zstd frame, decompressed size exactly P + 12·n_exc:
//!     planes (P bytes) holding the low w bits of every residual r[0..n):
//!       w = 0:  nothing (P = 0)
//!       w = 4:  one nibble plane, P = h = ceil(n / 2): byte j holds r[j]
//!               in its low nibble and r[h + j] in its high nibble (0 when
//!               h + j = n)
//!       w ≥ 8:  w/8 byte planes of n bytes, P = n·w/8; plane p (p = 0
//!               first) holds bits 8p..8p+7 of every residual, in order
//!     n_exc × { u32 index i into r, strictly increasing; u64 high }
//!   ```
//!
//!   where `n = count - k` and `count > k`. Residuals: for k = 0,
//!   `d[i] = v[i]`; for k = 1, `d[i] = v[i+1] - v[i]`; for k = 2,
//!   `d[i] = (v[i+2] - v[i+1]) - (v[i+1] - v[i])`; then
//!   `r[i] = zigzag(d[i]) = (d << 1) ^ (d >> 63)` (arithmetic shift).
//!   A residual is its plane bits OR, if it has an exception, `high << w`;
//!   every residual wider than w bits has one. The encoder picks k by the
//!   smallest total residual bit width (timestamps prefer k = 2 on a tie,
//!   other integers k = 1) and w by an estimate of the payload size.
//!
//! ## f64
//!
//! Decoding is bit-exact: NaN payloads, -0.0 and infinities survive.
//!
//! * `PLAIN` (0): `count` × 8-byte LE IEEE-754 bit patterns.
//! * `CONST` (2): one 8-byte LE bit pattern, repeated `count` times.
//! * `DECIMAL` (4): `u8 e` (0 ≤ e ≤ 18), then a complete integer payload
//!   (tag `PLAIN`, `CONST` or `DELTA`, as above, same `count`) of mantissas
//!   `m[i]`; each value is `(m[i] as f64) / 10^e` in IEEE double arithmetic
//!   (round-to-nearest-even), `10^e` being the exactly representable double.
//!   Chosen when that reproduces every value bit for bit with `|m| < 2^53`
//!   (decimal data such as 53.17: the mantissas are then an integer random
//!   walk and compress like one).
//! * `XOR_PLANES` (5): zstd frame, decompressed size exactly 8·count:
//!   8 planes, plane j = byte j (LE) of `x[i] = bits(v[i]) ^ bits(v[i-1])`
//!   with `bits(v[-1]) = 0`. Used for non-decimal floats.
//!
//! ## bool (also validity bitmaps)
//!
//! Bit packing is LSB first: value i is bit `i % 8` of byte `i / 8`; the
//! unused high bits of the last byte are written as 0 and ignored on read.
//!
//! * `PLAIN` (0): `ceil(count / 8)` packed bytes.
//! * `ZSTD` (1): zstd frame of those `ceil(count / 8)` bytes.
//! * `CONST` (2): one byte, 0 or 1, repeated `count` times.
//!
//! ## str (dictionary)
//!
//! * `PLAIN` (0): the dictionary body, uncompressed.
//! * `ZSTD` (1): zstd frame of the dictionary body; the body may be at most
//!   [`MAX_STR_ZSTD_BODY`] bytes (larger bodies are written `PLAIN`).
//!
//! Dictionary body:
//!
//! ```text
//! u32        n_dict             distinct strings; 0 iff count = 0; ≤ count
//! u8         key width kw ∈ {0, 1, 2, 4}; 0 only when n_dict ≤ 1
//! n_dict×u32 byte length of each string
//! bytes      the UTF-8 strings concatenated, in dictionary order
//! count×kw   key of each value (LE), < n_dict; with kw = 0 every key is 0
//! ```
//!
//! Dictionary order is first occurrence in the block.
//!
//! # Choices (measured with `benches/codec.rs`, 65,536-value TSBS-like blocks)
//!
//! Integers: TSBS fields step by rounded N(0,1), 2.10 bits of entropy
//! (0.263 B/value). Zigzag deltas as whole bytes + zstd measured 0.33 B/value
//! at levels 1–9 (zstd takes spurious 3–6-byte matches in a 5-symbol
//! stream; only level 19's optimal parser gets 0.278), 3-bit packing + zstd
//! 0.288, a 4-bit nibble plane + zstd 0.267–0.271 at levels 1–9: two
//! residuals per byte give Huffman a richer alphabet and leave few
//! worthwhile matches. Host jumps and rare big steps become exceptions
//! instead of widening the block. Decoding widths 0/4/8 is one fused,
//! branch-free zigzag + prefix-sum pass per run between exceptions, reading
//! plane bytes straight into values (~1.2 G values/s with zstd, one core).
//! Regular timestamps have all-zero second-order residuals: width 0, only
//! the series jumps as exceptions, ~100 bytes per block.
//!
//! Floats: on a full-precision random walk, XOR byte planes + zstd measured
//! 6.42 B/value vs 7.48 raw, 6.56 plain byte planes, 7.16 XOR interleaved
//! (Gorilla's bit stream would need a branchy bit-level decoder and leave
//! nothing for zstd). Decimal data (2 decimal places) measured 5.80 with XOR
//! planes and 2.87 raw but 1.21 as `DECIMAL` mantissas through `DELTA`.

use std::cell::RefCell;
use std::collections::HashMap;

use zstd::zstd_safe::{self, CCtx, DCtx, InBuffer, OutBuffer, ResetDirective};

/// Encoding tag: uncompressed values.
pub const TAG_PLAIN: u8 = 0;
/// Encoding tag: zstd frame of the `PLAIN` layout (bool, str).
pub const TAG_ZSTD: u8 = 1;
/// Encoding tag: one value repeated `count` times.
pub const TAG_CONST: u8 = 2;
/// Encoding tag: order-k zigzag deltas in byte planes with exceptions + zstd.
pub const TAG_DELTA: u8 = 3;
/// Encoding tag: f64 as decimal mantissas with a power-of-ten exponent.
pub const TAG_DECIMAL: u8 = 4;
/// Encoding tag: f64 XOR with previous, in byte planes + zstd.
pub const TAG_XOR_PLANES: u8 = 5;

/// Largest `count` a decoder accepts; encoders must not be given more.
pub const MAX_COUNT: usize = 1 << 24;
/// Largest decompressed dictionary body of a `ZSTD` string payload.
pub const MAX_STR_ZSTD_BODY: usize = 1 << 28;
/// Largest decimal exponent `DECIMAL` uses.
const MAX_DECIMAL_EXP: u8 = 18;
/// Bytes per exception record in a `DELTA` payload: u32 index + u64 high part.
const EXCEPTION_BYTES: usize = 12;
/// Smallest block `DELTA` is tried on; below this `PLAIN` is smaller.
const MIN_DELTA_COUNT: usize = 3;
/// `PLAIN` bool payloads up to this many bytes are not worth a zstd frame.
const MIN_ZSTD_BOOL_BYTES: usize = 64;

/// Powers of ten that are exact doubles (10^0 ..= 10^18).
const POW10: [f64; MAX_DECIMAL_EXP as usize + 1] =
    [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18];

/// Why a payload could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum CodecError {
    /// The payload ends before the field `what`.
    #[error("truncated column block payload: missing {what}")]
    Truncated { what: &'static str },
    /// A header field or section is out of range or inconsistent.
    #[error("invalid column block payload: {what}")]
    Invalid { what: &'static str },
    /// The tag is not a known encoding for this column type.
    #[error("unknown encoding tag {tag} for a {column} column block")]
    UnknownTag { tag: u8, column: &'static str },
    /// zstd rejected the compressed section.
    #[error("zstd: {0}")]
    Zstd(String),
    /// The payload holds a different number of values than the block header says.
    #[error("column block holds {actual} values, header says {expected}")]
    CountMismatch { expected: usize, actual: usize },
    /// `count` or a decompressed section exceeds the decoder's limits.
    #[error("column block too large: {what} {value} exceeds limit {limit}")]
    TooLarge { what: &'static str, value: usize, limit: usize },
}

/// Strings of a decoded block: value i is `dictionary[keys[i]]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DecodedStrings {
    pub dictionary: Vec<String>,
    pub keys: Vec<u32>,
}

impl DecodedStrings {
    /// Value `i` of the block, if `i < keys.len()`.
    pub fn get(&self, i: usize) -> Option<&str> {
        let key = *self.keys.get(i)?;
        self.dictionary.get(key as usize).map(String::as_str)
    }
}

// ---------------------------------------------------------------------------
// Thread-local zstd contexts and scratch buffers.

struct EncodeScratch {
    cctx: Option<CCtx<'static>>,
    residuals: Vec<u64>,
    body: Vec<u8>,
    mantissas: Vec<i64>,
}

struct DecodeScratch {
    dctx: Option<DCtx<'static>>,
    body: Vec<u8>,
    mantissas: Vec<i64>,
}

thread_local! {
    static ENCODE: RefCell<EncodeScratch> = const {
        RefCell::new(EncodeScratch {
            cctx: None,
            residuals: Vec::new(),
            body: Vec::new(),
            mantissas: Vec::new(),
        })
    };
    static DECODE: RefCell<DecodeScratch> = const {
        RefCell::new(DecodeScratch { dctx: None, body: Vec::new(), mantissas: Vec::new() })
    };
}

/// Scratch buffers above this many bytes are freed after use, so one huge
/// (or bogus) block does not pin its memory in every thread.
const SCRATCH_RETAIN_BYTES: usize = 16 << 20;

fn trim<T>(v: &mut Vec<T>) {
    if v.capacity() * size_of::<T>() > SCRATCH_RETAIN_BYTES {
        *v = Vec::new();
    }
}

fn with_encode<R>(f: impl FnOnce(&mut EncodeScratch) -> R) -> R {
    ENCODE.with_borrow_mut(|s| {
        let r = f(s);
        trim(&mut s.residuals);
        trim(&mut s.body);
        trim(&mut s.mantissas);
        r
    })
}

fn with_decode<R>(f: impl FnOnce(&mut DecodeScratch) -> R) -> R {
    DECODE.with_borrow_mut(|s| {
        let r = f(s);
        trim(&mut s.body);
        trim(&mut s.mantissas);
        r
    })
}

fn zstd_error(code: usize) -> CodecError {
    CodecError::Zstd(zstd_safe::get_error_name(code).to_owned())
}

/// Appends one zstd frame of `src` to `out`; `false` (with `out` unchanged)
/// if no context could be had or compression failed.
fn compress_append(cctx: &mut Option<CCtx<'static>>, src: &[u8], level: i32, out: &mut Vec<u8>) -> bool {
    if cctx.is_none() {
        *cctx = CCtx::try_create();
    }
    let Some(cctx) = cctx.as_mut() else {
        return false;
    };
    let start = out.len();
    out.reserve(zstd_safe::compress_bound(src.len()));
    let mut cursor = std::io::Cursor::new(&mut *out);
    cursor.set_position(start as u64);
    let ok = cctx.compress(&mut cursor, src, level).is_ok();
    if !ok {
        out.truncate(start);
    }
    ok
}

fn dctx<'s>(slot: &'s mut Option<DCtx<'static>>) -> Result<&'s mut DCtx<'static>, CodecError> {
    if slot.is_none() {
        *slot = DCtx::try_create();
    }
    slot.as_mut().ok_or_else(|| CodecError::Zstd("cannot allocate a decompression context".into()))
}

/// Decompresses `src` (one frame) into `body[..expected]`; anything but
/// exactly `expected` bytes is an error. `body` only ever grows, so steady
/// state decoding neither allocates nor zero-fills.
fn decompress_exact<'b>(
    slot: &mut Option<DCtx<'static>>,
    body: &'b mut Vec<u8>,
    src: &[u8],
    expected: usize,
) -> Result<&'b [u8], CodecError> {
    // A frame that declares another size is rejected before we allocate.
    if let Ok(Some(declared)) = zstd_safe::get_frame_content_size(src)
        && declared != expected as u64
    {
        return Err(CodecError::Invalid { what: "zstd section decompresses to an unexpected size" });
    }
    let dctx = dctx(slot)?;
    if body.len() < expected {
        body.resize(expected, 0);
    }
    let dst = &mut body[..expected];
    let n = dctx.decompress(dst, src).map_err(zstd_error)?;
    if n != expected {
        return Err(CodecError::Invalid { what: "zstd section decompresses to an unexpected size" });
    }
    Ok(&body[..expected])
}

/// Decompresses one frame of unknown size, growing `body` only as output
/// arrives (so a lying header cannot make us allocate), up to `limit` bytes.
fn decompress_growing(
    slot: &mut Option<DCtx<'static>>,
    body: &mut Vec<u8>,
    src: &[u8],
    limit: usize,
) -> Result<(), CodecError> {
    const CHUNK: usize = 64 * 1024;
    let dctx = dctx(slot)?;
    dctx.reset(ResetDirective::SessionOnly).map_err(zstd_error)?;
    body.clear();
    let mut input = InBuffer::around(src);
    loop {
        if body.len() == body.capacity() {
            if body.len() > limit {
                return Err(CodecError::TooLarge {
                    what: "decompressed string dictionary bytes",
                    value: body.len(),
                    limit,
                });
            }
            let grow = body.len().max(CHUNK).min(limit + 1 - body.len());
            body.reserve_exact(grow);
        }
        let before_in = input.pos();
        let before_out = body.len();
        let hint = {
            let pos = body.len();
            let mut output = OutBuffer::around_pos(body, pos);
            dctx.decompress_stream(&mut output, &mut input).map_err(zstd_error)?
        };
        if hint == 0 {
            break;
        }
        let stalled = input.pos() == before_in && body.len() == before_out;
        if (input.pos() == src.len() && body.len() < body.capacity()) || stalled {
            return Err(CodecError::Truncated { what: "zstd frame" });
        }
    }
    if body.len() > limit {
        return Err(CodecError::TooLarge { what: "decompressed string dictionary bytes", value: body.len(), limit });
    }
    if input.pos() != src.len() {
        return Err(CodecError::Invalid { what: "bytes after the zstd frame" });
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Header reading.

struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], CodecError> {
        if self.data.len() < n {
            return Err(CodecError::Truncated { what });
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(head)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, CodecError> {
        Ok(self.take(1, what)?[0])
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, CodecError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, CodecError> {
        let b = self.take(8, what)?;
        Ok(u64_le(b))
    }

    fn rest(&self) -> &'a [u8] {
        self.data
    }
}

#[inline(always)]
fn u64_le(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

fn check_count(count: usize) -> Result<(), CodecError> {
    if count > MAX_COUNT {
        return Err(CodecError::TooLarge { what: "value count", value: count, limit: MAX_COUNT });
    }
    Ok(())
}

fn plain_len_check(data: &[u8], count: usize, width: usize) -> Result<(), CodecError> {
    if data.len() != count * width {
        return Err(CodecError::CountMismatch { expected: count, actual: data.len() / width });
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Integers.

/// 64-bit integer types sharing the integer encodings (as bit patterns).
trait IntBits: Copy {
    fn to_bits(self) -> u64;
    fn from_bits(bits: u64) -> Self;
}

impl IntBits for i64 {
    #[inline(always)]
    fn to_bits(self) -> u64 {
        self as u64
    }
    #[inline(always)]
    fn from_bits(bits: u64) -> Self {
        bits as i64
    }
}

impl IntBits for u64 {
    #[inline(always)]
    fn to_bits(self) -> u64 {
        self
    }
    #[inline(always)]
    fn from_bits(bits: u64) -> Self {
        bits
    }
}

#[inline(always)]
fn zigzag(d: u64) -> u64 {
    (d << 1) ^ (((d as i64) >> 63) as u64)
}

#[inline(always)]
fn unzigzag(z: u64) -> u64 {
    (z >> 1) ^ (z & 1).wrapping_neg()
}

#[inline(always)]
fn bit_width(z: u64) -> u64 {
    u64::from(64 - z.leading_zeros())
}

fn write_plain_ints<T: IntBits>(values: &[T], out: &mut Vec<u8>) {
    out.push(TAG_PLAIN);
    out.reserve(values.len() * 8);
    for v in values {
        out.extend_from_slice(&v.to_bits().to_le_bytes());
    }
}

/// Residual order the block is cheapest in, by total residual bit width.
fn choose_order<T: IntBits>(values: &[T], prefer_second_order: bool) -> u8 {
    let mut cost = [0u64; 3];
    let mut prev = 0u64;
    let mut prev_delta = 0u64;
    for (i, v) in values.iter().enumerate() {
        let v = v.to_bits();
        let delta = v.wrapping_sub(prev);
        cost[0] += bit_width(zigzag(v));
        if i >= 1 {
            cost[1] += bit_width(zigzag(delta));
        }
        if i >= 2 {
            cost[2] += bit_width(zigzag(delta.wrapping_sub(prev_delta)));
        }
        prev = v;
        prev_delta = delta;
    }
    let (first, second) = if prefer_second_order { (2, 1) } else { (1, 2) };
    let mut best = first;
    for order in [second, 0] {
        if cost[order as usize] < cost[best as usize] {
            best = order;
        }
    }
    best
}

/// Residual bit widths `DELTA` can keep in planes: a packed nibble plane or
/// whole byte planes.
const WIDTHS: [u32; 10] = [0, 4, 8, 16, 24, 32, 40, 48, 56, 64];

/// Bytes the planes of `n` residuals take at bit width `width`.
fn plane_bytes(width: u32, n: usize) -> usize {
    if width == 4 { n.div_ceil(2) } else { n * (width as usize / 8) }
}

/// Bit width with the smallest estimated payload. A plane is costed at the
/// bytes of the residuals that have bits in it (zstd squeezes out the rest)
/// plus a small per-value term (every plane is a decode pass); an exception
/// at its 12 bytes.
fn choose_width(residuals: &[u64]) -> u32 {
    let n = residuals.len();
    if n > u32::MAX as usize {
        return 64; // exception indices are u32
    }
    let mut hist = [0usize; 65];
    for &r in residuals {
        hist[bit_width(r) as usize] += 1;
    }
    // wider_than[b] = residuals needing more than b bits.
    let mut wider_than = [0usize; 65];
    let mut acc = 0;
    for b in (0..65).rev() {
        wider_than[b] = acc;
        acc += hist[b];
    }
    let mut best = (usize::MAX, 64);
    for width in WIDTHS {
        let planes = if width == 4 {
            wider_than[0] / 2 + n / 64
        } else {
            (0..width / 8).map(|j| wider_than[8 * j as usize] + n / 64).sum()
        };
        let cost = planes + EXCEPTION_BYTES * wider_than[width as usize];
        if cost < best.0 {
            best = (cost, width);
        }
    }
    best.1
}

fn encode_ints<T: IntBits>(values: &[T], level: i32, prefer_second_order: bool, out: &mut Vec<u8>) {
    debug_assert!(values.len() <= MAX_COUNT, "block larger than MAX_COUNT");
    let n = values.len();
    if let Some(first) = values.first()
        && values.iter().all(|v| v.to_bits() == first.to_bits())
    {
        out.push(TAG_CONST);
        out.extend_from_slice(&first.to_bits().to_le_bytes());
        return;
    }
    if n < MIN_DELTA_COUNT {
        write_plain_ints(values, out);
        return;
    }
    let start = out.len();
    let written = with_encode(|s| encode_delta(values, level, prefer_second_order, s, out));
    if !written || out.len() - start > 8 * n {
        out.truncate(start);
        write_plain_ints(values, out);
    }
}

fn encode_delta<T: IntBits>(
    values: &[T],
    level: i32,
    prefer_second_order: bool,
    s: &mut EncodeScratch,
    out: &mut Vec<u8>,
) -> bool {
    let order = choose_order(values, prefer_second_order);
    let residuals = &mut s.residuals;
    residuals.clear();
    match order {
        0 => residuals.extend(values.iter().map(|v| zigzag(v.to_bits()))),
        1 => residuals.extend(values.windows(2).map(|w| zigzag(w[1].to_bits().wrapping_sub(w[0].to_bits())))),
        _ => residuals.extend(values.windows(3).map(|w| {
            let d1 = w[1].to_bits().wrapping_sub(w[0].to_bits());
            let d2 = w[2].to_bits().wrapping_sub(w[1].to_bits());
            zigzag(d2.wrapping_sub(d1))
        })),
    }
    let width = choose_width(residuals);
    let n_res = residuals.len();

    let body = &mut s.body;
    body.clear();
    body.reserve(plane_bytes(width, n_res));
    if width == 4 {
        let (low, high) = residuals.split_at(n_res.div_ceil(2));
        body.extend(low.iter().enumerate().map(|(k, &r)| {
            let hi = high.get(k).map_or(0, |&h| (h & 15) as u8);
            (r & 15) as u8 | hi << 4
        }));
    } else {
        for j in 0..width / 8 {
            let shift = 8 * j;
            body.extend(residuals.iter().map(|&r| (r >> shift) as u8));
        }
    }
    let mut n_exc: u32 = 0;
    if width < 64 {
        for (i, &r) in residuals.iter().enumerate() {
            let high = r >> width;
            if high != 0 {
                body.extend_from_slice(&(i as u32).to_le_bytes());
                body.extend_from_slice(&high.to_le_bytes());
                n_exc += 1;
            }
        }
    }

    out.push(TAG_DELTA);
    out.push(order);
    out.push(width as u8);
    out.extend_from_slice(&n_exc.to_le_bytes());
    if order >= 1 {
        out.extend_from_slice(&values[0].to_bits().to_le_bytes());
    }
    if order == 2 {
        let first_delta = values[1].to_bits().wrapping_sub(values[0].to_bits());
        out.extend_from_slice(&first_delta.to_le_bytes());
    }
    compress_append(&mut s.cctx, body, level, out)
}

/// Decodes an integer payload, appending exactly `count` values or nothing.
fn decode_ints<T: IntBits>(
    data: &[u8],
    count: usize,
    column: &'static str,
    body: &mut Vec<u8>,
    dctx: &mut Option<DCtx<'static>>,
    out: &mut Vec<T>,
) -> Result<(), CodecError> {
    check_count(count)?;
    let base = out.len();
    let res = decode_ints_inner(data, count, column, body, dctx, out);
    if res.is_err() {
        out.truncate(base);
    }
    debug_assert!(res.is_err() || out.len() == base + count);
    res
}

fn decode_ints_inner<T: IntBits>(
    data: &[u8],
    count: usize,
    column: &'static str,
    body: &mut Vec<u8>,
    dctx: &mut Option<DCtx<'static>>,
    out: &mut Vec<T>,
) -> Result<(), CodecError> {
    let mut r = Reader { data };
    let tag = r.u8("encoding tag")?;
    match tag {
        TAG_PLAIN => {
            let rest = r.rest();
            plain_len_check(rest, count, 8)?;
            out.extend(rest.chunks_exact(8).map(|c| T::from_bits(u64_le(c))));
            Ok(())
        }
        TAG_CONST => {
            let v = r.u64("constant value")?;
            if !r.rest().is_empty() {
                return Err(CodecError::Invalid { what: "bytes after the constant value" });
            }
            if count == 0 {
                return Err(CodecError::CountMismatch { expected: 0, actual: 1 });
            }
            out.resize(out.len() + count, T::from_bits(v));
            Ok(())
        }
        TAG_DELTA => decode_delta(&mut r, count, body, dctx, out),
        _ => Err(CodecError::UnknownTag { tag, column }),
    }
}

/// Running state of the inverse of an order-`ORDER` difference.
struct Integrator<const ORDER: u8> {
    acc: u64,
    delta: u64,
}

impl<const ORDER: u8> Integrator<ORDER> {
    /// The value whose zigzagged residual is `r`.
    #[inline(always)]
    fn step(&mut self, r: u64) -> u64 {
        let d = unzigzag(r);
        match ORDER {
            0 => d,
            1 => {
                self.acc = self.acc.wrapping_add(d);
                self.acc
            }
            _ => {
                self.delta = self.delta.wrapping_add(d);
                self.acc = self.acc.wrapping_add(self.delta);
                self.acc
            }
        }
    }

    /// Appends the values of a run of residuals; `residuals` has an exact
    /// length, so `extend` writes without per-value capacity checks.
    #[inline(always)]
    fn run<T: IntBits>(&mut self, out: &mut Vec<T>, residuals: impl ExactSizeIterator<Item = u64>) {
        out.extend(residuals.map(|r| T::from_bits(self.step(r))));
    }
}

fn decode_delta<T: IntBits>(
    r: &mut Reader<'_>,
    count: usize,
    body: &mut Vec<u8>,
    dctx: &mut Option<DCtx<'static>>,
    out: &mut Vec<T>,
) -> Result<(), CodecError> {
    let order = r.u8("delta order")?;
    let width = u32::from(r.u8("delta width")?);
    let n_exc = r.u32("exception count")? as usize;
    if order > 2 {
        return Err(CodecError::Invalid { what: "delta order above 2" });
    }
    if !WIDTHS.contains(&width) {
        return Err(CodecError::Invalid { what: "delta residual width" });
    }
    let first = if order >= 1 { r.u64("first value")? } else { 0 };
    let first_delta = if order == 2 { r.u64("first delta")? } else { 0 };
    let order_len = usize::from(order);
    if count <= order_len {
        return Err(CodecError::CountMismatch { expected: count, actual: order_len + 1 });
    }
    let n_res = count - order_len;
    if n_exc > n_res || (width == 64 && n_exc > 0) {
        return Err(CodecError::Invalid { what: "more exceptions than residuals" });
    }
    let planes_len = plane_bytes(width, n_res);
    let expected = planes_len + n_exc * EXCEPTION_BYTES;
    let body = decompress_exact(dctx, body, r.rest(), expected)?;
    let (planes, exceptions) = body.split_at(planes_len);

    out.reserve(count);
    if order >= 1 {
        out.push(T::from_bits(first));
    }
    if order == 2 {
        out.push(T::from_bits(first.wrapping_add(first_delta)));
    }
    let parts = Residuals { width, planes, exceptions, n_res };
    match order {
        0 => parts.decode(&mut Integrator::<0> { acc: 0, delta: 0 }, out),
        1 => parts.decode(&mut Integrator::<1> { acc: first, delta: 0 }, out),
        _ => parts.decode(&mut Integrator::<2> { acc: first.wrapping_add(first_delta), delta: first_delta }, out),
    }
}

/// The decompressed residual section of a `DELTA` payload.
struct Residuals<'a> {
    width: u32,
    planes: &'a [u8],
    exceptions: &'a [u8],
    n_res: usize,
}

impl Residuals<'_> {
    /// Validated exception records: (index, high bits), strictly increasing.
    fn exceptions(&self) -> impl Iterator<Item = Result<(usize, u64), CodecError>> + '_ {
        let mut next_index = 0usize;
        let n_res = self.n_res;
        self.exceptions.chunks_exact(EXCEPTION_BYTES).map(move |rec| {
            let index = u32::from_le_bytes([rec[0], rec[1], rec[2], rec[3]]) as usize;
            if index < next_index || index >= n_res {
                return Err(CodecError::Invalid { what: "exception index out of order or out of range" });
            }
            next_index = index + 1;
            Ok((index, u64_le(&rec[4..])))
        })
    }

    fn decode<T: IntBits, const ORDER: u8>(
        &self,
        integ: &mut Integrator<ORDER>,
        out: &mut Vec<T>,
    ) -> Result<(), CodecError> {
        match self.width {
            0 | 4 | 8 => self.decode_narrow(integ, out),
            _ => self.decode_wide(integ, out),
        }
    }

    /// Widths 0, 4 and 8 (the common case: random walks, regular
    /// timestamps): one fused, branch-free pass per run between exceptions,
    /// straight from plane bytes to values.
    fn decode_narrow<T: IntBits, const ORDER: u8>(
        &self,
        integ: &mut Integrator<ORDER>,
        out: &mut Vec<T>,
    ) -> Result<(), CodecError> {
        let half = self.n_res.div_ceil(2);
        let run = |integ: &mut Integrator<ORDER>, out: &mut Vec<T>, from: usize, to: usize| {
            match self.width {
                0 => integ.run(out, std::iter::repeat_n(0, to - from)),
                8 => integ.run(out, self.planes[from..to].iter().map(|&b| u64::from(b))),
                _ => {
                    // Nibble plane: residual k < half is the low nibble of
                    // byte k, residual half + k the high nibble of byte k.
                    let low_end = to.min(half);
                    if from < low_end {
                        let bytes = &self.planes[from..low_end];
                        integ.run(out, bytes.iter().map(|&b| u64::from(b & 15)));
                    }
                    let high_start = from.max(half);
                    if high_start < to {
                        let bytes = &self.planes[high_start - half..to - half];
                        integ.run(out, bytes.iter().map(|&b| u64::from(b >> 4)));
                    }
                }
            }
        };
        let low_bits = |i: usize| -> u64 {
            match self.width {
                0 => 0,
                8 => u64::from(self.planes[i]),
                _ if i < half => u64::from(self.planes[i] & 15),
                _ => u64::from(self.planes[i - half] >> 4),
            }
        };
        let mut pos = 0;
        for exc in self.exceptions() {
            let (index, high) = exc?;
            run(integ, out, pos, index);
            let residual = low_bits(index) | high << self.width;
            out.push(T::from_bits(integ.step(residual)));
            pos = index + 1;
        }
        run(integ, out, pos, self.n_res);
        Ok(())
    }

    /// Widths of 2+ bytes: assemble residuals in place plane by plane, patch
    /// exceptions, then integrate; each pass is a simple loop.
    fn decode_wide<T: IntBits, const ORDER: u8>(
        &self,
        integ: &mut Integrator<ORDER>,
        out: &mut Vec<T>,
    ) -> Result<(), CodecError> {
        let n_res = self.n_res;
        let start = out.len();
        let mut planes = self.planes.chunks_exact(n_res);
        if let Some(p0) = planes.next() {
            out.extend(p0.iter().map(|&b| T::from_bits(u64::from(b))));
        }
        let residuals = &mut out[start..];
        for (j, plane) in planes.enumerate() {
            let shift = 8 * (j + 1);
            for (o, &b) in residuals.iter_mut().zip(plane) {
                *o = T::from_bits(o.to_bits() | (u64::from(b) << shift));
            }
        }
        for exc in self.exceptions() {
            let (index, high) = exc?;
            let o = &mut residuals[index];
            *o = T::from_bits(o.to_bits() | (high << self.width));
        }
        for o in residuals.iter_mut() {
            *o = T::from_bits(integ.step(o.to_bits()));
        }
        Ok(())
    }
}

/// Encodes a timestamp block (i64, any unit); regular intervals cost almost
/// nothing (second-order deltas of zero).
pub fn encode_timestamps(values: &[i64], level: i32, out: &mut Vec<u8>) {
    encode_ints(values, level, true, out);
}

/// Decodes a timestamp block, appending exactly `count` values to `out`.
pub fn decode_timestamps(data: &[u8], count: usize, out: &mut Vec<i64>) -> Result<(), CodecError> {
    with_decode(|s| decode_ints(data, count, "timestamp", &mut s.body, &mut s.dctx, out))
}

/// Encodes an i64 block.
pub fn encode_i64(values: &[i64], level: i32, out: &mut Vec<u8>) {
    encode_ints(values, level, false, out);
}

/// Decodes an i64 block, appending exactly `count` values to `out`.
pub fn decode_i64(data: &[u8], count: usize, out: &mut Vec<i64>) -> Result<(), CodecError> {
    with_decode(|s| decode_ints(data, count, "i64", &mut s.body, &mut s.dctx, out))
}

/// Encodes a u64 block.
pub fn encode_u64(values: &[u64], level: i32, out: &mut Vec<u8>) {
    encode_ints(values, level, false, out);
}

/// Decodes a u64 block, appending exactly `count` values to `out`.
pub fn decode_u64(data: &[u8], count: usize, out: &mut Vec<u64>) -> Result<(), CodecError> {
    with_decode(|s| decode_ints(data, count, "u64", &mut s.body, &mut s.dctx, out))
}

// ---------------------------------------------------------------------------
// f64.

/// The smallest exponent e with every value equal, bit for bit, to
/// `m / 10^e` for an integer `|m| < 2^53`, writing the mantissas.
fn decimal_exponent(values: &[f64], mantissas: &mut Vec<i64>) -> Option<u8> {
    const LIMIT: f64 = (1u64 << 53) as f64;
    let fits = |v: f64, e: u8| -> Option<i64> {
        let p = POW10[e as usize];
        let m = (v * p).round();
        if m.is_nan() || m.abs() >= LIMIT {
            return None;
        }
        let m = m as i64;
        ((m as f64 / p).to_bits() == v.to_bits()).then_some(m)
    };
    // Screen exponents on a small spread-out sample before a full pass.
    let step = (values.len() / 16).max(1);
    let sample = || values.iter().step_by(step).copied();
    for e in 0..=MAX_DECIMAL_EXP {
        if !sample().all(|v| fits(v, e).is_some()) {
            continue;
        }
        mantissas.clear();
        let mut ok = true;
        for &v in values {
            match fits(v, e) {
                Some(m) => mantissas.push(m),
                None => {
                    ok = false;
                    break;
                }
            }
        }
        if ok {
            return Some(e);
        }
    }
    None
}

fn write_plain_f64(values: &[f64], out: &mut Vec<u8>) {
    out.push(TAG_PLAIN);
    out.reserve(values.len() * 8);
    for v in values {
        out.extend_from_slice(&v.to_bits().to_le_bytes());
    }
}

/// Encodes an f64 block; decoding restores every bit pattern.
pub fn encode_f64(values: &[f64], level: i32, out: &mut Vec<u8>) {
    debug_assert!(values.len() <= MAX_COUNT, "block larger than MAX_COUNT");
    let n = values.len();
    if let Some(first) = values.first()
        && values.iter().all(|v| v.to_bits() == first.to_bits())
    {
        out.push(TAG_CONST);
        out.extend_from_slice(&first.to_bits().to_le_bytes());
        return;
    }
    if n < MIN_DELTA_COUNT {
        write_plain_f64(values, out);
        return;
    }
    let start = out.len();
    let mut mantissas = with_encode(|s| std::mem::take(&mut s.mantissas));
    if let Some(e) = decimal_exponent(values, &mut mantissas) {
        out.push(TAG_DECIMAL);
        out.push(e);
        encode_ints(&mantissas, level, false, out);
    } else {
        out.push(TAG_XOR_PLANES);
        let ok = with_encode(|s| {
            let body = &mut s.body;
            body.clear();
            body.reserve(n * 8);
            for j in 0..8 {
                let shift = 8 * j;
                let mut prev = 0u64;
                body.extend(values.iter().map(|v| {
                    let bits = v.to_bits();
                    let x = bits ^ prev;
                    prev = bits;
                    (x >> shift) as u8
                }));
            }
            compress_append(&mut s.cctx, body, level, out)
        });
        if !ok {
            out.truncate(start);
        }
    }
    with_encode(|s| s.mantissas = mantissas);
    if out.len() == start || out.len() - start > 8 * n {
        out.truncate(start);
        write_plain_f64(values, out);
    }
}

/// Decodes an f64 block, appending exactly `count` values to `out`.
pub fn decode_f64(data: &[u8], count: usize, out: &mut Vec<f64>) -> Result<(), CodecError> {
    check_count(count)?;
    let base = out.len();
    let res = with_decode(|s| decode_f64_inner(data, count, s, out));
    if res.is_err() {
        out.truncate(base);
    }
    res
}

fn decode_f64_inner(data: &[u8], count: usize, s: &mut DecodeScratch, out: &mut Vec<f64>) -> Result<(), CodecError> {
    let mut r = Reader { data };
    let tag = r.u8("encoding tag")?;
    match tag {
        TAG_PLAIN => {
            let rest = r.rest();
            plain_len_check(rest, count, 8)?;
            out.extend(rest.chunks_exact(8).map(|c| f64::from_bits(u64_le(c))));
            Ok(())
        }
        TAG_CONST => {
            let v = r.u64("constant value")?;
            if !r.rest().is_empty() {
                return Err(CodecError::Invalid { what: "bytes after the constant value" });
            }
            if count == 0 {
                return Err(CodecError::CountMismatch { expected: 0, actual: 1 });
            }
            out.resize(out.len() + count, f64::from_bits(v));
            Ok(())
        }
        TAG_DECIMAL => {
            let e = r.u8("decimal exponent")?;
            let Some(&p) = POW10.get(e as usize) else {
                return Err(CodecError::Invalid { what: "decimal exponent above 18" });
            };
            let mantissas = &mut s.mantissas;
            mantissas.clear();
            decode_ints(r.rest(), count, "f64 mantissa", &mut s.body, &mut s.dctx, mantissas)?;
            out.extend(mantissas.iter().map(|&m| m as f64 / p));
            Ok(())
        }
        TAG_XOR_PLANES => {
            let body = decompress_exact(&mut s.dctx, &mut s.body, r.rest(), count * 8)?;
            let p: Vec<&[u8]> = body.chunks_exact(count.max(1)).collect();
            if count == 0 {
                return Ok(());
            }
            let (p0, p1, p2, p3) = (&p[0][..count], &p[1][..count], &p[2][..count], &p[3][..count]);
            let (p4, p5, p6, p7) = (&p[4][..count], &p[5][..count], &p[6][..count], &p[7][..count]);
            let mut prev = 0u64;
            out.extend((0..count).map(|i| {
                let x = u64::from_le_bytes([p0[i], p1[i], p2[i], p3[i], p4[i], p5[i], p6[i], p7[i]]);
                prev ^= x;
                f64::from_bits(prev)
            }));
            Ok(())
        }
        _ => Err(CodecError::UnknownTag { tag, column: "f64" }),
    }
}

// ---------------------------------------------------------------------------
// bool.

/// Encodes a bool block (also used for validity bitmaps).
pub fn encode_bool(values: &[bool], level: i32, out: &mut Vec<u8>) {
    debug_assert!(values.len() <= MAX_COUNT, "block larger than MAX_COUNT");
    if let Some(&first) = values.first()
        && values.iter().all(|&v| v == first)
    {
        out.push(TAG_CONST);
        out.push(u8::from(first));
        return;
    }
    let packed_len = values.len().div_ceil(8);
    with_encode(|s| {
        let body = &mut s.body;
        body.clear();
        body.extend(
            values
                .chunks(8)
                .map(|chunk| chunk.iter().enumerate().fold(0u8, |byte, (bit, &v)| byte | (u8::from(v) << bit))),
        );
        if packed_len > MIN_ZSTD_BOOL_BYTES {
            let start = out.len();
            out.push(TAG_ZSTD);
            if compress_append(&mut s.cctx, body, level, out) && out.len() - start <= packed_len {
                return;
            }
            out.truncate(start);
        }
        out.push(TAG_PLAIN);
        out.extend_from_slice(body);
    });
}

fn unpack_bools(packed: &[u8], count: usize, out: &mut Vec<bool>) {
    out.reserve(count);
    let full = count / 8;
    for &byte in &packed[..full] {
        out.extend((0..8).map(|bit| byte >> bit & 1 != 0));
    }
    if let Some(&byte) = packed.get(full) {
        out.extend((0..count % 8).map(|bit| byte >> bit & 1 != 0));
    }
}

/// Decodes a bool block, appending exactly `count` values to `out`.
pub fn decode_bool(data: &[u8], count: usize, out: &mut Vec<bool>) -> Result<(), CodecError> {
    check_count(count)?;
    let mut r = Reader { data };
    let tag = r.u8("encoding tag")?;
    let packed_len = count.div_ceil(8);
    match tag {
        TAG_PLAIN => {
            let rest = r.rest();
            if rest.len() != packed_len {
                return Err(CodecError::CountMismatch { expected: count, actual: rest.len() * 8 });
            }
            unpack_bools(rest, count, out);
            Ok(())
        }
        TAG_ZSTD => with_decode(|s| {
            let packed = decompress_exact(&mut s.dctx, &mut s.body, r.rest(), packed_len)?;
            unpack_bools(packed, count, out);
            Ok(())
        }),
        TAG_CONST => {
            let v = r.u8("constant value")?;
            if v > 1 || !r.rest().is_empty() {
                return Err(CodecError::Invalid { what: "bool constant is not a single 0 or 1 byte" });
            }
            if count == 0 {
                return Err(CodecError::CountMismatch { expected: 0, actual: 1 });
            }
            out.resize(out.len() + count, v == 1);
            Ok(())
        }
        _ => Err(CodecError::UnknownTag { tag, column: "bool" }),
    }
}

// ---------------------------------------------------------------------------
// Strings.

/// Encodes a string block as a dictionary (first-occurrence order) plus keys.
pub fn encode_str<S: AsRef<str>>(values: &[S], level: i32, out: &mut Vec<u8>) {
    debug_assert!(values.len() <= MAX_COUNT, "block larger than MAX_COUNT");
    let mut index: HashMap<&str, u32> = HashMap::new();
    let mut dictionary: Vec<&str> = Vec::new();
    // Blocks are sorted by series, so runs of one value are the norm: check
    // the previous value before hashing.
    let mut previous: Option<(&str, u32)> = None;
    let keys: Vec<u32> = values
        .iter()
        .map(|v| {
            let v = v.as_ref();
            if let Some((p, key)) = previous
                && p == v
            {
                return key;
            }
            let key = *index.entry(v).or_insert_with(|| {
                dictionary.push(v);
                (dictionary.len() - 1) as u32
            });
            previous = Some((v, key));
            key
        })
        .collect();
    let key_width: usize = match dictionary.len() {
        0..=1 => 0,
        2..=256 => 1,
        257..=65536 => 2,
        _ => 4,
    };
    with_encode(|s| {
        let body = &mut s.body;
        body.clear();
        body.extend_from_slice(&(dictionary.len() as u32).to_le_bytes());
        body.push(key_width as u8);
        for d in &dictionary {
            body.extend_from_slice(&(d.len() as u32).to_le_bytes());
        }
        for d in &dictionary {
            body.extend_from_slice(d.as_bytes());
        }
        for &k in &keys {
            body.extend_from_slice(&k.to_le_bytes()[..key_width]);
        }
        if body.len() <= MAX_STR_ZSTD_BODY {
            let start = out.len();
            out.push(TAG_ZSTD);
            if compress_append(&mut s.cctx, body, level, out) && out.len() - start <= body.len() {
                return;
            }
            out.truncate(start);
        }
        out.push(TAG_PLAIN);
        out.extend_from_slice(body);
    });
}

/// Decodes a string block of exactly `count` values.
pub fn decode_str(data: &[u8], count: usize) -> Result<DecodedStrings, CodecError> {
    check_count(count)?;
    let mut r = Reader { data };
    let tag = r.u8("encoding tag")?;
    match tag {
        TAG_PLAIN => parse_dictionary(r.rest(), count),
        TAG_ZSTD => with_decode(|s| {
            decompress_growing(&mut s.dctx, &mut s.body, r.rest(), MAX_STR_ZSTD_BODY)?;
            parse_dictionary(&s.body, count)
        }),
        _ => Err(CodecError::UnknownTag { tag, column: "str" }),
    }
}

fn parse_dictionary(body: &[u8], count: usize) -> Result<DecodedStrings, CodecError> {
    let mut r = Reader { data: body };
    let n_dict = r.u32("dictionary size")? as usize;
    let key_width = r.u8("key width")? as usize;
    if n_dict > count || (count > 0 && n_dict == 0) {
        return Err(CodecError::Invalid { what: "dictionary size inconsistent with the value count" });
    }
    let key_width_ok = match key_width {
        0 => n_dict <= 1,
        1 | 2 | 4 => true,
        _ => false,
    };
    if !key_width_ok {
        return Err(CodecError::Invalid { what: "string key width" });
    }
    // n_dict ≤ count ≤ MAX_COUNT, and the lengths must be present.
    let lengths = r.take(n_dict * 4, "string lengths")?;
    let mut dictionary = Vec::with_capacity(n_dict);
    for len in lengths.chunks_exact(4) {
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let bytes = r.take(len, "dictionary string bytes")?;
        let s =
            std::str::from_utf8(bytes).map_err(|_| CodecError::Invalid { what: "dictionary string is not UTF-8" })?;
        dictionary.push(s.to_owned());
    }
    let key_bytes = r.rest();
    let keys: Vec<u32> = match key_width {
        0 => {
            if !key_bytes.is_empty() {
                return Err(CodecError::Invalid { what: "bytes after zero-width keys" });
            }
            vec![0; count]
        }
        w => {
            plain_len_check(key_bytes, count, w)?;
            let mut keys = Vec::with_capacity(count);
            match w {
                1 => keys.extend(key_bytes.iter().map(|&b| u32::from(b))),
                2 => keys.extend(key_bytes.chunks_exact(2).map(|c| u32::from(u16::from_le_bytes([c[0], c[1]])))),
                _ => keys.extend(key_bytes.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))),
            }
            keys
        }
    };
    let max_key = keys.iter().copied().max().unwrap_or(0) as usize;
    if count > 0 && max_key >= n_dict {
        return Err(CodecError::Invalid { what: "string key outside the dictionary" });
    }
    Ok(DecodedStrings { dictionary, keys })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LEVEL: i32 = 3;

    fn roundtrip_i64(values: &[i64]) -> Vec<u8> {
        let mut buf = Vec::new();
        encode_i64(values, LEVEL, &mut buf);
        let mut out = vec![7];
        decode_i64(&buf, values.len(), &mut out).unwrap();
        assert_eq!(&out[1..], values);
        let mut buf_ts = Vec::new();
        encode_timestamps(values, LEVEL, &mut buf_ts);
        let mut out = Vec::new();
        decode_timestamps(&buf_ts, values.len(), &mut out).unwrap();
        assert_eq!(out, values);
        buf
    }

    fn roundtrip_f64(values: &[f64]) -> Vec<u8> {
        let mut buf = Vec::new();
        encode_f64(values, LEVEL, &mut buf);
        let mut out = Vec::new();
        decode_f64(&buf, values.len(), &mut out).unwrap();
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&out), bits(values));
        buf
    }

    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    fn random_walk(n: usize, seed: u64) -> Vec<i64> {
        let mut s = seed;
        let mut v = 50i64;
        (0..n)
            .map(|_| {
                // Sum of uniforms: a cheap bell-shaped step.
                let step = (xorshift(&mut s) % 3) as i64 + (xorshift(&mut s) % 3) as i64 - 2;
                v = (v + step).clamp(0, 100);
                v
            })
            .collect()
    }

    #[test]
    fn empty_blocks_roundtrip_for_every_type() {
        roundtrip_i64(&[]);
        roundtrip_f64(&[]);
        let mut buf = Vec::new();
        encode_u64(&[], LEVEL, &mut buf);
        let mut out = Vec::new();
        decode_u64(&buf, 0, &mut out).unwrap();
        assert!(out.is_empty());
        buf.clear();
        encode_bool(&[], LEVEL, &mut buf);
        let mut out = Vec::new();
        decode_bool(&buf, 0, &mut out).unwrap();
        assert!(out.is_empty());
        buf.clear();
        encode_str::<&str>(&[], LEVEL, &mut buf);
        assert_eq!(decode_str(&buf, 0).unwrap(), DecodedStrings::default());
    }

    #[test]
    fn integer_extremes_roundtrip() {
        roundtrip_i64(&[i64::MIN]);
        roundtrip_i64(&[i64::MAX, i64::MIN]);
        roundtrip_i64(&[i64::MIN, i64::MAX, i64::MIN, 0, -1, 1, i64::MAX]);
        let mut v: Vec<i64> = (0..1000).collect();
        v[500] = i64::MIN;
        v[501] = i64::MAX;
        roundtrip_i64(&v);
        let u = [u64::MAX, 0, u64::MAX, 1, u64::MAX / 2];
        let mut buf = Vec::new();
        encode_u64(&u, LEVEL, &mut buf);
        let mut out = Vec::new();
        decode_u64(&buf, u.len(), &mut out).unwrap();
        assert_eq!(out, u);
    }

    #[test]
    fn constant_block_is_const_tag() {
        let buf = roundtrip_i64(&[42; 1000]);
        assert_eq!(buf[0], TAG_CONST);
        assert_eq!(buf.len(), 9);
    }

    #[test]
    fn regular_timestamps_with_series_jumps_are_nearly_free() {
        let day = 8640;
        let ts: Vec<i64> = (0..65536).map(|i| 1_700_000_000_000_000_000 + (i % day) * 10_000_000_000).collect();
        let mut buf = Vec::new();
        encode_timestamps(&ts, LEVEL, &mut buf);
        assert_eq!(buf[0], TAG_DELTA);
        assert_eq!(buf[1], 2, "second-order deltas");
        assert_eq!(buf[2], 0, "no residual planes, only exceptions");
        assert!(buf.len() < 200, "{} bytes", buf.len());
        let mut out = Vec::new();
        decode_timestamps(&buf, ts.len(), &mut out).unwrap();
        assert_eq!(out, ts);
    }

    #[test]
    fn random_walk_compresses_below_target() {
        let mut v = random_walk(65536, 0x9e3779b97f4a7c15);
        // Series boundaries: jumps that must become exceptions.
        for (i, x) in v.iter_mut().enumerate() {
            if (i / 8640) % 2 == 1 {
                *x = 100 - *x;
            }
        }
        let buf = roundtrip_i64(&v);
        assert!(u32::from_le_bytes([buf[3], buf[4], buf[5], buf[6]]) > 0);
        assert_eq!(buf[0], TAG_DELTA);
        assert_eq!(buf[1], 1, "first-order deltas");
        assert_eq!(buf[2], 4, "nibble plane");
        assert!((buf.len() as f64) / 65536.0 < 0.3, "{} bytes", buf.len());
    }

    #[test]
    fn wide_residuals_use_planes_and_exceptions() {
        // Mostly 2-byte deltas with occasional huge jumps.
        let mut s = 1u64;
        let mut acc = 0i64;
        let v: Vec<i64> = (0..5000)
            .map(|i| {
                let step = (xorshift(&mut s) % 1000) as i64 - 500;
                acc = acc.wrapping_add(if i % 997 == 0 { 1 << 50 } else { step });
                acc
            })
            .collect();
        let buf = roundtrip_i64(&v);
        assert_eq!(buf[0], TAG_DELTA);
        assert_eq!(buf[2], 16, "two byte planes");
        assert!(u32::from_le_bytes([buf[3], buf[4], buf[5], buf[6]]) >= 5);
    }

    #[test]
    fn incompressible_integers_fall_back_to_plain() {
        let mut s = 7u64;
        let v: Vec<i64> = (0..100).map(|_| xorshift(&mut s) as i64).collect();
        let buf = roundtrip_i64(&v);
        assert_eq!(buf[0], TAG_PLAIN);
    }

    #[test]
    fn special_floats_are_bit_exact() {
        let nan_payload = f64::from_bits(0x7ff8_dead_beef_0001);
        let snan = f64::from_bits(0x7ff0_0000_0000_0001);
        let neg_nan = f64::from_bits(0xfff8_0000_0000_0000);
        let vals = [
            0.0,
            -0.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            nan_payload,
            snan,
            neg_nan,
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::MIN,
            5e-324,
            53.17,
        ];
        roundtrip_f64(&vals);
        roundtrip_f64(&[-0.0; 10]);
        roundtrip_f64(&[nan_payload]);
        let mixed: Vec<f64> = (0..300).map(|i| if i % 7 == 0 { -0.0 } else { i as f64 }).collect();
        roundtrip_f64(&mixed);
    }

    #[test]
    fn decimal_floats_use_decimal_encoding() {
        let walk = random_walk(10_000, 3);
        let vals: Vec<f64> = walk.iter().enumerate().map(|(i, &v)| v as f64 + (i % 100) as f64 / 100.0).collect();
        let buf = roundtrip_f64(&vals);
        assert_eq!(buf[0], TAG_DECIMAL);
        assert_eq!(buf[1], 2);
    }

    #[test]
    fn full_precision_floats_use_xor_planes() {
        let mut s = 11u64;
        let mut v = 53.17f64;
        let vals: Vec<f64> = (0..4096)
            .map(|_| {
                v += (xorshift(&mut s) as f64 / u64::MAX as f64) - 0.5;
                v
            })
            .collect();
        let buf = roundtrip_f64(&vals);
        assert_eq!(buf[0], TAG_XOR_PLANES);
    }

    #[test]
    fn bools_roundtrip_in_every_form() {
        for n in [1, 7, 8, 9, 100, 513, 10_000] {
            let all_true = vec![true; n];
            let alternating: Vec<bool> = (0..n).map(|i| i % 3 == 0).collect();
            for vals in [&all_true, &alternating] {
                let mut buf = Vec::new();
                encode_bool(vals, LEVEL, &mut buf);
                let mut out = Vec::new();
                decode_bool(&buf, n, &mut out).unwrap();
                assert_eq!(&out, vals);
            }
        }
        let mut buf = Vec::new();
        encode_bool(&vec![true; 65536], LEVEL, &mut buf);
        assert_eq!(buf, [TAG_CONST, 1]);
    }

    #[test]
    fn strings_roundtrip_with_dictionary() {
        let hosts: Vec<String> = (0..70_000).map(|i| format!("host_{}", i % 300)).collect();
        let mut buf = Vec::new();
        encode_str(&hosts, LEVEL, &mut buf);
        let d = decode_str(&buf, hosts.len()).unwrap();
        assert_eq!(d.dictionary.len(), 300);
        assert_eq!(d.keys.len(), hosts.len());
        for (i, h) in hosts.iter().enumerate() {
            assert_eq!(d.get(i), Some(h.as_str()));
        }
        let one = ["same"; 1000];
        buf.clear();
        encode_str(&one, LEVEL, &mut buf);
        let d = decode_str(&buf, 1000).unwrap();
        assert_eq!(d.dictionary, vec!["same".to_owned()]);
        assert!(d.keys.iter().all(|&k| k == 0));
    }

    #[test]
    fn errors_are_typed() {
        assert_eq!(decode_i64(&[], 1, &mut Vec::new()), Err(CodecError::Truncated { what: "encoding tag" }));
        assert_eq!(decode_i64(&[200], 1, &mut Vec::new()), Err(CodecError::UnknownTag { tag: 200, column: "i64" }));
        assert!(matches!(decode_f64(&[TAG_DELTA], 1, &mut Vec::new()), Err(CodecError::UnknownTag { .. })));
        assert!(matches!(decode_i64(&[0], MAX_COUNT + 1, &mut Vec::new()), Err(CodecError::TooLarge { .. })));
        let mut buf = Vec::new();
        encode_i64(&random_walk(1000, 5), LEVEL, &mut buf);
        let mut out = vec![1, 2, 3];
        assert_eq!(
            decode_i64(&buf, 999, &mut out),
            Err(CodecError::Invalid { what: "zstd section decompresses to an unexpected size" })
        );
        assert_eq!(out, [1, 2, 3], "nothing appended on error");
        assert!(matches!(
            decode_i64(&[TAG_PLAIN, 0, 0, 0, 0, 0, 0, 0, 0], 2, &mut out),
            Err(CodecError::CountMismatch { expected: 2, actual: 1 })
        ));
        let mut buf = Vec::new();
        encode_str(&["a", "b"], LEVEL, &mut buf);
        assert!(matches!(decode_str(&buf, 3), Err(CodecError::CountMismatch { .. })));
        let last = buf.len() - 1;
        buf.truncate(last);
        assert!(decode_str(&buf, 2).is_err());
    }

    #[test]
    fn zstd_bomb_in_strings_is_capped() {
        // A valid frame that decompresses to more than the cap.
        let limit = 1 << 20;
        let frame = zstd::bulk::compress(&vec![0u8; limit + 1], 1).unwrap();
        let mut dctx = None;
        let mut body = Vec::new();
        assert!(matches!(decompress_growing(&mut dctx, &mut body, &frame, limit), Err(CodecError::TooLarge { .. })));
        assert!(body.capacity() <= 2 * limit + 2);
        let frame = zstd::bulk::compress(&vec![0u8; limit], 1).unwrap();
        decompress_growing(&mut dctx, &mut body, &frame, limit).unwrap();
        assert_eq!(body.len(), limit);
    }

    fn check_any_bytes(data: &[u8], count: usize) {
        let mut i = Vec::new();
        if decode_i64(data, count, &mut i).is_ok() {
            assert_eq!(i.len(), count);
        } else {
            assert!(i.is_empty());
        }
        let mut t = Vec::new();
        if decode_timestamps(data, count, &mut t).is_ok() {
            assert_eq!(t.len(), count);
        }
        let mut u = Vec::new();
        if decode_u64(data, count, &mut u).is_ok() {
            assert_eq!(u.len(), count);
        }
        let mut f = Vec::new();
        if decode_f64(data, count, &mut f).is_ok() {
            assert_eq!(f.len(), count);
        } else {
            assert!(f.is_empty());
        }
        let mut b = Vec::new();
        if decode_bool(data, count, &mut b).is_ok() {
            assert_eq!(b.len(), count);
        }
        if let Ok(s) = decode_str(data, count) {
            assert_eq!(s.keys.len(), count);
            assert!(s.keys.iter().all(|&k| (k as usize) < s.dictionary.len()));
        }
    }

    fn any_f64() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<u64>().prop_map(f64::from_bits),
            (-100_000i64..100_000).prop_map(|m| m as f64 / 100.0),
            Just(-0.0),
            Just(f64::NAN),
        ]
    }

    fn any_i64() -> impl Strategy<Value = i64> {
        prop_oneof![any::<i64>(), -3i64..3, Just(i64::MIN), Just(i64::MAX),]
    }

    proptest! {
        #[test]
        fn i64_roundtrip(values in prop::collection::vec(any_i64(), 0..600), level in 1i32..4) {
            let mut buf = Vec::new();
            encode_i64(&values, level, &mut buf);
            let mut out = Vec::new();
            decode_i64(&buf, values.len(), &mut out).unwrap();
            prop_assert_eq!(out, values);
        }

        #[test]
        fn walk_and_timestamp_roundtrip(start in any::<i64>(), steps in prop::collection::vec(-300i64..300, 0..2000)) {
            let mut acc = start;
            let values: Vec<i64> = steps.iter().map(|s| { acc = acc.wrapping_add(*s); acc }).collect();
            let mut buf = Vec::new();
            encode_timestamps(&values, 1, &mut buf);
            let mut out = Vec::new();
            decode_timestamps(&buf, values.len(), &mut out).unwrap();
            prop_assert_eq!(&out, &values);
            buf.clear();
            encode_i64(&values, 1, &mut buf);
            out.clear();
            decode_i64(&buf, values.len(), &mut out).unwrap();
            prop_assert_eq!(out, values);
        }

        #[test]
        fn narrow_widths_with_exceptions_roundtrip(
            start in any::<i64>(),
            steps in prop::collection::vec(prop_oneof![20 => -3i64..4, 1 => any::<i64>()], 3..3000),
        ) {
            // Mostly nibble-sized residuals with scattered exceptions, in
            // both halves of the nibble plane and at its edges.
            let mut acc = start;
            let values: Vec<i64> = steps.iter().map(|s| { acc = acc.wrapping_add(*s); acc }).collect();
            for encode in [encode_i64, encode_timestamps] {
                let mut buf = Vec::new();
                encode(&values, 1, &mut buf);
                let mut out = Vec::new();
                decode_i64(&buf, values.len(), &mut out).unwrap();
                prop_assert_eq!(&out, &values);
            }
        }

        #[test]
        fn u64_roundtrip(values in prop::collection::vec(any::<u64>(), 0..300)) {
            let mut buf = Vec::new();
            encode_u64(&values, 1, &mut buf);
            let mut out = Vec::new();
            decode_u64(&buf, values.len(), &mut out).unwrap();
            prop_assert_eq!(out, values);
        }

        #[test]
        fn f64_roundtrip_bit_exact(values in prop::collection::vec(any_f64(), 0..400)) {
            let mut buf = Vec::new();
            encode_f64(&values, 1, &mut buf);
            let mut out = Vec::new();
            decode_f64(&buf, values.len(), &mut out).unwrap();
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            prop_assert_eq!(bits(&out), bits(&values));
        }

        #[test]
        fn bool_roundtrip(values in prop::collection::vec(any::<bool>(), 0..2000)) {
            let mut buf = Vec::new();
            encode_bool(&values, 1, &mut buf);
            let mut out = Vec::new();
            decode_bool(&buf, values.len(), &mut out).unwrap();
            prop_assert_eq!(out, values);
        }

        #[test]
        fn str_roundtrip(values in prop::collection::vec(prop_oneof!["[a-c]{0,3}", ".{0,12}"], 0..400)) {
            let mut buf = Vec::new();
            encode_str(&values, 1, &mut buf);
            let d = decode_str(&buf, values.len()).unwrap();
            prop_assert_eq!(d.keys.len(), values.len());
            for (i, v) in values.iter().enumerate() {
                prop_assert_eq!(d.get(i), Some(v.as_str()));
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..300), count in 0usize..5000) {
            check_any_bytes(&data, count);
        }

        #[test]
        fn arbitrary_headers_before_real_frames_never_panic(
            tag in 0u8..7,
            header in prop::collection::vec(any::<u8>(), 0..24),
            values in prop::collection::vec(any::<u8>(), 1..200),
            count in 0usize..3000,
        ) {
            // A well-formed zstd frame behind a fuzzed header reaches the
            // post-decompression checks that random bytes rarely do.
            let frame = zstd::bulk::compress(&values, 1).unwrap();
            let mut data = vec![tag];
            data.extend_from_slice(&header);
            data.extend_from_slice(&frame);
            check_any_bytes(&data, count);
        }

        #[test]
        fn corrupted_payloads_never_panic(
            values in prop::collection::vec(any_i64(), 1..500),
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
            count_delta in -2i64..2,
        ) {
            let mut buf = Vec::new();
            encode_i64(&values, 1, &mut buf);
            for (i, b) in &flips {
                let i = i.index(buf.len());
                buf[i] ^= b;
            }
            let count = (values.len() as i64 + count_delta).max(0) as usize;
            check_any_bytes(&buf, count);
        }
    }
}
