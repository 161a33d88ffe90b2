//! The on-disk format of segment files: pure encode/decode, no I/O.
//!
//! A segment file is a 16-byte header followed by records:
//!
//! ```text
//! header  : magic "DCSG" | version u8 (=1) | class u8 (0 event, 1 telemetry) | 2 reserved zero bytes
//!           | first_seq u64 LE
//! record  : len u32 LE | crc u32 LE | seq u64 LE | count u32 LE | payload (len bytes)
//! ```
//!
//! `crc` is CRC-32 (IEEE, crc32fast) over `len`, `seq`, `count` and `payload`, so a torn or
//! overwritten record is detected whatever part of it was damaged. `count` is the number of
//! items the payload stands for (samples of a telemetry batch, 1 for an event) and is what the
//! spool counts when it thins. Sequence numbers are strictly increasing within a file.

use serde::{Deserialize, Serialize};

pub const SEGMENT_MAGIC: [u8; 4] = *b"DCSG";
pub const FORMAT_VERSION: u8 = 1;
pub const SEGMENT_HEADER_LEN: usize = 16;
pub const RECORD_HEADER_LEN: usize = 20;
/// Largest payload a record may carry; anything larger in a header is treated as damage.
pub const MAX_RECORD_PAYLOAD: usize = 16 << 20;

/// The two priority classes. Events (and alarms) are delivered first and never thinned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    Event,
    Telemetry,
}

impl Class {
    pub const ALL: [Class; 2] = [Class::Event, Class::Telemetry];

    pub fn as_str(self) -> &'static str {
        match self {
            Class::Event => "event",
            Class::Telemetry => "telemetry",
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Class::Event => 0,
            Class::Telemetry => 1,
        }
    }

    fn code(self) -> u8 {
        self.index() as u8
    }

    fn from_code(code: u8) -> Option<Class> {
        match code {
            0 => Some(Class::Event),
            1 => Some(Class::Telemetry),
            _ => None,
        }
    }
}

impl std::fmt::Display for Class {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    pub class: Class,
    pub first_seq: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("file is shorter than a segment header ({0} bytes)")]
    Short(usize),
    #[error("bad magic (not a dcim spool segment)")]
    BadMagic,
    #[error("segment format version {0} is not supported (this build reads version 1)")]
    Version(u8),
    #[error("unknown class code {0}")]
    Class(u8),
}

pub fn encode_segment_header(h: &SegmentHeader) -> [u8; SEGMENT_HEADER_LEN] {
    let mut out = [0u8; SEGMENT_HEADER_LEN];
    out[..4].copy_from_slice(&SEGMENT_MAGIC);
    out[4] = FORMAT_VERSION;
    out[5] = h.class.code();
    out[8..16].copy_from_slice(&h.first_seq.to_le_bytes());
    out
}

pub fn decode_segment_header(buf: &[u8]) -> Result<SegmentHeader, HeaderError> {
    if buf.len() < SEGMENT_HEADER_LEN {
        return Err(HeaderError::Short(buf.len()));
    }
    if buf[..4] != SEGMENT_MAGIC {
        return Err(HeaderError::BadMagic);
    }
    if buf[4] != FORMAT_VERSION {
        return Err(HeaderError::Version(buf[4]));
    }
    let class = Class::from_code(buf[5]).ok_or(HeaderError::Class(buf[5]))?;
    let first_seq = u64::from_le_bytes(buf[8..16].try_into().unwrap_or([0; 8]));
    Ok(SegmentHeader { class, first_seq })
}

