//! The application loop: a fixed control cycle (sample, one logic step, drive outputs, publish)
//! and the Modbus RTU slave served in the time left.
//!
//! Watchdog policy: a cycle earns the feed of both watchdogs when it passed every program-flow
//! checkpoint in order ([`crate::watchdog::FlowMonitor`]) and completed within its period
//! counted from its scheduled start. The feed itself happens at the start of the next cycle, on
//! the fixed grid, so the interval between feeds is the period whatever each cycle's duration
//! (the window watchdog resets on a feed that comes too early as well as too late). A cycle
//! that overran is a trouble (`CYCLE_OVERRUN`) and earns no feed; a flow error is a reset
//! through [`Board::fail_safe`].

use fire_logic::{Config, Event, NetworkCommand, Outputs, Refused};
use rack_registers::controller::{BootError, Controller, CycleMonitor};
use rack_registers::map::reset_cause;
use rack_registers::snapshot::ResetInfo;
use rack_registers::{COIL_COUNT, Commands, INPUT_COUNT, Proto, Response, Slave};

use crate::board::Board;
use crate::reset::ResetHistory;
use crate::rtu::{Frame, RtuReceiver};
use crate::watchdog::{Checkpoint, FlowMonitor};

/// Settings of the application.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Control period, ms (default 100).
    pub period_ms: u64,
    /// Modbus unit id.
    pub unit_id: u8,
    /// RS-485 baud rate.
    pub baud: u32,
    /// Firmware version published in the registers.
    pub fw_version: (u16, u16, u16),
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            period_ms: 100,
            unit_id: rack_registers::map::DEFAULT_UNIT_ID,
            baud: 19_200,
            fw_version: rack_registers::controller::parse_version(env!("CARGO_PKG_VERSION")),
        }
    }
}

/// What one cycle did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CycleReport {
    /// Outputs driven.
    pub outputs: Outputs,
    /// The cycle earned a watchdog feed (given at the start of the next cycle).
    pub fed: bool,
    /// Duration of the cycle, microseconds.
    pub duration_us: u64,
}

/// The controller application over a board.
pub struct App<B: Board> {
    board: B,
    ctrl: Controller<B::Nv>,
    slave: Slave,
    monitor: CycleMonitor,
    flow: FlowMonitor,
    rx: RtuReceiver,
    regs: [u16; INPUT_COUNT],
    coils: [bool; COIL_COUNT],
    next_ms: u64,
    frames: u32,
    feed_due: bool,
    history: ResetHistory,
    last_start_ms: Option<u64>,
    boot_reset: Option<ResetInfo>,
}

impl<B: Board> App<B> {
    /// Drives the safe outputs, then boots the controller (restoring the latch from `nv`) and
    /// records the reset cause. The registers read all zero (map version 0: not a valid
    /// image) until the first cycle has published them.
    pub fn new(
        mut board: B,
        nv: B::Nv,
        config: Config,
        settings: Settings,
    ) -> Result<Self, BootError> {
        board.drive_safe();
        let now_ms = board.now_us() / 1000;
        let reset = board.reset_info();
        let history = board.reset_history();
        let ctrl = Controller::boot(config, nv, now_ms, settings.fw_version)?;
        // Built in place (the controller is several KiB: no copy on the stack; so the reset
        // cause and history reach it in the first cycle, which drives nothing before them);
        // the registers are published by the first cycle, which `run` starts with.
        Ok(App {
            board,
            ctrl,
            slave: Slave::new(settings.unit_id),
            monitor: CycleMonitor::new(settings.period_ms),
            flow: FlowMonitor::new(),
            rx: RtuReceiver::new(settings.baud),
            regs: [0; INPUT_COUNT],
            coils: [false; COIL_COUNT],
            next_ms: now_ms,
            frames: 0,
            feed_due: false,
            history,
            last_start_ms: None,
            boot_reset: Some(reset),
        })
    }

