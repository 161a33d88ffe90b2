//! The register map: addresses, bit assignments and the table the profile test checks.
//!
//! Addresses are Modbus protocol addresses (0-based, as sent on the wire). 32-bit values are two
//! registers, high word first. Temperatures are signed tenths of a degree Celsius; the value
//! [`NO_VALUE`] (`0x8000`, -3276.8 C) means "no valid reading" (not fitted, faulted, stale or
//! excluded by plausibility).
//!
//! Everything safety-related is an input register (function 4, read-only). The only writable
//! objects are the coils in [`coil`], one per allowed network command.
//!
//! Layout notes: bits 24 and up of the trouble word are the controller's own (27: a board fault,
//! detailed in the board block). The board block (registers 24..=42) carries the board's own
//! diagnostics: board troubles, line-monitored inputs (fault, open, short, active, held off at
//! power-up), output read-back (mismatch, line fault, energised), the reference reading, the reset
//! cause, boot count and fault PC, the longest cycle and the stack peak; register 43 is the
//! room's gas release as an input state (3 = not wired, board rev B); the event window follows
//! at 44. The controller's own event kinds: the reset cause as the first entry of every boot
//! (29), the reset loop (30) and its end (31).

/// Raw value of a temperature or percentage register that holds no valid reading.
pub const NO_VALUE: i16 = i16::MIN;

/// Version of this register layout, readable at [`input::MAP_VERSION`]. Bumped on any change of
/// address or meaning. Version 2 added the board diagnostics block (registers 24..=42) and moved
/// the event window behind it. Version 3 added the room gas release input state (register 43,
/// the window moved to 44), the reset-loop lockout (status bit 13, board trouble bit 11) and the
/// event kinds 29..=31 (controller reset, reset loop, reset loop cleared).
pub const MAP_VERSION: u16 = 3;

/// Duration of a sensor inhibit asked through a coil (capped by the logic's `inhibit_max_ms`).
pub const INHIBIT_DURATION_MS: u32 = 3_600_000;

/// Default Modbus unit (slave) id of a controller.
pub const DEFAULT_UNIT_ID: u8 = 1;

/// Input register addresses (function code 4).
pub mod input {
    /// Firmware version, major.
    pub const FW_VERSION_MAJOR: u16 = 0;
    /// Firmware version, minor.
    pub const FW_VERSION_MINOR: u16 = 1;
    /// Firmware version, patch.
    pub const FW_VERSION_PATCH: u16 = 2;
    /// Register layout version ([`super::MAP_VERSION`]).
    pub const MAP_VERSION: u16 = 3;
    /// Seconds since boot, u32 (2 registers, high word first).
    pub const UPTIME_S: u16 = 4;
    /// Latched fire stage: 0 normal, 1 pre-alarm, 2..=6 stage 1..=5.
    pub const STAGE: u16 = 6;
    /// Commanded outputs, bits in [`super::action`].
    pub const ACTIONS: u16 = 7;
    /// Status flags, bits in [`super::status`].
    pub const STATUS: u16 = 8;
    /// Active troubles, u32 (2 registers, high word first), bits in [`super::trouble`].
    pub const TROUBLES: u16 = 9;
    /// Output feedbacks as read back from the field, bits in [`super::feedback`].
    pub const FEEDBACKS: u16 = 11;
    /// Sensors currently valid (bit set) per [`super::sensor`] index.
    pub const SENSORS_VALID: u16 = 12;
    /// BMS maximum cell temperature, 0.1 C.
    pub const BMS_MAX_TEMP: u16 = 13;
    /// Rack temperature sensor 1, 0.1 C.
    pub const RACK_TEMP1: u16 = 14;
    /// Rack temperature sensor 2, 0.1 C.
    pub const RACK_TEMP2: u16 = 15;
    /// Thermal camera maximum over the rack region, 0.1 C.
    pub const CAMERA_MAX_TEMP: u16 = 16;
    /// Governing temperature (highest valid reading), 0.1 C.
    pub const GOVERNING_TEMP: u16 = 17;
    /// Off-gas concentration, 0.1 % LFL.
    pub const OFFGAS_LFL: u16 = 18;
    /// Smoke detector state: see [`super::input_state`].
    pub const SMOKE: u16 = 19;
    /// Sensors under a timed network inhibit, bit per [`super::sensor`] index.
    pub const SENSORS_INHIBITED: u16 = 20;
    /// Sequence number of the newest event ever logged, u32 (0 = none yet).
    pub const EVENT_SEQ: u16 = 21;
    /// Number of valid entries in the event window (0..=[`super::EVENT_WINDOW_ENTRIES`]).
    pub const EVENT_WINDOW_LEN: u16 = 23;
    /// Board hardware troubles, u32, bits in [`super::board_trouble`]. Any of them also sets
    /// [`super::trouble::BOARD`] in [`TROUBLES`].
    pub const BOARD_TROUBLES: u16 = 24;
    /// Line-monitored inputs whose line is open, shorted or out of band, bit per
    /// [`super::line`] index.
    pub const LINE_FAULT: u16 = 26;
    /// Line-monitored inputs read as an open line, bit per [`super::line`] index.
    pub const LINE_OPEN: u16 = 27;
    /// Line-monitored inputs read as a shorted line, bit per [`super::line`] index.
    pub const LINE_SHORT: u16 = 28;
    /// Line-monitored inputs in their active state (alarm, switch operated, feedback
    /// reporting), bit per [`super::line`] index.
    pub const LINE_ACTIVE: u16 = 29;
    /// Release inputs found active or faulted at power-up and not yet seen normal: held off
    /// (never a release), bit per [`super::line`] index.
    pub const INPUTS_BLOCKED: u16 = 30;
    /// Output circuits whose read-back disagrees with the command, bit per [`super::output`]
    /// index.
    pub const OUTPUT_MISMATCH: u16 = 31;
    /// Output circuits whose field line is open, shorted or out of band, bit per
    /// [`super::output`] index.
    pub const OUTPUT_LINE_FAULT: u16 = 32;
    /// Output circuits read back as energised, bit per [`super::output`] index.
    pub const OUTPUT_ENERGISED: u16 = 33;
    /// Last internal reference (VREFINT) conversion, raw 12-bit counts against the 3.000 V
    /// VREF+; 0 = no valid conversion.
    pub const VREFINT_RAW: u16 = 34;
    /// Cause of the last reset, bits in [`super::reset_cause`].
    pub const RESET_CAUSE: u16 = 35;
    /// Boots counted in the non-volatile area, u32 (restarts at 1 when that record was lost).
    pub const BOOT_COUNT: u16 = 36;
    /// Program counter of the last fault that reset the controller, u32 (0 = none).
    pub const FAULT_PC: u16 = 38;
    /// Longest control cycle since boot, microseconds, u32.
    pub const CYCLE_MAX_US: u16 = 40;
    /// Deepest stack use since boot, bytes (0 = not measured).
    pub const STACK_PEAK: u16 = 42;
    /// The room's gas release input as the controller sees it ([`super::input_state`]): 0 not
    /// operated, 1 operated, 2 line fault, 3 not wired to this controller (board rev B: the
    /// room's gas release is a room panel input, given to the logic as "no sample", so it can
    /// never release the room gas from here; never read as "not operated").
    pub const ROOM_GAS_RELEASE: u16 = 43;
    /// First register of the event window: the newest events, newest first,
    /// [`super::EVENT_ENTRY_REGS`] registers each.
    pub const EVENT_WINDOW: u16 = 44;
    /// Number of input registers.
    pub const COUNT: u16 = EVENT_WINDOW + super::EVENT_WINDOW_ENTRIES * super::EVENT_ENTRY_REGS;
}