fn checksum(len: u32, seq: u64, count: u32, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&len.to_le_bytes());
    h.update(&seq.to_le_bytes());
    h.update(&count.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// Append the framed record to `out`. The caller guarantees `payload.len() <= MAX_RECORD_PAYLOAD`.
pub fn encode_record(seq: u64, count: u32, payload: &[u8], out: &mut Vec<u8>) {
    let len = payload.len() as u32;
    out.reserve(RECORD_HEADER_LEN + payload.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&checksum(len, seq, count, payload).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(payload);
}

/// What lies at the start of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded<'a> {
    Record {
        seq: u64,
        count: u32,
        payload: &'a [u8],
        /// Bytes taken by the whole framed record.
        framed_len: usize,
    },
    /// The buffer ends inside a record (a torn tail if this is the end of the file).
    Incomplete,
    /// The bytes are not a valid record.
    Corrupt(&'static str),
}

pub fn decode_record(buf: &[u8]) -> Decoded<'_> {
    if buf.len() < RECORD_HEADER_LEN {
        return Decoded::Incomplete;
    }
    let word = |at: usize| u32::from_le_bytes(buf[at..at + 4].try_into().unwrap_or([0; 4]));
    let len = word(0);
    let crc = word(4);
    let seq = u64::from_le_bytes(buf[8..16].try_into().unwrap_or([0; 8]));
    let count = word(16);
    if len as usize > MAX_RECORD_PAYLOAD {
        return Decoded::Corrupt("length field larger than the maximum record size");
    }
    let end = RECORD_HEADER_LEN + len as usize;
    if buf.len() < end {
        return Decoded::Incomplete;
    }
    let payload = &buf[RECORD_HEADER_LEN..end];
    if checksum(len, seq, count, payload) != crc {
        return Decoded::Corrupt("checksum mismatch");
    }
    Decoded::Record {
        seq,
        count,
        payload,
        framed_len: end,
    }
}

/// Where a valid record sits in a segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordPos {
    pub seq: u64,
    pub count: u32,
    /// Offset of the framed record from the start of the file.
    pub offset: u64,
    /// Framed length (header + payload).
    pub framed_len: u32,
}

/// The result of scanning a segment file's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    pub header: SegmentHeader,
    pub records: Vec<RecordPos>,
    /// Length of the valid prefix of the file (header plus whole, valid records).
    pub valid_len: u64,
    /// Why the scan stopped before the end of the file, if it did.
    pub damage: Option<&'static str>,
}

/// Scan a whole segment file. Everything up to the first incomplete, corrupt or out-of-order
/// record is kept; the rest is reported as damage (the caller truncates it).
pub fn scan_segment(file: &[u8]) -> Result<Scan, HeaderError> {
    let header = decode_segment_header(file)?;
    let mut records = Vec::new();
    let mut at = SEGMENT_HEADER_LEN;
    let mut last_seq = header.first_seq.saturating_sub(1);
    let mut damage = None;
    while at < file.len() {
        match decode_record(&file[at..]) {
            Decoded::Record {
                seq,
                count,
                framed_len,
                ..
            } => {
                let in_order = if records.is_empty() {
                    seq >= header.first_seq
                } else {
                    seq > last_seq
                };
                if !in_order {
                    damage = Some("sequence number out of order");
                    break;
                }
                records.push(RecordPos {
                    seq,
                    count,
                    offset: at as u64,
                    framed_len: framed_len as u32,
                });
                last_seq = seq;
                at += framed_len;
            }
            Decoded::Incomplete => {
                damage = Some("torn record at the end of the file");
                break;
            }
            Decoded::Corrupt(why) => {
                damage = Some(why);
                break;
            }
        }
    }
    Ok(Scan {
        header,
        records,
        valid_len: at as u64,
        damage,
    })
}

/// File name of a segment: `{class}-{first_seq:020}.seg`, so that names sort in sequence order.
pub fn segment_file_name(class: Class, first_seq: u64) -> String {
    format!("{}-{first_seq:020}.seg", class.as_str())
}

