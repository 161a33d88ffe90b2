//! The hardware seen by the application: one trait, implemented once per board revision (and
//! once for the emulated MCU, whose bindings feed scripted readings through the same front end).

use fire_logic::{Inputs, Outputs};
use rack_registers::nvstore::Flash;
use rack_registers::snapshot::{BoardStatus, ResetInfo};

use crate::reset::ResetHistory;

/// What the application needs from a board.
pub trait Board {
    /// The non-volatile region holding the latch record (battery-backed SRAM on rev B).
    type Nv: Flash;

    /// Monotonic 64-bit time since boot, microseconds (never wraps, never goes back).
    fn now_us(&mut self) -> u64;

    /// Why the controller last reset (read and recorded by the board at boot).
    fn reset_info(&mut self) -> ResetInfo;

    /// The reset-loop history of this boot, decided at boot ([`ResetHistory::at_boot`], with
    /// [`crate::nv::record_boot`]).
    fn reset_history(&mut self) -> ResetHistory;

    /// Writes the reset-loop history to the non-volatile area (the window's run time, at most
    /// once a second; the end of a lockout).
    fn store_reset_history(&mut self, h: &ResetHistory);

    /// Samples every input once: a converter scan through the front end
    /// ([`crate::frontend::FrontEnd`]). A source this board does not have is `NoSample` (and
    /// configured as not fitted).
    fn sample(&mut self, now_ms: u64) -> Inputs;

    /// The board's own diagnostics of the last sample and the output read-back.
    fn status(&mut self) -> BoardStatus;

    /// Drives the boot state ([`crate::outputs::Drive::SAFE`]): nothing released, contactor
    /// hold de-energised (tripped). Called once before the controller boots.
    fn drive_safe(&mut self);

    /// Drives the logic's outputs (once per control cycle).
    fn drive(&mut self, outputs: &Outputs);

    /// Feeds both watchdogs (the first call also starts the window watchdog).
    fn feed_watchdog(&mut self);

    /// The program-flow check failed: trip the contactor, leave the releases as they are, record
    /// `cause` (a [`rack_registers::map::reset_cause`] bit) in the non-volatile area and reset.
    fn fail_safe(&mut self, cause: u16) -> !;

    /// Next received RS-485 byte with its arrival time (microseconds), if any.
    fn rx_byte(&mut self) -> Option<(u8, u64)>;

    /// Sends one frame on RS-485 (drives the transceiver's enable around it).
    fn send(&mut self, frame: &[u8]);
}
