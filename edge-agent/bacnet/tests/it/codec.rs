//! Round trips and edge cases of the codec layers.

use dcim_bacnet::codec::apdu::{self, Apdu, abort_reason, confirmed};
use dcim_bacnet::codec::services::*;
use dcim_bacnet::codec::tag::{
    Reader, Writer, decode_property_value, signed_bytes, unsigned_bytes,
};
use dcim_bacnet::codec::types::*;
use dcim_bacnet::codec::{
    Body, DecodeError, LinkKind, NetAddr, Npdu, bvlc, decode_frame, encode_frame, npdu,
};
use std::net::SocketAddrV4;

fn all_primitives() -> Vec<Value> {
    vec![
        Value::Null,
        Value::Boolean(false),
        Value::Boolean(true),
        Value::Unsigned(0),
        Value::Unsigned(255),
        Value::Unsigned(256),
        Value::Unsigned(u64::MAX),
        Value::Signed(0),
        Value::Signed(-1),
        Value::Signed(127),
        Value::Signed(128),
        Value::Signed(-129),
        Value::Signed(i64::MIN),
        Value::Signed(i64::MAX),
        Value::Real(-12.25),
        Value::Double(1.0e300),
        Value::OctetString(vec![]),
        Value::OctetString((0..=255).collect()),
        Value::CharacterString(String::new()),
        Value::CharacterString("Kühlwasser 冷水".into()),
        Value::CharacterString("x".repeat(300)),
        Value::BitString(BitString::from_bits(&[true, false, true])),
        Value::BitString(BitString::from_bits(&[])),
        Value::Enumerated(0),
        Value::Enumerated(u32::MAX),
        Value::Date(Date {
            year_minus_1900: 126,
            month: 11,
            day: 22,
            weekday: 7,
        }),
        Value::Time(Time {
            hour: 23,
            minute: 59,
            second: 59,
            hundredths: 99,
        }),
        Value::ObjectId(ObjectId::new(ObjectType(1023), ObjectId::MAX_INSTANCE)),
    ]
}

#[test]
fn application_values_round_trip() {
    for v in all_primitives() {
        let mut buf = Vec::new();
        Writer::new(&mut buf).app_value(&v);
        let mut r = Reader::new(&buf);
        assert_eq!(r.app_value().unwrap(), v, "{buf:02x?}");
        assert!(r.is_empty());
    }
}

#[test]
fn known_primitive_encodings() {
    let enc = |v: Value| {
        let mut b = Vec::new();
        Writer::new(&mut b).app_value(&v);
        b
    };
    // Clause 20.2 examples.
    assert_eq!(enc(Value::Null), [0x00]);
    assert_eq!(enc(Value::Boolean(true)), [0x11]);
    assert_eq!(enc(Value::Unsigned(72)), [0x21, 0x48]);
    assert_eq!(enc(Value::Signed(72)), [0x31, 0x48]);
    assert_eq!(enc(Value::Real(72.0)), [0x44, 0x42, 0x90, 0x00, 0x00]);
    assert_eq!(
        enc(Value::CharacterString("This is a BACnet string!".into()))[..3],
        [0x75, 0x19, 0x00]
    );
    assert_eq!(
        enc(Value::BitString(BitString::from_bits(&[
            true, false, true, false, true
        ]))),
        [0x82, 0x03, 0xA8]
    );
    assert_eq!(enc(Value::Enumerated(0)), [0x91, 0x00]);
    assert_eq!(
        enc(Value::ObjectId(ObjectId::new(ObjectType::BINARY_INPUT, 15))),
        [0xC4, 0x00, 0xC0, 0x00, 0x0F]
    );
    assert_eq!(unsigned_bytes(0), [0]);
    assert_eq!(unsigned_bytes(0x1_0000), [1, 0, 0]);
    assert_eq!(signed_bytes(-1), [0xFF]);
    assert_eq!(signed_bytes(-128), [0x80]);
    assert_eq!(signed_bytes(128), [0x00, 0x80]);
}

#[test]
fn extended_tag_numbers_and_lengths() {
    let mut b = Vec::new();
    let mut w = Writer::new(&mut b);
    w.context_unsigned(20, 5);
    w.opening(33);
    w.closing(33);
    let mut r = Reader::new(&b);
    assert_eq!(r.context_unsigned(20).unwrap(), 5);
    r.opening(33).unwrap();
    r.closing(33).unwrap();
    assert!(r.is_empty());

    // A length of 254 needs the 2-octet extended length form.
    let long = Value::OctetString(vec![7; 70_000]);
    let mut b = Vec::new();
    Writer::new(&mut b).app_value(&long);
    assert_eq!(&b[..2], &[0x65, 255]);
    assert_eq!(Reader::new(&b).app_value().unwrap(), long);
}

