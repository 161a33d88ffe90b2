//! Persistence: the latch record survives a controller restart in every stage.
#![allow(clippy::field_reassign_with_default, clippy::type_complexity)]

use crate::common;

use common::{Rig, manual};
use fire_logic::{
    Action, Analog, Config, Digital, GasState, LatchError, LatchRecord, Outputs, RackLogic, Stage,
    Supervisory, SupervisoryFlags, Trouble,
};

fn comparable(o: &Outputs) -> (Stage, u16, u32, u16, bool) {
    // Rate of rise needs a full window of fresh samples after a restart; everything else must
    // match on the very next cycle.
    let mut sup = SupervisoryFlags::NONE;
    for s in o.supervisory.iter() {
        if s != Supervisory::RateOfRise {
            sup.insert(s);
        }
    }
    (
        o.stage,
        o.actions.bits(),
        o.troubles.bits(),
        sup.bits(),
        o.buzzer,
    )
}

/// Rigs driven into every latched situation the controller can be in.
fn scenarios() -> Vec<(&'static str, Rig)> {
    let mut out = Vec::new();
    out.push(("normal", Rig::new()));
    let mut r = Rig::new();
    r.ramp_to([52.0, 52.0, 52.0, 52.0]);
    r.run(1_000);
    out.push(("pre_alarm", r));
    let mut r = Rig::new();
    r.ramp_to([62.0, 62.0, 62.0, 62.0]);
    r.run(1_000);
    out.push(("stage1", r));
    let mut r = Rig::new();
    r.ramp_to([70.0, 66.0, 65.0, 60.0]);
    r.run(1_000);
    out.push(("stage2", r));
    let mut r = Rig::new();
    r.ramp_to([85.0, 85.0, 84.0, 86.0]);
    r.run(1_000);
    out.push(("stage3", r));
    let mut r = Rig::new();
    r.inp.manual_only = Digital::On;
    r.ramp_to([85.0, 85.0, 84.0, 86.0]);
    r.run(1_000);
    out.push(("stage3_manual_only", r));
    let mut r = Rig::new();
    r.ramp_to([85.0, 85.0, 84.0, 86.0]);
    r.run(125_000);
    out.push(("stage4", r));
    let mut r = Rig::new();
    r.ramp_to([85.0, 85.0, 84.0, 86.0]);
    r.run(430_000);
    out.push(("stage5_warning", r));
    let mut r = Rig::new();
    r.ramp_to([85.0, 85.0, 84.0, 86.0]);
    r.inp.hold = Digital::On;
    r.run(430_000);
    out.push(("stage5_held", r));
    let mut r = Rig::new();
    r.ramp_to([85.0, 85.0, 84.0, 86.0]);
    r.run(470_000);
    out.push(("stage5_released", r));
    let mut r = Rig::new();
    r.press(manual);
    out.push(("manual_release", r));
    let mut r = Rig::new();
    r.temps = [Some(Analog::Fault); 4];
    r.run(61_000);
    r.all(25.0);
    r.run(1_000);
    out.push(("isolated", r));
    out
}

#[test]
fn latch_restore_in_every_stage_gives_identical_outputs_on_the_next_step() {
    let mut seen = std::collections::BTreeSet::new();
    for (name, mut rig) in scenarios() {
        let record = rig.logic.latch_record();
        let bytes = record.to_bytes();
        let decoded = LatchRecord::from_bytes(&bytes).unwrap();
        assert_eq!(decoded, record, "{name}");
        seen.insert(record.stage);
        // The controller restarts: its clock starts again from zero.
        let mut restored = RackLogic::restore(Config::default(), &decoded, 0).unwrap();
        assert_eq!(restored.stage(), record.stage, "{name}");
        assert_eq!(restored.outputs().stage, record.stage, "{name}");
        let before = rig.out;
        let after_orig = rig.tick();
        let inputs = {
            let mut i = rig.inp;
            i.bms_max = rig.temps[0].unwrap_or_default();
            i.rack_temp1 = rig.temps[1].unwrap_or_default();
            i.rack_temp2 = rig.temps[2].unwrap_or_default();
            i.camera_max = rig.temps[3].unwrap_or_default();
            i.smoke = rig.smoke.unwrap_or_default();
            i
        };
        let after_restored = restored.step(500, &inputs);
        assert_eq!(
            comparable(&after_restored),
            comparable(&after_orig),
            "{name}: restored {after_restored:?} original {after_orig:?}"
        );
        assert_eq!(before.actions, after_orig.actions, "{name}: latched");
        // Event numbering continues.
        let first = restored.take_event().unwrap();
        assert_eq!(first.seq, record.next_event_seq, "{name}");
    }
    assert_eq!(
        seen.len(),
        Stage::ALL.len(),
        "every stage covered: {seen:?}"
    );
}

