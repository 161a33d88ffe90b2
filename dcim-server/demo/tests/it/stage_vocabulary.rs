//! The demo's side of the one fire-stage vocabulary (`fire_logic::STAGE_TABLE`; the rest is
//! checked in dcim-server/server/tests/it/stage_vocabulary.rs). Hazard: the simulator heating a
//! rack past a threshold the firmware does not use (a demo or drill that "passes" on stages that
//! never fire on real hardware), or the demo banner naming stages by bare numbers that operators
//! read as something else.

use fire_logic::Stage;

#[test]
fn the_simulator_uses_the_table_thresholds() {
    use facility_sim::kinds::racks::{PRE_ALARM_C, STAGE_C, stage_for};
    let c = |s: Stage| f64::from(s.info().default_threshold.unwrap()) / 10.0;
    assert_eq!(PRE_ALARM_C, c(Stage::PreAlarm));
    assert_eq!(
        STAGE_C,
        [c(Stage::Stage1), c(Stage::Stage2), c(Stage::Stage3)]
    );
    for s in [Stage::PreAlarm, Stage::Stage1, Stage::Stage2, Stage::Stage3] {
        assert_eq!(stage_for(c(s)), u16::from(s.code()), "{s}");
        assert_eq!(stage_for(c(s) - 0.1), u16::from(s.code()) - 1, "{s}");
    }
}

#[test]
fn the_demo_banner_names_stages_from_the_table() {
    let b = dcim_demo::demo::scenario_banner();
    let agent = Stage::Stage3.info();
    assert!(b.contains(&format!("\"{}\"", agent.name)), "{b}");
    assert!(b.contains(agent.key), "{b}");
    assert!(!b.contains("fire stage 3"), "a bare number: {b}");
}
