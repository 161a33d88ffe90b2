//! The chiller plant over BACnet/IP: every BACnet point of the chiller, buffer-tank, loop and
//! CRAH profiles is read from the simulated devices with the agent's BACnet client, and a
//! scripted chiller trip shows on the wire; the buffer tank rides through (pure, simulated time).

use dcim_bacnet::client::{DeviceInfo, PropertyRef};
use dcim_bacnet::{BacnetClient, ObjectId, ObjectType, PropertyId, StatusFlags, Value};
use dcim_profiles::{Address, load_file};
use facility_sim::{Command, Connection, Facility, Preset, SimConfig};
use std::time::Duration;

fn plant_only() -> SimConfig {
    SimConfig {
        preset: Preset::Basic,
        racks: 0,
        ups: 0,
        meters: 0,
        camera: false,
        chiller_plant: true,
        step: Duration::from_millis(50),
        ..SimConfig::default()
    }
}

async fn client_for(sim: &facility_sim::SimHandle) -> BacnetClient {
    let client = BacnetClient::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    for e in &sim.endpoints {
        if let Connection::Bacnet { addr, instance } = e.connection {
            client.add_device(DeviceInfo::fixed(instance, addr));
        }
    }
    client
}

#[tokio::test]
async fn every_bacnet_point_of_the_plant_profiles_reads_and_decodes() {
    let sim = facility_sim::start(plant_only()).await.unwrap();
    let client = client_for(&sim).await;
    let mut seen_profiles = std::collections::BTreeSet::new();
    let mut checked = 0;
    for e in &sim.endpoints {
        let Connection::Bacnet { instance, .. } = e.connection else {
            continue;
        };
        let profile = load_file(e.profile_file.as_ref().unwrap()).unwrap();
        seen_profiles.insert(profile.name.clone());
        for p in &profile.points {
            let Address::Bacnet(a) = &p.address else {
                panic!("{}: not a BACnet point", p.id)
            };
            let ty = ObjectType::from_name(a.object.as_str()).unwrap();
            let obj = ObjectId::new(ty, a.instance);
            let refs = [
                PropertyRef::present_value(obj),
                PropertyRef::new(obj, PropertyId::STATUS_FLAGS),
            ];
            let r = tokio::time::timeout(
                Duration::from_secs(5),
                client.read_multiple(instance, &refs),
            )
            .await
            .expect("answer in time")
            .unwrap_or_else(|err| panic!("{} {}: {err}", e.device, p.id));
            if ty == ObjectType::MULTI_STATE_VALUE {
                // The dcim-bacnet device server hosts analog and binary objects only.
                assert_eq!(p.id, "mode", "only the chiller mode is multi-state");
                assert!(
                    r[0].is_err(),
                    "{}: multi-state objects are not hosted",
                    e.device
                );
                continue;
            }
            let v = r[0]
                .as_ref()
                .unwrap_or_else(|err| panic!("{} {}: {err:?}", e.device, p.id));
            let flags = r[1].as_ref().unwrap();
            assert_eq!(
                StatusFlags::from_value(flags).map(|f| f.fault),
                Some(false),
                "{} {}",
                e.device,
                p.id
            );
            if ty.is_analog() {
                let Value::Real(x) = v else {
                    panic!("{} {}: {v:?} is not a Real", e.device, p.id)
                };
                let x = f64::from(*x);
                if let Some(h) = &p.health {
                    assert!(
                        h.min.is_none_or(|m| x >= m) && h.max.is_none_or(|m| x <= m),
                        "{} {} = {x} outside its health range",
                        e.device,
                        p.id
                    );
                }
            } else {
                assert!(
                    matches!(v, Value::Enumerated(0 | 1)),
                    "{} {}: {v:?}",
                    e.device,
                    p.id
                );
            }
            checked += 1;
        }
    }
    for name in [
        "chiller-water-cooled",
        "buffer-tank",
        "crah-chilled-water",
        "chilled-water-loop",
    ] {
        assert!(seen_profiles.contains(name), "{name} not served");
    }
    // 2 chillers x 7 + tank 6 + loop 3 + 4 CRAHs x 9.
    assert_eq!(checked, 14 + 6 + 3 + 36);
}

async fn read(client: &BacnetClient, instance: u32, obj: ObjectId) -> Value {
    tokio::time::timeout(
        Duration::from_secs(5),
        client.read_property(instance, PropertyRef::present_value(obj)),
    )
    .await
    .expect("answer in time")
    .unwrap()
}

