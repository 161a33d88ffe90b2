//! The hardware seen by the application: one trait, implemented once per board revision.
//! A new board maps its pins, ADC channels and UART onto these calls and nothing else changes.

use fire_logic::{Inputs, Outputs};
use rack_registers::nvstore::Flash;

/// What the application needs from a board.
pub trait Board {
    /// The non-volatile region holding the latch record (flash pages or battery-backed SRAM).
    type Nv: Flash;

    /// Monotonic time since boot, microseconds.
    fn now_us(&mut self) -> u64;

    /// Samples every input once (ADC channels, digital lines, feedbacks). A source this board
    /// does not have is `NoSample` (and configured as not fitted).
    fn sample(&mut self, now_ms: u64) -> Inputs;

    /// Drives the outputs. Called with `Outputs::default()` (everything off: the safe state)
    /// at boot, then once per control cycle with the logic's outputs.
    fn drive(&mut self, outputs: &Outputs);

    /// Feeds the hardware watchdog.
    fn feed_watchdog(&mut self);

    /// Next received RS-485 byte with its arrival time (microseconds), if any.
    fn rx_byte(&mut self) -> Option<(u8, u64)>;

    /// Sends one frame on RS-485 (drives the transceiver's enable around it).
    fn send(&mut self, frame: &[u8]);
}