#[test]
fn latch_restore_resumes_the_warning_from_the_whole_seconds_it_has_sounded() {
    // Hazard: a restart shortening the pre-discharge warning (people in the room), or
    // restarting it in full every time, so a reboot loop holds the gas for ever.
    let (_, rig) = scenarios()
        .into_iter()
        .find(|(n, _)| *n == "stage5_warning")
        .unwrap();
    let rec = rig.logic.latch_record();
    assert_eq!(rec.gas, GasState::Warning);
    let sounded = u64::from(rec.gas_warning_ms);
    assert!(
        sounded > 0 && sounded % 1_000 == 0 && sounded < 30_000,
        "{sounded}"
    );
    let mut l = RackLogic::restore(Config::default(), &rec, 1_000).unwrap();
    let inp = fire_logic::Inputs::default();
    let mut t = 1_000;
    loop {
        t += 500;
        let o = l.step(t, &inp);
        assert!(o.actions.contains(Action::GasWarning));
        if o.actions.contains(Action::GasRelease) {
            break;
        }
    }
    assert_eq!(
        t - 1_000,
        30_000 - sounded,
        "the rest of the warning, no less"
    );
}

#[test]
fn latch_timers_are_whole_seconds_rounded_down_and_saturate_at_their_delay() {
    let mut r = Rig::new();
    r.ramp_to([85.0, 85.0, 84.0, 86.0]);
    r.run_until(2_000, |o| o.stage == Stage::Stage3);
    r.run(2_500);
    assert_eq!(r.logic.latch_record().stage_timer_ms, 2_000);
    r.run(500);
    assert_eq!(r.logic.latch_record().stage_timer_ms, 3_000);
    // Falling: stays in stage 3; the timer stops changing at the delay (no flash wear).
    r.ramp_to([60.0, 60.0, 60.0, 60.0]);
    r.run(300_000);
    assert_eq!(r.out.stage, Stage::Stage3);
    assert_eq!(r.logic.latch_record().stage_timer_ms, 120_000);
}

#[test]
fn latch_restore_credits_the_running_stage_timer_and_never_shortens_a_delay_by_more() {
    let mut r = Rig::new();
    r.ramp_to([85.0, 85.0, 84.0, 86.0]);
    r.run_until(2_000, |o| o.stage == Stage::Stage3);
    r.run(50_500);
    let rec = r.logic.latch_record();
    assert_eq!(rec.stage_timer_ms, 50_000);
    let mut l = RackLogic::restore(Config::default(), &rec, 0).unwrap();
    assert_eq!(
        l.latch_record().stage_timer_ms,
        51_000,
        "one checkpoint of credit"
    );
    let inp = r.sample();
    let mut t = 0;
    while l.stage() == Stage::Stage3 {
        t += 500;
        l.step(t, &inp);
    }
    assert_eq!(
        t,
        120_000 - 51_000,
        "the rest of the delay after the credit"
    );
}

