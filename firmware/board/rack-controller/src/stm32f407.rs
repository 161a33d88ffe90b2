//! Board support for the STM32F407 rack controller, revision A. Register-level and small: the
//! only `unsafe` of the image is here (volatile access to the peripherals below).
//!
//! Pin map:
//! | function | pin | notes |
//! |---|---|---|
//! | rack temperature 1 | PA0 / ADC1_IN0 | 4-20 mA on 150 ohm, see `boards::transmitter_tenths` |
//! | rack temperature 2 | PA1 / ADC1_IN1 | idem |
//! | RS-485 TX / RX | PA2 / PA3 (USART2, AF7) | 19200 8N1, interrupt driven |
//! | RS-485 driver enable | PA4 | high while sending |
//! | smoke detector relay | PE0 | active high, pull-down |
//! | reset key, hold, manual release, manual-only, fire authority | PE1..PE5 | active high, pull-down |
//! | feedbacks: contactor open, blanket down, patch, agent, coolant, gas | PE8..PE13 | active high |
//! | contactor trip, blanket, patch, agent, coolant, gas release, gas warning, buzzer | PD0..PD7 | energise to act; low (off) from reset until the logic has run |
//!
//! Clock: the 16 MHz HSI the chip starts on. SysTick gives a 1 ms tick, the independent watchdog
//! runs on the LSI with a 300 ms timeout (three control cycles). The latch record lives in the
//! 4 KiB battery-backed SRAM (kept on VBAT), which needs no erase and so never stalls a cycle.

use core::cell::RefCell;
use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::interrupt::Mutex;
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::exception;
use fire_logic::{Action, Analog, Config, Digital, Inputs, Outputs};
use rack_controller::board::Board;
use rack_controller::boards::transmitter_tenths;
use rack_registers::nvstore::{Flash, FlashError};

const HSI_HZ: u32 = 16_000_000;
const BAUD: u32 = 19_200;

const RCC: usize = 0x4002_3800;
const RCC_AHB1ENR: usize = RCC + 0x30;
const RCC_APB1ENR: usize = RCC + 0x40;
const RCC_APB2ENR: usize = RCC + 0x44;
const GPIOA: usize = 0x4002_0000;
const GPIOD: usize = 0x4002_0C00;
const GPIOE: usize = 0x4002_1000;
const MODER: usize = 0x00;
const PUPDR: usize = 0x0C;
const IDR: usize = 0x10;
const ODR: usize = 0x14;
const BSRR: usize = 0x18;
const AFRL: usize = 0x20;
const USART2_BASE: usize = 0x4000_4400;
const USART_SR: usize = USART2_BASE;
const USART_DR: usize = USART2_BASE + 0x04;
const USART_BRR: usize = USART2_BASE + 0x08;
const USART_CR1: usize = USART2_BASE + 0x0C;
const ADC1: usize = 0x4001_2000;
const ADC_SR: usize = ADC1;
const ADC_CR2: usize = ADC1 + 0x08;
const ADC_SMPR2: usize = ADC1 + 0x10;
const ADC_SQR1: usize = ADC1 + 0x2C;
const ADC_SQR3: usize = ADC1 + 0x34;
const ADC_DR: usize = ADC1 + 0x4C;
const IWDG_KR: usize = 0x4000_3000;
const IWDG_PR: usize = 0x4000_3004;
const IWDG_RLR: usize = 0x4000_3008;
const IWDG_SR: usize = 0x4000_300C;
const PWR_CR: usize = 0x4000_7000;
const PWR_CSR: usize = 0x4000_7004;
const BKPSRAM: usize = 0x4002_4000;
const BKPSRAM_LEN: usize = 4096;
const USART2_IRQ: u16 = 38;

fn rd(addr: usize) -> u32 {
    // SAFETY: `addr` is one of the peripheral registers above, valid for aligned 32-bit access.
    unsafe { read_volatile(addr as *const u32) }
}

fn wr(addr: usize, v: u32) {
    // SAFETY: as in `rd`.
    unsafe { write_volatile(addr as *mut u32, v) }
}

