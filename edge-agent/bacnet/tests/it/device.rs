//! The pure device model: requests in, datagrams out, no sockets.

use dcim_bacnet::codec::apdu::{Apdu, abort_reason, confirmed, reject_reason, unconfirmed};
use dcim_bacnet::codec::services::*;
use dcim_bacnet::codec::types::*;
use dcim_bacnet::codec::{Body, Frame, NetAddr, Npdu, decode_frame, encode_frame};
use dcim_bacnet::device::{Device, Object, Outgoing, StatusFlags};
use std::net::SocketAddr;

const PEER: &str = "127.0.0.1:40000";

fn peer() -> SocketAddr {
    PEER.parse().unwrap()
}

fn ai(i: u32) -> ObjectId {
    ObjectId::new(ObjectType::ANALOG_INPUT, i)
}
fn bi(i: u32) -> ObjectId {
    ObjectId::new(ObjectType::BINARY_INPUT, i)
}

fn device() -> Device {
    let mut d = Device::new(2001, "plant");
    d.add_object(Object::analog(
        ai(1),
        "CHWS temp",
        7.0,
        units::DEGREES_CELSIUS,
        0.5,
    ))
    .unwrap();
    d.add_object(Object::binary(bi(1), "running", true))
        .unwrap();
    d.add_object(Object::analog(
        ObjectId::new(ObjectType::ANALOG_VALUE, 1),
        "setpoint",
        6.5,
        units::DEGREES_CELSIUS,
        0.1,
    ))
    .unwrap();
    d.add_object(Object::binary(
        ObjectId::new(ObjectType::BINARY_VALUE, 1),
        "enable",
        false,
    ))
    .unwrap();
    d
}

fn confirmed_req(invoke_id: u8, service: u8, params: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut data = Vec::new();
    params(&mut data);
    encode_frame(
        false,
        &Npdu::local(true),
        &Apdu::ConfirmedRequest {
            segmented_response_accepted: false,
            max_segments: 0,
            max_apdu: 1476,
            invoke_id,
            service,
            data,
        },
    )
}

fn parse(o: &Outgoing) -> (Frame, Apdu) {
    let f = decode_frame(&o.bytes).unwrap().unwrap();
    let Body::Apdu(a) = f.body.clone() else {
        panic!()
    };
    (f, a)
}

fn rpm(d: &mut Device, specs: Vec<ReadAccessSpec>) -> ReadPropertyMultipleAck {
    let out = d.handle(
        peer(),
        &confirmed_req(1, confirmed::READ_PROPERTY_MULTIPLE, |b| {
            ReadPropertyMultipleRequest { specs }.encode(b)
        }),
        0,
    );
    assert_eq!(out.len(), 1);
    let (_, a) = parse(&out[0]);
    let Apdu::ComplexAck { data, .. } = a else {
        panic!("{a:?}")
    };
    ReadPropertyMultipleAck::decode(&data).unwrap()
}

#[test]
fn who_is_answers_in_range_only() {
    let mut d = device();
    let who = |range| {
        let mut data = Vec::new();
        WhoIs { range }.encode(&mut data);
        encode_frame(
            true,
            &Npdu::local(false),
            &Apdu::UnconfirmedRequest {
                service: unconfirmed::WHO_IS,
                data,
            },
        )
    };
    let out = d.handle(peer(), &who(None), 0);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].to, peer());
    let (_, a) = parse(&out[0]);
    let Apdu::UnconfirmedRequest { service, data } = a else {
        panic!()
    };
    assert_eq!(service, unconfirmed::I_AM);
    assert_eq!(IAm::decode(&data).unwrap().device, ObjectId::device(2001));
    assert_eq!(d.handle(peer(), &who(Some((2000, 2001))), 0).len(), 1);
    assert!(d.handle(peer(), &who(Some((1, 2000))), 0).is_empty());
}

#[test]
fn read_property_values_arrays_and_errors() {
    let mut d = device();
    assert_eq!(
        d.read_property(ai(1), PropertyId::PRESENT_VALUE, None),
        Ok(Value::Real(7.0))
    );
    assert_eq!(
        d.read_property(ai(1), PropertyId::UNITS, None),
        Ok(Value::Enumerated(units::DEGREES_CELSIUS))
    );
    assert_eq!(
        d.read_property(ObjectId::device(2001), PropertyId::OBJECT_LIST, Some(0)),
        Ok(Value::Unsigned(5))
    );
    assert_eq!(
        d.read_property(
            ObjectId::device(ObjectId::MAX_INSTANCE),
            PropertyId::OBJECT_LIST,
            Some(1)
        ),
        Ok(Value::ObjectId(ObjectId::device(2001)))
    );
    assert_eq!(
        d.read_property(ai(9), PropertyId::PRESENT_VALUE, None),
        Err(BacnetError::unknown_object())
    );
    assert_eq!(
        d.read_property(bi(1), PropertyId::UNITS, None),
        Err(BacnetError::unknown_property())
    );
    assert_eq!(
        d.read_property(ai(1), PropertyId::PRESENT_VALUE, Some(1))
            .unwrap_err()
            .code,
        BacnetError::CODE_PROPERTY_IS_NOT_AN_ARRAY
    );

    // Over the wire: an Error PDU for an unknown object.
    let out = d.handle(
        peer(),
        &confirmed_req(7, confirmed::READ_PROPERTY, |b| {
            ReadPropertyRequest {
                object: ai(9),
                property: PropertyId::PRESENT_VALUE,
                array_index: None,
            }
            .encode(b)
        }),
        0,
    );
    assert_eq!(
        parse(&out[0]).1,
        Apdu::Error {
            invoke_id: 7,
            service: confirmed::READ_PROPERTY,
            error: BacnetError::unknown_object()
        }
    );
}

