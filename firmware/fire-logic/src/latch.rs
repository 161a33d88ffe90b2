//! The persistence record: what a controller restart must not forget.
//!
//! Byte layout of version 2 (all integers little-endian, [`LatchRecord::LEN`] = 40 bytes; the
//! controller image adds its own CRC around it):
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0 | 1 | version (2) |
//! | 1 | 1 | stage code (0..=6) |
//! | 2 | 2 | actions bits at snapshot |
//! | 4 | 1 | flags: bit0 agent released, bit1 isolated, bit2 buzzer silenced, bit3 room gas requested manually, bit4 off-gas timer running, bit5 loss-of-temperature timer running |
//! | 5 | 1 | gas state (0 idle, 1 warning, 2 held, 3 manual-only, 4 released) |
//! | 6 | 1 | temperature sources lost while at or above stage 1 in the current stage (bit = [`crate::SourceId`] index 0..=3) |
//! | 7 | 1 | reserved, 0 |
//! | 8 | 4 | configuration fingerprint |
//! | 12 | 4 | next event sequence number |
//! | 16 | 4 | stage timer: ms spent in stage 3 or 4 |
//! | 20 | 4 | ms the room-gas pre-discharge warning has sounded |
//! | 24 | 4 | off-gas sustained timer, ms |
//! | 28 | 4 | loss-of-every-temperature timer, ms |
//! | 32 | 8 | peak of each temperature source since the current stage (2, 3 or 4) began, 4 x i16 tenths C in [`crate::SourceId`] order, `i16::MIN` = none |
//!
//! Timers are stored in whole [`CHECKPOINT_MS`] (rounded down, saturated at their delay) and
//! peaks in whole degrees (rounded up), so the record changes at most once a second per
//! running timer and once per degree per rising source: it can be written on every change
//! without wearing the flash. A restore credits each running stage, off-gas and loss timer
//! with [`RESTORE_CREDIT_MS`], so even a reboot loop faster than the checkpoint makes
//! progress toward coolant, gas and isolation (a delay is shortened by at most one
//! [`RESTORE_CREDIT_MS`] per restart). The pre-discharge warning gets no credit: its sounding
//! time is never shortened by a restart.

use core::fmt;

use crate::types::{Actions, DeciC, SourceSet, Stage};

/// Timers are persisted in whole multiples of this (rounded down).
pub const CHECKPOINT_MS: u32 = 1_000;
/// A restore adds this to every running stage, off-gas and loss timer (not to the
/// pre-discharge warning).
pub const RESTORE_CREDIT_MS: u32 = CHECKPOINT_MS;
/// The largest timer value a record may hold.
const MAX_TIMER_MS: u32 = 3_600_000;

/// The room-gas sequence state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GasState {
    /// Not requested.
    Idle = 0,
    /// Pre-discharge warning running.
    Warning = 1,
    /// Held by the hold-to-abort switch.
    Held = 2,
    /// Waiting for the room's manual gas release (manual-only mode).
    ManualOnly = 3,
    /// Released.
    Released = 4,
}

impl GasState {
    fn from_code(c: u8) -> Option<GasState> {
        match c {
            0 => Some(GasState::Idle),
            1 => Some(GasState::Warning),
            2 => Some(GasState::Held),
            3 => Some(GasState::ManualOnly),
            4 => Some(GasState::Released),
            _ => None,
        }
    }
}

/// The latched state to keep in non-volatile memory. Obtain it with
/// [`crate::RackLogic::latch_record`], store [`LatchRecord::to_bytes`] whenever it changes,
/// and give it back to [`crate::RackLogic::restore`] after a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatchRecord {
    /// Latched stage.
    pub stage: Stage,
    /// Actions commanded at the snapshot (for diagnostics; restore recomputes them).
    pub actions: Actions,
    /// Agent released.
    pub agent_released: bool,
    /// Room gas sequence.
    pub gas: GasState,
    /// A person operated the room's gas release (manual-only mode no longer holds the gas).
    pub gas_requested_manually: bool,
    /// Battery isolated after losing every temperature source.
    pub isolated: bool,
    /// Buzzer acknowledged.
    pub buzzer_silenced: bool,
    /// Time spent in stage 3 (toward coolant) or stage 4 (toward room gas), ms; 0 otherwise.
    pub stage_timer_ms: u32,
    /// Time the pre-discharge warning has sounded since it last (re)started, ms.
    pub gas_warning_ms: u32,
    /// Off-gas sustained timer (off-gas at or above the supervisory level), if running.
    pub offgas_timer_ms: Option<u32>,
    /// Loss-of-every-temperature timer (toward isolation), if running.
    pub loss_timer_ms: Option<u32>,
    /// Temperature sources lost (invalid) while at or above the stage 1 threshold during the
    /// current stage (2 to 4): after a restart they still count as not fallen, even before
    /// they could go stale again.
    pub lost_while_hot: SourceSet,
    /// Peak of each temperature source since the current stage began (stages 2 to 4), in
    /// [`crate::SourceId::TEMPERATURES`] order. After a restore these stand in for the last
    /// known values: a source that does not come back counts as lost at its peak.
    pub peaks: [Option<DeciC>; 4],
    /// The event log's next sequence number, so numbering continues after a restart.
    pub next_event_seq: u32,
    /// [`crate::Config::fingerprint`] of the configuration in force.
    pub config_fingerprint: u32,
}

