//! SIA DC-09: transmitter message blocks, receiver replies (ACK/NAK/DUH/RSP), AES decryption
//! and the timestamp.

use arbitrary::{Arbitrary, Unstructured};
use sia_dc09::frame::{Account, Header, Message, Seq, Token};
use sia_dc09::response::{ResponseKind, encode_response};
use sia_dc09::{Key, crc16, decode_message, encode_message, parse_response, timestamp};

fn key(sel: u8) -> Option<Key> {
    match sel % 4 {
        0 => None,
        1 => Key::from_bytes(&[0x5A; 16]).ok(),
        2 => Key::from_bytes(&[0xA5; 24]).ok(),
        _ => Key::from_bytes(&[0x3C; 32]).ok(),
    }
}

/// Frames a body the way a transmitter does: `<LF>` CRC, length, body, `<CR>`.
fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = vec![b'\n'];
    out.extend_from_slice(format!("{:04X}{:04X}", crc16(body), body.len() & 0xFFFF).as_bytes());
    out.extend_from_slice(body);
    out.push(b'\r');
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// `data[0] % 5`: 0 = raw message block; 1 = raw reply; 2 = the rest as a body behind a
/// valid CRC and length; 3 = an encrypted block: the rest is `prefix 0xFF plaintext`, the
/// harness encrypts the plaintext (zero padded to 16 bytes) with the key and frames it;
/// 4 = structured round trip of encode/decode (messages, replies and timestamps).
/// `data[0] / 5` selects the key (none, AES-128, -192, -256).
pub fn frame(data: &[u8]) {
    let [sel, rest @ ..] = data else {
        return;
    };
    let k = key(sel / 5);
    let k = k.as_ref();
    match sel % 5 {
        0 => {
            let _ = decode_message(rest, k);
        }
        1 => {
            let _ = parse_response(rest, k);
        }
        2 => {
            let f = framed(rest);
            let _ = decode_message(&f, k);
            let _ = parse_response(&f, k);
        }
        3 => {
            let Some(k) = k else { return };
            let split = rest.iter().position(|b| *b == 0xFF).unwrap_or(rest.len());
            let (prefix, plain) = rest.split_at(split);
            let mut plain = plain.get(1..).unwrap_or(&[]).to_vec();
            plain.resize(plain.len().div_ceil(16).max(1) * 16, 0);
            k.encrypt_in_place(&mut plain);
            let mut body = prefix.to_vec();
            body.extend_from_slice(hex(&plain).as_bytes());
            let f = framed(&body);
            let _ = decode_message(&f, Some(k));
            let _ = parse_response(&f, Some(k));
        }
        _ => {
            let mut u = Unstructured::new(rest);
            let _ = round_trip(&mut u, k);
        }
    }
}

const ACCOUNT_CHARS: &[u8] = b"0123456789ABCDEF";
/// Timestamps between 1970 and the end of 9999 (four-digit years).
const MAX_TS: i64 = 253_402_300_799_000;

fn round_trip(u: &mut Unstructured<'_>, key: Option<&Key>) -> arbitrary::Result<()> {
    let token = *u.choose(&[Token::SiaDcs, Token::AdmCid, Token::Null])?;
    let seq = Seq::new(u.int_in_range(1..=9999)?).expect("1..=9999 is a valid sequence");
    let acct_len = u.int_in_range(3..=16)?;
    let mut acct = String::new();
    for _ in 0..acct_len {
        acct.push(char::from(*u.choose(ACCOUNT_CHARS)?));
    }
    let account = Account::new(&acct).expect("3 to 16 hex digits is a valid account");
    let header = Header {
        receiver: if bool::arbitrary(u)? {
            Some(u.int_in_range(0..=0xFF_FFFF)?)
        } else {
            None
        },
        line: u.int_in_range(0..=0xFF_FFFF)?,
        account,
    };
    let data_len = u.int_in_range(0..=120)?;
    let mut text = String::new();
    for _ in 0..data_len {
        text.push(char::from(u.int_in_range(0x20u8..=0x7e)?));
    }
    let ts = u.int_in_range(0..=MAX_TS)?;
    let pad: [u8; 16] = Arbitrary::arbitrary(u)?;
    let second = ts - ts.rem_euclid(1000);

    // Timestamp text round trip.
    assert_eq!(
        timestamp::parse(timestamp::format(ts).trim_start_matches('_')),
        Some(second)
    );

    let msg = Message {
        token,
        seq,
        header: &header,
        data: &text,
        timestamp_ms: ts,
    };
    if let Ok(bytes) = encode_message(&msg, key, &pad) {
        let d = decode_message(&bytes, key)
            .unwrap_or_else(|e| panic!("own message {bytes:?} does not decode: {e}"));
        assert_eq!(d.token, token);
        assert_eq!(d.encrypted, key.is_some());
        assert_eq!(d.seq, seq.get());
        assert_eq!(d.header, header);
        assert_eq!(d.data, text);
        assert_eq!(d.timestamp_ms, Some(second));
    }

    let kind = *u.choose(&[
        ResponseKind::Ack,
        ResponseKind::Nak,
        ResponseKind::Duh,
        ResponseKind::Rsp,
    ])?;
    let reply_ts = if kind == ResponseKind::Nak || key.is_some() || bool::arbitrary(u)? {
        Some(ts)
    } else {
        None
    };
    let reply_seq = (kind != ResponseKind::Nak).then_some(seq);
    let bytes = encode_response(kind, reply_seq, &header, key, reply_ts, &pad);
    let r = parse_response(&bytes, key)
        .unwrap_or_else(|e| panic!("own reply {bytes:?} does not parse: {e}"));
    assert_eq!(r.kind, kind);
    let encrypted_kind = matches!(kind, ResponseKind::Ack | ResponseKind::Rsp);
    assert_eq!(r.encrypted, key.is_some() && encrypted_kind);
    assert_eq!(r.timestamp_ms, reply_ts.map(|t| t - t.rem_euclid(1000)));
    if let Some(s) = reply_seq {
        assert_eq!(r.seq, s.get());
    }
    Ok(())
}
