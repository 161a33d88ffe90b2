//! One fire-stage vocabulary: `fire_logic::STAGE_TABLE` (code, key, name, condition, default
//! threshold, actions) is the single source, and everything else that names a stage agrees
//! with it. Hazard: operators, firefighters and the fire authority reading "stage 3" as three
//! different things (a code, a stage number, a temperature), or a pre-alarm documented at 45 °C
//! in one place and acting at 50 °C in another.
//!
//! Checked here: the register map (`device-profiles/rack-controller.toml` `enum`), the DC-09
//! mapping, the server's stage reader, and a
//! scan of the documentation (READMEs, scenario and drill files, device profiles, the DC-09 code
//! table, the agent example) for three kinds of statements, each of which must match the table:
//! "stage N (T °C" / "stageN ... T °C" (T = stage N's threshold), "pre-alarm (T °C" (T = the
//! pre-alarm's), and "`fire.stage` C = stage N" / "`fire.stage` >= C (stage N" (C = N + 1).
//! Alarm texts and wire events are checked where they are built (`dcim-alarms`, the agent); the
//! facility simulator's thresholds and the demo banner in `dcim-demo` (tests/stage_vocabulary.rs).

use fire_logic::{STAGE_TABLE, Stage};
use regex::Regex;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn threshold_c(stage_number: u32) -> Option<i32> {
    // stage N of the docs is the table row with key `stageN` (code N + 1).
    let key = format!("stage{stage_number}");
    STAGE_TABLE
        .iter()
        .find(|r| r.key == key)
        .and_then(|r| r.default_threshold)
        .map(|t| t / 10)
}

/// The documents that talk about stages.
fn documents() -> Vec<PathBuf> {
    let r = root();
    let mut v: Vec<PathBuf> = [
        "README.md",
        "ARCHITECTURE.md",
        "BENCHMARKS.md",
        "tests/facility-sim/README.md",
        "tests/demo/README.md",
        "tests/drills/README.md",
        "dcim-server/alarms/README.md",
        "dcim-server/site/README.md",
        "device-profiles/README.md",
        "edge-agent/dc09/codes.example.toml",
        "edge-agent/agent/agent.example.toml",
        "dcim-server/demo/src/demo.rs",
        "tests/facility-sim/src/kinds/racks.rs",
        "tests/facility-sim/src/scenario.rs",
    ]
    .iter()
    .map(|p| r.join(p))
    .collect();
    for dir in [
        "tests/facility-sim/scenarios",
        "tests/drills",
        "device-profiles",
    ] {
        for e in std::fs::read_dir(r.join(dir)).unwrap() {
            let p = e.unwrap().path();
            if matches!(p.extension().and_then(|x| x.to_str()), Some("txt" | "toml")) {
                v.push(p);
            }
        }
    }
    v
}

