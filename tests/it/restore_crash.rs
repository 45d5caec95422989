//! `quipu serve` is killed with SIGKILL at random points while it restores,
//! over and over on one data folder and one repository. Before each run the
//! test writes a row no backup holds, so the live state differs from every
//! backup's; it starts a restore of a random backup over HTTP and kills the
//! server a random delay later (staging, rebuilding, the swap, after), or
//! the moment the data folder shows the swap's commit record (`RESTORE`),
//! that is, inside the swap (every fourth run). A kill landed inside the
//! swap when the record is still there after the server died; with 4 or
//! more such runs, at least one must land there, or the test did not test
//! the swap.
//!
//! After each kill, in-process: the engine opens (finishing a committed
//! swap) with exactly the old rows or exactly the backup's, never a mix; no
//! `RESTORE` is left, the segments folder holds only the version's files,
//! and the restore's record (after the backup service's recovery) says
//! completed when the backup's rows are served and failed (interrupted)
//! when the old ones are. The repository checks clean throughout.
//!
//! QUIPU_RESTORE_CRASH_RUNS sets the number of kills (default 30),
//! QUIPU_RESTORE_CRASH_SEED the seed (hex); see `crash_support`. A failure
//! keeps the folders.
#![cfg(all(feature = "server", unix))]

use crate::crash_support::{Campaign, Serve, http};
use crate::server_support;

use std::path::Path;
use std::time::{Duration, Instant};

use quipu::backup::{BackupConfig, BackupRequest, BackupService, BackupStatus, ModeChoice, Repository};
use quipu::{Engine, Precision, WriteOptions};
use server_support::{BackupRows, engine_rows, segment_names};

const TOKEN: &str = "apiv3_restore-crash";
const BACKUPS: usize = 3;

fn open(data: &Path) -> Engine {
    Engine::builder(data).background(false).open().unwrap()
}

/// Writes `files` segment files of `rows` rows each into table `t<k>`.
fn load(engine: &Engine, k: usize, files: usize, rows: usize) {
    for f in 0..files {
        let lp: String = (0..rows)
            .map(|i| format!("t{k},host=h{} v={i}i,x={}.25 {}\n", i % 7, i * 3, (f * rows + i) as i64 * 1_000_000_000))
            .collect();
        engine.write_lp("db", &lp, Precision::Nanosecond, WriteOptions::default()).unwrap();
        engine.flush().unwrap();
    }
}

