//! Network layer PDU header (ASHRAE 135 clause 6.2).

use super::DecodeError;

pub const PROTOCOL_VERSION: u8 = 0x01;

/// A remote network address: network number and MAC address on that network
/// (an empty MAC means a broadcast on that network; network 0xFFFF means global broadcast).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NetAddr {
    pub net: u16,
    pub mac: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Npdu {
    pub expecting_reply: bool,
    /// Network priority (0 = normal, 3 = life safety).
    pub priority: u8,
    pub destination: Option<NetAddr>,
    pub source: Option<NetAddr>,
    pub hop_count: Option<u8>,
    /// Set when this NPDU carries a network layer message (its type) instead of an APDU.
    pub network_message: Option<u8>,
}

impl Npdu {
    /// A local NPDU carrying an APDU.
    pub fn local(expecting_reply: bool) -> Self {
        Npdu {
            expecting_reply,
            priority: 0,
            destination: None,
            source: None,
            hop_count: None,
            network_message: None,
        }
    }

    /// An NPDU routed towards `dest` through a router (used to answer a routed request).
    pub fn routed(dest: NetAddr, expecting_reply: bool) -> Self {
        Npdu {
            destination: Some(dest),
            hop_count: Some(255),
            ..Npdu::local(expecting_reply)
        }
    }
}

/// Decodes the NPDU header and returns it with the remaining bytes (the APDU, or the body of a
/// network layer message).
pub fn decode(buf: &[u8]) -> Result<(Npdu, &[u8]), DecodeError> {
    if buf.len() < 2 {
        return Err(DecodeError::Truncated);
    }
    if buf[0] != PROTOCOL_VERSION {
        return Err(DecodeError::Invalid("NPDU protocol version is not 1"));
    }
    let control = buf[1];
    if control & 0x50 != 0 {
        return Err(DecodeError::Invalid("reserved NPDU control bits set"));
    }
    let mut pos = 2;
    let take = |pos: &mut usize, n: usize| -> Result<&[u8], DecodeError> {
        let end = *pos + n;
        let s = buf.get(*pos..end).ok_or(DecodeError::Truncated)?;
        *pos = end;
        Ok(s)
    };
    let read_addr = |pos: &mut usize| -> Result<NetAddr, DecodeError> {
        let h = take(pos, 3)?;
        let net = u16::from_be_bytes([h[0], h[1]]);
        let len = usize::from(h[2]);
        let mac = take(pos, len)?.to_vec();
        Ok(NetAddr { net, mac })
    };
    let destination = if control & 0x20 != 0 {
        Some(read_addr(&mut pos)?)
    } else {
        None
    };
    let source = if control & 0x08 != 0 {
        let s = read_addr(&mut pos)?;
        if s.net == 0xFFFF || s.mac.is_empty() {
            return Err(DecodeError::Invalid("NPDU source is a broadcast address"));
        }
        Some(s)
    } else {
        None
    };
    let hop_count = if destination.is_some() {
        Some(take(&mut pos, 1)?[0])
    } else {
        None
    };
    let network_message = if control & 0x80 != 0 {
        let t = take(&mut pos, 1)?[0];
        if t >= 0x80 {
            take(&mut pos, 2)?; // vendor id of a proprietary message
        }
        Some(t)
    } else {
        None
    };
    Ok((
        Npdu {
            expecting_reply: control & 0x04 != 0,
            priority: control & 0x03,
            destination,
            source,
            hop_count,
            network_message,
        },
        &buf[pos..],
    ))
}

pub fn encode(npdu: &Npdu, out: &mut Vec<u8>) {
    out.push(PROTOCOL_VERSION);
    let mut control = npdu.priority & 0x03;
    if npdu.network_message.is_some() {
        control |= 0x80;
    }
    if npdu.destination.is_some() {
        control |= 0x20;
    }
    if npdu.source.is_some() {
        control |= 0x08;
    }
    if npdu.expecting_reply {
        control |= 0x04;
    }
    out.push(control);
    let mut addr = |a: &NetAddr| {
        out.extend_from_slice(&a.net.to_be_bytes());
        out.push(a.mac.len().min(255) as u8);
        out.extend_from_slice(&a.mac[..a.mac.len().min(255)]);
    };
    if let Some(d) = &npdu.destination {
        addr(d);
    }
    if let Some(s) = &npdu.source {
        addr(s);
    }
    if npdu.destination.is_some() {
        out.push(npdu.hop_count.unwrap_or(255));
    }
    if let Some(t) = npdu.network_message {
        out.push(t);
        if t >= 0x80 {
            out.extend_from_slice(&[0, 0]);
        }
    }
}
