//! The persistence record: what a controller restart must not forget.
//!
//! Byte layout of version 1 (all integers little-endian, [`LatchRecord::LEN`] = 80 bytes;
//! the controller image adds its own CRC around it):
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0 | 1 | version (1) |
//! | 1 | 1 | stage code (0..=6) |
//! | 2 | 2 | actions bits at snapshot |
//! | 4 | 1 | flags: bit0 agent released, bit1 isolated, bit2 buzzer silenced, bit3 peak3 present, bit4 peak4 present |
//! | 5 | 1 | gas state (0 idle, 1 warning, 2 held, 3 manual-only, 4 released) |
//! | 6 | 2 | reserved, 0 |
//! | 8 | 4 | configuration fingerprint |
//! | 12 | 4 | next event sequence number |
//! | 16 | 4 | peak after stage 3 (tenths C) |
//! | 20 | 4 | peak after stage 4 (tenths C) |
//! | 24 | 56 | stage entry times, 7 x u64 ms (index = stage code) |

use core::fmt;

use crate::types::{Actions, DeciC, Stage};

/// The room-gas sequence state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GasState {
    /// Not requested.
    Idle = 0,
    /// Pre-discharge warning running.
    Warning = 1,
    /// Held by the hold-to-abort switch.
    Held = 2,
    /// Waiting for a manual release (manual-only mode).
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
    /// Battery isolated after losing every temperature source.
    pub isolated: bool,
    /// Buzzer acknowledged.
    pub buzzer_silenced: bool,
    /// Logic time at which each stage was entered (index = stage code), in the time base of
    /// the boot that wrote the record.
    pub stage_entered_ms: [u64; 7],
    /// Peak governing temperature since stage 3.
    pub peak_after_stage3: Option<DeciC>,
    /// Peak governing temperature since stage 4.
    pub peak_after_stage4: Option<DeciC>,
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
            dst.copy_from_slice(bytes);
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
            out.copy_from_slice(src);
        }
        self.pos = end;
        out
    }
    fn u8(&mut self) -> u8 {
        let [b] = self.take::<1>();
        b
    }
}

const VERSION: u8 = 1;

impl LatchRecord {
    /// Encoded size in bytes.
    pub const LEN: usize = 80;

    /// Encodes the record (version 1 layout, see the module documentation).
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
            self.peak_after_stage3.is_some(),
            self.peak_after_stage4.is_some(),
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
        w.put(&[flags, self.gas as u8, 0, 0]);
        w.put(&self.config_fingerprint.to_le_bytes());
        w.put(&self.next_event_seq.to_le_bytes());
        w.put(&self.peak_after_stage3.unwrap_or(0).to_le_bytes());
        w.put(&self.peak_after_stage4.unwrap_or(0).to_le_bytes());
        for t in self.stage_entered_ms {
            w.put(&t.to_le_bytes());
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
        if flags & !0x1f != 0 {
            return Err(LatchError::BadField { field: "flags" });
        }
        let gas = GasState::from_code(r.u8()).ok_or(LatchError::BadField { field: "gas" })?;
        if r.take::<2>() != [0, 0] {
            return Err(LatchError::BadField { field: "reserved" });
        }
        let config_fingerprint = u32::from_le_bytes(r.take());
        let next_event_seq = u32::from_le_bytes(r.take());
        let peak3 = i32::from_le_bytes(r.take());
        let peak4 = i32::from_le_bytes(r.take());
        let mut stage_entered_ms = [0u64; 7];
        for t in stage_entered_ms.iter_mut() {
            *t = u64::from_le_bytes(r.take());
        }
        let flag = |bit: u8| flags & (1u8 << bit) != 0;
        let rec = LatchRecord {
            stage,
            actions,
            agent_released: flag(0),
            gas,
            isolated: flag(1),
            buzzer_silenced: flag(2),
            stage_entered_ms,
            peak_after_stage3: if flag(3) { Some(peak3) } else { None },
            peak_after_stage4: if flag(4) { Some(peak4) } else { None },
            next_event_seq,
            config_fingerprint,
        };
        if rec.gas != GasState::Idle && rec.stage != Stage::Stage5 {
            return Err(LatchError::Inconsistent {
                what: "room gas sequence below stage 5",
            });
        }
        if rec.agent_released && rec.stage < Stage::Stage3 {
            return Err(LatchError::Inconsistent {
                what: "agent released below stage 3",
            });
        }
        Ok(rec)
    }
}
