//! `quipu serve` is killed with SIGKILL at random points while it takes
//! backups, over and over on one data folder and one repository, so later
//! runs meet repositories holding earlier backups and whatever killed jobs
//! left. Most runs copy (temp files, partial object sets), some link.
//!
//! After each kill, offline: the repository checks clean (every manifest
//! reads, every object of every completed backup is there and hashes to its
//! name), no completed backup disappeared or changed unless this test
//! deleted or force-replaced it, and each new backup holds at least the rows
//! acknowledged before it was started. After each restart, over HTTP: no
//! backup is in progress, a job the kill interrupted shows failed (reason:
//! interrupted; or as the failed last attempt of the completed backup it was
//! replacing), one that committed just before the kill shows completed, and
//! the repository holds no unreferenced object and no temp file.
//!
//! Each run writes line protocol, starts one to three backups (named,
//! generated, forced over a completed one, incremental; sometimes a cancel
//! or a delete) and dies either a random delay after one of those steps
//! (before any job, mid-job, after every job ended) or the moment the
//! repository shows a chosen state: an object half copied, a manifest or job
//! record half published, a manifest just published. The counts of where
//! the kills landed are printed at the end.
//!
//! QUIPU_BACKUP_CRASH_RUNS sets the number of kills (default 30),
//! QUIPU_BACKUP_CRASH_SEED the seed (hex); see `crash_support`. A failure
//! keeps the folders and names them (`serve-<run>.log` beside them holds
//! each server's stderr); QUIPU_CRASH_KEEP keeps them after a pass too.
#![cfg(all(feature = "server", unix))]

use crate::common;
use crate::crash_support::{Campaign, Serve, http};

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::Rng;
use quipu::backup::{BackupStatus, JobRecord, Manifest, Repository};
use serde_json::{Value, json};

const TOKEN: &str = "apiv3_backup-crash";
const DB: &str = "crash";
/// 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600_000_000_000;
const DAY: i64 = 86_400_000_000_000;
/// Lines before the timestamps move on to the next 24h window.
const LINES_PER_DAY: u64 = 25_000;
const TABLES: u64 = 3;

/// Says where a failure happened and where its folders were kept.
struct Ctx {
    /// The campaign's words for the run (`Campaign::ctx`).
    run: String,
    mode: &'static str,
}

impl std::fmt::Display for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}, {} mode", self.run, self.mode,)
    }
}

trait ListBackups {
    fn list(&self, ctx: &Ctx) -> Vec<Value>;
}

impl ListBackups for Serve {
    fn list(&self, ctx: &Ctx) -> Vec<Value> {
        let resp = http()
            .get(format!("{}/api/v3/enterprise/backup", self.base))
            .bearer_auth(TOKEN)
            .send()
            .unwrap_or_else(|e| panic!("{ctx}: listing backups: {e}"));
        assert_eq!(resp.status(), 200, "{ctx}: listing backups");
        let body: Value = resp.json().unwrap();
        body["backups"].as_array().unwrap_or_else(|| panic!("{ctx}: no backups array in {body}")).clone()
    }
}

/// What the driver does, in order; after each step it reports an event
/// (the kill point is chosen as "event k, then a delay").
#[derive(Debug)]
enum Step {
    Write {
        body: String,
        lines: u64,
    },
    Backup {
        name: Option<String>,
        force: bool,
        incremental: bool,
    },
    /// Cancels the backup this run started last.
    CancelLatest,
    Delete(String),
    Pause(u64),
    /// Polls until no backup is in progress.
    WaitJobs,
}

/// What the driver did; read after the kill.
#[derive(Debug, Default)]
struct Log {
    /// Lines acknowledged (204), since the first run.
    acked_rows: u64,
    /// Backups that answered 202, with the lines acknowledged before the request.
    started: Vec<(String, u64)>,
    /// Names a forced backup was asked for (the answer may not have come).
    forced: BTreeSet<String>,
    /// Names a delete was sent for (the answer may not have come).
    deleted: BTreeSet<String>,
    cancels: u64,
    /// Every started job ended while the server ran, this long after the
    /// first one answered.
    all_done: Option<Duration>,
    /// Answers no correct server gives.
    unexpected: Vec<String>,
}

fn is_interrupted(error: &Value) -> bool {
    error.as_str().is_some_and(|e| e.contains("interrupted"))
}