#[test]
fn decoder_rejects_bad_primitives() {
    assert_eq!(
        Reader::new(&[0x44, 0, 0]).app_value(),
        Err(DecodeError::Truncated)
    );
    assert!(
        Reader::new(&[0x43, 0, 0, 0]).app_value().is_err(),
        "real of 3 octets"
    );
    assert!(Reader::new(&[0x12]).app_value().is_err(), "boolean value 2");
    assert!(
        Reader::new(&[0x82, 0x08, 0x00]).app_value().is_err(),
        "8 unused bits"
    );
    assert!(
        Reader::new(&[0x72, 0x09, 0x41]).app_value().is_err(),
        "unknown charset"
    );
    assert!(
        Reader::new(&[0x72, 0x00, 0xFF]).app_value().is_err(),
        "invalid UTF-8"
    );
    assert!(Reader::new(&[0xD0]).app_value().is_err(), "reserved tag 13");
    assert!(
        Reader::new(&[0x1E]).app_value().is_err(),
        "opening tag is not a value"
    );
    assert!(
        Reader::new(&[0x2D, 0x09, 0, 0, 0, 0, 0, 0, 0, 0, 1])
            .context_unsigned(2)
            .is_err(),
        "unsigned of 9 octets"
    );
}

#[test]
fn property_values_lists_and_constructed() {
    let list = Value::List(vec![
        Value::ObjectId(ObjectId::device(1)),
        Value::ObjectId(ObjectId::new(ObjectType::ANALOG_INPUT, 1)),
    ]);
    let mut b = Vec::new();
    Writer::new(&mut b).app_value(&list);
    assert_eq!(decode_property_value(&b).unwrap(), list);
    assert_eq!(decode_property_value(&[]).unwrap(), Value::List(vec![]));
    // context-tagged content is kept raw but must be well formed
    let raw = vec![0x0E, 0x09, 0x01, 0x0F];
    assert_eq!(
        decode_property_value(&raw).unwrap(),
        Value::Constructed(raw.clone())
    );
    assert!(decode_property_value(&[0x0E, 0x09, 0x01]).is_err());
    assert!(decode_property_value(&[0x0E, 0x1F]).is_err());
}

#[test]
fn npdu_with_network_addresses_round_trips() {
    let n = Npdu {
        expecting_reply: true,
        priority: 3,
        destination: Some(NetAddr {
            net: 5,
            mac: vec![10, 0, 0, 7, 0xBA, 0xC0],
        }),
        source: Some(NetAddr {
            net: 9,
            mac: vec![0x42],
        }),
        hop_count: Some(254),
        network_message: None,
    };
    let mut b = Vec::new();
    npdu::encode(&n, &mut b);
    b.extend_from_slice(&[0x10, 0x08]);
    let (d, rest) = npdu::decode(&b).unwrap();
    assert_eq!(d, n);
    assert_eq!(rest, &[0x10, 0x08]);
    // A network layer message (Who-Is-Router-To-Network) is reported, not parsed as an APDU.
    let f = decode_frame(&[0x81, 0x0B, 0x00, 0x07, 0x01, 0x80, 0x00])
        .unwrap()
        .unwrap();
    assert_eq!(f.body, Body::NetworkMessage(0));
    assert!(npdu::decode(&[0x02, 0x00]).is_err(), "version 2");
    assert!(npdu::decode(&[0x01, 0x20, 0x00]).is_err(), "truncated DNET");
}

#[test]
fn bvlc_functions() {
    let origin: SocketAddrV4 = "192.168.1.20:47808".parse().unwrap();
    let body = [0x01, 0x00, 0x10, 0x08];
    let f = bvlc::encode_forwarded(origin, &body);
    assert_eq!(&f[..4], &[0x81, 0x04, 0x00, 14]);
    let fr = decode_frame(&f).unwrap().unwrap();
    assert_eq!(fr.link, LinkKind::Forwarded { origin });
    assert_eq!(
        decode_frame(&bvlc::encode_broadcast(&body))
            .unwrap()
            .unwrap()
            .link,
        LinkKind::Broadcast
    );
    // BVLC-Result carries no NPDU.
    assert_eq!(
        decode_frame(&[0x81, 0x00, 0x00, 0x06, 0x00, 0x30]).unwrap(),
        None
    );
    // Length field larger than the datagram.
    assert!(bvlc::decode(&[0x81, 0x0A, 0x00, 0x09, 0x01, 0x00]).is_err());
    // BACnet/IPv6 frames are not ours.
    assert!(bvlc::decode(&[0x82, 0x0A, 0x00, 0x04]).is_err());
}

#[test]
fn apdu_types_round_trip() {
    let all = vec![
        Apdu::ConfirmedRequest {
            segmented_response_accepted: true,
            max_segments: 2,
            max_apdu: 480,
            invoke_id: 9,
            service: confirmed::READ_PROPERTY,
            data: vec![0x0C, 0, 0, 0, 1, 0x19, 0x55],
        },
        Apdu::UnconfirmedRequest {
            service: 8,
            data: vec![],
        },
        Apdu::SimpleAck {
            invoke_id: 1,
            service: 5,
        },
        Apdu::ComplexAck {
            invoke_id: 2,
            service: 14,
            data: vec![1, 2],
        },
        Apdu::SegmentedComplexAck {
            invoke_id: 3,
            sequence_number: 0,
            more_follows: true,
            service: 14,
        },
        Apdu::SegmentAck {
            invoke_id: 3,
            sequence_number: 0,
            window: 1,
            nak: false,
            server: false,
        },
        Apdu::Error {
            invoke_id: 4,
            service: 12,
            error: BacnetError::unknown_property(),
        },
        Apdu::Reject {
            invoke_id: 5,
            reason: 9,
        },
        Apdu::Abort {
            server: true,
            invoke_id: 6,
            reason: abort_reason::SEGMENTATION_NOT_SUPPORTED,
        },
    ];
    for a in all {
        let mut b = Vec::new();
        apdu::encode(&a, &mut b);
        assert_eq!(apdu::decode(&b).unwrap(), a);
        let frame = encode_frame(false, &Npdu::local(false), &a);
        assert_eq!(decode_frame(&frame).unwrap().unwrap().body, Body::Apdu(a));
    }
}