#[tokio::test]
async fn a_scripted_chiller_trip_shows_over_bacnet_and_is_reset() {
    let sim = facility_sim::start(plant_only()).await.unwrap();
    let client = client_for(&sim).await;
    let Some(Connection::Bacnet { instance, .. }) = sim.endpoint("chiller-1").map(|e| e.connection)
    else {
        panic!("chiller-1 is not a BACnet device");
    };
    let running = ObjectId::new(ObjectType::BINARY_VALUE, 1);
    let fault = ObjectId::new(ObjectType::BINARY_INPUT, 2);
    assert_eq!(read(&client, instance, running).await, Value::Enumerated(1));
    assert_eq!(read(&client, instance, fault).await, Value::Enumerated(0));
    sim.command(&Command::parse("chiller-trip chiller-1").unwrap())
        .unwrap();
    // The command applies at once; the BACnet server gets it at the next step (50 ms).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let r = read(&client, instance, running).await;
        let f = read(&client, instance, fault).await;
        if r == Value::Enumerated(0) && f == Value::Enumerated(1) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "trip not seen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sim.command(&Command::parse("chiller-restore chiller-1").unwrap())
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while read(&client, instance, running).await != Value::Enumerated(1) {
        assert!(tokio::time::Instant::now() < deadline, "restart not seen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        sim.command(&Command::parse("chiller-trip chiller-9").unwrap())
            .is_err()
    );
}

#[tokio::test]
async fn a_failed_bacnet_sensor_carries_the_fault_flag() {
    let sim = facility_sim::start(plant_only()).await.unwrap();
    let client = client_for(&sim).await;
    let Some(Connection::Bacnet { instance, .. }) = sim.endpoint("tank-1").map(|e| e.connection)
    else {
        panic!("tank-1 is not a BACnet device");
    };
    sim.command(&Command::parse("sensor-fail tank-1 tank_temp").unwrap())
        .unwrap();
    let obj = ObjectId::new(ObjectType::ANALOG_INPUT, 1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let v = tokio::time::timeout(
            Duration::from_secs(5),
            client.read_property(instance, PropertyRef::new(obj, PropertyId::STATUS_FLAGS)),
        )
        .await
        .unwrap()
        .unwrap();
        if StatusFlags::from_value(&v).is_some_and(|f| f.fault) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "fault flag not seen"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        sim.command(&Command::parse("sensor-fail tank-1 nothing").unwrap())
            .is_err()
    );
}

fn tank_temp(f: &Facility) -> f64 {
    let b = f.bacnet_devices();
    let tank = b.iter().find(|d| d.device == "tank-1").unwrap();
    match tank.objects[0].value {
        Value::Real(x) => f64::from(x),
        ref v => panic!("{v:?}"),
    }
}

#[test]
fn the_buffer_tank_rides_through_while_the_chillers_are_down() {
    // Basic preset: 600 kW of heat, 60 m³ tank. One chiller carries it; both down, the tank
    // supplies all of it: 600 kW / (60 m³ x 4186 kJ/m³K) = 0.143 K/min.
    let mut f = Facility::build(&plant_only()).unwrap();
    let mut t = 0.0;
    let mut run = |f: &mut Facility, seconds: f64| {
        let end = t + seconds;
        while t < end {
            t += 1.0;
            f.step(t);
        }
    };
    run(&mut f, 60.0);
    let t0 = tank_temp(&f);
    assert!((t0 - 7.0).abs() < 0.05, "steady tank at {t0}");
    f.apply(&Command::parse("chiller-trip chiller-1").unwrap())
        .unwrap();
    run(&mut f, 600.0);
    let t1 = tank_temp(&f);
    assert!(
        (t1 - t0).abs() < 0.05,
        "one chiller carries 600 kW: {t0} -> {t1}"
    );
    f.apply(&Command::parse("chiller-trip chiller-2").unwrap())
        .unwrap();
    run(&mut f, 600.0);
    let t2 = tank_temp(&f);
    let expected = 600.0 * 600.0 / (60.0 * 4186.0);
    assert!(
        (t2 - t1 - expected).abs() < 0.15 * expected,
        "10 minutes without chillers: {t1} -> {t2}, expected +{expected:.2} K"
    );
    // The loop is now supplied from the tank: the CRAHs' supply air follows it.
    let discharging = f
        .bacnet_devices()
        .into_iter()
        .find(|d| d.device == "tank-1")
        .unwrap()
        .objects
        .into_iter()
        .find(|o| o.id.object_type == ObjectType::BINARY_INPUT)
        .unwrap();
    assert_eq!(discharging.value, Value::Enumerated(1));
    f.apply(&Command::parse("chiller-restore chiller-1").unwrap())
        .unwrap();
    f.apply(&Command::parse("chiller-restore chiller-2").unwrap())
        .unwrap();
    run(&mut f, 1800.0);
    let t3 = tank_temp(&f);
    assert!(t3 < t2 - 0.5, "the tank is recharged: {t2} -> {t3}");
}

#[tokio::test]
async fn bacpypes3_reads_a_tripped_simulated_chiller() {
    let Some(python) = dcim_test_support::peers::python_with("bacpypes3") else {
        return;
    };
    let sim = facility_sim::start(plant_only()).await.unwrap();
    sim.command(&Command::parse("chiller-trip chiller-2").unwrap())
        .unwrap();
    // Let one step carry the trip to the BACnet server.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let Some(Connection::Bacnet { addr, instance }) =
        sim.endpoint("chiller-2").map(|e| e.connection)
    else {
        panic!("chiller-2 is not a BACnet device");
    };
    // A free UDP port for the peer.
    let port = dcim_test_support::free_udp_port();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/read_chiller.py");
    let args = [
        "--port".to_string(),
        port.to_string(),
        "--device-port".to_string(),
        addr.port().to_string(),
        "--instance".to_string(),
        instance.to_string(),
    ];
    let limit = Duration::from_secs(30);
    let stdout = crate::common::run_peer(&python, &script, &args, limit, "bacpypes3 client").await;
    // Chiller 2 tripped: not running, fault set, no load; its leaving water drifts slowly from
    // 7 °C towards the loop return (2-minute time constant).
    let fields: std::collections::BTreeMap<&str, &str> = stdout
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .collect();
    assert_eq!(fields["running"], "0", "{stdout}");
    assert_eq!(fields["fault"], "1", "{stdout}");
    assert_eq!(fields["load_kw"], "0", "{stdout}");
    assert_eq!(fields["i_am"], instance.to_string(), "{stdout}");
    let supply: f64 = fields["supply"].parse().unwrap();
    assert!((6.9..9.0).contains(&supply), "{stdout}");
}
