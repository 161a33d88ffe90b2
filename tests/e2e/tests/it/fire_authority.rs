//! The fire-authority link end to end: the facility simulator heats battery rack `bms-z2`
//! (Modbus TCP) through the fire stages; the edge agent runs the rack's fire logic (a `[[rack]]`
//! fed by the BMS's cell and rack temperatures and smoke) and forwards the stage-3 alarm over
//! SIA DC-09 to a pysiaalarm receiver (`tests/interop/dc09/receiver.py`), which ACKs it. No
//! center is running: the fire authority must not depend on it.
//!
//! Latency: from the agent's sample that first crossed the stage-3 threshold (80 °C; its
//! `ts_ms`, read back from the agent's spool) to the receiver's ACK of the `SA` message (the
//! receiver's clock, same machine). It includes the logic's confirmation (two 100 ms control
//! cycles on the value), the DC-09 outbox fsync and the TCP exchange. Printed, not asserted.
//!
//! `DCIM_FIRE_AUTHORITY_RUNS=N` repeats the whole run N times (default 1) and prints p50/p99.

use dcim_test_support::sia as dc09_common;

use dc09_common::{Receiver, ReceiverOpts, python};
use serde_json::Value;
use std::time::{Duration, Instant};

const STAGE3_C: f64 = 80.0;

/// The first spooled telemetry sample of `device` with one of `points` at or above `limit`.
fn first_crossing(
    shared: &dcim_edge_agent::ingest::Shared,
    device: &str,
    points: &[&str],
    limit: f64,
) -> Option<(String, f64, i64)> {
    let records = shared
        .with_spool(|s| s.read_after(dcim_spool::Class::Telemetry, 0, 1_000_000, 256 << 20))
        .ok()?;
    let mut best: Option<(String, f64, i64)> = None;
    for r in records {
        let Ok(batch) = serde_json::from_slice::<Value>(&r.payload) else {
            continue;
        };
        for s in batch["samples"].as_array().into_iter().flatten() {
            let point = s["point"].as_str().unwrap_or_default();
            if s["device"] != device || !points.contains(&point) || s["quality"] != "good" {
                continue;
            }
            let (Some(v), Some(ts)) = (s["value"].as_f64(), s["ts_ms"].as_i64()) else {
                continue;
            };
            if v >= limit && best.as_ref().is_none_or(|b| ts < b.2) {
                best = Some((point.to_owned(), v, ts));
            }
        }
    }
    best
}

