//! The demo data center of `dcim-server/site/sites/demo.toml`, with the device ids of its
//! convention (`dcim-server/site/README.md`), and the edge-agent configuration that polls it.
//!
//! | device ids | kind | served as | profile |
//! |---|---|---|---|
//! | `meter-a`, `meter-b` | 22.9 kV utility line meters | Modbus TCP, one port each | `power-meter-feed-a`, `-b` |
//! | `ats-1`, `ats-2` | switchgear line-up meters with ATS | Modbus TCP | `power-meter-dual-feed-ats` |
//! | `tx-1`..`tx-4` | transformers (1600 kW) | Modbus TCP | `transformer` |
//! | `ups-z1`..`ups-z4` | UPS zones (1200 kW) | Modbus TCP | `ups-modular-3ph` |
//! | `bms-z1`..`bms-z4` | battery room master BMSs (room 2 runs 4 °C warmer) | Modbus TCP | `battery-room-bms` |
//! | `env-h1`..`env-h3` | hall temperature/humidity | Modbus TCP | `room-environment` |
//! | `bms-r001`..`bms-r300` | IT racks | RTU over TCP, one gateway per row (`gw-h{h}-{gg}`), units 1-10 | `it-rack` |
//! | `pdu-h{h}-{gg}{a,b}` | row PDUs | same row gateway, units 101 (A) and 102 (B) | `pdu-row-a`, `pdu-row-b` |
//! | `chiller-1`, `chiller-2` | chillers | BACnet/IP, one UDP port each, instances 3001, 3002 | `chiller-water-cooled` |
//! | `tank-1` | buffer tank (60 m³) | BACnet/IP, instance 3003 | `buffer-tank` |
//! | `loop-a`, `loop-b` | chilled-water loops | BACnet/IP, instances 3004, 3005 | `chilled-water-loop` |
//! | `crah-h{1..3}-{1..4}` | CRAH units | BACnet/IP, instances 3006.. | `crah-chilled-water` |
//! | `cam-z1`..`cam-z4` | thermal camera per battery room | MQTT | `thermal-camera-battery-room` |
//! | `link-carrier-a/b`, `sw-h{h}-{gg}` | carrier and row links | MQTT `net/{id}/state` | `network-link-probe` |
//! | `mmr-1/2`, `core-1/2` | Meet-Me-Room equipment, core switches | MQTT `net/{id}/state` | `network-device-probe` |
//!
//! Loads ([`compute_loads`]): 300 racks of 4.6-5.6 kW (about 1.54 MW of IT), each row split
//! evenly over its A and B PDUs, PDUs summed into their UPS zone, UPS input (95.5 % efficient) into
//! its transformer, transformers plus half of the cooling plant and of the building services into
//! each ATS line-up, line-ups onto the utility line their ATS is on. PUE is about 1.38.

use crate::kinds::{
    camera::Camera, meter::Meter, network, plant, power, racks, room, ups::Ups, wobble,
};
use crate::{Connection, Endpoint, Env, SimDevice, load_profile};
use dcim_profiles::Profile;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

/// Halls, rows per hall, racks per row.
pub const HALLS: usize = 3;
pub const ROWS: usize = 10;
pub const RACKS_PER_ROW: usize = 10;
/// Rated output of a UPS zone and a transformer, kW.
pub const UPS_RATING_KW: f64 = 1200.0;
pub const TX_RATING_KW: f64 = 1600.0;
/// Building services (lighting, offices, security) on the line-ups, kW.
pub const SERVICES_KW: f64 = 50.0;
/// UPS efficiency.
pub const UPS_EFFICIENCY: f64 = 0.955;
/// Mean IT load per rack in each hall, kW.
pub const HALL_RACK_KW: [f64; HALLS] = [5.6, 5.2, 4.6];

/// Device id of IT rack `n` (1-based, 1..=300).
pub fn rack_id(n: usize) -> String {
    format!("bms-r{n:03}")
}

/// Hall (1-based), row (1-based) and position in the row (0-based) of rack `n`.
pub fn rack_place(n: usize) -> (usize, usize, usize) {
    let i = (n - 1) % (ROWS * RACKS_PER_ROW);
    (
        (n - 1) / (ROWS * RACKS_PER_ROW) + 1,
        i / RACKS_PER_ROW + 1,
        i % RACKS_PER_ROW,
    )
}

