//! Puts memory.x and device.x on the linker search path. With the `emulated` feature, also
//! generates `traces.rs`: every shipped trace `tests/traces/NAME.csv` with its expected host
//! output `NAME.expected.jsonl`, embedded with `include_str!` so that the emulated image
//! replays exactly the same bytes (all of them fit the 1 MiB flash at once).
use std::{env, fmt::Write as _, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    fs::copy("memory.x", out.join("memory.x")).expect("copy memory.x");
    fs::copy("device.x", out.join("device.x")).expect("copy device.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=device.x");
    if env::var_os("CARGO_FEATURE_EMULATED").is_none() {
        return;
    }
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    println!("cargo:rerun-if-env-changed=FIRE_TRACES_DIR");
    let dir = env::var_os("FIRE_TRACES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../../../tests/traces"));
    let dir = dir.canonicalize().unwrap_or(dir);
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut names: Vec<String> = fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter_map(|n| n.strip_suffix(".csv").map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut src = String::from(
        "/// (name, trace CSV, expected JSON lines) of every shipped trace.\npub static TRACES: &[(&str, &str, &str)] = &[\n",
    );
    for name in &names {
        let csv = dir.join(format!("{name}.csv"));
        let expected = dir.join(format!("{name}.expected.jsonl"));
        println!("cargo:rerun-if-changed={}", csv.display());
        println!("cargo:rerun-if-changed={}", expected.display());
        assert!(
            expected.is_file(),
            "{}: no expected output {} (run fire-replay on it and review the result)",
            csv.display(),
            expected.display()
        );
        writeln!(
            src,
            "    ({name:?}, include_str!({:?}), include_str!({:?})),",
            csv.display().to_string(),
            expected.display().to_string()
        )
        .unwrap();
    }
    src.push_str("];\n");
    fs::write(out.join("traces.rs"), src).expect("write traces.rs");
}
