//! Times the TSBS cpu-only queries of issue 6 through `quipu::sql::query`,
//! in-process, over a data folder holding the TSBS day (the table `cpu` of
//! the database `benchmark`, as `tsbs_ingest` writes it).
//!
//! cargo run --release --example tsbs_ingest -- --hosts 1000 --duration 1d --no-sync --dir /tmp/tsbs-day
//! cargo run --release --example tsbs_queries -- /tmp/tsbs-day --runs 10
//!
//! Each query runs once untimed, then `--runs` times; the time is planning
//! plus draining the result stream (every batch), as a client waits for it.
//! Printed per query: median, min and max wall time and the row count.
//! `--sql-out FILE` writes the SQL texts as JSON (`[{"name", "sql"}]`) so
//! that another engine runs the identical statements
//! (benches/compare/tsbs_queries_duckdb.py), `--json-out FILE` the timings,
//! `--results-out DIR` each query's result as Parquet (to compare values),
//! and `--explain` / `--explain-analyze` print the plans. `--sql-in FILE`
//! runs the queries of such a JSON file instead (variants of a query);
//! `--export-parquet DIR` writes the table's compacted windows as Parquet,
//! as the HTTP export serves them, for the other engine to read.
//!
//! The queries are TSBS's TimescaleDB SQL (`tsbs/cmd/tsbs_generate_queries/
//! databases/timescaledb/devops.go`) translated to one table with tags as
//! columns, with fixed hosts and windows inside 2016-01-01 instead of random
//! ones. Buckets are `date_trunc(unit, CAST(time AS TIMESTAMPTZ))`: DuckDB
//! has no `date_bin` and its `date_trunc` does not take the
//! `TIMESTAMPTZ_NS` it reads our Parquet's `time` as; DataFusion maps
//! `TIMESTAMPTZ` to its session time zone, none by default, so the cast is
//! a no-op here, and DuckDB truncates in UTC (the comparison sets
//! `TimeZone` to UTC). Filters compare `time` itself with RFC 3339 strings.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use arrow::array::{Array, RecordBatch, StringArray};
use arrow::util::pretty::pretty_format_batches;
use clap::Parser;
use futures::StreamExt;
use quipu::Engine;
use quipu::export::TableExport;

#[derive(Parser)]
struct Args {
    /// A data folder holding the TSBS cpu-only day (not needed with `--sql-out`).
    dir: Option<PathBuf>,
    #[arg(long, default_value = "benchmark")]
    db: String,
    #[arg(long, default_value = "cpu")]
    table: String,
    /// Timed runs per query (after one untimed run).
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Only the queries with these names (comma-separated).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Write the SQL texts here as JSON and exit (no data folder needed).
    #[arg(long)]
    sql_out: Option<PathBuf>,
    /// Run the queries of this JSON file (as `--sql-out` writes it) instead
    /// of the built-in ones: variants, other engines' forms.
    #[arg(long)]
    sql_in: Option<PathBuf>,
    /// Export every compacted window of `--table` as `<window>.parquet`
    /// into this folder (`TableExport::write_parquet`, what the HTTP export
    /// serves) and exit.
    #[arg(long)]
    export_parquet: Option<PathBuf>,
    /// Write the timings here as JSON.
    #[arg(long)]
    json_out: Option<PathBuf>,
    /// Write each query's result here as `<name>.parquet`.
    #[arg(long)]
    results_out: Option<PathBuf>,
    /// Print `EXPLAIN <sql>` for each query.
    #[arg(long)]
    explain: bool,
    /// Print `EXPLAIN ANALYZE <sql>` for each query (after the timed runs).
    #[arg(long)]
    explain_analyze: bool,
    /// Print each query's result.
    #[arg(long)]
    show: bool,
}

