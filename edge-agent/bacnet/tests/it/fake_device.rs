//! The client against a scripted raw-UDP device: segmented answers and late replies.

use dcim_bacnet::client::{BacnetClient, ClientConfig, ClientError, DeviceInfo, PropertyRef};
use dcim_bacnet::codec::apdu::{Apdu, abort_reason, confirmed};
use dcim_bacnet::codec::services::ReadPropertyAck;
use dcim_bacnet::codec::types::*;
use dcim_bacnet::codec::{Body, Npdu, decode_frame, encode_frame};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::UdpSocket;

async fn recv_request(sock: &UdpSocket) -> (SocketAddr, u8, Apdu) {
    let mut buf = [0u8; 1500];
    let (n, from) = tokio::time::timeout(Duration::from_secs(2), sock.recv_from(&mut buf))
        .await
        .expect("request")
        .unwrap();
    let f = decode_frame(&buf[..n]).unwrap().unwrap();
    let Body::Apdu(a) = f.body else { panic!() };
    (from, a.invoke_id().unwrap_or(0), a)
}

fn rp_ack(invoke_id: u8, value: f32) -> Vec<u8> {
    let mut data = Vec::new();
    ReadPropertyAck {
        object: ObjectId::new(ObjectType::ANALOG_INPUT, 1),
        property: PropertyId::PRESENT_VALUE,
        array_index: None,
        value: Value::Real(value),
    }
    .encode(&mut data);
    encode_frame(
        false,
        &Npdu::local(false),
        &Apdu::ComplexAck {
            invoke_id,
            service: confirmed::READ_PROPERTY,
            data,
        },
    )
}

async fn setup(timeout_ms: u64) -> (UdpSocket, BacnetClient, PropertyRef) {
    let dev = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let client = BacnetClient::bind_with(
        "127.0.0.1:0".parse().unwrap(),
        ClientConfig {
            timeout: Duration::from_millis(timeout_ms),
            retries: 0,
            ..ClientConfig::default()
        },
    )
    .await
    .unwrap();
    client.add_device(DeviceInfo::fixed(9, dev.local_addr().unwrap()));
    let pv = PropertyRef::present_value(ObjectId::new(ObjectType::ANALOG_INPUT, 1));
    (dev, client, pv)
}

#[tokio::test]
async fn segmented_answer_is_aborted_and_reported() {
    let (dev, client, pv) = setup(1000).await;
    let read = tokio::spawn(async move { client.read_property(9, pv).await });
    let (from, invoke_id, _) = recv_request(&dev).await;
    let seg = encode_frame(
        false,
        &Npdu::local(false),
        &Apdu::SegmentedComplexAck {
            invoke_id,
            sequence_number: 0,
            more_follows: true,
            service: confirmed::READ_PROPERTY,
        },
    );
    dev.send_to(&seg, from).await.unwrap();
    let (_, abort_id, abort) = recv_request(&dev).await;
    assert_eq!(abort_id, invoke_id);
    assert_eq!(
        abort,
        Apdu::Abort {
            server: false,
            invoke_id,
            reason: abort_reason::SEGMENTATION_NOT_SUPPORTED
        }
    );
    let res = read.await.unwrap();
    assert!(
        matches!(res, Err(ClientError::SegmentationNotSupported)),
        "{res:?}"
    );
}

#[tokio::test]
async fn late_reply_is_never_taken_for_the_next_answer() {
    let (dev, client, pv) = setup(200).await;
    let client = std::sync::Arc::new(client);
    let c = client.clone();
    let first = tokio::spawn(async move { c.read_property(9, pv).await });
    let (from, id1, _) = recv_request(&dev).await;
    // No answer in time: the first read times out.
    let res = first.await.unwrap();
    assert!(
        matches!(res, Err(ClientError::Timeout { attempts: 1, .. })),
        "{res:?}"
    );

    let c = client.clone();
    let second = tokio::spawn(async move { c.read_property(9, pv).await });
    let (_, id2, _) = recv_request(&dev).await;
    assert_ne!(id1, id2, "a fresh invoke id for a new request");
    // The late answer to the first request arrives first, then the real one.
    dev.send_to(&rp_ack(id1, 111.0), from).await.unwrap();
    dev.send_to(&rp_ack(id2, 222.0), from).await.unwrap();
    assert_eq!(second.await.unwrap().unwrap(), Value::Real(222.0));
}

#[tokio::test]
async fn retries_resend_the_same_invoke_id() {
    let dev = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let client = BacnetClient::bind_with(
        "127.0.0.1:0".parse().unwrap(),
        ClientConfig {
            timeout: Duration::from_millis(150),
            retries: 2,
            ..ClientConfig::default()
        },
    )
    .await
    .unwrap();
    client.add_device(DeviceInfo::fixed(9, dev.local_addr().unwrap()));
    let pv = PropertyRef::present_value(ObjectId::new(ObjectType::ANALOG_INPUT, 1));
    let read = tokio::spawn(async move { client.read_property(9, pv).await });
    let (_, a, _) = recv_request(&dev).await;
    let (from, b, _) = recv_request(&dev).await;
    assert_eq!(a, b);
    dev.send_to(&rp_ack(b, 5.0), from).await.unwrap();
    assert_eq!(read.await.unwrap().unwrap(), Value::Real(5.0));
}
