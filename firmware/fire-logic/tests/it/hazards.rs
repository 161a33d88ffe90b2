//! One test (or more) per hazard of `firmware/HAZARDS.md`, named `hN_*` after it. Each test
//! builds the situation the hazard describes and checks that the logic fails toward safety.
#![allow(clippy::field_reassign_with_default)]

use crate::common;

use common::{PERIOD, Rig, c, manual, reset, room_gas};
use fire_logic::{
    Action, Analog, Cause, Config, Digital, EventKind, Invalidity, NetworkCommand, NotFallen,
    RackLogic, Refused, ResetRefusal, SourceId, Stage, Supervisory, Trouble,
};

fn has(o: &fire_logic::Outputs, a: Action) -> bool {
    o.actions.contains(a)
}

fn offgas_rig() -> Rig {
    let mut cfg = Config::default();
    cfg.fitted.offgas = true;
    Rig::with(cfg)
}

/// Stage 3 with every sensor agreeing at about 85 C and smoke; returns in the entering cycle.
fn to_stage3(r: &mut Rig) {
    r.smoke = Some(Digital::On);
    r.ramp_to([85.0, 85.0, 84.0, 86.0]);
    r.run_until(2_000, |o| o.stage == Stage::Stage3);
}

/// When `stage` was entered, from the (undrained) event log.
fn entered_at(r: &Rig, stage: Stage) -> u64 {
    r.logic
        .events()
        .iter()
        .find(|e| matches!(e.kind, EventKind::StageEntered { stage: s, .. } if s == stage))
        .map(|e| e.t_ms)
        .expect("stage entered")
}

/// Every event of the rig's log, drained.
fn kinds(r: &mut Rig) -> Vec<EventKind> {
    let mut v = Vec::new();
    while let Some(e) = r.logic.take_event() {
        v.push(e.kind);
    }
    v
}

// ------------------------------------------------------- 1: sensors destroyed after a stage

#[test]
fn h1_sensors_burnt_after_agent_still_get_coolant_then_gas() {
    // Hazard: the rack transmitters burn open after the agent; stages 4 and 5 used to demand a
    // valid temperature, so coolant and room gas never came.
    let mut r = Rig::new();
    to_stage3(&mut r);
    let t3 = r.t;
    r.run(5_000);
    let open = Config::default().open_code;
    r.temps = [Some(Analog::Value(open)); 4]; // every transmitter fails open
    r.smoke = Some(Digital::Fault); // the smoke detector burns too
    r.run_until(200_000, |o| o.stage == Stage::Stage4);
    assert_eq!(r.t - t3, 120_000, "coolant exactly at the delay");
    assert!(has(&r.out, Action::CoolantOn));
    let t4 = r.t;
    r.run_until(400_000, |o| o.stage == Stage::Stage5);
    assert_eq!(r.t - t4, 300_000);
    assert!(has(&r.out, Action::GasWarning) && !has(&r.out, Action::GasRelease));
    r.run_until(40_000, |o| o.actions.contains(Action::GasRelease));
    assert!(r.t - t4 >= 300_000 + 30_000, "after the full warning");
    assert!(r.out.troubles.contains(Trouble::NoValidTemperature));
}

#[test]
fn h1_source_that_set_the_peak_lost_while_hot_counts_as_not_fallen() {
    // Hazard: the camera at 200 C sets the peak and faults; a rack sensor still reads 150 C
    // with smoke; compared with the lost 200 C peak the fire "fell" and escalation stopped.
    let mut r = Rig::new();
    r.smoke = Some(Digital::On);
    r.ramp_to([150.0, 150.0, 150.0, 200.0]);
    r.run_until(2_000, |o| o.stage == Stage::Stage3);
    let t3 = entered_at(&r, Stage::Stage3);
    r.run(10_000);
    r.temps[3] = Some(Analog::Fault); // the camera is destroyed at 200 C
    r.run_until(130_000, |o| o.stage == Stage::Stage4);
    assert_eq!(r.t - t3, 120_000);
    let ev = kinds(&mut r);
    assert!(
        ev.iter().any(|k| matches!(
            k,
            EventKind::StageEntered {
                stage: Stage::Stage4,
                cause: Cause::NotFallen(NotFallen::Hot {
                    now: 1_500,
                    peak: 1_500,
                    ..
                })
            }
        )),
        "{ev:?}"
    );
}

