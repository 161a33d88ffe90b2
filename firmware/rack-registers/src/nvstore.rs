//! Non-volatile record store: a small fixed-size record (the latch record) kept in a region of
//! NOR flash pages, with wear levelling and a CRC.
//!
//! Layout: the region is `pages` erase pages of `page_size` bytes, cut into slots of
//! [`slot_size`] bytes. Records are appended to the next free slot, walking through every slot of
//! every page before coming back (wear levelling: one erase per page every
//! `slots_per_page * pages` writes). When the current page is full, the next page is erased
//! first; the page holding the newest record is never erased, so a write interrupted at any point
//! (power loss, reset) leaves the previous record readable.
//!
//! Slot: `magic u32 | seq u32 | len u16 | 0xFFFF | payload (len bytes) | crc32 u32`, little-endian,
//! padded with 0xFF. The body (everything after the magic) is programmed first and the magic last,
//! so a torn write leaves a slot without magic or with a CRC mismatch. A slot that is not blank
//! and does not hold a valid record is *corrupt*: it is never trusted and it is reported (the
//! controller raises a trouble), and the newest valid record is used instead.

/// Marks a committed slot.
pub const MAGIC: u32 = 0x4C41_5443; // "CTAL"
/// Bytes of slot header (magic, seq, len, reserved).
pub const HEADER: usize = 12;
/// Bytes of the CRC trailer.
pub const TRAILER: usize = 4;
/// Largest payload handled.
pub const MAX_PAYLOAD: usize = 240;

/// Slot size for a payload of `len` bytes: header + payload + CRC, rounded up to 16 bytes
/// (the programming granularity of the flash controllers we target).
pub const fn slot_size(len: usize) -> usize {
    (HEADER + len + TRAILER).div_ceil(16) * 16
}

/// A NOR flash region: erase sets a page to 0xFF; program can only clear bits.
pub trait Flash {
    /// Erase page size in bytes.
    fn page_size(&self) -> usize;
    /// Number of pages of the region.
    fn pages(&self) -> usize;
    /// Reads `buf.len()` bytes at `offset` from the start of the region.
    fn read(&mut self, offset: usize, buf: &mut [u8]) -> Result<(), FlashError>;
    /// Erases one page.
    fn erase(&mut self, page: usize) -> Result<(), FlashError>;
    /// Programs `data` at `offset` (a multiple of 4; `data.len()` a multiple of 4).
    fn program(&mut self, offset: usize, data: &[u8]) -> Result<(), FlashError>;
}

/// A flash operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashError {
    /// Outside the region or misaligned.
    OutOfBounds,
    /// The hardware reported an error (or the write was cut).
    Hardware,
}

/// Errors of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreError {
    /// The payload is larger than [`MAX_PAYLOAD`] or than the configured length.
    PayloadSize,
    /// The region cannot hold two pages of at least one slot each.
    Geometry,
    /// Flash error.
    Flash(FlashError),
    /// The record read back after writing does not match.
    Verify,
}

impl From<FlashError> for StoreError {
    fn from(e: FlashError) -> Self {
        StoreError::Flash(e)
    }
}

/// What the boot scan found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScanReport {
    /// Valid records seen.
    pub valid: usize,
    /// Slots that were written but hold no valid record (torn write, bit rot, wrong length).
    pub corrupt: usize,
    /// Sequence number of the newest valid record.
    pub newest_seq: Option<u32>,
    /// A corrupt slot was written after the newest valid record (the last write was lost).
    pub newest_lost: bool,
}

/// The record store over a [`Flash`] region, for payloads of exactly `len` bytes.
#[derive(Debug)]
pub struct NvStore<F: Flash> {
    flash: F,
    len: usize,
    slot: usize,
    /// Next slot to write (global index over all pages).
    next: usize,
    seq: u32,
}

/// CRC-32 (IEEE 802.3, reflected, init and xorout 0xFFFFFFFF).
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

impl<F: Flash> NvStore<F> {
    /// A store for records of `len` bytes. Nothing is read until [`NvStore::load`].
    pub fn new(flash: F, len: usize) -> Result<Self, StoreError> {
        if len == 0 || len > MAX_PAYLOAD {
            return Err(StoreError::PayloadSize);
        }
        let slot = slot_size(len);
        if flash.pages() < 2 || flash.page_size() < slot {
            return Err(StoreError::Geometry);
        }
        Ok(NvStore {
            flash,
            len,
            slot,
            next: 0,
            seq: 0,
        })
    }

    /// The flash (to inspect it in tests).
    pub fn flash_mut(&mut self) -> &mut F {
        &mut self.flash
    }

