//! Replays every checked-in fuzz corpus input (`tests/fuzz/corpus/<target>/*`) through the
//! same harness the fuzz target runs, so that a decoder regression on any of them fails here
//! on a stable toolchain, in seconds.

use std::fs;
use std::path::PathBuf;

fn corpus_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus")
}

#[test]
fn every_target_has_a_harness_a_fuzz_target_and_a_corpus() {
    let root = corpus_root();
    let targets = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/fuzz_targets");
    for (name, _) in fuzz_harness::TARGETS {
        let dir = root.join(name);
        let n = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
            .count();
        assert!(n > 0, "corpus of {name} is empty");
        let src = targets.join(format!("{name}.rs"));
        assert!(src.is_file(), "no fuzz target {}", src.display());
    }
    for entry in fs::read_dir(&targets).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        assert!(
            fuzz_harness::harness(&stem).is_some(),
            "fuzz target {stem} has no harness in TARGETS"
        );
    }
}

#[test]
fn replay_every_corpus_input() {
    replay(&corpus_root());
}

/// Hand-written reproducers of bugs the fuzzers found (kept apart from the corpora, which
/// `cargo fuzz cmin` rewrites). Each fails until its bug is fixed.
#[test]
fn replay_every_regression_input() {
    replay(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions"));
}

fn replay(root: &std::path::Path) {
    let mut total = 0usize;
    let mut failures = Vec::new();
    for (name, harness) in fuzz_harness::TARGETS {
        let dir = root.join(name);
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for file in files {
            let data = fs::read(&file).unwrap();
            total += 1;
            let h = *harness;
            if std::panic::catch_unwind(move || h(&data)).is_err() {
                failures.push(file.display().to_string());
            }
        }
    }
    println!("replayed {total} inputs from {}", root.display());
    assert!(total > 0);
    assert!(
        failures.is_empty(),
        "{} input(s) fail:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