    /// Hands the boot's reset cause and reset-loop history to the controller, once, before
    /// the first cycle's step (and before anything but the boot's safe state is driven).
    fn report_boot(&mut self) {
        if let Some(reset) = self.boot_reset.take() {
            self.ctrl.set_reset_info(reset);
            // Too many unexpected resets: the battery stays isolated until a local reset.
            if self.history.lockout {
                self.ctrl.set_reset_loop(self.history.count);
            }
        }
    }

    /// The controller core.
    pub fn controller(&self) -> &Controller<B::Nv> {
        &self.ctrl
    }

    /// The board.
    pub fn board_mut(&mut self) -> &mut B {
        &mut self.board
    }

    /// The published input registers.
    pub fn registers(&self) -> &[u16; INPUT_COUNT] {
        &self.regs
    }

    /// Modbus frames answered since boot.
    pub fn frames(&self) -> u32 {
        self.frames
    }

    /// Gives the board and the controller back (what a reset leaves is the board's business).
    pub fn into_parts(self) -> (B, Controller<B::Nv>) {
        (self.board, self.ctrl)
    }

    /// Moves the next cycle to `at_ms` (the trace replay of the emulated image cycles at the
    /// trace's row times).
    pub fn schedule_at(&mut self, at_ms: u64) {
        self.next_ms = at_ms;
    }

    fn now_ms(&mut self) -> u64 {
        self.board.now_us() / 1000
    }

    fn publish(&mut self, now_ms: u64) {
        let snap = self.ctrl.snapshot(now_ms);
        snap.encode_inputs(&mut self.regs);
        self.coils = snap.coil_states();
    }

    /// One control cycle, due at the scheduled time.
    pub fn cycle(&mut self) -> CycleReport {
        self.cycle_observed(&mut |_| {})
    }

    /// One control cycle, handing each event the logic logs to `observe`: feed the watchdogs
    /// for the previous cycle, sample, step, drive, publish; the cycle earns the next feed only
    /// if it passed every checkpoint and completed within the period counted from the
    /// scheduled start.
    pub fn cycle_observed(&mut self, observe: &mut impl FnMut(&Event)) -> CycleReport {
        let scheduled = self.next_ms;
        self.report_boot();
        self.flow.begin();
        let start_us = self.board.now_us();
        if core::mem::take(&mut self.feed_due) {
            self.board.feed_watchdog();
        }
        let start = start_us / 1000;
        let inputs = self.board.sample(start);
        self.flow.pass(Checkpoint::Sampled);
        let status = self.board.status();
        let outputs = self.ctrl.cycle_observed(start, &inputs, observe);
        self.flow.pass(Checkpoint::Stepped);
        self.board.drive(&outputs);
        self.flow.pass(Checkpoint::Driven);
        // The reset-loop window runs on the controller's run time; a local reset that ended
        // the lockout starts the count again.
        let ran = self.last_start_ms.map_or(0, |p| start.saturating_sub(p));
        self.last_start_ms = Some(start);
        let mut store = self.history.ran(ran);
        if self.ctrl.take_reset_loop_cleared() {
            self.history.clear();
            store = true;
        }
        if store {
            self.board.store_reset_history(&self.history);
        }
        self.ctrl.set_board_status(status);
        let end_us = self.board.now_us().max(start_us);
        let duration_us = end_us - start_us;
        self.ctrl
            .note_cycle_time(u32::try_from(duration_us).unwrap_or(u32::MAX));
        let end = end_us / 1000;
        let in_time = self.monitor.completed(scheduled, end);
        if !in_time {
            self.ctrl.note_overrun();
        }
        self.publish(end);
        self.flow.pass(Checkpoint::Published);
        if !self.flow.verdict() {
            self.board.fail_safe(reset_cause::FLOW);
        }
        self.feed_due = in_time;
        // The next cycle keeps the fixed grid; after an overrun it starts at once.
        self.next_ms = scheduled.saturating_add(self.monitor.period_ms()).max(end);
        CycleReport {
            outputs,
            fed: in_time,
            duration_us,
        }
    }