#[test]
fn h1_a_source_lost_while_hot_keeps_escalating_even_when_the_others_cool() {
    // Hazard: the sensor nearest the fire is destroyed at 200 C while the sensors farther
    // away cool down: "fallen" would stop coolant while the fire may still burn.
    let mut r = Rig::new();
    r.smoke = Some(Digital::On);
    r.ramp_to([150.0, 150.0, 150.0, 200.0]);
    r.run_until(2_000, |o| o.stage == Stage::Stage3);
    r.ramp_to([90.0, 90.0, 90.0, 200.0]); // fallen 60 C below their own peaks
    r.temps[3] = Some(Analog::Fault); // the camera is destroyed at 200 C
    r.run_until(130_000, |o| o.stage == Stage::Stage4);
    let ev = kinds(&mut r);
    assert!(
        ev.iter().any(|k| matches!(
            k,
            EventKind::StageEntered {
                stage: Stage::Stage4,
                cause: Cause::NotFallen(NotFallen::LostWhileHot {
                    source: SourceId::Camera,
                    last: 2_000
                })
            }
        )),
        "{ev:?}"
    );
}

#[test]
fn h1_a_fire_that_falls_with_every_sensor_valid_gets_no_coolant() {
    // The other side of the rule: valid evidence that the fire fell stops escalation.
    let mut r = Rig::new();
    to_stage3(&mut r);
    r.smoke = Some(Digital::Off);
    r.ramp_to([70.0, 70.0, 70.0, 70.0]);
    r.run(400_000);
    assert_eq!(r.out.stage, Stage::Stage3);
}

#[test]
fn h1_every_temperature_lost_in_stage2_escalates_to_the_agent() {
    // Hazard: the fire destroys every temperature sensor between the patch (68 C) and the
    // agent (80 C): escalation stopped at stage 2 for ever.
    let mut r = Rig::new();
    r.smoke = Some(Digital::On);
    r.ramp_to([75.0, 74.0, 74.0, 76.0]);
    r.run_until(2_000, |o| o.stage == Stage::Stage2);
    r.temps = [Some(Analog::Fault); 4];
    r.run(2_000);
    assert_eq!(r.out.stage, Stage::Stage3);
    assert!(has(&r.out, Action::AgentRelease));
    let ev = kinds(&mut r);
    assert!(ev.iter().any(|k| matches!(
        k,
        EventKind::StageEntered {
            stage: Stage::Stage3,
            cause: Cause::EvidenceLost { .. }
        }
    )));
}

// ------------------------------------------------------- 2: arbitration hides a real fire

#[test]
fn h2_partner_stuck_at_28_does_not_exclude_the_hot_sensor_with_smoke() {
    // Hazard: rack_temp1 stuck at a plausible 28 C; rack_temp2 at 110 C with smoke was the one
    // "farther from the mean" (BMS and camera see little of this fire) and was excluded: no
    // power cut at all.
    let mut r = Rig::new();
    r.set(1, 28.0);
    r.smoke = Some(Digital::On);
    r.ramp_to([26.0, 28.0, 110.0, 27.0]);
    r.run(2_000);
    assert_eq!(
        r.logic.source_invalidity(SourceId::RackTemp1),
        Some(Invalidity::Disagree),
        "the stuck sensor is the suspect"
    );
    assert_eq!(r.logic.source_invalidity(SourceId::RackTemp2), None);
    assert!(r.out.troubles.contains(Trouble::RackTemp1Invalid));
    assert!(!r.out.troubles.contains(Trouble::RackTemp2Invalid));
    assert_eq!(r.out.stage, Stage::Stage3, "110 C with smoke: agent");
    assert!(has(&r.out, Action::AgentRelease));
}

