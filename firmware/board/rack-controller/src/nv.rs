//! Layout of the non-volatile area: 1 KiB of battery-backed SRAM on the board (the STM32F407 has
//! 4 KiB; only the first 1 KiB is used, so that the same layout runs on the emulated STM32F405,
//! where 1 KiB of RAM kept across resets stands in for it).
//!
//! | offset | bytes | content |
//! |---|---|---|
//! | 0 | 768 | latch record store (`rack_registers::nvstore`), three 256-byte pages |
//! | 768 | 20 | breadcrumb ([`crate::reset::Breadcrumb`]), erased at every boot |
//! | 832 | 20 | boot record ([`crate::reset::BootRecord`]) |
//! | 864 | 20 | reset history of the reset-loop rule ([`crate::reset::ResetHistory`]) |
//! | 896 | 128 | reserved |
//!
//! SRAM needs no erase: [`LatchArea`] presents the first 768 bytes as three "pages" to the record
//! store, whose erase is a fill with 0xFF. The backup regulator must be ready for the area to
//! survive a power loss; the board reports it (`NV_RETENTION`) when it is not.

use fire_logic::LatchRecord;
use rack_registers::nvstore::{Flash, FlashError, slot_size};

use crate::reset::{BootRecord, Breadcrumb, RECORD_LEN, ResetHistory, at_boot};

/// Bytes of the area.
pub const NV_BYTES: usize = 1024;
/// Page size presented to the record store.
pub const LATCH_PAGE: usize = 256;
/// Pages of the latch store.
pub const LATCH_PAGES: usize = 3;
/// Offset of the breadcrumb.
pub const CRUMB_OFFSET: usize = 768;
/// Offset of the boot record.
pub const BOOT_OFFSET: usize = 832;
/// Offset of the reset history.
pub const HISTORY_OFFSET: usize = 864;
/// Offset of the reserved part.
pub const RESERVED_OFFSET: usize = 896;

// The latch record must fit one page (a longer record needs a new layout, not a silent
// overflow into the breadcrumb).
const _: () = assert!(slot_size(LatchRecord::LEN) <= LATCH_PAGE);
const _: () = assert!(LATCH_PAGE * LATCH_PAGES <= CRUMB_OFFSET);
const _: () = assert!(CRUMB_OFFSET + RECORD_LEN <= BOOT_OFFSET);
const _: () = assert!(BOOT_OFFSET + RECORD_LEN <= HISTORY_OFFSET);
const _: () = assert!(HISTORY_OFFSET + RECORD_LEN <= RESERVED_OFFSET);
const _: () = assert!(RESERVED_OFFSET <= NV_BYTES);

/// Byte access to the area (volatile on the board).
pub trait NvMemory {
    /// Reads `buf.len()` bytes at `offset`; false if out of the area.
    fn read(&mut self, offset: usize, buf: &mut [u8]) -> bool;
    /// Writes `data` at `offset`; false if out of the area.
    fn write(&mut self, offset: usize, data: &[u8]) -> bool;
}

/// A plain RAM area (tests; the emulated board wraps its reserved RAM the same way).
impl NvMemory for [u8; NV_BYTES] {
    fn read(&mut self, offset: usize, buf: &mut [u8]) -> bool {
        match self.get(offset..offset.saturating_add(buf.len())) {
            Some(src) if src.len() == buf.len() => {
                buf.copy_from_slice(src);
                true
            }
            _ => false,
        }
    }
    fn write(&mut self, offset: usize, data: &[u8]) -> bool {
        match self.get_mut(offset..offset.saturating_add(data.len())) {
            Some(dst) if dst.len() == data.len() => {
                dst.copy_from_slice(data);
                true
            }
            _ => false,
        }
    }
}

impl<M: NvMemory + ?Sized> NvMemory for &mut M {
    fn read(&mut self, offset: usize, buf: &mut [u8]) -> bool {
        (**self).read(offset, buf)
    }
    fn write(&mut self, offset: usize, data: &[u8]) -> bool {
        (**self).write(offset, data)
    }
}

