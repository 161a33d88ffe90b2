//! Board support for the STM32F407ZG rack controller, revision B: the pin and peripheral
//! bindings. Register-level and small; what a reading means is decided by the host-tested
//! library (`rack_controller::frontend`, `outputs`, `reset`).
//!
//! | function | pin / peripheral | notes |
//! |---|---|---|
//! | rack temperature 1, 2 | PA0, PA1 / ADC1 IN0, IN1 | 4-20 mA on 120 Ω against VREF+ 3.000 V |
//! | internal reference | ADC1 IN17 (VREFINT) | converted first and last in every scan |
//! | converter self-test | PC0 / ADC1, ADC2, ADC3 IN10 | half-scale divider, 2 × 10 kΩ 0.1 % |
//! | line-monitored inputs | PF6, PF7, PF8, PF9, PF10, PF3, PF4, PF5, PC1, PC2, PC3 / ADC3; PC5 / ADC2 | `boards::LINES`, resistor values in `line` |
//! | output read-back | PA4, PA5, PA6, PA7, PB0, PB1, PC4 / ADC2 | `boards::OUTPUT_SENSE` |
//! | RS-485 TX / RX | PA2 / PA3 (USART2, AF7) | 19200 8N1, interrupt driven |
//! | RS-485 driver enable | PA8 | high while sending |
//! | contactor hold | PD0 | energised = battery connected (de-energise to trip) |
//! | blanket, patch, agent, coolant, gas release, gas warning | PD1..PD6 | energise to act |
//! | buzzer | PD7 | |
//!
//! Clocks: the 16 MHz HSI (no PLL: nothing to lose lock), PCLK1 = 8 MHz (USART2, WWDG),
//! PCLK2 = 16 MHz, ADC clock 4 MHz. SysTick 1 kHz at the highest priority. Supervision: brown-out
//! reset at level 3 (2.7 V, option bytes, programmed at boot if different), the programmable
//! voltage detector at 2.9 V (readings discarded below it), the independent and the window
//! watchdogs (`rack_controller::watchdog`). The non-volatile area is the battery-backed SRAM
//! (`rack_controller::nv`), kept by the backup regulator, whose ready flag is checked at boot
//! and in every cycle.

use core::ptr::{read_volatile, write_volatile};

use fire_logic::{Config, Inputs, Outputs};
use rack_controller::board::Board;
use rack_controller::boards::{LINES, OUTPUT_SENSE, SELF_TEST, TRANSMITTERS, VREFINT};
use rack_controller::clock::Monotonic;
use rack_controller::frontend::{FrontEnd, RawScan};
use rack_controller::nv::{LatchArea, NV_BYTES, NvMemory, record_boot, write_crumb, write_history};
use rack_controller::outputs::Drive;
use rack_controller::reset::{Breadcrumb, ResetHistory, csr};
use rack_controller::watchdog::{IWDG_RELOAD, WWDG_COUNTER, WWDG_WINDOW};
use rack_registers::map::board_trouble as bt;
use rack_registers::snapshot::{BoardStatus, ResetInfo};

use crate::mcu::{
    self, BSRR, GPIOD, MODER, RCC_AHB1ENR, RCC_APB1ENR, RCC_APB2ENR, RCC_CFGR, RCC_CSR, modify, rd,
    wr,
};

const HSI_HZ: u32 = 16_000_000;
const PCLK1_HZ: u32 = HSI_HZ / 2;
const BAUD: u32 = 19_200;

