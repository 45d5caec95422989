//! Synthetic workload generation for `quipu gen`: the TSBS "cpu-only" data set
//! as InfluxDB line protocol.
//!
//! This module owns the host model (tags and random walks), the line
//! rendering and the CLI value parsers for `quipu gen tsbs --hosts N
//! --duration D [--interval 10s] [--seed S] [--start RFC3339]`.
//!
//! # What is generated
//!
//! Following timescale/tsbs (`pkg/data/usecases/devops/host.go`, `cpu.go`,
//! `cpu_only_generate_data.go`, `common/distribution.go`):
//!
//! * measurement `cpu`; tags, in this order: `hostname` (`host_<i>`),
//!   `region`, `datacenter` (one of the region's), `rack` (0..=99), `os`,
//!   `arch`, `team`, `service` (0..=19), `service_version` (0..=1),
//!   `service_environment`, drawn uniformly from [`REGIONS`], [`OS_CHOICES`],
//!   [`ARCH_CHOICES`], [`TEAM_CHOICES`] and [`SERVICE_ENVIRONMENT_CHOICES`]
//!   once per host and fixed for its lifetime;
//! * the ten fields of [`CPU_FIELDS`], each a random walk clamped to
//!   [0, 100] that starts at `uniform[0,1) * 100` and moves by a normal(0, 1)
//!   step per interval (clamped after every step, as TSBS does);
//! * one line per host per interval, time-major: for each timestamp, `host_0`
//!   up to `host_{N-1}`. The first timestamp is `start`, the first line of a
//!   host carries the walk's initial state (TSBS emits before it ticks), and
//!   there are `duration / interval` (rounded down) timestamps.
//!
//! Fields are integers (`usage_user=58i`). Like TSBS's `int64(d.Get())`, the
//! emitted value is the walk truncated toward zero, which for a walk in
//! [0, 100] is its floor; the walk itself keeps full `f64` precision, so the
//! truncation does not feed back into later values. Timestamps are Unix
//! nanoseconds.
//!
//! # Determinism
//!
//! The output is a pure function of [`TsbsConfig`]: no clock, no system
//! entropy, no platform-dependent arithmetic. Every host has its own
//! ChaCha8 stream (key from `seed_from_u64(seed)`, stream id = host index),
//! so host `i`'s tags and values do not depend on `--hosts` either: the
//! output for 10 hosts is the output for 1,000 hosts restricted to
//! `host_0..host_9`. ChaCha8Rng is one of rand's "portable" generators; all
//! integer draws use `u32` ranges (never `usize`, whose sampling differs
//! between 32- and 64-bit targets); normal steps come from Marsaglia's polar
//! method with `libm::log` (pure Rust, so not the platform's libm) and
//! IEEE-exact `sqrt`. A rand upgrade that changes value streams (rand only
//! does so in a 0.x minor bump) would change the output; the golden test in
//! this module notices. The values differ from TSBS's own generator, which uses
//! Go's `math/rand`; only the model and value sets are the same.
//!
//! Defaults (see [`TsbsConfig::default`]): 1 host, 1 day, 10 s interval,
//! seed 1, start 2016-01-01T00:00:00Z (TSBS's defaults, seed aside).

use std::io::Write;
use std::time::{Duration, UNIX_EPOCH};

use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

