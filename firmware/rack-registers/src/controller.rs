//! The board-independent rack controller: boot (restore the latch from non-volatile memory),
//! one control cycle, the allowed network commands, the watchdog policy and the published
//! snapshot. The Cortex-M image, the QEMU test image and the host simulator all run this code;
//! only sampling, output drivers, the UART and the flash differ per board.
//!
//! Invariants:
//! - until the first [`Controller::cycle`] after boot, [`Controller::drive`] gives the safe
//!   outputs (nothing actuated, buzzer off), whatever was restored;
//! - the latch record is written whenever its latched part changes (stage, actions, gas state,
//!   silence, peaks), never trusted when its CRC or format is wrong (trouble
//!   [`map::trouble::NV_RECORD`]), and a failed write is a trouble ([`map::trouble::NV_WRITE`]);
//! - network commands only reach the logic through [`fire_logic::NetworkCommand`], whose
//!   vocabulary cannot start, stop or reset anything;
//! - the reset-loop lockout ([`Controller::set_reset_loop`], decided by the board from its
//!   non-volatile reset history) holds the contactor open on top of the logic's outputs until a
//!   local reset: a reset the logic accepts, or the local reset key while no stage is latched,
//!   on the logic's own reset conditions. No network command ends it;
//! - the event window holds the logic's events and the controller's own (the reset cause at
//!   boot, the reset loop and its end), numbered in one increasing sequence.

use fire_logic::{
    Action, Analog, Config, ConfigError, Digital, Event, EventClass, EventKind, Inputs, Invalidity,
    LatchRecord, NetworkCommand, Outputs, RackLogic, Refused, ResetRefusal, SourceId,
};

use crate::map::{
    self, board_trouble, event_kind as ek, input_state, reset_cause, status, trouble,
};
use crate::nvstore::{Flash, NvStore, ScanReport, StoreError};
use crate::slave::Command;
use crate::snapshot::{BoardStatus, EventEntry, ResetInfo, Snapshot, WINDOW, priority};

/// How the controller came up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootState {
    /// No record in non-volatile memory: started in the normal stage.
    Fresh,
    /// Restored from the newest valid record.
    Restored,
    /// A record was written but none could be trusted: started in the normal stage, with the
    /// `NV_RECORD` trouble.
    Untrusted,
}

/// Why the controller could not boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootError {
    /// The logic configuration is invalid.
    Config(ConfigError),
    /// The flash region cannot hold the record store.
    Store(StoreError),
}

/// Last sample of each input, for publishing (the logic keeps its own filtered view).
#[derive(Debug, Clone, Copy, Default)]
struct Samples {
    temps: [Option<i32>; 4],
    offgas: Option<i32>,
    smoke: Digital,
    feedback: [Digital; 6],
    hold: Digital,
    room_gas: Digital,
}

fn keep_analog(slot: &mut Option<i32>, a: Analog) {
    match a {
        Analog::NoSample => {}
        Analog::Value(v) => *slot = Some(v),
        Analog::Fault => *slot = None,
    }
}

fn keep_digital(slot: &mut Digital, d: Digital) {
    if d != Digital::NoSample {
        *slot = d;
    }
}

impl Samples {
    fn update(&mut self, i: &Inputs) {
        for (slot, a) in
            self.temps
                .iter_mut()
                .zip([i.bms_max, i.rack_temp1, i.rack_temp2, i.camera_max])
        {
            keep_analog(slot, a);
        }
        keep_analog(&mut self.offgas, i.offgas);
        keep_digital(&mut self.smoke, i.smoke);
        for (slot, d) in self.feedback.iter_mut().zip(i.feedback) {
            keep_digital(slot, d);
        }
        keep_digital(&mut self.hold, i.hold);
        keep_digital(&mut self.room_gas, i.room_gas_release);
    }
}

/// The latched part of a record: everything but the event head, which moves with every event
/// and is written along with the next latched change.
fn latched_part(r: &LatchRecord) -> LatchRecord {
    LatchRecord {
        next_event_seq: 0,
        ..*r
    }
}

