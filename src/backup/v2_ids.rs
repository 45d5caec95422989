//! The names the InfluxDB 2 backup and restore API gives quipu's units: a
//! bucket is a database, and its id is 16 hex digits; a shard is one 24h
//! UTC window of one database (all its tables), and its id is a number made
//! of the database id and the window's day alone, so it stays the same
//! across flushes and compactions and between two backups of one server.
//! Shard ids stay below 2^53: JavaScript clients read ids as doubles.
//!
//! Layout of a shard id: `(database id + 1) << 18 | (day + 2^17)`, where
//! `day` is the window's day since 1970-01-01 (-106,752 to 106,751 for
//! `i64` nanosecond timestamps). The `+ 1` keeps every id, bucket or shard,
//! from being zero (InfluxDB treats a zero id as absent).

use crate::tree::WINDOW_NS;

/// Bits of a shard id that hold the day.
const DAY_BITS: u32 = 18;
/// Added to a day so that every day of the `i64` range is positive.
const DAY_OFFSET: i64 = 1 << 17;
/// The first and last day a nanosecond timestamp falls on.
const FIRST_DAY: i64 = i64::MIN.div_euclid(WINDOW_NS);
const LAST_DAY: i64 = i64::MAX.div_euclid(WINDOW_NS);

/// The bucket id of database `db`: 16 lowercase hex digits, never zero.
pub fn bucket_id(db: u32) -> String {
    format!("{:016x}", u64::from(db) + 1)
}

/// The database a bucket id names; `None` for anything but 16 hex digits
/// naming a database id.
pub fn parse_bucket_id(id: &str) -> Option<u32> {
    if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let value = u64::from_str_radix(id, 16).ok()?;
    u32::try_from(value.checked_sub(1)?).ok()
}

/// The day (since 1970-01-01, UTC) of the window holding timestamp `t`.
pub fn day_of(t: i64) -> i64 {
    t.div_euclid(WINDOW_NS)
}

/// The shard id of day `day`'s window of database `db`; `None` for a day no
/// nanosecond timestamp falls on.
pub fn shard_id(db: u32, day: i64) -> Option<u64> {
    if !(FIRST_DAY..=LAST_DAY).contains(&day) {
        return None;
    }
    Some(((u64::from(db) + 1) << DAY_BITS) | (day + DAY_OFFSET) as u64)
}

/// The database and day a shard id names; `None` for any other number.
pub fn parse_shard_id(id: u64) -> Option<(u32, i64)> {
    let db = u32::try_from((id >> DAY_BITS).checked_sub(1)?).ok()?;
    let day = (id & ((1 << DAY_BITS) - 1)) as i64 - DAY_OFFSET;
    (FIRST_DAY..=LAST_DAY).contains(&day).then_some((db, day))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn bucket_ids_round_trip(db in any::<u32>()) {
            let id = bucket_id(db);
            prop_assert_eq!(id.len(), 16);
            prop_assert_eq!(parse_bucket_id(&id), Some(db));
            prop_assert_eq!(parse_bucket_id(&id.to_uppercase()), Some(db));
        }

        #[test]
        fn shard_ids_round_trip_below_2_53(db in any::<u32>(), t in any::<i64>()) {
            let id = shard_id(db, day_of(t)).unwrap();
            prop_assert!(id > 0 && id < 1 << 53);
            prop_assert_eq!(parse_shard_id(id), Some((db, day_of(t))));
        }

        #[test]
        fn any_number_or_text_is_refused_or_read_back(id in any::<u64>(), text in "[0-9a-fA-F]{0,20}") {
            if let Some((db, day)) = parse_shard_id(id) {
                prop_assert_eq!(shard_id(db, day), Some(id));
            }
            if let Some(db) = parse_bucket_id(&text) {
                prop_assert_eq!(bucket_id(db), text.to_lowercase());
            }
        }
    }

    #[test]
    fn the_ends_of_time_and_of_the_id_space() {
        assert_eq!(day_of(i64::MIN), FIRST_DAY);
        assert_eq!((FIRST_DAY, LAST_DAY), (-106_752, 106_751));
        assert!(shard_id(u32::MAX, LAST_DAY).unwrap() < 1 << 53);
        assert_eq!(shard_id(0, FIRST_DAY - 1), None);
        assert_eq!(shard_id(0, LAST_DAY + 1), None);
        assert_eq!(parse_shard_id(0), None);
        // Day -2^17 comes before the first day.
        assert_eq!(parse_shard_id(1 << DAY_BITS), None);
        assert_eq!(parse_bucket_id("0000000000000000"), None);
        assert_eq!(parse_bucket_id("0000000100000000"), Some(u32::MAX));
        assert_eq!(parse_bucket_id("0000000100000001"), None);
        // from_str_radix alone would take the sign.
        assert_eq!(parse_bucket_id("+000000000000001"), None);
        assert_eq!(parse_bucket_id("000000000000001"), None);
        // Two windows of one database, and one window of two, differ.
        assert_ne!(shard_id(0, 0), shard_id(0, 1));
        assert_ne!(shard_id(0, 0), shard_id(1, 0));
    }
}