/// Regions and their datacenters, as in TSBS `host.go` (`regions`).
pub const REGIONS: &[(&str, &[&str])] = &[
    ("us-east-1", &["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1e"]),
    ("us-west-1", &["us-west-1a", "us-west-1b"]),
    ("us-west-2", &["us-west-2a", "us-west-2b", "us-west-2c"]),
    ("eu-west-1", &["eu-west-1a", "eu-west-1b", "eu-west-1c"]),
    ("eu-central-1", &["eu-central-1a", "eu-central-1b"]),
    ("ap-southeast-1", &["ap-southeast-1a", "ap-southeast-1b"]),
    ("ap-southeast-2", &["ap-southeast-2a", "ap-southeast-2b"]),
    ("ap-northeast-1", &["ap-northeast-1a", "ap-northeast-1c"]),
    ("sa-east-1", &["sa-east-1a", "sa-east-1b", "sa-east-1c"]),
];
/// TSBS `MachineOSChoices`.
pub const OS_CHOICES: &[&str] = &["Ubuntu16.10", "Ubuntu16.04LTS", "Ubuntu15.10"];
/// TSBS `MachineArchChoices`.
pub const ARCH_CHOICES: &[&str] = &["x64", "x86"];
/// TSBS `MachineTeamChoices`.
pub const TEAM_CHOICES: &[&str] = &["SF", "NYC", "LON", "CHI"];
/// TSBS `MachineServiceEnvironmentChoices`.
pub const SERVICE_ENVIRONMENT_CHOICES: &[&str] = &["production", "staging", "test"];
/// Racks per datacenter: `rack` is 0..RACK_CHOICES (TSBS `machineRackChoicesPerDatacenter`).
pub const RACK_CHOICES: u32 = 100;
/// `service` is 0..SERVICE_CHOICES (TSBS `machineServiceChoices`).
pub const SERVICE_CHOICES: u32 = 20;
/// `service_version` is 0..SERVICE_VERSION_CHOICES (TSBS `machineServiceVersionChoices`).
pub const SERVICE_VERSION_CHOICES: u32 = 2;
/// Tag keys in line order (TSBS `MachineTagKeys`).
pub const TAG_KEYS: [&str; 10] = [
    "hostname",
    "region",
    "datacenter",
    "rack",
    "os",
    "arch",
    "team",
    "service",
    "service_version",
    "service_environment",
];
/// Field keys in line order (TSBS `cpuFields`).
pub const CPU_FIELDS: [&str; 10] = [
    "usage_user",
    "usage_system",
    "usage_idle",
    "usage_nice",
    "usage_iowait",
    "usage_irq",
    "usage_softirq",
    "usage_steal",
    "usage_guest",
    "usage_guest_nice",
];

const MEASUREMENT: &str = "cpu";
const WALK_MIN: f64 = 0.0;
const WALK_MAX: f64 = 100.0;
/// 2016-01-01T00:00:00Z, TSBS's default `--timestamp-start`.
pub const DEFAULT_START_NS: i64 = 1_451_606_400_000_000_000;
/// Lines per `write_all` in [`write_tsbs`]: the size of a benchmark write request.
const WRITE_BATCH_LINES: usize = 5_000;

/// Errors of the generator and its CLI parsers.
#[derive(Debug, thiserror::Error)]
pub enum GenError {
    #[error("--hosts must be at least 1")]
    ZeroHosts,
    #[error("--interval must be greater than zero")]
    ZeroInterval,
    #[error("--duration {duration:?} is shorter than --interval {interval:?}: nothing to generate")]
    DurationShorterThanInterval { duration: Duration, interval: Duration },
    #[error("start {start_ns} ns + {timestamps} timestamps every {interval:?} does not fit in i64 nanoseconds")]
    TimestampOverflow { start_ns: i64, timestamps: u64, interval: Duration },
    #[error("cannot allocate state for {hosts} hosts")]
    TooManyHosts { hosts: u32 },
    #[error("invalid duration {input:?} (expected e.g. 10s, 90m, 1h, 3d): {source}")]
    InvalidDuration { input: String, source: humantime::DurationError },
    #[error("invalid start {input:?} (expected RFC3339 UTC, e.g. 2016-01-01T00:00:00Z): {source}")]
    InvalidStart { input: String, source: humantime::TimestampError },
    #[error("start {input:?} is outside the i64 nanosecond range (1970..2262)")]
    StartOutOfRange { input: String },
    #[error("writing line protocol after {lines_written} lines: {source}")]
    Io { lines_written: u64, source: std::io::Error },
}

/// What to generate. See the module doc for the model.
#[derive(Debug, Clone)]
pub struct TsbsConfig {
    pub hosts: u32,
    pub duration: Duration,
    pub interval: Duration,
    pub seed: u64,
    /// First timestamp, Unix nanoseconds.
    pub start_ns: i64,
}

impl Default for TsbsConfig {
    /// TSBS's defaults: 1 host (`--scale 1`), one day from 2016-01-01T00:00:00Z
    /// every 10 s; seed 1.
    fn default() -> Self {
        Self {
            hosts: 1,
            duration: Duration::from_secs(24 * 60 * 60),
            interval: Duration::from_secs(10),
            seed: 1,
            start_ns: DEFAULT_START_NS,
        }
    }
}

impl TsbsConfig {
    /// Number of timestamps: `duration / interval`, rounded down (0 for a zero interval).
    pub fn timestamps(&self) -> u64 {
        let t = self.duration.as_nanos().checked_div(self.interval.as_nanos()).unwrap_or(0);
        u64::try_from(t).unwrap_or(u64::MAX)
    }

    /// Number of lines: `hosts * (duration / interval)`, saturating.
    pub fn rows(&self) -> u64 {
        self.timestamps().saturating_mul(u64::from(self.hosts))
    }
}