/// Entries in the event window.
pub const EVENT_WINDOW_ENTRIES: u16 = 8;
/// Registers per event entry: sequence u32, time u32 (seconds), code, detail.
pub const EVENT_ENTRY_REGS: u16 = 6;
/// Offsets inside one event entry.
pub mod event_entry {
    /// Event sequence number, u32 (high word first).
    pub const SEQ: u16 = 0;
    /// Event time in seconds since boot, u32.
    pub const TIME_S: u16 = 2;
    /// High byte: priority (1 alarm, 2 supervisory, 3 trouble); low byte: event kind
    /// ([`super::event_kind`]).
    pub const CODE: u16 = 4;
    /// Kind-specific detail (the stage for a stage change, the trouble bit for a trouble).
    pub const DETAIL: u16 = 5;
}

/// Event kind codes (low byte of [`event_entry::CODE`]) and the meaning of the detail register.
pub mod event_kind {
    /// A stage was entered; detail = stage code.
    pub const STAGE_ENTERED: u8 = 1;
    /// Local reset accepted.
    pub const RESET_ACCEPTED: u8 = 2;
    /// Local reset refused; detail = reason (0 temperature, 1 smoke, 2 off-gas, 3 no valid
    /// temperature, 4 a source not valid: sensor index in the high byte).
    pub const RESET_REFUSED: u8 = 3;
    /// Local manual release operated.
    pub const MANUAL_RELEASE: u8 = 4;
    /// Agent released.
    pub const AGENT_RELEASED: u8 = 5;
    /// Agent held back by manual-only mode.
    pub const AGENT_INHIBITED_MANUAL_ONLY: u8 = 6;
    /// Room gas pre-discharge warning started.
    pub const GAS_WARNING_STARTED: u8 = 7;
    /// Room gas held by the hold switch.
    pub const GAS_HELD: u8 = 8;
    /// Room gas waits for manual release (manual-only mode).
    pub const GAS_WAITING_MANUAL_ONLY: u8 = 9;
    /// Room gas released.
    pub const GAS_RELEASED: u8 = 10;
    /// Battery isolated after losing every valid temperature source.
    pub const BATTERY_ISOLATED: u8 = 11;
    /// A source became invalid; detail = sensor index | reason << 8.
    pub const SOURCE_INVALID: u8 = 12;
    /// A source became valid; detail = sensor index.
    pub const SOURCE_VALID: u8 = 13;
    /// A trouble was raised; detail = trouble bit.
    pub const TROUBLE_RAISED: u8 = 14;
    /// A trouble cleared; detail = trouble bit.
    pub const TROUBLE_CLEARED: u8 = 15;
    /// A supervisory signal was raised; detail = status bit.
    pub const SUPERVISORY_RAISED: u8 = 16;
    /// A supervisory signal cleared; detail = status bit.
    pub const SUPERVISORY_CLEARED: u8 = 17;
    /// Network: buzzer acknowledged.
    pub const ACKNOWLEDGED: u8 = 18;
    /// Network: time synchronised.
    pub const TIME_SYNCED: u8 = 19;
    /// Test mode started.
    pub const TEST_MODE_STARTED: u8 = 20;
    /// Test mode ended; detail = 1 when ended by a real detection.
    pub const TEST_MODE_ENDED: u8 = 21;
    /// A sensor was inhibited; detail = sensor index.
    pub const SENSOR_INHIBITED: u8 = 22;
    /// A sensor inhibit ended; detail = sensor index.
    pub const INHIBIT_ENDED: u8 = 23;
    /// A network command was refused; detail = reason (0 stage active, 1 sensor not
    /// faulted, 2 sensor not fitted, 3 another sensor inhibited, 4 bad duration, 5 bad time).
    pub const COMMAND_REFUSED: u8 = 24;
    /// The logic was restored from the non-volatile record; detail = restored stage.
    pub const RESTORED: u8 = 25;
    /// The non-volatile record was found corrupt at boot (not trusted).
    pub const NV_RECORD_CORRUPT: u8 = 26;
    /// Local reset accepted with the reset key held, invalid sources taken out of service;
    /// detail = bit mask of those sensors (bit = sensor index).
    pub const RESET_OVERRIDE: u8 = 27;
    /// The room's manual gas release was operated (the gas follows the pre-discharge warning;
    /// the stage-5 entry follows in the same cycle unless stage 5 was already latched).
    pub const ROOM_GAS_RELEASE: u8 = 28;
    /// The controller (re)started; detail = [`super::reset_cause`] bits of the reset. Priority
    /// trouble when the cause is in [`super::reset_cause::UNEXPECTED`], information otherwise.
    /// The first entry of every boot.
    pub const CONTROLLER_RESET: u8 = 29;
    /// Reset loop: too many unexpected resets within the window; the contactor is held tripped
    /// (battery isolated) until a local reset. Detail = unexpected resets counted.
    pub const RESET_LOOP: u8 = 30;
    /// The reset-loop lockout ended; detail = 0 with a reset the logic accepted, 1 with the
    /// local reset key while no stage was latched (on the logic's reset conditions).
    pub const RESET_LOOP_CLEARED: u8 = 31;

