//! SIA DC-09 framing and SIA-DCS / ADM-CID event payloads (sans-IO).
//!
//! Everything here is pure: no sockets, no clocks, no randomness of its own. Time is passed in
//! as Unix milliseconds (UTC) and the random pad bytes needed by encrypted messages are passed
//! in by the caller.
//!
//! - [`frame`]: the transmitter's message block `<LF><CRC><0LLL>"id"seq R.. L.. #acct[data]_ts<CR>`
//!   ([`encode_message`]) and a decoder for it ([`decode_message`], used by tests and tools).
//! - [`response`]: the receiver's replies ACK / NAK / DUH / RSP ([`parse_response`]) and an
//!   encoder for them (for test receivers).
//! - [`crypto`]: AES-CBC with a zero IV, 128/192/256-bit keys, in the two key encodings in use.
//! - [`event`]: product event kinds with zone/rack identity, and the per-authority code table
//!   ([`CodeTable`], loadable from TOML) that turns them into SIA-DCS or ADM-CID payloads.
//! - [`timestamp`]: the `_HH:MM:SS,MM-DD-YYYY` timestamp (UTC).
//!
//! # Details
//!
//! - Frame: `<LF>CRC 0LLL"id"seq R L #acct[data]_ts<CR>`, CRC-16/ARC over the body, hex length,
//!   decimal Seq 0001-9999 wrapping to 0001; optional AES-CBC (zero IV; 1-16 random pad characters
//!   excluding `|[]`, then `|`, so the encrypted part is whole blocks; `*` on the id). The random
//!   padding comes from the caller: nothing inside reads a clock or draws randomness.
//! - Replies: an encrypted ACK must decrypt to a timestamp; a NAK must carry the receiver time;
//!   R/L of replies are not validated because pysiaalarm echoes a missing R as "None".
//! - `crypto::Key` from hex (binary key) or ASCII characters (pysiaalarm style).
//! - Codes: every stage has its own code (reasons in `codes.example.toml`), and a drill is
//!   bracketed by FI/FK (Contact ID 1604/3604). `CodeTable::fallback_payload` gives a fire alarm's
//!   generic code (`[fallback]`, default FA/FH and Contact ID 110) for a receiver that refused its
//!   own; never for a test message. Every alarm, trouble and supervisory kind has a restore.

pub mod crypto;
pub mod event;
pub mod frame;
pub mod response;
pub mod timestamp;

pub use crypto::{Key, KeyError};
pub use event::{
    CodeEntry, CodeTable, Event, EventKind, Format, Payload, PayloadError, TableError,
};
pub use frame::{
    Account, DecodeError, DecodedMessage, EncodeError, Header, Message, Seq, Token, crc16,
    decode_message, encode_message,
};
pub use response::{Response, ResponseKind, encode_response, parse_response};
