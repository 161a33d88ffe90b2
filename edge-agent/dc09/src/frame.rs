//! The DC-09 message block:
//!
//! ```text
//! <LF> CRC(4 hex) 0LLL(4 hex) "id" seq(4 dec) [R rcvr] L line [#acct] [ data ] [xdata] _HH:MM:SS,MM-DD-YYYY <CR>
//! ```
//!
//! The CRC is CRC-16/ARC over everything from the first `"` up to (not including) the `<CR>`;
//! `0LLL` is the length of that same span in hex. When the message is encrypted the id gets a
//! `*` prefix and everything after `[` (pad, `|`, data, `]`, timestamp) is AES-CBC encrypted
//! and sent as uppercase hex; the pad is 1 to 16 random characters (never `|`, `[` or `]`) so
//! that the encrypted part is a whole number of 16-byte blocks.

use crate::crypto::{Key, hex_decode, hex_encode};
use crate::timestamp;
use std::fmt;

const CRC16: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_ARC);

/// CRC-16/ARC (poly 0x8005 reflected, init 0), as DC-09 requires.
pub fn crc16(data: &[u8]) -> u16 {
    CRC16.checksum(data)
}

/// Maximum receiver and line numbers (6 hex digits).
pub const MAX_PREFIX: u32 = 0xFF_FFFF;
/// Largest body the 3-hex-digit length field can describe.
pub const MAX_BODY: usize = 0xFFF;

/// The message id token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Token {
    SiaDcs,
    AdmCid,
    /// Link supervision (no event).
    Null,
}

impl Token {
    pub fn as_str(self) -> &'static str {
        match self {
            Token::SiaDcs => "SIA-DCS",
            Token::AdmCid => "ADM-CID",
            Token::Null => "NULL",
        }
    }
    fn parse(s: &str) -> Option<Token> {
        match s {
            "SIA-DCS" => Some(Token::SiaDcs),
            "ADM-CID" => Some(Token::AdmCid),
            "NULL" => Some(Token::Null),
            _ => None,
        }
    }
}

/// A message sequence number, 0001..=9999, wrapping from 9999 to 0001.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Seq(u16);

impl Seq {
    pub const FIRST: Seq = Seq(1);

    pub fn new(n: u16) -> Option<Seq> {
        (1..=9999).contains(&n).then_some(Seq(n))
    }
    /// The n-th number of a monotonically increasing counter (0 -> 0001, 9998 -> 9999,
    /// 9999 -> 0001, ...).
    pub fn from_counter(n: u64) -> Seq {
        Seq((n % 9999) as u16 + 1)
    }
    pub fn get(self) -> u16 {
        self.0
    }
    #[must_use]
    pub fn next(self) -> Seq {
        if self.0 >= 9999 {
            Seq(1)
        } else {
            Seq(self.0 + 1)
        }
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}", self.0)
    }
}

/// An account number: 3 to 16 hex digits (kept uppercase).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Account(String);

impl Account {
    pub fn new(s: &str) -> Result<Account, EncodeError> {
        if !(3..=16).contains(&s.len()) || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(EncodeError::Account(s.to_string()));
        }
        Ok(Account(s.to_ascii_uppercase()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Receiver, line and account prefixes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// `R` prefix (hex, up to 6 digits); `None` leaves it out.
    pub receiver: Option<u32>,
    /// `L` prefix (hex, up to 6 digits).
    pub line: u32,
    pub account: Account,
}

impl Header {
    fn write(&self, out: &mut String) -> Result<(), EncodeError> {
        if let Some(r) = self.receiver {
            if r > MAX_PREFIX {
                return Err(EncodeError::Prefix("receiver", r));
            }
            out.push_str(&format!("R{r:X}"));
        }
        if self.line > MAX_PREFIX {
            return Err(EncodeError::Prefix("line", self.line));
        }
        out.push_str(&format!("L{:X}#{}", self.line, self.account));
        Ok(())
    }
}

/// One message to send.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    pub token: Token,
    pub seq: Seq,
    pub header: &'a Header,
    /// What goes between `[` and `]`, e.g. `#1234|Nri1/FA0101` or `#1234|1110 01 001`;
    /// empty for NULL.
    pub data: &'a str,
    /// Transmitter time, already corrected by the receiver offset learnt from NAKs.
    pub timestamp_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("account {0:?} must be 3 to 16 hex digits")]
    Account(String),
    #[error("{0} number {1:#X} does not fit in 6 hex digits")]
    Prefix(&'static str, u32),
    #[error("message data {0:?} must be printable ASCII without '[', ']' or '|' at the start")]
    Data(String),
    #[error("message body of {0} characters exceeds the 0xFFF length field")]
    TooLong(usize),
}

/// Characters allowed in the random pad: printable ASCII except `|`, `[` and `]`.
fn pad_char(b: u8) -> u8 {
    const N: u8 = 94 - 3;
    let mut c = 0x21 + (b % N);
    // skip '[' (0x5B), ']' (0x5D) and '|' (0x7C) by shifting the ranges above them
    if c >= b'[' {
        c += 1;
    }
    if c >= b']' {
        c += 1;
    }
    if c >= b'|' {
        c += 1;
    }
    c
}

fn frame(body: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 10);
    out.push(b'\n');
    out.extend_from_slice(format!("{:04X}{:04X}", crc16(body.as_bytes()), body.len()).as_bytes());
    out.extend_from_slice(body.as_bytes());
    out.push(b'\r');
    out
}