/// Decodes the `major.minor.patch` prefix of a version string (missing parts are 0).
pub const fn parse_version(v: &str) -> (u16, u16, u16) {
    let b = v.as_bytes();
    let mut parts = [0u16; 3];
    let mut idx = 0;
    let mut i = 0;
    while i < b.len() && idx < 3 {
        let c = b[i];
        if c == b'.' {
            idx += 1;
        } else if c.is_ascii_digit() {
            parts[idx] = parts[idx]
                .saturating_mul(10)
                .saturating_add((c - b'0') as u16);
        } else {
            break;
        }
        i += 1;
    }
    (parts[0], parts[1], parts[2])
}

/// The controller core over a flash region `F`.
#[derive(Debug)]
pub struct Controller<F: Flash> {
    logic: RackLogic,
    store: NvStore<F>,
    boot_state: BootState,
    scan: ScanReport,
    fw: (u16, u16, u16),
    running: bool,
    ctl_troubles: u32,
    persisted: Option<LatchRecord>,
    samples: Samples,
    window: heapless::Deque<EventEntry, WINDOW>,
    event_seq: u32,
    board: BoardStatus,
    reset: ResetInfo,
    reset_unacked: bool,
    cycle_max_us: u32,
    boot_ms: u64,
    /// Sequence number the next window entry gets at least.
    next_seq: u32,
    room_gas_wired: bool,
    /// Unexpected resets counted when the reset-loop lockout is in force.
    reset_loop: Option<u32>,
    reset_loop_cleared: bool,
    reset_key_level: bool,
    reset_key_armed: bool,
}

impl<F: Flash> Controller<F> {
    /// Boots: validates the configuration, scans the record store and restores the newest
    /// trusted latch record (or starts fresh). `now_ms` is the board's monotonic clock.
    pub fn boot(
        config: Config,
        flash: F,
        now_ms: u64,
        fw: (u16, u16, u16),
    ) -> Result<Self, BootError> {
        config.validate().map_err(BootError::Config)?;
        let mut store = NvStore::new(flash, LatchRecord::LEN).map_err(BootError::Store)?;
        let mut buf = [0u8; LatchRecord::LEN];
        let (found, scan) = store.load(&mut buf);
        let mut ctl_troubles = 0;
        if scan.newest_lost || (!found && scan.corrupt > 0) {
            ctl_troubles |= trouble::NV_RECORD;
        }
        let record = if found {
            match LatchRecord::from_bytes(&buf) {
                Ok(r) => Some(r),
                Err(_) => {
                    ctl_troubles |= trouble::NV_RECORD;
                    None
                }
            }
        } else {
            None
        };
        let (logic, boot_state) = match record {
            Some(r) => (
                RackLogic::restore(config, &r, now_ms).map_err(BootError::Config)?,
                BootState::Restored,
            ),
            None => {
                let state = if ctl_troubles & trouble::NV_RECORD != 0 {
                    BootState::Untrusted
                } else {
                    BootState::Fresh
                };
                (RackLogic::new(config).map_err(BootError::Config)?, state)
            }
        };
        // The logic numbers its events on from the restored record's head (0 when fresh).
        let next_seq = record.map_or(1, |r| r.next_event_seq.wrapping_add(1));
        Ok(Controller {
            boot_ms: now_ms,
            next_seq,
            room_gas_wired: false,
            reset_loop: None,
            reset_loop_cleared: false,
            reset_key_level: false,
            reset_key_armed: false,
            persisted: record,
            logic,
            store,
            boot_state,
            scan,
            fw,
            running: false,
            ctl_troubles,
            samples: Samples::default(),
            window: heapless::Deque::new(),
            event_seq: 0,
            board: BoardStatus::default(),
            reset: ResetInfo::default(),
            reset_unacked: false,
            cycle_max_us: 0,
        })
    }

    /// How the controller came up.
    pub fn boot_state(&self) -> BootState {
        self.boot_state
    }

    /// What the boot scan of the record store found.
    pub fn scan_report(&self) -> ScanReport {
        self.scan
    }

