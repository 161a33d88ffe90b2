//! Deterministic input scenarios for the simulator, the reset test and the emulated-MCU image,
//! and the reset-in-every-stage check itself.

use fire_logic::{Action, Actions, Analog, Config, Digital, Inputs, Outputs, Stage};

use crate::controller::{BootError, BootState, Controller};
use crate::nvstore::Flash;

/// Control period of the scenarios, ms.
pub const PERIOD_MS: u64 = 100;

/// A slow thermal runaway: every temperature source follows the same ramp, smoke appears on the
/// way up, output feedbacks follow their commands. The temperature never falls, so the logic
/// goes through every stage up to the room gas release.
#[derive(Debug, Clone, Copy)]
pub struct ThermalRunaway {
    /// Temperature before the ramp, tenths of C.
    pub ambient_dc: i32,
    /// Start of the ramp, ms.
    pub ramp_start_ms: u64,
    /// Rise, tenths of C per second.
    pub rise_dc_per_s: i32,
    /// Plateau, tenths of C.
    pub peak_dc: i32,
    /// Smoke detected from this temperature on, tenths of C.
    pub smoke_from_dc: i32,
}

impl Default for ThermalRunaway {
    fn default() -> Self {
        ThermalRunaway {
            ambient_dc: 250,
            ramp_start_ms: 10_000,
            rise_dc_per_s: 20,
            peak_dc: 950,
            smoke_from_dc: 400,
        }
    }
}

impl ThermalRunaway {
    /// Temperature at `t_ms`, tenths of C.
    pub fn temperature(&self, t_ms: u64) -> i32 {
        let dt = t_ms.saturating_sub(self.ramp_start_ms);
        let rise = i64::from(self.rise_dc_per_s) * i64::try_from(dt).unwrap_or(i64::MAX) / 1000;
        let t = i64::from(self.ambient_dc).saturating_add(rise);
        t.min(i64::from(self.peak_dc)) as i32
    }

    /// Inputs at `t_ms`, given the actions commanded in the previous cycle.
    pub fn inputs(&self, t_ms: u64, actions: Actions) -> Inputs {
        let t = self.temperature(t_ms);
        let level = |on: bool| if on { Digital::On } else { Digital::Off };
        let mut feedback = [Digital::Off; 6];
        for (slot, a) in feedback.iter_mut().zip(Action::FEEDBACK) {
            *slot = level(actions.contains(a));
        }
        Inputs {
            bms_max: Analog::Value(t),
            rack_temp1: Analog::Value(t),
            rack_temp2: Analog::Value(t.saturating_sub(5)),
            camera_max: Analog::Value(t.saturating_add(10)),
            smoke: level(t >= self.smoke_from_dc),
            offgas: Analog::NoSample,
            feedback,
            reset: Digital::Off,
            hold: Digital::Off,
            manual_release: Digital::Off,
            room_gas_release: Digital::Off,
            manual_only: Digital::Off,
            authority: Digital::Off,
        }
    }
}

/// Outcome of one reset-in-stage check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResetCheck {
    /// Stage at the reset.
    pub stage: Stage,
    /// Logic time of the reset (before), ms.
    pub at_ms: u64,
    /// Outputs of the last cycle before the reset.
    pub before: Outputs,
    /// Outputs driven between boot and the first cycle.
    pub at_boot: Outputs,
    /// Outputs of the first cycle after the reset.
    pub after: Outputs,
}

/// Why a reset check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetFailure {
    /// The controller did not boot.
    Boot(BootError),
    /// The scenario never reached the stage.
    StageNotReached(Stage),
    /// The record was not restored.
    NotRestored(Stage),
    /// Outputs before the first cycle were not the safe state.
    UnsafeAtBoot(ResetCheck),
    /// Stage or actions differ across the reset.
    OutputsChanged(ResetCheck),
}

/// Runs the thermal runaway until `cycles_in` cycles after `target` was entered, resets the
/// controller (only the flash survives; the clock restarts at 0) and checks that the restored
/// controller drives the safe state before its first cycle and then the same stage and actions
/// as before the reset, for `cycles_after` cycles.
pub fn reset_in_stage<F: Flash>(
    config: Config,
    flash: F,
    scenario: &ThermalRunaway,
    target: Stage,
    cycles_in: u32,
    cycles_after: u32,
) -> Result<ResetCheck, ResetFailure> {
    let fw = (0, 0, 0);
    let mut c = Controller::boot(config, flash, 0, fw).map_err(ResetFailure::Boot)?;
    let mut now = 0u64;
    let mut actions = Actions::NONE;
    let mut entered_at: Option<u64> = None;
    let mut before = Outputs::default();
    // Bounded: the whole scenario reaches room gas within 10 minutes of logic time.
    for _ in 0..10_000u32 {
        before = c.cycle(now, &scenario.inputs(now, actions));
        actions = before.actions;
        if entered_at.is_none() && before.stage == target {
            entered_at = Some(now);
        }
        if let Some(t) = entered_at
            && now >= t + u64::from(cycles_in) * PERIOD_MS
        {
            break;
        }
        now += PERIOD_MS;
    }
    if entered_at.is_none() {
        return Err(ResetFailure::StageNotReached(target));
    }
    let last_inputs = scenario.inputs(now, actions);
    // Reset: the controller is gone, the flash stays, the clock restarts.
    let flash = c.into_flash();
    let mut c = Controller::boot(config, flash, 0, fw).map_err(ResetFailure::Boot)?;
    let mut check = ResetCheck {
        stage: target,
        at_ms: now,
        before,
        at_boot: c.drive(),
        after: Outputs::default(),
    };
    if c.boot_state() != BootState::Restored {
        return Err(ResetFailure::NotRestored(target));
    }
    if check.at_boot.actions != Actions::NONE || check.at_boot.buzzer {
        return Err(ResetFailure::UnsafeAtBoot(check));
    }
    let mut t = PERIOD_MS;
    for i in 0..cycles_after.max(1) {
        let out = c.cycle(t, &last_inputs);
        if i == 0 {
            check.after = out;
        }
        if out.stage != before.stage || out.actions != before.actions {
            check.after = out;
            return Err(ResetFailure::OutputsChanged(check));
        }
        t += PERIOD_MS;
    }
    Ok(check)
}

/// The stages checked by [`reset_in_stage`] in the shipped tests.
pub const RESET_STAGES: [Stage; 6] = [
    Stage::PreAlarm,
    Stage::Stage1,
    Stage::Stage2,
    Stage::Stage3,
    Stage::Stage4,
    Stage::Stage5,
];
