//! The rack controller on QEMU's netduinoplus2 (STM32F405, Cortex-M4F), with only the pin and
//! converter bindings swapped: the core (`mcu.rs`: SysTick 64-bit clock, USART2, vector table,
//! fault path, stack), the application loop, the controller core, the front end and the
//! non-volatile layout are the board image's. QEMU models the SysTick, the NVIC and the USARTs
//! of this MCU but not its GPIO, backup SRAM, RCC reset flags, PWR or watchdogs, and its ADC
//! returns a counter instead of conversions; so:
//!
//! - the converters are replaced by a simulated field ([`rack_controller::field::Field`]) read
//!   through the real front end, and the output pins by a word of RAM kept across resets;
//! - the non-volatile area is 1 KiB of RAM that QEMU keeps across a system reset (`.uninit`),
//!   with the same layout as the backup SRAM;
//! - for the trace replay, the sampling binding returns the trace's rows and the clock its
//!   times, so every row goes through the real cycle (`App::cycle_observed`).
//!
//! It runs, in one boot: the reset cause of a boot without flags, every line-monitored input in
//! every state, a release input active at power-up, the reference out of range, a dead
//! converter, output read-back faults, Modbus RTU reads of the diagnostics, the time wrap on the
//! real SysTick, every shipped trace compared byte for byte with the host output, and the
//! measurements (worst cycle, worst Modbus answer, stack peak); then it heats a controller to
//! stage 2 on the non-volatile area and overflows its stack. The fault handler trips the
//! contactor and records the fault; the second boot checks the reset cause, the boot count and
//! that the latch comes back without the contactor ever closing, then faults once more from a
//! healthy normal state; the third boot is the third unexpected reset (the first boot's cause
//! is unknown: QEMU has no reset flags) and checks the reset-loop lockout: the contactor held
//! tripped from boot in the normal stage, the reset cause and the loop in the event window,
//! and its end with the local reset key. PASS/FAIL lines and the `MEASURE` lines go out
//! through semihosting; the exit status is the verdict.

use core::fmt;
use core::mem::MaybeUninit;
use core::ptr::{addr_of, addr_of_mut, read_volatile, write_volatile};

use cortex_m_semihosting::{debug, hprintln};
use fire_logic::{Config, EVENT_LOG_CAPACITY, Event, Inputs, Outputs, Stage};
use fire_trace::{Directives, Header, Summary, write_summary, write_transition};
use rack_controller::app::{App, Settings};
use rack_controller::board::Board;
use rack_controller::boards::stm32f407_rev_b;
use rack_controller::clock::Monotonic;
use rack_controller::field::Field;
use rack_controller::frontend::{FrontEnd, LINE_COUNT};
use rack_controller::line::LineState;
use rack_controller::nv::{
    LatchArea, NV_BYTES, NvMemory, RESERVED_OFFSET, read_history, record_boot, write_crumb,
    write_history,
};
use rack_controller::outputs::{Drive, Sense};
use rack_controller::reset::{Breadcrumb, RESET_LOOP_COUNT, ResetHistory};
use rack_registers::controller::BootState;
use rack_registers::map::{self, board_trouble as bt, input, line, output, reset_cause as rc};
use rack_registers::nvstore::RamFlash;
use rack_registers::slave::crc16;
use rack_registers::snapshot::{BoardStatus, ResetInfo};

use crate::mcu;

mod traces {
    include!(concat!(env!("OUT_DIR"), "/traces.rs"));
}

/// SYSCLK of QEMU's netduinoplus2 (SysTick counts it).
const CORE_HZ: u32 = 168_000_000;

// --- Non-volatile area and pins: RAM kept across a system reset ---------------------------------

#[unsafe(link_section = ".uninit.nv")]
static mut NV_AREA: MaybeUninit<[u8; NV_BYTES]> = MaybeUninit::uninit();

/// Offset of the phase record (checks and measurements of the first boot) in the reserved part.
const PHASE_OFFSET: usize = RESERVED_OFFSET;
/// Offset of the emulated output pins (a word, like GPIOD's output register).
const PINS_OFFSET: usize = 960;
const PHASE_MAGIC: u32 = 0x4553_4850;

/// The 1 KiB area.
pub struct EmuNv;

fn nv_ptr() -> *mut u8 {
    addr_of_mut!(NV_AREA) as *mut u8
}

impl NvMemory for EmuNv {
    fn read(&mut self, offset: usize, buf: &mut [u8]) -> bool {
        if offset.saturating_add(buf.len()) > NV_BYTES {
            return false;
        }
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: inside the reserved area.
            *b = unsafe { read_volatile(nv_ptr().add(offset + i)) };
        }
        true
    }
    fn write(&mut self, offset: usize, data: &[u8]) -> bool {
        if offset.saturating_add(data.len()) > NV_BYTES {
            return false;
        }
        for (i, b) in data.iter().enumerate() {
            // SAFETY: inside the reserved area.
            unsafe { write_volatile(nv_ptr().add(offset + i), *b) };
        }
        true
    }
}

fn pins() -> u8 {
    let mut b = [0u8; 1];
    EmuNv.read(PINS_OFFSET, &mut b);
    b[0]
}

fn set_pins(d: u8) {
    EmuNv.write(PINS_OFFSET, &[d]);
}

/// The fault path's board actions, as on the board: de-energise the contactor hold, sound the
/// buzzer, leave the releases, record the breadcrumb.
pub fn on_fault(crumb: &Breadcrumb) {
    set_pins((pins() & !(1 << output::CONTACTOR_HOLD)) | (1 << 7));
    write_crumb(&mut EmuNv, crumb);
}

