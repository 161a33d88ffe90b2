//! The demo facility: it serves every device the demo site model binds, with the bound roles in
//! their profiles, plausible values, over real sockets (row gateways, BACnet), and the rendered
//! edge-agent configuration is accepted by the agent's own loader.

use crate::common::{num, read};
use dcim_points::{Quality, Value};
use dcim_profiles::{Profile, load_file};
use facility_sim::demo::{AgentOptions, agent_config};
use facility_sim::{
    Command, Connection, Facility, SimConfig, default_profiles_dir, parse_scenario,
};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn site_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dcim-server/site/sites/demo.toml")
}

fn text(f: &Facility, device: &str, point: &str) -> String {
    match read(f, device, point).0.unwrap() {
        Value::Text(t) => t,
        v => panic!("{device}/{point}: {v:?}"),
    }
}

fn demo() -> Facility {
    Facility::build(&SimConfig::demo(default_profiles_dir())).unwrap()
}

#[tokio::test]
async fn the_demo_serves_every_device_the_site_binds_with_the_bound_roles() {
    let site = dcim_site::Site::load(&site_file()).unwrap();
    let sim = facility_sim::start(SimConfig::demo(default_profiles_dir()))
        .await
        .unwrap();
    let mut profiles: BTreeMap<PathBuf, Profile> = BTreeMap::new();
    let mut bound = BTreeSet::new();
    for c in &site.components {
        for b in &c.bindings {
            bound.insert(b.device.clone());
            let e = sim
                .endpoint(&b.device)
                .unwrap_or_else(|| panic!("component {}: device {} not served", c.id, b.device));
            assert_ne!(e.connection, Connection::None, "{}", b.device);
            let file = e.profile_file.clone().unwrap();
            let profile = profiles
                .entry(file.clone())
                .or_insert_with(|| load_file(&file).unwrap());
            let matching = profile
                .points
                .iter()
                .filter(|p| {
                    p.role == b.role && b.labels.iter().all(|(k, v)| p.labels.get(k) == Some(v))
                })
                .count();
            assert_eq!(
                matching, 1,
                "component {}: device {} (profile {}) has {matching} points of role {}",
                c.id, b.device, profile.name, b.role
            );
        }
    }
    assert!(bound.len() > 400, "{} devices bound", bound.len());
    // Every device id appears once.
    let ids: BTreeSet<&str> = sim.endpoints.iter().map(|e| e.device.as_str()).collect();
    assert_eq!(ids.len(), sim.endpoints.len());
    // Racks and PDUs share one gateway per row: far fewer sockets than devices.
    let tcp: BTreeSet<_> = sim.endpoints.iter().filter_map(|e| e.modbus).collect();
    assert_eq!(tcp.len(), 2 + 2 + 4 + 4 + 4 + 3 + 30);
    let bacnet = sim
        .endpoints
        .iter()
        .filter(|e| matches!(e.connection, Connection::Bacnet { .. }))
        .count();
    assert_eq!(bacnet, 2 + 1 + 2 + 12);
}