#[test]
fn h2_the_sensor_nearest_the_fire_wins_the_arbitration() {
    // Hazard: rack_temp1 at 95 C nearest the fire, rack_temp2 at 70 C, BMS and camera about
    // 70 C, smoke: the hot one was excluded and the logic stopped at stage 2.
    let mut r = Rig::new();
    r.smoke = Some(Digital::On);
    r.ramp_to([70.0, 95.0, 70.0, 72.0]);
    r.run(2_000);
    // Both partners read above the pre-alarm level: the difference is the fire's gradient,
    // neither is a suspect, both count.
    assert_eq!(r.logic.source_invalidity(SourceId::RackTemp1), None);
    assert_eq!(r.logic.source_invalidity(SourceId::RackTemp2), None);
    assert_eq!(r.out.governing, Some(c(95.0)));
    assert_eq!(r.out.stage, Stage::Stage3);
}

#[test]
fn h2_a_camera_that_sees_the_fire_agrees_with_the_hotter_partner() {
    // Without smoke: the camera at 100 C (independent of the rack sensors) says it is hot.
    let mut r = Rig::new();
    r.ramp_to([30.0, 28.0, 105.0, 100.0]);
    r.run(2_000);
    assert_eq!(
        r.logic.source_invalidity(SourceId::RackTemp1),
        Some(Invalidity::Disagree)
    );
    assert_eq!(r.out.stage, Stage::Stage3, "corroborated by the camera");
}

#[test]
fn h2_without_any_hot_evidence_the_drifting_sensor_is_the_suspect() {
    // The other side: one rack sensor drifts to 75 C while BMS, camera and partner read 25 C
    // and there is no smoke: that sensor is named, excluded, and nothing is cut.
    let mut r = Rig::new();
    r.ramp_to([25.0, 75.0, 25.0, 25.0]);
    r.run(2_000);
    assert_eq!(
        r.logic.source_invalidity(SourceId::RackTemp1),
        Some(Invalidity::Disagree)
    );
    assert_eq!(r.out.stage, Stage::Normal);
}

// ------------------------------------------------------- 3: the jump filter rejects a flame

#[test]
fn h3_a_flame_flickering_12_c_around_160_c_is_followed_not_rejected() {
    // Hazard: a camera on a flame flickering +-12 C around 160 C was rejected sample after
    // sample as "implausible jumps": the rack never left pre-alarm.
    let mut r = Rig::new();
    r.smoke = Some(Digital::On);
    r.ramp_to([30.0, 30.0, 30.0, 160.0]);
    let mut up = true;
    for _ in 0..40 {
        r.set(3, if up { 172.0 } else { 148.0 });
        up = !up;
        r.tick();
        assert_eq!(r.logic.source_invalidity(SourceId::Camera), None);
    }
    assert_eq!(r.out.stage, Stage::Stage3);
    assert!(has(&r.out, Action::AgentRelease));
    assert!(!r.out.troubles.contains(Trouble::CameraInvalid));
}

// ------------------------------------------------------- 4: common-cause faults

fn one_adc() -> Config {
    let mut cfg = Config::default();
    cfg.common_cause[SourceId::RackTemp1 as usize] = 1;
    cfg.common_cause[SourceId::RackTemp2 as usize] = 1;
    cfg
}

/// Both rack transmitters drift from 25 C to 87 C (a sagging ADC reference), nothing else.
fn common_mode_drift(cfg: Config) -> Rig {
    let mut r = Rig::with(cfg);
    for step in 0..=620 {
        let v = 25.0 + f64::from(step) * 0.1;
        r.set(1, v);
        r.set(2, v);
        r.tick();
    }
    r.run(10_000);
    r
}

#[test]
fn h4_common_mode_drift_of_one_adc_never_corroborates_itself() {
    // Hazard: two transmitters on one ADC and supply read 87 C at a true 25 C and
    // "corroborated" each other: agent with no smoke and no fire.
    let r = common_mode_drift(one_adc());
    assert_eq!(r.out.stage, Stage::Stage1, "power cut on one cause only");
    assert!(!has(&r.out, Action::PatchFire));
    assert!(!has(&r.out, Action::AgentRelease));
    // Why the declaration matters: undeclared, the same drift releases agent.
    let r = common_mode_drift(Config::default());
    assert!(has(&r.out, Action::AgentRelease));
}

#[test]
fn h4_an_independent_source_still_corroborates_a_member_of_a_group() {
    let mut r = Rig::with(one_adc());
    r.ramp_to([70.0, 85.0, 84.0, 30.0]);
    r.run(2_000);
    assert_eq!(r.out.stage, Stage::Stage3, "the BMS (68 C+) is independent");
}

