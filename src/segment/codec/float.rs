//! f64 blocks: plain, constant, decimal (integer mantissas of one
//! power of ten, as integer blocks) or XOR planes.

use super::int::{decode_ints, encode_ints};
use super::*;

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
