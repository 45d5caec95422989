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
