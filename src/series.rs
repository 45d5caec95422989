//! Series keys: a series is its tag set, kept as (tag column id, value)
//! pairs sorted by column id. The one definition shared by ingest (a
//! resolved write names its series this way), the buffer, sorted rows and
//! the segment format, whose footer stores the series directory as
//! `postcard(Vec<SeriesKey>)` (docs/FORMAT.md): changing this type changes
//! the bytes of every `.seg` file.

/// A series: its tag values by tag column id, sorted by column id.
pub type SeriesKey = Vec<(u32, String)>;
