//! bool blocks (also validity bitmaps): packed bits, zstd when long.

use super::*;

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