#[test]
fn read_property_multiple_with_per_property_errors_and_all() {
    let mut d = device();
    let ack = rpm(
        &mut d,
        vec![
            ReadAccessSpec {
                object: ai(1),
                properties: vec![
                    PropertyReference::new(PropertyId::PRESENT_VALUE),
                    PropertyReference::new(PropertyId::STATUS_FLAGS),
                    PropertyReference::new(PropertyId(9999)),
                ],
            },
            ReadAccessSpec {
                object: ai(42),
                properties: vec![PropertyReference::new(PropertyId::PRESENT_VALUE)],
            },
            ReadAccessSpec {
                object: bi(1),
                properties: vec![PropertyReference::new(PropertyId::ALL)],
            },
        ],
    );
    let r = &ack.results;
    assert_eq!(r[0].results[0].result, Ok(Value::Real(7.0)));
    assert_eq!(
        r[0].results[1].result,
        Ok(StatusFlags::default().to_value())
    );
    assert_eq!(r[0].results[2].result, Err(BacnetError::unknown_property()));
    assert_eq!(r[1].results[0].result, Err(BacnetError::unknown_object()));
    let names: Vec<_> = r[2].results.iter().map(|i| i.property).collect();
    assert!(names.contains(&PropertyId::OBJECT_NAME));
    assert!(names.contains(&PropertyId::POLARITY));
    assert!(r[2].results.iter().all(|i| i.result.is_ok()));
}

#[test]
fn subscribe_cov_sends_initial_and_increment_notifications_until_expiry() {
    let mut d = device();
    let sub = |pid, lifetime| {
        confirmed_req(3, confirmed::SUBSCRIBE_COV, |b| {
            SubscribeCovRequest {
                process_id: pid,
                object: ai(1),
                confirmed: Some(false),
                lifetime,
            }
            .encode(b)
        })
    };
    let out = d.handle(peer(), &sub(11, Some(10)), 1000);
    assert_eq!(out.len(), 2, "ack then initial notification");
    assert_eq!(
        parse(&out[0]).1,
        Apdu::SimpleAck {
            invoke_id: 3,
            service: confirmed::SUBSCRIBE_COV
        }
    );
    let note = |o: &Outgoing| {
        let (_, a) = parse(o);
        let Apdu::UnconfirmedRequest { service, data } = a else {
            panic!("{a:?}")
        };
        assert_eq!(service, unconfirmed::UNCONFIRMED_COV_NOTIFICATION);
        CovNotification::decode(&data).unwrap()
    };
    let n = note(&out[1]);
    assert_eq!(n.process_id, 11);
    assert_eq!(n.time_remaining, 10);
    assert_eq!(
        n.value_of(PropertyId::PRESENT_VALUE),
        Some(&Value::Real(7.0))
    );

    // Below the increment (0.5): nothing. At it: a notification.
    assert!(
        d.set_present_value(ai(1), Value::Real(7.4), 2000)
            .unwrap()
            .is_empty()
    );
    let out = d.set_present_value(ai(1), Value::Real(7.5), 3000).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].to, peer());
    assert_eq!(
        note(&out[0]).value_of(PropertyId::PRESENT_VALUE),
        Some(&Value::Real(7.5))
    );
    assert_eq!(note(&out[0]).time_remaining, 8);
    // Status flags change always notifies.
    let flags = StatusFlags {
        fault: true,
        ..Default::default()
    };
    assert_eq!(d.set_status_flags(ai(1), flags, 4000).unwrap().len(), 1);
    // Renewal keeps one subscription.
    d.handle(peer(), &sub(11, Some(10)), 5000);
    assert_eq!(d.subscriptions().len(), 1);
    // Expired at 15000.
    assert!(
        d.set_present_value(ai(1), Value::Real(20.0), 15_000)
            .unwrap()
            .is_empty()
    );
    assert!(d.subscriptions().is_empty());

    // Cancellation.
    d.handle(peer(), &sub(12, None), 16_000);
    assert_eq!(d.subscriptions().len(), 1, "no lifetime means indefinite");
    let cancel = confirmed_req(4, confirmed::SUBSCRIBE_COV, |b| {
        SubscribeCovRequest {
            process_id: 12,
            object: ai(1),
            confirmed: None,
            lifetime: None,
        }
        .encode(b)
    });
    let out = d.handle(peer(), &cancel, 17_000);
    assert_eq!(out.len(), 1);
    assert!(d.subscriptions().is_empty());
}

