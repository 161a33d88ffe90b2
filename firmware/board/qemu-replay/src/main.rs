//! Emulated-MCU proof, run on QEMU's lm3s6965evb (Cortex-M3) by `tests/firmware/run.sh`:
//!
//! 1. every shipped trace (`tests/traces/*.csv`; several images, one per group of traces that
//!    fits the 256 KiB flash, selected by `QEMU_REPLAY_GROUP` at build time) is replayed through the real fire logic with the
//!    same `fire_trace::replay` the host tool uses, and its JSON lines are compared byte for byte
//!    with `tests/traces/*.expected.jsonl`;
//! 2. (group 0) the controller is reset in the middle of every stage (only the record store survives) and
//!    must drive the same outputs after the reset.
//!
//! Prints one PASS/FAIL line per check through semihosting and exits non-zero on any failure.
#![no_std]
#![no_main]

mod compare;

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
use fire_logic::Config;
use rack_registers::nvstore::RamFlash;
use rack_registers::scenario::{RESET_STAGES, ThermalRunaway, reset_in_stage};

mod traces {
    include!(concat!(env!("OUT_DIR"), "/traces.rs"));
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    hprintln!("FAIL panic: {}", info);
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::nop();
    }
}

fn replay_checks() -> u32 {
    let mut failures = 0;
    if traces::TRACES.is_empty() {
        hprintln!(
            "FAIL no traces in group {} of {} (tests/traces/*.csv)",
            traces::GROUP + 1,
            traces::GROUPS
        );
        return 1;
    }
    for (name, csv, expected) in traces::TRACES {
        let mut cmp = compare::Compare::new(expected);
        let result = fire_trace::replay(csv, &Config::default(), &mut cmp);
        match (result, cmp.verdict()) {
            (Ok(summary), Ok(lines)) => {
                hprintln!(
                    "PASS trace {}: {} rows, {} lines identical, max stage {}",
                    name,
                    summary.rows,
                    lines,
                    summary.max_stage
                )
            }
            (Err(e), _) => {
                failures += 1;
                hprintln!("FAIL trace {}: replay error: {}", name, e);
                if let Err(m) = cmp.verdict() {
                    hprintln!(
                        "  first difference at line {}: expected {:?}, got {:?}",
                        m.line,
                        m.expected,
                        m.actual
                    );
                }
            }
            (Ok(_), Err(m)) => {
                failures += 1;
                hprintln!("FAIL trace {}: output differs at line {}", name, m.line);
                hprintln!("  expected: {}", m.expected);
                hprintln!("  got:      {}", m.actual);
            }
        }
    }
    failures
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
                "PASS reset in {}: stage and actions {:#04x} kept",
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
    hprintln!(
        "qemu-replay {} on an emulated Cortex-M3: trace group {} of {}",
        env!("CARGO_PKG_VERSION"),
        traces::GROUP + 1,
        traces::GROUPS
    );
    let mut failures = replay_checks();
    if traces::GROUP == 0 {
        failures += reset_checks();
    }
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
