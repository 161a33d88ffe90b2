//! The slow-test switch. Tests that take minutes (the soak, the full-disk tests) run only with
//! `DCIM_SLOW_TESTS=1`; tests/run.sh (CI) sets it, a developer's plain `cargo test` does not.

/// Whether slow tests run (`DCIM_SLOW_TESTS=1`).
pub fn enabled() -> bool {
    std::env::var("DCIM_SLOW_TESTS").as_deref() == Ok("1")
}

/// `true` when the slow test `what` should run; otherwise prints why it is skipped.
/// Use: `if !dcim_test_support::slow::run("soak") { return; }`.
pub fn run(what: &str) -> bool {
    if enabled() {
        return true;
    }
    println!("skipped: {what} is a slow test, set DCIM_SLOW_TESTS=1 (tests/run.sh does)");
    false
}