// --- Boards -------------------------------------------------------------------------------------

/// Time binding: the real SysTick, or a scripted clock that moves 250 us per look.
enum Clock {
    Real(Monotonic),
    Scripted(u64),
}

/// The board with the simulated field.
pub struct EmuBoard {
    field: Field,
    fe: FrontEnd,
    status: BoardStatus,
    reset: ResetInfo,
    history: ResetHistory,
    /// The reset history is the kept area's (written there), not a scenario's.
    kept: bool,
    clock: Clock,
    feeds: u32,
    stack: mcu::StackWatch,
    hold_ever_energised: bool,
    rx: heapless::Deque<(u8, u64), 64>,
    tx: heapless::Vec<u8, 256>,
}

impl EmuBoard {
    fn new(reset: ResetInfo) -> Self {
        let c = stm32f407_rev_b();
        EmuBoard {
            field: Field::default(),
            fe: FrontEnd::new(c.open_code, c.short_code),
            status: BoardStatus::default(),
            reset,
            history: ResetHistory::default(),
            kept: false,
            clock: Clock::Scripted(0),
            feeds: 0,
            stack: mcu::StackWatch::new(),
            hold_ever_energised: false,
            rx: heapless::Deque::new(),
            tx: heapless::Vec::new(),
        }
    }

    fn set_drive(&mut self, d: Drive) {
        self.fe.driven(d);
        self.hold_ever_energised |= d.energised(output::CONTACTOR_HOLD);
        set_pins(d.0);
    }
}

impl Board for EmuBoard {
    type Nv = LatchArea<EmuNvOrRam>;

    fn now_us(&mut self) -> u64 {
        match &mut self.clock {
            Clock::Real(m) => m.guard(mcu::now_us_raw()),
            Clock::Scripted(t) => {
                *t += 250;
                *t
            }
        }
    }
    fn reset_info(&mut self) -> ResetInfo {
        self.reset
    }
    fn reset_history(&mut self) -> ResetHistory {
        self.history
    }
    fn store_reset_history(&mut self, h: &ResetHistory) {
        self.history = *h;
        if self.kept {
            write_history(&mut EmuNv, h);
        }
    }
    fn sample(&mut self, _now_ms: u64) -> Inputs {
        let scan = self.field.scan(self.fe.drive());
        let (inputs, mut st) = self.fe.process(&scan);
        if !mcu::stack_guard_ok() {
            st.troubles |= bt::STACK;
        }
        st.stack_peak = self.stack.update();
        self.status = st;
        inputs
    }
    fn status(&mut self) -> BoardStatus {
        self.status
    }
    fn drive_safe(&mut self) {
        self.set_drive(Drive::SAFE);
    }
    fn drive(&mut self, outputs: &Outputs) {
        self.set_drive(Drive::for_outputs(outputs));
    }
    fn feed_watchdog(&mut self) {
        self.feeds += 1;
    }
    fn fail_safe(&mut self, cause: u16) -> ! {
        mcu::fault_path(cause, 0, 0)
    }
    fn rx_byte(&mut self) -> Option<(u8, u64)> {
        let now = match &self.clock {
            Clock::Real(_) => mcu::now_us_raw(),
            Clock::Scripted(t) => *t,
        };
        match self.rx.front() {
            Some(&(b, at)) if at <= now => {
                self.rx.pop_front();
                Some((b, at))
            }
            _ => None,
        }
    }
    fn send(&mut self, frame: &[u8]) {
        self.tx.clear();
        let _ = self.tx.extend_from_slice(frame);
    }
}

/// The latch store of a scenario: a fresh RAM flash, or the area kept across resets.
#[allow(clippy::large_enum_variant)] // the RAM variant is the whole 1 KiB area, on purpose
pub enum EmuNvOrRam {
    Ram(RamFlashBytes),
    Kept(EmuNv),
}

/// A 1 KiB RAM area for scenarios that start from a blank non-volatile memory.
pub struct RamFlashBytes([u8; NV_BYTES]);

impl NvMemory for EmuNvOrRam {
    fn read(&mut self, offset: usize, buf: &mut [u8]) -> bool {
        match self {
            EmuNvOrRam::Ram(r) => r.0.read(offset, buf),
            EmuNvOrRam::Kept(k) => k.read(offset, buf),
        }
    }
    fn write(&mut self, offset: usize, data: &[u8]) -> bool {
        match self {
            EmuNvOrRam::Ram(r) => r.0.write(offset, data),
            EmuNvOrRam::Kept(k) => k.write(offset, data),
        }
    }
}

fn blank_nv() -> LatchArea<EmuNvOrRam> {
    LatchArea(EmuNvOrRam::Ram(RamFlashBytes([0xFF; NV_BYTES])))
}

/// The trace binding: the sampling returns the row, the clock the row's time.
struct ReplayBoard {
    now_us: u64,
    inputs: Inputs,
}