    /// The logic (read-only).
    pub fn logic(&self) -> &RackLogic {
        &self.logic
    }

    /// The record store (to hand the flash back, or inspect it in tests).
    pub fn store_mut(&mut self) -> &mut NvStore<F> {
        &mut self.store
    }

    /// Gives the flash back: everything else of the controller is lost, as in a reset.
    pub fn into_flash(self) -> F {
        self.store.into_flash()
    }

    /// True once the logic has run a cycle since boot.
    pub fn running(&self) -> bool {
        self.running
    }

    /// The outputs to drive now: the safe state until the logic has run once, then the
    /// logic's outputs (with the contactor held open during a reset-loop lockout).
    pub fn drive(&self) -> Outputs {
        if self.running {
            self.forced(self.logic.outputs())
        } else {
            Outputs::default()
        }
    }

    /// The logic's outputs with what the controller itself forces: the contactor open during a
    /// reset-loop lockout (the battery isolated, whatever the logic's stage).
    fn forced(&self, mut out: Outputs) -> Outputs {
        if self.reset_loop.is_some() {
            out.actions.insert(Action::ContactorOpen);
        }
        out
    }

    /// Declares whether the room's gas release input is wired to this controller (default:
    /// not wired, published as [`input_state::NOT_FITTED`], never as "not operated"). The
    /// host simulator wires it; board rev B does not (a room panel input).
    pub fn set_room_gas_release_wired(&mut self, wired: bool) {
        self.room_gas_wired = wired;
    }

    /// Starts the reset-loop lockout (decided by the board at boot from its non-volatile reset
    /// history: `count` unexpected resets within the window). The contactor is held open and
    /// [`board_trouble::RESET_LOOP`] raised until a local reset; logged as
    /// [`map::event_kind::RESET_LOOP`].
    pub fn set_reset_loop(&mut self, count: u32) {
        if self.reset_loop.is_none() {
            let detail = u16::try_from(count).unwrap_or(u16::MAX);
            self.push_own(self.boot_ms, ek::RESET_LOOP, detail, priority::SUPERVISORY);
        }
        self.reset_loop = Some(count);
    }

    /// The unexpected resets counted while the reset-loop lockout is in force.
    pub fn reset_loop(&self) -> Option<u32> {
        self.reset_loop
    }

    /// True once after the reset-loop lockout ended (the board then clears its non-volatile
    /// reset history).
    pub fn take_reset_loop_cleared(&mut self) -> bool {
        core::mem::take(&mut self.reset_loop_cleared)
    }

    /// Adds one of the controller's own events to the window.
    fn push_own(&mut self, now_ms: u64, kind: u8, detail: u16, priority: u8) {
        self.push_entry(EventEntry {
            seq: 0,
            time_s: u32::try_from(now_ms / 1000).unwrap_or(u32::MAX),
            priority,
            kind,
            detail,
        });
    }

    /// Adds an entry to the window with the next sequence number: at least one more than the
    /// previous entry's, and the logic's own number when that is higher (so a window without
    /// controller events numbers the logic's events as before).
    fn push_entry(&mut self, mut entry: EventEntry) {
        entry.seq = entry.seq.max(self.next_seq);
        self.next_seq = entry.seq.wrapping_add(1);
        self.event_seq = entry.seq;
        if self.window.is_full() {
            self.window.pop_back();
        }
        // Cannot fail: one slot was just freed if needed.
        let _ = self.window.push_front(entry);
    }

    /// One control cycle: runs the logic on `inputs`, persists the latch if it changed and
    /// collects the new events. Returns the outputs to drive.
    pub fn cycle(&mut self, now_ms: u64, inputs: &Inputs) -> Outputs {
        self.cycle_observed(now_ms, inputs, &mut |_| {})
    }

    /// [`Controller::cycle`], handing every event the logic logged in it to `observe` before it
    /// goes into the register window (the emulated-MCU replay writes them as trace output).
    pub fn cycle_observed(
        &mut self,
        now_ms: u64,
        inputs: &Inputs,
        observe: &mut impl FnMut(&Event),
    ) -> Outputs {
        self.samples.update(inputs);
        let out = self.logic.step(now_ms, inputs);
        self.running = true;
        let logic_reset = self.after_logic(observe);
        self.reset_loop_key(now_ms, inputs.reset, logic_reset);
        self.forced(out)
    }

