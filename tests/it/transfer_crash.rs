//! `quipu serve` is killed with SIGKILL at random moments while it pushes a
//! backup to an S3 server (moto), or pulls one from it, as a job started
//! over HTTP, over and over on one data folder and one repository
//! (`crash_support`). Each push goes to a fresh prefix, so it is a first
//! push and a kill lands among its objects or around its manifest; each
//! pull brings back a backup deleted locally just before.
//!
//! After each kill: no manifest without all its objects, on either side
//! (every backup the prefix lists checks clean with its objects re-hashed;
//! the local repository checks clean with its objects re-hashed); the
//! transfer's record, once the service reopens, is completed (and then the
//! manifest is there) or failed as interrupted, never in progress; and a
//! rerun completes, moving only what the killed one had not.
//!
//! QUIPU_TRANSFER_CRASH_RUNS sets the number of kills (default 30, two
//! thirds of them pushes),
//! QUIPU_TRANSFER_CRASH_SEED the seed (hex); see `crash_support`.
#![cfg(all(feature = "remote", feature = "server", unix))]

use crate::crash_support::{Campaign, Serve, http};
use crate::remote_support::S3Server;

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use quipu::backup::{BackupConfig, BackupRequest, BackupService, BackupStatus, ModeChoice, Repository};
use quipu::remote::{Remote, TransferService};
use quipu::{Engine, Precision, WriteOptions};

const TOKEN: &str = "apiv3_transfer-crash";
const BACKUPS: usize = 2;

/// Backups b0, b1 of many small segment files (many objects per push).
fn setup(data: &Path, repo: &Path) {
    let engine = Engine::builder(data).background(false).open().unwrap();
    let config = BackupConfig { mode: ModeChoice::Copy, ..BackupConfig::default() };
    let backups = BackupService::open(engine.clone(), repo, config).unwrap();
    for k in 0..BACKUPS {
        for f in 0..16 {
            let lp: String = (0..2_000)
                .map(|i| format!("t{k},host=h{} v={i}i,f={f} {}\n", i % 5, (f * 2_000 + i) as i64 * 1_000_000))
                .collect();
            engine.write_lp("db", &lp, Precision::Nanosecond, WriteOptions::default()).unwrap();
            engine.flush().unwrap();
        }
        let name = backups.start(BackupRequest::full().named(format!("b{k}"))).unwrap();
        assert_eq!(backups.wait(&name).unwrap().status, BackupStatus::Completed);
    }
    backups.shutdown();
}

fn start(serve: &Serve, kind: &str, s3: &S3Server, backup: &str, prefix: &str, ctx: &str) -> String {
    let resp = http()
        .post(format!("{}/api/v3/enterprise/backup/{backup}/{kind}", serve.base))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({
            "remote": s3.url(prefix),
            "endpoint": s3.endpoint,
            "region": "us-east-1",
            "access_key_id": "testing",
            "secret_access_key": "testing",
        }))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 202, "{ctx}");
    let body: serde_json::Value = resp.json().unwrap();
    body["transfer_id"].as_str().unwrap().to_string()
}

fn transfer_status(serve: &Serve, id: &str) -> serde_json::Value {
    http()
        .get(format!("{}/api/v3/enterprise/transfer/{id}", serve.base))
        .bearer_auth(TOKEN)
        .send()
        .unwrap()
        .json()
        .unwrap()
}