impl Board for ReplayBoard {
    type Nv = RamFlash<1024>;
    fn now_us(&mut self) -> u64 {
        self.now_us
    }
    fn reset_info(&mut self) -> ResetInfo {
        ResetInfo {
            cause: rc::POWER_ON,
            boot_count: 1,
            fault_pc: 0,
        }
    }
    fn reset_history(&mut self) -> ResetHistory {
        ResetHistory::default()
    }
    fn store_reset_history(&mut self, _h: &ResetHistory) {}
    fn sample(&mut self, _now_ms: u64) -> Inputs {
        self.inputs
    }
    fn status(&mut self) -> BoardStatus {
        BoardStatus::default()
    }
    fn drive_safe(&mut self) {}
    fn drive(&mut self, _outputs: &Outputs) {}
    fn feed_watchdog(&mut self) {}
    fn fail_safe(&mut self, cause: u16) -> ! {
        mcu::fault_path(cause, 0, 0)
    }
    fn rx_byte(&mut self) -> Option<(u8, u64)> {
        None
    }
    fn send(&mut self, _frame: &[u8]) {}
}

// --- Checks -------------------------------------------------------------------------------------

struct Tally {
    checks: u32,
    failures: u32,
    worst_cycle_us: u64,
    worst_modbus_us: u64,
}

impl Tally {
    fn check(&mut self, ok: bool, what: fmt::Arguments<'_>) {
        self.checks += 1;
        if ok {
            hprintln!("PASS {}", what);
        } else {
            self.failures += 1;
            hprintln!("FAIL {}", what);
        }
    }
}

type EmuApp = App<EmuBoard>;

#[inline(never)]
fn app(board: EmuBoard, nv: LatchArea<EmuNvOrRam>) -> EmuApp {
    match App::new(board, nv, stm32f407_rev_b(), Settings::default()) {
        Ok(a) => a,
        Err(_) => {
            hprintln!("FAIL the rev B configuration was refused");
            debug::exit(debug::EXIT_FAILURE);
            mcu::fault_path(rc::FAULT, 0, 0)
        }
    }
}

/// One control cycle (timed on the real clock) and the Modbus service until the next one.
fn step(a: &mut EmuApp, t: &mut Tally) -> Outputs {
    let start = mcu::now_us_raw();
    let r = a.cycle();
    t.worst_cycle_us = t.worst_cycle_us.max(mcu::now_us_raw() - start);
    a.serve_until_next_cycle();
    r.outputs
}

fn reg(a: &EmuApp, address: u16) -> u16 {
    a.registers()
        .get(usize::from(address))
        .copied()
        .unwrap_or(0)
}

fn reg32(a: &EmuApp, address: u16) -> u32 {
    (u32::from(reg(a, address)) << 16) | u32::from(reg(a, address + 1))
}

#[inline(never)]
fn power_up(field: Field) -> EmuApp {
    let mut b = EmuBoard::new(ResetInfo {
        cause: rc::POWER_ON,
        boot_count: 1,
        fault_pc: 0,
    });
    b.field = field;
    app(b, blank_nv())
}

const STATES: [LineState; 4] = [
    LineState::Normal,
    LineState::Active,
    LineState::Open,
    LineState::Short,
];

#[inline(never)]
fn line_states(t: &mut Tally) {
    for (i, name) in line::NAMES.iter().enumerate() {
        for state in STATES {
            let mut a = power_up(Field::default());
            step(&mut a, t);
            step(&mut a, t);
            a.board_mut().field.lines[i] = Some(state);
            for _ in 0..3 {
                step(&mut a, t);
            }
            let bit = 1u16 << i;
            let fault = matches!(state, LineState::Open | LineState::Short);
            let flags = (
                reg(&a, input::LINE_FAULT) & bit != 0,
                reg(&a, input::LINE_OPEN) & bit != 0,
                reg(&a, input::LINE_SHORT) & bit != 0,
                reg(&a, input::LINE_ACTIVE) & bit != 0,
            );
            let want = (
                fault,
                state == LineState::Open,
                state == LineState::Short,
                state == LineState::Active,
            );
            let board_line = reg32(&a, input::BOARD_TROUBLES) & bt::LINE != 0;
            let mut ok = flags == want && board_line == fault;
            if i == usize::from(line::SMOKE) {
                let smoke = reg(&a, input::SMOKE);
                ok &= smoke
                    == match state {
                        LineState::Normal => map::input_state::NORMAL,
                        LineState::Active => map::input_state::ALARM,
                        _ => map::input_state::FAULT,
                    };
            }
            t.check(
                ok,
                format_args!(
                    "line {} {:?}: line registers {:?}, board line trouble {}",
                    name, state, flags, board_line
                ),
            );
        }
    }
}

#[inline(never)]
fn release_at_power_up(t: &mut Tally) {
    for state in [LineState::Active, LineState::Short] {
        let mut field = Field::default();
        field.lines[usize::from(line::MANUAL_RELEASE)] = Some(state);
        let mut a = power_up(field);
        let mut released = false;
        for _ in 0..20 {
            let o = step(&mut a, t);
            released |=
                o.stage != Stage::Normal || o.actions.contains(fire_logic::Action::AgentRelease);
        }
        let blocked = reg(&a, input::INPUTS_BLOCKED);
        let trouble = reg32(&a, input::BOARD_TROUBLES) & bt::RELEASE_INPUT_AT_POWER_UP != 0;
        t.check(
            !released && blocked == 1 << line::MANUAL_RELEASE && trouble,
            format_args!(
                "manual release {:?} at power-up: no release, blocked {:#06x}, trouble {}",
                state, blocked, trouble
            ),
        );
    }
}

