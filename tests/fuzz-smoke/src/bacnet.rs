//! BACnet/IP: BVLC, NPDU and APDU decoding, service parameter decoders, and a device model
//! answering arbitrary datagrams.

use dcim_bacnet::chiller_plant::ChillerPlant;
use dcim_bacnet::codec::services::{
    CovNotification, IAm, ReadPropertyAck, ReadPropertyMultipleAck, ReadPropertyMultipleRequest,
    ReadPropertyRequest, SubscribeCovRequest, WhoIs,
};
use dcim_bacnet::codec::{Apdu, Body, apdu, bvlc, decode_frame, npdu};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

/// Runs every service decoder over `data`.
fn services(data: &[u8]) {
    let _ = WhoIs::decode(data);
    let _ = IAm::decode(data);
    let _ = ReadPropertyRequest::decode(data);
    let _ = ReadPropertyAck::decode(data);
    let _ = ReadPropertyMultipleRequest::decode(data);
    let _ = ReadPropertyMultipleAck::decode(data);
    let _ = SubscribeCovRequest::decode(data);
    let _ = CovNotification::decode(data);
}

/// Decodes the APDU, its service parameters, and checks that encoding the decoded APDU gives
/// back the same APDU.
fn apdu_layer(bytes: &[u8]) {
    let Ok(a) = apdu::decode(bytes) else {
        return;
    };
    match &a {
        Apdu::ConfirmedRequest { data, .. }
        | Apdu::UnconfirmedRequest { data, .. }
        | Apdu::ComplexAck { data, .. } => services(data),
        _ => {}
    }
    let mut out = Vec::new();
    apdu::encode(&a, &mut out);
    assert_eq!(
        apdu::decode(&out).as_ref(),
        Ok(&a),
        "APDU does not survive encode/decode; encoded as {out:02x?}"
    );
}

/// `data[0] % 4`: 0 = a whole datagram as received; 1 = the rest behind a valid
/// Original-Unicast BVLC header; 2 = the rest as an APDU behind valid BVLC and local NPDU
/// headers; 3 = the rest as service parameters of every service decoder.
pub fn frame(data: &[u8]) {
    let [mode, rest @ ..] = data else {
        return;
    };
    let datagram = match mode % 4 {
        0 => rest.to_vec(),
        1 | 2 => {
            let mut d = vec![0x81, 0x0A, 0, 0];
            if mode % 4 == 2 {
                d.extend_from_slice(&[0x01, 0x04]);
            }
            d.extend_from_slice(rest);
            let len = d.len().min(usize::from(u16::MAX)) as u16;
            d[2..4].copy_from_slice(&len.to_be_bytes());
            d
        }
        _ => {
            services(rest);
            return;
        }
    };
    if let Ok(b) = bvlc::decode(&datagram)
        && let Some(n) = b.npdu()
        && let Ok((_, apdu_bytes)) = npdu::decode(n)
    {
        apdu_layer(apdu_bytes);
    }
    if let Ok(Some(f)) = decode_frame(&datagram)
        && let Body::Apdu(a) = &f.body
    {
        let mut out = Vec::new();
        apdu::encode(a, &mut out);
        assert_eq!(apdu::decode(&out).as_ref(), Ok(a));
    }
}

/// A chiller-plant device handles a sequence of datagrams (each: 1 byte sender, 1 byte time
/// step in 100 ms, then the datagram; separated by the byte sequence `0xFE 0xFE`). Everything
/// the device sends must decode as a BACnet/IP frame.
pub fn device(data: &[u8]) {
    let plant = ChillerPlant::new(2);
    let mut dev = plant.device(1001, "fuzz-plant");
    let mut now_ms = 1_000u64;
    let mut rest = data;
    let mut n = 0;
    while !rest.is_empty() && n < 64 {
        n += 1;
        let end = rest
            .windows(2)
            .position(|w| w == [0xFE, 0xFE])
            .unwrap_or(rest.len());
        let (msg, tail) = rest.split_at(end);
        rest = tail.get(2..).unwrap_or(&[]);
        let [who, step, datagram @ ..] = msg else {
            continue;
        };
        now_ms += u64::from(*step) * 100;
        let from = SocketAddr::V4(SocketAddrV4::new(
            Ipv4Addr::new(127, 0, 0, 1),
            47808 + u16::from(who % 4),
        ));
        for out in dev.handle(from, datagram, now_ms) {
            assert!(
                decode_frame(&out.bytes).is_ok_and(|f| f.is_some()),
                "device sent an undecodable datagram {:02x?}",
                out.bytes
            );
        }
        dev.expire(now_ms);
    }
}