    /// Every kind with its name, as the device profile documents them (checked by
    /// `tests/it/profile.rs`). Codes are contiguous from 1.
    pub const ALL: [(u8, &str); 31] = [
        (STAGE_ENTERED, "stage_entered"),
        (RESET_ACCEPTED, "reset_accepted"),
        (RESET_REFUSED, "reset_refused"),
        (MANUAL_RELEASE, "manual_release"),
        (AGENT_RELEASED, "agent_released"),
        (AGENT_INHIBITED_MANUAL_ONLY, "agent_inhibited_manual_only"),
        (GAS_WARNING_STARTED, "gas_warning_started"),
        (GAS_HELD, "gas_held"),
        (GAS_WAITING_MANUAL_ONLY, "gas_waiting_manual_only"),
        (GAS_RELEASED, "gas_released"),
        (BATTERY_ISOLATED, "battery_isolated"),
        (SOURCE_INVALID, "source_invalid"),
        (SOURCE_VALID, "source_valid"),
        (TROUBLE_RAISED, "trouble_raised"),
        (TROUBLE_CLEARED, "trouble_cleared"),
        (SUPERVISORY_RAISED, "supervisory_raised"),
        (SUPERVISORY_CLEARED, "supervisory_cleared"),
        (ACKNOWLEDGED, "acknowledged"),
        (TIME_SYNCED, "time_synced"),
        (TEST_MODE_STARTED, "test_mode_started"),
        (TEST_MODE_ENDED, "test_mode_ended"),
        (SENSOR_INHIBITED, "sensor_inhibited"),
        (INHIBIT_ENDED, "inhibit_ended"),
        (COMMAND_REFUSED, "command_refused"),
        (RESTORED, "restored"),
        (NV_RECORD_CORRUPT, "nv_record_corrupt"),
        (RESET_OVERRIDE, "reset_override"),
        (ROOM_GAS_RELEASE, "room_gas_release"),
        (CONTROLLER_RESET, "controller_reset"),
        (RESET_LOOP, "reset_loop"),
        (RESET_LOOP_CLEARED, "reset_loop_cleared"),
    ];
}

/// Coil addresses (function codes 1, 5, 15). Writing 1 asks for the command; writing 0 ends
/// test mode and is ignored on the silence coil; an inhibit cannot be cut short (writing 0
/// there is an illegal data value). Reading gives the current state.
pub mod coil {
    /// Acknowledge and silence the local buzzer. Reads 1 while silenced.
    pub const SILENCE_BUZZER: u16 = 0;
    /// Request test mode (refused by the logic while any stage is active). Reads 1 in test mode.
    pub const TEST_MODE: u16 = 1;
    /// Timed inhibit of one faulted sensor for [`super::INHIBIT_DURATION_MS`]; coil
    /// `INHIBIT_BASE + sensor index`. Reads 1 while that sensor is inhibited.
    pub const INHIBIT_BASE: u16 = 2;
    /// Number of coils.
    pub const COUNT: u16 = INHIBIT_BASE + super::sensor::COUNT;
}

