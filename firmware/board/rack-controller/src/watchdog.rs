//! Watchdogs and program-flow monitoring.
//!
//! Two watchdogs, fed together and only for a control cycle that passed every checkpoint in
//! order within its period ([`FlowMonitor`] and the cycle monitor of the controller core). The
//! feed happens at the start of the next cycle, on the fixed grid, so that the interval between
//! feeds is the control period whatever each cycle's duration:
//!
//! - the independent watchdog (IWDG) runs on the LSI, whose frequency is only guaranteed between
//!   17 and 47 kHz: with a prescaler of 32 and a reload of [`IWDG_RELOAD`] its timeout is
//!   [`iwdg_timeout_ms`]`(47 kHz)` = 300 ms at the shortest and 828 ms at the longest. The
//!   shortest bounds the longest legitimate feed interval; the longest is the worst-case reaction
//!   to a dead clock (it also covers a stopped HSI, which stops the window watchdog too);
//! - the window watchdog (WWDG) runs on PCLK1 = HSI / 2 = 8 MHz (HSI ±1 %): one tick is
//!   4096 × 8 / 8 MHz = 4.096 ms, it resets [`WWDG_LATEST_MS`] after the last feed and also on a
//!   feed earlier than [`WWDG_EARLIEST_MS`] after it. A loop that feeds too often (a corrupted
//!   schedule, a cycle skipping its work) is caught as well as one that stopped.
//!
//! So a hung loop is reset within 262 ms (HSI running) or 828 ms (HSI stopped); one overrun
//! cycle of up to about 160 ms is survived and reported (`CYCLE_OVERRUN`).

/// IWDG prescaler (LSI / 32).
pub const IWDG_PRESCALER: u32 = 32;
/// IWDG reload value.
pub const IWDG_RELOAD: u32 = 440;
/// LSI frequency range of the STM32F407 (datasheet), Hz.
pub const LSI_HZ: (u32, u32) = (17_000, 47_000);

/// IWDG timeout at an LSI frequency, ms.
pub const fn iwdg_timeout_ms(lsi_hz: u32) -> u32 {
    (IWDG_RELOAD * IWDG_PRESCALER * 1000) / lsi_hz
}

/// WWDG tick, microseconds (PCLK1 8 MHz / 4096 / 8).
pub const WWDG_TICK_US: u32 = 4_096;
/// WWDG counter value written by a feed (T[6:0] = 0x7F: 64 ticks to the reset at 0x3F).
pub const WWDG_COUNTER: u32 = 0x7F;
/// WWDG window value: a feed while the counter is above it resets.
pub const WWDG_WINDOW: u32 = 0x73;
/// Earliest accepted feed after the previous one, ms (12 ticks).
pub const WWDG_EARLIEST_MS: u32 = (WWDG_COUNTER - WWDG_WINDOW) * WWDG_TICK_US / 1000;
/// Reset this long after the last feed, ms (64 ticks).
pub const WWDG_LATEST_MS: u32 = (WWDG_COUNTER - 0x3F) * WWDG_TICK_US / 1000;

/// Checkpoints of one control cycle, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checkpoint {
    /// The cycle started at its scheduled time.
    Start = 1,
    /// The inputs were sampled.
    Sampled = 2,
    /// The logic ran.
    Stepped = 3,
    /// The outputs were driven.
    Driven = 4,
    /// The registers were published.
    Published = 5,
}

const SEED: u32 = 0x5AFE_C0DE;

const fn mix(sig: u32, cp: u32) -> u32 {
    (sig.rotate_left(7) ^ cp.wrapping_mul(0x9E37_79B9)).wrapping_add(0x6D2B_79F5)
}

/// The signature of a cycle that passed every checkpoint once, in order.
pub const EXPECTED: u32 = mix(
    mix(
        mix(
            mix(
                mix(SEED, Checkpoint::Start as u32),
                Checkpoint::Sampled as u32,
            ),
            Checkpoint::Stepped as u32,
        ),
        Checkpoint::Driven as u32,
    ),
    Checkpoint::Published as u32,
);

/// Program-flow monitoring: a signature over the checkpoints a cycle passed. A skipped,
/// repeated or reordered checkpoint (a corrupted program counter, a jump into the middle of the
/// cycle) gives another signature, and the watchdogs are not fed.
#[derive(Debug, Clone, Copy)]
pub struct FlowMonitor {
    sig: u32,
}

impl Default for FlowMonitor {
    fn default() -> Self {
        Self::new()
    }
}

impl FlowMonitor {
    /// A monitor whose verdict is false until a cycle has passed.
    pub const fn new() -> Self {
        FlowMonitor { sig: 0 }
    }

    /// Starts a cycle (and passes [`Checkpoint::Start`]).
    pub fn begin(&mut self) {
        self.sig = mix(SEED, Checkpoint::Start as u32);
    }

    /// Passes a checkpoint.
    pub fn pass(&mut self, cp: Checkpoint) {
        self.sig = mix(self.sig, cp as u32);
    }

    /// True if the cycle passed every checkpoint once, in order.
    pub const fn verdict(&self) -> bool {
        self.sig == EXPECTED
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iwdg_period_over_the_lsi_tolerance() {
        assert_eq!(iwdg_timeout_ms(LSI_HZ.1), 299);
        assert_eq!(iwdg_timeout_ms(LSI_HZ.0), 828);
        assert_eq!(iwdg_timeout_ms(32_000), 440);
    }

    #[test]
    fn the_feed_interval_of_a_100_ms_cycle_fits_both_watchdogs() {
        // Hazard: a watchdog tuned to the nominal LSI resets a healthy controller on a fast LSI
        // (resets in the middle of a release), or never resets a hung one on a slow LSI.
        assert_eq!((WWDG_EARLIEST_MS, WWDG_LATEST_MS), (49, 262));
        let period = 100u32;
        // Feeds happen on the grid; the loop start jitters by at most a few ms (a Modbus frame
        // being answered when the cycle falls due).
        let jitter = 5;
        assert!(period - jitter > WWDG_EARLIEST_MS);
        assert!(period + jitter < WWDG_LATEST_MS);
        assert!(period + jitter < iwdg_timeout_ms(LSI_HZ.1));
        // One overrun cycle of 160 ms (reported) is survived by both.
        assert!(period + 160 < WWDG_LATEST_MS);
        assert!(period + 160 < iwdg_timeout_ms(LSI_HZ.1));
    }

    #[test]
    fn only_the_complete_ordered_sequence_passes() {
        use Checkpoint::*;
        let run = |seq: &[Checkpoint]| {
            let mut f = FlowMonitor::new();
            f.begin();
            for c in seq {
                f.pass(*c);
            }
            f.verdict()
        };
        assert!(run(&[Sampled, Stepped, Driven, Published]));
        assert!(!run(&[Sampled, Driven, Published]), "skipped the logic");
        assert!(!run(&[Stepped, Sampled, Driven, Published]), "reordered");
        assert!(
            !run(&[Sampled, Stepped, Stepped, Driven, Published]),
            "repeated"
        );
        assert!(!run(&[Sampled, Stepped, Driven]), "not published");
        assert!(!FlowMonitor::new().verdict(), "no cycle yet");
        // A cycle entered without its start.
        let mut f = FlowMonitor::new();
        for c in [Sampled, Stepped, Driven, Published] {
            f.pass(c);
        }
        assert!(!f.verdict());
    }
}