#[test]
fn services_round_trip() {
    let rpm = ReadPropertyMultipleRequest {
        specs: vec![ReadAccessSpec {
            object: ObjectId::device(77),
            properties: vec![
                PropertyReference::new(PropertyId::OBJECT_NAME),
                PropertyReference {
                    property: PropertyId::OBJECT_LIST,
                    array_index: Some(0),
                },
            ],
        }],
    };
    let mut b = Vec::new();
    rpm.encode(&mut b);
    assert_eq!(ReadPropertyMultipleRequest::decode(&b).unwrap(), rpm);

    let ack = ReadPropertyMultipleAck {
        results: vec![ReadAccessResult {
            object: ObjectId::device(77),
            results: vec![
                ReadResultItem {
                    property: PropertyId::OBJECT_NAME,
                    array_index: None,
                    result: Ok(Value::CharacterString("plant".into())),
                },
                ReadResultItem {
                    property: PropertyId::OBJECT_LIST,
                    array_index: Some(0),
                    result: Err(BacnetError::unknown_property()),
                },
            ],
        }],
    };
    let mut b = Vec::new();
    ack.encode(&mut b);
    assert_eq!(ReadPropertyMultipleAck::decode(&b).unwrap(), ack);

    let cancel = SubscribeCovRequest {
        process_id: 3,
        object: ObjectId::new(ObjectType::BINARY_INPUT, 4),
        confirmed: None,
        lifetime: None,
    };
    let mut b = Vec::new();
    cancel.encode(&mut b);
    let d = SubscribeCovRequest::decode(&b).unwrap();
    assert!(d.is_cancellation());

    let n = CovNotification {
        process_id: 1,
        device: ObjectId::device(2),
        object: ObjectId::new(ObjectType::ANALOG_VALUE, 3),
        time_remaining: 0,
        values: vec![PropertyValue {
            property: PropertyId::PRESENT_VALUE,
            array_index: Some(1),
            value: Value::Real(1.5),
            priority: Some(8),
        }],
    };
    let mut b = Vec::new();
    n.encode(&mut b);
    assert_eq!(CovNotification::decode(&b).unwrap(), n);

    assert_eq!(WhoIs::decode(&[]).unwrap().range, None);
    assert!(
        WhoIs::decode(&[0x09, 0x01]).is_err(),
        "low limit without high limit"
    );
    assert!(ReadPropertyMultipleRequest::decode(&[]).is_err());
    assert!(
        ReadPropertyRequest::decode(&[0x0C, 0, 0, 0, 1, 0x19, 0x55, 0x00]).is_err(),
        "trailing byte"
    );
}

#[test]
fn names_and_point_values() {
    let id: ObjectId = "analog-input,5".parse().unwrap();
    assert_eq!(id, ObjectId::new(ObjectType::ANALOG_INPUT, 5));
    assert_eq!(
        "binary-value:2".parse::<ObjectId>().unwrap().object_type,
        ObjectType::BINARY_VALUE
    );
    assert_eq!(
        "130,7".parse::<ObjectId>().unwrap().object_type,
        ObjectType(130)
    );
    assert_eq!(id.to_string().parse::<ObjectId>().unwrap(), id);
    let err = "analog-inptu,5".parse::<ObjectId>().unwrap_err();
    assert!(err.contains("unknown object type"), "{err}");
    assert!("analog-input,4194304".parse::<ObjectId>().is_err());
    assert!("analog-input".parse::<ObjectId>().is_err());
    assert_eq!(
        PropertyId::from_name("present-value"),
        Some(PropertyId::PRESENT_VALUE)
    );
    assert_eq!(
        PropertyId::from_name("status-flags"),
        Some(PropertyId::STATUS_FLAGS)
    );
    assert_eq!(PropertyId::from_name("512"), Some(PropertyId(512)));
    assert_eq!(PropertyId::from_name("present_value"), None);
    use dcim_points::Value as P;
    assert_eq!(Value::Real(1.5).to_point_value(), Some(P::Number(1.5)));
    assert_eq!(Value::Enumerated(1).to_point_value(), Some(P::Number(1.0)));
    assert_eq!(Value::Boolean(true).to_point_value(), Some(P::Bool(true)));
    assert_eq!(
        Value::CharacterString("x".into()).to_point_value(),
        Some(P::Text("x".into()))
    );
    assert_eq!(Value::Null.to_point_value(), None);
}