/// Sensor indexes, used by [`input::SENSORS_VALID`], [`input::SENSORS_INHIBITED`] and the
/// inhibit coils.
pub mod sensor {
    /// BMS maximum cell temperature.
    pub const BMS: u16 = 0;
    /// Rack temperature sensor 1.
    pub const RACK_TEMP1: u16 = 1;
    /// Rack temperature sensor 2.
    pub const RACK_TEMP2: u16 = 2;
    /// Thermal camera.
    pub const CAMERA: u16 = 3;
    /// Smoke detector.
    pub const SMOKE: u16 = 4;
    /// Off-gas detector.
    pub const OFFGAS: u16 = 5;
    /// Number of sensors.
    pub const COUNT: u16 = 6;
    /// Names, by index (as used in profiles and logs).
    pub const NAMES: [&str; COUNT as usize] = [
        "bms",
        "rack_temp1",
        "rack_temp2",
        "camera",
        "smoke",
        "offgas",
    ];
}

/// Bits of [`input::ACTIONS`] (commanded outputs). Bits 0..=6 are the fire logic's `Actions`
/// bits (pinned by a test in `controller.rs`).
pub mod action {
    /// Battery contactor commanded open (battery isolated; also forced by the fire authority).
    pub const CONTACTOR_OPEN: u16 = 1 << 0;
    /// Fire blanket drop.
    pub const BLANKET_DROP: u16 = 1 << 1;
    /// Extinguishing patch fire.
    pub const PATCH_FIRE: u16 = 1 << 2;
    /// Agent discharge through the rack nozzles.
    pub const AGENT_RELEASE: u16 = 1 << 3;
    /// Coolant water on.
    pub const COOLANT_ON: u16 = 1 << 4;
    /// Room extinguishing gas release.
    pub const GAS_RELEASE: u16 = 1 << 5;
    /// Room extinguishing gas pre-discharge warning (sounders).
    pub const GAS_WARNING: u16 = 1 << 6;
    /// Local buzzer sounding.
    pub const BUZZER: u16 = 1 << 7;
}

/// Bits of [`input::STATUS`]. Bits 0..=5 are the fire logic's supervisory signals.
pub mod status {
    /// Supervisory: the governing temperature rises faster than the configured rate.
    pub const RATE_OF_RISE: u16 = 1 << 0;
    /// Supervisory: off-gas at or above the supervisory level.
    pub const OFFGAS_WARNING: u16 = 1 << 1;
    /// Manual-only mode (room occupied): automatic release disabled, reported as a bypass.
    pub const MANUAL_ONLY: u16 = 1 << 2;
    /// Fire authority in command (battery power forced off).
    pub const AUTHORITY: u16 = 1 << 3;
    /// Test mode active.
    pub const TEST_MODE: u16 = 1 << 4;
    /// Battery isolated because no valid temperature source remained.
    pub const ISOLATED_NO_TEMPERATURE: u16 = 1 << 5;
    /// Buzzer silenced by an acknowledge.
    pub const SILENCED: u16 = 1 << 8;
    /// Hold/abort switch held.
    pub const HOLD: u16 = 1 << 9;
    /// The logic has run at least once since boot (outputs are live, not boot-safe defaults).
    pub const RUNNING: u16 = 1 << 10;
    /// The latch record was restored from non-volatile memory at boot.
    pub const RESTORED: u16 = 1 << 11;
    /// The smoke detector is in alarm.
    pub const SMOKE_ALARM: u16 = 1 << 12;
    /// Reset-loop lockout: the contactor is held tripped (battery isolated) after too many
    /// unexpected resets, until a local reset ([`super::board_trouble::RESET_LOOP`]).
    pub const RESET_LOOP: u16 = 1 << 13;
}

/// Bits of [`input::TROUBLES`] (u32). Bits 0..=17 are the fire logic's `Troubles` bits (pinned
/// by a test in `controller.rs`); bits 24.. are the controller's own.
pub mod trouble {
    /// BMS temperature invalid (fault, stale, open, short, out of range, disagreeing).
    pub const BMS_INVALID: u32 = 1 << 0;
    /// Rack temperature sensor 1 invalid.
    pub const RACK_TEMP1_INVALID: u32 = 1 << 1;
    /// Rack temperature sensor 2 invalid.
    pub const RACK_TEMP2_INVALID: u32 = 1 << 2;
    /// Camera invalid.
    pub const CAMERA_INVALID: u32 = 1 << 3;
    /// Smoke detector invalid.
    pub const SMOKE_INVALID: u32 = 1 << 4;
    /// Off-gas detector invalid.
    pub const OFFGAS_INVALID: u32 = 1 << 5;
    /// No valid temperature source left.
    pub const NO_VALID_TEMPERATURE: u32 = 1 << 6;
    /// A sensor is under a timed network inhibit.
    pub const SENSOR_INHIBITED: u32 = 1 << 7;
    /// Contactor feedback disagrees with the command.
    pub const CONTACTOR_MISMATCH: u32 = 1 << 8;
    /// Blanket feedback disagrees with the command.
    pub const BLANKET_MISMATCH: u32 = 1 << 9;
    /// Patch feedback disagrees with the command.
    pub const PATCH_MISMATCH: u32 = 1 << 10;
    /// Agent pressure feedback disagrees with the command.
    pub const AGENT_MISMATCH: u32 = 1 << 11;
    /// Coolant flow feedback disagrees with the command.
    pub const COOLANT_MISMATCH: u32 = 1 << 12;
    /// Gas released feedback disagrees with the command.
    pub const GAS_MISMATCH: u32 = 1 << 13;
    /// A feedback line reports a fault.
    pub const FEEDBACK_FAULT: u32 = 1 << 14;
    /// A local switch line reports a fault.
    pub const SWITCH_FAULT: u32 = 1 << 15;
    /// The logic's event log had to drop an event.
    pub const EVENT_LOG_OVERFLOW: u32 = 1 << 16;
    /// The restored latch record was written under another configuration.
    pub const CONFIG_CHANGED: u32 = 1 << 17;
    /// Non-volatile latch record corrupt or unreadable at boot (not trusted).
    pub const NV_RECORD: u32 = 1 << 24;
    /// Writing the non-volatile latch record failed.
    pub const NV_WRITE: u32 = 1 << 25;
    /// A control cycle overran its period (the watchdog was not fed for it).
    pub const CYCLE_OVERRUN: u32 = 1 << 26;
    /// A board hardware fault: the details are in [`super::input::BOARD_TROUBLES`].
    pub const BOARD: u32 = 1 << 27;
}

