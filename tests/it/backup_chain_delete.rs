//! Deleting any backup of a chain (a full one, then incrementals with
//! writes, a new table and a compaction in between) leaves every other one
//! whole, file for file, and garbage collection removes exactly the objects
//! no remaining manifest references.
#![cfg(feature = "server")]

use crate::common;
use crate::server_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::copy_dir;
use quipu::backup::{BackupConfig, BackupRequest, BackupService, BackupType, Manifest, ModeChoice, Repository};
use quipu::{Engine, Precision, WriteOptions};
use server_support::repo_files;

const NAMES: [&str; 4] = ["full", "inc1", "inc2", "inc3"];

fn write(engine: &Engine, table: &str, t0: i64, n: i64) {
    let lp: String = (0..n).map(|i| format!("{table},host=h{} v={}i {}\n", i % 3, i, t0 + i)).collect();
    engine.write_lp("db", &lp, Precision::Nanosecond, WriteOptions::default()).unwrap();
    engine.flush().unwrap();
}

/// The chain in `repo`: full, then three incrementals, each after changes.
fn build_chain(repo: &Path, mode: ModeChoice) -> tempfile::TempDir {
    let data = tempfile::tempdir().unwrap();
    let engine = Engine::builder(data.path()).background(false).open().unwrap();
    let backups = BackupService::open(engine.clone(), repo, BackupConfig { mode, ..BackupConfig::default() }).unwrap();
    let run = |request: BackupRequest| {
        let name = backups.start(request).unwrap();
        assert_eq!(backups.wait(&name).unwrap().status.as_str(), "completed");
    };
    write(&engine, "cpu", 0, 50);
    write(&engine, "cpu", 1_000, 50);
    run(BackupRequest::full().named("full"));
    write(&engine, "cpu", 2_000, 50);
    run(BackupRequest::full().named("inc1").incremental(Some("full".into())));
    write(&engine, "mem", 0, 50);
    run(BackupRequest::full().named("inc2").incremental(None));
    engine.compact().unwrap();
    write(&engine, "cpu", 3_000, 50);
    run(BackupRequest::full().named("inc3").incremental(None));
    backups.shutdown();
    data
}

fn manifests(repo: &Repository) -> BTreeMap<String, (Manifest, Vec<u8>)> {
    repo.manifest_names()
        .unwrap()
        .into_iter()
        .map(|n| {
            let m = repo.read_manifest(&n).unwrap().unwrap().0;
            let bytes = std::fs::read(repo.dir().join("manifests").join(format!("{n}.json"))).unwrap();
            (n, (m, bytes))
        })
        .collect()
}

fn objects_of<'a>(ms: impl IntoIterator<Item = &'a Manifest>) -> BTreeSet<String> {
    ms.into_iter().flat_map(|m| m.objects().map(|o| o.blake3)).collect()
}

/// Every file of `m`: its object present, of its size, hashing to its name.
fn check_file_for_file(repo: &Repository, m: &Manifest) {
    for object in m.objects() {
        let path = repo.object_path(&object.blake3);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: object {}: {e}", m.name, object.blake3));
        assert_eq!(bytes.len() as u64, object.size, "{}: {}", m.name, object.blake3);
        assert_eq!(blake3::hash(&bytes).to_hex().as_str(), object.blake3, "{}: {}", m.name, object.blake3);
    }
    assert_eq!(m.total_files, m.files.len() as u64);
}

/// Opens a service on `repo` (any engine will do: deleting needs none).
fn service(repo: &Path) -> (tempfile::TempDir, BackupService) {
    let data = tempfile::tempdir().unwrap();
    let engine = Engine::builder(data.path()).background(false).open().unwrap();
    let config = BackupConfig { mode: ModeChoice::Copy, ..BackupConfig::default() };
    (data, BackupService::open(engine, repo, config).unwrap())
}

fn the_chain_is_sound(chain: &BTreeMap<String, (Manifest, Vec<u8>)>) {
    assert_eq!(chain.keys().collect::<Vec<_>>(), NAMES);
    let m = |n: &str| &chain[n].0;
    assert_eq!(m("full").backup_type, BackupType::Full);
    for (child, parent) in [("inc1", "full"), ("inc2", "inc1"), ("inc3", "inc2")] {
        assert_eq!(m(child).backup_type, BackupType::Incremental);
        assert_eq!(m(child).parent.as_ref().unwrap().name, parent);
        assert!(m(child).added_objects > 0, "{child} added nothing");
    }
    // Each backup shares objects with its neighbour and has ones of its own,
    // so every deletion below both keeps and frees objects.
    let objects: Vec<BTreeSet<String>> = NAMES.iter().map(|n| objects_of([m(n)])).collect();
    for i in 0..NAMES.len() {
        let others = objects_of(NAMES.iter().filter(|n| **n != NAMES[i]).map(|n| m(n)));
        assert!(!objects[i].is_disjoint(&others), "{} shares nothing", NAMES[i]);
    }
    assert!(objects[1].difference(&objects[0]).next().is_some());
}

