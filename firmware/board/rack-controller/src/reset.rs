//! Reset cause: what the MCU's reset flags say, what the firmware recorded before it reset
//! itself, and the boot record kept in the non-volatile area ([`crate::nv`]).
//!
//! At every boot the board reads the reset flags (RCC_CSR) and clears them, reads the
//! breadcrumb (written by the fault handler, the panic handler or the program-flow check just
//! before they reset the controller) and erases it, and rewrites the boot record with the boot
//! count and this cause. [`at_boot`] is that decision, pure. The result is published
//! (`reset_cause`, `boot_count`, `fault_pc`) and a cause in
//! [`rack_registers::map::reset_cause::UNEXPECTED`] is a trouble until acknowledged.

use rack_registers::map::reset_cause as rc;
use rack_registers::nvstore::crc32;
use rack_registers::snapshot::ResetInfo;

/// RCC_CSR flags (STM32F4 reference manual RM0090, 7.3.21).
pub mod csr {
    /// Low-power reset.
    pub const LPWRRSTF: u32 = 1 << 31;
    /// Window watchdog reset.
    pub const WWDGRSTF: u32 = 1 << 30;
    /// Independent watchdog reset.
    pub const IWDGRSTF: u32 = 1 << 29;
    /// Software reset.
    pub const SFTRSTF: u32 = 1 << 28;
    /// POR/PDR reset.
    pub const PORRSTF: u32 = 1 << 27;
    /// NRST pin reset (also set by every internal reset, which drives the pin).
    pub const PINRSTF: u32 = 1 << 26;
    /// Brown-out reset (also set with a power-on).
    pub const BORRSTF: u32 = 1 << 25;
    /// Write 1 to clear the flags.
    pub const RMVF: u32 = 1 << 24;
}

/// Decodes the reset flags into [`rack_registers::map::reset_cause`] bits. A power-on also sets
/// the brown-out flag, and every internal reset also sets the pin flag: those are folded, so
/// `BROWN_OUT` means a brown-out while running and `PIN` the reset pin alone.
pub const fn decode_csr(csr: u32) -> u16 {
    let mut c = 0u16;
    if csr & csr::PORRSTF != 0 {
        c |= rc::POWER_ON;
    } else if csr & csr::BORRSTF != 0 {
        c |= rc::BROWN_OUT;
    }
    if csr & csr::SFTRSTF != 0 {
        c |= rc::SOFTWARE;
    }
    if csr & csr::IWDGRSTF != 0 {
        c |= rc::IWDG;
    }
    if csr & csr::WWDGRSTF != 0 {
        c |= rc::WWDG;
    }
    if csr & csr::LPWRRSTF != 0 {
        c |= rc::LOW_POWER;
    }
    if csr & csr::PINRSTF != 0 && c == 0 {
        c |= rc::PIN;
    }
    c
}

const CRUMB_MAGIC: u32 = 0x4255_5243; // "CRUB"
const BOOT_MAGIC: u32 = 0x544F_4F42; // "BOOT"
const HISTORY_MAGIC: u32 = 0x504F_4F4C; // "LOOP"

/// Unexpected resets within [`RESET_LOOP_WINDOW_S`] that start the reset-loop lockout.
pub const RESET_LOOP_COUNT: u32 = 3;
/// The window of the reset-loop rule, in seconds of the controller's own run time (the time it
/// is off is not known and not counted, so the window only ever lasts longer in wall time).
pub const RESET_LOOP_WINDOW_S: u32 = 3_600;

/// What the firmware records just before it resets itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Breadcrumb {
    /// [`rack_registers::map::reset_cause`] bits: `FAULT`, `PANIC`, `FLOW`, `STACK`.
    pub cause: u16,
    /// Program counter of the fault (0 when unknown).
    pub pc: u32,
    /// Configurable fault status register at the time (0 when not a fault).
    pub cfsr: u32,
}

/// Little-endian u32 at `i`.
fn word(b: &[u8], i: usize) -> Option<u32> {
    b.get(i..i.checked_add(4)?)
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .map(u32::from_le_bytes)
}

/// Encodes `magic | a | b | c | crc32` (20 bytes).
fn seal(magic: u32, a: u32, b: u32, c: u32) -> [u8; RECORD_LEN] {
    let mut out = [0u8; RECORD_LEN];
    for (i, w) in [magic, a, b, c].into_iter().enumerate() {
        if let Some(dst) = out.get_mut(i * 4..i * 4 + 4) {
            dst.copy_from_slice(&w.to_le_bytes());
        }
    }
    let crc = crc32(out.get(..16).unwrap_or(&[]));
    if let Some(dst) = out.get_mut(16..20) {
        dst.copy_from_slice(&crc.to_le_bytes());
    }
    out
}

