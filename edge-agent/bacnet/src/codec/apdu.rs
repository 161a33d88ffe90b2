//! Application layer PDU headers (ASHRAE 135 clause 20.1). Service parameters stay encoded
//! here; `services` decodes them.

use super::DecodeError;
use super::tag::Reader;
use super::types::BacnetError;

/// Confirmed service choices used by this crate.
pub mod confirmed {
    pub const CONFIRMED_COV_NOTIFICATION: u8 = 1;
    pub const SUBSCRIBE_COV: u8 = 5;
    pub const READ_PROPERTY: u8 = 12;
    pub const READ_PROPERTY_MULTIPLE: u8 = 14;
    pub const WRITE_PROPERTY: u8 = 15;
}

/// Unconfirmed service choices used by this crate.
pub mod unconfirmed {
    pub const I_AM: u8 = 0;
    pub const I_HAVE: u8 = 1;
    pub const UNCONFIRMED_COV_NOTIFICATION: u8 = 2;
    pub const WHO_HAS: u8 = 7;
    pub const WHO_IS: u8 = 8;
}

/// Reject reasons (clause 21, BACnetRejectReason).
pub mod reject_reason {
    pub const OTHER: u8 = 0;
    pub const INVALID_PARAMETER_DATA_TYPE: u8 = 3;
    pub const INVALID_TAG: u8 = 4;
    pub const MISSING_REQUIRED_PARAMETER: u8 = 5;
    pub const UNRECOGNIZED_SERVICE: u8 = 9;
}

/// Abort reasons (clause 21, BACnetAbortReason).
pub mod abort_reason {
    pub const OTHER: u8 = 0;
    pub const BUFFER_OVERFLOW: u8 = 1;
    pub const SEGMENTATION_NOT_SUPPORTED: u8 = 4;
}

/// Max-APDU-length-accepted codes (clause 20.1.2.5).
pub fn max_apdu_code(len: u16) -> u8 {
    match len {
        0..=127 => 0,
        128..=205 => 1,
        206..=479 => 2,
        480..=1023 => 3,
        1024..=1475 => 4,
        _ => 5,
    }
}

