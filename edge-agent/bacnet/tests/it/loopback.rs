//! Client against the device server over real UDP sockets on 127.0.0.1 (ephemeral ports).

use dcim_bacnet::chiller_plant::{self, ChillerPlant};
use dcim_bacnet::client::{
    BacnetClient, ClientConfig, ClientError, CovEvent, CovOptions, PropertyRef,
};
use dcim_bacnet::codec::types::*;
use dcim_bacnet::device::{Device, Object};
use dcim_bacnet::quality::{PointTracker, QualityPolicy};
use dcim_bacnet::server::DeviceServer;
use dcim_points::Quality;
use std::net::SocketAddr;
use std::time::Duration;

const PLANT: u32 = 2001;

fn lo() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn client_for(target: SocketAddr) -> BacnetClient {
    BacnetClient::bind_with(
        lo(),
        ClientConfig {
            broadcast: target,
            // generous enough for a loaded 2-core CI machine; only the degrade part waits it out
            timeout: Duration::from_millis(500),
            retries: 1,
            ..ClientConfig::default()
        },
    )
    .await
    .unwrap()
}

/// The plant served on loopback as device `PLANT` named `name`, and a client for it.
async fn serve(plant: &ChillerPlant, name: &str) -> (DeviceServer, BacnetClient) {
    let server = DeviceServer::bind(lo(), plant.device(PLANT, name))
        .await
        .unwrap();
    let client = client_for(server.local_addr()).await;
    (server, client)
}

/// The object name of device `PLANT`, read over the network.
async fn device_name(client: &BacnetClient) -> Value {
    let name = PropertyRef::new(ObjectId::device(PLANT), PropertyId::OBJECT_NAME);
    client.read_property(PLANT, name).await.unwrap()
}

#[tokio::test]
async fn discover_read_multiple_and_degrade_when_device_stops() {
    let plant = ChillerPlant::new(2);
    let (server, client) = serve(&plant, "plant").await;

    let found = client
        .discover(None, Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].instance, PLANT);
    assert_eq!(found[0].addr, server.local_addr());
    assert_eq!(found[0].vendor_id, 999);

    let refs = [
        PropertyRef::present_value(chiller_plant::chiller_running(1)),
        PropertyRef::present_value(chiller_plant::chiller_supply_temp(1)),
        PropertyRef::new(chiller_plant::tank_level(), PropertyId::UNITS),
        PropertyRef::present_value(ObjectId::new(ObjectType::ANALOG_INPUT, 4242)),
        PropertyRef::new(chiller_plant::tank_temp(), PropertyId::OBJECT_NAME),
    ];
    let res = client.read_multiple(PLANT, &refs).await.unwrap();
    assert_eq!(res[0], Ok(Value::Enumerated(1)));
    assert_eq!(res[1], Ok(Value::Real(7.0)));
    assert_eq!(res[2], Ok(Value::Enumerated(units::PERCENT)));
    assert_eq!(res[3], Err(BacnetError::unknown_object()));
    assert_eq!(
        res[4],
        Ok(Value::CharacterString("Buffer tank temp".into()))
    );

    let name = device_name(&client).await;
    assert_eq!(name, Value::CharacterString("plant".into()));
    let err = client
        .read_property(
            PLANT,
            PropertyRef::new(ObjectId::device(PLANT), PropertyId(9999)),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Bacnet(e) if e == BacnetError::unknown_property()));

    // Quality: good, then the device stops answering.
    let mut tracker = PointTracker::new(QualityPolicy {
        comm_lost_after: 2,
        stale_after_ms: 60_000,
    });
    tracker.apply_poll(PLANT, &refs, &Ok(res), 0);
    assert_eq!(
        tracker.reading(PLANT, refs[1], 0).unwrap().quality,
        Quality::Good
    );
    assert_eq!(
        tracker.reading(PLANT, refs[3], 0).unwrap().quality,
        Quality::Bad
    );
    server.shutdown().await;
    for (i, want) in [(1u64, Quality::Stale), (2, Quality::CommLost)] {
        let outcome = client.read_multiple(PLANT, &refs).await;
        assert!(
            matches!(outcome, Err(ClientError::Timeout { attempts: 2, .. })),
            "{outcome:?}"
        );
        tracker.apply_poll(PLANT, &refs, &outcome, i * 1000);
        let r = tracker.reading(PLANT, refs[1], i * 1000).unwrap();
        assert_eq!(r.quality, want);
        assert_eq!(r.value, Some(Value::Real(7.0)));
    }
    assert!(matches!(
        client.read_multiple(7, &refs).await,
        Err(ClientError::UnknownDevice(7))
    ));
}