#[test]
fn h4_a_configuration_without_independent_corroboration_is_rejected() {
    let mut cfg = one_adc();
    cfg.fitted.bms = false;
    cfg.fitted.camera = false;
    cfg.common_cause[SourceId::Smoke as usize] = 1; // smoke on the same module
    let e = cfg.validate().unwrap_err();
    assert_eq!(e.field, "corroboration", "{e}");
    cfg.common_cause[SourceId::Smoke as usize] = 2;
    assert_eq!(cfg.validate(), Ok(()));
    cfg.common_cause[SourceId::Smoke as usize] = 16;
    assert_eq!(cfg.validate().unwrap_err().field, "common_cause");
}

#[test]
fn h4_undeclared_transmitters_that_could_corroborate_each_other_are_reported() {
    // Hazard: `Config::default()` declares no group, so a rack whose two transmitters share an
    // ADC lets them corroborate each other (agent on a reference sag) unless somebody looks.
    // The deployment paths (edge agent loader, fire-replay) act on this report.
    let mut cfg = Config::default();
    cfg.fitted.bms = false;
    cfg.fitted.camera = false;
    cfg.fitted.smoke = false;
    let p = cfg.undeclared_partner().expect("undeclared pair reported");
    assert_eq!((p.a, p.b), (SourceId::RackTemp1, SourceId::RackTemp2));
    assert!(p.only_corroboration, "nothing else can corroborate them");
    assert_eq!(cfg.undeclared_pairs().count(), 1);
    // With an independent smoke detector the pair is still reported (it can still corroborate
    // itself on a common-mode drift), but not as the only corroboration.
    cfg.fitted.smoke = true;
    let p = cfg.undeclared_partner().unwrap();
    assert!(!p.only_corroboration);
    // One group declared, the other not: still undeclared.
    cfg.common_cause[SourceId::RackTemp1 as usize] = 1;
    assert!(cfg.undeclared_partner().is_some());
    // Declared: one group (never corroborate each other), or two (declared independent).
    cfg.common_cause[SourceId::RackTemp2 as usize] = 1;
    assert_eq!(cfg.undeclared_partner(), None);
    cfg.common_cause[SourceId::RackTemp2 as usize] = 2;
    assert_eq!(cfg.undeclared_partner(), None);
    // The rule that would let them corroborate is off: nothing to declare.
    cfg.common_cause = [0; 6];
    cfg.corroboration.second_temperature = false;
    assert_eq!(cfg.undeclared_pairs().count(), 0);
    // The default fits four temperature sources, none declared: six pairs.
    assert_eq!(Config::default().undeclared_pairs().count(), 6);
}

// ------------------------------------------------------- 5: room gas without warning

#[test]
fn h5_manual_room_gas_release_in_manual_only_mode_follows_the_full_warning() {
    // Hazard: with manual-only on (people in the room) the warning was off and the rack's
    // manual release released the room gas in the same cycle.
    let mut r = Rig::new();
    r.inp.manual_only = Digital::On;
    r.run(1_000);
    let o = r.press(room_gas);
    assert_eq!(o.stage, Stage::Stage5);
    assert!(has(&o, Action::GasWarning));
    assert!(!has(&o, Action::GasRelease));
    assert!(
        !has(&o, Action::AgentRelease),
        "manual-only: agent needs its own release"
    );
    let start = r.t - PERIOD;
    // The hold switch holds it and restarts the warning in full.
    r.run(20_000);
    r.inp.hold = Digital::On;
    r.run(60_000);
    assert!(!has(&r.out, Action::GasRelease));
    assert!(has(&r.out, Action::GasWarning));
    r.inp.hold = Digital::Off;
    let released = r.t;
    r.run_until(40_000, |o| o.actions.contains(Action::GasRelease));
    assert!(r.t - released >= 30_000, "a full warning after the hold");
    assert!(r.t - start >= 110_000);
}