/// The latch store's view of the area.
#[derive(Debug)]
pub struct LatchArea<M: NvMemory>(pub M);

impl<M: NvMemory> Flash for LatchArea<M> {
    fn page_size(&self) -> usize {
        LATCH_PAGE
    }
    fn pages(&self) -> usize {
        LATCH_PAGES
    }
    fn read(&mut self, offset: usize, buf: &mut [u8]) -> Result<(), FlashError> {
        if offset.saturating_add(buf.len()) > LATCH_PAGE * LATCH_PAGES || !self.0.read(offset, buf)
        {
            return Err(FlashError::OutOfBounds);
        }
        Ok(())
    }
    fn erase(&mut self, page: usize) -> Result<(), FlashError> {
        if page >= LATCH_PAGES {
            return Err(FlashError::OutOfBounds);
        }
        let blank = [0xFFu8; LATCH_PAGE];
        if self.0.write(page.saturating_mul(LATCH_PAGE), &blank) {
            Ok(())
        } else {
            Err(FlashError::Hardware)
        }
    }
    fn program(&mut self, offset: usize, data: &[u8]) -> Result<(), FlashError> {
        if offset.saturating_add(data.len()) > LATCH_PAGE * LATCH_PAGES {
            return Err(FlashError::OutOfBounds);
        }
        if self.0.write(offset, data) {
            Ok(())
        } else {
            Err(FlashError::Hardware)
        }
    }
}

/// Reads the breadcrumb and the boot record.
pub fn read_records<M: NvMemory>(m: &mut M) -> (Option<Breadcrumb>, Option<BootRecord>) {
    let mut crumb = [0u8; RECORD_LEN];
    let mut boot = [0u8; RECORD_LEN];
    let c = m
        .read(CRUMB_OFFSET, &mut crumb)
        .then(|| Breadcrumb::decode(&crumb))
        .flatten();
    let b = m
        .read(BOOT_OFFSET, &mut boot)
        .then(|| BootRecord::decode(&boot))
        .flatten();
    (c, b)
}

/// Writes this boot's record and erases the breadcrumb. False if the area did not take it.
pub fn write_boot<M: NvMemory>(m: &mut M, record: &BootRecord) -> bool {
    let erased = m.write(CRUMB_OFFSET, &[0xFF; RECORD_LEN]);
    let written = m.write(BOOT_OFFSET, &record.encode());
    let mut check = [0u8; RECORD_LEN];
    erased
        && written
        && m.read(BOOT_OFFSET, &mut check)
        && BootRecord::decode(&check) == Some(*record)
}

/// Reads the reset history (`None`: erased or corrupt).
pub fn read_history<M: NvMemory>(m: &mut M) -> Option<ResetHistory> {
    let mut b = [0u8; RECORD_LEN];
    m.read(HISTORY_OFFSET, &mut b)
        .then(|| ResetHistory::decode(&b))
        .flatten()
}

/// Writes the reset history. False if the area did not take it.
pub fn write_history<M: NvMemory>(m: &mut M, h: &ResetHistory) -> bool {
    m.write(HISTORY_OFFSET, &h.encode())
}

/// What every boot does with the area, before anything else: reads the breadcrumb, the boot
/// record and the reset history, decides this boot's record from the reset flags `csr`
/// ([`at_boot`]) and history ([`ResetHistory::at_boot`]), writes both and erases the
/// breadcrumb. `previous_trusted` false ignores the stored boot record and history (the
/// emulated image's first boot on a RAM area of unknown content).
pub fn record_boot<M: NvMemory>(
    m: &mut M,
    csr: u32,
    previous_trusted: bool,
) -> (Option<Breadcrumb>, BootRecord, ResetHistory) {
    let (crumb, previous) = read_records(m);
    let history = if previous_trusted {
        read_history(m)
    } else {
        None
    };
    let previous = if previous_trusted { previous } else { None };
    let record = at_boot(csr, crumb, previous);
    let history = ResetHistory::at_boot(history, record.cause);
    write_boot(m, &record);
    write_history(m, &history);
    (crumb, record, history)
}

