//! Integer blocks (timestamps, i64, u64): plain, constant, or first- or
//! second-order deltas, zigzagged and bit-packed in planes with
//! exceptions (FORMAT.md, "Column payload codecs").

use super::*;

/// 64-bit integer types sharing the integer encodings (as bit patterns).
pub(super) trait IntBits: Copy {
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

pub(super) fn encode_ints<T: IntBits>(values: &[T], level: i32, prefer_second_order: bool, out: &mut Vec<u8>) {
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
pub(super) fn decode_ints<T: IntBits>(
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