#[test]
fn h5_rack_manual_release_never_floods_the_room() {
    let mut r = Rig::new();
    r.inp.manual_only = Digital::On;
    let o = r.press(manual);
    assert_eq!(o.stage, Stage::Stage3);
    assert!(has(&o, Action::AgentRelease));
    r.run(600_000);
    assert!(!has(&r.out, Action::GasWarning) && !has(&r.out, Action::GasRelease));
}

#[test]
fn h5_a_faulted_hold_line_holds_the_gas() {
    // Hazard (found in review): a person holds the abort switch but its line is cut: the
    // gas was released as if nobody held it.
    let mut r = Rig::new();
    r.inp.hold = Digital::Fault;
    r.press(room_gas);
    r.run(120_000);
    assert!(has(&r.out, Action::GasWarning));
    assert!(!has(&r.out, Action::GasRelease));
    assert!(r.out.troubles.contains(Trouble::SwitchFault));
}

// ------------------------------------------------------- 6: a network command changes actuation

#[test]
fn h6_inhibit_ends_when_the_sensor_recovers_and_never_hides_a_fire() {
    // Hazard: an inhibit accepted on one fault sample stayed in force after the sensor
    // recovered; the sensor then heated to 95 C with smoke and the rack never got agent.
    let mut cfg = Config::default();
    cfg.fitted.bms = false;
    cfg.fitted.camera = false;
    cfg.fitted.rack_temp2 = false;
    let mut with = Rig::with(cfg);
    let mut without = Rig::with(cfg);
    for r in [&mut with, &mut without] {
        r.temps[1] = Some(Analog::Fault);
        r.tick();
    }
    assert_eq!(
        with.cmd(NetworkCommand::InhibitSensor {
            sensor: SourceId::RackTemp1,
            duration_ms: 8 * 3_600_000,
        }),
        Ok(())
    );
    for r in [&mut with, &mut without] {
        r.set(1, 25.0);
        r.tick();
    }
    assert_eq!(with.logic.source_invalidity(SourceId::RackTemp1), None);
    assert!(
        kinds(&mut with)
            .iter()
            .any(|k| matches!(k, EventKind::InhibitEnded { .. }))
    );
    for r in [&mut with, &mut without] {
        r.smoke = Some(Digital::On);
        r.ramp_to([25.0, 95.0, 25.0, 25.0]);
        r.run(2_000);
    }
    assert_eq!(with.out.stage, Stage::Stage3);
    assert!(has(&with.out, Action::AgentRelease));
    assert_eq!(with.out.actions, without.out.actions);
}

#[test]
fn h6_inhibit_is_refused_for_a_sensor_that_gives_a_reading() {
    let mut r = Rig::new();
    r.ramp_to([25.0, 75.0, 25.0, 25.0]); // rack_temp1 excluded by arbitration, but reading
    r.run(2_000);
    assert_eq!(
        r.cmd(NetworkCommand::InhibitSensor {
            sensor: SourceId::RackTemp1,
            duration_ms: 60_000
        }),
        Err(Refused::SensorNotFaulted)
    );
}

#[test]
fn h6_an_inhibited_sensor_never_counts_differently() {
    // Inhibit changes the report only: the sensor stays invalid while inhibited, exactly as
    // without the command, so the loss of every temperature still isolates the battery.
    let mut r = Rig::new();
    r.temps = [Some(Analog::Fault); 4];
    r.tick();
    r.cmd(NetworkCommand::InhibitSensor {
        sensor: SourceId::Bms,
        duration_ms: 3_600_000,
    })
    .unwrap();
    r.run(61_000);
    assert!(
        r.out
            .supervisory
            .contains(Supervisory::IsolatedNoTemperature)
    );
}

// ------------------------------------------------------- 7: reset with a failed hot sensor

/// Stage 1 at 62 C, then cooling to 40 C except the camera, which fails open while hottest.
fn hottest_fails_open() -> Rig {
    let mut r = Rig::new();
    r.ramp_to([62.0, 62.0, 62.0, 66.0]);
    r.run(1_000);
    assert_eq!(r.out.stage, Stage::Stage1);
    r.ramp_to([40.0, 40.0, 40.0, 66.0]);
    r.temps[3] = Some(Analog::Value(Config::default().open_code));
    r.run(1_000);
    r
}