/// Per-host simulation state; the host's tag prefix lives in the generator's prefix arena.
struct HostState {
    rng: ChaCha8Rng,
    walks: [f64; CPU_FIELDS.len()],
}

impl HostState {
    /// One normal(0,1) step for every walk, then clamp (TSBS `ClampedRandomWalkDistribution`).
    fn advance(&mut self) {
        // Marsaglia's polar method yields two independent normals per
        // accepted draw; ten walks use exactly five pairs, so no spare is kept.
        for pair in self.walks.chunks_exact_mut(2) {
            let (z0, z1) = standard_normal_pair(&mut self.rng);
            pair[0] = (pair[0] + z0).clamp(WALK_MIN, WALK_MAX);
            pair[1] = (pair[1] + z1).clamp(WALK_MIN, WALK_MAX);
        }
    }
}

fn standard_normal_pair(rng: &mut ChaCha8Rng) -> (f64, f64) {
    loop {
        let u = 2.0 * rng.random::<f64>() - 1.0;
        let v = 2.0 * rng.random::<f64>() - 1.0;
        let s = u * u + v * v;
        if s > 0.0 && s < 1.0 {
            let factor = (-2.0 * libm::log(s) / s).sqrt();
            return (u * factor, v * factor);
        }
    }
}

fn choose<'a>(rng: &mut ChaCha8Rng, choices: &[&'a str]) -> &'a str {
    // u32 ranges: rand's usize sampling is not portable across pointer widths.
    let n = u32::try_from(choices.len()).unwrap_or(u32::MAX);
    let i = rng.random_range(0..n) as usize;
    choices.get(i).copied().unwrap_or_default()
}

/// Streams TSBS cpu-only lines for a [`TsbsConfig`], a batch at a time.
pub struct TsbsGenerator {
    hosts: Vec<HostState>,
    /// Every host's `cpu,hostname=...,service_environment=... ` (with the
    /// trailing space), concatenated; host `i` is `prefixes[prefix_ends[i-1]..prefix_ends[i]]`.
    prefixes: Vec<u8>,
    prefix_ends: Vec<usize>,
    start_ns: i64,
    interval_ns: i64,
    timestamps: u64,
    /// Position of the next line: timestamp index and host index.
    next_timestamp: u64,
    next_host: usize,
    /// ` <timestamp>\n` for `next_timestamp`, rendered once per timestamp.
    timestamp_suffix: Vec<u8>,
    /// `field_texts[f][v]` is field `f` with value `v` as written: `usage_user=58i`,
    /// with a leading ',' for all but the first field. Walk values are 0..=100,
    /// so copying these beats formatting each value.
    field_texts: Vec<Vec<FieldText>>,
}

