//! The rack controller image for the STM32F407 board, rev B (thumbv7em-none-eabihf). With the
//! `emulated` feature, the image for QEMU's netduinoplus2 instead (`src/emulated.rs`): the same
//! core (`src/mcu.rs`) with the pin and converter bindings swapped.
#![no_std]
#![no_main]

mod mcu;

#[cfg(feature = "emulated")]
mod emulated;
#[cfg(feature = "emulated")]
use emulated as board_impl;
#[cfg(not(feature = "emulated"))]
mod stm32f407;
#[cfg(not(feature = "emulated"))]
use stm32f407 as board_impl;

#[cfg(not(feature = "emulated"))]
#[cortex_m_rt::entry]
fn main() -> ! {
    use rack_controller::app::{App, Settings};
    use rack_controller::boards;
    use rack_registers::map::reset_cause;

    let config = boards::stm32f407_rev_b();
    let Some(cp) = cortex_m::Peripherals::take() else {
        mcu::fault_path(reset_cause::FAULT, 0, 0)
    };
    let (board, nv) = stm32f407::Stm32f407::init(cp, &config);
    match App::new(board, nv, config, Settings::default()) {
        Ok(mut app) => app.run(),
        // The compiled-in configuration is validated by a host test; should it ever be
        // rejected, the outputs stay in the safe state and the watchdogs reset the MCU.
        Err(_) => loop {
            cortex_m::asm::nop();
        },
    }
}
