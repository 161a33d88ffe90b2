//! BACnet Virtual Link Control for BACnet/IP (ASHRAE 135 Annex J).

use super::DecodeError;
use std::net::{Ipv4Addr, SocketAddrV4};

pub const BVLC_TYPE_BIP: u8 = 0x81;

pub mod function {
    pub const RESULT: u8 = 0x00;
    pub const FORWARDED_NPDU: u8 = 0x04;
    pub const DISTRIBUTE_BROADCAST_TO_NETWORK: u8 = 0x09;
    pub const ORIGINAL_UNICAST_NPDU: u8 = 0x0A;
    pub const ORIGINAL_BROADCAST_NPDU: u8 = 0x0B;
}

/// A decoded BVLC frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bvlc<'a> {
    OriginalUnicast(&'a [u8]),
    OriginalBroadcast(&'a [u8]),
    /// A broadcast relayed by a BBMD; `origin` is the B/IP address of the original sender,
    /// which is where replies go.
    Forwarded {
        origin: SocketAddrV4,
        npdu: &'a [u8],
    },
    DistributeBroadcastToNetwork(&'a [u8]),
    /// BVLC-Result with its result code (e.g. a NAK to a foreign-device registration).
    Result(u16),
    /// Any other BVLC function (BDT/FDT management); carries the function code.
    Other(u8),
}

impl<'a> Bvlc<'a> {
    /// The NPDU carried by this frame, if any.
    pub fn npdu(&self) -> Option<&'a [u8]> {
        match *self {
            Bvlc::OriginalUnicast(n)
            | Bvlc::OriginalBroadcast(n)
            | Bvlc::DistributeBroadcastToNetwork(n) => Some(n),
            Bvlc::Forwarded { npdu, .. } => Some(npdu),
            Bvlc::Result(_) | Bvlc::Other(_) => None,
        }
    }
}

pub fn decode(buf: &[u8]) -> Result<Bvlc<'_>, DecodeError> {
    if buf.len() < 4 {
        return Err(DecodeError::Truncated);
    }
    if buf[0] != BVLC_TYPE_BIP {
        return Err(DecodeError::Invalid("not a BACnet/IP BVLC frame"));
    }
    let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
    if len < 4 || len > buf.len() {
        return Err(DecodeError::Invalid("BVLC length does not match datagram"));
    }
    let body = &buf[4..len];
    Ok(match buf[1] {
        function::ORIGINAL_UNICAST_NPDU => Bvlc::OriginalUnicast(body),
        function::ORIGINAL_BROADCAST_NPDU => Bvlc::OriginalBroadcast(body),
        function::DISTRIBUTE_BROADCAST_TO_NETWORK => Bvlc::DistributeBroadcastToNetwork(body),
        function::FORWARDED_NPDU => {
            if body.len() < 6 {
                return Err(DecodeError::Truncated);
            }
            let ip = Ipv4Addr::new(body[0], body[1], body[2], body[3]);
            let port = u16::from_be_bytes([body[4], body[5]]);
            Bvlc::Forwarded {
                origin: SocketAddrV4::new(ip, port),
                npdu: &body[6..],
            }
        }
        function::RESULT => {
            if body.len() < 2 {
                return Err(DecodeError::Truncated);
            }
            Bvlc::Result(u16::from_be_bytes([body[0], body[1]]))
        }
        other => Bvlc::Other(other),
    })
}

fn frame(function: u8, prefix: &[u8], npdu: &[u8]) -> Vec<u8> {
    let len = 4 + prefix.len() + npdu.len();
    let mut out = Vec::with_capacity(len);
    out.push(BVLC_TYPE_BIP);
    out.push(function);
    out.extend_from_slice(&(len.min(0xFFFF) as u16).to_be_bytes());
    out.extend_from_slice(prefix);
    out.extend_from_slice(npdu);
    out
}

pub fn encode_unicast(npdu: &[u8]) -> Vec<u8> {
    frame(function::ORIGINAL_UNICAST_NPDU, &[], npdu)
}

pub fn encode_broadcast(npdu: &[u8]) -> Vec<u8> {
    frame(function::ORIGINAL_BROADCAST_NPDU, &[], npdu)
}

pub fn encode_forwarded(origin: SocketAddrV4, npdu: &[u8]) -> Vec<u8> {
    let mut prefix = origin.ip().octets().to_vec();
    prefix.extend_from_slice(&origin.port().to_be_bytes());
    frame(function::FORWARDED_NPDU, &prefix, npdu)
}