    /// The local end of the reset-loop lockout: a reset the logic accepted in this cycle, or,
    /// while the logic has nothing latched (so it ignores the key), a press of the reset key
    /// (an Off -> On edge seen since boot, as the logic judges its switches) on the logic's
    /// own reset conditions. A refused press is logged as a refused reset with its reason.
    fn reset_loop_key(&mut self, now_ms: u64, key: Digital, logic_reset: bool) {
        let prev = self.reset_key_level;
        self.reset_key_level = match key {
            Digital::On => true,
            Digital::Off | Digital::Fault => false,
            Digital::NoSample => prev,
        };
        let press = self.reset_key_level && !prev && self.reset_key_armed;
        if matches!(key, Digital::Off | Digital::Fault) {
            self.reset_key_armed = true;
        }
        if self.reset_loop.is_none() {
            return;
        }
        let by = if logic_reset {
            Some(0)
        } else if press && !self.logic.is_latched() {
            match self.logic.reset_refusal_now() {
                None => Some(1),
                Some(r) => {
                    self.push_own(
                        now_ms,
                        ek::RESET_REFUSED,
                        refusal_code(&r),
                        priority::SUPERVISORY,
                    );
                    None
                }
            }
        } else {
            None
        };
        if let Some(detail) = by {
            self.reset_loop = None;
            self.reset_loop_cleared = true;
            self.push_own(
                now_ms,
                ek::RESET_LOOP_CLEARED,
                detail,
                priority::SUPERVISORY,
            );
        }
    }

    /// Publishes what the board's diagnostics found in this cycle.
    pub fn set_board_status(&mut self, board: BoardStatus) {
        self.board = board;
    }

    /// Records the cause of the last reset (from the board, at boot). A cause in
    /// [`reset_cause::UNEXPECTED`] raises [`board_trouble::UNEXPECTED_RESET`] until the
    /// acknowledge coil is written.
    /// The cause also goes into the event window as [`map::event_kind::CONTROLLER_RESET`]
    /// (detail = the cause bits; priority trouble when unexpected), so that whoever reads the
    /// window sees every restart, not only the last one in the registers.
    pub fn set_reset_info(&mut self, info: ResetInfo) {
        self.reset = info;
        self.reset_unacked = info.cause & reset_cause::UNEXPECTED != 0;
        let p = if self.reset_unacked {
            priority::TROUBLE
        } else {
            priority::INFO
        };
        self.push_own(self.boot_ms, ek::CONTROLLER_RESET, info.cause, p);
    }

    /// Records the duration of a control cycle (the longest is published).
    pub fn note_cycle_time(&mut self, us: u32) {
        self.cycle_max_us = self.cycle_max_us.max(us);
    }

    /// Applies an allowed network command (decoded from a coil write).
    pub fn command(&mut self, now_ms: u64, command: Command) -> Result<(), Refused> {
        let nc = match command {
            Command::SilenceBuzzer => {
                // The acknowledge also acknowledges an unexpected reset: it was seen.
                self.reset_unacked = false;
                NetworkCommand::Acknowledge
            }
            Command::TestMode(on) => NetworkCommand::TestMode { on },
            Command::Inhibit { sensor } => {
                let id = SourceId::ALL
                    .get(usize::from(sensor))
                    .copied()
                    .ok_or(Refused::SensorNotFitted)?;
                let duration_ms = map::INHIBIT_DURATION_MS.min(self.logic.config().inhibit_max_ms);
                NetworkCommand::InhibitSensor {
                    sensor: id,
                    duration_ms,
                }
            }
        };
        self.network_command(now_ms, nc)
    }

    /// Applies a command of the logic's network vocabulary directly (time sync, or a command
    /// column of a replayed trace).
    pub fn network_command(&mut self, now_ms: u64, command: NetworkCommand) -> Result<(), Refused> {
        self.network_command_observed(now_ms, command, &mut |_| {})
    }

