//! Framing of the gate's MQTT 3.1.1 byte streams over rumqttc's `mqttbytes` codec.
//!
//! [`next_frame`] takes one whole control packet off the front of a buffer, or says that more
//! bytes are needed. The claimed length is checked against the limit as soon as the fixed
//! header is complete, before anything is allocated for it: the buffer only ever holds bytes
//! that really arrived (the shell reads in bounded chunks), so a peer claiming 256 MB and
//! sending five bytes costs five bytes. [`next_connect`] is the same for the first packet of a
//! connection: it must be a CONNECT (checked on the first byte) of at most [`CONNECT_MAX`]
//! bytes, the limit for everything that arrives before the login is checked.

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::{self, FixedHeader};

/// Largest CONNECT the gate reads, and so the largest packet it accepts before a login is
/// checked. An agent's CONNECT (client id, will topic, the retained `AgentState` will, user
/// name and password) is a few hundred bytes.
pub const CONNECT_MAX: usize = 4 * 1024;

/// Largest read of one socket call while a frame is incomplete, before the login is checked:
/// what one connection may buffer beyond the frame it is reading.
pub const LOGIN_CHUNK: usize = 4 * 1024;
/// Largest read of one socket call after the login.
pub const READ_CHUNK: usize = 64 * 1024;

/// Why a byte stream was refused before any packet was parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("packet of {claimed} bytes exceeds the limit of {max} bytes")]
    TooLarge { claimed: usize, max: usize },
    #[error("malformed remaining length")]
    MalformedLength,
    #[error("the first packet is not CONNECT (packet type {0})")]
    NotConnect(u8),
    #[error("malformed packet: {0}")]
    Malformed(String),
}

/// One MQTT control packet, byte for byte as it arrived (so it can be relayed unchanged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    raw: Bytes,
    header: FixedHeader,
    header_len: usize,
}

impl Frame {
    /// The whole packet: fixed header, variable header and payload.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }
    /// The packet type (upper four bits of the first byte).
    pub fn kind(&self) -> u8 {
        self.raw[0] >> 4
    }
    /// The flags (lower four bits of the first byte).
    pub fn flags(&self) -> u8 {
        self.raw[0] & 0x0f
    }
    /// Everything after the fixed header.
    pub fn body(&self) -> &[u8] {
        &self.raw[self.header_len..]
    }
    pub fn fixed_header(&self) -> FixedHeader {
        self.header
    }
}

/// Length of a complete fixed header at the start of `b` (1 + 1..=4 length bytes).
fn header_len(b: &[u8]) -> usize {
    1 + b
        .iter()
        .skip(1)
        .take(4)
        .position(|x| x & 0x80 == 0)
        .map_or(4, |i| i + 1)
}

/// Takes the first complete packet off `buf`; `Ok(None)` when more bytes are needed. A packet
/// claiming more than `max` bytes after its fixed header is refused as soon as the header is
/// complete.
pub fn next_frame(buf: &mut BytesMut, max: usize) -> Result<Option<Frame>, FrameError> {
    match mqttbytes::check(buf.iter(), max) {
        Ok(header) => {
            let len = header.frame_length();
            let header_len = header_len(&buf[..len]);
            let raw = buf.split_to(len).freeze();
            Ok(Some(Frame {
                raw,
                header,
                header_len,
            }))
        }
        Err(mqttbytes::Error::InsufficientBytes(_)) => Ok(None),
        Err(mqttbytes::Error::PayloadSizeLimitExceeded(claimed)) => {
            Err(FrameError::TooLarge { claimed, max })
        }
        Err(mqttbytes::Error::MalformedRemainingLength) => Err(FrameError::MalformedLength),
        Err(e) => Err(FrameError::Malformed(e.to_string())),
    }
}

/// [`next_frame`] for the first packet of a connection: refused at its first byte unless it
/// is a CONNECT, and at its fixed header if it claims more than [`CONNECT_MAX`].
pub fn next_connect(buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
    if let Some(first) = buf.first()
        && *first != 0x10
    {
        return Err(FrameError::NotConnect(first >> 4));
    }
    next_frame(buf, CONNECT_MAX)
}

