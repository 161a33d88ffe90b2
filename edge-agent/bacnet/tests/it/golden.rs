//! Golden bytes: datagrams captured from bacpypes3 0.0.110 on loopback with
//! `tests/interop/bacnet/capture_golden.py`, and the ReadProperty example of ASHRAE 135
//! Annex F. Each is decoded and checked field by field, and re-encoded by our encoder where the
//! encoding is canonical.

use dcim_bacnet::codec::apdu::{Apdu, confirmed, unconfirmed};
use dcim_bacnet::codec::services::*;
use dcim_bacnet::codec::types::*;
use dcim_bacnet::codec::{Body, Frame, LinkKind, Npdu, decode_frame, encode_frame};

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn frame(s: &str) -> Frame {
    decode_frame(&hex(s)).unwrap().unwrap()
}

fn apdu(s: &str) -> Apdu {
    match frame(s).body {
        Body::Apdu(a) => a,
        other => panic!("not an APDU: {other:?}"),
    }
}

fn ai(i: u32) -> ObjectId {
    ObjectId::new(ObjectType::ANALOG_INPUT, i)
}

const I_AM: &str = "810a001501001000c4020004d22205c491032203e7";
const RP_ACK: &str = "810a0017010030010c0c0000000519553e444290999a3f";
const RP_ERROR: &str = "810a000d010050020c9101911f";
const RPM_ACK: &str = "810a003a010030030e0c000000051e29554e444290999a4f29753a270f5e910291325f2a270f5e910291205f1f0c014000021e29554e91014f1f";
const COV_ACK: &str = "810a00090100200405";
const COV_INITIAL: &str =
    "810a00280100100209121c020004d22c00000005393b4e09552e444290999a2f096f2e8204002f4f";
const COV_CHANGE: &str =
    "810a00280100100209121c020004d22c00000005393b4e09552e4442a000002f096f2e8204002f4f";
const WHO_IS: &str = "810a000e010010080a03e81a07d0";
const RP_REQUEST: &str = "810a001101040244000c0c000000051955";
const RPM_REQUEST: &str = "810a001e01040244010e0c000000051e0955096f1f0c014000021e09551f";
const SUBSCRIBE_COV_REQUEST: &str = "810a001601040244020509071c0000000529013a012c";

#[test]
fn ashrae_annex_f_read_property_example() {
    // 135 Annex F.3.5: ReadProperty of (analog-input, 5) present-value, answered with 72.3.
    let req = hex("00020 10c0c000000051955".replace(' ', "").as_str());
    let a = dcim_bacnet::codec::apdu::decode(&req).unwrap();
    let Apdu::ConfirmedRequest {
        invoke_id,
        service,
        data,
        max_apdu,
        ..
    } = a
    else {
        panic!("{a:?}")
    };
    assert_eq!((invoke_id, service, max_apdu), (1, 12, 206));
    let rp = ReadPropertyRequest::decode(&data).unwrap();
    assert_eq!(rp.object, ai(5));
    assert_eq!(rp.property, PropertyId::PRESENT_VALUE);

    let ack = hex("30010c0c0000000519553e444290999a3f");
    let Apdu::ComplexAck { data, .. } = dcim_bacnet::codec::apdu::decode(&ack).unwrap() else {
        panic!()
    };
    let v = ReadPropertyAck::decode(&data).unwrap();
    assert_eq!(v.value, Value::Real(72.3));
}

#[test]
fn bacpypes3_i_am() {
    let f = frame(I_AM);
    assert_eq!(f.link, LinkKind::Unicast);
    assert_eq!(f.npdu, Npdu::local(false));
    let Body::Apdu(Apdu::UnconfirmedRequest { service, data }) = &f.body else {
        panic!()
    };
    assert_eq!(*service, unconfirmed::I_AM);
    let iam = IAm::decode(data).unwrap();
    assert_eq!(
        iam,
        IAm {
            device: ObjectId::device(1234),
            max_apdu: 1476,
            segmentation: Segmentation::None,
            vendor_id: 999
        }
    );
    let mut d = Vec::new();
    iam.encode(&mut d);
    let again = encode_frame(
        false,
        &Npdu::local(false),
        &Apdu::UnconfirmedRequest {
            service: unconfirmed::I_AM,
            data: d,
        },
    );
    assert_eq!(again, hex(I_AM));
}

#[test]
fn bacpypes3_read_property_ack_and_error() {
    let Apdu::ComplexAck {
        invoke_id,
        service,
        data,
    } = apdu(RP_ACK)
    else {
        panic!()
    };
    assert_eq!((invoke_id, service), (1, confirmed::READ_PROPERTY));
    let ack = ReadPropertyAck::decode(&data).unwrap();
    assert_eq!(ack.object, ai(5));
    assert_eq!(ack.value, Value::Real(72.3));
    let mut d = Vec::new();
    ack.encode(&mut d);
    assert_eq!(d, data);

    let e = apdu(RP_ERROR);
    assert_eq!(
        e,
        Apdu::Error {
            invoke_id: 2,
            service: confirmed::READ_PROPERTY,
            error: BacnetError::unknown_object()
        }
    );
    assert_eq!(encode_frame(false, &Npdu::local(false), &e), hex(RP_ERROR));
}

