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

mod boolean;
mod float;
mod int;
mod string;
#[cfg(test)]
mod tests;

pub use boolean::{decode_bool, encode_bool};
pub use float::{decode_f64, encode_f64};
pub use int::{decode_i64, decode_timestamps, decode_u64, encode_i64, encode_timestamps, encode_u64};
pub use string::{decode_str, encode_str};
