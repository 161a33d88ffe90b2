//! One test (or more) per requirement of the rack fire logic, named after it.
#![allow(clippy::field_reassign_with_default, clippy::type_complexity)]

use crate::common;

use common::{Rig, c, manual, reset, room_gas};
use fire_logic::{
    Action, Analog, Config, Digital, EVENT_LOG_CAPACITY, EventClass, EventKind, EventLog,
    Invalidity, NetworkCommand, RackLogic, Refused, SourceId, Stage, Supervisory, Trouble,
};

fn has(o: &fire_logic::Outputs, a: Action) -> bool {
    o.actions.contains(a)
}

/// Drives a rig to stage 3 with every sensor agreeing.
/// Returns exactly in the cycle that entered stage 3.
fn to_stage3(r: &mut Rig) {
    r.ramp_to([85.0, 85.0, 84.0, 86.0]);
    r.run_until(2_000, |o| o.stage == Stage::Stage3);
}

// ---------------------------------------------------------------- requirement 1: inputs

#[test]
fn req1_silent_source_is_fault_after_three_periods_never_normal() {
    let mut r = Rig::new();
    r.run(2_000);
    assert!(r.out.troubles.is_empty());
    r.temps[1] = None; // rack_temp1 stops sending
    r.run(1_500); // exactly 3 periods: still fine
    assert_eq!(r.logic.source_invalidity(SourceId::RackTemp1), None);
    r.run(500);
    assert_eq!(
        r.logic.source_invalidity(SourceId::RackTemp1),
        Some(Invalidity::Stale)
    );
    assert!(r.out.troubles.contains(Trouble::RackTemp1Invalid));
}

#[test]
fn req1_never_sampled_fitted_source_becomes_fault() {
    let mut r = Rig::new();
    r.temps[3] = None; // the camera never reports
    r.run(1_000);
    assert!(!r.out.troubles.contains(Trouble::CameraInvalid));
    r.run(1_000);
    assert!(r.out.troubles.contains(Trouble::CameraInvalid));
}

#[test]
fn req1_sensor_reporting_fault_is_a_trouble() {
    let mut r = Rig::new();
    r.smoke = Some(Digital::Fault);
    r.tick();
    assert!(r.out.troubles.contains(Trouble::SmokeInvalid));
    assert_eq!(r.out.stage, Stage::Normal);
    r.smoke = Some(Digital::Off);
    r.tick();
    assert!(!r.out.troubles.contains(Trouble::SmokeInvalid));
}

#[test]
fn req1_switch_line_fault_is_a_trouble() {
    let mut r = Rig::new();
    r.inp.reset = Digital::Fault;
    r.tick();
    assert!(r.out.troubles.contains(Trouble::SwitchFault));
}

// ---------------------------------------------------------------- requirement 2: plausibility

#[test]
fn req2_out_of_range_reading_is_excluded_with_trouble() {
    let mut r = Rig::new();
    r.temps[0] = Some(Analog::Value(c(-60.0)));
    r.tick();
    assert_eq!(
        r.logic.source_invalidity(SourceId::Bms),
        Some(Invalidity::OutOfRange)
    );
    assert!(r.out.troubles.contains(Trouble::BmsInvalid));
}

#[test]
fn req2_open_and_short_codes_are_excluded_and_never_alarm() {
    let cfg = Config::default();
    let mut r = Rig::new();
    r.temps[1] = Some(Analog::Value(cfg.open_code));
    r.run(5_000);
    assert_eq!(
        r.logic.source_invalidity(SourceId::RackTemp1),
        Some(Invalidity::Open)
    );
    r.temps[2] = Some(Analog::Value(cfg.short_code));
    r.run(5_000);
    assert_eq!(
        r.logic.source_invalidity(SourceId::RackTemp2),
        Some(Invalidity::Short)
    );
    assert_eq!(r.out.stage, Stage::Normal);
    assert!(r.out.actions.iter().next().is_none());
}