const GPIO_PORTS: [usize; 6] = [
    0x4002_0000, // A
    0x4002_0400, // B
    0x4002_0800, // C
    0x4002_0C00, // D
    0x4002_1000, // E
    0x4002_1400, // F
];
const ADC_BASE: [usize; 3] = [0x4001_2000, 0x4001_2100, 0x4001_2200];
const ADC_SR: usize = 0x00;
const ADC_CR2: usize = 0x08;
const ADC_SMPR1: usize = 0x0C;
const ADC_SMPR2: usize = 0x10;
const ADC_SQR1: usize = 0x2C;
const ADC_SQR3: usize = 0x34;
const ADC_DR: usize = 0x4C;
const ADC_CCR: usize = 0x4001_2304;
const IWDG_KR: usize = 0x4000_3000;
const IWDG_PR: usize = 0x4000_3004;
const IWDG_RLR: usize = 0x4000_3008;
const IWDG_SR: usize = 0x4000_300C;
const WWDG_CR: usize = 0x4000_2C00;
const WWDG_CFR: usize = 0x4000_2C04;
const PWR_CR: usize = 0x4000_7000;
const PWR_CSR: usize = 0x4000_7004;
const FLASH_OPTKEYR: usize = 0x4002_3C08;
const FLASH_SR: usize = 0x4002_3C0C;
const FLASH_OPTCR: usize = 0x4002_3C14;
const BKPSRAM: usize = 0x4002_4000;

/// PWR_CSR: backup regulator ready.
const CSR_BRR: u32 = 1 << 3;
/// PWR_CSR: VDD below the PVD threshold.
const CSR_PVDO: u32 = 1 << 2;
/// Bound of every busy wait on a hardware flag at start-up (a flag that never comes is
/// reported, never waited for).
const SPIN_LIMIT: u32 = 100_000;
/// Bound of the wait for one conversion: the longest (VREFINT, 480 ADC cycles at 4 MHz) takes
/// about 2000 core cycles, some 200 polls; ten times that, so that a dead converter costs a
/// scan under 2 ms instead of overrunning the cycle.
const CONVERSION_POLLS: u32 = 2_000;

fn wait(done: impl FnMut() -> bool) -> bool {
    wait_for(SPIN_LIMIT, done)
}

fn wait_for(limit: u32, mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..limit {
        if done() {
            return true;
        }
    }
    false
}

/// The first 1 KiB of the battery-backed SRAM.
pub struct BackupSram;

impl NvMemory for BackupSram {
    fn read(&mut self, offset: usize, buf: &mut [u8]) -> bool {
        if offset.saturating_add(buf.len()) > NV_BYTES {
            return false;
        }
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: inside the backup SRAM, enabled in `init`.
            *b = unsafe { read_volatile((BKPSRAM + offset + i) as *const u8) };
        }
        true
    }
    fn write(&mut self, offset: usize, data: &[u8]) -> bool {
        if offset.saturating_add(data.len()) > NV_BYTES {
            return false;
        }
        for (i, b) in data.iter().enumerate() {
            // SAFETY: inside the backup SRAM.
            unsafe { write_volatile((BKPSRAM + offset + i) as *mut u8, *b) };
        }
        true
    }
}

/// The fault path's board actions: de-energise the contactor hold (trip), sound the buzzer,
/// leave the releases as they are, record the breadcrumb.
pub fn on_fault(crumb: &Breadcrumb) {
    wr(GPIOD + BSRR, (1 << 16) | (1 << 7));
    write_crumb(&mut BackupSram, crumb);
}

/// The board.
pub struct Stm32f407 {
    fe: FrontEnd,
    status: BoardStatus,
    reset: ResetInfo,
    history: ResetHistory,
    clock: Monotonic,
    bor_ok: bool,
    stack: mcu::StackWatch,
}

/// Sets the brown-out reset to level 3 (2.7 V) in the option bytes if it is not already.
fn brown_out_level_3() -> bool {
    const BOR_LEV: u32 = 0b11 << 2;
    if rd(FLASH_OPTCR) & BOR_LEV == 0 {
        return true;
    }
    wr(FLASH_OPTKEYR, 0x0819_2A3B);
    wr(FLASH_OPTKEYR, 0x4C5D_6E7F);
    modify(FLASH_OPTCR, BOR_LEV, 0);
    modify(FLASH_OPTCR, 0, 1 << 1); // OPTSTRT
    let done = wait(|| rd(FLASH_SR) & (1 << 16) == 0);
    modify(FLASH_OPTCR, 0, 1); // OPTLOCK
    done && rd(FLASH_OPTCR) & BOR_LEV == 0
}

