//! The application loop: a fixed control cycle (sample, one logic step, drive outputs, feed the
//! watchdog if the cycle was in time), and the Modbus RTU slave served in the time left.

use fire_logic::{Config, Outputs};
use rack_registers::controller::{BootError, Controller, CycleMonitor};
use rack_registers::{COIL_COUNT, Commands, INPUT_COUNT, Proto, Response, Slave};

use crate::board::Board;
use crate::rtu::{Frame, RtuReceiver};

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
    /// The watchdog was fed.
    pub fed: bool,
}

/// The controller application over a board.
pub struct App<B: Board> {
    board: B,
    ctrl: Controller<B::Nv>,
    slave: Slave,
    monitor: CycleMonitor,
    rx: RtuReceiver,
    regs: [u16; INPUT_COUNT],
    coils: [bool; COIL_COUNT],
    next_ms: u64,
    frames: u32,
}

impl<B: Board> App<B> {
    /// Drives the safe outputs, then boots the controller (restoring the latch from `nv`).
    pub fn new(
        mut board: B,
        nv: B::Nv,
        config: Config,
        settings: Settings,
    ) -> Result<Self, BootError> {
        board.drive(&Outputs::default());
        let now_ms = board.now_us() / 1000;
        let ctrl = Controller::boot(config, nv, now_ms, settings.fw_version)?;
        let mut app = App {
            board,
            ctrl,
            slave: Slave::new(settings.unit_id),
            monitor: CycleMonitor::new(settings.period_ms),
            rx: RtuReceiver::new(settings.baud),
            regs: [0; INPUT_COUNT],
            coils: [false; COIL_COUNT],
            next_ms: now_ms,
            frames: 0,
        };
        app.publish(now_ms);
        Ok(app)
    }

    /// The controller core.
    pub fn controller(&self) -> &Controller<B::Nv> {
        &self.ctrl
    }

    /// The board.
    pub fn board_mut(&mut self) -> &mut B {
        &mut self.board
    }

    /// Modbus frames answered since boot.
    pub fn frames(&self) -> u32 {
        self.frames
    }

    fn now_ms(&mut self) -> u64 {
        self.board.now_us() / 1000
    }

    fn publish(&mut self, now_ms: u64) {
        let snap = self.ctrl.snapshot(now_ms);
        snap.encode_inputs(&mut self.regs);
        self.coils = snap.coil_states();
    }