    /// [`Controller::network_command`], handing the events it logged to `observe`.
    pub fn network_command_observed(
        &mut self,
        now_ms: u64,
        command: NetworkCommand,
        observe: &mut impl FnMut(&Event),
    ) -> Result<(), Refused> {
        let result = self.logic.command(now_ms, command);
        // Network commands cannot reset the logic (nor end a reset-loop lockout).
        let _ = self.after_logic(observe);
        result
    }

    /// Records that a control cycle overran its period (the watchdog was not fed for it).
    pub fn note_overrun(&mut self) {
        self.ctl_troubles |= trouble::CYCLE_OVERRUN;
    }

    /// Controller troubles (non-volatile memory, overruns), in [`map::trouble`] bits.
    pub fn controller_troubles(&self) -> u32 {
        self.ctl_troubles
    }

    /// Persists the latch and moves the logic's events to the window; true if the logic
    /// accepted a local reset.
    fn after_logic(&mut self, observe: &mut impl FnMut(&Event)) -> bool {
        let record = self.logic.latch_record();
        let changed = self.persisted.map(|p| latched_part(&p)) != Some(latched_part(&record));
        if changed {
            match self.store.write(&record.to_bytes()) {
                Ok(()) => {
                    self.persisted = Some(record);
                    self.ctl_troubles &= !trouble::NV_WRITE;
                }
                Err(_) => self.ctl_troubles |= trouble::NV_WRITE,
            }
        }
        let mut reset = false;
        while let Some(ev) = self.logic.take_event() {
            observe(&ev);
            reset |= matches!(
                ev.kind,
                EventKind::ResetAccepted | EventKind::ResetOverride { .. }
            );
            self.push_entry(event_entry(&ev));
        }
        reset
    }

    /// Everything the controller publishes, at `now_ms` (for the uptime).
    pub fn snapshot(&self, now_ms: u64) -> Snapshot {
        let out = self.drive();
        let cfg = self.logic.config();
        let fitted = [
            cfg.fitted.bms,
            cfg.fitted.rack_temp1,
            cfg.fitted.rack_temp2,
            cfg.fitted.camera,
            cfg.fitted.smoke,
            cfg.fitted.offgas,
        ];
        let mut valid = 0u16;
        let mut inhibited = 0u16;
        for (i, id) in SourceId::ALL.iter().enumerate() {
            let why = self.logic.source_invalidity(*id);
            if fitted.get(i).copied().unwrap_or(false) && why.is_none() && self.running {
                valid |= 1 << i;
            }
            if why == Some(Invalidity::Inhibited) {
                inhibited |= 1 << i;
            }
        }
        let temp = |i: usize| -> Option<i16> {
            if valid & (1 << i) == 0 {
                return None;
            }
            self.samples
                .temps
                .get(i)
                .copied()
                .flatten()
                .and_then(deci_from_tenths)
        };
        let record = self.logic.latch_record();
        let mut st = out.supervisory.bits() & 0x3F;
        if record.buzzer_silenced {
            st |= status::SILENCED;
        }
        if self.samples.hold == Digital::On {
            st |= status::HOLD;
        }
        if self.running {
            st |= status::RUNNING;
        }
        if self.reset_loop.is_some() {
            st |= status::RESET_LOOP;
        }
        if self.boot_state == BootState::Restored {
            st |= status::RESTORED;
        }
        if self.samples.smoke == Digital::On {
            st |= status::SMOKE_ALARM;
        }
        let mut feedbacks = 0u16;
        for (i, d) in self.samples.feedback.iter().enumerate() {
            if *d == Digital::On {
                feedbacks |= 1 << i;
            }
        }
        let smoke = if !cfg.fitted.smoke {
            input_state::NOT_FITTED
        } else {
            match self.samples.smoke {
                Digital::On => input_state::ALARM,
                Digital::Fault => input_state::FAULT,
                Digital::Off | Digital::NoSample => input_state::NORMAL,
            }
        };
        let mut actions = out.actions.bits();
        if out.buzzer {
            actions |= map::action::BUZZER;
        }
        let mut board = self.board;
        if self.reset_unacked {
            board.troubles |= board_trouble::UNEXPECTED_RESET;
        }
        if self.reset_loop.is_some() {
            board.troubles |= board_trouble::RESET_LOOP;
        }
        let mut troubles = out.troubles.bits() | self.ctl_troubles;
        if board.troubles != 0 {
            troubles |= trouble::BOARD;
        }
        let mut events = heapless::Vec::new();
        for e in self.window.iter() {
            // Cannot fail: the window and the snapshot hold the same number of entries.
            let _ = events.push(*e);
        }
        Snapshot {
            fw_version: self.fw,
            uptime_s: u32::try_from(now_ms / 1000).unwrap_or(u32::MAX),
            stage: u16::from(out.stage.code()),
            actions,
            status: st,
            troubles,
            feedbacks,
            sensors_valid: valid,
            sensors_inhibited: inhibited,
            bms_max_dc: temp(0),
            rack_temp1_dc: temp(1),
            rack_temp2_dc: temp(2),
            camera_max_dc: temp(3),
            governing_dc: out.governing.and_then(deci_from_tenths),
            offgas_dpct: if valid & (1 << 5) != 0 {
                self.samples.offgas.and_then(deci_from_tenths)
            } else {
                None
            },
            smoke,
            room_gas_release: if !self.room_gas_wired {
                input_state::NOT_FITTED
            } else {
                // Wired but never sampled since boot is a fault, never "not operated".
                match self.samples.room_gas {
                    Digital::On => input_state::ALARM,
                    Digital::Off => input_state::NORMAL,
                    Digital::Fault | Digital::NoSample => input_state::FAULT,
                }
            },
            event_seq: self.event_seq,
            events,
            board,
            reset: self.reset,
            cycle_max_us: self.cycle_max_us,
        }
    }
}