#[test]
fn latch_record_layout_is_pinned() {
    // The controller's non-volatile store and any decoder outside this crate rely on it.
    let mut r = Rig::new();
    r.ramp_to([85.0, 85.0, 84.0, 86.0]);
    r.run(5_000);
    let rec = r.logic.latch_record();
    let b = rec.to_bytes();
    assert_eq!(b.len(), LatchRecord::LEN);
    assert_eq!(b[0], 2, "version");
    assert_eq!(b[1], Stage::Stage3.code());
    assert_eq!(u16::from_le_bytes([b[2], b[3]]), rec.actions.bits());
    assert_eq!(b[4] & 1, 1, "agent released");
    assert_eq!(
        u32::from_le_bytes(b[8..12].try_into().unwrap()),
        Config::default().fingerprint()
    );
    assert_eq!(
        u32::from_le_bytes(b[16..20].try_into().unwrap()),
        rec.stage_timer_ms
    );
    for k in 0..4 {
        let p = i16::from_le_bytes([b[32 + 2 * k], b[33 + 2 * k]]);
        assert_eq!(Some(i32::from(p)), rec.peaks[k]);
        assert_eq!(p % 10, 0, "whole degrees");
    }
    assert_eq!(rec.peaks[3], Some(860));
    assert_eq!(rec.peaks[2], Some(840));
}

#[test]
fn latch_restore_under_another_configuration_keeps_the_stage_and_reports_it() {
    let (_, rig) = scenarios()
        .into_iter()
        .find(|(n, _)| *n == "stage3")
        .unwrap();
    let rec = rig.logic.latch_record();
    let mut cfg = Config::default();
    cfg.stage3 = 820;
    let mut l = RackLogic::restore(cfg, &rec, 0).unwrap();
    let o = l.step(500, &fire_logic::Inputs::default());
    assert_eq!(o.stage, Stage::Stage3);
    assert!(o.actions.contains(Action::AgentRelease));
    assert!(o.troubles.contains(Trouble::ConfigChanged));
    let mut bad = Config::default();
    bad.stage3 = 100;
    assert!(RackLogic::restore(bad, &rec, 0).is_err());
}

#[test]
fn latch_record_rejects_corrupt_bytes_with_a_reason() {
    let rec = Rig::new().logic.latch_record();
    let good = rec.to_bytes();
    assert_eq!(
        LatchRecord::from_bytes(&good[..10]),
        Err(LatchError::WrongLength { found: 10 })
    );
    let mut b = good;
    b[0] = 9;
    assert_eq!(
        LatchRecord::from_bytes(&b),
        Err(LatchError::UnsupportedVersion { found: 9 })
    );
    let mut b = good;
    b[1] = 7;
    assert_eq!(
        LatchRecord::from_bytes(&b),
        Err(LatchError::BadField { field: "stage" })
    );
    let mut b = good;
    b[4] = 0x80;
    assert_eq!(
        LatchRecord::from_bytes(&b),
        Err(LatchError::BadField { field: "flags" })
    );
    let mut b = good;
    b[5] = 4; // gas released while in normal
    assert!(matches!(
        LatchRecord::from_bytes(&b),
        Err(LatchError::Inconsistent { .. })
    ));
    let mut b = good;
    b[16] = 1; // a stage timer in normal
    assert!(matches!(
        LatchRecord::from_bytes(&b),
        Err(LatchError::Inconsistent { .. })
    ));
    let mut b = good;
    b[27] = 0x80; // an off-gas timer beyond any delay
    assert_eq!(
        LatchRecord::from_bytes(&b),
        Err(LatchError::BadField { field: "timers" })
    );
    let mut b = good;
    b[6] = 0x01; // a source lost while hot in normal
    assert!(matches!(
        LatchRecord::from_bytes(&b),
        Err(LatchError::Inconsistent { .. })
    ));
    let mut b = good;
    b[6] = 0x10; // a bit beyond the temperature sources
    assert_eq!(
        LatchRecord::from_bytes(&b),
        Err(LatchError::BadField {
            field: "lost_while_hot"
        })
    );
    let mut b = good;
    b[32] = 0x10; // a peak in normal
    assert!(matches!(
        LatchRecord::from_bytes(&b),
        Err(LatchError::Inconsistent { .. })
    ));
    assert!(!format!("{}", LatchError::BadField { field: "gas" }).is_empty());
}