impl TsbsGenerator {
    /// Validates `cfg` and draws every host's tags and initial walk values.
    pub fn new(cfg: TsbsConfig) -> Result<Self, GenError> {
        if cfg.hosts == 0 {
            return Err(GenError::ZeroHosts);
        }
        if cfg.interval.is_zero() {
            return Err(GenError::ZeroInterval);
        }
        let timestamps = cfg.timestamps();
        if timestamps == 0 {
            return Err(GenError::DurationShorterThanInterval { duration: cfg.duration, interval: cfg.interval });
        }
        let overflow = || GenError::TimestampOverflow { start_ns: cfg.start_ns, timestamps, interval: cfg.interval };
        let interval_ns = i64::try_from(cfg.interval.as_nanos()).map_err(|_| overflow())?;
        // Checking the last timestamp once lets the hot loop add without checks.
        i64::try_from(timestamps - 1)
            .ok()
            .and_then(|last| last.checked_mul(interval_ns))
            .and_then(|offset| offset.checked_add(cfg.start_ns))
            .ok_or_else(overflow)?;

        let host_count = cfg.hosts as usize;
        let too_many = || GenError::TooManyHosts { hosts: cfg.hosts };
        let mut hosts: Vec<HostState> = Vec::new();
        hosts.try_reserve_exact(host_count).map_err(|_| too_many())?;
        let mut prefix_ends: Vec<usize> = Vec::new();
        prefix_ends.try_reserve_exact(host_count).map_err(|_| too_many())?;
        let mut prefixes: Vec<u8> = Vec::new();
        // ~150 bytes per host with TSBS's value sets.
        prefixes.try_reserve(host_count.saturating_mul(160)).map_err(|_| too_many())?;

        let key = ChaCha8Rng::seed_from_u64(cfg.seed).get_seed();
        for host in 0..cfg.hosts {
            let mut rng = ChaCha8Rng::from_seed(key);
            rng.set_stream(u64::from(host));

            let (region, datacenters) =
                REGIONS.get(rng.random_range(0..REGIONS.len() as u32) as usize).copied().unwrap_or_default();
            let datacenter = choose(&mut rng, datacenters);
            let rack = rng.random_range(0..RACK_CHOICES);
            let os = choose(&mut rng, OS_CHOICES);
            let arch = choose(&mut rng, ARCH_CHOICES);
            let team = choose(&mut rng, TEAM_CHOICES);
            let service = rng.random_range(0..SERVICE_CHOICES);
            let service_version = rng.random_range(0..SERVICE_VERSION_CHOICES);
            let environment = choose(&mut rng, SERVICE_ENVIRONMENT_CHOICES);
            let walks: [f64; CPU_FIELDS.len()] = std::array::from_fn(|_| rng.random::<f64>() * WALK_MAX);

            let hostname = format!("host_{host}");
            let (rack, service, service_version) = (rack.to_string(), service.to_string(), service_version.to_string());
            let values: [&str; TAG_KEYS.len()] =
                [&hostname, region, datacenter, &rack, os, arch, team, &service, &service_version, environment];
            prefixes.extend_from_slice(MEASUREMENT.as_bytes());
            for (key, value) in TAG_KEYS.iter().zip(values) {
                // TSBS's values contain no spaces, commas or '=': no escaping needed.
                prefixes.push(b',');
                prefixes.extend_from_slice(key.as_bytes());
                prefixes.push(b'=');
                prefixes.extend_from_slice(value.as_bytes());
            }
            prefixes.push(b' ');
            prefix_ends.push(prefixes.len());
            hosts.push(HostState { rng, walks });
        }

        let mut generator = Self {
            hosts,
            prefixes,
            prefix_ends,
            start_ns: cfg.start_ns,
            interval_ns,
            timestamps,
            next_timestamp: 0,
            next_host: 0,
            timestamp_suffix: Vec::with_capacity(24),
            field_texts: render_field_texts(),
        };
        generator.render_timestamp();
        Ok(generator)
    }

    /// Lines still to come.
    pub fn remaining(&self) -> u64 {
        let hosts = self.hosts.len() as u64;
        (self.timestamps - self.next_timestamp).saturating_mul(hosts).saturating_sub(self.next_host as u64)
    }

    /// Appends up to `max_lines` lines (each ending in '\n') to `out`; returns
    /// how many lines were appended (0 = done).
    pub fn next_batch(&mut self, max_lines: usize, out: &mut Vec<u8>) -> usize {
        // Values are 0..=100, so a field is at most `,usage_guest_nice=100i`.
        const MAX_FIELDS_LEN: usize = 10 * 24;
        let mut written = 0;
        while written < max_lines && self.next_timestamp < self.timestamps {
            let host_index = self.next_host;
            let start = host_index.checked_sub(1).and_then(|i| self.prefix_ends.get(i)).copied().unwrap_or(0);
            let end = self.prefix_ends.get(host_index).copied().unwrap_or(start);
            let prefix = self.prefixes.get(start..end).unwrap_or_default();
            let Some(host) = self.hosts.get_mut(host_index) else {
                break;
            };
            if self.next_timestamp > 0 {
                host.advance();
            }

            out.reserve(prefix.len() + MAX_FIELDS_LEN + self.timestamp_suffix.len());
            out.extend_from_slice(prefix);
            for (rendered, walk) in self.field_texts.iter().zip(host.walks) {
                // Truncation toward zero, as TSBS's int64(); the walk is in [0, 100].
                if let Some(text) = rendered.get(walk as usize) {
                    out.extend_from_slice(text.as_bytes());
                }
            }
            out.extend_from_slice(&self.timestamp_suffix);
            written += 1;

            self.next_host += 1;
            if self.next_host == self.hosts.len() {
                self.next_host = 0;
                self.next_timestamp += 1;
                self.render_timestamp();
            }
        }
        written
    }

    fn render_timestamp(&mut self) {
        // In range: `new` checked the last timestamp; past the end it is never emitted.
        let ns = i64::try_from(self.next_timestamp)
            .unwrap_or(i64::MAX)
            .wrapping_mul(self.interval_ns)
            .wrapping_add(self.start_ns);
        self.timestamp_suffix.clear();
        self.timestamp_suffix.push(b' ');
        self.timestamp_suffix.extend_from_slice(itoa::Buffer::new().format(ns).as_bytes());
        self.timestamp_suffix.push(b'\n');
    }
}

/// One rendered `,key=<value>i`, inline so the table stays compact.
#[derive(Clone, Copy)]
struct FieldText {
    len: u8,
    bytes: [u8; 23],
}

