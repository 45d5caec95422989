//! String blocks: a dictionary in first-occurrence order plus keys.

use super::*;

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