#[test]
fn h7_reset_refused_when_the_hottest_sensor_just_failed_open() {
    // Hazard: a reset was accepted when the hottest sensor had just gone open-circuit and the
    // others read 40 C.
    let mut r = hottest_fails_open();
    kinds(&mut r);
    r.press(reset);
    assert_eq!(r.out.stage, Stage::Stage1);
    assert!(
        kinds(&mut r).contains(&EventKind::ResetRefused(ResetRefusal::SourceInvalid {
            source: SourceId::Camera
        }))
    );
}

#[test]
fn h7_holding_the_reset_key_takes_a_dead_sensor_out_of_service_with_an_audit_record() {
    let mut r = hottest_fails_open();
    kinds(&mut r);
    r.inp.reset = Digital::On;
    r.run(9_500);
    assert_eq!(r.out.stage, Stage::Stage1, "not before 10 s");
    r.run(1_000);
    assert_eq!(r.out.stage, Stage::Normal);
    let ev = kinds(&mut r);
    assert!(
        ev.iter().any(|k| matches!(
            k,
            EventKind::ResetOverride { out_of_service } if out_of_service.contains(SourceId::Camera)
                && !out_of_service.contains(SourceId::Bms)
        )),
        "{ev:?}"
    );
    assert!(
        r.out.troubles.contains(Trouble::CameraInvalid),
        "still reported"
    );
}

#[test]
fn h7_the_key_held_never_resets_while_a_valid_reading_is_hot() {
    let mut r = hottest_fails_open();
    r.ramp_to([50.0, 40.0, 40.0, 0.0]);
    r.temps[3] = Some(Analog::Fault);
    r.inp.reset = Digital::On;
    r.run(30_000);
    assert_eq!(r.out.stage, Stage::Stage1);
}

#[test]
fn h7_reset_judges_the_raw_reading_not_the_rate_limited_one() {
    // A reading that just jumped from 30 C to 60 C is still being followed (rate limit), but
    // it blocks the reset at once.
    let mut r = Rig::new();
    r.ramp_to([62.0, 62.0, 62.0, 62.0]);
    r.run(1_000);
    r.ramp_to([30.0, 30.0, 30.0, 30.0]);
    r.set(0, 60.0);
    r.press(reset);
    assert_eq!(r.out.stage, Stage::Stage1);
}

// ------------------------------------------------------- 8: off-gas without temperature rise

#[test]
fn h8_sustained_offgas_below_the_stage1_level_cuts_the_power() {
    // Hazard: 24 % LFL for 30 minutes never disconnected the battery (stage 1 needed 25 %).
    // The off-gas creeps up (2.4 % LFL per minute, too slow for the rate-of-rise rule).
    let mut r = offgas_rig();
    let mut at_level = None;
    for step in 0..=1_200 {
        let v = (step / 5).min(240); // +0.1 % LFL every 2.5 s, up to 24 %
        r.offgas = Some(Analog::Value(v));
        r.tick();
        if v >= 100 && at_level.is_none() {
            at_level = Some(r.t);
        }
        if r.out.stage >= Stage::Stage1 {
            break;
        }
    }
    assert_eq!(r.out.stage, Stage::Stage1);
    let waited = r.t - at_level.unwrap();
    assert!((60_000..=62_000).contains(&waited), "{waited}");
    assert!(has(&r.out, Action::ContactorOpen) && has(&r.out, Action::BlanketDrop));
    let ev = kinds(&mut r);
    assert!(
        ev.iter().any(|k| matches!(
            k,
            EventKind::StageEntered {
                stage: Stage::Stage1,
                cause: Cause::OffGasSustained { value: Some(v) }
            } if *v < 250
        ) && k.class() == fire_logic::EventClass::Alarm),
        "{ev:?}"
    );
}

#[test]
fn h8_offgas_rising_fast_cuts_the_power_before_the_sustained_time() {
    let mut r = offgas_rig();
    r.run(61_000);
    for step in 0..=80 {
        // 0 -> 16 % LFL within 40 s: a venting cell.
        r.offgas = Some(Analog::Value(step * 2));
        r.tick();
    }
    r.run_until(65_000, |o| o.stage == Stage::Stage1);
    let ev = kinds(&mut r);
    assert!(
        ev.iter().any(|k| matches!(
            k,
            EventKind::StageEntered {
                stage: Stage::Stage1,
                cause: Cause::OffGasRising { .. }
            }
        )),
        "{ev:?}"
    );
}