fn delete_each_from_a_fresh_copy(mode: ModeChoice) {
    let tmp = tempfile::tempdir().unwrap();
    let original = tmp.path().join("repo");
    let _data = build_chain(&original, mode);
    let chain = manifests(&Repository::open(&original).unwrap());
    the_chain_is_sound(&chain);

    for victim in NAMES {
        let copy = tmp.path().join(format!("copy-{victim}"));
        copy_dir(&original, &copy);
        std::fs::remove_file(copy.join("lock")).unwrap();
        let (_engine_dir, backups) = service(&copy);
        let repo = Repository::open(&copy).unwrap();
        let before: BTreeSet<String> = repo_files(&copy).0.into_iter().collect();
        assert_eq!(before, objects_of(chain.values().map(|(m, _)| m)));

        let deleted = backups.delete(victim).unwrap();
        assert_eq!(deleted, chain[victim].0.backup_type);

        let remaining: Vec<&Manifest> = chain.iter().filter(|(n, _)| *n != victim).map(|(_, (m, _))| m).collect();
        let keep = objects_of(remaining.iter().copied());
        let after: BTreeSet<String> = repo_files(&copy).0.into_iter().collect();
        assert_eq!(after, keep, "after deleting {victim}: exactly the referenced objects remain");
        let removed: BTreeSet<String> = before.difference(&after).cloned().collect();
        let victim_only: BTreeSet<String> = objects_of([&chain[victim].0]).difference(&keep).cloned().collect();
        assert_eq!(removed, victim_only, "after deleting {victim}: exactly its own objects went");

        let now = manifests(&repo);
        assert_eq!(now.keys().collect::<Vec<_>>(), NAMES.iter().filter(|n| **n != victim).collect::<Vec<_>>());
        for (name, (m, bytes)) in &now {
            assert_eq!(bytes, &chain[name].1, "deleting {victim} changed the manifest of {name}");
            check_file_for_file(&repo, m);
            let report = backups.verify(name).unwrap();
            assert_eq!((report.status.as_str(), report.problems.len()), ("ok", 0), "{report:?}");
            assert_eq!(report.objects_checked as usize, objects_of([m]).len());
            let info = backups.get(name).unwrap();
            assert_eq!(info.status.as_str(), "completed");
        }
        let report = repo.check(true).unwrap();
        assert!(report.is_clean(), "after deleting {victim}: {report:?}");
        assert_eq!((report.manifests, report.unreferenced_objects), (3, 0));
        assert!(backups.get(victim).is_err());
        backups.shutdown();
    }
}

#[test]
fn deleting_any_backup_of_a_linked_chain_keeps_the_others_whole() {
    delete_each_from_a_fresh_copy(ModeChoice::Link);
}

#[test]
fn deleting_any_backup_of_a_copied_chain_keeps_the_others_whole() {
    delete_each_from_a_fresh_copy(ModeChoice::Copy);
}

#[test]
fn deleting_the_chain_one_by_one_frees_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let repo_dir = tmp.path().join("repo");
    let _data = build_chain(&repo_dir, ModeChoice::Link);
    let repo = Repository::open(&repo_dir).unwrap();
    let chain = manifests(&repo);
    let (_engine_dir, backups) = service(&repo_dir);
    // Parents first: the incrementals never depended on them.
    for (i, victim) in ["inc1", "full", "inc3", "inc2"].into_iter().enumerate() {
        backups.delete(victim).unwrap();
        let remaining: Vec<&Manifest> = repo
            .manifest_names()
            .unwrap()
            .iter()
            .map(|n| {
                let bytes = std::fs::read(repo_dir.join("manifests").join(format!("{n}.json"))).unwrap();
                assert_eq!(bytes, chain[n].1, "{n} changed");
                &chain[n].0
            })
            .collect();
        assert_eq!(remaining.len(), 3 - i);
        for m in &remaining {
            check_file_for_file(&repo, m);
            assert_eq!(backups.verify(&m.name).unwrap().status, "ok");
        }
        let files: BTreeSet<String> = repo_files(&repo_dir).0.into_iter().collect();
        assert_eq!(files, objects_of(remaining.iter().copied()), "after deleting {victim}");
        assert!(repo.check(true).unwrap().is_clean());
    }
    assert!(repo_files(&repo_dir).0.is_empty());
    assert!(backups.list().unwrap().is_empty());
}
