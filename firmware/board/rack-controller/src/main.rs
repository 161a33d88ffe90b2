//! The rack controller image for the STM32F407 board (thumbv7em-none-eabihf).
#![no_std]
#![no_main]

mod stm32f407;

use cortex_m_rt::entry;
use rack_controller::app::{App, Settings};
use rack_controller::boards;

/// A panic stops the loop: the watchdog is no longer fed, the MCU resets within 300 ms and the
/// latch is restored from the backup SRAM. The outputs keep their last state until then.
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    cortex_m::interrupt::disable();
    loop {
        cortex_m::asm::nop();
    }
}

#[entry]
fn main() -> ! {
    let config = boards::stm32f407_rev_a();
    let Some(cp) = cortex_m::Peripherals::take() else {
        // Only possible if `take` ran before: never feed the watchdog, let it reset us.
        loop {
            cortex_m::asm::nop();
        }
    };
    let (board, nv) = stm32f407::Stm32f407::init(cp, &config);
    match App::new(board, nv, config, Settings::default()) {
        Ok(mut app) => app.run(),
        // The compiled-in configuration is validated by a host test; should it ever be
        // rejected, the outputs stay in the safe state and the watchdog resets the MCU.
        Err(_) => loop {
            cortex_m::asm::nop();
        },
    }
}
