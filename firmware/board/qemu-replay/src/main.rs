//! Emulated-MCU proof: runs on QEMU's lm3s6965evb (Cortex-M3) and exits non-zero through
//! semihosting on any failure.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
use fire_logic::Config;
use rack_registers::nvstore::RamFlash;
use rack_registers::scenario::{RESET_STAGES, ThermalRunaway, reset_in_stage};

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    hprintln!("FAIL panic: {}", info);
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::nop();
    }
}

fn reset_checks() -> u32 {
    let mut failures = 0;
    for stage in RESET_STAGES {
        let flash = RamFlash::<{ 2 * 1024 }>::new(1024);
        match reset_in_stage(
            Config::default(),
            flash,
            &ThermalRunaway::default(),
            stage,
            17,
            20,
        ) {
            Ok(c) => hprintln!(
                "PASS reset in {}: actions {:#04x} kept",
                stage,
                c.after.actions.bits()
            ),
            Err(e) => {
                failures += 1;
                hprintln!("FAIL reset in {}: {:?}", stage, e);
            }
        }
    }
    failures
}

#[entry]
fn main() -> ! {
    hprintln!("qemu-replay {} on Cortex-M3", env!("CARGO_PKG_VERSION"));
    let failures = reset_checks();
    if failures == 0 {
        hprintln!("qemu-replay: all checks passed");
        debug::exit(debug::EXIT_SUCCESS);
    } else {
        hprintln!("qemu-replay: {} check(s) failed", failures);
        debug::exit(debug::EXIT_FAILURE);
    }
    loop {
        cortex_m::asm::nop();
    }
}
