//! The STM32F4 core shared by the board image and the emulated image: register access, the
//! 64-bit millisecond clock on SysTick, the USART2 driver of the RS-485 link, the interrupt
//! vector table, and the fault path (hard fault, stack overflow, unexpected interrupt, panic)
//! that drives the safe state, records a breadcrumb and resets.
//!
//! Nothing here panics: no `RefCell` (the UART state is shared through critical sections), no
//! indexing that the compiler cannot prove in bounds. `tests/firmware/panic-check.sh` checks the
//! linked image.
// The emulated image swaps the UART and the GPIO for its simulated bindings.
#![cfg_attr(feature = "emulated", allow(dead_code))]

use core::cell::UnsafeCell;
use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::scb::SystemHandler;
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::exception;
use rack_controller::clock::micros;
use rack_controller::reset::Breadcrumb;
use rack_registers::map::reset_cause;

/// Reads a 32-bit peripheral register.
pub fn rd(addr: usize) -> u32 {
    // SAFETY: callers pass peripheral register addresses of the STM32F4, valid for aligned
    // 32-bit access.
    unsafe { read_volatile(addr as *const u32) }
}

/// Writes a 32-bit peripheral register.
pub fn wr(addr: usize, v: u32) {
    // SAFETY: as in `rd`.
    unsafe { write_volatile(addr as *mut u32, v) }
}

/// Read-modify-write: clears `clear`, sets `set`.
pub fn modify(addr: usize, clear: u32, set: u32) {
    wr(addr, (rd(addr) & !clear) | set);
}

pub const RCC: usize = 0x4002_3800;
pub const RCC_CFGR: usize = RCC + 0x08;
pub const RCC_AHB1ENR: usize = RCC + 0x30;
pub const RCC_APB1ENR: usize = RCC + 0x40;
pub const RCC_APB2ENR: usize = RCC + 0x44;
pub const RCC_CSR: usize = RCC + 0x74;
pub const GPIOA: usize = 0x4002_0000;
pub const GPIOD: usize = 0x4002_0C00;
pub const MODER: usize = 0x00;
pub const BSRR: usize = 0x18;
pub const AFRL: usize = 0x20;

const USART2_BASE: usize = 0x4000_4400;
const USART_SR: usize = USART2_BASE;
const USART_DR: usize = USART2_BASE + 0x04;
const USART_BRR: usize = USART2_BASE + 0x08;
const USART_CR1: usize = USART2_BASE + 0x0C;
const SR_RXNE: u32 = 1 << 5;
const SR_ORE: u32 = 1 << 3;
const SR_TXE: u32 = 1 << 7;
const SR_TC: u32 = 1 << 6;
const CR1_RXNEIE: u32 = 1 << 5;
const CR1_TXEIE: u32 = 1 << 7;
const CR1_TCIE: u32 = 1 << 6;
/// RS-485 driver enable (PA8 on rev B).
const DE_PIN: u32 = 8;
/// USART2's position in the vector table.
pub const USART2_IRQ: u16 = 38;
/// Device interrupts of the STM32F407.
const IRQ_COUNT: usize = 82;

// --- Clock -------------------------------------------------------------------------------------

static TICK_HI: AtomicU32 = AtomicU32::new(0);
static TICK_LO: AtomicU32 = AtomicU32::new(0);
static RELOAD: AtomicU32 = AtomicU32::new(0);
static TICKS_PER_US: AtomicU32 = AtomicU32::new(1);