#[test]
fn a_restore_killed_at_any_point_leaves_the_old_or_the_restored_state() {
    let mut campaign = Campaign::from_env("RESTORE", 30, 0x7e57_0e57_04e5_7043);
    let (runs, seed) = (campaign.runs, campaign.seed);
    let data = campaign.path("data");
    let repo_dir = campaign.path("repo");

    // Backups of growing data, with many files so staging takes a while.
    let mut points: Vec<BackupRows> = Vec::new();
    {
        let engine = open(&data);
        let backups = BackupService::open(engine.clone(), &repo_dir, BackupConfig::default()).unwrap();
        for k in 0..BACKUPS {
            load(&engine, k, 24, 3_000);
            let name = backups.start(BackupRequest::full().named(format!("b{k}"))).unwrap();
            assert_eq!(backups.wait(&name).unwrap().status, BackupStatus::Completed);
            points.push(engine_rows(&engine));
        }
        backups.shutdown();
    }

    let mut outcomes = [0u32; 2];
    let (mut aimed_at_swap, mut in_swap) = (0, 0);
    let http = http();
    for run in 0..runs {
        let ctx = campaign.ctx(run);
        // A row no backup holds: the old state is new each run.
        let old = {
            let engine = open(&data);
            engine
                .write_lp("db", &format!("run,n={run} v=1i {run}"), Precision::Nanosecond, WriteOptions::default())
                .unwrap();
            if campaign.rng.below(2) == 0 {
                engine.flush().unwrap();
            }
            engine_rows(&engine)
        };
        let pick = campaign.rng.below(BACKUPS as u64) as usize;
        let mode = if campaign.rng.below(2) == 0 { "copy" } else { "link" };
        let mut serve = Serve::start(&data, &repo_dir, mode, TOKEN, &campaign.path(&format!("serve-{run}.log")), &ctx);
        let resp = http
            .post(format!("{}/api/v3/enterprise/restore", serve.base))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({ "backup_name": format!("b{pick}") }))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 202, "{ctx}");
        let body: serde_json::Value = resp.json().unwrap();
        let id = body["restore_id"].as_str().unwrap().to_string();
        if run % 4 == 3 {
            // Inside the swap: the commit record is on disk only until applied.
            aimed_at_swap += 1;
            let deadline = Instant::now() + Duration::from_secs(60);
            let swap_file = data.join("RESTORE");
            while !swap_file.exists() && serve.child.try_wait().unwrap().is_none() && Instant::now() < deadline {
                std::hint::spin_loop();
            }
        } else {
            // Restores of this set take milliseconds (link) to tens of them
            // (copy): most kills land early, some after the end.
            let upto = if campaign.rng.below(3) == 0 { 100_000 } else { 8_000 };
            std::thread::sleep(Duration::from_micros(campaign.rng.below(upto)));
        }
        serve.kill();
        // The server is gone: a commit record still there was cut off mid-swap.
        if data.join("RESTORE").exists() {
            in_swap += 1;
        }

        let engine = open(&data);
        assert!(!data.join("RESTORE").exists(), "{ctx}: the commit record survived an open");
        let now = engine_rows(&engine);
        let restored = now == points[pick];
        assert!(restored || now == old, "{ctx}: the engine serves neither the old state nor backup b{pick}");
        outcomes[usize::from(restored)] += 1;
        let mut live: Vec<String> =
            engine.version().files.iter().map(|f| quipu::tree::segment_file_name(f.meta.id)).collect();
        live.sort();
        assert_eq!(segment_names(&data), live, "{ctx}: files no version lists were left");
        let backups = BackupService::open(engine.clone(), &repo_dir, BackupConfig::default()).unwrap();
        let info = backups.restore_info(&id).unwrap();
        if restored {
            assert_eq!(info.status, BackupStatus::Completed, "{ctx}: {info:?}");
            assert_eq!(engine.last_restore().unwrap().as_deref(), Some(id.as_str()), "{ctx}");
        } else {
            assert_eq!(info.status, BackupStatus::Failed, "{ctx}: {info:?}");
            assert!(info.error.as_deref().unwrap_or("").contains("interrupted"), "{ctx}: {info:?}");
        }
        assert!(backups.list_restores().unwrap().iter().all(|r| r.status != BackupStatus::InProgress), "{ctx}");
        backups.shutdown();
        drop(backups);
        drop(engine);
        let report = Repository::open(&repo_dir).unwrap().check(false).unwrap();
        assert!(report.is_clean(), "{ctx}: repository not clean: {report:?}");
    }
    println!(
        "{runs} kills: {} left the old state, {} the restored one; {in_swap} inside the swap ({aimed_at_swap} aimed there)",
        outcomes[0], outcomes[1]
    );
    if aimed_at_swap >= 4 {
        assert!(
            in_swap > 0,
            "none of the {aimed_at_swap} kills aimed at the swap landed inside it (seed {seed:#x}): the swap went untested"
        );
    }
    // A final restore through the service completes from whatever state the kills left.
    let engine = open(&data);
    let backups = BackupService::open(
        engine.clone(),
        &repo_dir,
        BackupConfig { mode: ModeChoice::Copy, ..BackupConfig::default() },
    )
    .unwrap();
    let id = backups.start_restore("b0", quipu::backup::RestoreVerify::Full).unwrap();
    assert_eq!(backups.wait_restore(&id).unwrap().status, BackupStatus::Completed);
    assert_eq!(engine_rows(&engine), points[0]);
    backups.shutdown();
    drop(backups);
    drop(engine);
    campaign.passed();
}
