//! A controller snapshot (plain data, independent of the logic's types) and its encoding into the
//! input registers and coil states of the map.

use crate::map::{
    self, EVENT_ENTRY_REGS, EVENT_WINDOW_ENTRIES, NO_VALUE, coil, event_entry, input,
};

/// Number of input registers, as a `usize` for arrays.
pub const INPUT_COUNT: usize = input::COUNT as usize;
/// Number of coils, as a `usize` for arrays.
pub const COIL_COUNT: usize = coil::COUNT as usize;
/// Entries of the event window, as a `usize`.
pub const WINDOW: usize = EVENT_WINDOW_ENTRIES as usize;

/// Event priority codes (high byte of [`event_entry::CODE`]).
pub mod priority {
    /// Alarm (a stage change).
    pub const ALARM: u8 = 1;
    /// Supervisory.
    pub const SUPERVISORY: u8 = 2;
    /// Trouble.
    pub const TROUBLE: u8 = 3;
    /// Information (resets, commands, test mode).
    pub const INFO: u8 = 4;
}

/// One entry of the event window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EventEntry {
    /// Sequence number, 1 for the first event since the log was created.
    pub seq: u32,
    /// Time in seconds.
    pub time_s: u32,
    /// Priority ([`priority`]).
    pub priority: u8,
    /// Event kind (the logic's code).
    pub kind: u8,
    /// Kind-specific detail.
    pub detail: u16,
}

/// What the board's own diagnostics found, as published in the board block of the map
/// ([`input::BOARD_TROUBLES`] ..= [`input::OUTPUT_ENERGISED`], [`input::VREFINT_RAW`]).
/// The default is "nothing reported yet": no troubles and no reference reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BoardStatus {
    /// [`map::board_trouble`] bits found by the board (the controller adds the reset trouble).
    pub troubles: u32,
    /// Line-monitored inputs open, shorted or out of band, bit per [`map::line`] index.
    pub line_fault: u16,
    /// Lines read open.
    pub line_open: u16,
    /// Lines read shorted.
    pub line_short: u16,
    /// Lines in their active state.
    pub line_active: u16,
    /// Release inputs held off since power-up.
    pub inputs_blocked: u16,
    /// Output circuits whose read-back disagrees with the command, bit per [`map::output`].
    pub output_mismatch: u16,
    /// Output circuits whose line is open, shorted or out of band.
    pub output_line_fault: u16,
    /// Output circuits read back as energised.
    pub output_energised: u16,
    /// Last internal reference conversion, raw counts (`None`: no valid conversion).
    pub vrefint_raw: Option<u16>,
    /// Deepest stack use since boot, bytes (0 = not measured).
    pub stack_peak: u16,
}

/// The reset-cause record published at [`input::RESET_CAUSE`] ..= [`input::FAULT_PC`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResetInfo {
    /// [`map::reset_cause`] bits.
    pub cause: u16,
    /// Boots counted in the non-volatile area.
    pub boot_count: u32,
    /// Program counter of the fault that caused the reset (0 = none).
    pub fault_pc: u32,
}

/// Everything the controller publishes, in engineering units already scaled to the map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Firmware version (major, minor, patch).
    pub fw_version: (u16, u16, u16),
    /// Seconds since boot.
    pub uptime_s: u32,
    /// Stage code (0 normal, 1 pre-alarm, 2..=6 stage 1..=5).
    pub stage: u16,
    /// [`map::action`] bits.
    pub actions: u16,
    /// [`map::status`] bits.
    pub status: u16,
    /// [`map::trouble`] bits.
    pub troubles: u32,
    /// [`map::feedback`] bits.
    pub feedbacks: u16,
    /// Valid sensors, bit per [`map::sensor`] index.
    pub sensors_valid: u16,
    /// Inhibited sensors, bit per [`map::sensor`] index.
    pub sensors_inhibited: u16,
    /// Temperatures in 0.1 C: BMS, rack 1, rack 2, camera, governing. `None` = no valid value.
    pub bms_max_dc: Option<i16>,
    /// Rack temperature 1, 0.1 C.
    pub rack_temp1_dc: Option<i16>,
    /// Rack temperature 2, 0.1 C.
    pub rack_temp2_dc: Option<i16>,
    /// Camera maximum, 0.1 C.
    pub camera_max_dc: Option<i16>,
    /// Governing temperature, 0.1 C.
    pub governing_dc: Option<i16>,
    /// Off-gas, 0.1 % LFL.
    pub offgas_dpct: Option<i16>,
    /// Smoke state ([`map::input_state`]).
    pub smoke: u16,
    /// Room gas release input state ([`map::input_state`]; `NOT_FITTED` when not wired here).
    pub room_gas_release: u16,
    /// Sequence number of the newest event (0 = none).
    pub event_seq: u32,
    /// Newest events, newest first.
    pub events: heapless::Vec<EventEntry, WINDOW>,
    /// Board diagnostics (troubles include the controller's reset trouble).
    pub board: BoardStatus,
    /// Cause of the last reset.
    pub reset: ResetInfo,
    /// Longest control cycle since boot, microseconds.
    pub cycle_max_us: u32,
}