/// Writes a breadcrumb (from the fault path, just before the reset).
pub fn write_crumb<M: NvMemory>(m: &mut M, crumb: &Breadcrumb) -> bool {
    m.write(CRUMB_OFFSET, &crumb.encode())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reset::at_boot;
    use rack_registers::map::reset_cause as rc;
    use rack_registers::nvstore::NvStore;

    #[test]
    fn the_latch_store_the_breadcrumb_and_the_boot_record_do_not_overlap() {
        // Hazard: a boot record written over the newest latch record (a latched stage lost
        // at every reset).
        let mut mem = [0xFFu8; NV_BYTES];
        let mut store = NvStore::new(LatchArea(&mut mem), LatchRecord::LEN).unwrap();
        let mut buf = [0u8; LatchRecord::LEN];
        store.load(&mut buf);
        for n in 0..20u8 {
            store.write(&[n; LatchRecord::LEN]).unwrap();
        }
        let rec = at_boot(0, None, None);
        assert!(write_boot(&mut mem, &rec));
        assert!(write_crumb(
            &mut mem,
            &Breadcrumb {
                cause: rc::FAULT,
                pc: 1,
                cfsr: 2
            }
        ));
        let mut store = NvStore::new(LatchArea(&mut mem), LatchRecord::LEN).unwrap();
        let (found, report) = store.load(&mut buf);
        assert!(found && report.corrupt == 0);
        assert_eq!(buf, [19; LatchRecord::LEN]);
        let (crumb, boot) = read_records(&mut mem);
        assert_eq!(crumb.map(|c| c.cause), Some(rc::FAULT));
        assert_eq!(boot, Some(rec));
        // The next boot consumes the breadcrumb.
        let next = at_boot(0, crumb, boot);
        assert!(write_boot(&mut mem, &next));
        assert_eq!(read_records(&mut mem), (None, Some(next)));
        assert_eq!(next.boot_count, 2);
    }

    #[test]
    fn accesses_outside_the_latch_pages_are_refused() {
        let mut mem = [0u8; NV_BYTES];
        let mut a = LatchArea(&mut mem);
        assert!(a.erase(LATCH_PAGES).is_err());
        assert!(a.program(LATCH_PAGE * LATCH_PAGES - 2, &[0; 4]).is_err());
        let mut b = [0u8; 4];
        assert!(a.read(CRUMB_OFFSET, &mut b).is_err());
    }

    #[test]
    fn the_reset_history_survives_boots_beside_the_other_records() {
        // Hazard: the reset-loop count kept where a boot record or the latch store overwrites
        // it: the loop never adds up.
        use crate::reset::{RESET_LOOP_COUNT, csr};
        let mut mem = [0xFFu8; NV_BYTES];
        let (_, first, h) = record_boot(&mut mem, csr::PORRSTF | csr::BORRSTF, true);
        assert_eq!((first.boot_count, h.count), (1, 0));
        let mut last = h;
        for n in 1..=RESET_LOOP_COUNT {
            write_crumb(
                &mut mem,
                &Breadcrumb {
                    cause: rc::FAULT,
                    pc: 0x0800_0000,
                    cfsr: 0,
                },
            );
            let (crumb, rec, h) = record_boot(&mut mem, csr::SFTRSTF | csr::PINRSTF, true);
            assert!(crumb.is_some());
            assert_eq!((rec.boot_count, h.count), (1 + n, n));
            last = h;
        }
        assert!(last.lockout);
        assert_eq!(read_history(&mut mem), Some(last));
        // The latch store's pages are untouched by all of it.
        assert!(mem[..LATCH_PAGE * LATCH_PAGES].iter().all(|b| *b == 0xFF));
        // Untrusted (emulated first boot): a fresh count.
        let (_, _, h) = record_boot(&mut mem, 0, false);
        assert_eq!(h.count, 1, "unknown cause counted from nothing");
    }
}
