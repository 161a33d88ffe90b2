//! Fast-point latency: how long after a device's value changes it reaches the broker.
//!
//! A UPS (the facility simulator's Modbus TCP server, profile `ups-modular-3ph`) has its
//! `on_battery` bit (poll class `fast`, 1 s) toggled at a different phase of the poll cycle
//! each time; an MQTT subscriber on a local mosquitto timestamps the arrival of the telemetry
//! sample carrying the new value. The agent runs with its default batch (`max_delay_ms = 1000`)
//! and spool (`telemetry_fsync = "interval"`, 1 s) settings, so the number shows that a fast
//! point waits for neither. Target: within the poll period + 100 ms.
//!
//! `cargo bench -p dcim-edge-agent --bench fast_point_latency` (needs /usr/sbin/mosquitto)

#[path = "../tests/it/common/mod.rs"]
mod common;

use dcim_edge_agent::{Agent, config};
use dcim_points::Value;
use facility_sim::{ModbusShared, SimValue, serve_tcp};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CHANGES: u32 = 20;

fn main() {
    common::bench_with_mosquitto(run);
}

async fn run() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let _broker = common::Mosquitto::start(&dir.path().join("broker"), port);

    // Arrival time of each on_battery value at the broker's subscriber.
    let arrivals: Arc<Mutex<Vec<(Instant, bool)>>> = Arc::default();
    let sink = arrivals.clone();
    let mut o = MqttOptions::new("latency-sub", "127.0.0.1", port);
    o.set_max_packet_size(32 << 20, 1 << 20);
    let (client, mut el) = AsyncClient::new(o, 64);
    let sub = tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    client
                        .subscribe("dcim/v1/#", QoS::AtLeastOnce)
                        .await
                        .unwrap();
                }
                Ok(Event::Incoming(Packet::Publish(p))) if p.topic.ends_with("/telemetry") => {
                    let now = Instant::now();
                    let b: dcim_wire::TelemetryBatch = dcim_wire::decode(&p.payload).unwrap();
                    for s in b.samples.iter().filter(|s| s.point == "on_battery") {
                        if let Some(Value::Bool(v)) = s.value {
                            sink.lock().unwrap().push((now, v));
                        }
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });

    let profile_path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../device-profiles/ups-modular-3ph.toml"
    );
    let profile = dcim_profiles::load_file(std::path::Path::new(profile_path)).unwrap();
    let period = Duration::from_millis(profile.poll.fast_ms);
    let ups = Arc::new(ModbusShared::default());
    ups.write_values(&profile, &[("on_battery", SimValue::Bool(false))]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = serve_tcp(listener, ups.clone());
    // Default [batch] and [spool] settings: max_delay_ms = 1000, telemetry fsync every 1 s.
    let text = format!(
        "site = \"s\"\nagent = \"latency\"\nlog_level = \"warn\"\n[spool]\ndir = \"spool\"\n\
         [[broker]]\nname = \"center\"\nurl = \"mqtt://127.0.0.1:{port}\"\n\
         [[device]]\nid = \"ups-z1\"\nprofile = \"{profile_path}\"\nmodbus = {{ tcp = \"{addr}\", unit = 1 }}\n"
    );
    let agent = Agent::start(config::parse("agent.toml", &text, dir.path()).unwrap()).unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(agent.run(stop_rx));
    tokio::time::sleep(Duration::from_secs(3)).await;

    let mut latencies = Vec::new();
    let mut value = false;
    for i in 0..CHANGES {
        // A different phase of the poll cycle each time (golden-ratio steps over the period).
        let phase = period.mul_f64((f64::from(i) * 0.618_034).fract());
        tokio::time::sleep(period + phase).await;
        value = !value;
        let seen_before = arrivals.lock().unwrap().len();
        let changed = Instant::now();
        ups.write_values(&profile, &[("on_battery", SimValue::Bool(value))]);
        let deadline = changed + Duration::from_secs(10);
        let arrived = loop {
            let found = arrivals.lock().unwrap()[seen_before..]
                .iter()
                .find(|(_, v)| *v == value)
                .map(|(t, _)| *t);
            if let Some(t) = found {
                break t;
            }
            assert!(Instant::now() < deadline, "change {i} never arrived");
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        latencies.push(arrived.duration_since(changed));
    }
    stop_tx.send(true).unwrap();
    let _ = task.await;
    sub.abort();
    server.abort();
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let p = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    let target = period + Duration::from_millis(100);
    println!(
        "fast point (poll period {} ms) change -> broker over {CHANGES} changes: \
         min {:.0} ms, p50 {:.0} ms, p90 {:.0} ms, max {:.0} ms; target period + 100 ms = {} ms: {}",
        period.as_millis(),
        ms(latencies[0]),
        ms(p(0.5)),
        ms(p(0.9)),
        ms(*latencies.last().unwrap()),
        target.as_millis(),
        if *latencies.last().unwrap() <= target {
            "met"
        } else {
            "NOT met"
        }
    );
}