/// Encodes a message block. `pad_entropy` supplies the random pad of encrypted messages (use
/// fresh random bytes for each message); it is ignored without a key.
pub fn encode_message(
    msg: &Message<'_>,
    key: Option<&Key>,
    pad_entropy: &[u8; 16],
) -> Result<Vec<u8>, EncodeError> {
    if !msg
        .data
        .bytes()
        .all(|c| (0x20..0x7f).contains(&c) && c != b'[' && c != b']')
        || msg.data.starts_with('|')
    {
        return Err(EncodeError::Data(msg.data.to_string()));
    }
    let mut body = String::with_capacity(64 + msg.data.len());
    body.push('"');
    if key.is_some() {
        body.push('*');
    }
    body.push_str(msg.token.as_str());
    body.push('"');
    body.push_str(&msg.seq.to_string());
    msg.header.write(&mut body)?;
    body.push('[');
    let ts = timestamp::format(msg.timestamp_ms);
    match key {
        None => {
            body.push_str(msg.data);
            body.push(']');
            body.push_str(&ts);
        }
        Some(key) => {
            let clear_len = 1 + msg.data.len() + 1 + ts.len();
            let pad = 16 - clear_len % 16; // 1..=16
            let mut plain = Vec::with_capacity(pad + clear_len);
            plain.extend(pad_entropy[..pad].iter().map(|&b| pad_char(b)));
            plain.push(b'|');
            plain.extend_from_slice(msg.data.as_bytes());
            plain.push(b']');
            plain.extend_from_slice(ts.as_bytes());
            key.encrypt_in_place(&mut plain);
            body.push_str(&hex_encode(&plain));
        }
    }
    if body.len() > MAX_BODY {
        return Err(EncodeError::TooLong(body.len()));
    }
    Ok(frame(&body))
}

/// Encodes an arbitrary body (already laid out) into a frame; used for receiver replies.
pub(crate) fn frame_body(body: &str) -> Vec<u8> {
    frame(body)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("frame must start with <LF> and end with <CR>")]
    Framing,
    #[error("bad CRC or length field")]
    Field,
    #[error("CRC mismatch: frame says {sent:04X}, computed {computed:04X}")]
    Crc { sent: u16, computed: u16 },
    #[error("length mismatch: frame says {sent}, body has {actual}")]
    Length { sent: usize, actual: usize },
    #[error("malformed id token")]
    Token,
    #[error("malformed sequence number")]
    Seq,
    #[error("malformed receiver/line/account prefix")]
    Prefix,
    #[error("encrypted content cannot be decoded (wrong key or corrupt)")]
    Crypt,
    #[error("encrypted message but no key configured")]
    NoKey,
    #[error("malformed data or timestamp")]
    Content,
}

/// A checked frame split into its id, sequence, prefix and content.
pub(crate) struct RawFrame<'a> {
    pub encrypted: bool,
    pub id: &'a str,
    pub seq: &'a str,
    pub prefix: &'a str,
    pub content: &'a str,
}