/// Bits of [`input::BOARD_TROUBLES`] (u32): faults of the controller board itself, found by its
/// own diagnostics. Each one is also summarised in [`trouble::BOARD`].
pub mod board_trouble {
    /// The internal reference (VREFINT) read out of range against VREF+: the analogue readings
    /// of that scan were discarded (temperatures invalid, line states held then faulted).
    pub const REFERENCE: u32 = 1 << 0;
    /// The supply voltage detector reports VDD below its threshold (2.9 V): readings discarded.
    pub const SUPPLY_LOW: u32 = 1 << 1;
    /// An ADC conversion did not complete, or the converter's self-check failed.
    pub const ADC: u32 = 1 << 2;
    /// A line-monitored input is open, shorted or out of band ([`super::input::LINE_FAULT`]).
    pub const LINE: u32 = 1 << 3;
    /// A release input (manual release, reset key) was active or faulted at power-up; it is
    /// held off until seen normal ([`super::input::INPUTS_BLOCKED`]).
    pub const RELEASE_INPUT_AT_POWER_UP: u32 = 1 << 4;
    /// An output circuit reads back otherwise than commanded
    /// ([`super::input::OUTPUT_MISMATCH`]).
    pub const OUTPUT_MISMATCH: u32 = 1 << 5;
    /// A release or contactor line is open, shorted or out of band
    /// ([`super::input::OUTPUT_LINE_FAULT`]).
    pub const OUTPUT_LINE: u32 = 1 << 6;
    /// The backup regulator is not ready: the latch record would not survive a power loss.
    pub const NV_RETENTION: u32 = 1 << 7;
    /// The last reset was not a power-up or the reset pin (watchdog, fault, brown-out,
    /// unknown): see [`super::input::RESET_CAUSE`]. Cleared by the acknowledge coil.
    pub const UNEXPECTED_RESET: u32 = 1 << 8;
    /// The stack reached its guard band.
    pub const STACK: u32 = 1 << 9;
    /// The brown-out reset level could not be set (option bytes).
    pub const BROWN_OUT_CONFIG: u32 = 1 << 10;
    /// Reset loop: too many unexpected resets (watchdog, fault, brown-out, unknown) within the
    /// window; the battery is isolated until a local reset ([`super::status::RESET_LOOP`]). Not
    /// cleared by the acknowledge coil.
    pub const RESET_LOOP: u32 = 1 << 11;
}

/// Indexes of the line-monitored inputs (bits of [`input::LINE_FAULT`] and the other line
/// registers).
pub mod line {
    /// Smoke detector relay.
    pub const SMOKE: u16 = 0;
    /// Local manual release.
    pub const MANUAL_RELEASE: u16 = 1;
    /// Local reset key.
    pub const RESET: u16 = 2;
    /// Hold/abort switch of the room gas.
    pub const HOLD: u16 = 3;
    /// Manual-only mode switch.
    pub const MANUAL_ONLY: u16 = 4;
    /// Fire-authority key switch.
    pub const AUTHORITY: u16 = 5;
    /// First of the six output feedbacks, in the order of [`super::feedback`].
    pub const FEEDBACK_BASE: u16 = 6;
    /// Number of line-monitored inputs.
    pub const COUNT: u16 = 12;
    /// Names, by index (as used in profiles, logs and the hazard log).
    pub const NAMES: [&str; COUNT as usize] = [
        "smoke",
        "manual_release",
        "reset",
        "hold",
        "manual_only",
        "authority",
        "fb_contactor_open",
        "fb_blanket_down",
        "fb_patch_fired",
        "fb_agent_pressure",
        "fb_coolant_flow",
        "fb_gas_released",
    ];
}