/// Runs the steps against the server until they are done or the server is
/// gone (a request fails: the kill).
fn drive(base: String, steps: Vec<Step>, events: mpsc::Sender<()>, mut log: Log) -> Log {
    let http = http();
    let api = format!("{base}/api/v3/enterprise/backup");
    let mut latest: Option<String> = None;
    let mut first_start: Option<Instant> = None;
    for step in steps {
        match step {
            Step::Write { body, lines } => {
                let Ok(resp) = http
                    .post(format!("{base}/api/v3/write_lp?db={DB}&precision=nanosecond"))
                    .bearer_auth(TOKEN)
                    .body(body)
                    .send()
                else {
                    return log;
                };
                match resp.status().as_u16() {
                    204 => log.acked_rows += lines,
                    s => log.unexpected.push(format!("write answered {s}: {}", resp.text().unwrap_or_default())),
                }
            }
            Step::Backup { name, force, incremental } => {
                if force && let Some(name) = &name {
                    log.forced.insert(name.clone());
                }
                let mut body = json!({"type": if incremental { "incremental" } else { "full" }, "force": force});
                if let Some(name) = &name {
                    body["name"] = json!(name);
                }
                let acked_before = log.acked_rows;
                let Ok(resp) = http.post(&api).bearer_auth(TOKEN).json(&body).send() else { return log };
                let status = resp.status().as_u16();
                let Ok(answer) = resp.json::<Value>() else { return log };
                match status {
                    202 => {
                        let started = answer["backup_name"].as_str().unwrap_or_default().to_string();
                        if name.as_ref().is_some_and(|n| *n != started) || started.is_empty() {
                            log.unexpected.push(format!("backup {body} started as {answer}"));
                        }
                        log.started.push((started.clone(), acked_before));
                        first_start.get_or_insert_with(Instant::now);
                        latest = Some(started);
                    }
                    // The name exists (no force) or is running.
                    409 if name.is_some() => {}
                    // An incremental backup with no completed one to follow.
                    400 if incremental
                        && answer["error"].as_str().is_some_and(|e| e.contains("needs a completed backup")) => {}
                    s => log.unexpected.push(format!("backup {body} answered {s}: {answer}")),
                }
            }
            Step::CancelLatest => {
                if let Some(name) = &latest {
                    log.cancels += 1;
                    let Ok(resp) = http.delete(&api).bearer_auth(TOKEN).json(&json!({ "name": name })).send() else {
                        return log;
                    };
                    // 404: it had ended already.
                    if !matches!(resp.status().as_u16(), 200 | 404) {
                        let s = resp.status();
                        log.unexpected
                            .push(format!("cancel of {name} answered {s}: {}", resp.text().unwrap_or_default()));
                    }
                }
            }
            Step::Delete(name) => {
                log.deleted.insert(name.clone());
                let Ok(resp) = http.delete(format!("{api}/{name}")).bearer_auth(TOKEN).send() else { return log };
                let s = resp.status().as_u16();
                // 404: gone already; 409: a forced backup of that name is running.
                if !(s == 200 || s == 404 || (s == 409 && log.forced.contains(&name))) {
                    log.unexpected.push(format!("delete of {name} answered {s}: {}", resp.text().unwrap_or_default()));
                }
            }
            Step::Pause(ms) => std::thread::sleep(Duration::from_millis(ms)),
            Step::WaitJobs => {
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    let Ok(resp) = http.get(&api).bearer_auth(TOKEN).send() else { return log };
                    let Ok(body) = resp.json::<Value>() else { return log };
                    let backups = body["backups"].as_array().cloned().unwrap_or_default();
                    if backups.iter().all(|b| b["status"] != "in_progress") {
                        // While the server runs, a job completes or is cancelled
                        // (a forced one that did not complete is the last attempt
                        // of the backup it was to replace).
                        for b in &backups {
                            if log.started.iter().any(|(n, _)| b["name"] == n.as_str())
                                && (!matches!(b["status"].as_str(), Some("completed" | "cancelled"))
                                    || b["last_attempt"]["status"] == "failed")
                            {
                                log.unexpected.push(format!("backup ended badly while the server ran: {b}"));
                            }
                        }
                        log.all_done = Some(first_start.map_or(Duration::ZERO, |t| t.elapsed()));
                        break;
                    }
                    if Instant::now() > deadline {
                        log.unexpected.push(format!("backups still running after 60 s: {body}"));
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
        let _ = events.send(());
    }
    log
}

/// Line protocol with high-entropy floats (segments compress poorly, so
/// copies take a while); every line has its own timestamp. One line in ten
/// goes to a window written before, so compactions rewrite old windows.
fn lp_body(rng: &mut Rng, seq: &mut u64, late: &mut u64, lines: u64) -> String {
    let mut body = String::with_capacity(lines as usize * 120);
    let float = |rng: &mut Rng| (rng.next() >> 11) as f64 / (1u64 << 53) as f64 * 1000.0;
    for _ in 0..lines {
        let g = *seq;
        *seq += 1;
        let time = if g >= LINES_PER_DAY && rng.below(10) == 0 {
            let day = rng.below(g / LINES_PER_DAY) as i64;
            *late += 1;
            T0 + day * DAY + DAY / 2 + *late as i64 * 1_000_000
        } else {
            T0 + (g / LINES_PER_DAY) as i64 * DAY + (g % LINES_PER_DAY) as i64 * 1_000_000
        };
        let (a, b, c, d) = (float(rng), float(rng), float(rng), float(rng));
        writeln!(body, "m{},host=h{} a={a},b={b},c={c},d={d} {time}", g % TABLES, g % 16).unwrap();
    }
    body
}

/// The repository as the kill left it.
struct Killed {
    /// Name -> (created_at, manifest hash).
    manifests: BTreeMap<String, (String, String)>,
    /// Job records still saying in progress.
    in_progress: Vec<JobRecord>,
}

/// Temp files anywhere in the repository (objects being copied, manifests
/// and job records being published).
fn temp_files(repo: &Path) -> Vec<PathBuf> {
    let mut out = object_temp_files(repo);
    for sub in ["manifests", "jobs"] {
        out.extend(files_in(&repo.join(sub)).into_iter().filter(|p| p.to_string_lossy().ends_with(".tmp")));
    }
    out
}

/// Temp files under `objects/` (copies in flight).
fn object_temp_files(repo: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(shards) = std::fs::read_dir(repo.join("objects")) else { return out };
    for shard in shards.flatten() {
        out.extend(files_in(&shard.path()).into_iter().filter(|p| p.to_string_lossy().ends_with(".tmp")));
    }
    out
}

/// The files of a folder; none when it is missing (or not a folder).
fn files_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir).map(|entries| entries.flatten().map(|e| e.path()).collect()).unwrap_or_default()
}

/// File under `manifests/` and `jobs/` -> inode: a new or replaced
/// manifest, record or temp file gets a new inode.
type Inodes = BTreeMap<PathBuf, u64>;

fn publish_inodes(repo: &Path) -> Inodes {
    use std::os::unix::fs::MetadataExt;
    let mut files = files_in(&repo.join("manifests"));
    files.extend(files_in(&repo.join("jobs")));
    files.into_iter().filter_map(|p| std::fs::metadata(&p).ok().map(|m| (p, m.ino()))).collect()
}

/// The files under `dir` (`manifests` or `jobs`) ending in `suffix` that
/// are not in `before` (or have another inode now).
fn new_files(repo: &Path, before: &Inodes, dir: &str, suffix: &str) -> usize {
    let dir = repo.join(dir);
    publish_inodes(repo)
        .iter()
        .filter(|(p, ino)| p.starts_with(&dir) && p.to_string_lossy().ends_with(suffix) && before.get(*p) != Some(ino))
        .count()
}

/// A moment the killer waits for by watching the repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Watch {
    /// A half-copied object (`objects/xx/<hash>.<nonce>.tmp`).
    ObjectTemp,
    /// A manifest being published (`manifests/<name>.json.tmp`).
    ManifestTemp,
    /// A job record being published (`jobs/<name>.json.tmp`).
    RecordTemp,
    /// A manifest published (new, or replacing one): the commit point passed.
    NewManifest,
}