#[inline(never)]
fn reference_and_converter(t: &mut Tally) {
    let mut a = power_up(Field::default());
    for _ in 0..5 {
        step(&mut a, t);
    }
    let before = reg(&a, input::RACK_TEMP1);
    a.board_mut().field.vrefint = Some(1_400);
    step(&mut a, t);
    let temp = reg(&a, input::RACK_TEMP1);
    let troubles = reg32(&a, input::BOARD_TROUBLES);
    t.check(
        before == 250
            && temp == map::NO_VALUE as u16
            && troubles & bt::REFERENCE != 0
            && reg(&a, input::VREFINT_RAW) == 1_400,
        format_args!(
            "reference out of range: rack_temp1 {:#06x} (was {}), board troubles {:#x}",
            temp, before, troubles
        ),
    );
    dead_converter(t);
}

#[inline(never)]
fn dead_converter(t: &mut Tally) {
    let mut a = power_up(Field::default());
    a.board_mut().field.adc_dead = true;
    for _ in 0..3 {
        step(&mut a, t);
    }
    let troubles = reg32(&a, input::BOARD_TROUBLES);
    let lines = reg(&a, input::LINE_FAULT);
    t.check(
        troubles & bt::ADC != 0
            && lines == (1 << LINE_COUNT) - 1
            && reg(&a, input::RACK_TEMP2) == map::NO_VALUE as u16
            && reg32(&a, input::TROUBLES) & map::trouble::BOARD != 0,
        format_args!(
            "dead converter: board troubles {:#x}, every line faulted {:#06x}",
            troubles, lines
        ),
    );
}

#[inline(never)]
fn output_read_back(t: &mut Tally) {
    let mut a = power_up(Field::default());
    step(&mut a, t);
    a.board_mut().field.sense_fault = Some((output::CONTACTOR_HOLD, Sense::Idle));
    for _ in 0..3 {
        step(&mut a, t);
    }
    let m = reg(&a, input::OUTPUT_MISMATCH);
    t.check(
        m == 1 << output::CONTACTOR_HOLD
            && reg32(&a, input::BOARD_TROUBLES) & bt::OUTPUT_MISMATCH != 0,
        format_args!(
            "contactor hold driven but reads idle: output mismatch {:#06x}",
            m
        ),
    );
    a.board_mut().field.sense_fault = Some((output::AGENT, Sense::Open));
    for _ in 0..3 {
        step(&mut a, t);
    }
    let l = reg(&a, input::OUTPUT_LINE_FAULT);
    t.check(
        l == 1 << output::AGENT && reg(&a, input::OUTPUT_MISMATCH) == 0,
        format_args!(
            "agent release line cut while idle: output line fault {:#06x}",
            l
        ),
    );
    a.board_mut().field.sense_fault = Some((output::GAS_RELEASE, Sense::Energised));
    for _ in 0..3 {
        step(&mut a, t);
    }
    let m = reg(&a, input::OUTPUT_MISMATCH);
    t.check(
        m == 1 << output::GAS_RELEASE,
        format_args!(
            "room gas energised though not commanded: output mismatch {:#06x}",
            m
        ),
    );
}

#[inline(never)]
fn modbus(t: &mut Tally) {
    let mut field = Field::default();
    field.lines[usize::from(line::HOLD)] = Some(LineState::Short);
    let mut a = power_up(field);
    for _ in 0..3 {
        step(&mut a, t);
    }
    // Read the whole input table (function 4, 0..COUNT) as a master would.
    let body = [1u8, 4, 0, 0, 0, input::COUNT as u8];
    let crc = crc16(&body).to_le_bytes();
    let start = match a.board_mut().clock {
        Clock::Scripted(now) => now + 200,
        Clock::Real(_) => 0,
    };
    for (i, b) in body.iter().chain(crc.iter()).enumerate() {
        let _ = a.board_mut().rx.push_back((*b, start + i as u64 * 573));
    }
    for _ in 0..2 {
        step(&mut a, t);
    }
    let tx = a.board_mut().tx.clone();
    let n = usize::from(input::COUNT);
    let split = tx.len().saturating_sub(2);
    let ok_frame = tx.len() == 5 + 2 * n
        && tx.get(..3) == Some(&[1, 4, (2 * n) as u8][..])
        && tx.get(split..) == Some(&crc16(tx.get(..split).unwrap_or(&[])).to_le_bytes()[..]);
    let word = |r: u16| {
        let i = 3 + 2 * usize::from(r);
        match (tx.get(i), tx.get(i + 1)) {
            (Some(&h), Some(&l)) => u16::from_be_bytes([h, l]),
            _ => 0,
        }
    };
    let board =
        (u32::from(word(input::BOARD_TROUBLES)) << 16) | u32::from(word(input::BOARD_TROUBLES + 1));
    t.check(
        ok_frame
            && word(input::MAP_VERSION) == map::MAP_VERSION
            && word(input::LINE_FAULT) == 1 << line::HOLD
            && board & bt::LINE != 0,
        format_args!(
            "Modbus RTU read of all {} input registers: {} bytes, hold line fault {:#06x}",
            n,
            tx.len(),
            word(input::LINE_FAULT)
        ),
    );
    // The cost of answering that request (the slave's work for the largest answer).
    let regs = *a.registers();
    let coils = [false; rack_registers::COIL_COUNT];
    let mut frame: heapless::Vec<u8, 8> = heapless::Vec::new();
    let _ = frame.extend_from_slice(&body);
    let _ = frame.extend_from_slice(&crc);
    for _ in 0..10 {
        let mut response = rack_registers::Response::new();
        let mut commands = rack_registers::Commands::new();
        let start = mcu::now_us_raw();
        let _ = rack_registers::Slave::new(1).process(
            rack_registers::Proto::Rtu,
            &frame,
            &regs,
            &coils,
            &mut response,
            &mut commands,
        );
        t.worst_modbus_us = t.worst_modbus_us.max(mcu::now_us_raw() - start);
    }
}