/// Decodes a sealed record: `(a, b, c)` if the magic and the CRC match.
fn unseal(bytes: &[u8], magic: u32) -> Option<(u32, u32, u32)> {
    let body = bytes.get(..16)?;
    if word(bytes, 0)? != magic || word(bytes, 16)? != crc32(body) {
        return None;
    }
    Some((word(bytes, 4)?, word(bytes, 8)?, word(bytes, 12)?))
}

/// Bytes of an encoded breadcrumb or boot record.
pub const RECORD_LEN: usize = 20;

impl Breadcrumb {
    /// Encodes (magic, cause, pc, cfsr, CRC-32).
    pub fn encode(&self) -> [u8; RECORD_LEN] {
        seal(CRUMB_MAGIC, u32::from(self.cause), self.pc, self.cfsr)
    }

    /// Decodes; `None` for an erased, torn or foreign record.
    pub fn decode(bytes: &[u8]) -> Option<Breadcrumb> {
        let (cause, pc, cfsr) = unseal(bytes, CRUMB_MAGIC)?;
        Some(Breadcrumb {
            cause: u16::try_from(cause).ok()?,
            pc,
            cfsr,
        })
    }
}

/// The boot record: boot count and the cause of the last reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootRecord {
    /// Boots counted.
    pub boot_count: u32,
    /// Cause of the last reset.
    pub cause: u16,
    /// Program counter of the fault behind it (0 = none).
    pub fault_pc: u32,
}

impl BootRecord {
    /// Encodes (magic, count, cause, pc, CRC-32).
    pub fn encode(&self) -> [u8; RECORD_LEN] {
        seal(
            BOOT_MAGIC,
            self.boot_count,
            u32::from(self.cause),
            self.fault_pc,
        )
    }

    /// Decodes; `None` for an erased or corrupt record.
    pub fn decode(bytes: &[u8]) -> Option<BootRecord> {
        let (boot_count, cause, fault_pc) = unseal(bytes, BOOT_MAGIC)?;
        Some(BootRecord {
            boot_count,
            cause: u16::try_from(cause).ok()?,
            fault_pc,
        })
    }

    /// What is published.
    pub const fn info(&self) -> ResetInfo {
        ResetInfo {
            cause: self.cause,
            boot_count: self.boot_count,
            fault_pc: self.fault_pc,
        }
    }
}

/// The boot record of this boot, from the reset flags, the breadcrumb and the previous record.
/// No flag and no breadcrumb is `UNKNOWN` (never a clean power-up); a missing previous record
/// restarts the count and is `NV_LOST`.
pub fn at_boot(csr: u32, crumb: Option<Breadcrumb>, previous: Option<BootRecord>) -> BootRecord {
    let mut cause = decode_csr(csr);
    let mut fault_pc = 0;
    if let Some(b) = crumb {
        cause |= b.cause & (rc::FAULT | rc::PANIC | rc::FLOW | rc::STACK);
        fault_pc = b.pc;
    }
    if cause == 0 {
        cause = rc::UNKNOWN;
    }
    let boot_count = match previous {
        Some(p) => p.boot_count.saturating_add(1),
        None => {
            cause |= rc::NV_LOST;
            1
        }
    };
    BootRecord {
        boot_count,
        cause,
        fault_pc,
    }
}

/// The reset-loop rule's record in the non-volatile area: unexpected resets (watchdog, fault,
/// brown-out, unknown: [`rc::UNEXPECTED`]) counted since the first one of the current window,
/// the run time since then, and the lockout. [`RESET_LOOP_COUNT`] unexpected resets within
/// [`RESET_LOOP_WINDOW_S`] of run time start the lockout: the controller holds the contactor
/// tripped (battery isolated) until a local reset, whatever the logic's stage. A power-up or
/// the reset pin neither counts nor clears anything; only the local reset ends the lockout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResetHistory {
    /// Unexpected resets in the current window (0: no window running).
    pub count: u32,
    /// Run time since the window's first unexpected reset, whole seconds.
    pub window_s: u32,
    /// The lockout is in force.
    pub lockout: bool,
    /// Run time not yet counted in `window_s`, ms (not persisted: a reset loses it, which only
    /// lengthens the window).
    sub_ms: u64,
}