impl Watch {
    /// `before`: [`publish_inodes`] when the run began.
    fn hit(self, repo: &Path, before: &Inodes) -> bool {
        match self {
            Watch::ObjectTemp => !object_temp_files(repo).is_empty(),
            Watch::ManifestTemp => new_files(repo, before, "manifests", ".tmp") > 0,
            Watch::RecordTemp => new_files(repo, before, "jobs", ".tmp") > 0,
            Watch::NewManifest => new_files(repo, before, "manifests", ".json") > 0,
        }
    }
}

/// When the child dies.
#[derive(Debug, Clone, Copy)]
enum KillAt {
    /// After the driver's `k`-th step, then a delay.
    Event { k: usize, delay_ms: u64 },
    /// As soon as the repository shows the moment (then a few microseconds
    /// more), or after the driver's last step when it never does.
    Watch { what: Watch, delay_us: u64 },
}

fn manifests(repo: &Repository, ctx: &Ctx) -> BTreeMap<String, (Manifest, String)> {
    let mut out = BTreeMap::new();
    for name in repo.manifest_names().unwrap() {
        let (m, hash) = repo
            .read_manifest(&name)
            .unwrap_or_else(|e| panic!("{ctx}: manifest {name} unreadable: {e}"))
            .unwrap_or_else(|| panic!("{ctx}: manifest {name} listed but gone"));
        out.insert(name, (m, hash));
    }
    out
}