    /// Applies a command of the logic's network vocabulary (a trace's command column), handing
    /// the events it logs to `observe`.
    pub fn command_observed(
        &mut self,
        now_ms: u64,
        command: NetworkCommand,
        observe: &mut impl FnMut(&Event),
    ) -> Result<(), Refused> {
        self.report_boot();
        let r = self.ctrl.network_command_observed(now_ms, command, observe);
        self.publish(now_ms);
        r
    }

    /// Serves Modbus until the next cycle is due.
    pub fn serve_until_next_cycle(&mut self) {
        loop {
            let now_us = self.board.now_us();
            while let Some((byte, at)) = self.board.rx_byte() {
                if let Some(frame) = self.rx.push(byte, at) {
                    self.handle(&frame);
                }
            }
            let now_us2 = self.board.now_us().max(now_us);
            if let Some(frame) = self.rx.poll(now_us2) {
                self.handle(&frame);
            }
            if now_us2 / 1000 >= self.next_ms {
                return;
            }
        }
    }

    fn handle(&mut self, frame: &Frame) {
        let mut response = Response::new();
        let mut commands = Commands::new();
        let answered = self.slave.process(
            Proto::Rtu,
            frame,
            &self.regs,
            &self.coils,
            &mut response,
            &mut commands,
        );
        if answered == Ok(true) {
            self.board.send(&response);
            self.frames = self.frames.wrapping_add(1);
        }
        if !commands.is_empty() {
            let now = self.now_ms();
            for c in commands.iter() {
                // Refusals are logged by the logic and visible in the event window.
                let _ = self.ctrl.command(now, *c);
            }
            self.publish(now);
        }
    }