#[test]
fn every_document_that_names_a_stage_agrees_with_the_stage_table() {
    // "stage 1 (60 °C", "stage1 \"Power cut and fire blanket\" (60 degC", "stage 3 at 80 °C"
    let stage_temp = Regex::new(
        r#"(?i)\bstage ?([1-5])\b(?: "[A-Za-z ]+")?\s*(?:\(|:|=|at|is)?\s*(?:≥|>=)?\s*(\d{2,3})(?:\.\d)?\s?(?:°C|°|degC|C\b)"#,
    )
    .unwrap();
    let pre_temp = Regex::new(
        r#"(?i)\bpre-?alarm\b(?: "[A-Za-z -]+")?\s*(?:\(|:|=|at|is)?\s*(?:≥|>=)?\s*(\d{2,3})(?:\.\d)?\s?(?:°C|°|degC|C\b)"#,
    )
    .unwrap();
    let prealarm_cfg = Regex::new(r"prealarm_c\s*=\s*(\d+)").unwrap();
    let stage_cfg = Regex::new(r"\bstage([1-3])_c\s*=\s*(\d+)").unwrap();
    // "`fire.stage` 4 = stage 3", "fire.stage >= 2 (stage 1", "`fire.stage` = 4, 80 °C ... stage3"
    let code_stage = Regex::new(
        r"(?i)fire\.stage`?\s*(?:value\s*)?(?:=|>=|≥)?\s*(\d)\s*(?:=|\()\s*stage ?([1-5])\b",
    )
    .unwrap();
    let pre = STAGE_TABLE[1].default_threshold.unwrap() / 10;
    let mut problems = Vec::new();
    let mut statements = 0;
    for path in documents() {
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let name = path
            .strip_prefix(root())
            .unwrap_or(&path)
            .display()
            .to_string();
        for (n, line) in text.lines().enumerate() {
            let at = format!("{name}:{}", n + 1);
            for c in stage_temp.captures_iter(line) {
                statements += 1;
                let (k, t): (u32, i32) = (c[1].parse().unwrap(), c[2].parse().unwrap());
                match threshold_c(k) {
                    Some(want) if want != t => problems.push(format!(
                        "{at}: stage {k} at {t} °C, the table says {want} °C: {line}"
                    )),
                    None => problems.push(format!(
                        "{at}: stage {k} has no temperature threshold in the table: {line}"
                    )),
                    _ => {}
                }
            }
            for c in pre_temp
                .captures_iter(line)
                .chain(prealarm_cfg.captures_iter(line))
            {
                statements += 1;
                let t: i32 = c[1].parse().unwrap();
                if t != pre {
                    problems.push(format!(
                        "{at}: pre-alarm at {t} °C, the table says {pre} °C: {line}"
                    ));
                }
            }
            for c in stage_cfg.captures_iter(line) {
                statements += 1;
                let (k, t): (u32, i32) = (c[1].parse().unwrap(), c[2].parse().unwrap());
                if threshold_c(k) != Some(t) {
                    problems.push(format!("{at}: stage{k}_c = {t}: {line}"));
                }
            }
            for c in code_stage.captures_iter(line) {
                statements += 1;
                let (code, k): (u32, u32) = (c[1].parse().unwrap(), c[2].parse().unwrap());
                if code != k + 1 {
                    problems.push(format!(
                        "{at}: fire.stage {code} named stage {k}; the table's stage{k} has code {}: {line}",
                        k + 1
                    ));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "documents disagree with fire_logic::STAGE_TABLE:\n{}",
        problems.join("\n")
    );
    // The scan is not vacuous: the documents do state thresholds and codes.
    assert!(statements >= 10, "only {statements} stage statements found");
}

#[test]
fn the_scan_catches_a_wrong_threshold() {
    // The scanner itself must fail on the statements of the original defect.
    let stage_temp = Regex::new(
        r#"(?i)\bstage ?([1-5])\b(?: "[A-Za-z ]+")?\s*(?:\(|:|=|at|is)?\s*(?:≥|>=)?\s*(\d{2,3})(?:\.\d)?\s?(?:°C|°|degC|C\b)"#,
    )
    .unwrap();
    let c = stage_temp
        .captures("stage 1 (65 degC, contactor opens)")
        .unwrap();
    assert_ne!(
        threshold_c(c[1].parse().unwrap()),
        Some(c[2].parse().unwrap())
    );
    let c = stage_temp
        .captures("stage3 \"Extinguishing agent\" (80 °C)")
        .unwrap();
    assert_eq!(
        threshold_c(c[1].parse().unwrap()),
        Some(c[2].parse().unwrap())
    );
}

#[test]
fn the_register_map_enum_is_the_table_keys() {
    let text =
        std::fs::read_to_string(root().join("device-profiles/rack-controller.toml")).unwrap();
    let line = text
        .lines()
        .skip_while(|l| !l.contains("role = \"fire.stage\""))
        .find(|l| l.trim_start().starts_with("enum"))
        .expect("the fire.stage point has an enum");
    for row in &STAGE_TABLE {
        let want = format!("{} = \"{}\"", row.code, row.key);
        assert!(line.contains(&want), "{line}: expected {want}");
    }
    // And the profile's words read back as the stages on the server.
    for row in &STAGE_TABLE {
        assert_eq!(
            dcim_site::fire::stage_of(&dcim_points::Value::Text(row.key.into())),
            Some(row)
        );
    }
}

#[test]
fn the_dc09_mapping_covers_every_stage_by_its_key() {
    for row in STAGE_TABLE.iter().skip(1) {
        let kind = dcim_server::io::dc09::stage_kind(row.stage).expect("every stage is sent");
        let key = row.key.replace('_', "");
        assert!(
            kind.name().starts_with(&format!("fire.{key}")),
            "{}: DC-09 kind {}",
            row.key,
            kind.name()
        );
    }
    assert!(dcim_server::io::dc09::stage_kind(Stage::Normal).is_none());
    assert_eq!(dcim_server::io::dc09::stage_kinds(4.0).len(), 4);
}