pub(crate) fn split_frame(input: &[u8]) -> Result<RawFrame<'_>, DecodeError> {
    let s = std::str::from_utf8(input).map_err(|_| DecodeError::Framing)?;
    let inner = s
        .strip_prefix('\n')
        .and_then(|r| r.strip_suffix('\r'))
        .ok_or(DecodeError::Framing)?;
    if inner.len() < 8 || !inner.as_bytes()[..8].is_ascii() {
        return Err(DecodeError::Field);
    }
    let hex4 = |t: &str| -> Result<u16, DecodeError> {
        if t.bytes().all(|c| c.is_ascii_hexdigit()) {
            u16::from_str_radix(t, 16).map_err(|_| DecodeError::Field)
        } else {
            Err(DecodeError::Field)
        }
    };
    let sent_crc = hex4(&inner[..4])?;
    let sent_len = usize::from(hex4(&inner[4..8])?);
    let body = &inner[8..];
    if sent_len != body.len() {
        return Err(DecodeError::Length {
            sent: sent_len,
            actual: body.len(),
        });
    }
    let computed = crc16(body.as_bytes());
    if computed != sent_crc {
        return Err(DecodeError::Crc {
            sent: sent_crc,
            computed,
        });
    }
    let rest = body.strip_prefix('"').ok_or(DecodeError::Token)?;
    let q = rest.find('"').ok_or(DecodeError::Token)?;
    let (mut id, rest) = (&rest[..q], &rest[q + 1..]);
    let encrypted = id.starts_with('*');
    if encrypted {
        id = &id[1..];
    }
    if rest.len() < 4 || !rest.is_char_boundary(4) {
        return Err(DecodeError::Seq);
    }
    let (seq, rest) = rest.split_at(4);
    if !seq.bytes().all(|c| c.is_ascii_digit()) {
        return Err(DecodeError::Seq);
    }
    let b = rest.find('[').ok_or(DecodeError::Prefix)?;
    Ok(RawFrame {
        encrypted,
        id,
        seq,
        prefix: &rest[..b],
        content: &rest[b + 1..],
    })
}

/// Parses `[R<hex>]L<hex>[#<acct>]`.
pub(crate) fn parse_prefix(p: &str) -> Result<(Option<u32>, u32, Option<Account>), DecodeError> {
    let (acct, p) = match p.find('#') {
        Some(i) => (
            Some(Account::new(&p[i + 1..]).map_err(|_| DecodeError::Prefix)?),
            &p[..i],
        ),
        None => (None, p),
    };
    let hexnum = |t: &str| -> Result<u32, DecodeError> {
        if (1..=6).contains(&t.len()) && t.bytes().all(|c| c.is_ascii_hexdigit()) {
            u32::from_str_radix(t, 16).map_err(|_| DecodeError::Prefix)
        } else {
            Err(DecodeError::Prefix)
        }
    };
    let l = p.find('L').ok_or(DecodeError::Prefix)?;
    let receiver = match &p[..l] {
        "" => None,
        r => Some(hexnum(r.strip_prefix('R').ok_or(DecodeError::Prefix)?)?),
    };
    Ok((receiver, hexnum(&p[l + 1..])?, acct))
}

/// Decrypts hex content and strips the pad up to and including the first `|`.
pub(crate) fn decrypt_content(hex: &str, key: &Key) -> Result<String, DecodeError> {
    let mut buf = hex_decode(hex).map_err(|_| DecodeError::Crypt)?;
    if buf.is_empty() || !key.decrypt_in_place(&mut buf) {
        return Err(DecodeError::Crypt);
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    Ok(text)
}

/// Splits `data]` `[xdata]...` `_HH:MM:SS,MM-DD-YYYY` into data and timestamp.
pub(crate) fn split_content(c: &str) -> Result<(&str, Option<i64>), DecodeError> {
    let close = c.find(']').ok_or(DecodeError::Content)?;
    let data = &c[..close];
    let mut rest = &c[close + 1..];
    while let Some(r) = rest.strip_prefix('[') {
        let e = r.find(']').ok_or(DecodeError::Content)?;
        rest = &r[e + 1..];
    }
    let ts = match rest {
        "" => None,
        r => Some(
            r.strip_prefix('_')
                .and_then(timestamp::parse)
                .ok_or(DecodeError::Content)?,
        ),
    };
    Ok((data, ts))
}

/// A decoded transmitter message (what a receiver sees).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedMessage {
    pub token: Token,
    pub encrypted: bool,
    pub seq: u16,
    pub header: Header,
    pub data: String,
    pub timestamp_ms: Option<i64>,
}