#[test]
fn req2_a_jump_is_rate_limited_so_a_single_spike_never_confirms() {
    // Hazard: a one-sample spike (EMI, a loose contact) starting a stage, or the opposite
    // mistake, a reading that stays high being thrown away as "implausible".
    let mut r = Rig::new();
    r.set(3, 90.0); // camera 25 -> 90 in one sample: followed by at most 15 C per sample
    r.tick();
    assert_eq!(r.logic.source_invalidity(SourceId::Camera), None);
    assert_eq!(
        r.out.governing,
        Some(c(25.0)),
        "min of the last two samples"
    );
    r.set(3, 25.0); // the spike is gone
    r.run(2_000);
    assert_eq!(r.out.stage, Stage::Normal);
    assert!(r.out.troubles.is_empty());
    // A reading that stays high is followed: 25 -> 40 -> 55 -> 70 -> 85 -> 90.
    r.set(3, 90.0);
    r.run(3_000);
    assert_eq!(r.out.governing, Some(c(90.0)));
    assert_eq!(
        r.out.stage,
        Stage::Stage1,
        "one source alone: power cut only"
    );
}

#[test]
fn req2_partner_disagreement_excludes_the_outlier_with_trouble() {
    let mut r = Rig::new();
    r.ramp_to([25.0, 45.0, 25.0, 25.0]); // rack_temp1 drifts away from its partner
    r.tick();
    assert_eq!(
        r.logic.source_invalidity(SourceId::RackTemp1),
        Some(Invalidity::Disagree)
    );
    assert_eq!(r.logic.source_invalidity(SourceId::RackTemp2), None);
    assert!(r.out.troubles.contains(Trouble::RackTemp1Invalid));
    r.ramp_to([25.0, 26.0, 25.0, 25.0]);
    r.tick();
    assert_eq!(r.logic.source_invalidity(SourceId::RackTemp1), None);
}

#[test]
fn req2_partner_disagreement_without_referee_excludes_the_lower() {
    let mut cfg = Config::default();
    cfg.fitted.bms = false;
    cfg.fitted.camera = false;
    let mut r = Rig::with(cfg);
    r.ramp_to([25.0, 25.0, 50.0, 25.0]);
    r.tick();
    assert_eq!(
        r.logic.source_invalidity(SourceId::RackTemp1),
        Some(Invalidity::Disagree)
    );
    assert_eq!(r.out.governing, Some(c(50.0)));
}

#[test]
fn req2_trouble_never_starts_a_suppression_stage() {
    let mut r = Rig::new();
    r.temps[0] = Some(Analog::Fault);
    r.temps[1] = Some(Analog::Value(32_767));
    r.temps[2] = Some(Analog::Value(c(2_000.0)));
    r.smoke = Some(Digital::Fault);
    r.run(120_000);
    assert!(r.out.stage <= Stage::PreAlarm);
    assert!(!has(&r.out, Action::BlanketDrop));
    assert!(!has(&r.out, Action::AgentRelease));
}

// ---------------------------------------------------------------- requirement 3: stages

#[test]
fn req3_prealarm_at_threshold_is_a_warning_only() {
    let mut r = Rig::new();
    r.ramp_to([51.0, 51.0, 50.0, 52.0]);
    r.run(1_000);
    assert_eq!(r.out.stage, Stage::PreAlarm);
    assert!(r.out.actions.iter().next().is_none());
    assert!(r.out.buzzer);
}

#[test]
fn req3_rate_of_rise_gives_supervisory_signal_and_prealarm() {
    let mut r = Rig::new();
    r.run(60_000);
    // +9 C within one 60 s window, still far below the pre-alarm temperature.
    // +0.1 C per 500 ms: 12 C per minute, far below the pre-alarm temperature.
    for _ in 0..120 {
        for i in 0..4 {
            if let Some(Analog::Value(v)) = r.temps[i] {
                r.temps[i] = Some(Analog::Value(v + 1));
            }
        }
        r.tick();
    }
    let mut saw = false;
    for _ in 0..130 {
        r.tick();
        saw |= r.out.supervisory.contains(Supervisory::RateOfRise);
    }
    assert!(saw);
    assert_eq!(r.out.stage, Stage::PreAlarm);
    assert!(r.out.actions.iter().next().is_none());
}

