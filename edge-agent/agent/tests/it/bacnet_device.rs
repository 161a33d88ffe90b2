//! BACnet/IP devices: the agent's BACnet driver against `dcim-bacnet`'s device server hosting
//! the ready-made chiller plant, on loopback with ephemeral ports.

use crate::common;

use common::*;
use dcim_bacnet::chiller_plant::{self, ChillerPlant};
use dcim_bacnet::{BacnetClient, ClientConfig, CovEvent, CovOptions, DeviceInfo, DeviceServer};
use dcim_edge_agent::devices::bacnet::{BacnetDevice, BacnetTarget, Identity};
use dcim_points::{Quality, Value};
use dcim_profiles::PollClass;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

const PLANT_INSTANCE: u32 = 2001;

/// A profile for the chiller plant's own object map (chiller 1, the loop and the tank).
const PLANT_PROFILE: &str = r#"
[profile]
name = "chiller-plant-test"
protocol = "bacnet"
[comm]
timeout_ms = 200
retries = 0
comm_lost_after_ms = 800
[poll]
fast_ms = 100
normal_ms = 150
[[point]]
id = "chiller1_fault"
role = "chiller.fault"
object = "binary-input"
instance = 102
poll = "fast"
cov = true
[[point]]
id = "chiller1_supply"
role = "chiller.supply_temp"
object = "analog-input"
instance = 101
[[point]]
id = "tank_temp"
role = "buffer_tank.temp"
object = "analog-input"
instance = 11
[[point]]
id = "missing"
role = "buffer_tank.level_pct"
object = "analog-input"
instance = 99
"#;

async fn plant_server() -> (DeviceServer, ChillerPlant) {
    let plant = ChillerPlant::new(2);
    let server = DeviceServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        plant.device(PLANT_INSTANCE, "chiller-plant"),
    )
    .await
    .unwrap();
    (server, plant)
}

fn target(addr: SocketAddr) -> BacnetTarget {
    BacnetTarget {
        address: addr,
        instance: PLANT_INSTANCE,
        bind: "127.0.0.1:0".parse().unwrap(),
        discover: false,
    }
}

fn client_config(addr: SocketAddr) -> ClientConfig {
    ClientConfig {
        broadcast: addr,
        timeout: Duration::from_millis(200),
        retries: 0,
        ..ClientConfig::default()
    }
}

#[tokio::test]
async fn polls_cov_and_per_point_errors_go_through_the_tracker() {
    let (server, mut plant) = plant_server().await;
    let addr = server.local_addr();
    let profile = dcim_profiles::load_str("plant.toml", PLANT_PROFILE).unwrap();
    let mut dev = BacnetDevice::new("plant", target(addr), profile, 0).unwrap();
    let client = BacnetClient::bind_with("127.0.0.1:0".parse().unwrap(), client_config(addr))
        .await
        .unwrap();
    client.add_device(DeviceInfo::fixed(PLANT_INSTANCE, addr));

    let mut out = Vec::new();
    let mut now = 1000;
    for (class, _) in dev.schedule() {
        let r = client
            .read_multiple(PLANT_INSTANCE, &dev.request(class))
            .await;
        assert!(dev.on_poll(class, &r, now, &mut out).is_empty());
    }
    let get = |out: &[dcim_points::Sample], id: &str| {
        out.iter()
            .rev()
            .find(|s| s.point == id)
            .cloned()
            .unwrap_or_else(|| panic!("no sample for {id}: {out:?}"))
    };
    assert_eq!(get(&out, "online").value, Some(Value::Bool(true)));
    let fault = get(&out, "chiller1_fault");
    assert_eq!(
        (fault.quality, fault.value),
        (Quality::Good, Some(Value::Bool(false)))
    );
    let supply = get(&out, "chiller1_supply");
    assert_eq!(supply.quality, Quality::Good);
    let expected = f64::from(plant.chillers[0].supply_c);
    match supply.value {
        Some(Value::Number(v)) => assert!((v - expected).abs() < 0.01, "{v} vs {expected}"),
        other => panic!("supply: {other:?}"),
    }
    assert_eq!(get(&out, "tank_temp").quality, Quality::Good);
    // An object the device does not have: the device answers with an error for it alone.
    assert_eq!(get(&out, "missing").quality, Quality::Bad);

    // COV: the chiller trips; the notification updates the fault point without a poll.
    let object = dev.cov_objects()[0];
    assert_eq!(object, chiller_plant::chiller_fault(1));
    let mut sub = client
        .subscribe_cov(PLANT_INSTANCE, object, CovOptions::default())
        .await
        .unwrap();
    plant.trip_chiller(1);
    server.update(|d, t| ((), plant.write_to(d, t))).await;
    let n = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            if let Some(CovEvent::Notification(n)) = sub.next().await
                && n.object == object
                && n.value_of(dcim_bacnet::PropertyId::PRESENT_VALUE)
                    .and_then(|v| v.as_bool())
                    == Some(true)
            {
                return n;
            }
        }
    })
    .await
    .expect("no COV notification for the trip");
    out.clear();
    now += 10;
    dev.on_cov(object, &n, now, &mut out);
    let fault = get(&out, "chiller1_fault");
    assert_eq!(
        (fault.quality, fault.value),
        (Quality::Good, Some(Value::Bool(true)))
    );

    // The device goes away: stale after a failed poll, then comm lost with an event.
    server.shutdown().await;
    out.clear();
    now += 100;
    let r = client
        .read_multiple(PLANT_INSTANCE, &dev.request(PollClass::Normal))
        .await;
    assert!(r.is_err());
    assert!(dev.on_poll(PollClass::Normal, &r, now, &mut out).is_empty());
    assert_eq!(get(&out, "tank_temp").quality, Quality::Stale);
    out.clear();
    let e = dev.tick(now + 800, &mut out).expect("comm lost event");
    assert_eq!(e.kind, "device.comm_lost");
    assert_eq!(get(&out, "online").value, Some(Value::Bool(false)));
    assert_eq!(get(&out, "tank_temp").quality, Quality::CommLost);
}