#[derive(Debug, Default)]
struct Stats {
    runs_copy: u64,
    runs_link: u64,
    /// No job of the run had started (or left a trace) when it died.
    killed_before_any_job: u64,
    /// A job was running: its record said in progress.
    killed_mid_job: u64,
    /// ...with a half-copied object (temp file) on disk.
    killed_mid_copy: u64,
    /// ...with a manifest or job record half published (temp file).
    killed_mid_publish: u64,
    /// ...with objects placed that no manifest references (yet).
    killed_with_orphans: u64,
    /// The manifest was written, the record not yet removed.
    killed_after_manifest_before_record: u64,
    /// No job was running, and one of the run had started.
    killed_after_jobs: u64,
    /// Jobs shown failed (interrupted) after a restart.
    interrupted_shown: u64,
    /// Interrupted forced attempts shown as the last attempt of a completed backup.
    interrupted_attempts_shown: u64,
    /// Jobs that committed before the kill with their record left, shown completed.
    committed_shown_completed: u64,
    /// Kills at a moment seen in the repository, and watches that never saw it.
    watches_hit: BTreeMap<String, u64>,
    watches_missed: BTreeMap<String, u64>,
    backups_started: u64,
    backups_committed: u64,
    deletes: u64,
    forces: u64,
    cancels: u64,
}

/// After a kill, offline: the repository checks clean, earlier backups are
/// there unchanged (unless deleted or forced), new ones hold what was
/// acknowledged before they started.
fn check_after_kill(
    repo_dir: &Path,
    known: &mut BTreeMap<String, String>,
    log: &Log,
    before: &Inodes,
    stats: &mut Stats,
    ctx: &Ctx,
) -> Killed {
    let repo = Repository::open(repo_dir)
        .unwrap_or_else(|e| panic!("{ctx}: the repository does not open after the kill: {e}"));
    let report = repo.check(true).unwrap_or_else(|e| panic!("{ctx}: check after the kill failed: {e}"));
    assert!(
        report.is_clean(),
        "{ctx}: the repository is not clean after the kill: bad manifests {:?}, problems {:?}",
        report.bad_manifests,
        report.problems
    );
    let now = manifests(&repo, ctx);
    for (name, hash) in known.iter() {
        if log.deleted.contains(name) {
            continue;
        }
        let Some((_, now_hash)) = now.get(name) else {
            panic!("{ctx}: completed backup {name} disappeared (not deleted by the test)");
        };
        assert!(
            now_hash == hash || log.forced.contains(name),
            "{ctx}: completed backup {name} changed (manifest {hash} became {now_hash}) without a forced backup"
        );
    }
    for (name, (m, hash)) in &now {
        if known.get(name) == Some(hash) {
            continue;
        }
        stats.backups_committed += 1;
        assert_eq!(&m.name, name, "{ctx}: manifest {name} names another backup");
        // One of this run's starts under the name committed (or one whose
        // answer the kill cut off: none to compare with).
        if let Some(acked) = log.started.iter().filter(|(n, _)| n == name).map(|(_, a)| a).min() {
            let rows: u64 = m.files.iter().filter(|f| f.db == DB).map(|f| f.rows).sum();
            assert!(
                rows >= *acked,
                "{ctx}: backup {name} holds {rows} rows, but {acked} were acknowledged before it started"
            );
        }
    }
    let in_progress: Vec<JobRecord> =
        repo.job_records().unwrap().into_iter().filter(|r| r.status == BackupStatus::InProgress).collect();
    let object_temps = object_temp_files(repo_dir);
    let publish_temps = new_files(repo_dir, before, "manifests", ".tmp") + new_files(repo_dir, before, "jobs", ".tmp");
    let committed_with_record =
        in_progress.iter().filter(|r| now.get(&r.name).is_some_and(|(m, _)| m.created_at >= r.created_at)).count();
    let new_manifests = now.iter().filter(|(n, (_, h))| known.get(*n) != Some(h)).count();
    if !in_progress.is_empty() {
        stats.killed_mid_job += 1;
    } else if log.started.is_empty() && new_manifests == 0 {
        stats.killed_before_any_job += 1;
    } else {
        stats.killed_after_jobs += 1;
    }
    stats.killed_mid_copy += u64::from(!object_temps.is_empty());
    stats.killed_mid_publish += u64::from(publish_temps > 0);
    stats.killed_with_orphans += u64::from(report.unreferenced_objects > 0);
    stats.killed_after_manifest_before_record += u64::from(committed_with_record > 0);
    eprintln!(
        "{ctx}: killed {}with {} job(s) in progress, {} object temp file(s), {} manifest or record temp file(s), \
         {} unreferenced object(s), {} backup(s), {} new",
        log.all_done.map(|d| format!("{d:.1?} after the jobs began and ended ")).unwrap_or_default(),
        in_progress.len(),
        object_temps.len(),
        publish_temps,
        report.unreferenced_objects,
        now.len(),
        new_manifests,
    );
    *known = now.iter().map(|(n, (_, h))| (n.clone(), h.clone())).collect();
    Killed { manifests: now.into_iter().map(|(n, (m, h))| (n, (m.created_at, h))).collect(), in_progress }
}

