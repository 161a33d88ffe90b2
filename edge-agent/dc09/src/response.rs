//! Receiver replies: `"ACK"`, `"NAK"`, `"DUH"` and `"RSP"` blocks.
//!
//! ```text
//! ACK  <LF>CRC 0LLL"ACK"seqRrLl#acct[]<CR>            (timestamp optional)
//! *ACK <LF>CRC 0LLL"*ACK"seqRrLl#acct[HEX..]<CR>      (HEX decrypts to pad ] _timestamp)
//! NAK  <LF>CRC 0LLL"NAK"0000RrLlA0[]_HH:MM:SS,MM-DD-YYYY<CR>
//! DUH  <LF>CRC 0LLL"DUH"seqRrLl#acct[]<CR>
//! ```

use crate::crypto::{Key, hex_encode};
use crate::frame::{
    Account, DecodeError, Header, Seq, decrypt_content, frame_body, split_content, split_frame,
};
use crate::timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResponseKind {
    /// Accepted.
    Ack,
    /// Rejected because of the timestamp (or a message the receiver could not place); carries
    /// the receiver's time so the transmitter can correct its clock and resend.
    Nak,
    /// Understood framing but not the content (e.g. an unknown event code): a local trouble,
    /// resending the same message will not help.
    Duh,
    /// Accepted, with a response (extended data) from the receiver.
    Rsp,
}

impl ResponseKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseKind::Ack => "ACK",
            ResponseKind::Nak => "NAK",
            ResponseKind::Duh => "DUH",
            ResponseKind::Rsp => "RSP",
        }
    }
}

/// A parsed receiver reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub kind: ResponseKind,
    pub encrypted: bool,
    /// Sequence number echoed by the receiver (0 in a NAK).
    pub seq: u16,
    /// Account echoed by the receiver, when present.
    pub account: Option<String>,
    /// Receiver time, when the reply carries one (always in a NAK).
    pub timestamp_ms: Option<i64>,
}

/// Parses a reply. An encrypted reply needs the key.
pub fn parse_response(input: &[u8], key: Option<&Key>) -> Result<Response, DecodeError> {
    let raw = split_frame(input)?;
    let kind = match raw.id {
        "ACK" => ResponseKind::Ack,
        "NAK" => ResponseKind::Nak,
        "DUH" => ResponseKind::Duh,
        "RSP" => ResponseKind::Rsp,
        _ => return Err(DecodeError::Token),
    };
    let seq: u16 = raw.seq.parse().map_err(|_| DecodeError::Seq)?;
    // Only the account matters in a reply. NAK carries "R0L0A0" style prefixes, and
    // pysiaalarm echoes a missing receiver number as "None" ("ACK"0001NoneL1#1234[]), so the
    // receiver and line are not validated here.
    let account = match (kind, raw.prefix.find('#')) {
        (ResponseKind::Nak, _) | (_, None) => None,
        (_, Some(i)) => Some(
            Account::new(&raw.prefix[i + 1..])
                .map_err(|_| DecodeError::Prefix)?
                .as_str()
                .to_string(),
        ),
    };
    let timestamp_ms = if raw.encrypted {
        let key = key.ok_or(DecodeError::NoKey)?;
        let plain = decrypt_content(raw.content, key)?;
        // pad characters, then ']' and the timestamp, which an encrypted reply must carry
        // (it is what proves the reply was made with our key).
        let close = plain.find(']').ok_or(DecodeError::Crypt)?;
        let (_, ts) = split_content(&plain[close..]).map_err(|_| DecodeError::Crypt)?;
        Some(ts.ok_or(DecodeError::Crypt)?)
    } else {
        split_content(raw.content)?.1
    };
    if kind == ResponseKind::Nak && timestamp_ms.is_none() {
        return Err(DecodeError::Content);
    }
    Ok(Response {
        kind,
        encrypted: raw.encrypted,
        seq,
        account,
        timestamp_ms,
    })
}

/// Encodes a reply the way a receiver does (for test receivers and tools). A NAK always
/// carries `timestamp_ms`; an encrypted ACK carries it inside the encrypted part.
pub fn encode_response(
    kind: ResponseKind,
    seq: Option<Seq>,
    header: &Header,
    key: Option<&Key>,
    timestamp_ms: Option<i64>,
    pad_entropy: &[u8; 16],
) -> Vec<u8> {
    let prefix = {
        let mut p = String::new();
        if let Some(r) = header.receiver {
            p.push_str(&format!("R{r:X}"));
        }
        p.push_str(&format!("L{:X}", header.line));
        p
    };
    let ts = timestamp_ms.map(timestamp::format).unwrap_or_default();
    let seq = seq.map(|s| s.to_string()).unwrap_or_else(|| "0000".into());
    let body = match (kind, key) {
        (ResponseKind::Nak, _) => format!("\"NAK\"0000{prefix}A0[]{ts}"),
        (ResponseKind::Duh, _) | (_, None) => {
            format!(
                "\"{}\"{seq}{prefix}#{}[]{ts}",
                kind.as_str(),
                header.account
            )
        }
        (_, Some(key)) => {
            let clear_len = 1 + ts.len();
            let pad = 16 - clear_len % 16;
            let mut plain: Vec<u8> = pad_entropy[..pad].iter().map(|b| b'0' + (b % 10)).collect();
            plain.push(b']');
            plain.extend_from_slice(ts.as_bytes());
            key.encrypt_in_place(&mut plain);
            format!(
                "\"*{}\"{seq}{prefix}#{}[{}",
                kind.as_str(),
                header.account,
                hex_encode(&plain)
            )
        }
    };
    frame_body(&body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr() -> Header {
        Header {
            receiver: Some(1),
            line: 1,
            account: Account::new("1234").unwrap(),
        }
    }

    #[test]
    fn roundtrip_all_kinds() {
        let key = Key::from_ascii("AAAAAAAAAAAAAAAA").unwrap();
        for kind in [
            ResponseKind::Ack,
            ResponseKind::Duh,
            ResponseKind::Rsp,
            ResponseKind::Nak,
        ] {
            for k in [None, Some(&key)] {
                let f = encode_response(
                    kind,
                    Seq::new(12),
                    &hdr(),
                    k,
                    Some(1_700_000_001_000),
                    &[7; 16],
                );
                let r = parse_response(&f, k).unwrap();
                assert_eq!(r.kind, kind);
                assert_eq!(r.timestamp_ms, Some(1_700_000_001_000));
                if kind != ResponseKind::Nak {
                    assert_eq!(r.seq, 12);
                    assert_eq!(r.account.as_deref(), Some("1234"));
                }
            }
        }
    }

    #[test]
    fn nak_without_time_is_an_error() {
        let f = frame_body("\"NAK\"0000R0L0A0[]");
        assert_eq!(parse_response(&f, None), Err(DecodeError::Content));
    }

    #[test]
    fn encrypted_ack_needs_key() {
        let key = Key::from_ascii("AAAAAAAAAAAAAAAA").unwrap();
        let f = encode_response(
            ResponseKind::Ack,
            Seq::new(1),
            &hdr(),
            Some(&key),
            Some(0),
            &[0; 16],
        );
        assert_eq!(parse_response(&f, None), Err(DecodeError::NoKey));
        let wrong = Key::from_ascii("BBBBBBBBBBBBBBBB").unwrap();
        assert!(parse_response(&f, Some(&wrong)).is_err());
    }
}
