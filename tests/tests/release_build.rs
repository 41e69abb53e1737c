//! The profile-guided release build (`scripts/build-pgo.sh`): its training workload runs every
//! capture the repository holds through `analyze` with one and with two workers, and a failed
//! training run fails the build instead of leaving a profile of a run that stopped early.
//!
//! The two compilations themselves take minutes and are left to `bench/run.sh`, which times the
//! profile-guided agent beside the plain one and checks that both write the same events; here
//! the training runs with the debug build.

use crossline_e2e::{binaries, repo_root};
use std::process::Command;

/// Run `scripts/build-pgo.sh --train-only BIN`; (exit status, stderr).
fn train_with(bin: &std::path::Path) -> (Option<i32>, String) {
    let out = Command::new(repo_root().join("scripts/build-pgo.sh"))
        .arg("--train-only")
        .arg(bin)
        .output()
        .expect("start scripts/build-pgo.sh");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn pgo_training_runs_every_repository_capture_with_one_and_two_workers() {
    let Some((agent, _)) = binaries() else {
        return;
    };
    let corpus = std::fs::read_dir(repo_root().join("tests/corpus"))
        .expect("tests/corpus")
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "pcap"))
        .count();
    assert!(corpus > 10, "only {corpus} captures in tests/corpus");
    let (code, err) = train_with(&agent);
    assert_eq!(code, Some(0), "training failed: {err}");
    // The demo capture and every corpus capture.
    let want = format!("trained on {} captures with 1 and 2 workers", corpus + 1);
    assert!(err.contains(&want), "expected {want:?} in: {err}");
}

#[test]
fn a_failed_training_run_fails_the_build() {
    // A binary that exits non-zero for every command: the first training run fails.
    let (code, err) = train_with(std::path::Path::new("/bin/false"));
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("training run with 1 worker(s) failed"),
        "the failure must name the training run: {err}"
    );
    assert!(!err.contains("trained on"), "{err}");
}