/// After a restart: nothing in progress, each interrupted job failed with
/// the reason, committed ones completed, earlier backups listed completed,
/// the leftovers swept.
fn check_after_restart(serve: &Serve, repo_dir: &Path, killed: &Killed, stats: &mut Stats, ctx: &Ctx) {
    let list = serve.list(ctx);
    let mut by_name = BTreeMap::new();
    for b in &list {
        let name = b["name"].as_str().unwrap_or_else(|| panic!("{ctx}: a backup without a name: {b}"));
        match b["status"].as_str() {
            Some("completed" | "cancelled") => {}
            Some("failed") => assert!(is_interrupted(&b["error"]), "{ctx}: backup failed, not interrupted: {b}"),
            _ => panic!("{ctx}: after a restart, backup {name} is {}: {b}", b["status"]),
        }
        let attempt = &b["last_attempt"];
        if attempt["status"] == "failed" {
            assert!(is_interrupted(&attempt["error"]), "{ctx}: last attempt failed, not interrupted: {b}");
        }
        by_name.insert(name.to_string(), b);
    }
    let listed: BTreeSet<&str> =
        list.iter().filter(|b| b["status"] == "completed").map(|b| b["name"].as_str().unwrap()).collect();
    let on_disk: BTreeSet<&str> = killed.manifests.keys().map(String::as_str).collect();
    assert_eq!(listed, on_disk, "{ctx}: the completed backups listed are not the manifests the kill left");
    for record in &killed.in_progress {
        let name = &record.name;
        let info = by_name.get(name).unwrap_or_else(|| panic!("{ctx}: interrupted backup {name} is not listed"));
        match killed.manifests.get(name) {
            Some((created, _)) if *created >= record.created_at => {
                // Committed before the kill; only the record's removal was lost.
                assert_eq!(info["status"], "completed", "{ctx}: committed backup {name}: {info}");
                assert_eq!(info["created_at"], created.as_str(), "{ctx}: {info}");
                assert_ne!(info["last_attempt"]["created_at"], record.created_at.as_str(), "{ctx}: {info}");
                stats.committed_shown_completed += 1;
            }
            Some((created, _)) => {
                // A forced attempt died; the backup it was replacing stands.
                assert_eq!(info["status"], "completed", "{ctx}: {info}");
                assert_eq!(info["created_at"], created.as_str(), "{ctx}: {info}");
                let attempt = &info["last_attempt"];
                assert_eq!(attempt["created_at"], record.created_at.as_str(), "{ctx}: no last attempt: {info}");
                assert_eq!(attempt["status"], "failed", "{ctx}: {info}");
                assert!(is_interrupted(&attempt["error"]), "{ctx}: {info}");
                stats.interrupted_attempts_shown += 1;
            }
            None => {
                assert_eq!(info["status"], "failed", "{ctx}: interrupted backup {name}: {info}");
                assert!(is_interrupted(&info["error"]), "{ctx}: interrupted backup {name}: {info}");
                assert_eq!(info["created_at"], record.created_at.as_str(), "{ctx}: {info}");
                stats.interrupted_shown += 1;
            }
        }
    }
    // Offline (no job runs): the restart swept every leftover and changed no backup.
    let repo = Repository::open(repo_dir).unwrap();
    let report = repo.check(true).unwrap_or_else(|e| panic!("{ctx}: check after the restart failed: {e}"));
    assert!(report.is_clean(), "{ctx}: the repository is not clean after the restart: {report:?}");
    assert_eq!(report.unreferenced_objects, 0, "{ctx}: unreferenced objects after the restart");
    let temps = temp_files(repo_dir);
    assert!(temps.is_empty(), "{ctx}: temp files after the restart: {temps:?}");
    let stuck: Vec<_> =
        repo.job_records().unwrap().into_iter().filter(|r| r.status == BackupStatus::InProgress).collect();
    assert!(stuck.is_empty(), "{ctx}: job records still in progress after the restart: {stuck:?}");
    let now: BTreeMap<String, String> = manifests(&repo, ctx).into_iter().map(|(n, (_, h))| (n, h)).collect();
    let then: BTreeMap<String, String> = killed.manifests.iter().map(|(n, (_, h))| (n.clone(), h.clone())).collect();
    assert_eq!(now, then, "{ctx}: the restart changed manifests");
}