/// How many bytes the shell may read next into `buf` (at least 1): up to `chunk`, so a
/// connection's buffer holds at most one frame of `max` bytes (plus its fixed header) and
/// one chunk.
pub fn read_size(buf: &BytesMut, max: usize, chunk: usize) -> usize {
    let cap = max.saturating_add(5).saturating_add(chunk);
    chunk.min(cap.saturating_sub(buf.len())).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(first: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![first];
        let mut len = body.len();
        loop {
            let b = (len % 128) as u8;
            len /= 128;
            v.push(if len > 0 { b | 0x80 } else { b });
            if len == 0 {
                break;
            }
        }
        v.extend_from_slice(body);
        v
    }

    /// Hazard: a peer that claims a 4 MB packet and sends five bytes made the old reader
    /// allocate 4 MB per socket before any login (200 sockets: 800 MB).
    #[test]
    fn a_claimed_length_over_the_limit_is_refused_at_the_header() {
        // CONNECT claiming 268,435,455 bytes, five bytes on the wire.
        let mut buf = BytesMut::from(&[0x10, 0xff, 0xff, 0xff, 0x7f][..]);
        assert_eq!(
            next_connect(&mut buf),
            Err(FrameError::TooLarge {
                claimed: 268_435_455,
                max: CONNECT_MAX
            })
        );
        // Just over the CONNECT limit.
        let mut buf = BytesMut::from(&frame(0x10, &vec![0; CONNECT_MAX + 1])[..5]);
        assert!(matches!(
            next_connect(&mut buf),
            Err(FrameError::TooLarge { .. })
        ));
        // Anything but CONNECT first is refused at its first byte.
        let mut buf = BytesMut::from(&[0x30][..]);
        assert_eq!(next_connect(&mut buf), Err(FrameError::NotConnect(3)));
        let mut buf = BytesMut::from(&[0x10, 0x80, 0x80, 0x80, 0x80][..]);
        assert_eq!(next_connect(&mut buf), Err(FrameError::MalformedLength));
    }

    #[test]
    fn frames_come_out_whole_and_in_order_from_any_split() {
        let a = frame(0x30, b"\x00\x03a/bhello");
        let b = frame(0xc0, b"");
        let c = frame(0x82, &[0u8; 300]);
        let stream: Vec<u8> = [a.clone(), b.clone(), c.clone()].concat();
        for split in 0..stream.len() {
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            for part in [&stream[..split], &stream[split..]] {
                buf.extend_from_slice(part);
                while let Some(f) = next_frame(&mut buf, 1024).unwrap() {
                    out.push(f);
                }
            }
            assert!(buf.is_empty());
            let raws: Vec<&[u8]> = out.iter().map(|f| &f.raw()[..]).collect();
            assert_eq!(raws, vec![&a[..], &b[..], &c[..]]);
        }
        let mut buf = BytesMut::from(&c[..]);
        let f = next_frame(&mut buf, 1024).unwrap().unwrap();
        assert_eq!((f.kind(), f.flags(), f.body().len()), (8, 2, 300));
    }

    #[test]
    fn the_read_size_keeps_a_buffer_within_one_frame_and_one_chunk() {
        let buf = BytesMut::new();
        assert_eq!(read_size(&buf, CONNECT_MAX, LOGIN_CHUNK), LOGIN_CHUNK);
        let buf = BytesMut::from(&vec![0u8; CONNECT_MAX + 5 + LOGIN_CHUNK][..]);
        assert_eq!(read_size(&buf, CONNECT_MAX, LOGIN_CHUNK), 1);
    }

    proptest::proptest! {
        /// Any byte stream, cut anywhere: the same frames come out, none larger than the
        /// limit, and the buffer never holds more than one frame plus one read.
        #[test]
        fn framing_does_not_depend_on_how_the_stream_is_cut(
            data in proptest::collection::vec(proptest::num::u8::ANY, 0..600),
            cuts in proptest::collection::vec(0usize..600, 0..8),
        ) {
            let max = 200;
            let run = |cuts: &[usize]| {
                let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
                bounds.push(data.len());
                bounds.sort();
                let mut buf = BytesMut::new();
                let mut out = Vec::new();
                let mut at = 0;
                for b in bounds {
                    let mut pos = at;
                    while pos < b {
                        let n = read_size(&buf, max, 7).min(b - pos);
                        buf.extend_from_slice(&data[pos..pos + n]);
                        pos += n;
                        assert!(buf.len() <= max + 5 + 7);
                        loop {
                            match next_frame(&mut buf, max) {
                                Ok(Some(f)) => {
                                    assert!(f.body().len() <= max);
                                    out.push(Ok(f.raw().clone()));
                                }
                                Ok(None) => break,
                                Err(e) => {
                                    out.push(Err(e));
                                    return out;
                                }
                            }
                        }
                    }
                    at = b;
                }
                out
            };
            proptest::prop_assert_eq!(run(&cuts), run(&[]));
        }
    }
}