    /// Runs forever.
    pub fn run(&mut self) -> ! {
        loop {
            self.cycle();
            self.serve_until_next_cycle();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boards::stm32f407_rev_b;
    use crate::clock::TickCounter;
    use crate::field::Field;
    use crate::frontend::{FrontEnd, LINE_COUNT};
    use crate::line::LineState;
    use crate::outputs::{Drive, Sense};
    use fire_logic::{Action, Inputs, Stage};
    use rack_registers::map::{self, board_trouble, coil, input, line, output, status, trouble};
    use rack_registers::nvstore::RamFlash;
    use rack_registers::slave::crc16;
    use rack_registers::snapshot::{BoardStatus, ResetInfo};
    use std::vec::Vec;

    type Nv = RamFlash<2048>;

    /// A simulated board: a 64-bit tick counter like the SysTick one, the simulated field
    /// (feedbacks and read-back follow what is driven), the real front end, recorded outputs
    /// and UART.
    struct SimBoard {
        clock: TickCounter,
        sub_us: u64,
        field: Field,
        sample_cost_us: u64,
        fe: FrontEnd,
        status: BoardStatus,
        driven: Vec<Drive>,
        feeds: u32,
        reset: ResetInfo,
        history: ResetHistory,
        stored: Vec<ResetHistory>,
        rx: std::collections::VecDeque<(u8, u64)>,
        tx: Vec<Vec<u8>>,
    }

    impl Default for SimBoard {
        fn default() -> Self {
            let c = stm32f407_rev_b();
            SimBoard {
                clock: TickCounter::default(),
                sub_us: 0,
                field: Field::default(),
                sample_cost_us: 0,
                fe: FrontEnd::new(c.open_code, c.short_code),
                status: BoardStatus::default(),
                driven: Vec::new(),
                feeds: 0,
                reset: ResetInfo {
                    cause: map::reset_cause::POWER_ON,
                    boot_count: 1,
                    fault_pc: 0,
                },
                history: ResetHistory::default(),
                stored: Vec::new(),
                rx: Default::default(),
                tx: Vec::new(),
            }
        }
    }

    impl SimBoard {
        fn advance(&mut self, us: u64) {
            self.sub_us += us;
            while self.sub_us >= 1000 {
                self.sub_us -= 1000;
                self.clock.tick();
            }
        }
        fn us(&self) -> u64 {
            // As the board composes it: both words of the tick counter.
            let (hi, lo) = self.clock.words();
            ((u64::from(hi) << 32) | u64::from(lo)) * 1000 + self.sub_us
        }
    }

    impl Board for SimBoard {
        type Nv = Nv;
        fn now_us(&mut self) -> u64 {
            // Time passes a little on every look at the clock.
            self.advance(50);
            self.us()
        }
        fn reset_info(&mut self) -> ResetInfo {
            self.reset
        }
        fn reset_history(&mut self) -> ResetHistory {
            self.history
        }
        fn store_reset_history(&mut self, h: &ResetHistory) {
            self.stored.push(*h);
        }
        fn sample(&mut self, _now_ms: u64) -> Inputs {
            self.advance(self.sample_cost_us);
            let scan = self.field.scan(self.fe.drive());
            let (inputs, st) = self.fe.process(&scan);
            self.status = st;
            inputs
        }
        fn status(&mut self) -> BoardStatus {
            self.status
        }
        fn drive_safe(&mut self) {
            self.fe.driven(Drive::SAFE);
            self.driven.push(Drive::SAFE);
        }
        fn drive(&mut self, outputs: &Outputs) {
            let d = Drive::for_outputs(outputs);
            self.fe.driven(d);
            self.driven.push(d);
        }
        fn feed_watchdog(&mut self) {
            self.feeds += 1;
        }
        fn fail_safe(&mut self, cause: u16) -> ! {
            panic!("fail_safe({cause:#x})");
        }
        fn rx_byte(&mut self) -> Option<(u8, u64)> {
            let (b, at) = *self.rx.front()?;
            if at <= self.us() {
                self.rx.pop_front();
                Some((b, at))
            } else {
                None
            }
        }
        fn send(&mut self, frame: &[u8]) {
            self.tx.push(frame.to_vec());
        }
    }

    fn app(board: SimBoard, nv: Nv) -> App<SimBoard> {
        App::new(board, nv, stm32f407_rev_b(), Settings::default()).unwrap()
    }

    fn step(a: &mut App<SimBoard>) -> CycleReport {
        let r = a.cycle();
        a.serve_until_next_cycle();
        r
    }

    fn request(app: &mut App<SimBoard>, body: &[u8]) -> Vec<u8> {
        let mut f = body.to_vec();
        f.extend_from_slice(&crc16(body).to_le_bytes());
        let start = app.board.us() + 100;
        for (i, b) in f.iter().enumerate() {
            app.board.rx.push_back((*b, start + i as u64 * 573));
        }
        let before = app.board.tx.len();
        for _ in 0..3 {
            step(app);
        }
        assert_eq!(app.board.tx.len(), before + 1, "one response");
        app.board.tx.last().unwrap().clone()
    }

    fn reg(a: &App<SimBoard>, address: u16) -> u16 {
        a.registers()[usize::from(address)]
    }

    fn reg32(a: &App<SimBoard>, address: u16) -> u32 {
        (u32::from(reg(a, address)) << 16) | u32::from(reg(a, address + 1))
    }

    fn heat_to(a: &mut App<SimBoard>, stage: Stage, max_dc: i32) {
        a.board.field.smoke = true;
        for n in 0..2_000 {
            a.board.field.temp_dc = (250 + n * 2).min(max_dc);
            step(a);
            if a.controller().logic().stage() == stage {
                return;
            }
        }
        panic!("{stage} not reached");
    }

    #[test]
    fn boot_drives_the_safe_state_and_the_contactor_closes_only_after_the_first_cycle() {
        // Hazard: a boot that drives "all off" with an energise-to-trip contactor leaves the
        // battery connected before the logic has looked at anything.
        let mut a = app(SimBoard::default(), Nv::new(1024));
        assert_eq!(a.board.driven, [Drive::SAFE]);
        assert!(!a.board.driven[0].energised(output::CONTACTOR_HOLD));
        assert_eq!(a.board.feeds, 0);
        step(&mut a);
        assert_eq!(
            a.board.driven[1],
            Drive(1 << output::CONTACTOR_HOLD),
            "normal: battery connected, nothing released"
        );
    }

    #[test]
    fn cycles_run_on_a_fixed_grid_and_feed_the_watchdog_at_the_next_cycle_start() {
        let mut a = app(SimBoard::default(), Nv::new(1024));
        let t0 = a.board.us();
        for _ in 0..50 {
            assert!(step(&mut a).fed);
        }
        assert_eq!(
            a.board.feeds, 49,
            "each cycle's feed is given at the next start"
        );
        let elapsed_ms = (a.board.us() - t0) / 1000;
        assert!(
            (4_990..=5_010).contains(&elapsed_ms),
            "{elapsed_ms} ms for 50 cycles"
        );
        assert_eq!(reg32(&a, input::TROUBLES) & trouble::BOARD, 0);
        assert!(reg32(&a, input::CYCLE_MAX_US) > 0);
    }

    #[test]
    fn a_cycle_that_overruns_does_not_feed_the_watchdog_and_is_a_trouble() {
        let mut a = app(SimBoard::default(), Nv::new(1024));
        assert!(step(&mut a).fed);
        a.board.sample_cost_us = 150_000;
        let r = a.cycle();
        assert!(!r.fed);
        assert!(r.duration_us >= 150_000);
        assert_eq!(a.board.feeds, 1, "the first cycle's feed only");
        assert_ne!(
            a.controller().snapshot(0).troubles & trouble::CYCLE_OVERRUN,
            0
        );
        a.board.sample_cost_us = 0;
        a.serve_until_next_cycle();
        assert!(a.cycle().fed, "back in time after the overrun");
        assert_eq!(a.board.feeds, 1, "nothing owed for the overrun cycle");
        assert!(reg32(&a, input::CYCLE_MAX_US) >= 150_000);
    }

    #[test]
    fn the_clock_and_the_cycle_grid_run_on_past_the_32_bit_millisecond_wrap() {
        // Hazard: at 49.7 days a 32-bit millisecond counter wraps, the next cycle is scheduled
        // at 2^32 ms and never comes: the controller stops (or is reset by its watchdog every
        // 49.7 days).
        let board = SimBoard {
            clock: TickCounter::starting_at(u64::from(u32::MAX) - 3_000),
            ..SimBoard::default()
        };
        let mut a = app(board, Nv::new(1024));
        for _ in 0..80 {
            let before = a.board.us();
            // A 32-bit schedule would hang here; bound it.
            assert!(step(&mut a).fed);
            assert!(a.board.us() > before);
            assert!(a.board.us() - before < 200_000);
        }
        assert!(a.board.us() / 1000 > u64::from(u32::MAX) + 4_000);
        assert_eq!(a.board.feeds, 79);
    }

    #[test]
    fn modbus_rtu_reads_the_stage_and_writes_only_command_coils() {
        let mut a = app(SimBoard::default(), Nv::new(1024));
        heat_to(&mut a, Stage::Stage1, 650);
        let resp = request(&mut a, &[1, 4, 0, input::STAGE as u8, 0, 1]);
        assert_eq!(&resp[..5], &[1, 4, 2, 0, 2]);
        // Silence through the coil.
        let resp = request(&mut a, &[1, 5, 0, coil::SILENCE_BUZZER as u8, 0xFF, 0]);
        assert_eq!(&resp[..6], &[1, 5, 0, 0, 0xFF, 0]);
        assert_ne!(a.controller().snapshot(0).status & status::SILENCED, 0);
        // Register writes are refused; the stage stays.
        let resp = request(&mut a, &[1, 6, 0, input::STAGE as u8, 0, 0]);
        assert_eq!(&resp[..3], &[1, 0x86, 1]);
        assert_eq!(a.controller().logic().stage(), Stage::Stage1);
        let last = *a.board.driven.last().unwrap();
        assert!(!last.energised(output::CONTACTOR_HOLD), "tripped");
        assert!(last.energised(output::BLANKET));
    }

    #[test]
    fn the_latch_survives_a_reboot_and_boot_never_un_trips_it() {
        // Hazard: a reset in stage 2 closing the battery contactor again, even for one cycle.
        let mut a = app(SimBoard::default(), Nv::new(1024));
        heat_to(&mut a, Stage::Stage2, 700);
        let before = *a.board.driven.last().unwrap();
        assert!(!before.energised(output::CONTACTOR_HOLD));
        let (_, ctrl) = a.into_parts();
        let nv = ctrl.into_flash();
        let mut b = app(
            SimBoard {
                field: Field {
                    temp_dc: 700,
                    smoke: true,
                    ..Field::default()
                },
                ..SimBoard::default()
            },
            nv,
        );
        assert_eq!(b.board.driven, [Drive::SAFE]);
        let after = step(&mut b).outputs;
        assert_eq!(after.stage, Stage::Stage2);
        assert!(after.actions.contains(Action::ContactorOpen));
        assert_eq!(
            b.board.driven[1], before,
            "the same outputs after the reset"
        );
        assert!(
            b.board
                .driven
                .iter()
                .all(|d| !d.energised(output::CONTACTOR_HOLD)),
            "the contactor hold was never energised across the reboot"
        );
    }

    #[test]
    fn the_reset_cause_is_published_and_an_unexpected_one_is_acknowledged_over_modbus() {
        let board = SimBoard {
            reset: ResetInfo {
                cause: map::reset_cause::FAULT | map::reset_cause::SOFTWARE,
                boot_count: 12,
                fault_pc: 0x0800_4242,
            },
            ..SimBoard::default()
        };
        let mut a = app(board, Nv::new(1024));
        step(&mut a);
        assert_eq!(
            reg(&a, input::RESET_CAUSE),
            map::reset_cause::FAULT | map::reset_cause::SOFTWARE
        );
        assert_eq!(reg32(&a, input::BOOT_COUNT), 12);
        assert_eq!(reg32(&a, input::FAULT_PC), 0x0800_4242);
        assert_ne!(
            reg32(&a, input::BOARD_TROUBLES) & board_trouble::UNEXPECTED_RESET,
            0
        );
        assert_ne!(reg32(&a, input::TROUBLES) & trouble::BOARD, 0);
        request(&mut a, &[1, 5, 0, coil::SILENCE_BUZZER as u8, 0xFF, 0]);
        assert_eq!(reg32(&a, input::BOARD_TROUBLES), 0);
        assert_eq!(reg32(&a, input::TROUBLES) & trouble::BOARD, 0);
    }

    #[test]
    fn a_line_fault_reaches_the_registers_naming_the_input() {
        let mut a = app(SimBoard::default(), Nv::new(1024));
        step(&mut a);
        step(&mut a);
        a.board.field.lines[usize::from(line::SMOKE)] = Some(LineState::Open);
        step(&mut a);
        step(&mut a);
        assert_eq!(reg(&a, input::LINE_FAULT), 1 << line::SMOKE);
        assert_eq!(reg(&a, input::LINE_OPEN), 1 << line::SMOKE);
        assert_ne!(reg32(&a, input::BOARD_TROUBLES) & board_trouble::LINE, 0);
        assert_ne!(reg32(&a, input::TROUBLES) & trouble::BOARD, 0);
        assert_eq!(reg(&a, input::SMOKE), map::input_state::FAULT);
    }

    #[test]
    fn a_stuck_release_button_at_power_up_releases_nothing() {
        // Hazard: a manual-release line shorted or held at power-up discharges agent.
        for state in [LineState::Active, LineState::Short] {
            let mut lines = [None; LINE_COUNT];
            lines[usize::from(line::MANUAL_RELEASE)] = Some(state);
            let mut a = app(
                SimBoard {
                    field: Field {
                        lines,
                        ..Field::default()
                    },
                    ..SimBoard::default()
                },
                Nv::new(1024),
            );
            for _ in 0..20 {
                let out = step(&mut a).outputs;
                assert_eq!(out.stage, Stage::Normal, "{state:?}");
                assert!(!out.actions.contains(Action::AgentRelease));
            }
            assert_eq!(reg(&a, input::INPUTS_BLOCKED), 1 << line::MANUAL_RELEASE);
            assert_ne!(
                reg32(&a, input::BOARD_TROUBLES) & board_trouble::RELEASE_INPUT_AT_POWER_UP,
                0
            );
            assert_ne!(
                reg32(&a, input::TROUBLES) & trouble::SWITCH_FAULT,
                0,
                "the logic reports the switch line too"
            );
        }
    }

    #[test]
    fn a_reference_out_of_range_invalidates_the_temperatures_in_the_registers() {
        let mut a = app(SimBoard::default(), Nv::new(1024));
        for _ in 0..10 {
            step(&mut a);
        }
        assert_eq!(reg(&a, input::RACK_TEMP1), 250);
        a.board.field.vrefint = Some(1_400);
        step(&mut a);
        assert_eq!(reg(&a, input::RACK_TEMP1), map::NO_VALUE as u16);
        assert_eq!(reg(&a, input::RACK_TEMP2), map::NO_VALUE as u16);
        assert_eq!(reg(&a, input::VREFINT_RAW), 1_400);
        assert_ne!(
            reg32(&a, input::BOARD_TROUBLES) & board_trouble::REFERENCE,
            0
        );
        assert_ne!(reg32(&a, input::TROUBLES) & trouble::RACK_TEMP1_INVALID, 0);
    }

    #[test]
    fn an_output_read_back_mismatch_reaches_the_registers() {
        // Hazard: the contactor hold driver failed: the battery is not connected, or (worse,
        // on trip) stays connected, and nobody knows.
        let mut a = app(SimBoard::default(), Nv::new(1024));
        step(&mut a);
        a.board.field.sense_fault = Some((output::CONTACTOR_HOLD, Sense::Idle));
        for _ in 0..3 {
            step(&mut a);
        }
        assert_eq!(reg(&a, input::OUTPUT_MISMATCH), 1 << output::CONTACTOR_HOLD);
        assert_ne!(
            reg32(&a, input::BOARD_TROUBLES) & board_trouble::OUTPUT_MISMATCH,
            0
        );
        // A release line cut while idle.
        a.board.field.sense_fault = Some((output::AGENT, Sense::Open));
        for _ in 0..3 {
            step(&mut a);
        }
        assert_eq!(reg(&a, input::OUTPUT_LINE_FAULT), 1 << output::AGENT);
        assert_eq!(reg(&a, input::OUTPUT_MISMATCH), 0);
    }

    /// A board whose non-volatile history has counted `resets` unexpected resets of `cause`.
    fn after_resets(resets: u32, cause: u16) -> SimBoard {
        let mut h = ResetHistory::default();
        for _ in 0..resets {
            h = ResetHistory::at_boot(Some(h), cause);
        }
        SimBoard {
            reset: ResetInfo {
                cause,
                boot_count: 10 + resets,
                fault_pc: 0,
            },
            history: h,
            ..SimBoard::default()
        }
    }

    #[test]
    fn a_reset_loop_keeps_the_contactor_tripped_from_boot_until_the_local_reset_key() {
        // Hazard: the controller resets again and again (watchdog, fault, brown-out); each
        // time the contactor's hold-up rides through the reset, so the battery stays connected
        // to a rack watched by a controller that keeps failing.
        use crate::reset::RESET_LOOP_COUNT;
        let mut a = app(
            after_resets(RESET_LOOP_COUNT, map::reset_cause::IWDG),
            Nv::new(1024),
        );
        for _ in 0..30 {
            step(&mut a);
        }
        assert!(
            a.board
                .driven
                .iter()
                .all(|d| !d.energised(output::CONTACTOR_HOLD)),
            "the contactor hold was never energised"
        );
        assert_eq!(a.controller().logic().stage(), Stage::Normal);
        assert_ne!(
            reg32(&a, input::BOARD_TROUBLES) & board_trouble::RESET_LOOP,
            0
        );
        assert_ne!(reg(&a, input::STATUS) & status::RESET_LOOP, 0);
        // The window shows the boot's cause and the loop, oldest first at the end.
        let n = usize::from(reg(&a, input::EVENT_WINDOW_LEN));
        let kinds: Vec<u16> = (0..n)
            .rev()
            .map(|i| {
                reg(
                    &a,
                    input::EVENT_WINDOW + i as u16 * map::EVENT_ENTRY_REGS + map::event_entry::CODE,
                ) & 0xFF
            })
            .collect();
        assert_eq!(
            kinds[..2],
            [
                u16::from(map::event_kind::CONTROLLER_RESET),
                u16::from(map::event_kind::RESET_LOOP)
            ]
        );
        // The network acknowledge does not end it.
        request(&mut a, &[1, 5, 0, coil::SILENCE_BUZZER as u8, 0xFF, 0]);
        step(&mut a);
        assert!(
            !a.board
                .driven
                .last()
                .unwrap()
                .energised(output::CONTACTOR_HOLD)
        );
        assert!(
            a.board.stored.is_empty(),
            "nothing to store during a lockout"
        );
        // The local reset key: held off since power-up until seen normal, then pressed.
        a.board.field.lines[usize::from(line::RESET)] = Some(LineState::Active);
        for _ in 0..3 {
            step(&mut a);
        }
        a.board.field.lines[usize::from(line::RESET)] = None;
        for _ in 0..3 {
            step(&mut a);
        }
        assert!(
            a.board
                .driven
                .last()
                .unwrap()
                .energised(output::CONTACTOR_HOLD)
        );
        assert_eq!(a.board.stored.last(), Some(&ResetHistory::default()));
        assert_eq!(reg(&a, input::STATUS) & status::RESET_LOOP, 0);
    }

    #[test]
    fn fewer_unexpected_resets_run_their_window_and_store_it_once_a_second() {
        use crate::reset::RESET_LOOP_COUNT;
        let mut a = app(
            after_resets(RESET_LOOP_COUNT - 1, map::reset_cause::FAULT),
            Nv::new(1024),
        );
        for _ in 0..25 {
            step(&mut a);
        }
        assert!(
            a.board
                .driven
                .last()
                .unwrap()
                .energised(output::CONTACTOR_HOLD)
        );
        assert_eq!(
            reg32(&a, input::BOARD_TROUBLES) & board_trouble::RESET_LOOP,
            0
        );
        let stored = &a.board.stored;
        assert!((2..=3).contains(&stored.len()), "{stored:?}");
        assert_eq!(stored.last().unwrap().count, RESET_LOOP_COUNT - 1);
        assert!(stored.last().unwrap().window_s >= 2);
    }

    #[test]
    fn board_rev_b_publishes_the_room_gas_release_as_not_wired() {
        // Hazard: the room's gas release (a room panel input, not on this board) read as "not
        // operated" from the rack controller's registers.
        let mut a = app(SimBoard::default(), Nv::new(1024));
        step(&mut a);
        assert_eq!(
            reg(&a, input::ROOM_GAS_RELEASE),
            map::input_state::NOT_FITTED
        );
    }
}