    /// Gives the flash back (what survives a reset).
    pub fn into_flash(self) -> F {
        self.flash
    }

    fn slots_per_page(&self) -> usize {
        self.flash.page_size().checked_div(self.slot).unwrap_or(0)
    }

    fn total_slots(&self) -> usize {
        self.slots_per_page().saturating_mul(self.flash.pages())
    }

    /// Wraps a slot index into the region (0 for an empty geometry, which `new` rejects).
    fn wrap(&self, slot: usize) -> usize {
        slot.checked_rem(self.total_slots()).unwrap_or(0)
    }

    fn offset(&self, slot: usize) -> usize {
        let spp = self.slots_per_page();
        let page = slot.checked_div(spp).unwrap_or(0);
        let within = slot.checked_rem(spp).unwrap_or(0);
        page.saturating_mul(self.flash.page_size())
            .saturating_add(within.saturating_mul(self.slot))
    }

    /// Reads one slot: `Ok(Some((seq, ())))` when valid (payload copied into `out`),
    /// `Ok(None)` when blank, `Err(())` when corrupt.
    fn read_slot(&mut self, slot: usize, out: &mut [u8]) -> Result<Option<u32>, ()> {
        let mut buf = [0u8; slot_size(MAX_PAYLOAD)];
        let size = self.slot;
        let Some(raw) = buf.get_mut(..size) else {
            return Err(());
        };
        if self.flash.read(self.offset(slot), raw).is_err() {
            return Err(());
        }
        if raw.iter().all(|&b| b == 0xFF) {
            return Ok(None);
        }
        let word = |i: usize| {
            raw.get(i..i.saturating_add(4))
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(u32::from_le_bytes)
        };
        let magic = word(0).ok_or(())?;
        let seq = word(4).ok_or(())?;
        let len = raw
            .get(8..10)
            .and_then(|b| <[u8; 2]>::try_from(b).ok())
            .map(|b| usize::from(u16::from_le_bytes(b)))
            .ok_or(())?;
        if magic != MAGIC || len != self.len {
            return Err(());
        }
        let crc = word(HEADER + len).ok_or(())?;
        let covered = raw.get(4..HEADER + len).ok_or(())?;
        if crc32(covered) != crc {
            return Err(());
        }
        let payload = raw.get(HEADER..HEADER + len).ok_or(())?;
        out.get_mut(..len).ok_or(())?.copy_from_slice(payload);
        Ok(Some(seq))
    }

    /// Scans the whole region, copies the newest valid record into `out` (at least `len` bytes)
    /// and positions the writer after it. Returns whether a record was found and the scan report.
    pub fn load(&mut self, out: &mut [u8]) -> (bool, ScanReport) {
        let mut report = ScanReport::default();
        let mut scratch = [0u8; MAX_PAYLOAD];
        let mut newest: Option<(u32, usize)> = None;
        let mut last_written: Option<usize> = None;
        let mut corrupt_slots: [Option<usize>; 2] = [None; 2];
        for slot in 0..self.total_slots() {
            match self.read_slot(slot, &mut scratch) {
                Ok(None) => {}
                Ok(Some(seq)) => {
                    report.valid += 1;
                    last_written = Some(slot);
                    let newer = match newest {
                        None => true,
                        Some((s, _)) => seq.wrapping_sub(s) as i32 > 0,
                    };
                    if newer {
                        newest = Some((seq, slot));
                        if let (Some(dst), Some(src)) =
                            (out.get_mut(..self.len), scratch.get(..self.len))
                        {
                            dst.copy_from_slice(src);
                        }
                    }
                }
                Err(()) => {
                    report.corrupt += 1;
                    last_written = Some(slot);
                    corrupt_slots = [corrupt_slots[1], Some(slot)];
                }
            }
        }
        match newest {
            Some((seq, slot)) => {
                report.newest_seq = Some(seq);
                self.seq = seq;
                // A corrupt slot right after the newest record is a lost (torn) last write.
                let following = self.wrap(slot.saturating_add(1));
                report.newest_lost = corrupt_slots.contains(&Some(following));
                // Write after the newest record, skipping a corrupt slot that follows it.
                self.next = if report.newest_lost {
                    self.wrap(following.saturating_add(1))
                } else {
                    following
                };
            }
            None => {
                self.seq = 0;
                self.next = last_written.map_or(0, |s| self.wrap(s.saturating_add(1)));
            }
        }
        (newest.is_some(), report)
    }