/// Parse a segment file name back into its class and first sequence number.
pub fn parse_segment_file_name(name: &str) -> Option<(Class, u64)> {
    let stem = name.strip_suffix(".seg")?;
    let (class, seq) = stem.split_once('-')?;
    let class = match class {
        "event" => Class::Event,
        "telemetry" => Class::Telemetry,
        _ => return None,
    };
    if seq.len() != 20 || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((class, seq.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(first: u64, recs: &[(u64, &[u8])]) -> Vec<u8> {
        let mut out = encode_segment_header(&SegmentHeader {
            class: Class::Telemetry,
            first_seq: first,
        })
        .to_vec();
        for (seq, p) in recs {
            encode_record(*seq, 3, p, &mut out);
        }
        out
    }

    #[test]
    fn header_round_trips_and_rejects_foreign_files() {
        let h = SegmentHeader {
            class: Class::Event,
            first_seq: 42,
        };
        assert_eq!(decode_segment_header(&encode_segment_header(&h)), Ok(h));
        assert_eq!(
            decode_segment_header(b"NOPE\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"),
            Err(HeaderError::BadMagic)
        );
        let mut v2 = encode_segment_header(&h);
        v2[4] = 2;
        assert_eq!(decode_segment_header(&v2), Err(HeaderError::Version(2)));
        assert_eq!(decode_segment_header(b"DCSG"), Err(HeaderError::Short(4)));
    }

    #[test]
    fn record_round_trips() {
        let mut buf = Vec::new();
        encode_record(7, 12, b"hello", &mut buf);
        assert_eq!(buf.len(), RECORD_HEADER_LEN + 5);
        assert_eq!(
            decode_record(&buf),
            Decoded::Record {
                seq: 7,
                count: 12,
                payload: b"hello",
                framed_len: buf.len()
            }
        );
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let mut buf = Vec::new();
        encode_record(9, 1, b"an alarm payload", &mut buf);
        for byte in 0..buf.len() {
            for bit in 0..8 {
                let mut bad = buf.clone();
                bad[byte] ^= 1 << bit;
                assert!(
                    !matches!(decode_record(&bad), Decoded::Record { .. }),
                    "flip at byte {byte} bit {bit} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn every_truncation_is_incomplete() {
        let mut buf = Vec::new();
        encode_record(1, 1, b"payload", &mut buf);
        for cut in 0..buf.len() {
            assert_eq!(decode_record(&buf[..cut]), Decoded::Incomplete, "cut {cut}");
        }
    }

    #[test]
    fn scan_keeps_the_valid_prefix_of_a_torn_file() {
        let file = segment(5, &[(5, b"a"), (6, b"bb"), (8, b"ccc")]);
        let full = scan_segment(&file).unwrap();
        assert_eq!(full.records.len(), 3);
        assert_eq!(full.valid_len, file.len() as u64);
        assert_eq!(full.damage, None);
        let third = full.records[2];
        for cut in third.offset as usize..file.len() {
            let s = scan_segment(&file[..cut]).unwrap();
            assert_eq!(s.records.len(), 2);
            assert_eq!(s.valid_len, third.offset);
            assert_eq!(s.damage.is_some(), cut > third.offset as usize);
        }
    }

    #[test]
    fn scan_stops_at_out_of_order_sequence_numbers() {
        let file = segment(5, &[(5, b"a"), (5, b"b")]);
        let s = scan_segment(&file).unwrap();
        assert_eq!(s.records.len(), 1);
        assert_eq!(s.damage, Some("sequence number out of order"));
        let file = segment(5, &[(4, b"a")]);
        assert_eq!(scan_segment(&file).unwrap().records.len(), 0);
    }

    #[test]
    fn scan_stops_at_garbage() {
        let mut file = segment(1, &[(1, b"a")]);
        let good = file.len() as u64;
        file.extend_from_slice(&[0xAB; 64]);
        let s = scan_segment(&file).unwrap();
        assert_eq!(s.records.len(), 1);
        assert_eq!(s.valid_len, good);
        assert!(s.damage.is_some());
    }

    #[test]
    fn file_names_sort_and_parse() {
        let a = segment_file_name(Class::Event, 9);
        let b = segment_file_name(Class::Event, 10);
        assert!(a < b);
        assert_eq!(parse_segment_file_name(&b), Some((Class::Event, 10)));
        assert_eq!(
            parse_segment_file_name(&segment_file_name(Class::Telemetry, u64::MAX)),
            Some((Class::Telemetry, u64::MAX))
        );
        assert_eq!(parse_segment_file_name("event-12.seg"), None);
        assert_eq!(parse_segment_file_name("meta.json"), None);
    }
}