/// The shipped chiller, buffer-tank and CRAH profiles load as BACnet devices; their object
/// instances are those of the profiles (one device per unit), not the chiller plant's combined
/// map, so against the plant most of their points read as errors (Bad) - reported, not hidden.
#[tokio::test]
async fn shipped_profiles_against_the_chiller_plant() {
    let (server, _plant) = plant_server().await;
    let addr = server.local_addr();
    let client = BacnetClient::bind_with("127.0.0.1:0".parse().unwrap(), client_config(addr))
        .await
        .unwrap();
    client.add_device(DeviceInfo::fixed(PLANT_INSTANCE, addr));
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../device-profiles"
    ));
    for (file, expect_good) in [
        ("chiller-water-cooled.toml", vec!["supply_temp"]),
        ("buffer-tank.toml", vec!["tank_temp"]),
        (
            "crah-chilled-water.toml",
            vec!["supply_air_temp", "cooling_kw"],
        ),
    ] {
        let profile = dcim_profiles::load_file(&dir.join(file)).unwrap();
        let mut dev = BacnetDevice::new("d", target(addr), profile, 0).unwrap();
        let mut out = Vec::new();
        for (class, _) in dev.schedule() {
            let r = client
                .read_multiple(PLANT_INSTANCE, &dev.request(class))
                .await;
            assert!(r.is_ok(), "{file}: {r:?}");
            dev.on_poll(class, &r, 1, &mut out);
        }
        // Only analog-input 1 (the plant's loop flow) and analog-value 1 (its supply setpoint)
        // exist in the plant; every other point of the profile is a per-property error: Bad,
        // no value.
        let with_value: Vec<&str> = out
            .iter()
            .filter(|s| s.point != "online" && s.value.is_some())
            .map(|s| s.point.as_str())
            .collect();
        assert_eq!(with_value, expect_good, "{file}");
        let points = dev.profile().points.len();
        let bad = out
            .iter()
            .filter(|s| s.point != "online" && s.quality == Quality::Bad && s.value.is_none())
            .count();
        assert_eq!(bad, points - expect_good.len(), "{file}: {out:?}");
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_agent_forwards_a_bacnet_device_and_its_comm_loss() {
    if !mosquitto_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _broker = Mosquitto::start(&dir.path().join("broker"), port);
    let (got, sub) = subscribe(port, "bacnet-test-sub").await;
    let (server, _plant) = plant_server().await;
    let addr = server.local_addr();
    std::fs::write(dir.path().join("plant.toml"), PLANT_PROFILE).unwrap();
    let head = config_head("bn-agent", port, true);
    let text = format!(
        r#"{head}[[device]]
id = "plant"
profile = "plant.toml"
bacnet = {{ address = "{addr}", instance = {PLANT_INSTANCE}, bind = "127.0.0.1:0" }}
"#
    );
    let agent = RunningAgent::start(&text, dir.path());
    let samples = || common::samples(&got);
    let events = || common::events(&got);
    let arrived = wait_until(Duration::from_secs(10), || {
        samples()
            .iter()
            .any(|s| s.point == "tank_temp" && s.quality == Quality::Good)
    })
    .await;
    server.shutdown().await;
    let lost = wait_until(Duration::from_secs(10), || {
        events().iter().any(|e| e.kind == "device.comm_lost")
    })
    .await;
    agent.stop().await;
    sub.abort();
    assert!(arrived, "BACnet values did not reach the center");
    assert!(lost, "comm loss was not reported: {:?}", events());
    let s = samples();
    assert!(
        s.iter()
            .any(|s| s.point == "tank_temp" && s.quality == Quality::CommLost)
    );
}

/// Hazard: with `discover = false` the device was trusted by its address; another controller
/// answering there (an address reused, a controller replaced) was reported `good` under this
/// device's name. Who answers must be checked on contact and on every poll; a mismatch is a
/// communication fault with one event, and none of its values may ever become good data.
#[tokio::test]
async fn another_device_at_the_configured_address_is_a_comm_fault_never_good_data() {
    let plant = ChillerPlant::new(2);
    // The plant at the configured address is device 2002, not the configured 2001.
    let server = DeviceServer::bind("127.0.0.1:0".parse().unwrap(), plant.device(2002, "other"))
        .await
        .unwrap();
    let addr = server.local_addr();
    let profile = dcim_profiles::load_str("plant.toml", PLANT_PROFILE).unwrap();
    let mut dev = BacnetDevice::new("plant", target(addr), profile, 1000).unwrap();
    let client = BacnetClient::bind_with("127.0.0.1:0".parse().unwrap(), client_config(addr))
        .await
        .unwrap();
    client.add_device(DeviceInfo::fixed(PLANT_INSTANCE, addr));
    let mut out = Vec::new();

    // The identity read on contact names the device that answers.
    let answer = client
        .read_property(PLANT_INSTANCE, BacnetDevice::identity_request())
        .await;
    let events = dev.on_identity(&answer, 1000, &mut out);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].kind, "device.identity_mismatch");
    assert_eq!(events[0].data["answered_instance"], 2002);
    assert_eq!(dev.identity(), Identity::Mismatch(Some(2002)));

    // Even if polled, its answers are refused: the identity item fails first.
    for (class, _) in dev.schedule() {
        let r = client
            .read_multiple(PLANT_INSTANCE, &dev.request(class))
            .await;
        assert!(
            dev.on_poll(class, &r, 1100, &mut out).is_empty(),
            "reported once"
        );
    }
    let e = dev.tick(1000 + 800, &mut out).expect("comm lost");
    assert_eq!(e.kind, "device.comm_lost");
    assert!(
        out.iter()
            .all(|s| s.point == "online" || s.quality != Quality::Good),
        "a value of the wrong device became good data: {out:?}"
    );
    assert!(
        out.iter()
            .any(|s| s.point == "tank_temp" && s.quality == Quality::CommLost)
    );
    server.shutdown().await;

    // The right device answers at the address again: confirmed, values good.
    let server = DeviceServer::bind(addr, plant.device(PLANT_INSTANCE, "plant"))
        .await
        .unwrap();
    out.clear();
    let answer = client
        .read_property(PLANT_INSTANCE, BacnetDevice::identity_request())
        .await;
    let events = dev.on_identity(&answer, 2000, &mut out);
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["device.identity_confirmed"]);
    let r = client
        .read_multiple(PLANT_INSTANCE, &dev.request(PollClass::Normal))
        .await;
    let events = dev.on_poll(PollClass::Normal, &r, 2001, &mut out);
    assert_eq!(
        events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        ["device.comm_restored"]
    );
    assert!(
        out.iter()
            .any(|s| s.point == "tank_temp" && s.quality == Quality::Good)
    );
    server.shutdown().await;
}
