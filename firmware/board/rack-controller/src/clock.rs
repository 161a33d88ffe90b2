//! 64-bit millisecond time. A 32-bit millisecond counter wraps after 49.7 days; a control loop
//! that schedules its next cycle in the future of a wrapped clock then waits for ever (and the
//! watchdog resets the controller every 49.7 days, or never, if it is fed elsewhere). The SysTick
//! interrupt therefore keeps a 64-bit count in two words ([`TickCounter`] is its pure model), and
//! [`Monotonic`] guards every reading against going backwards.

/// The millisecond count of the SysTick interrupt, as two 32-bit words (the MCU has no 64-bit
/// atomics): the interrupt increments `lo` and carries into `hi`. A reader takes `hi`, `lo`,
/// `hi` again and retries if `hi` changed (see the board support module).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TickCounter {
    hi: u32,
    lo: u32,
}

impl TickCounter {
    /// A counter at `ms` (tests start it just below a 32-bit wrap).
    pub const fn starting_at(ms: u64) -> Self {
        TickCounter {
            hi: (ms >> 32) as u32,
            lo: ms as u32,
        }
    }

    /// One millisecond tick (what the interrupt does).
    pub fn tick(&mut self) {
        let (lo, carry) = self.lo.overflowing_add(1);
        if carry {
            self.hi = self.hi.wrapping_add(1);
        }
        self.lo = lo;
    }

    /// The two words.
    pub const fn words(&self) -> (u32, u32) {
        (self.hi, self.lo)
    }

    /// Milliseconds.
    pub const fn ms(&self) -> u64 {
        ((self.hi as u64) << 32) | self.lo as u64
    }
}

/// Microseconds from a millisecond count and the SysTick down-counter within that millisecond
/// (`cvr` counts from `reload` down to 0 at `ticks_per_us` per microsecond).
pub const fn micros(ms: u64, cvr: u32, reload: u32, ticks_per_us: u32) -> u64 {
    let cvr = if cvr > reload { reload } else { cvr };
    let per_us = if ticks_per_us == 0 { 1 } else { ticks_per_us };
    let mut sub = (reload - cvr) / per_us;
    if sub > 999 {
        sub = 999;
    }
    ms.saturating_mul(1000).saturating_add(sub as u64)
}

/// Never lets time go backwards (a SysTick reload seen before its interrupt ran).
#[derive(Debug, Clone, Copy, Default)]
pub struct Monotonic {
    last: u64,
}

impl Monotonic {
    /// Starts at 0.
    pub const fn new() -> Self {
        Monotonic { last: 0 }
    }

    /// The reading, or the previous one if the reading is older.
    pub fn guard(&mut self, t: u64) -> u64 {
        self.last = self.last.max(t);
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counter_carries_past_the_32_bit_wrap() {
        // Hazard: at 49.7 days a 32-bit millisecond clock restarts at 0 and the next cycle,
        // scheduled at 2^32 ms, is never due.
        let mut c = TickCounter::starting_at(u64::from(u32::MAX) - 2);
        let mut last = c.ms();
        for _ in 0..10 {
            c.tick();
            assert_eq!(c.ms(), last + 1);
            last = c.ms();
        }
        assert_eq!(c.ms(), u64::from(u32::MAX) + 8);
        assert_eq!(c.words(), (1, 7));
    }

    #[test]
    fn microseconds_compose_and_clamp() {
        // 16 MHz, reload 15999: half-way through the millisecond is 500 us.
        assert_eq!(micros(7, 7_999, 15_999, 16), 7_500);
        assert_eq!(micros(7, 15_999, 15_999, 16), 7_000);
        assert_eq!(micros(7, 0, 15_999, 16), 7_999);
        assert_eq!(micros(7, 99_999, 15_999, 16), 7_000, "garbage counter");
        assert_eq!(micros(u64::MAX, 0, 15_999, 16), u64::MAX);
    }

    #[test]
    fn time_never_goes_backwards() {
        let mut m = Monotonic::new();
        assert_eq!(m.guard(1_000), 1_000);
        assert_eq!(m.guard(999), 1_000);
        assert_eq!(m.guard(2_000), 2_000);
    }
}