#[test]
fn a_push_or_pull_killed_with_its_server_leaves_no_partial_backup_and_a_rerun_finishes_it() {
    let mut campaign = Campaign::from_env("TRANSFER", 30, 0x7a5f_e4c4);
    let data = campaign.path("data");
    let repo = campaign.path("repo");
    setup(&data, &repo);
    let s3 = S3Server::moto("crash");

    // How long a whole push takes here: the kills aim inside it.
    let whole = {
        let serve = Serve::start(&data, &repo, "copy", TOKEN, &campaign.path("serve-measure.log"), &"measure");
        let began = Instant::now();
        let id = start(&serve, "push", &s3, "b0", "measure", "measure");
        let deadline = Instant::now() + Duration::from_secs(120);
        while transfer_status(&serve, &id)["status"] == "in_progress" {
            assert!(Instant::now() < deadline, "the measuring push never ended");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(transfer_status(&serve, &id)["status"], "completed");
        began.elapsed()
    };

    // Every backup on a remote of its own, for the pulls.
    let stash = Remote::open(&s3.url("stash"), s3.options()).unwrap();
    for k in 0..BACKUPS {
        stash.push(&Repository::open(&repo).unwrap(), &format!("b{k}"), &|_| {}, &AtomicBool::new(false)).unwrap();
    }

    // [interrupted, completed] per kind.
    let mut outcomes = [[0u32; 2]; 2];
    for run in 0..campaign.runs {
        let ctx = campaign.ctx(run);
        let backup = format!("b{}", campaign.rng.below(BACKUPS as u64));
        // Two pushes for each pull: at least 20 kills of pushes by default.
        let pull = campaign.rng.below(3) == 0;
        let prefix = if pull { "stash".to_string() } else { format!("run{run}") };
        if pull {
            // Lost locally: the pull brings it back.
            let engine = Engine::builder(&data).background(false).open().unwrap();
            let backups = BackupService::open(engine, &repo, BackupConfig::default()).unwrap();
            backups.delete(&backup).unwrap();
            backups.shutdown();
        }
        let mut serve = Serve::start(&data, &repo, "copy", TOKEN, &campaign.path(&format!("serve-{run}.log")), &ctx);
        let kind = if pull { "pull" } else { "push" };
        let id = start(&serve, kind, &s3, &backup, &prefix, &ctx);
        let span = (whole.as_micros() as u64 * 5 / 4).max(1_000);
        std::thread::sleep(Duration::from_micros(campaign.rng.below(span)));
        serve.kill();

        let remote = Remote::open(&s3.url(&prefix), s3.options()).unwrap();
        let listed = remote.list().unwrap_or_default();
        for name in &listed {
            let report = remote.check(Some(name), true, &|_| {}).unwrap();
            assert!(report.is_clean(), "{ctx}: remote backup {name} is listed but not whole: {report:?}");
        }
        let engine = Engine::builder(&data).background(false).open().unwrap();
        let backups = BackupService::open(engine.clone(), &repo, BackupConfig::default()).unwrap();
        let transfers = TransferService::open(backups.clone()).unwrap();
        let record = transfers.get(&id).unwrap();
        let there = if pull {
            backups.get(&backup).is_ok_and(|b| b.status == BackupStatus::Completed)
        } else {
            listed.contains(&backup)
        };
        match record.status {
            BackupStatus::Completed => {
                assert!(there, "{ctx}: a completed {kind} left no manifest: {record:?}");
                assert_eq!(record.objects_done, record.objects_total, "{ctx}: {record:?}");
                outcomes[usize::from(pull)][1] += 1;
            }
            BackupStatus::Failed => {
                assert!(record.error.as_deref().unwrap_or("").contains("interrupted"), "{ctx}: {record:?}");
                outcomes[usize::from(pull)][0] += 1;
            }
            other => panic!("{ctx}: the record of a killed {kind} says {other:?}: {record:?}"),
        }
        drop(transfers);
        backups.shutdown();
        drop(backups);
        drop(engine);
        let report = Repository::open(&repo).unwrap().check(true).unwrap();
        assert!(report.is_clean(), "{ctx}: the local repository is not clean: {report:?}");
        // The rerun finishes what the kill cut short.
        let local = Repository::open(&repo).unwrap();
        let no_cancel = AtomicBool::new(false);
        if pull {
            remote.pull(&local, &backup, &|_| {}, &no_cancel).unwrap();
            assert!(local.read_manifest(&backup).unwrap().is_some(), "{ctx}: the rerun left no manifest");
            let report = local.check(true).unwrap();
            assert!(report.is_clean(), "{ctx}: after the rerun: {report:?}");
        } else {
            let rerun = remote.push(&local, &backup, &|_| {}, &no_cancel).unwrap();
            assert!(rerun.objects_sent <= rerun.objects_total, "{ctx}: {rerun:?}");
            assert!(remote.list().unwrap().contains(&backup), "{ctx}: the rerun left no manifest");
            let report = remote.check(Some(&backup), true, &|_| {}).unwrap();
            assert!(report.is_clean(), "{ctx}: after the rerun: {report:?}");
        }
    }
    eprintln!(
        "{} kills (a whole push takes {whole:?}): pushes {} interrupted, {} completed; pulls {} interrupted, {} completed",
        campaign.runs, outcomes[0][0], outcomes[0][1], outcomes[1][0], outcomes[1][1]
    );
    if campaign.runs >= 10 {
        assert!(outcomes[0][0] + outcomes[1][0] > 0, "no kill landed inside a transfer: the delays need a look");
    }
    campaign.passed();
}