#[test]
fn demo_values_are_realistic() {
    let f = demo();
    let it: f64 = (1..=300)
        .map(|n| num(&f, &format!("bms-r{n:03}"), "it_power_kw"))
        .sum();
    assert!((1400.0..1700.0).contains(&it), "IT load {it} kW");
    let pdus: f64 = (1..=3)
        .flat_map(|h| (1..=10).flat_map(move |r| ['a', 'b'].map(|s| format!("pdu-h{h}-{r:02}{s}"))))
        .map(|id| num(&f, &id, "power_kw"))
        .sum();
    assert!((pdus - it).abs() < 3.0, "PDUs {pdus} vs racks {it}");
    let ups: f64 = (1..=4)
        .map(|z| num(&f, &format!("ups-z{z}"), "output_kw"))
        .sum();
    assert!((ups - it).abs() < 3.0, "UPS {ups} vs racks {it}");
    for z in 1..=4 {
        let pct = num(&f, &format!("ups-z{z}"), "load_pct");
        assert!(
            (15.0..50.0).contains(&pct),
            "ups-z{z} at {pct} % (2N: below 50 %)"
        );
    }
    let total = num(&f, "meter-a", "power_kw") + num(&f, "meter-b", "power_kw");
    let pue = total / it;
    assert!((1.3..1.5).contains(&pue), "PUE {pue:.2} ({total} / {it})");
    assert!(num(&f, "meter-b", "power_kw") < 1.0, "line B is standby");
    assert!((22_000.0..23_800.0).contains(&num(&f, "meter-a", "voltage")));
    assert_eq!(text(&f, "ats-1", "ats_source"), "A");
    // Battery room 2 runs warmer than the others.
    let rooms: Vec<f64> = (1..=4)
        .map(|z| num(&f, &format!("bms-z{z}"), "room_temp"))
        .collect();
    assert!(
        rooms[1] > rooms[0] + 2.0 && rooms[1] > rooms[2] + 2.0,
        "{rooms:?}"
    );
    for z in 1..=4 {
        assert_eq!(num(&f, &format!("bms-z{z}"), "fire_stage"), 0.0);
    }
    for h in 1..=3 {
        let t = num(&f, &format!("env-h{h}"), "temp");
        assert!((18.0..27.0).contains(&t), "hall {h} at {t} °C");
    }
    for tx in 1..=4 {
        let pct = num(&f, &format!("tx-{tx}"), "load_pct");
        assert!((10.0..60.0).contains(&pct), "tx-{tx} at {pct} %");
    }
}

#[test]
fn the_demo_scenario_loses_feed_a_trips_a_chiller_and_heats_a_battery_rack_to_stage_3() {
    let steps = parse_scenario(facility_sim::demo::SCENARIO).unwrap();
    let mut f = demo();
    let tank = |f: &Facility| {
        let b = f.bacnet_devices();
        let d = b.iter().find(|d| d.device == "tank-1").unwrap();
        match d.objects[0].value {
            dcim_bacnet::Value::Real(x) => f64::from(x),
            ref v => panic!("{v:?}"),
        }
    };
    let tank0 = tank(&f);
    let mut next = 0;
    let mut saw = BTreeSet::new();
    for s in 1..=300 {
        let t = f64::from(s);
        while next < steps.len() && steps[next].at_s <= t {
            f.apply(&steps[next].command).unwrap();
            next += 1;
        }
        f.step(t);
        if num(&f, "meter-a", "voltage") == 0.0 {
            saw.insert("feed A lost");
            assert_eq!(text(&f, "ats-1", "ats_source"), "B");
            assert_eq!(text(&f, "ats-2", "ats_source"), "B");
            assert!(num(&f, "meter-b", "power_kw") > 1500.0);
            assert_eq!(read(&f, "ups-z1", "on_battery").0, Some(Value::Bool(false)));
        }
        if tank(&f) > tank0 + 0.2 {
            saw.insert("tank rising");
        }
        if num(&f, "bms-z2", "fire_stage") >= 4.0 {
            saw.insert("stage 3");
            assert_eq!(
                read(&f, "bms-z2", "contactor_closed").0,
                Some(Value::Bool(false))
            );
        }
    }
    assert_eq!(
        saw,
        BTreeSet::from(["feed A lost", "tank rising", "stage 3"]),
        "within 5 minutes"
    );
    // The other rooms did not move.
    assert_eq!(num(&f, "bms-z1", "fire_stage"), 0.0);
}

#[test]
fn an_open_pdu_breaker_moves_the_row_to_the_other_side() {
    let mut f = demo();
    let before = num(&f, "pdu-h1-03a", "power_kw") + num(&f, "pdu-h1-03b", "power_kw");
    f.apply(&Command::parse("breaker pdu-h1-03a A open").unwrap())
        .unwrap();
    f.step(1.0);
    f.step(2.0);
    assert_eq!(num(&f, "pdu-h1-03a", "power_kw"), 0.0);
    assert_eq!(
        read(&f, "pdu-h1-03a", "breaker_closed").0,
        Some(Value::Bool(false))
    );
    let b = num(&f, "pdu-h1-03b", "power_kw");
    assert!(
        (b - before).abs() < 2.0,
        "side B carries the row: {b} vs {before}"
    );
}