impl FieldText {
    fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or_default()
    }
}

fn render_field_texts() -> Vec<Vec<FieldText>> {
    let mut number = itoa::Buffer::new();
    CPU_FIELDS
        .iter()
        .enumerate()
        .map(|(i, key)| {
            (0..=WALK_MAX as u8)
                .map(|value| {
                    let separator = if i == 0 { "" } else { "," };
                    let text = [separator, key, "=", number.format(value), "i"].concat();
                    let mut bytes = [0u8; 23];
                    let len = text.len().min(bytes.len());
                    bytes[..len].copy_from_slice(&text.as_bytes()[..len]);
                    FieldText { len: len as u8, bytes }
                })
                .collect()
        })
        .collect()
}

/// Writes every line for `cfg` to `out`, in batches of 5,000 lines; returns
/// the number of lines written.
pub fn write_tsbs(cfg: &TsbsConfig, out: &mut impl Write) -> Result<u64, GenError> {
    let mut generator = TsbsGenerator::new(cfg.clone())?;
    let mut buf = Vec::with_capacity(WRITE_BATCH_LINES * 320);
    let mut lines_written = 0u64;
    loop {
        buf.clear();
        let n = generator.next_batch(WRITE_BATCH_LINES, &mut buf);
        if n == 0 {
            break;
        }
        out.write_all(&buf).map_err(|source| GenError::Io { lines_written, source })?;
        lines_written += n as u64;
    }
    out.flush().map_err(|source| GenError::Io { lines_written, source })?;
    Ok(lines_written)
}

/// Parses CLI duration strings like "10s", "1h", "1d", "3d", "90m", "1h30m"
/// (humantime syntax).
pub fn parse_duration(s: &str) -> Result<Duration, GenError> {
    humantime::parse_duration(s).map_err(|source| GenError::InvalidDuration { input: s.to_owned(), source })
}

/// Parses an RFC3339 UTC timestamp ("2016-01-01T00:00:00Z", optional
/// fractional seconds, `Z` or `+00:00`) to nanoseconds since the Unix epoch.
/// Other offsets and times before 1970 are rejected.
pub fn parse_start(s: &str) -> Result<i64, GenError> {
    let time = humantime::parse_rfc3339(s).map_err(|source| GenError::InvalidStart { input: s.to_owned(), source })?;
    let out_of_range = || GenError::StartOutOfRange { input: s.to_owned() };
    let since_epoch = time.duration_since(UNIX_EPOCH).map_err(|_| out_of_range())?;
    i64::try_from(since_epoch.as_nanos()).map_err(|_| out_of_range())
}

#[cfg(test)]
mod tests {
    use super::*;
    use influxdb_line_protocol::{FieldValue, parse_lines};
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// Seed 1, 2 hosts, default start and interval: host_0 and host_1 at the
    /// start, then host_0 one interval later.
    const GOLDEN_FIRST_3_LINES: &str = concat!(
        "cpu,hostname=host_0,region=eu-central-1,datacenter=eu-central-1a,rack=98,os=Ubuntu16.10,arch=x64,team=LON,service=7,service_version=0,service_environment=test usage_user=91i,usage_system=49i,usage_idle=71i,usage_nice=4i,usage_iowait=17i,usage_irq=2i,usage_softirq=94i,usage_steal=83i,usage_guest=97i,usage_guest_nice=44i 1451606400000000000\n",
        "cpu,hostname=host_1,region=sa-east-1,datacenter=sa-east-1c,rack=90,os=Ubuntu16.10,arch=x64,team=LON,service=11,service_version=0,service_environment=test usage_user=89i,usage_system=69i,usage_idle=12i,usage_nice=91i,usage_iowait=39i,usage_irq=56i,usage_softirq=20i,usage_steal=15i,usage_guest=66i,usage_guest_nice=89i 1451606400000000000\n",
        "cpu,hostname=host_0,region=eu-central-1,datacenter=eu-central-1a,rack=98,os=Ubuntu16.10,arch=x64,team=LON,service=7,service_version=0,service_environment=test usage_user=91i,usage_system=49i,usage_idle=71i,usage_nice=5i,usage_iowait=16i,usage_irq=2i,usage_softirq=93i,usage_steal=84i,usage_guest=98i,usage_guest_nice=44i 1451606410000000000\n",
    );

    fn generate(cfg: &TsbsConfig) -> String {
        let mut out = Vec::new();
        let lines = write_tsbs(cfg, &mut out).unwrap();
        assert_eq!(lines, cfg.rows());
        String::from_utf8(out).unwrap()
    }