/// The millisecond tick: a 64-bit count in two words, carry first (SysTick has the highest
/// priority, so no reader can interrupt it between the two writes).
#[exception]
fn SysTick() {
    let lo = TICK_LO.load(Ordering::Relaxed).wrapping_add(1);
    if lo == 0 {
        TICK_HI.store(
            TICK_HI.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
    }
    TICK_LO.store(lo, Ordering::Release);
}

/// Microseconds since boot (64-bit; a consistent read of both words and the down-counter).
pub fn now_us_raw() -> u64 {
    let reload = RELOAD.load(Ordering::Relaxed);
    let per_us = TICKS_PER_US.load(Ordering::Relaxed);
    loop {
        let hi = TICK_HI.load(Ordering::Acquire);
        let lo = TICK_LO.load(Ordering::Acquire);
        let cvr = cortex_m::peripheral::SYST::get_current();
        if TICK_HI.load(Ordering::Acquire) == hi && TICK_LO.load(Ordering::Acquire) == lo {
            let ms = (u64::from(hi) << 32) | u64::from(lo);
            return micros(ms, cvr, reload, per_us);
        }
    }
}

/// Sets the millisecond count (the emulated image starts it just below the 32-bit wrap).
#[cfg(feature = "emulated")]
pub fn set_ms(ms: u64) {
    cortex_m::interrupt::free(|_| {
        TICK_HI.store((ms >> 32) as u32, Ordering::Relaxed);
        TICK_LO.store(ms as u32, Ordering::Relaxed);
    });
}

/// Starts SysTick at 1 kHz from a core clock of `core_hz`, at the highest priority, with the
/// UART below it.
pub fn start_clock(
    syst: &mut cortex_m::peripheral::SYST,
    scb: &mut cortex_m::peripheral::SCB,
    core_hz: u32,
) {
    let reload = core_hz / 1000 - 1;
    RELOAD.store(reload, Ordering::Relaxed);
    TICKS_PER_US.store((core_hz / 1_000_000).max(1), Ordering::Relaxed);
    // SAFETY: priorities are set before the interrupts are enabled.
    unsafe {
        scb.set_priority(SystemHandler::SysTick, 0x00);
    }
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(reload);
    syst.clear_current();
    syst.enable_counter();
    syst.enable_interrupt();
}

// --- USART2 (RS-485) ---------------------------------------------------------------------------

const RX_CAP: usize = 256;
const TX_CAP: usize = 256;

struct Uart {
    rx: [(u8, u64); RX_CAP],
    rx_head: usize,
    rx_len: usize,
    tx: [u8; TX_CAP],
    tx_len: usize,
    tx_pos: usize,
}

/// The UART state, shared between the interrupt and the main loop. Every access goes through
/// [`with_uart`], inside a critical section: no `RefCell`, so no borrow panic.
struct Shared(UnsafeCell<Uart>);

// SAFETY: single core; the inner value is only reached inside `interrupt::free`.
unsafe impl Sync for Shared {}

static UART: Shared = Shared(UnsafeCell::new(Uart {
    rx: [(0, 0); RX_CAP],
    rx_head: 0,
    rx_len: 0,
    tx: [0; TX_CAP],
    tx_len: 0,
    tx_pos: 0,
}));

fn with_uart<R>(f: impl FnOnce(&mut Uart) -> R) -> R {
    cortex_m::interrupt::free(|_| {
        // SAFETY: interrupts are disabled, and `f` does not call `with_uart` again: this is the
        // only reference to the state while it lives.
        f(unsafe { &mut *UART.0.get() })
    })
}

impl Uart {
    fn push_rx(&mut self, byte: u8, at: u64) {
        if self.rx_len == RX_CAP {
            // Full: drop the oldest (a frame that long is broken anyway).
            self.rx_head = (self.rx_head + 1) % RX_CAP;
            self.rx_len -= 1;
        }
        let tail = (self.rx_head + self.rx_len) % RX_CAP;
        if let Some(slot) = self.rx.get_mut(tail) {
            *slot = (byte, at);
            self.rx_len += 1;
        }
    }

    fn pop_rx(&mut self) -> Option<(u8, u64)> {
        if self.rx_len == 0 {
            return None;
        }
        let v = self.rx.get(self.rx_head).copied();
        self.rx_head = (self.rx_head + 1) % RX_CAP;
        self.rx_len -= 1;
        v
    }
}

/// USART2 interrupt: receive into the queue with a timestamp, send from the frame buffer, and
/// release the RS-485 driver once the last bit has left.
#[unsafe(no_mangle)]
extern "C" fn USART2() {
    let sr = rd(USART_SR);
    let at = now_us_raw();
    with_uart(|u| {
        if sr & (SR_RXNE | SR_ORE) != 0 {
            u.push_rx(rd(USART_DR) as u8, at);
        }
        if sr & SR_TXE != 0 && rd(USART_CR1) & CR1_TXEIE != 0 {
            // Fill the data register while it is free.
            while rd(USART_SR) & SR_TXE != 0 {
                if u.tx_pos >= u.tx_len {
                    modify(USART_CR1, CR1_TXEIE, CR1_TCIE);
                    break;
                }
                let b = u.tx.get(u.tx_pos).copied().unwrap_or(0);
                wr(USART_DR, u32::from(b));
                u.tx_pos += 1;
            }
        }
        if rd(USART_CR1) & CR1_TCIE != 0 && rd(USART_SR) & SR_TC != 0 {
            modify(USART_CR1, CR1_TCIE, 0);
            wr(GPIOA + BSRR, 1 << (DE_PIN + 16));
            u.tx_len = 0;
            u.tx_pos = 0;
        }
    });
}

/// Configures USART2 (PA2/PA3, AF7) at `baud` from `pclk1_hz`, 8N1, receive interrupt on, and
/// the driver enable pin PA8 as an output (low).
pub fn start_uart(nvic: &mut cortex_m::peripheral::NVIC, pclk1_hz: u32, baud: u32) {
    wr(GPIOA + BSRR, 1 << (DE_PIN + 16));
    modify(GPIOA + MODER, 0b11 << (DE_PIN * 2), 0b01 << (DE_PIN * 2));
    modify(GPIOA + MODER, 0b1111 << 4, 0b1010 << 4);
    modify(GPIOA + AFRL, 0xFF00, 0x7700);
    wr(USART_BRR, pclk1_hz / baud);
    wr(USART_CR1, (1 << 13) | (1 << 3) | (1 << 2) | CR1_RXNEIE);
    // SAFETY: the handler only touches state through `with_uart`.
    unsafe {
        nvic.set_priority(Irq(USART2_IRQ), 0x80);
        cortex_m::peripheral::NVIC::unmask(Irq(USART2_IRQ));
    }
}

/// Next received byte and its arrival time.
pub fn rx_byte() -> Option<(u8, u64)> {
    with_uart(Uart::pop_rx)
}

/// Sends a frame (dropped if the previous one is still going out: a master never sends before
/// the answer ends).
pub fn send(frame: &[u8]) {
    with_uart(|u| {
        if u.tx_len != 0 || frame.len() > TX_CAP {
            return;
        }
        if let Some(dst) = u.tx.get_mut(..frame.len()) {
            dst.copy_from_slice(frame);
            u.tx_len = frame.len();
            u.tx_pos = 0;
            wr(GPIOA + BSRR, 1 << DE_PIN);
            modify(USART_CR1, 0, CR1_TXEIE);
            // The interrupt starts the transmission. Pending it as well does no harm on the
            // chip and is needed on QEMU 7.2, whose USART raises its line on a CR1 write only
            // at the next receive.
            cortex_m::peripheral::NVIC::pend(Irq(USART2_IRQ));
        }
    });
}

#[derive(Clone, Copy)]
struct Irq(u16);

// SAFETY: the numbers used are positions in the STM32F407 vector table.
unsafe impl cortex_m::interrupt::InterruptNumber for Irq {
    fn number(self) -> u16 {
        self.0
    }
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

/// Every device interrupt of the STM32F407: USART2 is used, every other one goes to the
/// default handler (the fault path), never to whatever follows a short table in flash.
#[unsafe(link_section = ".vector_table.interrupts")]
#[unsafe(no_mangle)]
pub static __INTERRUPTS: [Vector; IRQ_COUNT] = {
    let mut v = [Vector {
        handler: DefaultHandler,
    }; IRQ_COUNT];
    v[USART2_IRQ as usize] = Vector { handler: USART2 };
    v
};

// --- Stack -------------------------------------------------------------------------------------

unsafe extern "C" {
    static _stack_start: u32;
    static _stack_end: u32;
}

/// The value cortex-m-rt paints the stack with at reset (`paint-stack`).
pub const PAINT: u32 = 0xCCCC_CCCC;
/// Words at the bottom of the stack that must stay painted.
const GUARD_WORDS: usize = 64;

fn stack_bounds() -> (usize, usize) {
    // Linker symbols: only their addresses are taken.
    (
        core::ptr::addr_of!(_stack_end) as usize,
        core::ptr::addr_of!(_stack_start) as usize,
    )
}

/// True while the lowest [`GUARD_WORDS`] words of the stack are untouched. (Below them the
/// stack ends at the start of SRAM: an overflow faults instead of overwriting data.)
pub fn stack_guard_ok() -> bool {
    let (end, _) = stack_bounds();
    (0..GUARD_WORDS).all(|i| {
        // SAFETY: inside the stack region, word aligned.
        unsafe { read_volatile((end + i * 4) as *const u32) == PAINT }
    })
}

/// Deepest stack use since reset, bytes (the paint scrubbed off).
pub fn stack_peak() -> usize {
    let (end, start) = stack_bounds();
    let mut addr = end;
    while addr < start {
        // SAFETY: inside the stack region, word aligned.
        if unsafe { read_volatile(addr as *const u32) } != PAINT {
            break;
        }
        addr += 4;
    }
    start - addr
}

/// The published stack peak: a full scan of the paint every [`StackWatch::EVERY`] cycles
/// (about 8 k reads of 32 KiB, too many for every cycle).
pub struct StackWatch {
    count: u32,
    peak: u16,
}

impl StackWatch {
    /// Cycles between two scans.
    pub const EVERY: u32 = 50;

    /// Not scanned yet.
    pub const fn new() -> Self {
        StackWatch { count: 0, peak: 0 }
    }

    /// Call once per cycle; returns the last measured peak, bytes.
    pub fn update(&mut self) -> u16 {
        if self.count == 0 {
            self.peak = u16::try_from(stack_peak()).unwrap_or(u16::MAX);
        }
        self.count = (self.count + 1) % Self::EVERY;
        self.peak
    }
}

/// Size of the stack region, bytes.
#[cfg(feature = "emulated")]
pub fn stack_size() -> usize {
    let (end, start) = stack_bounds();
    start - end
}

// --- Fault path --------------------------------------------------------------------------------

const SCB_CFSR: usize = 0xE000_ED28;
const EMERGENCY_WORDS: usize = 256;

/// The fault handler's own stack: a stack overflow leaves the main stack pointer below SRAM,
/// where the handler could not push a single word. Only its address is used (by the
/// `HardFault` entry below).
#[allow(dead_code)]
struct EmergencyStack(UnsafeCell<[u32; EMERGENCY_WORDS]>);

// SAFETY: only used as raw memory by the fault handler, which never returns.
unsafe impl Sync for EmergencyStack {}

static EMERGENCY_STACK: EmergencyStack = EmergencyStack(UnsafeCell::new([0; EMERGENCY_WORDS]));

core::arch::global_asm!(
    ".section .HardFault.user, \"ax\"",
    ".global HardFault",
    ".type HardFault,%function",
    ".thumb_func",
    "HardFault:",
    "mrs r0, msp",
    "ldr r1, ={stack}",
    "add r1, r1, #{size}",
    "msr msp, r1",
    "b {entry}",
    stack = sym EMERGENCY_STACK,
    size = const EMERGENCY_WORDS * 4,
    entry = sym hard_fault_entry,
);

/// Entered from the `HardFault` vector on the emergency stack, with the faulting stack
/// pointer in `r0`.
extern "C" fn hard_fault_entry(sp: u32) -> ! {
    let (end, start) = stack_bounds();
    let sp = sp as usize;
    let mut cause = reset_cause::FAULT;
    let mut pc = 0;
    if sp < end || sp >= start {
        cause |= reset_cause::STACK;
    } else if sp + 32 <= start {
        // The stacked frame is r0-r3, r12, lr, pc, xpsr: pc is the seventh word.
        // SAFETY: inside the stack region.
        pc = unsafe { read_volatile((sp + 24) as *const u32) };
    }
    fault_path(cause, pc, rd(SCB_CFSR))
}

/// Every other exception and interrupt nobody enabled: a fault.
#[exception]
unsafe fn DefaultHandler(_irqn: i16) {
    fault_path(reset_cause::FAULT, 0, rd(SCB_CFSR));
}

/// A panic: the image is checked to contain none, but should one happen it is a fault.
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    fault_path(reset_cause::PANIC, 0, 0)
}

/// Drives the safe state (contactor tripped, releases left as they are), records the
/// breadcrumb and resets.
pub fn fault_path(cause: u16, pc: u32, cfsr: u32) -> ! {
    cortex_m::interrupt::disable();
    crate::board_impl::on_fault(&Breadcrumb { cause, pc, cfsr });
    cortex_m::peripheral::SCB::sys_reset()
}
