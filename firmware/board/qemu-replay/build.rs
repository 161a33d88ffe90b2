//! Puts memory.x on the linker search path and generates `traces.rs`: every shipped trace
//! `tests/traces/NAME.csv` with its expected host output `tests/traces/NAME.expected.jsonl`,
//! embedded with `include_str!` so the emulated MCU replays exactly the same bytes.
use std::{env, fmt::Write as _, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    fs::copy("memory.x", out.join("memory.x")).expect("copy memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");

    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    // FIRE_TRACES_DIR overrides the folder (to try the image on other traces).
    println!("cargo:rerun-if-env-changed=FIRE_TRACES_DIR");
    let dir = env::var_os("FIRE_TRACES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../../../tests/traces"));
    let dir = dir.canonicalize().unwrap_or(dir);
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut names: Vec<String> = match fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter_map(|n| n.strip_suffix(".csv").map(str::to_string))
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    // The emulated LM3S6965 has 256 KiB of flash: the traces are packed into groups that fit
    // next to the code (first fit, largest first), and QEMU_REPLAY_GROUP selects the group
    // this image embeds. tests/firmware/run.sh builds and runs every group in turn.
    const GROUP_BYTES: u64 = 150 * 1024;
    println!("cargo:rerun-if-env-changed=QEMU_REPLAY_GROUP");
    let group: usize = env::var("QEMU_REPLAY_GROUP")
        .ok()
        .and_then(|g| g.parse().ok())
        .unwrap_or(0);
    let mut sized: Vec<(u64, &String)> = Vec::new();
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
        let bytes = fs::metadata(&csv).map(|m| m.len()).unwrap_or(0)
            + fs::metadata(&expected).map(|m| m.len()).unwrap_or(0);
        assert!(
            bytes <= GROUP_BYTES,
            "{}: {bytes} bytes do not fit the emulated MCU's flash",
            csv.display()
        );
        sized.push((bytes, name));
    }
    sized.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    let mut groups: Vec<(u64, Vec<&String>)> = Vec::new();
    for (bytes, name) in sized {
        match groups.iter_mut().find(|g| g.0 + bytes <= GROUP_BYTES) {
            Some(g) => {
                g.0 += bytes;
                g.1.push(name);
            }
            None => groups.push((bytes, vec![name])),
        }
    }
    let total = groups.len().max(1);
    let mut src = format!(
        "/// This image's group of traces, and the number of groups.\npub const GROUP: usize = {group};\npub const GROUPS: usize = {total};\n"
    );
    src.push_str("/// (name, trace CSV, expected JSON lines) of the traces of this group.\npub static TRACES: &[(&str, &str, &str)] = &[\n");
    if let Some((_, members)) = groups.get(group) {
        let mut members = members.clone();
        members.sort();
        for name in members {
            let csv = dir.join(format!("{name}.csv"));
            let expected = dir.join(format!("{name}.expected.jsonl"));
            writeln!(
                src,
                "    ({name:?}, include_str!({:?}), include_str!({:?})),",
                csv.display().to_string(),
                expected.display().to_string()
            )
            .unwrap();
        }
    }
    src.push_str("];\n");
    fs::write(out.join("traces.rs"), src).expect("write traces.rs");
}
