//! Ties the Spin model of the stage machine (`model/stages.pml`, checked by
//! `tests/model/run.sh`) to the code: its thresholds and delays are `Config::default()`, its
//! stage and gas codes are the code's, its time step matches the persistence checkpoint and
//! the warning's largest step. Hazard: a model that proves properties of other numbers than
//! the ones the controller runs with.

use std::collections::BTreeMap;

use fire_logic::{CHECKPOINT_MS, Config, GasState, MAX_WARNING_STEP_MS, RESTORE_CREDIT_MS, Stage};

fn defines() -> BTreeMap<String, i64> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/model/stages.pml");
    let text = std::fs::read_to_string(path).expect("model/stages.pml");
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("#define") {
            continue;
        }
        let (Some(name), Some(value)) = (words.next(), words.next()) else {
            continue;
        };
        let value = value.trim_start_matches('(').trim_end_matches(')');
        if let Ok(v) = value.parse::<i64>() {
            out.insert(name.to_string(), v);
        }
    }
    out
}

fn get(d: &BTreeMap<String, i64>, name: &str) -> i64 {
    *d.get(name)
        .unwrap_or_else(|| panic!("model/stages.pml has no numeric #define {name}"))
}

#[test]
fn model_thresholds_and_delays_are_the_config_defaults() {
    let d = defines();
    let c = Config::default();
    let pairs: [(&str, i64); 11] = [
        ("PREALARM", c.prealarm.into()),
        ("STAGE1", c.stage1.into()),
        ("STAGE2", c.stage2.into()),
        ("STAGE3", c.stage3.into()),
        ("RESET_MAX", c.reset_max.into()),
        ("OFFGAS_SUPERVISORY", c.offgas_supervisory.into()),
        ("OFFGAS_STAGE1", c.offgas_stage1.into()),
        ("COOLANT_AFTER_MS", c.coolant_after_ms.into()),
        ("GAS_AFTER_MS", c.gas_after_ms.into()),
        ("GAS_WARNING_MS", c.gas_warning_ms.into()),
        ("OFFGAS_SUSTAINED_MS", c.offgas_sustained_ms.into()),
    ];
    for (name, want) in pairs {
        assert_eq!(
            get(&d, name),
            want,
            "model {name} differs from Config::default()"
        );
    }
    assert_eq!(get(&d, "RESTORE_CREDIT_MS"), i64::from(RESTORE_CREDIT_MS));
}

#[test]
fn model_time_step_fits_the_checkpoint_and_every_delay() {
    let d = defines();
    let tick = get(&d, "TICK_MS");
    // One model step is one checkpoint and the warning's largest step per cycle, so a restart
    // credit is exactly one step and the warning counts one step per second.
    assert_eq!(tick, i64::from(CHECKPOINT_MS));
    assert_eq!(tick, MAX_WARNING_STEP_MS as i64);
    for name in [
        "COOLANT_AFTER_MS",
        "GAS_AFTER_MS",
        "GAS_WARNING_MS",
        "OFFGAS_SUSTAINED_MS",
        "RESTORE_CREDIT_MS",
    ] {
        assert_eq!(get(&d, name) % tick, 0, "{name} is not whole model steps");
    }
}

#[test]
fn model_stage_and_gas_codes_are_the_codes_of_the_logic() {
    let d = defines();
    for (name, stage) in [
        ("NORMAL", Stage::Normal),
        ("PRE_ALARM", Stage::PreAlarm),
        ("ST1", Stage::Stage1),
        ("ST2", Stage::Stage2),
        ("ST3", Stage::Stage3),
        ("ST4", Stage::Stage4),
        ("ST5", Stage::Stage5),
    ] {
        assert_eq!(get(&d, name), i64::from(stage.code()), "{name}");
    }
    for (name, gas) in [
        ("IDLE", GasState::Idle),
        ("WARNING", GasState::Warning),
        ("HELD", GasState::Held),
        ("WAIT_MANUAL", GasState::ManualOnly),
        ("RELEASED", GasState::Released),
    ] {
        assert_eq!(get(&d, name), gas as i64, "{name}");
    }
}