#[test]
fn binary_cov_and_confirmed_notifications() {
    let mut d = device();
    let req = confirmed_req(1, confirmed::SUBSCRIBE_COV, |b| {
        SubscribeCovRequest {
            process_id: 1,
            object: bi(1),
            confirmed: Some(true),
            lifetime: Some(60),
        }
        .encode(b)
    });
    let out = d.handle(peer(), &req, 0);
    let (f, a) = parse(&out[1]);
    assert!(f.npdu.expecting_reply);
    assert!(matches!(
        a,
        Apdu::ConfirmedRequest {
            service: confirmed::CONFIRMED_COV_NOTIFICATION,
            ..
        }
    ));
    assert!(
        d.set_present_value(bi(1), Value::Enumerated(1), 1)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        d.set_present_value(bi(1), Value::Enumerated(0), 2)
            .unwrap()
            .len(),
        1
    );
    assert!(
        d.set_present_value(bi(1), Value::Real(1.0), 3).is_err(),
        "wrong type"
    );
    // Subscribing to an unknown object is an error.
    let req = confirmed_req(2, confirmed::SUBSCRIBE_COV, |b| {
        SubscribeCovRequest {
            process_id: 1,
            object: ai(99),
            confirmed: Some(false),
            lifetime: Some(60),
        }
        .encode(b)
    });
    let out = d.handle(peer(), &req, 0);
    assert!(matches!(parse(&out[0]).1, Apdu::Error { .. }));
}

#[test]
fn oversized_response_aborts_and_unknown_service_is_rejected() {
    let mut d = device();
    for i in 2..200 {
        d.add_object(Object::analog(
            ai(i),
            &format!("sensor with a long name {i}"),
            1.0,
            62,
            1.0,
        ))
        .unwrap();
    }
    let req = encode_frame(
        false,
        &Npdu::local(true),
        &Apdu::ConfirmedRequest {
            segmented_response_accepted: false,
            max_segments: 0,
            max_apdu: 206,
            invoke_id: 5,
            service: confirmed::READ_PROPERTY,
            data: {
                let mut b = Vec::new();
                ReadPropertyRequest {
                    object: ObjectId::device(2001),
                    property: PropertyId::OBJECT_LIST,
                    array_index: None,
                }
                .encode(&mut b);
                b
            },
        },
    );
    let out = d.handle(peer(), &req, 0);
    assert_eq!(
        parse(&out[0]).1,
        Apdu::Abort {
            server: true,
            invoke_id: 5,
            reason: abort_reason::SEGMENTATION_NOT_SUPPORTED
        }
    );
    let out = d.handle(
        peer(),
        &confirmed_req(6, confirmed::WRITE_PROPERTY, |_| {}),
        0,
    );
    assert_eq!(
        parse(&out[0]).1,
        Apdu::Reject {
            invoke_id: 6,
            reason: reject_reason::UNRECOGNIZED_SERVICE
        }
    );
    // Garbage parameters are rejected, not answered with a made-up value.
    let out = d.handle(
        peer(),
        &confirmed_req(8, confirmed::READ_PROPERTY, |b| b.push(0xFF)),
        0,
    );
    assert!(matches!(
        parse(&out[0]).1,
        Apdu::Reject { invoke_id: 8, .. }
    ));
}

#[test]
fn routed_requests_are_answered_through_the_router() {
    let mut d = device();
    let mut npdu = Npdu::local(true);
    npdu.source = Some(NetAddr {
        net: 7,
        mac: vec![0x21],
    });
    let mut data = Vec::new();
    ReadPropertyRequest {
        object: ai(1),
        property: PropertyId::PRESENT_VALUE,
        array_index: None,
    }
    .encode(&mut data);
    let req = encode_frame(
        false,
        &npdu,
        &Apdu::ConfirmedRequest {
            segmented_response_accepted: false,
            max_segments: 0,
            max_apdu: 480,
            invoke_id: 1,
            service: confirmed::READ_PROPERTY,
            data,
        },
    );
    let out = d.handle(peer(), &req, 0);
    let (f, a) = parse(&out[0]);
    assert_eq!(
        f.npdu.destination,
        Some(NetAddr {
            net: 7,
            mac: vec![0x21]
        })
    );
    assert!(matches!(a, Apdu::ComplexAck { .. }));
    // A request routed to another network is not for us.
    let mut npdu = Npdu::local(true);
    npdu.destination = Some(NetAddr {
        net: 3,
        mac: vec![1],
    });
    npdu.hop_count = Some(255);
    let req = encode_frame(
        false,
        &npdu,
        &Apdu::UnconfirmedRequest {
            service: unconfirmed::WHO_IS,
            data: vec![],
        },
    );
    assert!(d.handle(peer(), &req, 0).is_empty());
}
