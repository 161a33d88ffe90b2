//! Third-party peers. A missing peer skips the test with a message ("skipped: ..."), or fails
//! it when `DCIM_REQUIRE_PEERS=1` (CI, tests/run.sh): a missing peer must not pass as green.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Whether missing peers fail the test (`DCIM_REQUIRE_PEERS=1`) instead of skipping it.
pub fn required() -> bool {
    std::env::var("DCIM_REQUIRE_PEERS").as_deref() == Ok("1")
}

/// A missing peer: panics under `DCIM_REQUIRE_PEERS=1`, otherwise prints that the test is
/// skipped. The caller returns afterwards.
pub fn skip_or_fail(why: &str) {
    if required() {
        panic!("required peer missing: {why}");
    }
    println!("skipped: {why} (set DCIM_REQUIRE_PEERS=1 to make this a failure)");
}

/// The Python interpreter of the test peers: `DCIM_PYTHON`, else `python3`.
pub fn python() -> String {
    std::env::var("DCIM_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// Whether `python` can `import module` (e.g. `pymodbus`, `bacpypes3`, `pysiaalarm`).
pub fn python_imports(python: &str, module: &str) -> bool {
    Command::new(python)
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The interpreter of [`python`] when it imports `module`; otherwise `None` after
/// [`skip_or_fail`].
pub fn python_with(module: &str) -> Option<String> {
    let py = python();
    if python_imports(&py, module) {
        return Some(py);
    }
    skip_or_fail(&format!(
        "{module} cannot be imported with `{py}` (set DCIM_PYTHON, run `bash tests/setup.sh`)"
    ));
    None
}

/// The first of `paths` that exists (an installed peer binary such as mosquitto).
pub fn binary(paths: &[&str]) -> Option<PathBuf> {
    paths.iter().map(PathBuf::from).find(|p| p.exists())
}

/// Whether the process runs as root (mounting a tmpfs for the full-disk tests needs it).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|u| u.split_whitespace().next() == Some("0"))
        })
        .unwrap_or(false)
}

/// Whether `path` exists (for peers looked up by a fixed path).
pub fn exists(path: &str) -> bool {
    Path::new(path).exists()
}