#[test]
fn req3_rate_of_rise_is_per_source_so_a_returning_sensor_does_not_fake_it() {
    let mut r = Rig::new();
    r.temps[3] = Some(Analog::Fault);
    r.run(90_000);
    // The camera comes back 15 C warmer than the rest: no source rose by itself.
    r.set(3, 40.0);
    r.run(150_000);
    assert!(!r.out.supervisory.contains(Supervisory::RateOfRise));
    assert_eq!(r.out.stage, Stage::Normal);
}

fn offgas_rig() -> Rig {
    let mut cfg = Config::default();
    cfg.fitted.offgas = true;
    Rig::with(cfg)
}

#[test]
fn req3_offgas_10_pct_lfl_gives_supervisory_and_prealarm() {
    let mut r = offgas_rig();
    r.offgas = Some(Analog::Value(120));
    r.run(1_000);
    assert!(r.out.supervisory.contains(Supervisory::OffGas));
    assert_eq!(r.out.stage, Stage::PreAlarm);
}

#[test]
fn req3_offgas_25_pct_lfl_gives_stage1() {
    let mut r = offgas_rig();
    r.offgas = Some(Analog::Value(260));
    r.run(1_000);
    assert_eq!(r.out.stage, Stage::Stage1);
    assert!(has(&r.out, Action::ContactorOpen) && has(&r.out, Action::BlanketDrop));
}

#[test]
fn req3_smoke_with_camera_hot_spot_gives_stage1() {
    let mut r = Rig::new();
    r.ramp_to([25.0, 25.0, 25.0, 52.0]);
    r.smoke = Some(Digital::On);
    r.run(1_000);
    assert_eq!(r.out.stage, Stage::Stage1);
    let mut r = Rig::new();
    r.smoke = Some(Digital::On);
    r.run(1_000);
    assert_eq!(r.out.stage, Stage::PreAlarm, "smoke alone is a warning");
}

#[test]
fn req3_stage1_opens_contactor_and_drops_blanket_in_the_confirming_cycle() {
    let mut r = Rig::new();
    r.ramp_to([55.0, 55.0, 55.0, 55.0]);
    r.run(1_000);
    r.set(1, 61.0);
    let first = r.tick();
    assert!(first.stage < Stage::Stage1, "one sample is not confirmed");
    let second = r.tick();
    assert_eq!(second.stage, Stage::Stage1);
    assert!(has(&second, Action::ContactorOpen));
    assert!(has(&second, Action::BlanketDrop));
    assert!(!has(&second, Action::PatchFire));
}

#[test]
fn req3_threshold_needs_n_consecutive_samples() {
    let mut r = Rig::new();
    r.ramp_to([55.0, 55.0, 55.0, 55.0]);
    for _ in 0..20 {
        r.set(1, 62.0);
        r.tick();
        r.set(1, 58.0);
        r.tick();
    }
    assert_eq!(r.out.stage, Stage::PreAlarm);
}

#[test]
fn req3_stage2_needs_corroboration() {
    let mut r = Rig::new();
    // Only one source above 60 C: no corroboration, stage 2 temperature is not enough.
    r.ramp_to([70.0, 56.0, 56.0, 56.0]);
    r.run(5_000);
    assert_eq!(r.out.stage, Stage::Stage1);
    assert!(!has(&r.out, Action::PatchFire));
    // A second source above the stage 1 threshold corroborates.
    r.ramp_to([70.0, 61.0, 61.0, 56.0]);
    r.run(1_000);
    assert_eq!(r.out.stage, Stage::Stage2);
    assert!(has(&r.out, Action::PatchFire));
}

#[test]
fn req3_stage2_corroborated_by_smoke() {
    let mut r = Rig::new();
    r.ramp_to([70.0, 56.0, 56.0, 45.0]);
    r.run(2_000);
    assert_eq!(r.out.stage, Stage::Stage1);
    r.smoke = Some(Digital::On);
    r.run(1_000);
    assert_eq!(r.out.stage, Stage::Stage2);
}

#[test]
fn req3_stage3_discharges_agent() {
    let mut r = Rig::new();
    to_stage3(&mut r);
    assert!(has(&r.out, Action::AgentRelease));
    assert!(!has(&r.out, Action::CoolantOn));
}

#[test]
fn req3_stages_are_latched_and_forward_only() {
    let mut r = Rig::new();
    to_stage3(&mut r);
    r.ramp_to([25.0, 25.0, 25.0, 25.0]);
    r.run(30_000);
    assert_eq!(r.out.stage, Stage::Stage3);
    assert!(has(&r.out, Action::AgentRelease));
}