#[tokio::test]
async fn racks_answer_through_their_row_gateway_and_chillers_over_bacnet() {
    use tokio_modbus::prelude::*;
    let sim = facility_sim::start(SimConfig::demo(default_profiles_dir()))
        .await
        .unwrap();
    let e = sim.endpoint("bms-r013").unwrap().clone();
    let Connection::ModbusRtuOverTcp { addr, unit } = e.connection else {
        panic!("{:?}", e.connection)
    };
    assert_eq!(unit, 3, "rack 13 is the third of row 2");
    assert_eq!(sim.endpoint("pdu-h1-02a").unwrap().modbus, Some(addr));
    let profile = load_file(e.profile_file.as_ref().unwrap()).unwrap();
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut ctx = tokio_modbus::client::rtu::attach_slave(stream, Slave(unit));
    let regs = tokio::time::timeout(Duration::from_secs(5), ctx.read_input_registers(0, 4))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let p = profile.point("it_power_kw").unwrap();
    let r = p.reading_from_registers(&regs[0..1]);
    let kw = r.value.unwrap().as_f64().unwrap();
    assert!((3.0..8.0).contains(&kw), "rack 13 draws {kw} kW");
    let inlet = profile
        .point("inlet_temp")
        .unwrap()
        .reading_from_registers(&regs[1..2]);
    assert_eq!(inlet.quality, Quality::Good);

    let Connection::Bacnet { addr, instance } = sim.endpoint("chiller-2").unwrap().connection
    else {
        panic!("chiller-2 is not BACnet");
    };
    let client = dcim_bacnet::BacnetClient::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    client.add_device(dcim_bacnet::client::DeviceInfo::fixed(instance, addr));
    let v = tokio::time::timeout(
        Duration::from_secs(5),
        client.read_property(
            instance,
            dcim_bacnet::client::PropertyRef::present_value(dcim_bacnet::ObjectId::new(
                dcim_bacnet::ObjectType::ANALOG_INPUT,
                4,
            )),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    let dcim_bacnet::Value::Real(load) = v else {
        panic!("{v:?}")
    };
    assert!(
        (500.0..1200.0).contains(&load),
        "chiller-2 carries {load} kW"
    );
}

#[tokio::test]
async fn the_rendered_agent_configuration_loads_with_the_agents_loader() {
    let dir = std::env::temp_dir().join(format!("facility-sim-agent-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // No broker listens there: the MQTT publisher keeps retrying quietly.
    let opts = AgentOptions::new("mqtt://127.0.0.1:9", dir.join("spool"));
    let (sim, text) = facility_sim::demo::start(&default_profiles_dir(), &opts)
        .await
        .unwrap();
    assert_eq!(text, agent_config(&sim.endpoints, &opts));
    let file = dir.join("agent.toml");
    std::fs::write(&file, &text).unwrap();
    let cfg = dcim_edge_agent::config::load(&file);
    std::fs::remove_dir_all(&dir).ok();
    let cfg = cfg.unwrap_or_else(|e| panic!("{e}\n{text}"));
    let polled = sim
        .endpoints
        .iter()
        .filter(|e| !matches!(e.connection, Connection::Bacnet { .. } | Connection::None))
        .count();
    assert_eq!(cfg.devices.len(), polled);
    assert_eq!(cfg.site, "demo");
    let rack = cfg.devices.iter().find(|d| d.id == "bms-r101").unwrap();
    assert!(matches!(
        rack.connection,
        dcim_edge_agent::config::Connection::ModbusRtuOverTcp { unit: 1, .. }
    ));
    let cam = cfg.devices.iter().find(|d| d.id == "cam-z2").unwrap();
    assert!(matches!(
        cam.connection,
        dcim_edge_agent::config::Connection::Mqtt { .. }
    ));
    // BACnet devices are listed for the operator, not configured.
    assert!(text.contains("#   chiller-1 (chiller-water-cooled): BACnet/IP 127.0.0.1:"));
    assert!(
        sim.command(&Command::parse("link-down link-carrier-a").unwrap())
            .is_ok()
    );
}