#[inline(never)]
fn time_wrap(t: &mut Tally) {
    // The real SysTick, started 60 ms before the 32-bit millisecond wrap; 1 ms cycles.
    mcu::set_ms(u64::from(u32::MAX) - 60);
    let mut b = EmuBoard::new(ResetInfo {
        cause: rc::POWER_ON,
        boot_count: 1,
        fault_pc: 0,
    });
    b.clock = Clock::Real(Monotonic::new());
    let settings = Settings {
        period_ms: 1,
        ..Settings::default()
    };
    let Ok(mut a) = App::new(b, blank_nv(), stm32f407_rev_b(), settings) else {
        t.check(false, format_args!("time wrap: boot"));
        return;
    };
    let first = mcu::now_us_raw() / 1000;
    let mut all_fed = true;
    let mut monotonic = true;
    let mut last = 0;
    for _ in 0..150 {
        let r = a.cycle();
        all_fed &= r.fed;
        a.serve_until_next_cycle();
        let now = mcu::now_us_raw();
        monotonic &= now >= last;
        last = now;
    }
    let end = mcu::now_us_raw() / 1000;
    let feeds = a.board_mut().feeds;
    t.check(
        first < u64::from(u32::MAX) && end > u64::from(u32::MAX) + 50 && all_fed && monotonic
            && feeds == 149,
        format_args!(
            "SysTick clock from {} ms to {} ms across the 32-bit wrap: 150 cycles in time, {} feeds",
            first, end, feeds
        ),
    );
}

/// Streams the replay output against the expected text.
struct Compare<'a> {
    expected: &'a str,
    pos: usize,
    line: usize,
    failed_at: Option<usize>,
}

impl fmt::Write for Compare<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.failed_at.is_some() {
            return Ok(());
        }
        let end = self.pos + s.len();
        if self.expected.get(self.pos..end) == Some(s) {
            self.line += s.matches('\n').count();
            self.pos = end;
        } else {
            self.failed_at = Some(self.line + 1);
        }
        Ok(())
    }
}

#[inline(never)]
fn replay(t: &mut Tally) {
    for (name, csv, expected) in traces::TRACES {
        let mut cmp = Compare {
            expected,
            pos: 0,
            line: 0,
            failed_at: None,
        };
        match replay_one(csv, &mut cmp, t) {
            Ok(rows) => {
                let identical = cmp.failed_at.is_none() && cmp.pos == expected.len();
                t.check(
                    identical,
                    format_args!(
                        "trace {} through the real cycle: {} rows, {} lines identical to the host{}",
                        name,
                        rows,
                        cmp.line,
                        match cmp.failed_at {
                            Some(_) => " (first difference after that line)",
                            None if !identical => " (output stopped short)",
                            None => "",
                        }
                    ),
                );
            }
            Err(why) => t.check(false, format_args!("trace {}: {}", name, why)),
        }
    }
}