/// The five queries issue 6 names, in TSBS's order of the issue.
const QUERIES: &[(&str, &str)] = &[
    (
        // TSBS: max of 1 metric per minute, 1 host, 1 hour.
        "single-groupby-1-1-1",
        "SELECT date_trunc('minute', CAST(time AS TIMESTAMPTZ)) AS minute, max(usage_user) AS max_usage_user \
         FROM cpu \
         WHERE hostname = 'host_249' AND time >= '2016-01-01T07:47:10Z' AND time < '2016-01-01T08:47:10Z' \
         GROUP BY minute ORDER BY minute",
    ),
    (
        // TSBS: max of all 10 metrics per hour, 1 host, 8 hours.
        "cpu-max-all-1",
        "SELECT date_trunc('hour', CAST(time AS TIMESTAMPTZ)) AS hour, \
         max(usage_user) AS max_usage_user, max(usage_system) AS max_usage_system, \
         max(usage_idle) AS max_usage_idle, max(usage_nice) AS max_usage_nice, \
         max(usage_iowait) AS max_usage_iowait, max(usage_irq) AS max_usage_irq, \
         max(usage_softirq) AS max_usage_softirq, max(usage_steal) AS max_usage_steal, \
         max(usage_guest) AS max_usage_guest, max(usage_guest_nice) AS max_usage_guest_nice \
         FROM cpu \
         WHERE hostname = 'host_517' AND time >= '2016-01-01T05:23:40Z' AND time < '2016-01-01T13:23:40Z' \
         GROUP BY hour ORDER BY hour",
    ),
    (
        // TSBS: avg of 1 metric per host per hour, all hosts, 12 hours.
        "double-groupby-1",
        "SELECT date_trunc('hour', CAST(time AS TIMESTAMPTZ)) AS hour, hostname, avg(usage_user) AS mean_usage_user \
         FROM cpu \
         WHERE time >= '2016-01-01T09:12:30Z' AND time < '2016-01-01T21:12:30Z' \
         GROUP BY hour, hostname ORDER BY hour, hostname",
    ),
    (
        // TSBS: the last row of every host.
        "lastpoint",
        "SELECT DISTINCT ON (hostname) * FROM cpu ORDER BY hostname, time DESC",
    ),
    (
        // TSBS: the rows of 1 host over 12 hours where usage_user > 90.
        "high-cpu-1",
        "SELECT * FROM cpu \
         WHERE usage_user > 90.0 AND time >= '2016-01-01T03:47:20Z' AND time < '2016-01-01T15:47:20Z' \
         AND hostname = 'host_808'",
    ),
];

struct Timing {
    name: String,
    median: Duration,
    min: Duration,
    max: Duration,
    rows: usize,
    /// Every timed run, sorted.
    times: Vec<Duration>,
}

async fn collect(engine: &Engine, db: &str, sql: &str) -> quipu::Result<Vec<RecordBatch>> {
    let mut stream = quipu::sql::query(engine, db, sql).await?;
    let mut batches = Vec::new();
    while let Some(batch) = stream.next().await {
        batches.push(batch.map_err(|e| quipu::Error::Query(e.to_string()))?);
    }
    Ok(batches)
}

/// The `plan` column of an `EXPLAIN` result, each plan under its type.
fn plans(batches: &[RecordBatch]) -> String {
    let mut out = String::new();
    for batch in batches {
        let column = |name: &str| batch.column_by_name(name).and_then(|c| c.as_any().downcast_ref::<StringArray>());
        let (Some(kind), Some(plan)) = (column("plan_type"), column("plan")) else {
            return pretty_format_batches(batches).map(|t| t.to_string()).unwrap_or_default();
        };
        for i in 0..batch.num_rows() {
            if !plan.is_null(i) {
                out.push_str(&format!("-- {}\n{}\n", kind.value(i), plan.value(i)));
            }
        }
    }
    out
}