#[test]
fn bacpypes3_read_property_multiple_ack_with_property_error() {
    let Apdu::ComplexAck { data, .. } = apdu(RPM_ACK) else {
        panic!()
    };
    let ack = ReadPropertyMultipleAck::decode(&data).unwrap();
    assert_eq!(ack.results.len(), 2);
    let r0 = &ack.results[0];
    assert_eq!(r0.object, ai(5));
    assert_eq!(r0.results[0].result, Ok(Value::Real(72.3)));
    // units[9999]: units is not an array.
    assert_eq!(r0.results[1].property, PropertyId::UNITS);
    assert_eq!(r0.results[1].array_index, Some(9999));
    assert_eq!(
        r0.results[1].result,
        Err(BacnetError {
            class: BacnetError::CLASS_PROPERTY,
            code: BacnetError::CODE_PROPERTY_IS_NOT_AN_ARRAY
        })
    );
    // property 9999 does not exist.
    assert_eq!(r0.results[2].property, PropertyId(9999));
    assert_eq!(r0.results[2].array_index, None);
    assert_eq!(r0.results[2].result, Err(BacnetError::unknown_property()));
    let r1 = &ack.results[1];
    assert_eq!(r1.object, ObjectId::new(ObjectType::BINARY_VALUE, 2));
    assert_eq!(r1.results[0].result, Ok(Value::Enumerated(1)));
    let mut d = Vec::new();
    ack.encode(&mut d);
    assert_eq!(d, data);
}

#[test]
fn bacpypes3_cov_ack_and_notifications() {
    assert_eq!(
        apdu(COV_ACK),
        Apdu::SimpleAck {
            invoke_id: 4,
            service: confirmed::SUBSCRIBE_COV
        }
    );
    for (s, pv) in [(COV_INITIAL, 72.3f32), (COV_CHANGE, 80.0)] {
        let Apdu::UnconfirmedRequest { service, data } = apdu(s) else {
            panic!()
        };
        assert_eq!(service, unconfirmed::UNCONFIRMED_COV_NOTIFICATION);
        let n = CovNotification::decode(&data).unwrap();
        assert_eq!(n.process_id, 18);
        assert_eq!(n.device, ObjectId::device(1234));
        assert_eq!(n.object, ai(5));
        assert!(n.time_remaining <= 60 && n.time_remaining >= 55);
        assert_eq!(
            n.value_of(PropertyId::PRESENT_VALUE),
            Some(&Value::Real(pv))
        );
        let flags = n.value_of(PropertyId::STATUS_FLAGS).unwrap();
        assert_eq!(flags, &Value::BitString(BitString::from_bits(&[false; 4])));
        let mut d = Vec::new();
        n.encode(&mut d);
        assert_eq!(d, data);
    }
}

#[test]
fn bacpypes3_client_requests_decode_and_reencode_identically() {
    // Who-Is 1000..2000
    let Apdu::UnconfirmedRequest { service, data } = apdu(WHO_IS) else {
        panic!()
    };
    assert_eq!(service, unconfirmed::WHO_IS);
    let w = WhoIs::decode(&data).unwrap();
    assert_eq!(w.range, Some((1000, 2000)));
    let mut d = Vec::new();
    w.encode(&mut d);
    assert_eq!(d, data);

    for (s, svc) in [
        (RP_REQUEST, confirmed::READ_PROPERTY),
        (RPM_REQUEST, confirmed::READ_PROPERTY_MULTIPLE),
        (SUBSCRIBE_COV_REQUEST, confirmed::SUBSCRIBE_COV),
    ] {
        let f = frame(s);
        assert!(f.npdu.expecting_reply);
        let Body::Apdu(a) = &f.body else { panic!() };
        let Apdu::ConfirmedRequest {
            segmented_response_accepted,
            max_segments,
            max_apdu,
            service,
            data,
            ..
        } = a
        else {
            panic!()
        };
        assert!(*segmented_response_accepted);
        assert_eq!((*max_segments, *max_apdu, *service), (4, 1024, svc));
        let mut d = Vec::new();
        match svc {
            confirmed::READ_PROPERTY => {
                let r = ReadPropertyRequest::decode(data).unwrap();
                assert_eq!((r.object, r.property), (ai(5), PropertyId::PRESENT_VALUE));
                r.encode(&mut d);
            }
            confirmed::READ_PROPERTY_MULTIPLE => {
                let r = ReadPropertyMultipleRequest::decode(data).unwrap();
                assert_eq!(r.specs.len(), 2);
                assert_eq!(
                    r.specs[0].properties,
                    vec![
                        PropertyReference::new(PropertyId::PRESENT_VALUE),
                        PropertyReference::new(PropertyId::STATUS_FLAGS)
                    ]
                );
                r.encode(&mut d);
            }
            _ => {
                let r = SubscribeCovRequest::decode(data).unwrap();
                assert_eq!(
                    r,
                    SubscribeCovRequest {
                        process_id: 7,
                        object: ai(5),
                        confirmed: Some(true),
                        lifetime: Some(300)
                    }
                );
                r.encode(&mut d);
            }
        }
        assert_eq!(&d, data);
        assert_eq!(encode_frame(false, &f.npdu, a), hex(s));
    }
}