/// Tenths (i32) to a register value, keeping clear of the no-value marker.
fn deci_from_tenths(v: i32) -> Option<i16> {
    Some(v.clamp(i32::from(map::NO_VALUE) + 1, i32::from(i16::MAX)) as i16)
}

/// Kind code and detail register of an event.
pub fn event_code(kind: &EventKind) -> (u8, u16) {
    let src = |s: &SourceId| *s as u16;
    match kind {
        EventKind::StageEntered { stage, .. } => (ek::STAGE_ENTERED, u16::from(stage.code())),
        EventKind::ResetAccepted => (ek::RESET_ACCEPTED, 0),
        EventKind::ResetRefused(r) => (ek::RESET_REFUSED, refusal_code(r)),
        EventKind::ResetOverride { out_of_service } => {
            (ek::RESET_OVERRIDE, u16::from(out_of_service.bits()))
        }
        EventKind::RoomGasRelease => (ek::ROOM_GAS_RELEASE, 0),
        EventKind::ManualRelease => (ek::MANUAL_RELEASE, 0),
        EventKind::AgentReleased => (ek::AGENT_RELEASED, 0),
        EventKind::AgentInhibitedManualOnly => (ek::AGENT_INHIBITED_MANUAL_ONLY, 0),
        EventKind::GasWarningStarted => (ek::GAS_WARNING_STARTED, 0),
        EventKind::GasHeld => (ek::GAS_HELD, 0),
        EventKind::GasWaitingManualOnly => (ek::GAS_WAITING_MANUAL_ONLY, 0),
        EventKind::GasReleased => (ek::GAS_RELEASED, 0),
        EventKind::BatteryIsolated => (ek::BATTERY_ISOLATED, 0),
        EventKind::SourceInvalid { source, why } => (
            ek::SOURCE_INVALID,
            src(source) | (invalidity_code(*why) << 8),
        ),
        EventKind::SourceValid { source } => (ek::SOURCE_VALID, src(source)),
        EventKind::TroubleRaised(t) => (ek::TROUBLE_RAISED, *t as u16),
        EventKind::TroubleCleared(t) => (ek::TROUBLE_CLEARED, *t as u16),
        EventKind::SupervisoryRaised(s) => (ek::SUPERVISORY_RAISED, *s as u16),
        EventKind::SupervisoryCleared(s) => (ek::SUPERVISORY_CLEARED, *s as u16),
        EventKind::Acknowledged => (ek::ACKNOWLEDGED, 0),
        EventKind::TimeSynced { .. } => (ek::TIME_SYNCED, 0),
        EventKind::TestModeStarted => (ek::TEST_MODE_STARTED, 0),
        EventKind::TestModeEnded { by_detection } => {
            (ek::TEST_MODE_ENDED, u16::from(*by_detection))
        }
        EventKind::SensorInhibited { source, .. } => (ek::SENSOR_INHIBITED, src(source)),
        EventKind::InhibitEnded { source } => (ek::INHIBIT_ENDED, src(source)),
        EventKind::CommandRefused(r) => (
            ek::COMMAND_REFUSED,
            match r {
                Refused::StageActive => 0,
                Refused::SensorNotFaulted => 1,
                Refused::SensorNotFitted => 2,
                Refused::AnotherSensorInhibited => 3,
                Refused::BadDuration => 4,
                Refused::BadTime => 5,
            },
        ),
        EventKind::Restored { stage } => (ek::RESTORED, u16::from(stage.code())),
    }
}