#[test]
fn req3_stage4_coolant_when_temperature_does_not_fall() {
    let mut r = Rig::new();
    to_stage3(&mut r);
    r.run(119_500);
    assert_eq!(r.out.stage, Stage::Stage3);
    r.run(500);
    assert_eq!(r.out.stage, Stage::Stage4);
    assert!(has(&r.out, Action::CoolantOn));
    // Never stopped by the logic, even once it cools down.
    r.ramp_to([50.0, 50.0, 50.0, 50.0]);
    r.run(60_000);
    assert!(has(&r.out, Action::CoolantOn));
}

#[test]
fn req3_no_coolant_when_temperature_falls_after_agent() {
    let mut r = Rig::new();
    to_stage3(&mut r);
    r.ramp_to([75.0, 75.0, 74.0, 76.0]);
    r.run(200_000);
    assert_eq!(r.out.stage, Stage::Stage3);
    assert!(!has(&r.out, Action::CoolantOn));
}

/// Returns exactly in the cycle that entered stage 5.
fn to_stage5(r: &mut Rig) {
    to_stage3(r);
    r.run(120_000);
    assert_eq!(r.out.stage, Stage::Stage4);
    r.run(299_500);
    assert_eq!(r.out.stage, Stage::Stage4);
    r.tick();
    assert_eq!(r.out.stage, Stage::Stage5);
}

#[test]
fn req3_stage5_room_gas_after_pre_discharge_warning() {
    let mut r = Rig::new();
    to_stage5(&mut r);
    assert!(has(&r.out, Action::GasWarning));
    assert!(!has(&r.out, Action::GasRelease));
    r.run(29_500);
    assert!(!has(&r.out, Action::GasRelease));
    r.tick();
    assert!(has(&r.out, Action::GasRelease));
}

#[test]
fn req3_hold_to_abort_works_only_while_held_and_restarts_the_warning() {
    let mut r = Rig::new();
    to_stage5(&mut r);
    r.run(20_000);
    r.inp.hold = Digital::On;
    r.run(120_000);
    assert!(!has(&r.out, Action::GasRelease), "held");
    assert!(has(&r.out, Action::GasWarning), "warning keeps sounding");
    r.inp.hold = Digital::Off;
    r.run(29_000);
    assert!(
        !has(&r.out, Action::GasRelease),
        "warning restarted in full"
    );
    r.run(1_500);
    assert!(has(&r.out, Action::GasRelease));
}

#[test]
fn req3_hold_after_release_started_has_no_effect() {
    let mut r = Rig::new();
    to_stage5(&mut r);
    r.run(31_000);
    assert!(has(&r.out, Action::GasRelease));
    r.inp.hold = Digital::On;
    r.run(5_000);
    assert!(has(&r.out, Action::GasRelease));
}

#[test]
fn req3_rack_manual_release_in_stage5_never_releases_the_room_gas() {
    // Hazard: the rack's agent release button also flooding the room, skipping the warning.
    let mut r = Rig::new();
    to_stage5(&mut r);
    r.inp.hold = Digital::On;
    r.run(1_000);
    let o = r.press(manual);
    assert!(!o.actions.contains(Action::GasRelease));
    assert!(
        o.actions.contains(Action::GasWarning),
        "held, still sounding"
    );
}

#[test]
fn req3_manual_release_from_normal_reaches_stage3_with_agent() {
    let mut r = Rig::new();
    let o = r.press(manual);
    assert_eq!(o.stage, Stage::Stage3);
    assert!(has(&o, Action::ContactorOpen));
    assert!(has(&o, Action::AgentRelease));
    assert!(!has(&o, Action::GasRelease));
    assert!(!has(&o, Action::GasWarning));
}

// ---------------------------------------------------------------- requirement 4