/// UPS zones (1-based) of the A and B side of row `row` of hall `hall`, as in the site model.
pub fn row_zones(hall: usize, row: usize) -> (usize, usize) {
    match (hall, row) {
        (1, _) => (1, 3),
        (2, _) => (2, 4),
        (_, r) if r <= 5 => (1, 4),
        _ => (2, 3),
    }
}

fn pdu_id(hall: usize, row: usize, side: char) -> String {
    format!("pdu-h{hall}-{row:02}{side}")
}

fn gateway_name(hall: usize, row: usize) -> String {
    format!("gw-h{hall}-{row:02}")
}

/// IT load of rack `n` at `t`, kW (deterministic).
pub fn rack_kw(n: usize, t: f64) -> f64 {
    let (hall, _, _) = rack_place(n);
    let spread = ((n * 37) % 11) as f64 - 5.0;
    HALL_RACK_KW[hall - 1]
        + 0.12 * spread
        + 0.4 * wobble(t, 900.0 + 40.0 * (n % 13) as f64, n as f64)
}

/// The load model of the demo facility: fills `env.loads_kw` (racks, PDUs, UPSs, transformers,
/// ATS line-ups, utility meters), `env.it_kw` and `env.room_it_kw` from the rack loads, the UPS
/// and ATS states of the previous step and the cooling plant's power (`env.cooling_kw`).
pub fn compute_loads(t: f64, env: &mut Env) {
    env.loads_kw.clear();
    env.room_it_kw.clear();
    let mut ups_out = [0.0f64; 4];
    let mut it = 0.0;
    for hall in 1..=HALLS {
        let mut hall_kw = 0.0;
        for row in 1..=ROWS {
            // Dual-corded racks share their load over both sides; with one side's breaker open
            // the other carries all of it, with both open the row is dark.
            let (a, b) = (pdu_id(hall, row, 'a'), pdu_id(hall, row, 'b'));
            let share = match (
                env.open_breakers.contains(&a),
                env.open_breakers.contains(&b),
            ) {
                (false, false) => [0.5, 0.5],
                (true, false) => [0.0, 1.0],
                (false, true) => [1.0, 0.0],
                (true, true) => [0.0, 0.0],
            };
            let powered = if share == [0.0, 0.0] { 0.0 } else { 1.0 };
            let mut row_kw = 0.0;
            for pos in 0..RACKS_PER_ROW {
                let n = (hall - 1) * ROWS * RACKS_PER_ROW + (row - 1) * RACKS_PER_ROW + pos + 1;
                let kw = rack_kw(n, t) * powered;
                env.loads_kw.insert(rack_id(n), kw);
                row_kw += kw;
            }
            let (za, zb) = row_zones(hall, row);
            env.loads_kw.insert(a, row_kw * share[0]);
            env.loads_kw.insert(b, row_kw * share[1]);
            ups_out[za - 1] += row_kw * share[0];
            ups_out[zb - 1] += row_kw * share[1];
            hall_kw += row_kw;
        }
        env.room_it_kw.insert(format!("hall-{hall}"), hall_kw);
        it += hall_kw;
    }
    env.it_kw = it;
    let mut tx = [0.0f64; 4];
    for z in 0..4 {
        let id = format!("ups-z{}", z + 1);
        env.loads_kw.insert(id.clone(), ups_out[z]);
        // On battery the UPS draws nothing from its transformer.
        tx[z] = if env.ups_on_battery.contains(&id) {
            0.0
        } else {
            ups_out[z] / UPS_EFFICIENCY
        };
        env.loads_kw.insert(format!("tx-{}", z + 1), tx[z]);
    }
    let shared = (env.cooling_kw + SERVICES_KW) / 2.0;
    let mut feeds = [0.0f64; 2];
    for (a, ats) in ["ats-1", "ats-2"].iter().enumerate() {
        let source = env.ats_source.get(*ats).copied().unwrap_or(Some(0));
        let kw = match source {
            Some(_) => tx[2 * a] + tx[2 * a + 1] + shared,
            None => 0.0,
        };
        env.loads_kw.insert((*ats).to_owned(), kw);
        if let Some(f) = source {
            feeds[f] += kw;
        }
    }
    env.loads_kw.insert("meter-a".into(), feeds[0]);
    env.loads_kw.insert("meter-b".into(), feeds[1]);
}