#[inline(never)]
fn replay_one(csv: &str, out: &mut Compare<'_>, t: &mut Tally) -> Result<u32, &'static str> {
    // `#!` directives (common-cause groups) come before the header, as in `fire_trace::replay`.
    let mut directives = Directives::default();
    for (i, l) in csv.lines().enumerate() {
        let t = l.trim_start();
        if t.starts_with("#!") {
            directives.parse(l, i + 1).map_err(|_| "bad directive")?;
        } else if !t.trim().is_empty() && !t.starts_with('#') {
            break;
        }
    }
    let mut lines = csv
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    let (hline, htext) = lines.next().ok_or("no header")?;
    let header = Header::parse(htext, hline).map_err(|_| "bad header")?;
    let mut cfg = Config::default();
    cfg.fitted = header.fitted(cfg.fitted);
    if let Some(groups) = directives.common_cause {
        cfg.common_cause = groups;
    }
    let board = ReplayBoard {
        now_us: 0,
        inputs: Inputs::default(),
    };
    let mut a = App::new(board, RamFlash::<1024>::new(256), cfg, Settings::default())
        .map_err(|_| "configuration refused")?;
    let mut s = Summary {
        rows: 0,
        end_t_ms: 0,
        final_stage: Stage::Normal,
        max_stage: Stage::Normal,
        final_outputs: Outputs::default(),
        transitions: 0,
        events: 0,
    };
    let mut events: heapless::Vec<Event, EVENT_LOG_CAPACITY> = heapless::Vec::new();
    for (line_no, text) in lines {
        let row = header.parse_row(text, line_no).map_err(|_| "bad row")?;
        if row.restart {
            // A controller restart: only what the controller wrote to its non-volatile area
            // survives; the new App boots from it like the board does after a reset.
            let (mut board, ctrl) = a.into_parts();
            board.now_us = row.t_ms * 1000;
            a = App::new(board, ctrl.into_flash(), cfg, Settings::default())
                .map_err(|_| "restart: boot refused")?;
        }
        let b = a.board_mut();
        b.now_us = row.t_ms * 1000;
        b.inputs = row.inputs;
        a.schedule_at(row.t_ms);
        events.clear();
        let mut lost = false;
        let mut keep = |e: &Event| lost |= events.push(*e).is_err();
        let start = mcu::now_us_raw();
        if let Some(c) = row.command {
            let _ = a.command_observed(row.t_ms, c, &mut keep);
        }
        let r = a.cycle_observed(&mut keep);
        t.worst_cycle_us = t.worst_cycle_us.max(mcu::now_us_raw() - start);
        if lost {
            return Err("more events in one cycle than the log holds");
        }
        let o = r.outputs;
        s.rows += 1;
        s.end_t_ms = row.t_ms;
        s.max_stage = s.max_stage.max(o.stage);
        s.final_stage = o.stage;
        s.final_outputs = o;
        if !events.is_empty() {
            s.events += events.len() as u32;
            s.transitions += 1;
            write_transition(out, row.t_ms, &o, events.iter().copied()).map_err(|_| "output")?;
        }
    }
    write_summary(out, &s).map_err(|_| "output")?;
    Ok(s.rows)
}

// --- Phases -------------------------------------------------------------------------------------

struct PhaseRecord {
    /// 1: the first boot's checks are done (the stack overflow follows); 2: the second boot's
    /// too (its fault follows).
    phase: u32,
    checks: u32,
    failures: u32,
    worst_cycle_us: u32,
    worst_modbus_us: u32,
    stack_peak: u32,
}

fn write_phase(p: &PhaseRecord) {
    let words = [
        PHASE_MAGIC,
        p.checks,
        p.failures,
        p.worst_cycle_us,
        p.worst_modbus_us,
        p.stack_peak,
        p.phase,
    ];
    let mut bytes = [0u8; 32];
    for (i, w) in words.iter().enumerate() {
        bytes[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
    }
    let crc = rack_registers::nvstore::crc32(&bytes[..28]);
    bytes[28..].copy_from_slice(&crc.to_le_bytes());
    EmuNv.write(PHASE_OFFSET, &bytes);
}

fn read_phase() -> Option<PhaseRecord> {
    let mut bytes = [0u8; 32];
    EmuNv.read(PHASE_OFFSET, &mut bytes);
    let w = |i: usize| {
        u32::from_le_bytes([
            bytes[i * 4],
            bytes[i * 4 + 1],
            bytes[i * 4 + 2],
            bytes[i * 4 + 3],
        ])
    };
    if w(0) != PHASE_MAGIC || w(7) != rack_registers::nvstore::crc32(&bytes[..28]) {
        return None;
    }
    Some(PhaseRecord {
        phase: w(6),
        checks: w(1),
        failures: w(2),
        worst_cycle_us: w(3),
        worst_modbus_us: w(4),
        stack_peak: w(5),
    })
}

#[inline(never)]
fn overflow(depth: u32) -> u32 {
    let mut frame = [depth; 64];
    // SAFETY: a local array; the volatile accesses keep the frame.
    unsafe { write_volatile(addr_of_mut!(frame[3]), depth) };
    if depth == u32::MAX {
        return 0;
    }
    overflow(depth + 1).wrapping_add(unsafe { read_volatile(addr_of!(frame[5])) })
}

#[inline(never)]
fn kept_nv_app(reset: ResetInfo) -> EmuApp {
    let mut b = EmuBoard::new(reset);
    b.field = Field {
        temp_dc: 700,
        smoke: true,
        ..Field::default()
    };
    app(b, LatchArea(EmuNvOrRam::Kept(EmuNv)))
}

/// A controller on the area kept across resets, heated to stage 2.
#[inline(never)]
fn heat_on_kept_area(record: ResetInfo, t: &mut Tally) {
    let mut a = kept_nv_app(record);
    let mut stage = Stage::Normal;
    for n in 0..2_000 {
        a.board_mut().field.temp_dc = (250 + n * 2).min(700);
        stage = step(&mut a, t).stage;
        if stage == Stage::Stage2 {
            break;
        }
    }
    let p = pins();
    t.check(
        stage == Stage::Stage2
            && p & (1 << output::CONTACTOR_HOLD) == 0
            && p & (1 << output::BLANKET) != 0
            && p & (1 << output::PATCH) != 0,
        format_args!(
            "heated to {} on the kept area: pins {:#04x}",
            stage.name(),
            p
        ),
    );
}

/// The stack peak of the application as the board image runs it: the app in the frame of its
/// caller (as in the board's `main`), a thermal runaway through every stage to the room gas
/// release, a Modbus request in every cycle. Run first, on the paint of the reset.
#[inline(never)]
fn stack_workload(t: &mut Tally) -> usize {
    let mut b = EmuBoard::new(ResetInfo {
        cause: rc::POWER_ON,
        boot_count: 1,
        fault_pc: 0,
    });
    b.field.smoke = true;
    // The kept area, as the board's backup SRAM: nothing of it on the stack.
    let nv = LatchArea(EmuNvOrRam::Kept(EmuNv));
    let Ok(mut a) = App::new(b, nv, stm32f407_rev_b(), Settings::default()) else {
        return usize::MAX;
    };
    let body = [1u8, 4, 0, 0, 0, input::COUNT as u8];
    let crc = crc16(&body).to_le_bytes();
    let mut stage = Stage::Normal;
    for n in 0..20_000 {
        let temp = (250 + n * 2).min(1_000);
        a.board_mut().field.temp_dc = temp;
        let now = match a.board_mut().clock {
            Clock::Scripted(now) => now,
            Clock::Real(_) => 0,
        };
        for (i, byte) in body.iter().chain(crc.iter()).enumerate() {
            let _ = a
                .board_mut()
                .rx
                .push_back((*byte, now + 200 + i as u64 * 573));
        }
        stage = step(&mut a, t).stage;
        if stage == Stage::Stage5
            && a.controller().logic().latch_record().gas != fire_logic::GasState::Idle
        {
            break;
        }
    }
    t.check(
        stage == Stage::Stage5,
        format_args!("stack workload ran the runaway to {}", stage.name()),
    );
    mcu::stack_peak()
}

fn first_boot(record: ResetInfo) -> ! {
    let mut t = Tally {
        checks: 0,
        failures: 0,
        worst_cycle_us: 0,
        worst_modbus_us: 0,
    };
    let stack_peak = stack_workload(&mut t);
    EmuNv.write(0, &[0xFF; 768]);
    t.check(
        record.cause & rc::UNKNOWN != 0 && record.cause & rc::UNEXPECTED != 0,
        format_args!(
            "reset without hardware flags or record reads unknown, never a clean power-up (cause {:#06x})",
            record.cause
        ),
    );
    line_states(&mut t);
    release_at_power_up(&mut t);
    reference_and_converter(&mut t);
    output_read_back(&mut t);
    modbus(&mut t);
    replay(&mut t);
    time_wrap(&mut t);

    heat_on_kept_area(record, &mut t);
    hprintln!("MEASURE worst_cycle_us={}", t.worst_cycle_us);
    hprintln!("MEASURE worst_modbus_us={}", t.worst_modbus_us);
    hprintln!(
        "MEASURE stack_peak_bytes={} of {} (application as the board runs it)",
        stack_peak,
        mcu::stack_size()
    );
    hprintln!(
        "MEASURE stack_peak_checks_bytes={} (deepest of every check above, harness included)",
        mcu::stack_peak()
    );
    write_phase(&PhaseRecord {
        phase: 1,
        checks: t.checks,
        failures: t.failures,
        worst_cycle_us: u32::try_from(t.worst_cycle_us).unwrap_or(u32::MAX),
        worst_modbus_us: u32::try_from(t.worst_modbus_us).unwrap_or(u32::MAX),
        stack_peak: stack_peak as u32,
    });
    hprintln!("overflowing the stack in stage 2 (the fault handler must reset the controller)");
    let r = overflow(0);
    hprintln!("FAIL the stack overflow did not fault ({})", r);
    debug::exit(debug::EXIT_FAILURE);
    mcu::fault_path(rc::FAULT, 0, 0)
}

/// The controller restored from the kept area after the fault.
#[inline(never)]
fn restored_after_fault(record: ResetInfo, t: &mut Tally) {
    let mut a = kept_nv_app(record);
    let restored = a.controller().boot_state() == BootState::Restored;
    let boot_pins = pins();
    let o = step(&mut a, t);
    t.check(
        restored
            && boot_pins == Drive::SAFE.0
            && o.stage == Stage::Stage2
            && !a.board_mut().hold_ever_energised
            && pins() & (1 << output::BLANKET) != 0,
        format_args!(
            "latch restored ({}): boot drove {:#04x}, first cycle {} with pins {:#04x}, contactor never closed",
            restored,
            boot_pins,
            o.stage.name(),
            pins()
        ),
    );
    let troubles = reg32(&a, input::BOARD_TROUBLES);
    t.check(
        reg(&a, input::RESET_CAUSE) == record.cause
            && reg32(&a, input::BOOT_COUNT) == 2
            && troubles & bt::UNEXPECTED_RESET != 0
            && reg32(&a, input::TROUBLES) & map::trouble::BOARD != 0,
        format_args!(
            "reset cause {:#06x} and boot count {} in the registers, unexpected-reset trouble",
            reg(&a, input::RESET_CAUSE),
            reg32(&a, input::BOOT_COUNT)
        ),
    );
}

#[inline(never)]
fn second_boot(record: ResetInfo, phase: PhaseRecord) -> ! {
    let mut t = Tally {
        checks: phase.checks,
        failures: phase.failures,
        worst_cycle_us: 0,
        worst_modbus_us: 0,
    };
    let p = pins();
    t.check(
        p & (1 << output::CONTACTOR_HOLD) == 0
            && p & (1 << output::BLANKET) != 0
            && p & (1 << output::PATCH) != 0
            && p & (1 << 7) != 0,
        format_args!(
            "the fault handler tripped the contactor, left the releases and sounded the buzzer (pins {:#04x})",
            p
        ),
    );
    t.check(
        record.cause & (rc::FAULT | rc::STACK) == rc::FAULT | rc::STACK
            && record.cause & rc::NV_LOST == 0
            && record.boot_count == 2,
        format_args!(
            "reset cause recorded across the reset: cause {:#06x}, boot count {}",
            record.cause, record.boot_count
        ),
    );
    restored_after_fault(record, &mut t);
    hprintln!(
        "MEASURE first boot: worst_cycle_us={} worst_modbus_us={} stack_peak_bytes={}",
        phase.worst_cycle_us,
        phase.worst_modbus_us,
        phase.stack_peak
    );
    // The loop: a healthy normal state (the latch store formatted), then one more fault.
    EmuNv.write(0, &[0xFF; 768]);
    write_phase(&PhaseRecord {
        phase: 2,
        checks: t.checks,
        failures: t.failures,
        ..phase
    });
    hprintln!("faulting once more from the normal stage (the third unexpected reset)");
    mcu::fault_path(rc::FAULT, 0, 0)
}

fn verdict(t: &Tally) -> ! {
    if t.failures == 0 {
        hprintln!("rack-controller (emulated): all {} checks passed", t.checks);
        debug::exit(debug::EXIT_SUCCESS);
    } else {
        hprintln!(
            "rack-controller (emulated): {} of {} checks failed",
            t.failures,
            t.checks
        );
        debug::exit(debug::EXIT_FAILURE);
    }
    loop {
        cortex_m::asm::nop();
    }
}

/// The third boot: three unexpected resets (unknown, stack overflow, fault) within the window.
/// Never inlined: its controller must not sit in `main`'s frame under the first boot's stack
/// measurement.
#[inline(never)]
fn third_boot(record: ResetInfo, history: ResetHistory, phase: PhaseRecord) -> ! {
    let mut t = Tally {
        checks: phase.checks,
        failures: phase.failures,
        worst_cycle_us: 0,
        worst_modbus_us: 0,
    };
    t.check(
        history.lockout && history.count == RESET_LOOP_COUNT && record.boot_count == 3,
        format_args!(
            "reset loop counted across the resets: {} unexpected resets, lockout {}, boot {}",
            history.count, history.lockout, record.boot_count
        ),
    );
    let mut b = EmuBoard::new(record);
    b.history = history;
    b.kept = true;
    let mut a = app(b, LatchArea(EmuNvOrRam::Kept(EmuNv)));
    let fresh = a.controller().boot_state() == BootState::Fresh;
    for _ in 0..20 {
        step(&mut a, &mut t);
    }
    let window: heapless::Vec<u16, 8> = (0..reg(&a, input::EVENT_WINDOW_LEN))
        .rev()
        .map(|i| {
            reg(
                &a,
                input::EVENT_WINDOW + i * map::EVENT_ENTRY_REGS + map::event_entry::CODE,
            ) & 0xFF
        })
        .collect();
    let cause_detail = reg(
        &a,
        input::EVENT_WINDOW
            + (reg(&a, input::EVENT_WINDOW_LEN) - 1) * map::EVENT_ENTRY_REGS
            + map::event_entry::DETAIL,
    );
    t.check(
        fresh
            && a.controller().logic().stage() == Stage::Normal
            && !a.board_mut().hold_ever_energised
            && reg32(&a, input::BOARD_TROUBLES) & bt::RESET_LOOP != 0
            && reg(&a, input::STATUS) & map::status::RESET_LOOP != 0
            && window.first() == Some(&u16::from(map::event_kind::CONTROLLER_RESET))
            && window.get(1) == Some(&u16::from(map::event_kind::RESET_LOOP))
            && cause_detail & rc::FAULT != 0,
        format_args!(
            "reset loop: normal stage, contactor never closed, trouble and status set, window {:?} (cause {:#06x})",
            window.as_slice(),
            cause_detail
        ),
    );
    // The local reset key (held off since power-up until seen normal, then pressed).
    a.board_mut().field.lines[usize::from(line::RESET)] = Some(LineState::Active);
    for _ in 0..3 {
        step(&mut a, &mut t);
    }
    a.board_mut().field.lines[usize::from(line::RESET)] = None;
    for _ in 0..3 {
        step(&mut a, &mut t);
    }
    a.board_mut().field.lines[usize::from(line::RESET)] = Some(LineState::Active);
    for _ in 0..3 {
        step(&mut a, &mut t);
    }
    t.check(
        pins() & (1 << output::CONTACTOR_HOLD) != 0
            && reg(&a, input::STATUS) & map::status::RESET_LOOP == 0
            && read_history(&mut EmuNv) == Some(ResetHistory::default()),
        format_args!(
            "reset loop ended by the local reset key: contactor closed (pins {:#04x}), history cleared",
            pins()
        ),
    );
    verdict(&t)
}

#[cortex_m_rt::entry]
fn main() -> ! {
    let Some(mut cp) = cortex_m::Peripherals::take() else {
        mcu::fault_path(rc::FAULT, 0, 0)
    };
    mcu::start_clock(&mut cp.SYST, &mut cp.SCB, CORE_HZ);
    // The reset cause, as the board does it (QEMU models no reset flags: RCC_CSR reads 0).
    let flags = mcu::rd(mcu::RCC_CSR);
    let phase = read_phase();
    let (crumb, record, history) = record_boot(&mut EmuNv, flags, phase.is_some());
    hprintln!(
        "rack-controller {} on the emulated STM32F405 (netduinoplus2), boot {}",
        env!("CARGO_PKG_VERSION"),
        record.boot_count
    );
    match (phase, crumb) {
        (Some(p), Some(_)) if p.phase >= 2 => third_boot(record.info(), history, p),
        (Some(p), Some(_)) => second_boot(record.info(), p),
        (Some(_), None) => {
            hprintln!("FAIL reset after the first boot without a fault record");
            debug::exit(debug::EXIT_FAILURE);
            loop {
                cortex_m::asm::nop();
            }
        }
        (None, Some(c)) => {
            hprintln!(
                "FAIL a fault reset the controller during the checks: cause {:#06x}, pc {:#010x}, cfsr {:#010x}",
                c.cause,
                c.pc,
                c.cfsr
            );
            debug::exit(debug::EXIT_FAILURE);
            loop {
                cortex_m::asm::nop();
            }
        }
        (None, None) => {
            // First boot: a blank area (the production line formats the backup SRAM), except
            // the boot record just written.
            EmuNv.write(0, &[0xFF; 768]);
            EmuNv.write(PHASE_OFFSET, &[0xFF; 128]);
            set_pins(Drive::SAFE.0);
            first_boot(record.info())
        }
    }
}