    /// Appends a record. On success the record is the newest one on flash.
    pub fn write(&mut self, payload: &[u8]) -> Result<(), StoreError> {
        if payload.len() != self.len {
            return Err(StoreError::PayloadSize);
        }
        let spp = self.slots_per_page();
        let slot = self.wrap(self.next);
        // Entering a page: erase it first (it only holds older records: the newest record is
        // in the page we are leaving, or earlier in this one).
        let offset = self.offset(slot);
        if slot.checked_rem(spp) == Some(0) || !self.slot_blank(slot)? {
            self.flash.erase(slot.checked_div(spp).unwrap_or(0))?;
        }
        let seq = self.seq.wrapping_add(1);
        let mut buf = [0xFFu8; slot_size(MAX_PAYLOAD)];
        buf[4..8].copy_from_slice(&seq.to_le_bytes());
        buf[8..10].copy_from_slice(&(self.len as u16).to_le_bytes());
        let body_end = HEADER.saturating_add(self.len);
        buf.get_mut(HEADER..body_end)
            .ok_or(StoreError::PayloadSize)?
            .copy_from_slice(payload);
        let crc = crc32(buf.get(4..body_end).ok_or(StoreError::PayloadSize)?);
        buf.get_mut(body_end..body_end.saturating_add(TRAILER))
            .ok_or(StoreError::PayloadSize)?
            .copy_from_slice(&crc.to_le_bytes());
        // Body first, magic last.
        let body = buf.get(4..self.slot).ok_or(StoreError::PayloadSize)?;
        self.flash.program(offset.saturating_add(4), body)?;
        self.flash.program(offset, &MAGIC.to_le_bytes())?;
        self.next = self.wrap(slot.saturating_add(1));
        self.seq = seq;
        let mut check = [0u8; MAX_PAYLOAD];
        match self.read_slot(slot, &mut check) {
            Ok(Some(s)) if s == seq && check.get(..self.len) == Some(payload) => Ok(()),
            _ => Err(StoreError::Verify),
        }
    }

    fn slot_blank(&mut self, slot: usize) -> Result<bool, StoreError> {
        let mut buf = [0u8; slot_size(MAX_PAYLOAD)];
        let raw = buf.get_mut(..self.slot).ok_or(StoreError::PayloadSize)?;
        self.flash.read(self.offset(slot), raw)?;
        Ok(raw.iter().all(|&b| b == 0xFF))
    }
}

/// A RAM-backed NOR flash for tests and the simulator, with fault injection.
#[derive(Debug, Clone)]
pub struct RamFlash<const N: usize> {
    /// Contents.
    pub data: [u8; N],
    page_size: usize,
    /// Erase count per page (up to 16 pages tracked).
    pub erases: [u32; 16],
    /// When `Some(n)`, the write is cut after `n` more bytes are programmed (power loss).
    pub cut_after: Option<usize>,
}

impl<const N: usize> RamFlash<N> {
    /// A blank flash of `N` bytes in pages of `page_size`.
    pub fn new(page_size: usize) -> Self {
        RamFlash {
            data: [0xFF; N],
            page_size,
            erases: [0; 16],
            cut_after: None,
        }
    }
}