/// Indexes of the output circuits (bits of [`input::OUTPUT_MISMATCH`],
/// [`input::OUTPUT_LINE_FAULT`] and [`input::OUTPUT_ENERGISED`]).
pub mod output {
    /// Battery contactor hold coil (energised = battery connected; de-energise to trip).
    pub const CONTACTOR_HOLD: u16 = 0;
    /// Fire blanket release.
    pub const BLANKET: u16 = 1;
    /// Extinguishing patch release.
    pub const PATCH: u16 = 2;
    /// Agent release.
    pub const AGENT: u16 = 3;
    /// Coolant valve.
    pub const COOLANT: u16 = 4;
    /// Room gas release.
    pub const GAS_RELEASE: u16 = 5;
    /// Room gas pre-discharge warning sounders.
    pub const GAS_WARNING: u16 = 6;
    /// Number of monitored output circuits (the local buzzer is not monitored).
    pub const COUNT: u16 = 7;
    /// Names, by index.
    pub const NAMES: [&str; COUNT as usize] = [
        "contactor_hold",
        "blanket",
        "patch",
        "agent",
        "coolant",
        "gas_release",
        "gas_warning",
    ];
}

/// Bits of [`input::RESET_CAUSE`]: the hardware reset flags read at boot and what the firmware
/// recorded in the non-volatile area before it reset itself.
pub mod reset_cause {
    /// Power-on / power-down reset (normal power-up).
    pub const POWER_ON: u16 = 1 << 0;
    /// The reset pin (NRST) alone.
    pub const PIN: u16 = 1 << 1;
    /// Software reset request.
    pub const SOFTWARE: u16 = 1 << 2;
    /// Independent watchdog.
    pub const IWDG: u16 = 1 << 3;
    /// Window watchdog.
    pub const WWDG: u16 = 1 << 4;
    /// Low-power management reset.
    pub const LOW_POWER: u16 = 1 << 5;
    /// Brown-out reset while running (without a power-on).
    pub const BROWN_OUT: u16 = 1 << 6;
    /// The fault handler (hard fault, NMI, unexpected interrupt) reset the controller.
    pub const FAULT: u16 = 1 << 7;
    /// A panic reset the controller (the image is built so that none can happen).
    pub const PANIC: u16 = 1 << 8;
    /// The program-flow check refused to feed the watchdogs.
    pub const FLOW: u16 = 1 << 9;
    /// The fault was a stack overflow (stack pointer below the stack region).
    pub const STACK: u16 = 1 << 10;
    /// No hardware flag and no record: the cause is unknown.
    pub const UNKNOWN: u16 = 1 << 11;
    /// The boot record in the non-volatile area was missing or corrupt (boot count restarted).
    pub const NV_LOST: u16 = 1 << 12;
    /// Causes that raise [`super::board_trouble::UNEXPECTED_RESET`]: anything but a power-up or
    /// the reset pin.
    pub const UNEXPECTED: u16 =
        SOFTWARE | IWDG | WWDG | LOW_POWER | BROWN_OUT | FAULT | PANIC | FLOW | STACK | UNKNOWN;
}

/// Bits of [`input::FEEDBACKS`].
pub mod feedback {
    /// Contactor reports open.
    pub const CONTACTOR_OPEN: u16 = 1 << 0;
    /// Blanket reports down.
    pub const BLANKET_DOWN: u16 = 1 << 1;
    /// Patch reports fired.
    pub const PATCH_FIRED: u16 = 1 << 2;
    /// Agent pressure switch (agent discharged).
    pub const AGENT_PRESSURE: u16 = 1 << 3;
    /// Coolant flow switch.
    pub const COOLANT_FLOW: u16 = 1 << 4;
    /// Room gas released.
    pub const GAS_RELEASED: u16 = 1 << 5;
}

/// Values of discrete input-state registers such as [`input::SMOKE`] and
/// [`input::ROOM_GAS_RELEASE`].
pub mod input_state {
    /// Normal (a switch: not operated).
    pub const NORMAL: u16 = 0;
    /// Alarm (a switch: operated).
    pub const ALARM: u16 = 1;
    /// Fault.
    pub const FAULT: u16 = 2;
    /// Not fitted.
    pub const NOT_FITTED: u16 = 3;
}

/// Which Modbus table a definition lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// Input registers (function 4).
    Input,
    /// Coils (functions 1, 5, 15).
    Coil,
}

impl Table {
    /// Name as written in device profiles.
    pub const fn name(self) -> &'static str {
        match self {
            Table::Input => "input",
            Table::Coil => "coil",
        }
    }
}

/// Wire type of a definition, as named in device profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    /// Unsigned 16-bit.
    U16,
    /// Signed 16-bit.
    I16,
    /// Unsigned 32-bit, high word first.
    U32,
    /// One bit of a register (index 0 = least significant).
    Bit(u8),
    /// A coil.
    Bool,
}

impl DataType {
    /// Name as written in device profiles.
    pub const fn name(self) -> &'static str {
        match self {
            DataType::U16 => "u16",
            DataType::I16 => "i16",
            DataType::U32 => "u32",
            DataType::Bit(_) => "bit",
            DataType::Bool => "bool",
        }
    }

    /// Registers (or coils) occupied.
    pub const fn width(self) -> u16 {
        match self {
            DataType::U32 => 2,
            _ => 1,
        }
    }
}

/// One published value of the map, as the edge agent's profile must describe it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PointDef {
    /// Point id (the profile's `id`).
    pub id: &'static str,
    /// Semantic role from the point vocabulary (`custom.` for controller-specific values).
    pub role: &'static str,
    /// Labels the role needs, as `(name, value)`.
    pub labels: &'static [(&'static str, &'static str)],
    /// Modbus table.
    pub table: Table,
    /// Protocol (wire) address; the profile uses `address_base = 0`.
    pub register: u16,
    /// Wire type.
    pub data_type: DataType,
    /// Engineering value = raw * scale.
    pub scale: f32,
}

