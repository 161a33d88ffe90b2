//! Property tests: arbitrary bytes fed to every decoder must never panic, and decoding stays
//! linear in the input (checked as "finishes", with inputs up to a few kilobytes); valid
//! messages round-trip.

use dcim_bacnet::codec::services::*;
use dcim_bacnet::codec::tag::{Reader, Writer, decode_property_value, validate_structure};
use dcim_bacnet::codec::types::*;
use dcim_bacnet::codec::{apdu, bvlc, decode_frame, npdu};
use dcim_bacnet::device::Device;
use proptest::prelude::*;

fn run_all_decoders(b: &[u8]) {
    let _ = decode_frame(b);
    let _ = bvlc::decode(b);
    let _ = npdu::decode(b);
    let _ = apdu::decode(b);
    let _ = WhoIs::decode(b);
    let _ = IAm::decode(b);
    let _ = ReadPropertyRequest::decode(b);
    let _ = ReadPropertyAck::decode(b);
    let _ = ReadPropertyMultipleRequest::decode(b);
    let _ = ReadPropertyMultipleAck::decode(b);
    let _ = SubscribeCovRequest::decode(b);
    let _ = CovNotification::decode(b);
    let _ = decode_property_value(b);
    let _ = validate_structure(b);
    let mut r = Reader::new(b);
    while !r.is_empty() && r.app_value().is_ok() {}
    let mut r = Reader::new(b);
    let _ = r.enclosed(3);
}

/// Bytes biased towards BACnet structure: a valid BVLC/NPDU/APDU prefix then random tags.
fn framed() -> impl Strategy<Value = Vec<u8>> {
    (
        0u8..8,
        any::<u8>(),
        prop::collection::vec(any::<u8>(), 0..600),
    )
        .prop_map(|(pdu_type, service, tail)| {
            let mut body = vec![0x01, 0x04, pdu_type << 4];
            if pdu_type == 0 {
                body.extend_from_slice(&[0x05, 0x01]);
            }
            body.push(service);
            body.extend_from_slice(&tail);
            bvlc::encode_unicast(&body)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn decoders_never_panic_on_arbitrary_bytes(b in prop::collection::vec(any::<u8>(), 0..2048)) {
        run_all_decoders(&b);
    }

    #[test]
    fn decoders_never_panic_on_framed_bytes(b in framed()) {
        run_all_decoders(&b);
        if b.len() > 7 {
            run_all_decoders(&b[7..]);
        }
    }

    #[test]
    fn device_never_panics_and_answers_at_most_twice(b in framed()) {
        let mut d = Device::new(1, "fuzz");
        let out = d.handle("127.0.0.1:47808".parse().unwrap(), &b, 0);
        prop_assert!(out.len() <= 2);
    }

    #[test]
    fn real_values_round_trip(x in any::<f32>().prop_filter("not NaN", |x| !x.is_nan()),
                              u in any::<u64>(), i in any::<i64>(), s in ".{0,80}") {
        for v in [Value::Real(x), Value::Unsigned(u), Value::Signed(i), Value::CharacterString(s.clone())] {
            let mut buf = Vec::new();
            Writer::new(&mut buf).app_value(&v);
            prop_assert_eq!(Reader::new(&buf).app_value().unwrap(), v);
        }
    }

    #[test]
    fn rpm_requests_round_trip(objs in prop::collection::vec((0u16..1024, 0u32..0x40_0000, prop::collection::vec((0u32..5000, prop::option::of(any::<u32>())), 1..8)), 1..8)) {
        let req = ReadPropertyMultipleRequest {
            specs: objs.into_iter().map(|(t, i, props)| ReadAccessSpec {
                object: ObjectId::new(ObjectType(t), i),
                properties: props.into_iter().map(|(p, a)| PropertyReference { property: PropertyId(p), array_index: a }).collect(),
            }).collect(),
        };
        let mut b = Vec::new();
        req.encode(&mut b);
        prop_assert_eq!(ReadPropertyMultipleRequest::decode(&b).unwrap(), req);
    }
}

#[test]
fn deep_nesting_is_rejected_quickly() {
    // 100k opening tags: must be refused at the nesting limit, not recurse or loop.
    let mut b = vec![0x3E];
    b.extend(std::iter::repeat_n(0x0E, 100_000));
    let mut r = Reader::new(&b[1..]);
    assert!(r.enclosed(3).is_err());
    assert!(validate_structure(&b).is_err());
}