fn modify(addr: usize, clear: u32, set: u32) {
    wr(addr, (rd(addr) & !clear) | set);
}

/// Milliseconds since boot (SysTick).
static MILLIS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    MILLIS.fetch_add(1, Ordering::Relaxed);
}

fn now_us_raw() -> u64 {
    // A consistent (millis, counter) pair: re-read if the tick fired in between.
    loop {
        let ms = MILLIS.load(Ordering::Acquire);
        let cvr = cortex_m::peripheral::SYST::get_current();
        if MILLIS.load(Ordering::Acquire) == ms {
            let reload = HSI_HZ / 1000 - 1;
            let sub_us = (reload - cvr.min(reload)) / (HSI_HZ / 1_000_000);
            return u64::from(ms) * 1000 + u64::from(sub_us);
        }
    }
}

struct Uart {
    rx: heapless::Deque<(u8, u64), 300>,
    tx: heapless::Vec<u8, 256>,
    tx_pos: usize,
}

static UART: Mutex<RefCell<Uart>> = Mutex::new(RefCell::new(Uart {
    rx: heapless::Deque::new(),
    tx: heapless::Vec::new(),
    tx_pos: 0,
}));

const SR_RXNE: u32 = 1 << 5;
const SR_ORE: u32 = 1 << 3;
const SR_TXE: u32 = 1 << 7;
const SR_TC: u32 = 1 << 6;
const CR1_RXNEIE: u32 = 1 << 5;
const CR1_TXEIE: u32 = 1 << 7;
const CR1_TCIE: u32 = 1 << 6;

/// USART2 interrupt: receive into the queue with a timestamp, send from the frame buffer, and
/// release the RS-485 driver once the last bit has left.
#[unsafe(no_mangle)]
extern "C" fn USART2() {
    let sr = rd(USART_SR);
    cortex_m::interrupt::free(|cs| {
        let mut u = UART.borrow(cs).borrow_mut();
        if sr & (SR_RXNE | SR_ORE) != 0 {
            let byte = rd(USART_DR) as u8;
            if u.rx.is_full() {
                u.rx.pop_front();
            }
            let _ = u.rx.push_back((byte, now_us_raw()));
        }
        if sr & SR_TXE != 0 && rd(USART_CR1) & CR1_TXEIE != 0 {
            // Fill the data register while it is free (at most two bytes on the chip: one in the
            // shift register, one waiting).
            while rd(USART_SR) & SR_TXE != 0 {
                let pos = u.tx_pos;
                let Some(&b) = u.tx.get(pos) else {
                    modify(USART_CR1, CR1_TXEIE, CR1_TCIE);
                    break;
                };
                wr(USART_DR, u32::from(b));
                u.tx_pos = pos + 1;
            }
        }
        if rd(USART_CR1) & CR1_TCIE != 0 && rd(USART_SR) & SR_TC != 0 {
            modify(USART_CR1, CR1_TCIE, 0);
            wr(GPIOA + BSRR, 1 << (4 + 16)); // driver enable off
            u.tx.clear();
            u.tx_pos = 0;
        }
    });
}

/// One entry of the device interrupt table.
#[derive(Clone, Copy)]
#[repr(C)]
pub union Vector {
    handler: unsafe extern "C" fn(),
    reserved: usize,
}

unsafe extern "C" {
    fn DefaultHandler();
}

/// Device interrupts 0..=38: only USART2 is used; the others go to the default handler.
#[unsafe(link_section = ".vector_table.interrupts")]
#[unsafe(no_mangle)]
pub static __INTERRUPTS: [Vector; 39] = {
    let mut v = [Vector {
        handler: DefaultHandler,
    }; 39];
    v[USART2_IRQ as usize] = Vector { handler: USART2 };
    v
};

#[derive(Clone, Copy)]
struct Irq(u16);

// SAFETY: 38 is USART2's position in the STM32F407 vector table.
unsafe impl cortex_m::interrupt::InterruptNumber for Irq {
    fn number(self) -> u16 {
        self.0
    }
}

