//! The staged fire logic itself, driven by arbitrary inputs, times and network commands.

use arbitrary::{Arbitrary, Unstructured};
use fire_logic::{
    Analog, Config, Digital, Inputs, LatchRecord, NetworkCommand, RackLogic, SourceId,
};

fn analog(u: &mut Unstructured<'_>) -> arbitrary::Result<Analog> {
    Ok(match u.int_in_range(0u8..=7)? {
        0 | 1 => Analog::NoSample,
        2 => Analog::Fault,
        // Mostly plausible temperatures (-20.0 .. 150.0 degC in tenths), sometimes anything.
        3..=6 => Analog::Value(u.int_in_range(-200..=1500)?),
        _ => Analog::Value(i32::arbitrary(u)?),
    })
}

fn digital(u: &mut Unstructured<'_>) -> arbitrary::Result<Digital> {
    Ok(*u.choose(&[
        Digital::NoSample,
        Digital::NoSample,
        Digital::Off,
        Digital::On,
        Digital::Fault,
    ])?)
}

fn inputs(u: &mut Unstructured<'_>) -> arbitrary::Result<Inputs> {
    let mut feedback = [Digital::NoSample; 6];
    for f in feedback.iter_mut() {
        *f = digital(u)?;
    }
    Ok(Inputs {
        bms_max: analog(u)?,
        rack_temp1: analog(u)?,
        rack_temp2: analog(u)?,
        camera_max: analog(u)?,
        smoke: digital(u)?,
        offgas: analog(u)?,
        feedback,
        reset: digital(u)?,
        hold: digital(u)?,
        manual_release: digital(u)?,
        room_gas_release: digital(u)?,
        manual_only: digital(u)?,
        authority: digital(u)?,
    })
}

fn command(u: &mut Unstructured<'_>) -> arbitrary::Result<NetworkCommand> {
    Ok(match u.int_in_range(0u8..=3)? {
        0 => NetworkCommand::Acknowledge,
        1 => NetworkCommand::TimeSync {
            unix_ms: i64::arbitrary(u)?,
        },
        2 => NetworkCommand::TestMode {
            on: bool::arbitrary(u)?,
        },
        _ => NetworkCommand::InhibitSensor {
            sensor: *u.choose(&SourceId::ALL)?,
            duration_ms: u32::arbitrary(u)?,
        },
    })
}

/// Runs the logic through up to 500 control cycles. Checked on every cycle:
/// - the latched stage never goes down except on a cycle whose reset key input is `On`;
/// - no network command changes the stage or the commanded actions;
/// - a logic restored from a latch record comes back in the record's stage.
pub fn logic(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let _ = run(&mut u);
}

fn run(u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
    let config = Config::default();
    let mut now_ms: u64 = u.int_in_range(0..=1_000_000)?;
    let mut logic = if bool::arbitrary(u)? {
        let bytes: [u8; LatchRecord::LEN] = Arbitrary::arbitrary(u)?;
        let Ok(record) = LatchRecord::from_bytes(&bytes) else {
            return Ok(());
        };
        let Ok(l) = RackLogic::restore(config, &record, now_ms) else {
            return Ok(());
        };
        assert_eq!(l.stage(), record.stage, "restored logic lost its stage");
        l
    } else {
        RackLogic::new(config).expect("default configuration is valid")
    };
    for _ in 0..500 {
        if u.is_empty() {
            break;
        }
        now_ms += u64::from(*u.choose(&[0u16, 1, 100, 100, 100, 250, 1000, 5000, 60_000])?);
        if u.int_in_range(0u8..=7)? == 0 {
            let cmd = command(u)?;
            let before = logic.outputs();
            let _ = logic.command(now_ms, cmd);
            let after = logic.outputs();
            assert_eq!(before.stage, after.stage, "{cmd:?} changed the stage");
            assert_eq!(before.actions, after.actions, "{cmd:?} changed the actions");
        }
        let input = inputs(u)?;
        let before = logic.stage();
        let out = logic.step(now_ms, &input);
        assert_eq!(out.stage, logic.stage());
        if out.stage < before {
            assert_eq!(
                input.reset,
                Digital::On,
                "stage went down from {before:?} to {:?} without the reset key",
                out.stage
            );
        }
        while logic.take_event().is_some() {}
    }
    Ok(())
}