impl Default for Snapshot {
    fn default() -> Self {
        Snapshot {
            fw_version: (0, 0, 0),
            uptime_s: 0,
            stage: 0,
            actions: 0,
            status: 0,
            troubles: 0,
            feedbacks: 0,
            sensors_valid: 0,
            sensors_inhibited: 0,
            bms_max_dc: None,
            rack_temp1_dc: None,
            rack_temp2_dc: None,
            camera_max_dc: None,
            governing_dc: None,
            offgas_dpct: None,
            smoke: map::input_state::NOT_FITTED,
            room_gas_release: map::input_state::NOT_FITTED,
            event_seq: 0,
            events: heapless::Vec::new(),
            board: BoardStatus::default(),
            reset: ResetInfo::default(),
            cycle_max_us: 0,
        }
    }
}

/// Converts a temperature in C to tenths, rounding to nearest and saturating; NaN gives `None`.
pub fn deci(value: f32) -> Option<i16> {
    if value.is_nan() {
        return None;
    }
    let scaled = value * 10.0;
    let rounded = if scaled >= 0.0 {
        scaled + 0.5
    } else {
        scaled - 0.5
    };
    // `as` saturates for floats; keep clear of the NO_VALUE marker.
    let v = rounded as i32;
    Some(v.clamp(i32::from(NO_VALUE) + 1, i32::from(i16::MAX)) as i16)
}

fn opt(v: Option<i16>) -> u16 {
    v.unwrap_or(NO_VALUE) as u16
}

fn put(regs: &mut [u16; INPUT_COUNT], address: u16, value: u16) {
    if let Some(slot) = regs.get_mut(usize::from(address)) {
        *slot = value;
    }
}

fn put32(regs: &mut [u16; INPUT_COUNT], address: u16, value: u32) {
    put(regs, address, (value >> 16) as u16);
    put(regs, address.wrapping_add(1), value as u16);
}