impl ResetHistory {
    /// This boot's history from the previous one and the cause of this reset. A missing or
    /// corrupt previous record (the area lost: battery-backed SRAM without its battery) starts
    /// from nothing; the boot record then says `NV_LOST`.
    pub fn at_boot(previous: Option<ResetHistory>, cause: u16) -> ResetHistory {
        let mut h = previous.unwrap_or_default();
        h.sub_ms = 0;
        if cause & rc::UNEXPECTED != 0 {
            if h.count == 0 {
                h.window_s = 0;
            }
            h.count = h.count.saturating_add(1);
        }
        if h.count >= RESET_LOOP_COUNT {
            h.lockout = true;
        }
        h
    }

    /// `ms` of run time passed; true when the persisted part changed (at most once a second
    /// while a window runs). The window ends, and its count with it, after
    /// [`RESET_LOOP_WINDOW_S`] of run time; a lockout does not end with time.
    pub fn ran(&mut self, ms: u64) -> bool {
        if self.count == 0 || self.lockout {
            return false;
        }
        self.sub_ms = self.sub_ms.saturating_add(ms);
        if self.sub_ms < 1_000 {
            return false;
        }
        let whole = self.sub_ms / 1_000;
        self.sub_ms %= 1_000;
        self.window_s = self
            .window_s
            .saturating_add(u32::try_from(whole).unwrap_or(u32::MAX));
        if self.window_s >= RESET_LOOP_WINDOW_S {
            self.count = 0;
            self.window_s = 0;
        }
        true
    }

    /// A local reset ended the lockout: the count starts again from nothing.
    pub fn clear(&mut self) {
        *self = ResetHistory::default();
    }

    /// Encodes (magic, count, window, flags, CRC-32).
    pub fn encode(&self) -> [u8; RECORD_LEN] {
        seal(
            HISTORY_MAGIC,
            self.count,
            self.window_s,
            u32::from(self.lockout),
        )
    }