/// Decodes a transmitter message block, checking framing, length and CRC, decrypting with
/// `key` when the message is encrypted.
pub fn decode_message(input: &[u8], key: Option<&Key>) -> Result<DecodedMessage, DecodeError> {
    let raw = split_frame(input)?;
    let token = Token::parse(raw.id).ok_or(DecodeError::Token)?;
    let seq: u16 = raw.seq.parse().map_err(|_| DecodeError::Seq)?;
    let (receiver, line, account) = parse_prefix(raw.prefix)?;
    let account = account.ok_or(DecodeError::Prefix)?;
    let plain;
    let content = if raw.encrypted {
        let key = key.ok_or(DecodeError::NoKey)?;
        plain = decrypt_content(raw.content, key)?;
        let bar = plain.find('|').ok_or(DecodeError::Crypt)?;
        let pad = &plain[..bar];
        if pad.contains(['[', ']']) {
            return Err(DecodeError::Crypt);
        }
        &plain[bar + 1..]
    } else {
        raw.content
    };
    let (data, timestamp_ms) = split_content(content)?;
    Ok(DecodedMessage {
        token,
        encrypted: raw.encrypted,
        seq,
        header: Header {
            receiver,
            line,
            account,
        },
        data: data.to_string(),
        timestamp_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr() -> Header {
        Header {
            receiver: Some(0x12),
            line: 3,
            account: Account::new("1234").unwrap(),
        }
    }

    #[test]
    fn crc_check_value() {
        assert_eq!(crc16(b"123456789"), 0xBB3D);
    }

    #[test]
    fn seq_wraps_and_is_decimal() {
        assert_eq!(Seq::new(9999).unwrap().next(), Seq::FIRST);
        assert_eq!(Seq::new(0), None);
        assert_eq!(Seq::new(10000), None);
        assert_eq!(Seq::new(42).unwrap().to_string(), "0042");
        assert_eq!(Seq::from_counter(0), Seq::FIRST);
        assert_eq!(Seq::from_counter(9998).get(), 9999);
        assert_eq!(Seq::from_counter(9999), Seq::FIRST);
    }

    #[test]
    fn pad_chars_are_allowed() {
        for b in 0..=255u8 {
            let c = pad_char(b);
            assert!((0x21..0x7f).contains(&c), "{b} -> {c}");
            assert!(!b"[]|".contains(&c), "{b} -> {}", c as char);
        }
    }

    #[test]
    fn account_validation() {
        assert!(Account::new("12").is_err());
        assert!(Account::new("12345678901234567").is_err());
        assert!(Account::new("12G4").is_err());
        assert_eq!(Account::new("abc").unwrap().as_str(), "ABC");
    }

    #[test]
    fn plain_roundtrip_and_tamper() {
        let h = hdr();
        let m = Message {
            token: Token::SiaDcs,
            seq: Seq::new(7).unwrap(),
            header: &h,
            data: "#1234|Nri1/FA0101",
            timestamp_ms: 1_700_000_000_000,
        };
        let f = encode_message(&m, None, &[0; 16]).unwrap();
        let d = decode_message(&f, None).unwrap();
        assert_eq!(d.seq, 7);
        assert_eq!(d.header, h);
        assert_eq!(d.data, "#1234|Nri1/FA0101");
        assert_eq!(d.timestamp_ms, Some(1_700_000_000_000));
        let mut bad = f.clone();
        bad[20] ^= 1;
        assert!(matches!(
            decode_message(&bad, None),
            Err(DecodeError::Crc { .. })
        ));
    }

    #[test]
    fn encrypted_roundtrip_all_key_sizes_and_block_alignment() {
        let h = hdr();
        for klen in [16, 24, 32] {
            let key = Key::from_bytes(&vec![0x5A; klen]).unwrap();
            for dlen in 0..40 {
                let data = if dlen == 0 {
                    String::new()
                } else {
                    "#1234|N".to_string() + &"1".repeat(dlen)
                };
                let m = Message {
                    token: Token::SiaDcs,
                    seq: Seq::new(9999).unwrap(),
                    header: &h,
                    data: &data,
                    timestamp_ms: 1_600_000_000_000,
                };
                let f = encode_message(&m, Some(&key), &[0xAB; 16]).unwrap();
                let s = std::str::from_utf8(&f).unwrap();
                let hex = &s[s.find('[').unwrap() + 1..s.len() - 1];
                assert_eq!(hex.len() % 32, 0, "not whole blocks");
                let d = decode_message(&f, Some(&key)).unwrap();
                assert!(d.encrypted);
                assert_eq!(d.data, data);
                assert_eq!(d.timestamp_ms, Some(1_600_000_000_000));
            }
        }
    }

    #[test]
    fn rejects_bad_input() {
        let h = hdr();
        let mut m = Message {
            token: Token::SiaDcs,
            seq: Seq::FIRST,
            header: &h,
            data: "#1234|N]",
            timestamp_ms: 0,
        };
        assert!(matches!(
            encode_message(&m, None, &[0; 16]),
            Err(EncodeError::Data(_))
        ));
        let big = "1".repeat(5000);
        m.data = &big;
        assert!(matches!(
            encode_message(&m, None, &[0; 16]),
            Err(EncodeError::TooLong(_))
        ));
        let h2 = Header {
            receiver: Some(0x100_0000),
            ..hdr()
        };
        m.header = &h2;
        m.data = "";
        assert!(matches!(
            encode_message(&m, None, &[0; 16]),
            Err(EncodeError::Prefix(..))
        ));
    }
}