#[test]
fn h8_smoke_and_offgas_with_every_temperature_failed_reach_stage1() {
    // Hazard: every temperature source failed, smoke and off-gas present: pre-alarm only.
    let mut r = offgas_rig();
    r.temps = [Some(Analog::Fault); 4];
    r.smoke = Some(Digital::On);
    r.offgas = Some(Analog::Value(120));
    r.run(1_500);
    assert_eq!(r.out.stage, Stage::Stage1);
}

#[test]
fn h8_smoke_with_no_valid_temperature_reaches_stage1() {
    let mut r = Rig::new();
    r.temps = [Some(Analog::Fault); 4];
    r.smoke = Some(Digital::On);
    r.run(1_500);
    assert_eq!(r.out.stage, Stage::Stage1);
}

#[test]
fn h8_an_offgas_detector_lost_while_high_keeps_its_timer() {
    let mut r = offgas_rig();
    r.offgas = Some(Analog::Value(150));
    r.run(30_000);
    r.offgas = Some(Analog::Fault);
    r.run(31_000);
    assert_eq!(r.out.stage, Stage::Stage1);
}

// ------------------------------------------------------- 9: time and restarts

#[test]
fn h9_the_logic_keeps_its_delays_across_the_u32_millisecond_wrap() {
    // Hazard: a u32 millisecond counter wraps after 49.7 days and the cycle loop stalls.
    let start = u64::from(u32::MAX) - 60_000;
    let mut l = RackLogic::new(Config::default()).unwrap();
    let mut hot = fire_logic::Inputs {
        bms_max: Analog::Value(850),
        rack_temp1: Analog::Value(850),
        rack_temp2: Analog::Value(850),
        camera_max: Analog::Value(850),
        smoke: Digital::On,
        ..Default::default()
    };
    hot.feedback[0] = Digital::On;
    let mut t = start;
    let mut t3 = None;
    while t < start + 200_000 {
        let o = l.step(t, &hot);
        if o.stage == Stage::Stage3 && t3.is_none() {
            t3 = Some(t);
        }
        if o.stage == Stage::Stage4 {
            assert_eq!(t - t3.unwrap(), 120_000);
            assert!(t > u64::from(u32::MAX), "crossed the wrap");
            return;
        }
        t += PERIOD;
    }
    panic!("no coolant across the wrap");
}

#[test]
fn h9_a_reboot_loop_shorter_than_the_coolant_delay_still_gets_coolant() {
    // Hazard: every restore restarted the stage timers, so a controller rebooting every 30 s
    // never reached the 120 s coolant delay.
    let mut r = Rig::new();
    to_stage3(&mut r);
    let t3 = r.t;
    let mut restarts = 0u64;
    while r.out.stage == Stage::Stage3 {
        assert!(r.t - t3 < 200_000, "no coolant in a reboot loop");
        r.run(30_000);
        r.restart();
        restarts += 1;
    }
    let waited = r.t - t3;
    assert!(
        waited >= 120_000 - restarts * 1_000 && waited <= 121_000,
        "{waited} ms, {restarts} restarts"
    );
}

#[test]
fn h9_a_reboot_loop_faster_than_the_checkpoint_still_makes_progress() {
    let mut r = Rig::new();
    to_stage3(&mut r);
    for _ in 0..200 {
        r.tick(); // one cycle, then the controller reboots again
        r.restart();
        if r.out.stage >= Stage::Stage4 {
            return;
        }
    }
    r.tick();
    assert!(
        r.out.stage >= Stage::Stage4,
        "coolant after at most 120 restarts"
    );
}