/// Why bytes are not a valid [`LatchRecord`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatchError {
    /// Not exactly [`LatchRecord::LEN`] bytes.
    WrongLength {
        /// Bytes given.
        found: usize,
    },
    /// A version this build does not know.
    UnsupportedVersion {
        /// Version found.
        found: u8,
    },
    /// A field holds an impossible value.
    BadField {
        /// The field.
        field: &'static str,
    },
    /// Fields contradict each other (for example gas released below stage 5).
    Inconsistent {
        /// What contradicts.
        what: &'static str,
    },
}

impl fmt::Display for LatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LatchError::WrongLength { found } => write!(
                f,
                "latch record: expected {} bytes, found {found}",
                LatchRecord::LEN
            ),
            LatchError::UnsupportedVersion { found } => {
                write!(f, "latch record: unsupported version {found}")
            }
            LatchError::BadField { field } => write!(f, "latch record: invalid `{field}`"),
            LatchError::Inconsistent { what } => write!(f, "latch record: inconsistent: {what}"),
        }
    }
}

struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let end = self.pos.saturating_add(bytes.len());
        if let Some(dst) = self.buf.get_mut(self.pos..end) {
            // Element-wise: `copy_from_slice` would link a length-mismatch panic.
            for (d, b) in dst.iter_mut().zip(bytes) {
                *d = *b;
            }
        }
        self.pos = end;
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let end = self.pos.saturating_add(N);
        let mut out = [0u8; N];
        if let Some(src) = self.buf.get(self.pos..end) {
            for (d, b) in out.iter_mut().zip(src) {
                *d = *b;
            }
        }
        self.pos = end;
        out
    }
    fn u8(&mut self) -> u8 {
        let [b] = self.take::<1>();
        b
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }
}

const VERSION: u8 = 2;
const NO_PEAK: i16 = i16::MIN;

/// A peak in whole degrees, rounded up (so a restored peak is never lower than the real one
/// and a fall is never found earlier), within the i16 range.
fn peak_to_i16(p: DeciC) -> i16 {
    let up = p.saturating_add(9).div_euclid(10).saturating_mul(10);
    i16::try_from(up.clamp(-32_767, i32::from(i16::MAX))).unwrap_or(i16::MAX)
}

impl LatchRecord {
    /// Encoded size in bytes.
    pub const LEN: usize = 40;

    /// Encodes the record (version 2 layout, see the module documentation).
    pub fn to_bytes(&self) -> [u8; LatchRecord::LEN] {
        let mut buf = [0u8; LatchRecord::LEN];
        let mut w = Writer {
            buf: &mut buf,
            pos: 0,
        };
        let mut flags = 0u8;
        for (bit, on) in [
            self.agent_released,
            self.isolated,
            self.buzzer_silenced,
            self.gas_requested_manually,
            self.offgas_timer_ms.is_some(),
            self.loss_timer_ms.is_some(),
        ]
        .into_iter()
        .enumerate()
        {
            if on {
                flags |= 1u8 << (bit & 7);
            }
        }
        w.put(&[VERSION, self.stage.code()]);
        w.put(&self.actions.bits().to_le_bytes());
        w.put(&[flags, self.gas as u8, self.lost_while_hot.bits(), 0]);
        w.put(&self.config_fingerprint.to_le_bytes());
        w.put(&self.next_event_seq.to_le_bytes());
        for t in [
            self.stage_timer_ms,
            self.gas_warning_ms,
            self.offgas_timer_ms.unwrap_or(0),
            self.loss_timer_ms.unwrap_or(0),
        ] {
            w.put(&t.to_le_bytes());
        }
        for p in self.peaks {
            w.put(&p.map_or(NO_PEAK, peak_to_i16).to_le_bytes());
        }
        buf
    }

