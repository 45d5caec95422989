//! The one harness of the kill tests (`crash_ingest`, `catalog_log_crash`, `remote_crash`,
//! `backup_crash`, `restore_crash`, `export_cache_crash`): a [`Campaign`]
//! of runs with its seed and its folders, read from the environment the
//! same way by every test, and the two ways a run's victim dies by SIGKILL:
//! a child process of this test binary that runs an engine in-process
//! ([`kill_child_after`]) and `quipu serve` ([`Serve`], killed by
//! `Serve::kill`).
//!
//! Each test reads `QUIPU_<NAME>_CRASH_RUNS` (kills; else
//! `QUIPU_CRASH_RUNS`; else its default) and `QUIPU_<NAME>_CRASH_SEED`
//! (hex), so a failure's message names what reproduces it:
//! `QUIPU_<NAME>_CRASH_SEED=<seed> cargo test --test it -- <module>::`.
//! The folders live under one root that a failing run keeps (a panic skips
//! [`Campaign::passed`]) and a passing one removes, unless
//! `QUIPU_CRASH_KEEP` is set.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::Rng;
#[cfg(feature = "server")]
pub use crate::process_support::{Serve, http};

/// The runs of one kill test.
pub struct Campaign {
    /// The test's short name, as in its environment variables (`INGEST`).
    pub name: &'static str,
    pub runs: u64,
    pub seed: u64,
    /// Seeded with `seed`: every random choice of the campaign comes from it.
    pub rng: Rng,
    /// The folder every run's files go under.
    pub root: PathBuf,
}

impl Campaign {
    /// The campaign `name` (`INGEST`, `BACKUP`, ...) with its runs and seed
    /// from the environment, or these defaults, and a fresh root folder.
    pub fn from_env(name: &'static str, default_runs: u64, default_seed: u64) -> Campaign {
        let var = |what: &str| std::env::var(format!("QUIPU_{name}_CRASH_{what}")).ok();
        let runs = var("RUNS")
            .or_else(|| std::env::var("QUIPU_CRASH_RUNS").ok())
            .map(|r| r.parse().unwrap_or_else(|_| panic!("QUIPU_{name}_CRASH_RUNS (or QUIPU_CRASH_RUNS) {r:?}")))
            .unwrap_or(default_runs);
        let seed = var("SEED")
            .map(|s| {
                u64::from_str_radix(s.trim_start_matches("0x"), 16)
                    .unwrap_or_else(|_| panic!("QUIPU_{name}_CRASH_SEED {s:?} is not hex"))
            })
            .unwrap_or(default_seed)
            .max(1);
        let prefix = format!("quipu-{}-crash-", name.to_lowercase());
        let root = tempfile::Builder::new().prefix(&prefix).tempdir().unwrap().keep();
        Campaign { name, runs, seed, rng: Rng(seed), root }
    }

    /// What a failure of run `run` says: the run, how to replay it, where
    /// its folders are.
    pub fn ctx(&self, run: u64) -> String {
        format!(
            "run {run} (replay: QUIPU_{}_CRASH_SEED={:x}; folders kept in {})",
            self.name,
            self.seed,
            self.root.display()
        )
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Every run passed: the folders go, unless `QUIPU_CRASH_KEEP` is set.
    pub fn passed(self) {
        if std::env::var_os("QUIPU_CRASH_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

/// The value of `var` when this process is a crash test's child (the
/// parent sets it), `None` in the test run itself, where the child test
/// returns at once.
pub fn child_env(var: &str) -> Option<String> {
    std::env::var(var).ok()
}

/// Runs the test `child` of this test binary (its harness name:
/// `common::test_name(module_path!(), "..")`) as a child process with
/// `env`, kills it with SIGKILL after `delay`, and returns the numbers it
/// printed as `ack K` lines before it died: the writes it saw acknowledged.
pub fn kill_child_after(child: &str, env: &[(&str, String)], delay: Duration) -> Vec<i64> {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.args(["--exact", child, "--nocapture", "--test-threads=1"]).stdout(Stdio::piped()).stderr(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut process = command.spawn().unwrap();
    let stdout = process.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut acked = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(k) = line.strip_prefix("ack ") {
                acked.push(k.parse::<i64>().unwrap());
            }
        }
        acked
    });
    std::thread::sleep(delay);
    process.kill().unwrap(); // SIGKILL
    process.wait().unwrap();
    reader.join().unwrap()
}

/// A child's acknowledgement of write `k`, read by [`kill_child_after`].
pub fn ack(k: i64) {
    println!("ack {k}");
}

/// `path` as the string a child's environment carries.
pub fn env_path(path: &Path) -> String {
    path.to_str().unwrap().to_string()
}
