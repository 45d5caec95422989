//! Install hooks (`EngineBuilder::on_install`) are told about every version
//! the engine installs, in order, with the snapshot that holds it: at open,
//! after a flush, after a compaction and after a restore; a flush or
//! compaction that installs nothing tells nothing.

use std::sync::{Arc, Mutex};

use quipu::catalog::Catalog;
use quipu::snapshot::{InstallCause, InstallHook, Installed};
use quipu::{Engine, Precision, WriteOptions};

/// What a hook saw: the cause, the version number, gen0 and compacted file counts.
#[derive(Default)]
struct Recorder(Mutex<Vec<(InstallCause, u64, usize, usize)>>);

impl InstallHook for Recorder {
    fn installed(&self, event: &Installed<'_>) {
        let version = event.snapshot.version();
        let gen0 = version.files.iter().filter(|f| f.meta.level == quipu::tree::LEVEL_GEN0).count();
        let compacted = version.files.len() - gen0;
        self.0.lock().unwrap().push((event.cause, version.record.number, gen0, compacted));
    }
}

#[test]
fn hooks_are_told_of_every_install_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Arc::new(Recorder::default());
    let engine = Engine::builder(dir.path()).background(false).on_install(recorder.clone()).open().unwrap();
    let seen = || recorder.0.lock().unwrap().clone();
    assert_eq!(seen(), [(InstallCause::Open, 0, 0, 0)]);

    engine.flush().unwrap();
    engine.compact().unwrap();
    assert_eq!(seen().len(), 1, "nothing to flush or compact: nothing installed, nothing told");

    for t in [1, 2] {
        engine.write_lp("db", &format!("m v={t}i {t}"), Precision::Nanosecond, WriteOptions::default()).unwrap();
        engine.flush().unwrap();
    }
    engine.compact().unwrap();
    let restored = Catalog::default();
    engine.swap_in("01J8X9Z0ABCDEFGHJKMNPQRSTV", restored, Vec::new()).unwrap();
    let seen = seen();
    let causes: Vec<InstallCause> = seen.iter().map(|s| s.0).collect();
    assert_eq!(
        causes,
        [InstallCause::Open, InstallCause::Flush, InstallCause::Flush, InstallCause::Compaction, InstallCause::Restore]
    );
    assert_eq!(seen[1].2, 1, "the first flush's file is in the snapshot the hook sees");
    assert_eq!(seen[2].2, 2);
    assert_eq!((seen[3].2, seen[3].3), (0, 1), "the compaction's window replaced both");
    assert_eq!((seen[4].2, seen[4].3), (0, 0), "the restored (empty) state");
    assert!(seen.windows(2).all(|w| w[0].1 < w[1].1), "versions only go forward: {seen:?}");
}