impl Snapshot {
    /// Encodes the snapshot into the input register image.
    pub fn encode_inputs(&self, regs: &mut [u16; INPUT_COUNT]) {
        regs.fill(0);
        put(regs, input::FW_VERSION_MAJOR, self.fw_version.0);
        put(regs, input::FW_VERSION_MINOR, self.fw_version.1);
        put(regs, input::FW_VERSION_PATCH, self.fw_version.2);
        put(regs, input::MAP_VERSION, map::MAP_VERSION);
        put32(regs, input::UPTIME_S, self.uptime_s);
        put(regs, input::STAGE, self.stage);
        put(regs, input::ACTIONS, self.actions);
        put(regs, input::STATUS, self.status);
        put32(regs, input::TROUBLES, self.troubles);
        put(regs, input::FEEDBACKS, self.feedbacks);
        put(regs, input::SENSORS_VALID, self.sensors_valid);
        put(regs, input::BMS_MAX_TEMP, opt(self.bms_max_dc));
        put(regs, input::RACK_TEMP1, opt(self.rack_temp1_dc));
        put(regs, input::RACK_TEMP2, opt(self.rack_temp2_dc));
        put(regs, input::CAMERA_MAX_TEMP, opt(self.camera_max_dc));
        put(regs, input::GOVERNING_TEMP, opt(self.governing_dc));
        put(regs, input::OFFGAS_LFL, opt(self.offgas_dpct));
        put(regs, input::SMOKE, self.smoke);
        put(regs, input::SENSORS_INHIBITED, self.sensors_inhibited);
        put32(regs, input::EVENT_SEQ, self.event_seq);
        put(regs, input::EVENT_WINDOW_LEN, self.events.len() as u16);
        let b = &self.board;
        put32(regs, input::BOARD_TROUBLES, b.troubles);
        put(regs, input::LINE_FAULT, b.line_fault);
        put(regs, input::LINE_OPEN, b.line_open);
        put(regs, input::LINE_SHORT, b.line_short);
        put(regs, input::LINE_ACTIVE, b.line_active);
        put(regs, input::INPUTS_BLOCKED, b.inputs_blocked);
        put(regs, input::OUTPUT_MISMATCH, b.output_mismatch);
        put(regs, input::OUTPUT_LINE_FAULT, b.output_line_fault);
        put(regs, input::OUTPUT_ENERGISED, b.output_energised);
        put(regs, input::VREFINT_RAW, b.vrefint_raw.unwrap_or(0));
        put(regs, input::STACK_PEAK, b.stack_peak);
        put(regs, input::RESET_CAUSE, self.reset.cause);
        put32(regs, input::BOOT_COUNT, self.reset.boot_count);
        put32(regs, input::FAULT_PC, self.reset.fault_pc);
        put32(regs, input::CYCLE_MAX_US, self.cycle_max_us);
        put(regs, input::ROOM_GAS_RELEASE, self.room_gas_release);
        let mut base = input::EVENT_WINDOW;
        for e in &self.events {
            put32(regs, base + event_entry::SEQ, e.seq);
            put32(regs, base + event_entry::TIME_S, e.time_s);
            put(
                regs,
                base + event_entry::CODE,
                (u16::from(e.priority) << 8) | u16::from(e.kind),
            );
            put(regs, base + event_entry::DETAIL, e.detail);
            base = base.wrapping_add(EVENT_ENTRY_REGS);
        }
    }

    /// Coil states as read back by a master.
    pub fn coil_states(&self) -> [bool; COIL_COUNT] {
        let mut coils = [false; COIL_COUNT];
        coils[usize::from(coil::SILENCE_BUZZER)] = self.status & map::status::SILENCED != 0;
        coils[usize::from(coil::TEST_MODE)] = self.status & map::status::TEST_MODE != 0;
        for s in 0..map::sensor::COUNT {
            if let Some(c) = coils.get_mut(usize::from(coil::INHIBIT_BASE + s)) {
                *c = self.sensors_inhibited & (1 << s) != 0;
            }
        }
        coils
    }
}