const fn ir(id: &'static str, role: &'static str, register: u16, data_type: DataType) -> PointDef {
    PointDef {
        id,
        role,
        labels: &[],
        table: Table::Input,
        register,
        data_type,
        scale: 1.0,
    }
}

const fn temp(
    id: &'static str,
    role: &'static str,
    labels: &'static [(&'static str, &'static str)],
    register: u16,
) -> PointDef {
    PointDef {
        id,
        role,
        labels,
        table: Table::Input,
        register,
        data_type: DataType::I16,
        scale: 0.1,
    }
}

const fn bit(id: &'static str, role: &'static str, register: u16, mask: u16) -> PointDef {
    PointDef {
        id,
        role,
        labels: &[],
        table: Table::Input,
        register,
        data_type: DataType::Bit(mask.trailing_zeros() as u8),
        scale: 1.0,
    }
}

const fn cl(id: &'static str, role: &'static str, register: u16) -> PointDef {
    PointDef {
        id,
        role,
        labels: &[],
        table: Table::Coil,
        register,
        data_type: DataType::Bool,
        scale: 1.0,
    }
}

use DataType::{U16, U32};

/// Every point of the map. `device-profiles/rack-controller.toml` must list exactly these
/// (checked by `tests/it/profile.rs`).
pub const POINTS: &[PointDef] = &[
    ir(
        "fw_version_major",
        "custom.fw_version_major",
        input::FW_VERSION_MAJOR,
        U16,
    ),
    ir(
        "fw_version_minor",
        "custom.fw_version_minor",
        input::FW_VERSION_MINOR,
        U16,
    ),
    ir(
        "fw_version_patch",
        "custom.fw_version_patch",
        input::FW_VERSION_PATCH,
        U16,
    ),
    ir("map_version", "custom.map_version", input::MAP_VERSION, U16),
    ir("uptime", "device.uptime_s", input::UPTIME_S, U32),
    ir("stage", "fire.stage", input::STAGE, U16),
    ir("actions", "custom.fire_actions", input::ACTIONS, U16),
    bit(
        "cmd_contactor_open",
        "custom.cmd_contactor_open",
        input::ACTIONS,
        action::CONTACTOR_OPEN,
    ),
    bit(
        "cmd_agent",
        "custom.cmd_agent",
        input::ACTIONS,
        action::AGENT_RELEASE,
    ),
    bit(
        "cmd_coolant",
        "custom.cmd_coolant",
        input::ACTIONS,
        action::COOLANT_ON,
    ),
    bit(
        "cmd_gas_release",
        "custom.cmd_gas_release",
        input::ACTIONS,
        action::GAS_RELEASE,
    ),
    ir("status", "custom.fire_status", input::STATUS, U16),
    bit(
        "manual_only",
        "fire.manual_only",
        input::STATUS,
        status::MANUAL_ONLY,
    ),
    bit(
        "authority",
        "fire.authority",
        input::STATUS,
        status::AUTHORITY,
    ),
    bit(
        "reset_loop_isolated",
        "custom.reset_loop_isolated",
        input::STATUS,
        status::RESET_LOOP,
    ),
    PointDef {
        labels: &[("sensor", "1")],
        ..bit(
            "smoke_alarm",
            "rack.smoke",
            input::STATUS,
            status::SMOKE_ALARM,
        )
    },
    ir("troubles", "fire.troubles", input::TROUBLES, U32),
    ir("feedbacks", "custom.fire_feedbacks", input::FEEDBACKS, U16),
    bit(
        "fb_contactor_open",
        "fire.contactor_open",
        input::FEEDBACKS,
        feedback::CONTACTOR_OPEN,
    ),
    bit(
        "fb_blanket_down",
        "fire.blanket_down",
        input::FEEDBACKS,
        feedback::BLANKET_DOWN,
    ),
    bit(
        "fb_patch_fired",
        "fire.patch_fired",
        input::FEEDBACKS,
        feedback::PATCH_FIRED,
    ),
    bit(
        "fb_agent_pressure",
        "custom.agent_pressure_switch",
        input::FEEDBACKS,
        feedback::AGENT_PRESSURE,
    ),
    bit(
        "fb_coolant_flow",
        "custom.coolant_flow_switch",
        input::FEEDBACKS,
        feedback::COOLANT_FLOW,
    ),
    bit(
        "fb_gas_released",
        "fire.gas_released",
        input::FEEDBACKS,
        feedback::GAS_RELEASED,
    ),
    ir(
        "sensors_valid",
        "custom.sensors_valid",
        input::SENSORS_VALID,
        U16,
    ),
    temp(
        "bms_max_temp",
        "battery.cell_temp.max",
        &[],
        input::BMS_MAX_TEMP,
    ),
    temp(
        "rack_temp1",
        "rack.temp",
        &[("sensor", "1")],
        input::RACK_TEMP1,
    ),
    temp(
        "rack_temp2",
        "rack.temp",
        &[("sensor", "2")],
        input::RACK_TEMP2,
    ),
    temp(
        "camera_max_temp",
        "camera.region_max_temp",
        &[("region", "rack")],
        input::CAMERA_MAX_TEMP,
    ),
    temp(
        "governing_temp",
        "custom.governing_temp",
        &[],
        input::GOVERNING_TEMP,
    ),
    temp("offgas", "rack.offgas_lfl", &[], input::OFFGAS_LFL),
    ir("smoke_state", "custom.smoke_state", input::SMOKE, U16),
    ir(
        "sensors_inhibited",
        "custom.sensors_inhibited",
        input::SENSORS_INHIBITED,
        U16,
    ),
    ir("event_seq", "custom.event_seq", input::EVENT_SEQ, U32),
    ir(
        "event_window_len",
        "custom.event_window_len",
        input::EVENT_WINDOW_LEN,
        U16,
    ),
    ir(
        "board_troubles",
        "custom.board_troubles",
        input::BOARD_TROUBLES,
        U32,
    ),
    ir("line_fault", "custom.line_fault", input::LINE_FAULT, U16),
    ir("line_open", "custom.line_open", input::LINE_OPEN, U16),
    ir("line_short", "custom.line_short", input::LINE_SHORT, U16),
    ir("line_active", "custom.line_active", input::LINE_ACTIVE, U16),
    ir(
        "inputs_blocked",
        "custom.inputs_blocked",
        input::INPUTS_BLOCKED,
        U16,
    ),
    ir(
        "output_mismatch",
        "custom.output_mismatch",
        input::OUTPUT_MISMATCH,
        U16,
    ),
    ir(
        "output_line_fault",
        "custom.output_line_fault",
        input::OUTPUT_LINE_FAULT,
        U16,
    ),
    ir(
        "output_energised",
        "custom.output_energised",
        input::OUTPUT_ENERGISED,
        U16,
    ),
    ir("vrefint_raw", "custom.vrefint_raw", input::VREFINT_RAW, U16),
    ir("reset_cause", "custom.reset_cause", input::RESET_CAUSE, U16),
    ir("boot_count", "custom.boot_count", input::BOOT_COUNT, U32),
    ir("fault_pc", "custom.fault_pc", input::FAULT_PC, U32),
    ir(
        "cycle_max_us",
        "custom.cycle_max_us",
        input::CYCLE_MAX_US,
        U32,
    ),
    ir(
        "stack_peak",
        "custom.stack_peak_bytes",
        input::STACK_PEAK,
        U16,
    ),
    ir(
        "room_gas_release",
        "custom.room_gas_release_state",
        input::ROOM_GAS_RELEASE,
        U16,
    ),
    cl("silence_buzzer", "custom.cmd_silence", coil::SILENCE_BUZZER),
    cl("test_mode", "custom.cmd_test_mode", coil::TEST_MODE),
    cl(
        "inhibit_bms",
        "custom.cmd_inhibit_bms",
        coil::INHIBIT_BASE + sensor::BMS,
    ),
    cl(
        "inhibit_rack_temp1",
        "custom.cmd_inhibit_rack_temp1",
        coil::INHIBIT_BASE + sensor::RACK_TEMP1,
    ),
    cl(
        "inhibit_rack_temp2",
        "custom.cmd_inhibit_rack_temp2",
        coil::INHIBIT_BASE + sensor::RACK_TEMP2,
    ),
    cl(
        "inhibit_camera",
        "custom.cmd_inhibit_camera",
        coil::INHIBIT_BASE + sensor::CAMERA,
    ),
    cl(
        "inhibit_smoke",
        "custom.cmd_inhibit_smoke",
        coil::INHIBIT_BASE + sensor::SMOKE,
    ),
    cl(
        "inhibit_offgas",
        "custom.cmd_inhibit_offgas",
        coil::INHIBIT_BASE + sensor::OFFGAS,
    ),
];