    /// One control cycle, due at the scheduled time: sample, step, drive, and feed the watchdog
    /// only if everything completed within the period counted from the scheduled start.
    pub fn cycle(&mut self) -> CycleReport {
        let scheduled = self.next_ms;
        let start = self.now_ms();
        let inputs = self.board.sample(start);
        let outputs = self.ctrl.cycle(start, &inputs);
        self.board.drive(&outputs);
        let end = self.now_ms();
        let fed = self.monitor.completed(scheduled, end);
        if fed {
            self.board.feed_watchdog();
        } else {
            self.ctrl.note_overrun();
        }
        self.publish(end);
        // The next cycle keeps the fixed grid; after an overrun it starts at once.
        self.next_ms = (scheduled + self.monitor.period_ms()).max(end);
        CycleReport { outputs, fed }
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
            for c in commands {
                // Refusals are logged by the logic and visible in the event window.
                let _ = self.ctrl.command(now, c);
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
    use fire_logic::{Action, Analog, Digital, Inputs, Stage};
    use rack_registers::map::{coil, input, status};
    use rack_registers::nvstore::RamFlash;
    use rack_registers::slave::crc16;
    use std::vec::Vec;

    type Nv = RamFlash<2048>;

    /// A simulated board: a settable clock, scripted inputs, recorded outputs and UART.
    #[derive(Default)]
    struct SimBoard {
        now_us: u64,
        temp_dc: i32,
        smoke: bool,
        sample_cost_us: u64,
        driven: Vec<Outputs>,
        feeds: u32,
        rx: std::collections::VecDeque<(u8, u64)>,
        tx: Vec<Vec<u8>>,
    }

    impl Board for SimBoard {
        type Nv = Nv;
        fn now_us(&mut self) -> u64 {
            // Time passes a little on every look at the clock.
            self.now_us += 50;
            self.now_us
        }
        fn sample(&mut self, _now_ms: u64) -> Inputs {
            self.now_us += self.sample_cost_us;
            let t = Analog::Value(self.temp_dc);
            Inputs {
                bms_max: Analog::NoSample,
                rack_temp1: t,
                rack_temp2: t,
                camera_max: Analog::NoSample,
                smoke: if self.smoke {
                    Digital::On
                } else {
                    Digital::Off
                },
                offgas: Analog::NoSample,
                feedback: [Digital::Off; 6],
                reset: Digital::Off,
                hold: Digital::Off,
                manual_release: Digital::Off,
                room_gas_release: Digital::Off,
                manual_only: Digital::Off,
                authority: Digital::Off,
            }
        }
        fn drive(&mut self, outputs: &Outputs) {
            self.driven.push(*outputs);
        }
        fn feed_watchdog(&mut self) {
            self.feeds += 1;
        }
        fn rx_byte(&mut self) -> Option<(u8, u64)> {
            let (b, at) = *self.rx.front()?;
            if at <= self.now_us {
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

    fn config() -> Config {
        let mut c = Config::default();
        c.fitted.bms = false;
        c.fitted.camera = false;
        c.fitted.feedback = [false; 6];
        c
    }

    fn app(board: SimBoard, nv: Nv) -> App<SimBoard> {
        App::new(board, nv, config(), Settings::default()).unwrap()
    }

    fn request(app: &mut App<SimBoard>, body: &[u8]) -> Vec<u8> {
        let mut f = body.to_vec();
        f.extend_from_slice(&crc16(body).to_le_bytes());
        let start = app.board.now_us + 100;
        for (i, b) in f.iter().enumerate() {
            app.board.rx.push_back((*b, start + i as u64 * 573));
        }
        let before = app.board.tx.len();
        for _ in 0..3 {
            app.cycle();
            app.serve_until_next_cycle();
        }
        assert_eq!(app.board.tx.len(), before + 1, "one response");
        app.board.tx.last().unwrap().clone()
    }

    #[test]
    fn safe_outputs_are_driven_before_the_first_cycle() {
        let a = app(
            SimBoard {
                temp_dc: 250,
                ..SimBoard::default()
            },
            Nv::new(1024),
        );
        assert_eq!(a.board.driven, [Outputs::default()]);
        assert_eq!(a.board.feeds, 0);
    }

    #[test]
    fn cycles_run_on_a_fixed_grid_and_feed_the_watchdog() {
        let mut a = app(
            SimBoard {
                temp_dc: 250,
                ..SimBoard::default()
            },
            Nv::new(1024),
        );
        let t0 = a.board.now_us;
        for _ in 0..50 {
            assert!(a.cycle().fed);
            a.serve_until_next_cycle();
        }
        assert_eq!(a.board.feeds, 50);
        let elapsed_ms = (a.board.now_us - t0) / 1000;
        assert!(
            (4_990..=5_010).contains(&elapsed_ms),
            "{elapsed_ms} ms for 50 cycles"
        );
    }

    #[test]
    fn a_cycle_that_overruns_does_not_feed_the_watchdog_and_is_a_trouble() {
        let mut a = app(
            SimBoard {
                temp_dc: 250,
                ..SimBoard::default()
            },
            Nv::new(1024),
        );
        assert!(a.cycle().fed);
        a.serve_until_next_cycle();
        a.board.sample_cost_us = 150_000;
        assert!(!a.cycle().fed);
        assert_eq!(a.board.feeds, 1);
        assert_ne!(
            a.controller().snapshot(0).troubles & rack_registers::map::trouble::CYCLE_OVERRUN,
            0
        );
        a.board.sample_cost_us = 0;
        a.serve_until_next_cycle();
        assert!(a.cycle().fed, "back in time after the overrun");
    }

    #[test]
    fn modbus_rtu_reads_the_stage_and_writes_only_command_coils() {
        let mut a = app(
            SimBoard {
                temp_dc: 250,
                ..SimBoard::default()
            },
            Nv::new(1024),
        );
        // Heat up to stage 1 (60 C with smoke).
        a.board.smoke = true;
        for step in 0..400 {
            a.board.temp_dc = (250 + step * 2).min(650);
            a.cycle();
            a.serve_until_next_cycle();
        }
        assert_eq!(a.controller().logic().stage(), Stage::Stage1);
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
        assert!(
            a.board
                .driven
                .last()
                .unwrap()
                .actions
                .contains(Action::ContactorOpen)
        );
    }

    #[test]
    fn the_latch_survives_a_reboot_of_the_app() {
        let mut a = app(
            SimBoard {
                temp_dc: 250,
                smoke: true,
                ..SimBoard::default()
            },
            Nv::new(1024),
        );
        for step in 0..400 {
            a.board.temp_dc = (250 + step * 2).min(700);
            a.cycle();
            a.serve_until_next_cycle();
        }
        let before = *a.board.driven.last().unwrap();
        assert_eq!(before.stage, Stage::Stage2);
        let nv = a.ctrl.into_flash();
        let mut b = app(
            SimBoard {
                temp_dc: 700,
                smoke: true,
                ..SimBoard::default()
            },
            nv,
        );
        assert_eq!(b.board.driven, [Outputs::default()]);
        let after = b.cycle().outputs;
        assert_eq!(after.stage, before.stage);
        assert_eq!(after.actions, before.actions);
    }
}