/// Decodes a temperature register (for masters and tests): `None` for [`NO_VALUE`].
pub fn decode_deci(raw: u16) -> Option<f32> {
    let v = raw as i16;
    (v != NO_VALUE).then(|| f32::from(v) / 10.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temperatures_encode_in_tenths_and_missing_as_no_value() {
        let s = Snapshot {
            rack_temp1_dc: deci(61.26),
            rack_temp2_dc: deci(-5.04),
            bms_max_dc: None,
            ..Snapshot::default()
        };
        let mut regs = [0xFFFF; INPUT_COUNT];
        s.encode_inputs(&mut regs);
        assert_eq!(regs[input::RACK_TEMP1 as usize], 613);
        assert_eq!(regs[input::RACK_TEMP2 as usize] as i16, -50);
        assert_eq!(regs[input::BMS_MAX_TEMP as usize], 0x8000);
        assert_eq!(decode_deci(regs[input::RACK_TEMP1 as usize]), Some(61.3));
        assert_eq!(decode_deci(0x8000), None);
        assert_eq!(regs[input::MAP_VERSION as usize], map::MAP_VERSION);
    }

    #[test]
    fn deci_saturates_and_never_produces_the_marker() {
        assert_eq!(deci(1e9), Some(i16::MAX));
        assert_eq!(deci(-1e9), Some(NO_VALUE + 1));
        assert_eq!(deci(f32::NAN), None);
    }

    #[test]
    fn u32_values_are_high_word_first_and_events_newest_first() {
        let mut s = Snapshot {
            uptime_s: 0x0001_0002,
            troubles: map::trouble::NV_RECORD | map::trouble::CONFIG_CHANGED | 1 << 31,
            event_seq: 9,
            ..Snapshot::default()
        };
        for seq in [9u32, 8] {
            s.events
                .push(EventEntry {
                    seq,
                    time_s: 100 + seq,
                    priority: priority::ALARM,
                    kind: 1,
                    detail: 3,
                })
                .unwrap();
        }
        let mut regs = [0; INPUT_COUNT];
        s.encode_inputs(&mut regs);
        assert_eq!(&regs[4..6], &[1, 2]);
        assert_eq!(&regs[9..11], &[0x8102, 0]);
        assert_eq!(regs[input::EVENT_WINDOW_LEN as usize], 2);
        let w = input::EVENT_WINDOW as usize;
        assert_eq!(&regs[w..w + 6], &[0, 9, 0, 109, 0x0101, 3]);
        assert_eq!(&regs[w + 6..w + 8], &[0, 8]);
        assert!(regs[w + 12..].iter().all(|&r| r == 0));
    }

    #[test]
    fn board_block_encodes_every_field_at_its_address() {
        // A field written to the wrong register would show a healthy board over a faulty one.
        let s = Snapshot {
            board: BoardStatus {
                troubles: map::board_trouble::REFERENCE | map::board_trouble::UNEXPECTED_RESET,
                line_fault: 1 << map::line::MANUAL_RELEASE,
                line_open: 1 << map::line::SMOKE,
                line_short: 1 << map::line::RESET,
                line_active: 1 << map::line::HOLD,
                inputs_blocked: 1 << map::line::MANUAL_RELEASE,
                output_mismatch: 1 << map::output::AGENT,
                output_line_fault: 1 << map::output::GAS_RELEASE,
                output_energised: 1 << map::output::CONTACTOR_HOLD,
                vrefint_raw: Some(1651),
                stack_peak: 9_000,
            },
            reset: ResetInfo {
                cause: map::reset_cause::FAULT | map::reset_cause::SOFTWARE,
                boot_count: 0x0002_0003,
                fault_pc: 0x0800_1234,
            },
            cycle_max_us: 70_000,
            ..Snapshot::default()
        };
        let mut regs = [0; INPUT_COUNT];
        s.encode_inputs(&mut regs);
        let r = |a: u16| regs[usize::from(a)];
        assert_eq!(
            (r(input::BOARD_TROUBLES), r(input::BOARD_TROUBLES + 1)),
            (0, 0x0101)
        );
        assert_eq!(r(input::LINE_FAULT), 2);
        assert_eq!(r(input::LINE_OPEN), 1);
        assert_eq!(r(input::LINE_SHORT), 4);
        assert_eq!(r(input::LINE_ACTIVE), 8);
        assert_eq!(r(input::INPUTS_BLOCKED), 2);
        assert_eq!(r(input::OUTPUT_MISMATCH), 8);
        assert_eq!(r(input::OUTPUT_LINE_FAULT), 32);
        assert_eq!(r(input::OUTPUT_ENERGISED), 1);
        assert_eq!(r(input::VREFINT_RAW), 1651);
        assert_eq!(r(input::RESET_CAUSE), 0x84);
        assert_eq!((r(input::BOOT_COUNT), r(input::BOOT_COUNT + 1)), (2, 3));
        assert_eq!(
            (r(input::FAULT_PC), r(input::FAULT_PC + 1)),
            (0x0800, 0x1234)
        );
        assert_eq!(
            (r(input::CYCLE_MAX_US), r(input::CYCLE_MAX_US + 1)),
            (1, 4464)
        );
        // No valid reference reading is published as 0, never as a plausible count.
        let mut regs = [0xFFFF; INPUT_COUNT];
        Snapshot::default().encode_inputs(&mut regs);
        assert_eq!(regs[usize::from(input::VREFINT_RAW)], 0);
    }

    #[test]
    fn coil_states_follow_status_and_inhibits() {
        let s = Snapshot {
            status: map::status::TEST_MODE,
            sensors_inhibited: 1 << map::sensor::CAMERA,
            ..Snapshot::default()
        };
        let c = s.coil_states();
        assert!(!c[0] && c[1]);
        assert!(c[(coil::INHIBIT_BASE + map::sensor::CAMERA) as usize]);
        assert_eq!(c.iter().filter(|&&b| b).count(), 2);
    }
}