    /// Decodes; `None` for an erased or corrupt record.
    pub fn decode(bytes: &[u8]) -> Option<ResetHistory> {
        let (count, window_s, flags) = unseal(bytes, HISTORY_MAGIC)?;
        Some(ResetHistory {
            count,
            window_s,
            lockout: flags & 1 != 0,
            sub_ms: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_decode_with_power_on_and_pin_folded() {
        assert_eq!(
            decode_csr(csr::PORRSTF | csr::BORRSTF | csr::PINRSTF),
            rc::POWER_ON
        );
        assert_eq!(decode_csr(csr::BORRSTF | csr::PINRSTF), rc::BROWN_OUT);
        assert_eq!(decode_csr(csr::IWDGRSTF | csr::PINRSTF), rc::IWDG);
        assert_eq!(decode_csr(csr::WWDGRSTF | csr::PINRSTF), rc::WWDG);
        assert_eq!(decode_csr(csr::SFTRSTF | csr::PINRSTF), rc::SOFTWARE);
        assert_eq!(decode_csr(csr::LPWRRSTF), rc::LOW_POWER);
        assert_eq!(decode_csr(csr::PINRSTF), rc::PIN);
        assert_eq!(decode_csr(0), 0);
    }

    #[test]
    fn a_watchdog_or_fault_reset_is_unexpected_and_a_power_up_is_not() {
        let prev = Some(BootRecord {
            boot_count: 41,
            cause: rc::POWER_ON,
            fault_pc: 0,
        });
        let r = at_boot(csr::PORRSTF | csr::BORRSTF | csr::PINRSTF, None, prev);
        assert_eq!((r.boot_count, r.cause), (42, rc::POWER_ON));
        assert_eq!(r.cause & rc::UNEXPECTED, 0);
        let r = at_boot(csr::IWDGRSTF | csr::PINRSTF, None, prev);
        assert_ne!(r.cause & rc::UNEXPECTED, 0);
        let crumb = Breadcrumb {
            cause: rc::FAULT | rc::STACK,
            pc: 0x0800_1234,
            cfsr: 0x9200,
        };
        let r = at_boot(csr::SFTRSTF | csr::PINRSTF, Some(crumb), prev);
        assert_eq!(r.cause, rc::SOFTWARE | rc::FAULT | rc::STACK);
        assert_eq!(r.fault_pc, 0x0800_1234);
    }

    #[test]
    fn no_flag_and_no_record_is_unknown_never_a_clean_start() {
        // Hazard: a reset whose cause cannot be told (an MCU whose flags were cleared, an
        // emulator) published as a normal power-up.
        let r = at_boot(0, None, None);
        assert_eq!(r.cause, rc::UNKNOWN | rc::NV_LOST);
        assert_eq!(r.boot_count, 1);
        assert_ne!(r.cause & rc::UNEXPECTED, 0);
    }

    #[test]
    fn records_round_trip_and_corruption_is_rejected() {
        let b = BootRecord {
            boot_count: 7,
            cause: rc::IWDG | rc::FLOW,
            fault_pc: 0x0800_0100,
        };
        let mut bytes = b.encode();
        assert_eq!(BootRecord::decode(&bytes), Some(b));
        assert_eq!(b.info().boot_count, 7);
        bytes[6] ^= 1;
        assert_eq!(BootRecord::decode(&bytes), None);
        let c = Breadcrumb {
            cause: rc::PANIC,
            pc: 0,
            cfsr: 0,
        };
        assert_eq!(Breadcrumb::decode(&c.encode()), Some(c));
        // A boot record is not a breadcrumb, erased memory is neither.
        assert_eq!(Breadcrumb::decode(&b.encode()), None);
        assert_eq!(Breadcrumb::decode(&[0xFF; RECORD_LEN]), None);
        assert_eq!(BootRecord::decode(&[0; RECORD_LEN]), None);
        assert_eq!(BootRecord::decode(&[0; 3]), None);
    }

    #[test]
    fn three_unexpected_resets_within_the_window_start_the_lockout() {
        // Hazard: a controller resetting itself again and again (watchdog, fault, brown-out)
        // keeps the battery connected, the contactor's hold-up riding through every reset.
        let mut h = ResetHistory::at_boot(None, rc::POWER_ON);
        assert_eq!((h.count, h.lockout), (0, false));
        for n in 1..RESET_LOOP_COUNT {
            h = ResetHistory::at_boot(Some(h), rc::IWDG);
            assert_eq!((h.count, h.lockout), (n, false));
            assert!(h.ran(20_000), "a window runs: persisted once a second");
        }
        // A power-up in between neither counts nor clears.
        h = ResetHistory::at_boot(Some(h), rc::POWER_ON);
        assert_eq!(h.count, RESET_LOOP_COUNT - 1);
        h = ResetHistory::at_boot(Some(h), rc::FAULT | rc::SOFTWARE);
        assert!(h.lockout);
        // Time does not end a lockout; only the local reset does.
        assert!(!h.ran(u64::from(RESET_LOOP_WINDOW_S) * 2_000));
        let again = ResetHistory::at_boot(Some(h), rc::POWER_ON);
        assert!(again.lockout, "a power cycle does not end it");
        h.clear();
        assert_eq!(h, ResetHistory::default());
    }

    #[test]
    fn unexpected_resets_further_apart_than_the_window_never_add_up() {
        let mut h = ResetHistory::default();
        for _ in 0..10 {
            h = ResetHistory::at_boot(Some(h), rc::WWDG);
            assert!(!h.lockout);
            // Runs for the whole window (in 100 ms cycles' worth of steps) between resets.
            let mut changed = 0;
            for _ in 0..RESET_LOOP_WINDOW_S {
                changed += u32::from(h.ran(1_000));
            }
            assert_eq!(changed, RESET_LOOP_WINDOW_S);
            assert_eq!(h.count, 0, "the window ended");
        }
        // A brown-out, an unknown cause and a flow error count like the watchdog.
        for cause in [rc::BROWN_OUT, rc::UNKNOWN, rc::FLOW | rc::IWDG] {
            h = ResetHistory::at_boot(Some(h), cause);
        }
        assert!(h.lockout);
        // Sub-second run time is not lost between calls, and is lost (only) across a reset.
        let mut h = ResetHistory::at_boot(None, rc::IWDG);
        assert!(!h.ran(600));
        assert!(h.ran(600));
        assert_eq!(h.window_s, 1);
    }

    #[test]
    fn the_history_round_trips_and_a_corrupt_one_is_rejected() {
        let h = ResetHistory {
            count: 2,
            window_s: 1_234,
            lockout: true,
            sub_ms: 0,
        };
        let mut b = h.encode();
        assert_eq!(ResetHistory::decode(&b), Some(h));
        b[9] ^= 4;
        assert_eq!(ResetHistory::decode(&b), None);
        assert_eq!(ResetHistory::decode(&[0xFF; RECORD_LEN]), None);
        // Not a boot record, and the other way round.
        assert_eq!(BootRecord::decode(&h.encode()), None);
    }
}