/// The median of sorted `times` (the mean of the middle two for an even count).
fn median(times: &[Duration]) -> Duration {
    match times.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => times[n / 2],
        n => (times[n / 2 - 1] + times[n / 2]) / 2,
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mut queries: Vec<(String, String)> = match &args.sql_in {
        None => QUERIES.iter().map(|(name, sql)| (name.to_string(), sql.to_string())).collect(),
        Some(path) => {
            let items: Vec<serde_json::Value> = serde_json::from_slice(&std::fs::read(path)?)?;
            items
                .iter()
                .map(|q| match (q["name"].as_str(), q["sql"].as_str()) {
                    (Some(name), Some(sql)) => Ok((name.to_string(), sql.to_string())),
                    _ => Err(format!("{}: every item needs a name and a sql string", path.display())),
                })
                .collect::<Result<_, _>>()?
        }
    };
    queries.retain(|(name, _)| args.only.is_empty() || args.only.contains(name));
    if let Some(path) = &args.sql_out {
        let items: Vec<_> = queries.iter().map(|(name, sql)| serde_json::json!({"name": name, "sql": sql})).collect();
        std::fs::write(path, serde_json::to_string_pretty(&items)? + "\n")?;
        println!("wrote {} queries to {}", queries.len(), path.display());
        return Ok(());
    }

    let dir = args.dir.as_ref().ok_or("a data folder is needed")?;
    let engine = Engine::builder(dir).background(false).open()?;
    if let Some(out) = &args.export_parquet {
        std::fs::create_dir_all(out)?;
        let cache = std::sync::Arc::new(quipu::export::cache::ExportCache::disabled());
        let export = TableExport::new(&engine, &cache, &args.db, &args.table, &[])?;
        for (i, w) in export.windows().iter().enumerate() {
            let path = out.join(format!("{}.parquet", w.window));
            let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
            let summary = export.write_parquet(i, &mut file)?;
            file.flush()?;
            println!("{}: {} rows, {} bytes", path.display(), summary.rows, summary.bytes);
        }
        return Ok(());
    }
    if let Some(dir) = &args.results_out {
        std::fs::create_dir_all(dir)?;
    }
    let mut timings = Vec::new();
    for (name, sql) in &queries {
        if args.explain {
            let plan = collect(&engine, &args.db, &format!("EXPLAIN {sql}")).await?;
            println!("== EXPLAIN {name}\n{sql}\n\n{}", plans(&plan));
        }
        let first = collect(&engine, &args.db, sql).await?;
        let rows: usize = first.iter().map(|b| b.num_rows()).sum();
        if args.show {
            println!("== {name}\n{}", pretty_format_batches(&first)?);
        }
        if let (Some(dir), Some(batch)) = (&args.results_out, first.first()) {
            let file = std::fs::File::create(dir.join(format!("{name}.parquet")))?;
            let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None)?;
            for batch in &first {
                writer.write(batch)?;
            }
            writer.close()?;
        }
        drop(first);
        let mut times = Vec::with_capacity(args.runs);
        for _ in 0..args.runs {
            let start = Instant::now();
            let batches = collect(&engine, &args.db, sql).await?;
            times.push(start.elapsed());
            let n: usize = batches.iter().map(|b| b.num_rows()).sum();
            assert_eq!(n, rows, "{name}: the row count changed between runs");
        }
        times.sort();
        let timing = Timing {
            name: name.clone(),
            median: median(&times),
            min: times.first().copied().unwrap_or_default(),
            max: times.last().copied().unwrap_or_default(),
            rows,
            times,
        };
        println!(
            "{:<22} median {:>9.2} ms  min {:>9.2} ms  max {:>9.2} ms  rows {}",
            name,
            timing.median.as_secs_f64() * 1e3,
            timing.min.as_secs_f64() * 1e3,
            timing.max.as_secs_f64() * 1e3,
            rows
        );
        if args.explain_analyze {
            let plan = collect(&engine, &args.db, &format!("EXPLAIN ANALYZE {sql}")).await?;
            println!("== EXPLAIN ANALYZE {name}\n{}", plans(&plan));
        }
        timings.push(timing);
    }
    if let Some(path) = &args.json_out {
        let items: Vec<_> = timings
            .iter()
            .map(|t| {
                serde_json::json!({
                    "name": t.name,
                    "median_s": t.median.as_secs_f64(),
                    "min_s": t.min.as_secs_f64(),
                    "max_s": t.max.as_secs_f64(),
                    "rows": t.rows,
                    "runs": args.runs,
                    "times_s": t.times.iter().map(Duration::as_secs_f64).collect::<Vec<_>>(),
                })
            })
            .collect();
        std::fs::write(path, serde_json::to_string_pretty(&items)? + "\n")?;
    }
    Ok(())
}
