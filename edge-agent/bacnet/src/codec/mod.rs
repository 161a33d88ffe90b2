//! The sans-IO BACnet/IP codec: bytes in, typed messages out, and back. No sockets, no clocks.
//!
//! Layers: [`bvlc`] (BACnet/IP virtual link), [`npdu`] (network header), [`apdu`] (PDU type,
//! invoke id, service choice), [`services`] (service parameters), [`tag`] (tag and primitive
//! encodings), [`types`] (object identifiers, values, errors).
//!
//! Every decoder takes a byte slice, never panics and does work linear in its input (list
//! lengths and tag nesting are capped), which the property tests check on arbitrary bytes.

pub mod apdu;
pub mod bvlc;
pub mod npdu;
pub mod services;
pub mod tag;
pub mod types;

use std::net::SocketAddrV4;

pub use apdu::Apdu;
pub use bvlc::Bvlc;
pub use npdu::{NetAddr, Npdu};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("truncated data")]
    Truncated,
    #[error("invalid data: {0}")]
    Invalid(&'static str),
    #[error("unexpected tag: expected context tag {expected}, found tag {found}")]
    UnexpectedTag { expected: u8, found: u8 },
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
}

/// How a frame arrived on the BACnet/IP link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    Unicast,
    Broadcast,
    /// Relayed by a BBMD on behalf of `origin` (replies go to `origin`).
    Forwarded {
        origin: SocketAddrV4,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Apdu(Apdu),
    /// A network layer message (router discovery etc.); applications ignore it.
    NetworkMessage(u8),
}

/// A fully decoded BACnet/IP datagram carrying an NPDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub link: LinkKind,
    pub npdu: Npdu,
    pub body: Body,
}

/// Decodes a UDP datagram. BVLC frames that carry no NPDU (BVLC-Result, BDT/FDT management)
/// return `Ok(None)`.
pub fn decode_frame(buf: &[u8]) -> Result<Option<Frame>, DecodeError> {
    let b = bvlc::decode(buf)?;
    let link = match b {
        Bvlc::OriginalUnicast(_) => LinkKind::Unicast,
        Bvlc::OriginalBroadcast(_) | Bvlc::DistributeBroadcastToNetwork(_) => LinkKind::Broadcast,
        Bvlc::Forwarded { origin, .. } => LinkKind::Forwarded { origin },
        Bvlc::Result(_) | Bvlc::Other(_) => return Ok(None),
    };
    let Some(npdu_bytes) = b.npdu() else {
        return Ok(None);
    };
    let (npdu, rest) = npdu::decode(npdu_bytes)?;
    let body = match npdu.network_message {
        Some(t) => Body::NetworkMessage(t),
        None => Body::Apdu(apdu::decode(rest)?),
    };
    Ok(Some(Frame { link, npdu, body }))
}

/// Encodes a complete BACnet/IP datagram (Original-Unicast- or Original-Broadcast-NPDU).
pub fn encode_frame(broadcast: bool, npdu: &Npdu, apdu: &Apdu) -> Vec<u8> {
    let mut body = Vec::with_capacity(64);
    npdu::encode(npdu, &mut body);
    apdu::encode(apdu, &mut body);
    if broadcast {
        bvlc::encode_broadcast(&body)
    } else {
        bvlc::encode_unicast(&body)
    }
}

/// Encodes an unconfirmed request as a complete datagram.
pub fn encode_unconfirmed(
    broadcast: bool,
    npdu: &Npdu,
    service: u8,
    params: impl FnOnce(&mut Vec<u8>),
) -> Vec<u8> {
    let mut data = Vec::new();
    params(&mut data);
    encode_frame(broadcast, npdu, &Apdu::UnconfirmedRequest { service, data })
}