#[test]
fn req4_loss_of_all_temperatures_troubles_at_once_isolates_later_never_releases() {
    let mut r = Rig::new();
    r.temps = [Some(Analog::Fault); 4];
    r.tick();
    assert!(r.out.troubles.contains(Trouble::NoValidTemperature));
    assert!(!has(&r.out, Action::ContactorOpen));
    r.run(59_000);
    assert!(!has(&r.out, Action::ContactorOpen));
    r.run(1_000);
    assert!(has(&r.out, Action::ContactorOpen));
    assert!(
        r.out
            .supervisory
            .contains(Supervisory::IsolatedNoTemperature)
    );
    r.smoke = Some(Digital::On);
    r.run(600_000);
    for a in [
        Action::AgentRelease,
        Action::CoolantOn,
        Action::GasRelease,
        Action::GasWarning,
        Action::PatchFire,
    ] {
        assert!(!has(&r.out, a), "{a:?}");
    }
    // Sensors come back: isolation stays latched until a local reset.
    r.smoke = Some(Digital::Off);
    r.all(25.0);
    r.run(2_000);
    assert!(has(&r.out, Action::ContactorOpen));
    let o = r.press(reset);
    assert!(!o.actions.contains(Action::ContactorOpen));
}

// ---------------------------------------------------------------- requirement 5

#[test]
fn req5_contactor_feedback_mismatch_over_100ms_is_reported_and_command_kept() {
    let mut r = Rig::new();
    r.ramp_to([59.0, 59.0, 59.0, 59.0]);
    r.all(61.0);
    let o = r.run_until(2_000, |o| o.stage == Stage::Stage1);
    assert!(o.actions.contains(Action::ContactorOpen));
    let t = r.t; // the command changed in this cycle; the feedback still says closed
    let none = fire_logic::Inputs::default();
    for dt in [50u64, 100] {
        let o = r.logic.step(t + dt, &none);
        assert!(!o.troubles.contains(Trouble::ContactorMismatch), "{dt}");
    }
    let o = r.logic.step(t + 101, &none);
    assert!(o.troubles.contains(Trouble::ContactorMismatch));
    assert!(o.actions.contains(Action::ContactorOpen), "command kept");
    r.t = t + 200;
    r.inp.feedback[0] = Digital::On;
    r.tick();
    assert!(!r.out.troubles.contains(Trouble::ContactorMismatch));
    assert!(r.out.actions.contains(Action::ContactorOpen));
}

#[test]
fn req5_mismatch_is_not_reported_within_tolerance() {
    let mut r = Rig::new();
    r.ramp_to([61.0, 61.0, 61.0, 61.0]);
    let t0 = r.t;
    let mut i = fire_logic::Inputs::default();
    r.logic.step(t0 + 1, &i);
    // The contactor reports open within 100 ms of the command.
    i.feedback[0] = Digital::On;
    let o = r.logic.step(t0 + 90, &i);
    assert!(!o.troubles.contains(Trouble::ContactorMismatch));
}

// ---------------------------------------------------------------- requirement 6

#[test]
fn req6_authority_key_forces_battery_power_off_with_highest_priority() {
    let mut r = Rig::new();
    r.inp.authority = Digital::On;
    r.tick();
    assert!(has(&r.out, Action::ContactorOpen));
    assert!(r.out.supervisory.contains(Supervisory::Authority));
    // No command and no reset can close it.
    let _ = r.cmd(NetworkCommand::Acknowledge);
    let _ = r.cmd(NetworkCommand::TestMode { on: true });
    r.press(reset);
    assert!(has(&r.out, Action::ContactorOpen));
    r.inp.authority = Digital::Off;
    r.tick();
    assert!(!has(&r.out, Action::ContactorOpen));
}

// ---------------------------------------------------------------- requirement 7

#[test]
fn req7_reset_is_refused_while_hot_and_accepted_when_cool() {
    let mut r = Rig::new();
    r.ramp_to([62.0, 62.0, 62.0, 62.0]);
    r.run(1_000);
    assert_eq!(r.out.stage, Stage::Stage1);
    r.events();
    r.press(reset);
    assert_eq!(r.out.stage, Stage::Stage1);
    assert!(r.events().iter().any(|e| e.contains("local reset refused")));
    r.ramp_to([46.0, 30.0, 30.0, 30.0]);
    r.press(reset);
    assert_eq!(
        r.out.stage,
        Stage::Stage1,
        "46 C is above the reset threshold"
    );
    r.ramp_to([30.0, 30.0, 30.0, 30.0]);
    r.press(reset);
    assert_eq!(r.out.stage, Stage::Normal);
    assert!(r.out.actions.iter().next().is_none());
}