// The whole input table is readable with one Modbus request (at most 125 registers).
const _: () = assert!(input::COUNT <= 125);

/// Looks a point up by name.
pub fn point(id: &str) -> Option<&'static PointDef> {
    POINTS.iter().find(|p| p.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_do_not_overlap_and_fit_the_tables() {
        for (i, a) in POINTS.iter().enumerate() {
            let limit = match a.table {
                Table::Input => input::EVENT_WINDOW,
                Table::Coil => coil::COUNT,
            };
            assert!(
                a.register + a.data_type.width() <= limit,
                "{} out of its table",
                a.id
            );
            for b in &POINTS[i + 1..] {
                assert_ne!(a.id, b.id, "duplicate id");
                let both_bits = matches!(
                    (a.data_type, b.data_type),
                    (DataType::Bit(_), DataType::Bit(_))
                );
                let one_bit = matches!(a.data_type, DataType::Bit(_))
                    != matches!(b.data_type, DataType::Bit(_));
                if a.table == b.table && !one_bit {
                    let disjoint = a.register + a.data_type.width() <= b.register
                        || b.register + b.data_type.width() <= a.register
                        || (both_bits && a.data_type != b.data_type);
                    assert!(disjoint, "{} overlaps {}", a.id, b.id);
                }
            }
        }
    }

    #[test]
    fn only_coils_are_writable_and_every_coil_is_a_command() {
        let coils = POINTS.iter().filter(|p| p.table == Table::Coil).count();
        assert_eq!(coils, usize::from(coil::COUNT));
        for p in POINTS.iter().filter(|p| p.table == Table::Coil) {
            assert!(p.role.starts_with("custom.cmd_"), "{}", p.id);
        }
    }
}