    /// Decodes and checks a record.
    pub fn from_bytes(bytes: &[u8]) -> Result<LatchRecord, LatchError> {
        if bytes.len() != LatchRecord::LEN {
            return Err(LatchError::WrongLength { found: bytes.len() });
        }
        let mut r = Reader { buf: bytes, pos: 0 };
        let version = r.u8();
        if version != VERSION {
            return Err(LatchError::UnsupportedVersion { found: version });
        }
        let stage = Stage::from_code(r.u8()).ok_or(LatchError::BadField { field: "stage" })?;
        let actions = Actions::from_bits(u16::from_le_bytes(r.take()))
            .ok_or(LatchError::BadField { field: "actions" })?;
        let flags = r.u8();
        if flags & !0x3f != 0 {
            return Err(LatchError::BadField { field: "flags" });
        }
        let gas = GasState::from_code(r.u8()).ok_or(LatchError::BadField { field: "gas" })?;
        let lost_bits = r.u8();
        if lost_bits & !0x0f != 0 {
            return Err(LatchError::BadField {
                field: "lost_while_hot",
            });
        }
        let mut lost_while_hot = SourceSet::NONE;
        for id in crate::types::SourceId::TEMPERATURES {
            if lost_bits & (1u8 << (id as u8)) != 0 {
                lost_while_hot.insert(id);
            }
        }
        if r.u8() != 0 {
            return Err(LatchError::BadField { field: "reserved" });
        }
        let config_fingerprint = r.u32();
        let next_event_seq = r.u32();
        let timers = [r.u32(), r.u32(), r.u32(), r.u32()];
        if timers.iter().any(|t| *t > MAX_TIMER_MS) {
            return Err(LatchError::BadField { field: "timers" });
        }
        let [stage_timer_ms, gas_warning_ms, offgas, loss] = timers;
        if (flags & (1 << 4) == 0 && offgas != 0) || (flags & (1 << 5) == 0 && loss != 0) {
            return Err(LatchError::BadField { field: "timers" });
        }
        let mut peaks = [None; 4];
        for p in peaks.iter_mut() {
            let v = i16::from_le_bytes(r.take());
            *p = if v == NO_PEAK {
                None
            } else {
                Some(i32::from(v))
            };
        }
        let flag = |bit: u8| flags & (1u8 << bit) != 0;
        let rec = LatchRecord {
            stage,
            actions,
            agent_released: flag(0),
            gas,
            gas_requested_manually: flag(3),
            isolated: flag(1),
            buzzer_silenced: flag(2),
            stage_timer_ms,
            gas_warning_ms,
            offgas_timer_ms: if flag(4) { Some(offgas) } else { None },
            loss_timer_ms: if flag(5) { Some(loss) } else { None },
            lost_while_hot,
            peaks,
            next_event_seq,
            config_fingerprint,
        };
        if (rec.gas != GasState::Idle || rec.gas_requested_manually) && rec.stage != Stage::Stage5 {
            return Err(LatchError::Inconsistent {
                what: "room gas sequence below stage 5",
            });
        }
        if rec.agent_released && rec.stage < Stage::Stage3 {
            return Err(LatchError::Inconsistent {
                what: "agent released below stage 3",
            });
        }
        if rec.stage_timer_ms != 0 && !matches!(rec.stage, Stage::Stage3 | Stage::Stage4) {
            return Err(LatchError::Inconsistent {
                what: "stage timer outside stages 3 and 4",
            });
        }
        if rec.gas_warning_ms != 0 && rec.gas != GasState::Warning {
            return Err(LatchError::Inconsistent {
                what: "warning time without a running warning",
            });
        }
        if (rec.peaks.iter().any(Option::is_some) || !rec.lost_while_hot.is_empty())
            && !matches!(rec.stage, Stage::Stage2 | Stage::Stage3 | Stage::Stage4)
        {
            return Err(LatchError::Inconsistent {
                what: "peaks or lost sources outside stages 2 to 4",
            });
        }
        Ok(rec)
    }
}