pub fn max_apdu_len(code: u8) -> u16 {
    match code & 0x0F {
        0 => 50,
        1 => 128,
        2 => 206,
        3 => 480,
        4 => 1024,
        _ => 1476,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Apdu {
    ConfirmedRequest {
        segmented_response_accepted: bool,
        /// Raw max-segments code (bits 6..4 of octet 1).
        max_segments: u8,
        /// Largest APDU the requester accepts, in octets.
        max_apdu: u16,
        invoke_id: u8,
        service: u8,
        data: Vec<u8>,
    },
    /// A segment of a segmented confirmed request; this crate does not reassemble requests.
    SegmentedConfirmedRequest {
        invoke_id: u8,
        sequence_number: u8,
        service: u8,
    },
    UnconfirmedRequest {
        service: u8,
        data: Vec<u8>,
    },
    SimpleAck {
        invoke_id: u8,
        service: u8,
    },
    ComplexAck {
        invoke_id: u8,
        service: u8,
        data: Vec<u8>,
    },
    /// A segment of a segmented Complex-ACK; the client answers it with an Abort
    /// (segmentation-not-supported) and reports the condition to the caller.
    SegmentedComplexAck {
        invoke_id: u8,
        sequence_number: u8,
        more_follows: bool,
        service: u8,
    },
    SegmentAck {
        invoke_id: u8,
        sequence_number: u8,
        window: u8,
        nak: bool,
        server: bool,
    },
    Error {
        invoke_id: u8,
        service: u8,
        error: BacnetError,
    },
    Reject {
        invoke_id: u8,
        reason: u8,
    },
    Abort {
        server: bool,
        invoke_id: u8,
        reason: u8,
    },
}

impl Apdu {
    /// The invoke id of any PDU that belongs to a confirmed transaction.
    pub fn invoke_id(&self) -> Option<u8> {
        match *self {
            Apdu::ConfirmedRequest { invoke_id, .. }
            | Apdu::SegmentedConfirmedRequest { invoke_id, .. }
            | Apdu::SimpleAck { invoke_id, .. }
            | Apdu::ComplexAck { invoke_id, .. }
            | Apdu::SegmentedComplexAck { invoke_id, .. }
            | Apdu::SegmentAck { invoke_id, .. }
            | Apdu::Error { invoke_id, .. }
            | Apdu::Reject { invoke_id, .. }
            | Apdu::Abort { invoke_id, .. } => Some(invoke_id),
            Apdu::UnconfirmedRequest { .. } => None,
        }
    }

    /// True for PDUs a server sends back to a client (acks, errors, rejects, server aborts).
    pub fn is_response(&self) -> bool {
        matches!(
            self,
            Apdu::SimpleAck { .. }
                | Apdu::ComplexAck { .. }
                | Apdu::SegmentedComplexAck { .. }
                | Apdu::Error { .. }
                | Apdu::Reject { .. }
                | Apdu::Abort { server: true, .. }
        )
    }
}

pub fn decode(buf: &[u8]) -> Result<Apdu, DecodeError> {
    let mut r = Reader::new(buf);
    let b0 = r.u8()?;
    let pdu_type = b0 >> 4;
    Ok(match pdu_type {
        0 => {
            let segmented = b0 & 0x08 != 0;
            let b1 = r.u8()?;
            let invoke_id = r.u8()?;
            if segmented {
                let sequence_number = r.u8()?;
                let _window = r.u8()?;
                let service = r.u8()?;
                return Ok(Apdu::SegmentedConfirmedRequest {
                    invoke_id,
                    sequence_number,
                    service,
                });
            }
            let service = r.u8()?;
            Apdu::ConfirmedRequest {
                segmented_response_accepted: b0 & 0x02 != 0,
                max_segments: (b1 >> 4) & 0x07,
                max_apdu: max_apdu_len(b1 & 0x0F),
                invoke_id,
                service,
                data: r.remaining().to_vec(),
            }
        }
        1 => {
            let service = r.u8()?;
            Apdu::UnconfirmedRequest {
                service,
                data: r.remaining().to_vec(),
            }
        }
        2 => Apdu::SimpleAck {
            invoke_id: r.u8()?,
            service: r.u8()?,
        },
        3 => {
            let invoke_id = r.u8()?;
            if b0 & 0x08 != 0 {
                let sequence_number = r.u8()?;
                let _window = r.u8()?;
                let service = r.u8()?;
                return Ok(Apdu::SegmentedComplexAck {
                    invoke_id,
                    sequence_number,
                    more_follows: b0 & 0x04 != 0,
                    service,
                });
            }
            let service = r.u8()?;
            Apdu::ComplexAck {
                invoke_id,
                service,
                data: r.remaining().to_vec(),
            }
        }
        4 => Apdu::SegmentAck {
            nak: b0 & 0x02 != 0,
            server: b0 & 0x01 != 0,
            invoke_id: r.u8()?,
            sequence_number: r.u8()?,
            window: r.u8()?,
        },
        5 => {
            let invoke_id = r.u8()?;
            let service = r.u8()?;
            Apdu::Error {
                invoke_id,
                service,
                error: decode_error_body(r.remaining())?,
            }
        }
        6 => Apdu::Reject {
            invoke_id: r.u8()?,
            reason: r.u8()?,
        },
        7 => Apdu::Abort {
            server: b0 & 0x01 != 0,
            invoke_id: r.u8()?,
            reason: r.u8()?,
        },
        _ => return Err(DecodeError::Invalid("reserved APDU type")),
    })
}

/// Decodes `error-class, error-code` (two application enumerations), also when they are wrapped
/// in context tag 0 as in the constructed error types of some services.
fn decode_error_body(buf: &[u8]) -> Result<BacnetError, DecodeError> {
    let mut r = Reader::new(buf);
    let wrapped = r.next_is_opening(0);
    if wrapped {
        r.opening(0)?;
    }
    let class = enumerated(&mut r)?;
    let code = enumerated(&mut r)?;
    if wrapped {
        r.closing(0)?;
    }
    Ok(BacnetError { class, code })
}

fn enumerated(r: &mut Reader<'_>) -> Result<u32, DecodeError> {
    match r.app_value()? {
        super::types::Value::Enumerated(e) => Ok(e),
        _ => Err(DecodeError::Invalid(
            "expected an enumerated error class/code",
        )),
    }
}

pub fn encode(apdu: &Apdu, out: &mut Vec<u8>) {
    use super::tag::Writer;
    match apdu {
        Apdu::ConfirmedRequest {
            segmented_response_accepted,
            max_segments,
            max_apdu,
            invoke_id,
            service,
            data,
        } => {
            out.push(if *segmented_response_accepted {
                0x02
            } else {
                0x00
            });
            out.push(((max_segments & 0x07) << 4) | max_apdu_code(*max_apdu));
            out.push(*invoke_id);
            out.push(*service);
            out.extend_from_slice(data);
        }
        Apdu::SegmentedConfirmedRequest {
            invoke_id,
            sequence_number,
            service,
        } => {
            out.extend_from_slice(&[0x0C, 0x05, *invoke_id, *sequence_number, 1, *service]);
        }
        Apdu::UnconfirmedRequest { service, data } => {
            out.push(0x10);
            out.push(*service);
            out.extend_from_slice(data);
        }
        Apdu::SimpleAck { invoke_id, service } => {
            out.extend_from_slice(&[0x20, *invoke_id, *service]);
        }
        Apdu::ComplexAck {
            invoke_id,
            service,
            data,
        } => {
            out.extend_from_slice(&[0x30, *invoke_id, *service]);
            out.extend_from_slice(data);
        }
        Apdu::SegmentedComplexAck {
            invoke_id,
            sequence_number,
            more_follows,
            service,
        } => {
            let b0 = 0x38 | if *more_follows { 0x04 } else { 0 };
            out.extend_from_slice(&[b0, *invoke_id, *sequence_number, 1, *service]);
        }
        Apdu::SegmentAck {
            invoke_id,
            sequence_number,
            window,
            nak,
            server,
        } => {
            let b0 = 0x40 | if *nak { 0x02 } else { 0 } | if *server { 0x01 } else { 0 };
            out.extend_from_slice(&[b0, *invoke_id, *sequence_number, *window]);
        }
        Apdu::Error {
            invoke_id,
            service,
            error,
        } => {
            out.extend_from_slice(&[0x50, *invoke_id, *service]);
            let mut w = Writer::new(out);
            w.app_enumerated(error.class);
            w.app_enumerated(error.code);
        }
        Apdu::Reject { invoke_id, reason } => {
            out.extend_from_slice(&[0x60, *invoke_id, *reason]);
        }
        Apdu::Abort {
            server,
            invoke_id,
            reason,
        } => {
            out.extend_from_slice(&[0x70 | u8::from(*server), *invoke_id, *reason]);
        }
    }
}
