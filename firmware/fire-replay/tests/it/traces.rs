//! Replays every `tests/traces/*.csv` and compares with its `*.expected.jsonl`, byte for byte.
//! A trace without an expected file fails. `FIRE_TRACES_BLESS=1` rewrites the expected files
//! (review the diff before committing). Every trace runs with the default configuration.

use std::path::{Path, PathBuf};
use std::process::Command;

fn traces_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/traces")
}

fn traces() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(traces_dir())
        .expect("tests/traces exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .collect();
    v.sort();
    v
}

fn expected_path(trace: &Path) -> PathBuf {
    trace.with_extension("expected.jsonl")
}

#[test]
fn every_trace_matches_its_expected_output() {
    let traces = traces();
    assert!(
        traces.len() >= 17,
        "expected the shipped traces, found {traces:?}"
    );
    let bless = std::env::var("FIRE_TRACES_BLESS").is_ok_and(|v| v == "1");
    let mut failures = Vec::new();
    for trace in &traces {
        let text = std::fs::read_to_string(trace).unwrap();
        let mut out = String::new();
        let config = fire_logic::Config::default();
        if let Err(e) = fire_trace::replay(&text, &config, &mut out) {
            failures.push(format!("{}: {e}", trace.display()));
            continue;
        }
        let expected_file = expected_path(trace);
        if bless {
            std::fs::write(&expected_file, &out).unwrap();
            continue;
        }
        match std::fs::read_to_string(&expected_file) {
            Err(_) => failures.push(format!(
                "{} has no expected output {}",
                trace.display(),
                expected_file.display()
            )),
            Ok(expected) if expected != out => {
                let first = expected
                    .lines()
                    .zip(out.lines())
                    .position(|(a, b)| a != b)
                    .unwrap_or(expected.lines().count().min(out.lines().count()));
                failures.push(format!(
                    "{}: output differs from {} at line {}:\n  expected: {}\n  actual:   {}",
                    trace.display(),
                    expected_file.display(),
                    first + 1,
                    expected.lines().nth(first).unwrap_or("<end>"),
                    out.lines().nth(first).unwrap_or("<end>")
                ));
            }
            Ok(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_expected_file_has_a_trace() {
    for e in std::fs::read_dir(traces_dir()).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if let Some(stem) = name.strip_suffix(".expected.jsonl") {
            assert!(
                traces_dir().join(format!("{stem}.csv")).exists(),
                "{name} has no trace"
            );
        }
    }
}

#[test]
fn shipped_traces_reach_what_they_claim() {
    // Hazard: an expected file blessed with a wrong behaviour; each trace's own claim is
    // checked here independently of its expected output.
    let run = |name: &str| {
        let text = std::fs::read_to_string(traces_dir().join(name)).unwrap();
        let mut out = String::new();
        let s = fire_trace::replay(&text, &fire_logic::Config::default(), &mut out).unwrap();
        (s, out)
    };
    use fire_logic::{Action, Stage, Supervisory, Trouble};
    let (s, out) = run("slow-thermal-runaway.csv");
    assert_eq!(s.max_stage, Stage::Stage5);
    assert!(s.final_outputs.actions.contains(Action::GasRelease));
    assert!(out.contains("room gas held by hold switch"));
    let (s, _) = run("sensor-fails-open.csv");
    assert_eq!(s.max_stage, Stage::Normal);
    assert!(s.final_outputs.actions.iter().next().is_none());
    let (s, out) = run("noisy-sensor.csv");
    assert_eq!(s.max_stage, Stage::Normal);
    assert!(out.contains("rack_temp2 invalid: partner_disagreement"));
    assert!(!out.contains("rack_temp1 invalid"));
    let (s, out) = run("offgas-early-warning.csv");
    assert_eq!(s.max_stage, Stage::Stage1);
    assert_eq!(s.final_stage, Stage::Normal);
    assert!(out.contains("local reset refused") && out.contains("local reset accepted"));
    let (s, out) = run("manual-only.csv");
    assert!(
        s.final_outputs
            .supervisory
            .contains(Supervisory::ManualOnlyBypass)
    );
    assert!(out.contains("agent held back: manual-only mode"));
    assert!(s.final_outputs.actions.contains(Action::AgentRelease));
    assert!(!s.final_outputs.actions.contains(Action::GasWarning));
    let (s, out) = run("authority-key.csv");
    assert_eq!(s.max_stage, Stage::Normal);
    assert!(out.contains("authority_in_command") && out.contains("contactor_feedback_mismatch"));

    // One trace per hazard.
    let (s, out) = run("h1-burnt-sensors-after-agent.csv");
    assert!(s.final_outputs.actions.contains(Action::GasRelease));
    assert!(s.final_outputs.actions.contains(Action::CoolantOn));
    assert!(out.contains("stage4: no valid temperature"));
    let (s, out) = run("h1-peak-sensor-lost-while-hot.csv");
    assert_eq!(s.max_stage, Stage::Stage4);
    assert!(out.contains("camera_max invalid: fault"));
    let (s, _) = run("h2-stuck-partner-hides-fire.csv");
    assert!(s.final_outputs.actions.contains(Action::AgentRelease));
    assert!(s.final_outputs.troubles.contains(Trouble::RackTemp1Invalid));
    assert!(!s.final_outputs.troubles.contains(Trouble::RackTemp2Invalid));
    let (s, out) = run("h3-flickering-flame.csv");
    assert!(s.final_outputs.actions.contains(Action::AgentRelease));
    assert!(!out.contains("camera_max invalid"));
    let (s, _) = run("h4-common-mode-drift.csv");
    assert_eq!(s.max_stage, Stage::Stage1);
    assert!(!s.final_outputs.actions.contains(Action::PatchFire));
    let (s, out) = run("h5-room-gas-manual-only.csv");
    assert!(s.final_outputs.actions.contains(Action::GasRelease));
    let warned = |line: &str| line.contains("room gas pre-discharge warning started");
    let last_warning: u64 = out
        .lines()
        .rfind(|l| warned(l))
        .and_then(|l| {
            l.split(',')
                .next()?
                .strip_prefix("{\"t_ms\":")?
                .parse()
                .ok()
        })
        .unwrap();
    let released: u64 = out
        .lines()
        .find(|l| l.contains("room gas released"))
        .and_then(|l| {
            l.split(',')
                .next()?
                .strip_prefix("{\"t_ms\":")?
                .parse()
                .ok()
        })
        .unwrap();
    assert!(
        released - last_warning >= 30_000,
        "full warning after the hold"
    );
    let (s, out) = run("h6-inhibit-then-recovery.csv");
    assert!(out.contains("rack_temp1 inhibit ended"));
    assert!(s.final_outputs.actions.contains(Action::AgentRelease));
    let (s, out) = run("h7-reset-with-dead-hot-sensor.csv");
    assert!(out.contains("local reset refused: camera_max is not valid"));
    assert!(out.contains("with out of service: camera_max"));
    assert_eq!(s.final_stage, Stage::Normal);
    let (s, out) = run("h8-offgas-sustained.csv");
    assert_eq!(s.max_stage, Stage::Stage1);
    assert!(out.contains("sustained time"));
    let (s, _) = run("h8-smoke-offgas-no-temperature.csv");
    assert_eq!(s.max_stage, Stage::Stage1);
    let (s, out) = run("h9-reboot-loop-time-wrap.csv");
    assert_eq!(s.max_stage, Stage::Stage4);
    assert!(s.end_t_ms > u64::from(u32::MAX));
    assert!(out.matches("restored after restart").count() >= 4);
    assert_eq!(out.matches("manual release operated").count(), 1);
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fire-replay"))
}

#[test]
fn cli_output_is_the_expected_file_byte_for_byte() {
    let trace = traces_dir().join("manual-only.csv");
    let out = bin()
        .args(["--trace", trace.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let expected = std::fs::read(expected_path(&trace)).unwrap();
    assert_eq!(out.stdout, expected);
}

fn temp_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fire-replay-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn cli_malformed_trace_names_line_and_column_and_fails() {
    let p = temp_file(
        "bad.csv",
        "# comment\nt_ms,bms_max_c,smoke\n0,25.0,0\n500,hot,0\n",
    );
    let out = bin()
        .args(["--trace", p.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 4, column 2 (bms_max_c)") && err.contains("`hot`"),
        "{err}"
    );
    let p = temp_file("bad2.csv", "t_ms,bms_max_c,smoek\n");
    let out = bin()
        .args(["--trace", p.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 1, column 3") && err.contains("unknown column `smoek`"),
        "{err}"
    );
    let p = temp_file(
        "bad3.csv",
        "t_ms,bms_max_c,camera_max_c\n1000,25,25\n500,25,25\n",
    );
    let out = bin()
        .args(["--trace", p.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 3, column 1 (t_ms)"));
    let p = temp_file("bad4.csv", "t_ms,bms_max_c,camera_max_c\n1000,25,25,1\n");
    let out = bin()
        .args(["--trace", p.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2: expected 3 cells"));
}

#[test]
fn cli_invalid_config_is_rejected_with_the_reason() {
    let trace = traces_dir().join("noisy-sensor.csv");
    let cfg = temp_file("bad.toml", "gas_warning_ms = 120000\n");
    let out = bin()
        .args(["--trace", trace.to_str().unwrap()])
        .args(["--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("gas_warning_ms") && err.contains("at most 60 s"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    let good = temp_file("good.toml", "stage1_c = 58.0\n");
    let out = bin()
        .args(["--trace", trace.to_str().unwrap()])
        .args(["--config", good.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
}

#[test]
fn cli_help_and_usage_errors() {
    let out = bin().arg("--help").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--trace FILE"));
    let out = bin().output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = bin().arg("--frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = bin()
        .args(["--trace", "/nonexistent/trace.csv"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn cli_warns_when_the_two_rack_transmitters_could_corroborate_each_other_undeclared() {
    // Hazard #11.4: two transmitters on one ADC drift to 87 C together and, with no
    // common-cause declaration, corroborate each other into an agent release. A replay of such
    // a wiring must say so loudly (stderr; the JSON output stays as it is).
    let only = temp_file(
        "undeclared.csv",
        "t_ms,rack_temp1_c,rack_temp2_c\n0,25.0,25.0\n500,25.0,25.0\n",
    );
    let out = bin()
        .args(["--trace", only.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("WARNING: rack_temp1_c and rack_temp2_c may corroborate each other")
            && err.contains("ONLY possible corroboration")
            && err.contains("#! common_cause: rack_temp1_c rack_temp2_c"),
        "{err}"
    );
    // With smoke fitted the pair still warns (it can still corroborate itself), not as "only".
    let smoke = temp_file(
        "undeclared-smoke.csv",
        "t_ms,rack_temp1_c,rack_temp2_c,smoke\n0,25.0,25.0,0\n",
    );
    let out = bin()
        .args(["--trace", smoke.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("may corroborate each other") && !err.contains("ONLY"),
        "{err}"
    );
    // Declared (shared in the trace, or independent in the configuration): no warning.
    let declared = temp_file(
        "declared.csv",
        "#! common_cause: rack_temp1_c rack_temp2_c\nt_ms,rack_temp1_c,rack_temp2_c,smoke\n0,25.0,25.0,0\n",
    );
    let out = bin()
        .args(["--trace", declared.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("WARNING"));
    let cfg = temp_file(
        "independent.toml",
        "common_cause = { rack_temp1 = 1, rack_temp2 = 2 }\n",
    );
    let out = bin()
        .args([
            "--trace",
            smoke.to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("WARNING"));
}
