//! The time range of a read: an inclusive `[min, max]` of ns timestamps.
//!
//! Every `i64` is a timestamp the write path accepts, `i64::MIN` and
//! `i64::MAX` included, so a read range must be able to hold both ends. A
//! half-open `[start, end)` cannot: "everything" would be
//! `[i64::MIN, i64::MAX)`, which drops a row at `i64::MAX`. Scans, flushes,
//! compactions and exports all select rows through this type.

/// An inclusive range `[min, max]` of ns timestamps; empty when `min > max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimeRange {
    min: i64,
    max: i64,
}

impl Default for TimeRange {
    fn default() -> Self {
        TimeRange::ALL
    }
}

impl TimeRange {
    /// Every timestamp, `i64::MIN` and `i64::MAX` included.
    pub const ALL: TimeRange = TimeRange { min: i64::MIN, max: i64::MAX };
    /// No timestamp.
    pub const EMPTY: TimeRange = TimeRange { min: 0, max: -1 };

    /// `[min, max]`, both included; empty when `min > max`.
    pub fn inclusive(min: i64, max: i64) -> TimeRange {
        if min > max { TimeRange::EMPTY } else { TimeRange { min, max } }
    }

    /// `[start, end)`; empty when `end <= start`.
    pub fn half_open(start: i64, end: i64) -> TimeRange {
        if end <= start { TimeRange::EMPTY } else { TimeRange { min: start, max: end - 1 } }
    }

    /// Timestamps `>= start`.
    pub fn from(start: i64) -> TimeRange {
        TimeRange { min: start, max: i64::MAX }
    }

    /// Timestamps `<= end`.
    pub fn until(end: i64) -> TimeRange {
        TimeRange { min: i64::MIN, max: end }
    }

    /// The smallest timestamp in the range (meaningless when empty).
    pub fn min(&self) -> i64 {
        self.min
    }

    /// The largest timestamp in the range (meaningless when empty).
    pub fn max(&self) -> i64 {
        self.max
    }

    pub fn is_empty(&self) -> bool {
        self.min > self.max
    }

    /// True for the whole `i64` line.
    pub fn is_all(&self) -> bool {
        *self == TimeRange::ALL
    }

    pub fn contains(&self, t: i64) -> bool {
        self.min <= t && t <= self.max
    }

    /// True when some timestamp of `[lo, hi]` is in the range.
    pub fn overlaps(&self, lo: i64, hi: i64) -> bool {
        !self.is_empty() && lo <= hi && lo <= self.max && hi >= self.min
    }

    /// True when every timestamp of `[lo, hi]` is in the range.
    pub fn covers(&self, lo: i64, hi: i64) -> bool {
        !self.is_empty() && self.min <= lo && hi <= self.max
    }

    /// The timestamps in both ranges.
    #[must_use]
    pub fn intersect(&self, other: TimeRange) -> TimeRange {
        TimeRange::inclusive(self.min.max(other.min), self.max.min(other.max))
    }
}

/// `[min, max]`, or `empty`.
impl std::fmt::Display for TimeRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_empty() { f.write_str("empty") } else { write!(f, "[{}, {}]", self.min, self.max) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn all_holds_both_ends() {
        assert!(TimeRange::ALL.contains(i64::MIN));
        assert!(TimeRange::ALL.contains(i64::MAX));
        assert!(TimeRange::ALL.overlaps(i64::MAX, i64::MAX));
        assert!(TimeRange::ALL.covers(i64::MIN, i64::MAX));
        assert!(TimeRange::from(i64::MAX).contains(i64::MAX));
        assert!(TimeRange::until(i64::MIN).contains(i64::MIN));
    }

    #[test]
    fn empty_ranges_hold_nothing() {
        for r in [TimeRange::EMPTY, TimeRange::half_open(5, 5), TimeRange::half_open(6, 5), TimeRange::inclusive(1, 0)]
        {
            assert!(r.is_empty());
            assert!(!r.contains(0) && !r.contains(5));
            assert!(!r.overlaps(i64::MIN, i64::MAX));
            assert!(!r.covers(5, 5));
        }
        assert_eq!(TimeRange::half_open(i64::MIN, i64::MIN + 1), TimeRange::inclusive(i64::MIN, i64::MIN));
    }

    proptest! {
        #[test]
        fn half_open_matches_its_definition(start: i64, end: i64, t: i64) {
            prop_assert_eq!(TimeRange::half_open(start, end).contains(t), start <= t && t < end);
        }

        #[test]
        fn overlaps_and_covers_agree_with_contains(a: i64, b: i64, lo in -8i64..8, len in 0i64..8, ) {
            let r = TimeRange::inclusive(a.clamp(-10, 10), b.clamp(-10, 10));
            let hi = lo + len;
            let hits = (lo..=hi).filter(|t| r.contains(*t)).count() as i64;
            prop_assert_eq!(r.overlaps(lo, hi), hits > 0);
            prop_assert_eq!(r.covers(lo, hi), hits == len + 1);
        }

        #[test]
        fn intersect_is_and(a: i64, b: i64, c: i64, d: i64, t: i64) {
            let (r, s) = (TimeRange::inclusive(a, b), TimeRange::inclusive(c, d));
            prop_assert_eq!(r.intersect(s).contains(t), r.contains(t) && s.contains(t));
        }
    }
}