#[tokio::test]
async fn device_keyed_by_instance_follows_a_new_address() {
    let plant = ChillerPlant::new(1);
    let (a, client) = serve(&plant, "plant-a").await;
    let d = client
        .find_device(PLANT, a.local_addr(), Duration::from_secs(2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.addr, a.local_addr());
    a.shutdown().await;

    // Same device instance comes back on another address and announces itself.
    let b = DeviceServer::bind(lo(), plant.device(PLANT, "plant-b"))
        .await
        .unwrap();
    b.announce(client.local_addr().unwrap()).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while client.device(PLANT).unwrap().addr != b.local_addr() {
        assert!(tokio::time::Instant::now() < deadline, "I-Am not applied");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(client.devices().len(), 1);
    let name = device_name(&client).await;
    assert_eq!(name, Value::CharacterString("plant-b".into()));
}

#[tokio::test]
async fn cov_subscription_notifies_renews_and_cancels() {
    let mut plant = ChillerPlant::new(1);
    let (server, client) = serve(&plant, "plant").await;
    client
        .find_device(PLANT, server.local_addr(), Duration::from_secs(2))
        .await
        .unwrap()
        .unwrap();

    for confirmed in [false, true] {
        let obj = chiller_plant::chiller_running(1);
        let mut sub = client
            .subscribe_cov(
                PLANT,
                obj,
                CovOptions {
                    lifetime_s: 2,
                    confirmed,
                },
            )
            .await
            .unwrap();
        let initial = sub.next_notification(Duration::from_secs(2)).await.unwrap();
        assert_eq!(initial.object, obj);
        assert_eq!(initial.device, ObjectId::device(PLANT));
        assert_eq!(
            initial.value_of(PropertyId::PRESENT_VALUE),
            Some(&Value::Enumerated(1))
        );

        // Chiller trip: running goes inactive, a notification follows; after the reset, active
        // again, and a notification follows too.
        for (trip, running) in [(true, 0), (false, 1)] {
            if trip {
                plant.trip_chiller(1);
            } else {
                plant.reset_chiller(1);
            }
            plant.step(1.0);
            server
                .update(|dev, now| ((), plant.write_to(dev, now)))
                .await;
            let n = sub.next_notification(Duration::from_secs(2)).await.unwrap();
            assert_eq!(
                n.value_of(PropertyId::PRESENT_VALUE),
                Some(&Value::Enumerated(running)),
                "trip {trip}"
            );
        }

        if !confirmed {
            // Renewal at 3/4 of the 2 s lifetime keeps the subscription alive past it.
            let ev = tokio::time::timeout(Duration::from_secs(3), async {
                loop {
                    match sub.next().await {
                        Some(CovEvent::Renewed) => return true,
                        Some(CovEvent::RenewalFailed(e)) => panic!("renewal failed: {e}"),
                        Some(CovEvent::Notification(_)) => continue,
                        None => return false,
                    }
                }
            })
            .await
            .unwrap();
            assert!(ev);
            tokio::time::sleep(Duration::from_millis(800)).await;
            let now = server.now_ms();
            server
                .update(|dev, _| {
                    dev.expire(now);
                    ((), Vec::new())
                })
                .await;
            assert_eq!(server.with_device(|d| d.subscriptions().len()), 1);
        }
        sub.cancel().await.unwrap();
        assert_eq!(server.with_device(|d| d.subscriptions().len()), 0);
    }
}

#[tokio::test]
async fn long_reads_are_split_when_the_answer_would_need_segmentation() {
    let mut dev = Device::new(77, "many");
    let mut refs = Vec::new();
    for i in 0..120 {
        let id = ObjectId::new(ObjectType::ANALOG_VALUE, i);
        dev.add_object(Object::analog(
            id,
            &format!("a rather long object name to fill the APDU {i:03}"),
            i as f32,
            units::NO_UNITS,
            1.0,
        ))
        .unwrap();
        refs.push(PropertyRef::new(id, PropertyId::OBJECT_NAME));
        refs.push(PropertyRef::present_value(id));
    }
    let server = DeviceServer::bind(lo(), dev).await.unwrap();
    let client = BacnetClient::bind_with(
        lo(),
        ClientConfig {
            broadcast: server.local_addr(),
            timeout: Duration::from_millis(500),
            retries: 1,
            max_apdu: 480,
            max_properties_per_request: 200,
        },
    )
    .await
    .unwrap();
    client
        .find_device(77, server.local_addr(), Duration::from_secs(2))
        .await
        .unwrap()
        .unwrap();
    let res = client.read_multiple(77, &refs).await.unwrap();
    assert_eq!(res.len(), refs.len());
    for i in 0..120usize {
        assert_eq!(
            res[2 * i],
            Ok(Value::CharacterString(format!(
                "a rather long object name to fill the APDU {i:03}"
            )))
        );
        assert_eq!(res[2 * i + 1], Ok(Value::Real(i as f32)));
    }
}