#[test]
fn h9_a_reboot_loop_with_burnt_silent_sensors_still_gets_coolant_and_gas() {
    // Hazard (found by the liveness property): after each restart a silent sensor is only
    // "pending" for three sample periods; a reboot loop faster than that kept every burnt
    // sensor pending and the coolant decision waiting for ever.
    let mut r = Rig::new();
    to_stage3(&mut r);
    let t3 = r.t;
    r.temps = [None; 4]; // the transmitters burn: silence
    r.smoke = None;
    // One boot long enough to see them go stale (three sample periods) is all it takes; a
    // loop that starts at the very instant they die and never lasts that long leaves no
    // evidence of their death (HAZARDS.md, residual risk).
    r.run(2_000);
    let mut restarts = 0;
    while r.out.stage < Stage::Stage5 {
        r.run(1_000); // two cycles, then the controller reboots again
        r.restart();
        restarts += 1;
        assert!(
            r.t - t3 < 600_000,
            "coolant and gas held back by the reboot loop"
        );
    }
    assert!(restarts > 100);
}

#[test]
fn h9_a_reboot_after_the_fire_fell_never_starts_the_gas() {
    // The other side: in stage 4 with every sensor valid and the fire fallen, a restart must
    // not count the sensors that have not reported yet as hot.
    let mut r = Rig::new();
    to_stage3(&mut r);
    r.run(121_000);
    assert_eq!(r.out.stage, Stage::Stage4);
    r.smoke = Some(Digital::Off);
    r.ramp_to([40.0, 40.0, 40.0, 40.0]);
    r.run(400_000);
    assert_eq!(r.out.stage, Stage::Stage4, "fallen: no gas");
    kinds(&mut r);
    for _ in 0..20 {
        r.restart();
        r.run(1_000);
        if r.out.stage != Stage::Stage4 {
            panic!("{:?} {:?}", kinds(&mut r), r.logic.latch_record());
        }
    }
}

#[test]
fn h9_restarts_during_the_warning_never_shorten_it() {
    let mut r = Rig::new();
    r.press(room_gas);
    let start = r.t - PERIOD;
    let mut sounded = 0;
    while !has(&r.out, Action::GasRelease) {
        r.run(7_300);
        sounded += 7_300;
        assert!(sounded < 120_000, "the gas must come in a reboot loop");
        r.restart();
    }
    assert!(r.t - start >= 30_000);
}

#[test]
fn h9_a_clock_jump_never_shortens_the_warning() {
    let mut r = Rig::new();
    r.press(room_gas);
    r.t += 3_600_000; // the clock jumps an hour
    r.tick();
    assert!(!has(&r.out, Action::GasRelease));
    r.run(26_000);
    assert!(!has(&r.out, Action::GasRelease));
    r.run(5_000);
    assert!(has(&r.out, Action::GasRelease));
}

#[test]
fn h9_a_switch_held_through_a_reboot_is_not_a_new_press() {
    // Hazard: a reset key (or a release button) stuck on, or held while the controller
    // restarts, counted as a fresh press after the restart.
    let mut r = Rig::new();
    r.ramp_to([62.0, 62.0, 62.0, 62.0]);
    r.run(1_000);
    r.ramp_to([30.0, 30.0, 30.0, 30.0]);
    r.inp.reset = Digital::On;
    r.inp.manual_release = Digital::On;
    r.inp.room_gas_release = Digital::On;
    r.restart();
    r.run(2_000);
    assert_eq!(r.out.stage, Stage::Stage1, "no reset, no release");
    assert!(!has(&r.out, Action::AgentRelease));
    assert!(r.out.troubles.contains(Trouble::SwitchFault));
    r.inp.manual_release = Digital::Off;
    r.inp.room_gas_release = Digital::Off;
    r.inp.reset = Digital::Off;
    r.tick();
    assert!(!r.out.troubles.contains(Trouble::SwitchFault));
    r.press(reset);
    assert_eq!(r.out.stage, Stage::Normal, "a real press works");
}

#[test]
fn h9_a_release_button_stuck_on_at_power_up_releases_nothing() {
    let mut cfg_rig = Rig::new();
    let cfg = *cfg_rig.logic.config();
    let mut l = RackLogic::new(cfg).unwrap();
    let mut i = cfg_rig.sample();
    i.manual_release = Digital::On;
    i.room_gas_release = Digital::On;
    for k in 0..10u64 {
        let o = l.step(k * PERIOD, &i);
        assert_eq!(o.stage, Stage::Normal);
        assert!(o.troubles.contains(Trouble::SwitchFault) || k == 0);
    }
    cfg_rig.tick();
}
