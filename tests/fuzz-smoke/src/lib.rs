//! Fuzz harnesses for every decoder that reads bytes from the network or from files.
//!
//! Each harness is a plain `fn(&[u8])` that must never panic on any input: a panic is a bug
//! in the decoder (or a violated invariant that the harness checks on top of "no panic").
//! The cargo-fuzz targets in `tests/fuzz/fuzz_targets/` call these functions, and this crate's
//! test replays every checked-in corpus file of `tests/fuzz/corpus/<target>/` through them, so
//! a regression on any corpus input fails `cargo test` without a nightly toolchain.
//!
//! Several harnesses take a first "mode" byte and then either feed the rest as raw bytes or
//! build a structurally valid message from it (fixing up CRCs, checksums, lengths, or
//! encrypting a fuzzed plaintext), so that the fuzzer reaches the code behind the integrity
//! checks as well as the checks themselves.
#![forbid(unsafe_code)]

pub mod bacnet;
pub mod dc09;
pub mod files;
pub mod fire;
pub mod gate;
pub mod modbus;
pub mod mqtt;
pub mod spool;

/// A harness: bytes in, panics on a bug.
pub type Harness = fn(&[u8]);

/// Every fuzz target by name (the name is the directory under `tests/fuzz/corpus/` and the
/// file name under `tests/fuzz/fuzz_targets/`).
pub const TARGETS: &[(&str, Harness)] = &[
    ("modbus_rack_slave", modbus::rack_slave),
    ("modbus_registers", modbus::profile_registers),
    ("bacnet_frame", bacnet::frame),
    ("bacnet_device", bacnet::device),
    ("mqtt_payload", mqtt::payload),
    ("mqtt_camera", mqtt::camera),
    ("mqtt_gate", gate::mqtt_gate),
    ("dc09_frame", dc09::frame),
    ("profile_toml", files::profile_toml),
    ("site_toml", files::site_toml),
    ("fire_trace", files::fire_trace),
    ("fire_logic", fire::logic),
    ("spool_segment", spool::segment),
];

/// The harness registered under `name`.
pub fn harness(name: &str) -> Option<Harness> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, h)| *h)
}

/// Whether inputs that hit an already reported bug are skipped (environment variable
/// `DCIM_FUZZ_SKIP_KNOWN=1`, set by `tests/fuzz/run.sh` so that a fuzzing campaign looks for
/// new bugs instead of finding the known one again). Never set for the corpus replay test: the
/// reproducers in `tests/fuzz/regressions/` fail there until the bug is fixed.
pub fn skip_known_bugs() -> bool {
    static SKIP: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SKIP.get_or_init(|| std::env::var("DCIM_FUZZ_SKIP_KNOWN").is_ok_and(|v| v == "1"))
}

/// Splits `data` into chunks separated by `sep` (at most `max` chunks; the rest is ignored).
pub(crate) fn chunks(data: &[u8], sep: u8, max: usize) -> impl Iterator<Item = &[u8]> {
    data.split(move |b| *b == sep).take(max)
}
