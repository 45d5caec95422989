//! Arbitrary bytes as a column block payload for every decoder: exactly
//! `count` values or a typed error, never a panic; what decodes re-encodes to
//! the same values.
#![no_main]
use libfuzzer_sys::fuzz_target;
use quipu::segment::codec::*;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    // Count from the first two bytes (LE): up to 65,535, the block size range.
    let count = u16::from_le_bytes([data[0], data[1]]) as usize;
    let payload = &data[2..];

    let mut i = Vec::new();
    match decode_i64(payload, count, &mut i) {
        Ok(()) => {
            assert_eq!(i.len(), count);
            let mut re = Vec::new();
            encode_i64(&i, 1, &mut re);
            let mut back = Vec::new();
            decode_i64(&re, count, &mut back).expect("re-encoded i64 decodes");
            assert_eq!(back, i);
        }
        Err(_) => assert!(i.is_empty()),
    }
    let mut t = Vec::new();
    if decode_timestamps(payload, count, &mut t).is_ok() {
        assert_eq!(t.len(), count);
    }
    let mut u = Vec::new();
    if decode_u64(payload, count, &mut u).is_ok() {
        assert_eq!(u.len(), count);
    }
    let mut f = Vec::new();
    match decode_f64(payload, count, &mut f) {
        Ok(()) => {
            assert_eq!(f.len(), count);
            let mut re = Vec::new();
            encode_f64(&f, 1, &mut re);
            let mut back = Vec::new();
            decode_f64(&re, count, &mut back).expect("re-encoded f64 decodes");
            assert!(back.iter().zip(&f).all(|(a, b)| a.to_bits() == b.to_bits()));
        }
        Err(_) => assert!(f.is_empty()),
    }
    let mut b = Vec::new();
    if decode_bool(payload, count, &mut b).is_ok() {
        assert_eq!(b.len(), count);
    }
    if let Ok(s) = decode_str(payload, count) {
        assert_eq!(s.keys.len(), count);
        assert!(s.keys.iter().all(|&k| (k as usize) < s.dictionary.len()));
    }
});