/// The plant layout of the demo site.
pub fn plant_layout() -> plant::PlantLayout {
    plant::PlantLayout {
        chillers: ["chiller-1".into(), "chiller-2".into()],
        tank: "tank-1".into(),
        tank_m3: 60.0,
        loops: vec!["loop-a".into(), "loop-b".into()],
        crahs: (1..=HALLS)
            .flat_map(|h| (1..=4).map(move |k| (format!("crah-h{h}-{k}"), format!("hall-{h}"))))
            .collect(),
        instance_base: 3001,
        default_heat_kw: 1600.0,
        crah_rating_kw: 200.0,
    }
}

/// Every device of the demo facility.
pub fn build_devices(profiles_dir: &Path) -> Result<Vec<Box<dyn SimDevice>>, String> {
    let load = |n: &str| load_profile(profiles_dir, n);
    let mut d: Vec<Box<dyn SimDevice>> = Vec::new();
    d.push(Box::new(power::FeedMeter::new(
        "meter-a",
        0,
        load("power-meter-feed-a")?,
    )));
    d.push(Box::new(power::FeedMeter::new(
        "meter-b",
        1,
        load("power-meter-feed-b")?,
    )));
    let ats = load("power-meter-dual-feed-ats")?;
    for i in 0..2 {
        d.push(Box::new(Meter::new(
            &format!("ats-{}", i + 1),
            i,
            ats.clone(),
        )));
    }
    let tx = load("transformer")?;
    for i in 0..4 {
        d.push(Box::new(power::Transformer::new(
            &format!("tx-{}", i + 1),
            i,
            TX_RATING_KW,
            tx.clone(),
        )));
    }
    let ups = load("ups-modular-3ph")?;
    for i in 0..4 {
        let ats = if i < 2 { "ats-1" } else { "ats-2" };
        d.push(Box::new(
            Ups::new(&format!("ups-z{}", i + 1), i, ups.clone()).fed_by(ats, UPS_RATING_KW),
        ));
    }
    let bms = load("battery-room-bms")?;
    for i in 0..4 {
        // Battery room 2 has the weakest ventilation: it runs 4 °C warmer.
        let warmer = if i == 1 { 4.0 } else { 0.0 };
        d.push(Box::new(racks::BatteryRoom::new(
            &format!("bms-z{}", i + 1),
            i,
            warmer,
            &format!("ups-z{}", i + 1),
            bms.clone(),
        )));
    }
    let env = load("room-environment")?;
    for h in 1..=HALLS {
        d.push(Box::new(room::RoomEnv::new(
            &format!("env-h{h}"),
            &format!("hall-{h}"),
            h,
            env.clone(),
        )));
    }
    let rack = load("it-rack")?;
    let pdu = [load("pdu-row-a")?, load("pdu-row-b")?];
    for hall in 1..=HALLS {
        push_hall(&mut d, hall, &rack, &pdu);
    }
    d.push(Box::new(plant::Plant::new(plant_layout(), profiles_dir)?));
    for z in 1..=4 {
        d.push(Box::new(Camera::watching(
            &format!("cam-z{z}"),
            &format!("bms-z{z}"),
        )));
    }
    use network::{NetProbe, ProbeKind};
    let mut i = 0;
    let mut probe = |id: String, kind: ProbeKind| {
        i += 1;
        Box::new(NetProbe::new(&id, i, kind)) as Box<dyn SimDevice>
    };
    d.push(probe(
        "link-carrier-a".into(),
        ProbeKind::Link {
            gbps: 38.0,
            latency_ms: 1.8,
        },
    ));
    d.push(probe(
        "link-carrier-b".into(),
        ProbeKind::Link {
            gbps: 31.0,
            latency_ms: 2.4,
        },
    ));
    for id in ["mmr-1", "mmr-2", "core-1", "core-2"] {
        d.push(probe(id.into(), ProbeKind::Device));
    }
    for hall in 1..=HALLS {
        for row in 1..=ROWS {
            d.push(probe(
                format!("sw-h{hall}-{row:02}"),
                // 1.0–2.5 Gbit/s per row: about 53 Gbit/s over the 30 rows (61 at the peak of
                // the wobble), so either Meet-Me-Room (100 Gbit/s) alone carries the core's
                // load and a healthy network shows its designed redundancy.
                ProbeKind::Link {
                    gbps: 1.0 + 0.5 * (row % 4) as f64,
                    latency_ms: 0.2,
                },
            ));
        }
    }
    Ok(d)
}