/// One run's steps and its kill point (after event `k`, then `delay_ms`).
fn plan(
    rng: &mut Rng,
    run: u64,
    copy: bool,
    known: &BTreeMap<String, String>,
    seq: &mut u64,
    late: &mut u64,
) -> (Vec<Step>, KillAt) {
    let mut steps = Vec::new();
    for _ in 0..1 + rng.below(3) {
        let lines = 3_000 + rng.below(9_000);
        steps.push(Step::Write { body: lp_body(rng, seq, late, lines), lines });
    }
    let mut after_backup = Vec::new();
    for i in 0..1 + rng.below(3) {
        if i > 0 && rng.below(2) == 0 {
            let lines = 200 + rng.below(3_000);
            steps.push(Step::Write { body: lp_body(rng, seq, late, lines), lines });
        }
        let (name, force) = match rng.below(10) {
            0..=3 => (None, false),
            4..=6 => (Some(format!("r{run}-{i}")), false),
            _ => {
                let name = format!("pool-{}", rng.below(3));
                // Sometimes without force on a completed one: 409.
                let force = known.contains_key(&name) && rng.below(4) != 0;
                (Some(name), force)
            }
        };
        steps.push(Step::Backup { name, force, incremental: rng.below(5) == 0 });
        after_backup.push(steps.len());
        if rng.below(3) == 0 {
            steps.push(Step::Pause(rng.below(30)));
        }
        if rng.below(8) == 0 {
            steps.push(Step::CancelLatest);
        }
    }
    if !known.is_empty() && rng.below(4) == 0 {
        let names: Vec<&String> = known.keys().collect();
        let name = names[rng.below(names.len() as u64) as usize].clone();
        let at = 1 + rng.below(steps.len() as u64) as usize;
        steps.insert(at, Step::Delete(name));
        for a in &mut after_backup {
            if *a >= at {
                *a += 1;
            }
        }
    }
    steps.push(Step::WaitJobs);
    let events = steps.len();
    let delay_us = rng.below(300);
    let watch = |what| KillAt::Watch { what, delay_us };
    let kill = match rng.below(10) {
        // Right after a backup answered: its copy is under way.
        0..=2 => {
            KillAt::Event { k: after_backup[rng.below(after_backup.len() as u64) as usize], delay_ms: rng.below(25) }
        }
        // Anywhere, writes and flushes included.
        3 => KillAt::Event { k: rng.below(events as u64 + 1) as usize, delay_ms: rng.below(40) },
        // Before the first backup answered: writing, or in its flush.
        4 => KillAt::Event { k: rng.below(after_backup[0] as u64) as usize, delay_ms: rng.below(40) },
        // After every job ended.
        5 => KillAt::Event { k: events, delay_ms: rng.below(30) },
        6 if copy => watch(Watch::ObjectTemp),
        6 | 7 => watch(Watch::NewManifest),
        8 => watch(Watch::ManifestTemp),
        _ => watch(Watch::RecordTemp),
    };
    (steps, kill)
}