/// Detail of a refused reset ([`map::event_kind::RESET_REFUSED`]).
fn refusal_code(r: &ResetRefusal) -> u16 {
    match r {
        ResetRefusal::TemperatureHigh { .. } => 0,
        ResetRefusal::SmokePresent => 1,
        ResetRefusal::OffGasPresent => 2,
        ResetRefusal::NoValidTemperature => 3,
        ResetRefusal::SourceInvalid { source } => 4 | ((*source as u16) << 8),
    }
}

fn invalidity_code(i: Invalidity) -> u16 {
    match i {
        Invalidity::Pending => 0,
        Invalidity::Stale => 1,
        Invalidity::Fault => 2,
        Invalidity::Open => 3,
        Invalidity::Short => 4,
        Invalidity::OutOfRange => 5,
        // 6 was the implausible jump: jumps are rate-limited now, never a fault.
        Invalidity::Disagree => 7,
        Invalidity::Inhibited => 8,
    }
}

/// The register-window entry of a logic event (sequence numbers are 1-based on the wire).
pub fn event_entry(ev: &Event) -> EventEntry {
    let (kind, detail) = event_code(&ev.kind);
    EventEntry {
        seq: ev.seq.wrapping_add(1),
        time_s: u32::try_from(ev.t_ms / 1000).unwrap_or(u32::MAX),
        priority: match ev.class() {
            EventClass::Alarm => priority::ALARM,
            EventClass::Supervisory => priority::SUPERVISORY,
            EventClass::Trouble => priority::TROUBLE,
        },
        kind,
        detail,
    }
}

/// The watchdog policy: the watchdog is fed only for a cycle that completed within its period.
#[derive(Debug, Clone, Copy)]
pub struct CycleMonitor {
    period_ms: u64,
    overruns: u32,
}

impl CycleMonitor {
    /// A monitor for a control period of `period_ms`.
    pub const fn new(period_ms: u64) -> Self {
        CycleMonitor {
            period_ms,
            overruns: 0,
        }
    }

    /// The control period.
    pub const fn period_ms(&self) -> u64 {
        self.period_ms
    }

    /// A cycle that started at `start_ms` completed at `end_ms`: returns true when the watchdog
    /// may be fed (the cycle was in time). A clock that went backwards counts as an overrun.
    pub fn completed(&mut self, start_ms: u64, end_ms: u64) -> bool {
        let in_time = end_ms >= start_ms && end_ms - start_ms <= self.period_ms;
        if !in_time {
            self.overruns = self.overruns.saturating_add(1);
        }
        in_time
    }

    /// Cycles that overran since boot.
    pub const fn overruns(&self) -> u32 {
        self.overruns
    }
}
