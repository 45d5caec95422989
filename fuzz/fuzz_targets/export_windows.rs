//! Fuzzes the `windows=` parameter of `GET /api/v3/export/window_data`
//! (`quipu::export::parse_window_list`): any text gives window starts or an
//! `InvalidArgument`, never a panic; starts are sorted, unique, window starts
//! (the first window, 1677-09-21, is cut by the i64 range and starts at
//! `i64::MIN`), and each one's name parses back to it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quipu::export::{parse_window, parse_window_list, window_name};
use quipu::tree::window_start;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match parse_window_list(text) {
        Ok(starts) => {
            assert!(starts.windows(2).all(|w| w[0] < w[1]));
            for s in starts {
                assert_eq!(window_start(s), s);
                assert_eq!(parse_window(&window_name(s)).expect("own name parses"), s);
            }
        }
        Err(quipu::Error::InvalidArgument(_)) => {}
        Err(other) => panic!("unexpected {other:?}"),
    }
});