/// The latch store in the battery-backed SRAM, seen as four 1 KiB pages.
pub struct BackupSram;

impl Flash for BackupSram {
    fn page_size(&self) -> usize {
        1024
    }
    fn pages(&self) -> usize {
        BKPSRAM_LEN / 1024
    }
    fn read(&mut self, offset: usize, buf: &mut [u8]) -> Result<(), FlashError> {
        if offset + buf.len() > BKPSRAM_LEN {
            return Err(FlashError::OutOfBounds);
        }
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: inside the 4 KiB backup SRAM, enabled in `init`.
            *b = unsafe { read_volatile((BKPSRAM + offset + i) as *const u8) };
        }
        Ok(())
    }
    fn erase(&mut self, page: usize) -> Result<(), FlashError> {
        if page >= 4 {
            return Err(FlashError::OutOfBounds);
        }
        for i in 0..1024 {
            // SAFETY: inside the backup SRAM.
            unsafe { write_volatile((BKPSRAM + page * 1024 + i) as *mut u8, 0xFF) };
        }
        Ok(())
    }
    fn program(&mut self, offset: usize, data: &[u8]) -> Result<(), FlashError> {
        if offset + data.len() > BKPSRAM_LEN {
            return Err(FlashError::OutOfBounds);
        }
        for (i, b) in data.iter().enumerate() {
            // SAFETY: inside the backup SRAM.
            unsafe { write_volatile((BKPSRAM + offset + i) as *mut u8, *b) };
        }
        Ok(())
    }
}

/// The board.
pub struct Stm32f407 {
    open_code: i32,
    short_code: i32,
}

impl Stm32f407 {
    /// Brings the board up with every output off, the watchdog running and the latch SRAM
    /// retained on VBAT.
    pub fn init(mut cp: cortex_m::Peripherals, config: &Config) -> (Self, BackupSram) {
        // Clocks: GPIOA, GPIOD, GPIOE, backup SRAM; USART2, PWR; ADC1.
        modify(RCC_AHB1ENR, 0, (1 << 0) | (1 << 3) | (1 << 4) | (1 << 18));
        modify(RCC_APB1ENR, 0, (1 << 17) | (1 << 28));
        modify(RCC_APB2ENR, 0, 1 << 8);

        // Outputs: drive low first, then make them outputs (safe state from the first moment).
        wr(GPIOD + ODR, 0);
        modify(GPIOD + MODER, 0xFFFF, 0x5555);
        // Inputs on PE0..PE5 and PE8..PE13 with pull-downs.
        modify(GPIOE + MODER, 0x0FFF_0FFF, 0);
        modify(GPIOE + PUPDR, 0x0FFF_0FFF, 0x0AAA_0AAA);
        // PA0, PA1 analog; PA2, PA3 USART2 (AF7); PA4 driver enable, output low.
        wr(GPIOA + BSRR, 1 << (4 + 16));
        modify(GPIOA + MODER, 0x3FF, 0b01_10_10_11_11);
        modify(GPIOA + AFRL, 0xFF00, 0x7700);

        // Backup SRAM: write access, and the backup regulator so it survives on VBAT.
        modify(PWR_CR, 0, 1 << 8);
        modify(PWR_CSR, 0, 1 << 9);
        let mut spins = 0u32;
        while rd(PWR_CSR) & (1 << 3) == 0 && spins < 100_000 {
            spins += 1;
        }

        // ADC1: 12-bit, single conversion, 84-cycle sampling on channels 0 and 1.
        wr(ADC_SMPR2, 0b100 | (0b100 << 3));
        wr(ADC_SQR1, 0);
        modify(ADC_CR2, 0, 1);

        // USART2 19200 8N1, receive interrupt on.
        wr(USART_BRR, HSI_HZ / BAUD);
        wr(USART_CR1, (1 << 13) | (1 << 3) | (1 << 2) | CR1_RXNEIE);

        // SysTick 1 kHz.
        cp.SYST.set_clock_source(SystClkSource::Core);
        cp.SYST.set_reload(HSI_HZ / 1000 - 1);
        cp.SYST.clear_current();
        cp.SYST.enable_counter();
        cp.SYST.enable_interrupt();

        // Watchdog: LSI / 32 = 1 kHz, 300 ticks. Once started it cannot be stopped.
        wr(IWDG_KR, 0x5555);
        wr(IWDG_PR, 3);
        wr(IWDG_RLR, 300);
        let mut spins = 0u32;
        while rd(IWDG_SR) & 0b11 != 0 && spins < 100_000 {
            spins += 1;
        }
        wr(IWDG_KR, 0xAAAA);
        wr(IWDG_KR, 0xCCCC);

        // SAFETY: the handler only touches state behind a critical section.
        unsafe { cortex_m::peripheral::NVIC::unmask(Irq(USART2_IRQ)) };

        (
            Stm32f407 {
                open_code: config.open_code,
                short_code: config.short_code,
            },
            BackupSram,
        )
    }