#[test]
fn killed_backups_leave_a_clean_repository_and_fail_as_interrupted() {
    let mut campaign = Campaign::from_env("BACKUP", 30, 0xbac0_c0a5_7e57_5eed);
    let runs = campaign.runs;
    let data = campaign.path("data");
    let repo_dir = campaign.path("repo");
    let started = Instant::now();
    let mut stats = Stats::default();
    let (mut seq, mut late) = (0u64, 0u64);
    let mut acked = 0u64;
    // Completed backups as last seen: name -> manifest hash.
    let mut known: BTreeMap<String, String> = BTreeMap::new();
    let mut killed = Killed { manifests: BTreeMap::new(), in_progress: Vec::new() };
    for run in 0..=runs {
        let mode = if run % 4 == 3 { "link" } else { "copy" };
        let ctx = Ctx { run: campaign.ctx(run), mode };
        let log_path = campaign.path(&format!("serve-{run}.log"));
        let mut serve = Serve::start(&data, &repo_dir, mode, TOKEN, &log_path, &ctx);
        check_after_restart(&serve, &repo_dir, &killed, &mut stats, &ctx);
        if run == runs {
            break;
        }
        if mode == "link" {
            stats.runs_link += 1;
        } else {
            stats.runs_copy += 1;
        }

        let (steps, kill) = plan(&mut campaign.rng, run, mode == "copy", &known, &mut seq, &mut late);
        let (tx, rx) = mpsc::channel();
        let base = serve.base.clone();
        let log = Log { acked_rows: acked, ..Log::default() };
        let before = publish_inodes(&repo_dir);
        let driver = std::thread::spawn(move || drive(base, steps, tx, log));
        match kill {
            KillAt::Event { k, delay_ms } => {
                for _ in 0..k {
                    match rx.recv_timeout(Duration::from_secs(120)) {
                        Ok(()) => {}
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{ctx}: the driver is stuck"),
                    }
                }
                std::thread::sleep(Duration::from_millis(delay_ms));
            }
            KillAt::Watch { what, delay_us } => {
                let deadline = Instant::now() + Duration::from_secs(120);
                loop {
                    if what.hit(&repo_dir, &before) {
                        *stats.watches_hit.entry(format!("{what:?}")).or_default() += 1;
                        break;
                    }
                    if matches!(rx.try_recv(), Err(mpsc::TryRecvError::Disconnected)) {
                        *stats.watches_missed.entry(format!("{what:?}")).or_default() += 1;
                        break;
                    }
                    assert!(Instant::now() < deadline, "{ctx}: the driver is stuck");
                    std::thread::sleep(Duration::from_micros(50));
                }
                std::thread::sleep(Duration::from_micros(delay_us));
            }
        }
        serve.kill();
        let log = driver.join().unwrap_or_else(|_| panic!("{ctx}: the driver panicked"));
        assert!(log.unexpected.is_empty(), "{ctx}: unexpected answers: {:#?}", log.unexpected);
        acked = log.acked_rows;
        stats.backups_started += log.started.len() as u64;
        stats.deletes += log.deleted.len() as u64;
        stats.forces += log.forced.len() as u64;
        stats.cancels += log.cancels;
        killed = check_after_kill(&repo_dir, &mut known, &log, &before, &mut stats, &ctx);
        drop(serve);
    }
    eprintln!("{runs} kills in {:.1?}, {acked} rows acknowledged: {stats:#?}", started.elapsed());
    if runs >= 20 {
        // Guards against a test that tests nothing (the kill points drifted).
        assert!(stats.killed_mid_job > 0, "no kill landed while a job ran: {stats:#?}");
        assert!(stats.interrupted_shown + stats.interrupted_attempts_shown > 0, "{stats:#?}");
        assert!(stats.killed_after_jobs > 0, "no kill landed after the jobs ended: {stats:#?}");
        assert!(stats.backups_committed > 0, "{stats:#?}");
    }
    campaign.passed();
}