#[test]
fn req7_reset_is_refused_with_smoke_or_offgas_present() {
    let mut r = offgas_rig();
    r.smoke = Some(Digital::On);
    r.run(1_000);
    assert_eq!(r.out.stage, Stage::PreAlarm);
    r.press(reset);
    assert_eq!(r.out.stage, Stage::PreAlarm);
    r.smoke = Some(Digital::Off);
    r.offgas = Some(Analog::Value(110));
    r.run(1_000);
    r.press(reset);
    assert_eq!(r.out.stage, Stage::PreAlarm);
    r.offgas = Some(Analog::Value(0));
    r.run(1_000);
    r.press(reset);
    assert_eq!(r.out.stage, Stage::Normal);
}

#[test]
fn req7_network_commands_never_change_a_stage_or_an_action() {
    let mut r = Rig::new();
    to_stage3(&mut r);
    let before = r.out;
    let _ = r.cmd(NetworkCommand::Acknowledge);
    let _ = r.cmd(NetworkCommand::TimeSync {
        unix_ms: 1_700_000_000_000,
    });
    assert_eq!(
        r.cmd(NetworkCommand::TestMode { on: true }),
        Err(Refused::StageActive)
    );
    let _ = r.cmd(NetworkCommand::TestMode { on: false });
    assert_eq!(
        r.cmd(NetworkCommand::InhibitSensor {
            sensor: SourceId::Bms,
            duration_ms: 60_000
        }),
        Err(Refused::SensorNotFaulted)
    );
    r.tick();
    assert_eq!(r.out.stage, before.stage);
    assert_eq!(r.out.actions, before.actions);
}

#[test]
fn req7_test_mode_refused_while_stage_active_and_ended_by_real_detection() {
    let mut r = Rig::new();
    assert_eq!(r.cmd(NetworkCommand::TestMode { on: true }), Ok(()));
    r.tick();
    assert!(r.out.supervisory.contains(Supervisory::TestMode));
    r.ramp_to([52.0, 52.0, 52.0, 52.0]);
    r.run(1_000);
    assert_eq!(r.out.stage, Stage::PreAlarm);
    assert!(!r.out.supervisory.contains(Supervisory::TestMode));
    assert!(!r.logic.test_mode());
    assert!(
        r.events()
            .iter()
            .any(|e| e.contains("test mode ended by a real detection"))
    );
    assert_eq!(
        r.cmd(NetworkCommand::TestMode { on: true }),
        Err(Refused::StageActive)
    );
}

#[test]
fn req7_inhibit_only_one_faulted_sensor_for_a_bounded_time_and_it_is_a_trouble() {
    // Hazard: a network command silencing a healthy sensor, or a fault report vanishing with
    // nobody knowing the sensor is out.
    let mut r = Rig::new();
    let inhibit = |sensor, duration_ms| NetworkCommand::InhibitSensor {
        sensor,
        duration_ms,
    };
    assert_eq!(
        r.cmd(inhibit(SourceId::RackTemp2, 60_000)),
        Err(Refused::SensorNotFaulted)
    );
    r.temps[2] = Some(Analog::Fault);
    r.temps[3] = Some(Analog::Fault);
    r.tick();
    assert_eq!(
        r.cmd(inhibit(SourceId::RackTemp2, 0)),
        Err(Refused::BadDuration)
    );
    assert_eq!(
        r.cmd(inhibit(SourceId::RackTemp2, u32::MAX)),
        Err(Refused::BadDuration)
    );
    assert_eq!(
        r.cmd(inhibit(SourceId::OffGas, 1_000)),
        Err(Refused::SensorNotFitted)
    );
    assert_eq!(r.cmd(inhibit(SourceId::RackTemp2, 60_000)), Ok(()));
    assert_eq!(
        r.cmd(inhibit(SourceId::Camera, 60_000)),
        Err(Refused::AnotherSensorInhibited)
    );
    r.tick();
    assert!(r.out.troubles.contains(Trouble::SensorInhibited));
    assert!(!r.out.troubles.contains(Trouble::RackTemp2Invalid));
    assert!(r.out.troubles.contains(Trouble::CameraInvalid));
    assert_eq!(
        r.logic.source_invalidity(SourceId::RackTemp2),
        Some(Invalidity::Inhibited)
    );
    r.run(60_000);
    assert!(!r.out.troubles.contains(Trouble::SensorInhibited));
    assert!(r.out.troubles.contains(Trouble::RackTemp2Invalid));
}