/// Number of the first rack of hall `hall` (1-based): racks are numbered hall by hall.
pub fn first_rack_of_hall(hall: usize) -> usize {
    (hall - 1) * ROWS * RACKS_PER_ROW + 1
}

/// Hall (1-based) of a device id of the large preset's IT halls (`bms-rNNN`, `pdu-hH-RRs`,
/// `gw-hH-RR`), or None for other ids.
pub fn hall_of(device: &str) -> Option<usize> {
    if let Some(n) = device.strip_prefix("bms-r") {
        let n: usize = n.parse().ok()?;
        return (n >= 1).then(|| rack_place(n).0);
    }
    let rest = device
        .strip_prefix("pdu-h")
        .or_else(|| device.strip_prefix("gw-h"))?;
    rest.split('-').next()?.parse().ok()
}

/// The IT racks and row PDUs of halls `HALLS + 1 ..= halls` (the large preset): per hall 10 rows
/// of 10 racks (`bms-r0301`.. numbered on from the demo's 300; ids keep the `bms-r{n:03}`
/// form) and two PDUs (`pdu-h{h}-{rr}{a,b}`), each row behind its own RTU-over-TCP gateway
/// (`gw-h{h}-{rr}`, units 1-10 and 101/102), exactly like the demo halls. They are not in the
/// demo site model and do not load its UPS zones: [`extra_loads`] gives them their own load.
pub fn extra_halls(profiles_dir: &Path, halls: usize) -> Result<Vec<Box<dyn SimDevice>>, String> {
    let load = |n: &str| load_profile(profiles_dir, n);
    let rack = load("it-rack")?;
    let pdu = [load("pdu-row-a")?, load("pdu-row-b")?];
    let mut d: Vec<Box<dyn SimDevice>> = Vec::new();
    for hall in HALLS + 1..=halls {
        push_hall(&mut d, hall, &rack, &pdu);
    }
    Ok(d)
}

/// The IT racks and the two row PDUs of every row of `hall`, each row behind its gateway
/// (racks at units 1-10, PDUs at 101/102).
fn push_hall(
    d: &mut Vec<Box<dyn SimDevice>>,
    hall: usize,
    rack: &Arc<Profile>,
    pdu: &[Arc<Profile>; 2],
) {
    for row in 1..=ROWS {
        let gw = gateway_name(hall, row);
        for pos in 0..RACKS_PER_ROW {
            let n = first_rack_of_hall(hall) + (row - 1) * RACKS_PER_ROW + pos;
            d.push(Box::new(racks::ItRack::new(
                &rack_id(n),
                n,
                &format!("hall-{hall}"),
                &gw,
                pos as u8 + 1,
                rack.clone(),
            )));
        }
        for (side, unit, p) in [('a', 101, &pdu[0]), ('b', 102, &pdu[1])] {
            d.push(Box::new(power::Pdu::new(
                &pdu_id(hall, row, side),
                &gw,
                unit,
                p.clone(),
            )));
        }
    }
}

/// Loads of the extra halls of the large preset (racks of 4.6-5.8 kW, each row split over its
/// two PDUs); they feed nothing of the demo's power chain.
pub fn extra_loads(t: f64, halls: usize, env: &mut Env) {
    for hall in HALLS + 1..=halls {
        for row in 1..=ROWS {
            let mut row_kw = 0.0;
            for pos in 0..RACKS_PER_ROW {
                let n = first_rack_of_hall(hall) + (row - 1) * RACKS_PER_ROW + pos;
                let spread = ((n * 37) % 11) as f64 - 5.0;
                let kw =
                    5.2 + 0.1 * spread + 0.4 * wobble(t, 900.0 + 40.0 * (n % 13) as f64, n as f64);
                env.loads_kw.insert(rack_id(n), kw);
                row_kw += kw;
            }
            for side in ['a', 'b'] {
                env.loads_kw.insert(pdu_id(hall, row, side), row_kw / 2.0);
            }
        }
    }
}

/// Options of the rendered edge-agent configuration.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    pub site: String,
    pub agent: String,
    /// The center's broker the agent publishes to (`mqtt://127.0.0.1:1883`).
    pub broker_url: String,
    /// The broker the simulated MQTT devices publish to (usually the same).
    pub devices_broker_url: String,
    pub spool_dir: std::path::PathBuf,
}