    fn small(hosts: u32, seed: u64) -> TsbsConfig {
        TsbsConfig { hosts, duration: Duration::from_secs(600), seed, ..TsbsConfig::default() }
    }

    struct Line {
        tags: Vec<(String, String)>,
        fields: Vec<(String, i64)>,
        timestamp: i64,
    }

    fn parse_all(text: &str) -> Vec<Line> {
        assert!(text.ends_with('\n'));
        let lines: Vec<Line> = parse_lines(text)
            .map(|line| {
                let line = line.unwrap();
                assert_eq!(line.series.measurement.as_str(), "cpu");
                let tags = line.series.tag_set.unwrap().iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
                let fields = line
                    .field_set
                    .iter()
                    .map(|(k, v)| match v {
                        FieldValue::I64(v) => (k.to_string(), *v),
                        other => panic!("field {k} is not an integer: {other:?}"),
                    })
                    .collect();
                Line { tags, fields, timestamp: line.timestamp.unwrap() }
            })
            .collect();
        assert_eq!(lines.len(), text.lines().count());
        lines
    }

    fn tag<'a>(line: &'a Line, key: &str) -> &'a str {
        &line.tags.iter().find(|(k, _)| k == key).unwrap().1
    }

    #[test]
    fn same_config_same_bytes_different_seed_different_bytes() {
        let a = generate(&small(5, 7));
        assert_eq!(a, generate(&small(5, 7)));
        assert_ne!(a, generate(&small(5, 8)));
    }

    #[test]
    fn golden_first_lines_for_seed_1() {
        let cfg = TsbsConfig { hosts: 2, ..TsbsConfig::default() };
        let mut generator = TsbsGenerator::new(cfg).unwrap();
        let mut out = Vec::new();
        assert_eq!(generator.next_batch(3, &mut out), 3);
        assert_eq!(String::from_utf8(out).unwrap(), GOLDEN_FIRST_3_LINES);
    }

    #[test]
    fn lines_are_time_major_with_tsbs_keys_and_fixed_tags() {
        let cfg = TsbsConfig {
            hosts: 7,
            duration: Duration::from_secs(3600),
            interval: Duration::from_secs(30),
            seed: 3,
            start_ns: 1_000,
        };
        let lines = parse_all(&generate(&cfg));
        assert_eq!(lines.len() as u64, 7 * 120);
        assert_eq!(lines[0].timestamp, 1_000);

        let mut tags_of_host: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for (i, line) in lines.iter().enumerate() {
            let (t, h) = (i / 7, i % 7);
            assert_eq!(line.timestamp, 1_000 + t as i64 * 30_000_000_000);
            let keys: Vec<&str> = line.tags.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(keys, TAG_KEYS);
            let keys: Vec<&str> = line.fields.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(keys, CPU_FIELDS);
            assert!(line.fields.iter().all(|(_, v)| (0..=100).contains(v)));

            let hostname = tag(line, "hostname");
            assert_eq!(hostname, format!("host_{h}"));
            let fixed = tags_of_host.entry(hostname.to_owned()).or_insert_with(|| line.tags.clone());
            assert_eq!(*fixed, line.tags);
        }
        assert_eq!(tags_of_host.len(), 7);
    }

    #[test]
    fn tag_values_come_from_tsbs_sets_and_cover_them() {
        let lines = parse_all(&generate(&TsbsConfig {
            hosts: 2_000,
            duration: Duration::from_secs(10),
            ..TsbsConfig::default()
        }));
        let mut seen: HashMap<&str, std::collections::BTreeSet<String>> = HashMap::new();
        for line in &lines {
            let region = tag(line, "region");
            let (_, datacenters) = REGIONS.iter().find(|(r, _)| *r == region).unwrap();
            assert!(datacenters.contains(&tag(line, "datacenter")));
            assert!(OS_CHOICES.contains(&tag(line, "os")));
            assert!(ARCH_CHOICES.contains(&tag(line, "arch")));
            assert!(TEAM_CHOICES.contains(&tag(line, "team")));
            assert!(SERVICE_ENVIRONMENT_CHOICES.contains(&tag(line, "service_environment")));
            for (key, choices) in
                [("rack", RACK_CHOICES), ("service", SERVICE_CHOICES), ("service_version", SERVICE_VERSION_CHOICES)]
            {
                let value: u32 = tag(line, key).parse().unwrap();
                assert!(value < choices, "{key}={value}");
                // Canonical decimal: no leading zeros.
                assert_eq!(value.to_string(), tag(line, key));
            }
            for key in TAG_KEYS.iter().skip(1) {
                seen.entry(key).or_default().insert(tag(line, key).to_owned());
            }
        }
        // 2,000 uniform draws hit every value of every set.
        let datacenters: usize = REGIONS.iter().map(|(_, d)| d.len()).sum();
        assert_eq!(seen["region"].len(), REGIONS.len());
        assert_eq!(seen["datacenter"].len(), datacenters);
        assert_eq!(seen["rack"].len(), RACK_CHOICES as usize);
        assert_eq!(seen["os"].len(), OS_CHOICES.len());
        assert_eq!(seen["arch"].len(), ARCH_CHOICES.len());
        assert_eq!(seen["team"].len(), TEAM_CHOICES.len());
        assert_eq!(seen["service"].len(), SERVICE_CHOICES as usize);
        assert_eq!(seen["service_version"].len(), SERVICE_VERSION_CHOICES as usize);
        assert_eq!(seen["service_environment"].len(), SERVICE_ENVIRONMENT_CHOICES.len());
    }

    #[test]
    fn fields_move_as_unit_normal_walks() {
        // 1 host, 20,000 steps: consecutive values differ by a normal(0,1)
        // step, give or take 1 for truncation; independent uniform draws would not.
        let cfg = TsbsConfig { duration: Duration::from_secs(200_000), ..TsbsConfig::default() };
        let lines = parse_all(&generate(&cfg));
        let mut sum_sq = 0.0;
        let mut steps = 0.0;
        for pair in lines.windows(2) {
            for (a, b) in pair[0].fields.iter().zip(&pair[1].fields) {
                let step = b.1 - a.1;
                assert!(step.abs() <= 8, "step {step}");
                sum_sq += (step * step) as f64;
                steps += 1.0;
            }
        }
        // E[step²] is about 1 + 1/6 for truncated unit steps, less near the clamps.
        let mean_sq = sum_sq / steps;
        assert!((0.8..1.5).contains(&mean_sq), "mean squared step {mean_sq}");
        // Clamping keeps long walks inside [0, 100] and they do reach the bounds.
        let all: Vec<i64> = lines.iter().flat_map(|l| l.fields.iter().map(|f| f.1)).collect();
        assert!(all.contains(&0) || all.contains(&100));
    }

    #[test]
    fn a_host_series_does_not_depend_on_the_host_count() {
        let few = generate(&small(3, 11));
        let many = generate(&small(8, 11));
        let host = |line: &&str| {
            let h = line.split(',').nth(1).unwrap();
            ["hostname=host_0", "hostname=host_1", "hostname=host_2"].contains(&h)
        };
        let filtered: Vec<&str> = many.lines().filter(host).collect();
        assert_eq!(few.lines().collect::<Vec<_>>(), filtered);
    }

    #[test]
    fn batches_concatenate_to_the_whole_output_and_end_with_zero() {
        let cfg = small(13, 5);
        let whole = generate(&cfg);
        for max_lines in [1, 2, 12, 13, 14, 100, 5_000] {
            let mut generator = TsbsGenerator::new(cfg.clone()).unwrap();
            assert_eq!(generator.remaining(), cfg.rows());
            let mut out = Vec::new();
            let mut total = 0u64;
            loop {
                let before = out.len();
                let n = generator.next_batch(max_lines, &mut out);
                assert!(n <= max_lines);
                assert_eq!(out[before..].iter().filter(|&&b| b == b'\n').count(), n);
                if n == 0 {
                    break;
                }
                total += n as u64;
                assert_eq!(generator.remaining(), cfg.rows() - total);
            }
            assert_eq!(total, cfg.rows());
            assert_eq!(out, whole.as_bytes());
            assert_eq!(generator.next_batch(max_lines, &mut out), 0);
        }
        let mut generator = TsbsGenerator::new(cfg).unwrap();
        let mut out = Vec::new();
        assert_eq!(generator.next_batch(0, &mut out), 0);
        assert!(out.is_empty());
    }

    #[test]
    fn rows_is_hosts_times_whole_intervals() {
        let cfg = TsbsConfig { hosts: 1_000, ..TsbsConfig::default() };
        assert_eq!(cfg.rows(), 8_640_000);
        let cfg = TsbsConfig { hosts: 3, duration: Duration::from_secs(25), ..TsbsConfig::default() };
        assert_eq!(cfg.rows(), 6);
        assert_eq!(generate(&cfg).lines().count(), 6);
        let zero = TsbsConfig { interval: Duration::ZERO, ..TsbsConfig::default() };
        assert_eq!(zero.rows(), 0);
    }

    #[test]
    fn invalid_configs_are_typed_errors() {
        let new = |cfg| TsbsGenerator::new(cfg).err().unwrap();
        let d = TsbsConfig::default();
        assert!(matches!(new(TsbsConfig { hosts: 0, ..d.clone() }), GenError::ZeroHosts));
        assert!(matches!(new(TsbsConfig { interval: Duration::ZERO, ..d.clone() }), GenError::ZeroInterval));
        assert!(matches!(
            new(TsbsConfig { duration: Duration::from_secs(9), ..d.clone() }),
            GenError::DurationShorterThanInterval { .. }
        ));
        assert!(matches!(new(TsbsConfig { start_ns: i64::MAX - 5, ..d.clone() }), GenError::TimestampOverflow { .. }));
        assert!(matches!(
            new(TsbsConfig { interval: Duration::from_secs(u64::MAX), duration: Duration::MAX, ..d.clone() }),
            GenError::TimestampOverflow { .. }
        ));
        // The last timestamp may be exactly i64::MAX.
        let last = TsbsConfig { start_ns: i64::MAX - 10_000_000_000, duration: Duration::from_secs(20), ..d };
        let text = generate(&last);
        assert!(text.lines().last().unwrap().ends_with(&format!(" {}", i64::MAX)));
    }

    #[test]
    fn write_errors_carry_the_line_count() {
        struct FailAfterOne(usize);
        impl Write for FailAfterOne {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                if self.0 == 0 {
                    return Err(std::io::Error::other("disk full"));
                }
                self.0 -= 1;
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let cfg = TsbsConfig { hosts: 100, ..TsbsConfig::default() };
        match write_tsbs(&cfg, &mut FailAfterOne(1)) {
            Err(GenError::Io { lines_written, .. }) => assert_eq!(lines_written, 5_000),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parse_duration_accepts_humantime_forms() {
        for (input, secs) in
            [("10s", 10), ("90m", 5_400), ("1h", 3_600), ("1d", 86_400), ("3d", 259_200), ("1h 30m", 5_400)]
        {
            assert_eq!(parse_duration(input).unwrap(), Duration::from_secs(secs));
        }
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        for garbage in ["", "10", "ten seconds", "-1s", "1x", "s", "1d!"] {
            assert!(
                matches!(
                    parse_duration(garbage),
                    Err(GenError::InvalidDuration { ref input, .. }) if input == garbage
                ),
                "{garbage:?}"
            );
        }
    }

    #[test]
    fn parse_start_accepts_rfc3339_utc() {
        assert_eq!(parse_start("2016-01-01T00:00:00Z").unwrap(), DEFAULT_START_NS);
        assert_eq!(parse_start("2016-01-01T00:00:00+00:00").unwrap(), DEFAULT_START_NS);
        assert_eq!(parse_start("2016-01-01T00:00:01.5Z").unwrap(), DEFAULT_START_NS + 1_500_000_000);
        assert_eq!(parse_start("1970-01-01T00:00:00Z").unwrap(), 0);
        for garbage in [
            "",
            "yesterday",
            "2016-01-01",
            "2016-01-01 00:00:00Z",
            "2016-01-01T00:00:00",
            "2016-01-01T00:00:00+01:00",
            "2016-13-01T00:00:00Z",
            "1969-12-31T23:59:59Z",
        ] {
            assert!(matches!(parse_start(garbage), Err(GenError::InvalidStart { .. })), "{garbage:?}");
        }
        assert!(matches!(parse_start("2300-01-01T00:00:00Z"), Err(GenError::StartOutOfRange { .. })));
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC*") {
            let _ = parse_duration(&s);
            let _ = parse_start(&s);
        }

        #[test]
        fn any_small_config_yields_valid_lines(
            hosts in 1u32..6,
            timestamps in 1u64..20,
            interval_ms in 1u64..100_000,
            seed in any::<u64>(),
            start_ns in 0i64..4_000_000_000_000_000_000,
        ) {
            let interval = Duration::from_millis(interval_ms);
            let cfg = TsbsConfig {
                hosts,
                duration: interval * timestamps as u32,
                interval,
                seed,
                start_ns,
            };
            let lines = parse_all(&generate(&cfg));
            prop_assert_eq!(lines.len() as u64, u64::from(hosts) * timestamps);
            for (i, line) in lines.iter().enumerate() {
                let t = (i / hosts as usize) as i64;
                prop_assert_eq!(line.timestamp, start_ns + t * interval_ms as i64 * 1_000_000);
                prop_assert!(line.fields.iter().all(|(_, v)| (0..=100).contains(v)));
            }
        }
    }
}