impl Stm32f407 {
    /// Brings the board up with the outputs in the safe state, the supervision on, the reset
    /// cause recorded, the watchdogs running.
    pub fn init(mut cp: cortex_m::Peripherals, config: &Config) -> (Self, LatchArea<BackupSram>) {
        // Clocks: GPIOA..F, backup SRAM; PWR, USART2, WWDG; ADC1..3. PCLK1 = HSI / 2.
        modify(RCC_AHB1ENR, 0, 0b11_1111 | (1 << 18));
        modify(RCC_APB1ENR, 0, (1 << 17) | (1 << 28) | (1 << 11));
        modify(RCC_APB2ENR, 0, (1 << 8) | (1 << 9) | (1 << 10));
        modify(RCC_CFGR, 0b111 << 10, 0b100 << 10);

        // Outputs: the safe state before they become outputs.
        wr(GPIOD + BSRR, 0xFF << 16);
        modify(GPIOD + MODER, 0xFFFF, 0x5555);
        // Analogue pins.
        for ch in TRANSMITTERS
            .iter()
            .chain(LINES.iter())
            .chain(OUTPUT_SENSE.iter())
        {
            set_analog(ch.pin);
        }
        set_analog(rack_controller::boards::SELF_TEST_PIN);

        // Supervision: brown-out level, voltage detector at 2.9 V, backup domain.
        let bor_ok = brown_out_level_3();
        modify(PWR_CR, 0b111 << 5, (0b111 << 5) | (1 << 4) | (1 << 8));
        modify(PWR_CSR, 0, 1 << 9);
        wait(|| rd(PWR_CSR) & CSR_BRR != 0);

        // Reset cause: flags, breadcrumb, boot record, reset-loop history.
        let flags = rd(RCC_CSR);
        let (_, record, history) = record_boot(&mut BackupSram, flags, true);
        modify(RCC_CSR, 0, csr::RMVF);

        // ADCs: PCLK2 / 4, VREFINT on; each one on, 84-cycle sampling, 480 for VREFINT.
        modify(ADC_CCR, 0b11 << 16, (0b01 << 16) | (1 << 23));
        for base in ADC_BASE {
            wr(base + ADC_SMPR2, 0x2492_4924); // channels 0..9: 84 cycles
            wr(base + ADC_SMPR1, 0x0012_4924 | (0b111 << 21)); // 10..16: 84, 17: 480
            wr(base + ADC_SQR1, 0);
            modify(base + ADC_CR2, 0, 1);
        }

        mcu::start_uart(&mut cp.NVIC, PCLK1_HZ, BAUD);
        mcu::start_clock(&mut cp.SYST, &mut cp.SCB, HSI_HZ);

        // Independent watchdog: LSI / 32, reload 440 (300..828 ms over the LSI tolerance).
        // The window watchdog is configured now and started by the first feed.
        wr(IWDG_KR, 0x5555);
        wr(IWDG_PR, 3);
        wr(IWDG_RLR, IWDG_RELOAD);
        wait(|| rd(IWDG_SR) & 0b11 == 0);
        wr(IWDG_KR, 0xAAAA);
        wr(IWDG_KR, 0xCCCC);
        wr(WWDG_CFR, WWDG_WINDOW | (0b11 << 7));

        (
            Stm32f407 {
                fe: FrontEnd::new(config.open_code, config.short_code),
                status: BoardStatus::default(),
                reset: record.info(),
                history,
                clock: Monotonic::new(),
                stack: mcu::StackWatch::new(),
                bor_ok,
            },
            LatchArea(BackupSram),
        )
    }
}

/// Puts a pin (`"PF6"`) in analogue mode.
fn set_analog(pin: &str) {
    let b = pin.as_bytes();
    let (Some(&port), Some(num)) = (b.get(1), pin.get(2..).and_then(|n| n.parse::<u32>().ok()))
    else {
        return;
    };
    let Some(&base) = GPIO_PORTS.get(usize::from(port.wrapping_sub(b'A'))) else {
        return;
    };
    if num < 16 {
        modify(base + MODER, 0, 0b11 << (num * 2));
    }
}

