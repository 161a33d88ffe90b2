//! Helpers shared by the modules.

use dcim_points::{Quality, Value};
use facility_sim::Facility;
use std::path::Path;
use std::time::Duration;

/// Reads a point from a device's register bank with the agent's decoder.
pub fn read(f: &Facility, device: &str, point: &str) -> (Option<Value>, Quality) {
    let d = f.devices().find(|d| d.id() == device).unwrap();
    let (shared, profile) = d.modbus().unwrap();
    let p = profile.point(point).unwrap();
    let a = p.modbus().unwrap();
    let bank = shared.bank.lock().unwrap();
    let r = if a.table.is_bits() {
        p.reading_from_bit(bank.bits(a.table, a.address, 1)[0])
    } else {
        p.reading_from_registers(&bank.registers(a.table, a.address, a.wire.registers()))
    };
    (r.value, r.quality)
}

/// A point's number, asserting that its quality is good.
pub fn num(f: &Facility, device: &str, point: &str) -> f64 {
    let (v, q) = read(f, device, point);
    assert_eq!(q, Quality::Good, "{device}/{point}");
    v.unwrap().as_f64().unwrap()
}

/// Runs the third-party client `script` (`what`) with `args` under `python` and returns what it
/// printed; fails the test when it does not finish within `limit` or exits with an error (its
/// stderr in the message).
pub async fn run_peer(
    python: &str,
    script: &Path,
    args: &[String],
    limit: Duration,
    what: &str,
) -> String {
    let out = tokio::time::timeout(
        limit,
        tokio::process::Command::new(python)
            .arg(script)
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("{what} finished"))
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