    fn adc(&mut self, channel: u32) -> u16 {
        wr(ADC_SQR3, channel);
        modify(ADC_CR2, 0, 1 << 30);
        let mut spins = 0u32;
        while rd(ADC_SR) & (1 << 1) == 0 {
            spins += 1;
            if spins > 10_000 {
                // No conversion: reads as an open loop (a fault, never a temperature).
                return 0;
            }
        }
        (rd(ADC_DR) & 0x0FFF) as u16
    }
}

fn level(idr: u32, pin: u32) -> Digital {
    if idr & (1 << pin) != 0 {
        Digital::On
    } else {
        Digital::Off
    }
}

impl Board for Stm32f407 {
    type Nv = BackupSram;

    fn now_us(&mut self) -> u64 {
        now_us_raw()
    }

    fn sample(&mut self, _now_ms: u64) -> Inputs {
        let t1 = transmitter_tenths(self.adc(0), self.open_code, self.short_code);
        let t2 = transmitter_tenths(self.adc(1), self.open_code, self.short_code);
        let e = rd(GPIOE + IDR);
        let mut feedback = [Digital::NoSample; 6];
        for (i, f) in feedback.iter_mut().enumerate() {
            *f = level(e, 8 + i as u32);
        }
        Inputs {
            bms_max: Analog::NoSample,
            rack_temp1: Analog::Value(t1),
            rack_temp2: Analog::Value(t2),
            camera_max: Analog::NoSample,
            smoke: level(e, 0),
            offgas: Analog::NoSample,
            feedback,
            reset: level(e, 1),
            hold: level(e, 2),
            manual_release: level(e, 3),
            // No room gas release input on this board revision.
            room_gas_release: Digital::NoSample,
            manual_only: level(e, 4),
            authority: level(e, 5),
        }
    }

    fn drive(&mut self, outputs: &Outputs) {
        let mut set = 0u32;
        for (pin, a) in Action::ALL.iter().enumerate() {
            if outputs.actions.contains(*a) {
                set |= 1 << pin;
            }
        }
        if outputs.buzzer {
            set |= 1 << 7;
        }
        // One write: set the active pins, reset the others of PD0..PD7.
        wr(GPIOD + BSRR, set | ((!set & 0xFF) << 16));
    }

    fn feed_watchdog(&mut self) {
        wr(IWDG_KR, 0xAAAA);
    }

    fn rx_byte(&mut self) -> Option<(u8, u64)> {
        cortex_m::interrupt::free(|cs| UART.borrow(cs).borrow_mut().rx.pop_front())
    }

    fn send(&mut self, frame: &[u8]) {
        cortex_m::interrupt::free(|cs| {
            let mut u = UART.borrow(cs).borrow_mut();
            if !u.tx.is_empty() {
                // Still sending the previous answer: a master never sends before it ends.
                return;
            }
            if u.tx.extend_from_slice(frame).is_err() {
                return;
            }
            u.tx_pos = 0;
            wr(GPIOA + BSRR, 1 << 4); // driver enable on
            modify(USART_CR1, 0, CR1_TXEIE);
        });
    }
}