#[test]
fn req7_acknowledge_silences_the_buzzer_until_the_next_event() {
    let mut r = Rig::new();
    r.ramp_to([52.0, 52.0, 52.0, 52.0]);
    r.run(1_000);
    assert!(r.out.buzzer);
    r.cmd(NetworkCommand::Acknowledge).unwrap();
    r.tick();
    assert!(!r.out.buzzer);
    assert_eq!(r.out.stage, Stage::PreAlarm);
    r.ramp_to([61.0, 61.0, 61.0, 61.0]);
    r.run(1_000);
    assert!(r.out.buzzer, "a new stage sounds again");
}

#[test]
fn req7_time_sync_sets_the_wall_clock_only() {
    let mut r = Rig::new();
    assert_eq!(
        r.cmd(NetworkCommand::TimeSync { unix_ms: -5 }),
        Err(Refused::BadTime)
    );
    r.cmd(NetworkCommand::TimeSync {
        unix_ms: 1_700_000_000_000,
    })
    .unwrap();
    assert_eq!(r.logic.wall_clock_ms(r.t + 1_000), Some(1_700_000_001_000));
}

// ---------------------------------------------------------------- requirement 8

#[test]
fn req8_manual_only_blocks_automatic_agent_and_gas_keeps_power_cut_and_reports_bypass() {
    // Hazard: agent or gas released automatically on people in the room.
    let mut r = Rig::new();
    r.inp.manual_only = Digital::On;
    r.tick();
    assert!(r.out.supervisory.contains(Supervisory::ManualOnlyBypass));
    to_stage3(&mut r);
    assert!(has(&r.out, Action::ContactorOpen) && has(&r.out, Action::BlanketDrop));
    assert!(!has(&r.out, Action::AgentRelease));
    r.run(121_000 + 300_000 + 60_000);
    assert_eq!(r.out.stage, Stage::Stage5);
    assert!(!has(&r.out, Action::GasRelease));
    assert!(
        !has(&r.out, Action::GasWarning),
        "no automatic warning either"
    );
    assert!(!has(&r.out, Action::AgentRelease));
    assert!(r.out.supervisory.contains(Supervisory::ManualOnlyBypass));
    // The rack's manual release releases the agent at once, and only the agent.
    let o = r.press(manual);
    assert!(o.actions.contains(Action::AgentRelease));
    assert!(!o.actions.contains(Action::GasRelease));
    assert!(!o.actions.contains(Action::GasWarning));
    // The room gas release starts the full pre-discharge warning, even in manual-only mode.
    let o = r.press(room_gas);
    assert!(o.actions.contains(Action::GasWarning));
    assert!(!o.actions.contains(Action::GasRelease));
    r.run(28_000);
    assert!(!has(&r.out, Action::GasRelease));
    r.run(2_000);
    assert!(has(&r.out, Action::GasRelease));
}

#[test]
fn req8_faulted_manual_only_switch_counts_as_occupied() {
    let mut r = Rig::new();
    r.inp.manual_only = Digital::Fault;
    to_stage3(&mut r);
    assert!(!has(&r.out, Action::AgentRelease));
    assert!(r.out.troubles.contains(Trouble::SwitchFault));
}

// ---------------------------------------------------------------- requirement 9