impl AgentOptions {
    pub fn new(broker_url: &str, spool_dir: impl Into<std::path::PathBuf>) -> AgentOptions {
        AgentOptions {
            site: "demo".into(),
            agent: "agent-demo".into(),
            broker_url: broker_url.into(),
            devices_broker_url: broker_url.into(),
            spool_dir: spool_dir.into(),
        }
    }
}

/// A TOML basic string.
fn q(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04X}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// Renders the `dcim-edge-agent` configuration (TOML) that polls the simulated devices at the
/// addresses they actually got (`SimHandle::endpoints`). Profiles are referred to by absolute
/// path. BACnet devices are listed as comments: the agent's configuration has no BACnet
/// connection kind yet.
pub fn agent_config(endpoints: &[Endpoint], opts: &AgentOptions) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# dcim-edge-agent configuration for the simulated demo facility (generated by\n\
         # facility_sim::demo::agent_config for the ports of this run).\n"
    );
    let _ = writeln!(o, "site = {}", q(&opts.site));
    let _ = writeln!(o, "agent = {}", q(&opts.agent));
    let _ = writeln!(o, "health_interval_s = 30\n");
    let _ = writeln!(o, "[spool]");
    let _ = writeln!(o, "dir = {}", q(&opts.spool_dir.display().to_string()));
    let _ = writeln!(o, "max_mb = 256");
    let _ = writeln!(o, "telemetry_fsync = \"interval\"\n");
    let _ = writeln!(o, "[batch]\nmax_samples = 500\nmax_delay_ms = 1000\n");
    let _ = writeln!(
        o,
        "[[broker]]\nname = \"center\"\nurl = {}\n",
        q(&opts.broker_url)
    );
    let mut bacnet = Vec::new();
    for e in endpoints {
        let Some(profile) = &e.profile_file else {
            continue;
        };
        let conn = match e.connection {
            Connection::ModbusTcp { addr, unit } => {
                format!(
                    "modbus = {{ tcp = {}, unit = {unit} }}",
                    q(&addr.to_string())
                )
            }
            Connection::ModbusRtuOverTcp { addr, unit } => {
                format!(
                    "modbus = {{ rtu_tcp = {}, unit = {unit} }}",
                    q(&addr.to_string())
                )
            }
            Connection::Mqtt => format!("mqtt = {{ url = {} }}", q(&opts.devices_broker_url)),
            Connection::Bacnet { addr, instance } => {
                bacnet.push(format!(
                    "#   {} ({}): BACnet/IP {addr}, device instance {instance}",
                    e.device, e.profile
                ));
                continue;
            }
            Connection::None => continue,
        };
        let _ = writeln!(
            o,
            "[[device]]\nid = {}\nprofile = {}\n{conn}\n",
            q(&e.device),
            q(&profile.display().to_string())
        );
    }
    if !bacnet.is_empty() {
        let _ = writeln!(
            o,
            "# BACnet/IP devices of the facility (not polled by this configuration: the agent's\n\
             # configuration has no BACnet connection kind yet):"
        );
        for l in bacnet {
            let _ = writeln!(o, "{l}");
        }
    }
    o
}

/// Starts the demo facility on 127.0.0.1 (ephemeral ports), publishes its MQTT devices to
/// `opts.devices_broker_url` every second, and returns the running simulator with the rendered
/// edge-agent configuration ([`agent_config`]) for it. Must be called inside a tokio runtime.
pub async fn start(
    profiles_dir: &Path,
    opts: &AgentOptions,
) -> Result<(crate::SimHandle, String), String> {
    let mut sim = crate::start(crate::SimConfig::demo(profiles_dir)).await?;
    sim.publish_mqtt(&opts.devices_broker_url, std::time::Duration::from_secs(1))?;
    let config = agent_config(&sim.endpoints, opts);
    Ok((sim, config))
}

/// The demo scenario (`scenarios/demo.txt`): feed A lost, chiller 1 trip, a battery string of
/// room 2 heated to stage 3, then recovery; about seven minutes.
pub const SCENARIO: &str = include_str!("../scenarios/demo.txt");

/// Every device id the demo facility serves, in build order.
pub fn device_ids(profiles_dir: &Path) -> Result<Vec<String>, String> {
    let devices = build_devices(profiles_dir)?;
    let mut ids = Vec::new();
    for d in &devices {
        let hosted = d.bacnet();
        if hosted.is_empty() {
            ids.push(d.id().to_owned());
        } else {
            ids.extend(hosted.into_iter().map(|b| b.device));
        }
    }
    Ok(ids)
}