impl<const N: usize> Flash for RamFlash<N> {
    fn page_size(&self) -> usize {
        self.page_size
    }
    fn pages(&self) -> usize {
        N / self.page_size
    }
    fn read(&mut self, offset: usize, buf: &mut [u8]) -> Result<(), FlashError> {
        let src = self
            .data
            .get(offset..offset + buf.len())
            .ok_or(FlashError::OutOfBounds)?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn erase(&mut self, page: usize) -> Result<(), FlashError> {
        let start = page * self.page_size;
        self.data
            .get_mut(start..start + self.page_size)
            .ok_or(FlashError::OutOfBounds)?
            .fill(0xFF);
        if let Some(e) = self.erases.get_mut(page) {
            *e += 1;
        }
        Ok(())
    }
    fn program(&mut self, offset: usize, data: &[u8]) -> Result<(), FlashError> {
        if !offset.is_multiple_of(4) || !data.len().is_multiple_of(4) {
            return Err(FlashError::OutOfBounds);
        }
        let dst = self
            .data
            .get_mut(offset..offset + data.len())
            .ok_or(FlashError::OutOfBounds)?;
        for (d, s) in dst.iter_mut().zip(data) {
            if let Some(left) = self.cut_after.as_mut() {
                if *left == 0 {
                    return Err(FlashError::Hardware);
                }
                *left -= 1;
            }
            // NOR: programming can only clear bits.
            *d &= *s;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEN: usize = 20;
    type Fake = RamFlash<{ 3 * 256 }>;

    fn store() -> NvStore<Fake> {
        NvStore::new(Fake::new(256), LEN).unwrap()
    }

    fn rec(n: u8) -> [u8; LEN] {
        [n; LEN]
    }

    #[test]
    fn crc32_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn blank_flash_has_no_record_and_no_corruption() {
        let mut s = store();
        let mut out = [0u8; LEN];
        let (found, report) = s.load(&mut out);
        assert!(!found);
        assert_eq!(report, ScanReport::default());
    }

    #[test]
    fn newest_record_survives_reboot_across_page_wraps() {
        let mut s = store();
        let mut out = [0u8; LEN];
        s.load(&mut out);
        for n in 0..100u8 {
            s.write(&rec(n)).unwrap();
            // Reboot: a fresh store over the same flash finds the newest record.
            let flash = s.flash_mut().clone();
            let mut s2 = NvStore::new(flash, LEN).unwrap();
            let (found, report) = s2.load(&mut out);
            assert!(found);
            assert_eq!(out, rec(n));
            assert_eq!(report.corrupt, 0);
            s = s2;
        }
    }

    #[test]
    fn erases_are_spread_over_all_pages() {
        let mut s = store();
        let mut out = [0u8; LEN];
        s.load(&mut out);
        for n in 0..240u32 {
            s.write(&rec(n as u8)).unwrap();
        }
        let e = s.flash_mut().erases;
        // 256 / 48 = 5 slots per page, 15 slots in all: 240 writes = 16 rounds.
        assert!(e[..3].iter().all(|&c| (15..=17).contains(&c)), "{e:?}");
    }

    #[test]
    fn torn_write_at_every_byte_keeps_the_previous_record_and_is_reported() {
        let slot = slot_size(LEN);
        for cut in 0..slot {
            // Cover cuts inside a page and when a new page has just been erased.
            for before in [1u8, 5, 6] {
                let mut s = store();
                let mut out = [0u8; LEN];
                s.load(&mut out);
                for n in 1..=before {
                    s.write(&rec(n)).unwrap();
                }
                s.flash_mut().cut_after = Some(cut);
                assert!(s.write(&rec(99)).is_err());
                let mut flash = s.flash_mut().clone();
                flash.cut_after = None;
                let mut s2 = NvStore::new(flash, LEN).unwrap();
                let (found, report) = s2.load(&mut out);
                assert!(found, "cut {cut} after {before}");
                assert_eq!(out, rec(before), "cut {cut} after {before}");
                let partially_written = cut > 0;
                assert_eq!(report.corrupt > 0, partially_written, "cut {cut}");
                assert_eq!(report.newest_lost, partially_written, "cut {cut}");
                // And the store keeps working after the torn slot.
                s2.write(&rec(42)).unwrap();
                let mut s3 = NvStore::new(s2.flash_mut().clone(), LEN).unwrap();
                assert!(s3.load(&mut out).0);
                assert_eq!(out, rec(42));
            }
        }
    }

    #[test]
    fn flipped_bit_is_detected_and_older_record_used() {
        let mut s = store();
        let mut out = [0u8; LEN];
        s.load(&mut out);
        s.write(&rec(1)).unwrap();
        s.write(&rec(2)).unwrap();
        // Corrupt one payload byte of the newest record (slot 1).
        let off = slot_size(LEN) + HEADER + 3;
        s.flash_mut().data[off] ^= 0x10;
        let mut s2 = NvStore::new(s.flash_mut().clone(), LEN).unwrap();
        let (found, report) = s2.load(&mut out);
        assert!(found);
        assert_eq!(out, rec(1));
        assert_eq!(report.corrupt, 1);
        assert!(report.newest_lost);
    }

    #[test]
    fn only_garbage_means_no_record_and_corruption_reported() {
        let mut f = Fake::new(256);
        f.data[..40].fill(0x00);
        let mut s = NvStore::new(f, LEN).unwrap();
        let mut out = [0u8; LEN];
        let (found, report) = s.load(&mut out);
        assert!(!found);
        assert!(report.corrupt >= 1);
        s.write(&rec(7)).unwrap();
        let mut s2 = NvStore::new(s.flash_mut().clone(), LEN).unwrap();
        assert!(s2.load(&mut out).0);
        assert_eq!(out, rec(7));
    }

    #[test]
    fn rejects_wrong_sizes_and_geometry() {
        assert_eq!(
            NvStore::new(Fake::new(256), 0).err(),
            Some(StoreError::PayloadSize)
        );
        assert_eq!(
            NvStore::new(RamFlash::<256>::new(256), LEN).err(),
            Some(StoreError::Geometry)
        );
        let mut s = store();
        assert_eq!(s.write(&[0; 3]), Err(StoreError::PayloadSize));
    }
}