#[test]
fn req9_event_log_never_drops_an_alarm_and_evicts_the_oldest_trouble_first() {
    let mut log = EventLog::new(0);
    log.push(
        1,
        EventKind::StageEntered {
            stage: Stage::Stage1,
            cause: fire_logic::Cause::ManualRelease,
        },
    );
    for t in 0..(EVENT_LOG_CAPACITY as u64 + 40) {
        log.push(10 + t, EventKind::TroubleRaised(Trouble::FeedbackFault));
        log.push(10 + t, EventKind::SupervisoryRaised(Supervisory::OffGas));
    }
    log.push(500, EventKind::GasReleased);
    assert_eq!(log.dropped_alarms(), 0);
    let alarms: Vec<_> = log
        .iter()
        .filter(|e| e.class() == EventClass::Alarm)
        .collect();
    assert_eq!(alarms.len(), 2);
    assert_eq!(alarms[0].t_ms, 1);
    // The troubles went first: only supervisory events remain besides the alarms.
    assert!(log.iter().all(|e| e.class() != EventClass::Trouble));
    assert_eq!(log.len(), EVENT_LOG_CAPACITY);
    // Sequence numbers are consecutive in the log order.
    let seqs: Vec<u32> = log.iter().map(|e| e.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn req9_full_log_of_higher_class_drops_the_new_lower_event() {
    let mut log = EventLog::new(0);
    for t in 0..EVENT_LOG_CAPACITY as u64 {
        log.push(t, EventKind::AgentReleased);
    }
    log.push(100, EventKind::TroubleRaised(Trouble::SwitchFault));
    assert_eq!(log.len(), EVENT_LOG_CAPACITY);
    assert!(log.iter().all(|e| e.class() == EventClass::Alarm));
    assert_eq!(log.dropped_alarms(), 0);
    assert_eq!(log.dropped(), 1);
}

#[test]
fn req9_every_transition_is_logged_with_its_time() {
    let mut r = Rig::new();
    to_stage3(&mut r);
    let t3 = r.t;
    let mut stages = Vec::new();
    while let Some(e) = r.logic.take_event() {
        if let EventKind::StageEntered { stage, .. } = e.kind {
            stages.push((stage, e.t_ms));
        }
    }
    let names: Vec<Stage> = stages.iter().map(|s| s.0).collect();
    assert_eq!(
        names,
        [Stage::PreAlarm, Stage::Stage1, Stage::Stage2, Stage::Stage3]
    );
    assert!(stages.iter().all(|s| s.1 > 0 && s.1 <= t3));
    assert!(stages.windows(2).all(|w| w[0].1 <= w[1].1));
}

// ---------------------------------------------------------------- requirement 10

#[test]
fn req10_default_configuration_is_valid_and_has_the_seed_thresholds() {
    let c = Config::default();
    assert_eq!(c.validate(), Ok(()));
    assert_eq!((c.stage1, c.stage2, c.stage3), (600, 680, 800));
    assert_eq!(c.gas_warning_ms, 30_000);
    assert_eq!(c.isolate_after_ms, 60_000);
    assert_eq!(c.feedback_mismatch_ms, 100);
    assert_eq!((c.offgas_supervisory, c.offgas_stage1), (100, 250));
}

#[test]
fn req10_invalid_configuration_is_rejected_with_a_reason_never_clamped() {
    let cases: Vec<(fn(&mut Config), &str)> = vec![
        (|c| c.stage2 = 590, "stage1_c"),
        (|c| c.stage3 = 600, "stage2_c"),
        (|c| c.gas_warning_ms = 61_000, "gas_warning_ms"),
        (|c| c.confirm_samples = 0, "confirm_samples"),
        (|c| c.confirm_samples = 3, "confirm_samples"), // 3 x 500 ms > 1 s
        (|c| c.open_code = 500, "open_code_c"),
        (|c| c.reset_max = 550, "reset_max_c"),
        (|c| c.feedback_mismatch_ms = 250, "feedback_mismatch_ms"),
        (
            |c| {
                c.corroboration.second_temperature = false;
                c.corroboration.smoke = false;
            },
            "corroboration",
        ),
        (
            |c| {
                c.fitted.bms = false;
                c.fitted.rack_temp1 = false;
                c.fitted.rack_temp2 = false;
                c.fitted.camera = false;
            },
            "fitted",
        ),
    ];
    for (mutate, field) in cases {
        let mut c = Config::default();
        mutate(&mut c);
        let err = c.validate().expect_err(field);
        assert_eq!(err.field, field, "{err}");
        assert!(!err.reason.is_empty());
        assert!(RackLogic::new(c).is_err(), "new() must refuse too");
        // Never clamped: the configuration is untouched.
        let mut again = Config::default();
        mutate(&mut again);
        assert_eq!(c, again);
    }
}
