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