/// One run; the latency from the crossing sample to the ACK, in ms.
async fn run_once(py: &str, run: usize) -> anyhow::Result<i64> {
    let dir = tempfile::tempdir()?;
    let rcv = Receiver::start(py, &dir.path().join("rcv.log"), ReceiverOpts::default());
    std::fs::write(
        dir.path().join("link.toml"),
        format!(
            "account = \"1234\"\nack_timeout_ms = 1000\nattempts_per_path = 3\n\
             test_interval_ms = 0\n[[path]]\nname = \"arc\"\naddr = \"127.0.0.1:{}\"\n\
             transport = \"tcp\"\nsupervision_ms = 0\n",
            rcv.port
        ),
    )?;
    let mut sim = facility_sim::start(facility_sim::SimConfig::demo(
        facility_sim::default_profiles_dir(),
    ))
    .await
    .map_err(|e| anyhow::anyhow!("facility simulator: {e}"))?;
    // The center is not running (a free port nobody listens on).
    let dead = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let opts =
        facility_sim::demo::AgentOptions::new(&format!("mqtt://{dead}"), dir.path().join("spool"));
    let mut text = facility_sim::demo::agent_config(&sim.endpoints, &opts);
    text.push_str(
        r#"
[dc09]
link_config = "link.toml"

[[rack]]
id = "rack-z2"
number = 2
zone = "battery-room-2"
dc09_zone = 2
bms_max = "bms-z2/cell_temp_max"
temp1 = "bms-z2/rack_temp_1"
temp2 = "bms-z2/rack_temp_2"
smoke = "bms-z2/smoke"
# The two rack transmitters of one BMS share its converter: they never corroborate each other.
common_cause = { temp1 = 1, temp2 = 1 }
"#,
    );
    let cfg = dcim_edge_agent::config::parse("fire-authority.toml", &text, dir.path())
        .map_err(|e| anyhow::anyhow!("agent configuration: {e}"))?;
    let agent = dcim_edge_agent::Agent::start(cfg)?;
    let shared = agent.shared().clone();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(agent.run(stop_rx));

    // Steady first: the rack's inputs are polled and normal.
    let t0 = Instant::now();
    while first_crossing(&shared, "bms-z2", &["cell_temp_max"], 0.0).is_none() {
        anyhow::ensure!(
            t0.elapsed() < Duration::from_secs(10),
            "no bms-z2 sample spooled"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // 600 degC/min: 10 degC per 1 s poll, under the logic's implausible-jump limit.
    sim.command(&facility_sim::Command::parse("heat bms-z2 600").map_err(anyhow::Error::msg)?)
        .map_err(anyhow::Error::msg)?;
    let ack = loop {
        if let Some(r) = rcv
            .rows()
            .into_iter()
            .find(|r| r["code"] == "SA" && r["response"] == "ACK")
        {
            break r;
        }
        anyhow::ensure!(
            t0.elapsed() < Duration::from_secs(15),
            "no stage-3 alarm (SA) ACKed by the receiver: {:?}",
            rcv.rows()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    // The crossing sample reaches the spool with its telemetry batch (within max_delay).
    let t1 = Instant::now();
    let crossing = loop {
        if let Some(c) = first_crossing(
            &shared,
            "bms-z2",
            &["cell_temp_max", "rack_temp_1", "rack_temp_2"],
            STAGE3_C,
        ) {
            break c;
        }
        anyhow::ensure!(
            t1.elapsed() < Duration::from_secs(5),
            "no sample >= {STAGE3_C} spooled"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    sim.shutdown();

    let ack_ms = ack["ack_unix_ms"]
        .as_i64()
        .ok_or_else(|| anyhow::anyhow!("receiver row without ack_unix_ms: {ack}"))?;
    // Identity kept: zone 2, rack 2; each stage alarm once, in order.
    assert_eq!(
        (ack["ri"].as_str(), ack["unit"].as_str()),
        (Some("2"), Some("0002"))
    );
    let rows = rcv.rows();
    let alarms: Vec<&str> = rows
        .iter()
        .filter(|r| r["response"] == "ACK")
        .filter_map(|r| r["code"].as_str())
        .filter(|c| ["KS", "KA", "FA", "SA"].contains(c))
        .collect();
    assert_eq!(alarms, ["KS", "KA", "FA", "SA"], "{rows:?}");
    let latency = ack_ms - crossing.2;
    println!(
        "run {run}: {} = {:.1} degC sampled at {} -> SA ACKed at {ack_ms}: {latency} ms",
        crossing.0, crossing.1, crossing.2
    );
    assert!(latency >= 0, "ACK before the sample: clocks disagree");
    Ok(latency)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stage_3_in_the_simulator_is_acked_by_the_fire_authority_receiver() -> anyhow::Result<()> {
    let Some(py) = python("stage_3_in_the_simulator_is_acked_by_the_fire_authority_receiver")
    else {
        return Ok(());
    };
    let runs: usize = std::env::var("DCIM_FIRE_AUTHORITY_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    let mut lat = Vec::new();
    for run in 0..runs {
        lat.push(run_once(&py, run).await?);
    }
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "threshold sample -> DC-09 ACK over {runs} run(s): p50 {} ms, p99 {} ms, max {} ms",
        pct(0.50),
        pct(0.99),
        lat[lat.len() - 1]
    );
    Ok(())
}