/// One conversion; `None` if it does not complete.
fn convert(adc: u8, channel: u8) -> Option<u16> {
    let base = *ADC_BASE.get(usize::from(adc).wrapping_sub(1))?;
    wr(base + ADC_SQR3, u32::from(channel));
    modify(base + ADC_CR2, 0, 1 << 30);
    if !wait_for(CONVERSION_POLLS, || rd(base + ADC_SR) & (1 << 1) != 0) {
        return None;
    }
    Some((rd(base + ADC_DR) & 0x0FFF) as u16)
}

impl Board for Stm32f407 {
    type Nv = LatchArea<BackupSram>;

    fn now_us(&mut self) -> u64 {
        self.clock.guard(mcu::now_us_raw())
    }

    fn reset_info(&mut self) -> ResetInfo {
        self.reset
    }

    fn reset_history(&mut self) -> ResetHistory {
        self.history
    }

    fn store_reset_history(&mut self, h: &ResetHistory) {
        write_history(&mut BackupSram, h);
    }

    fn sample(&mut self, _now_ms: u64) -> Inputs {
        let mut scan = RawScan::NONE;
        scan.vrefint_first = convert(VREFINT.adc, VREFINT.channel);
        // A converter that does not answer the reference is not asked for the rest.
        let alive = scan.vrefint_first.is_some();
        if alive {
            for (adc, t) in (1u8..=3).zip(scan.self_test.iter_mut()) {
                *t = convert(adc, SELF_TEST);
            }
            for (r, ch) in scan.transmitters.iter_mut().zip(TRANSMITTERS) {
                *r = convert(ch.adc, ch.channel);
            }
            for (r, ch) in scan.lines.iter_mut().zip(LINES) {
                *r = convert(ch.adc, ch.channel);
            }
            for (r, ch) in scan.outputs.iter_mut().zip(OUTPUT_SENSE) {
                *r = convert(ch.adc, ch.channel);
            }
            scan.vrefint_last = convert(VREFINT.adc, VREFINT.channel);
        }
        let csr = rd(PWR_CSR);
        scan.supply_low = csr & CSR_PVDO != 0;
        let (inputs, mut st) = self.fe.process(&scan);
        if csr & CSR_BRR == 0 {
            st.troubles |= bt::NV_RETENTION;
        }
        if !mcu::stack_guard_ok() {
            st.troubles |= bt::STACK;
        }
        st.stack_peak = self.stack.update();
        if !self.bor_ok {
            st.troubles |= bt::BROWN_OUT_CONFIG;
        }
        self.status = st;
        inputs
    }

    fn status(&mut self) -> BoardStatus {
        self.status
    }

    fn drive_safe(&mut self) {
        self.set_pins(Drive::SAFE);
    }

    fn drive(&mut self, outputs: &Outputs) {
        self.set_pins(Drive::for_outputs(outputs));
    }

    fn feed_watchdog(&mut self) {
        wr(IWDG_KR, 0xAAAA);
        // The first feed starts the window watchdog (a start counts as a feed).
        wr(WWDG_CR, (1 << 7) | WWDG_COUNTER);
    }

    fn fail_safe(&mut self, cause: u16) -> ! {
        mcu::fault_path(cause, 0, 0)
    }

    fn rx_byte(&mut self) -> Option<(u8, u64)> {
        mcu::rx_byte()
    }

    fn send(&mut self, frame: &[u8]) {
        mcu::send(frame);
    }
}

impl Stm32f407 {
    fn set_pins(&mut self, d: Drive) {
        let set = u32::from(d.0);
        // One write: set the energised pins, reset the others of PD0..PD7.
        wr(GPIOD + BSRR, set | ((!set & 0xFF) << 16));
        self.fe.driven(d);
    }
}
