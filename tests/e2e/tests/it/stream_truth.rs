//! What an agent's stream says is never silently absorbed, through the demo (embedded broker,
//! the demo's edge agent):
//!
//! 1. A sample stamped in 2100 (an agent clock gone wrong) is refused and counted, the agent
//!    gets the `agent-clock-ahead` trouble, and the point keeps following the real readings.
//!    Hazard: the 2100 sample became the latest value and every later reading of the battery
//!    went to history only, so alarms ran on a frozen value.
//! 2. The agent's spool is wiped (disk replaced) and the agent restarted: its sequence numbers
//!    start again at 1 under a new epoch, and the server accepts the new stream (the points move
//!    on), audits and alarms it (`agent-spool-new`, restarted). Hazard: the server PUBACKed and
//!    dropped 38 batches / 616 items as duplicates of the old stream, with no log line.

use serde_json::Value;
use std::time::Duration;

const FUTURE_MS: i64 = 4_102_444_800_000; // 2100-01-01

/// Publishes one telemetry batch as the demo agent (its credentials, another client id).
async fn publish_as_agent(
    h: &dcim_e2e::Harness,
    batch: &dcim_wire::TelemetryBatch,
) -> anyhow::Result<()> {
    let addr = h.demo.server.mqtt_addr.expect("embedded broker");
    let (user, pass) = h.demo.agent_config.brokers[0]
        .credentials
        .clone()
        .expect("agent credentials");
    let mut o = rumqttc::MqttOptions::new(
        format!("{}-e2e", dcim_e2e::demo::AGENT),
        addr.ip().to_string(),
        addr.port(),
    );
    o.set_credentials(user, pass);
    let (c, mut el) = rumqttc::AsyncClient::new(o, 10);
    let topic = format!(
        "dcim/v1/{}/{}/telemetry",
        dcim_e2e::demo::SITE,
        dcim_e2e::demo::AGENT
    );
    c.publish(
        topic,
        rumqttc::QoS::AtLeastOnce,
        false,
        dcim_wire::encode(batch),
    )
    .await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let ev = tokio::time::timeout_at(deadline, el.poll()).await??;
        if let rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_)) = ev {
            break;
        }
    }
    let _ = c.disconnect().await;
    Ok(())
}

fn epoch_of(spool: &std::path::Path) -> anyhow::Result<String> {
    let meta: Value = serde_json::from_slice(&std::fs::read(spool.join("meta.json"))?)?;
    Ok(meta["epoch"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn future_samples_are_refused_and_a_wiped_spool_is_a_new_stream() -> anyhow::Result<()> {
    let mut h = dcim_e2e::Harness::start().await?;
    h.wait_steady(Duration::from_secs(60)).await?;

    // 1. A sample from 2100 for the battery room's hottest cell.
    let now = dcim_clock::now_ms();
    let sample = |value: f64, ts_ms: i64| dcim_points::Sample {
        device: "bms-z2".into(),
        point: "cell_temp_max".into(),
        role: dcim_points::Role::new("battery.cell_temp.max").unwrap(),
        labels: Default::default(),
        value: Some(dcim_points::Value::Number(value)),
        unit: "degC".into(),
        quality: dcim_points::Quality::Good,
        ts_ms,
    };
    let before_refused = h.metric("dcim_ingest_future_samples_total").await?;
    publish_as_agent(
        &h,
        &dcim_wire::TelemetryBatch {
            v: dcim_wire::VERSION,
            agent: dcim_e2e::demo::AGENT.into(),
            // Its own stream, so that the agent's real one is left alone.
            epoch: "e2e-clock".into(),
            seq: 1,
            samples: vec![sample(20.0, FUTURE_MS)],
        },
    )
    .await?;
    let clock = dcim_e2e::wait_for(
        "the agent-clock-ahead trouble",
        Duration::from_secs(15),
        || async {
            Ok(
                h.alarm(&format!("agent-clock-ahead:{}", dcim_e2e::demo::AGENT))
                    .await?
                    .filter(|a| a["active"] == true),
            )
        },
    )
    .await?;
    assert_eq!(clock["grade"], 3, "{clock}");
    assert!(
        clock["message"]
            .as_str()
            .is_some_and(|m| m.contains("ahead of the server's clock")),
        "{clock}"
    );
    assert_eq!(
        h.metric("dcim_ingest_future_samples_total").await? - before_refused,
        1.0
    );
    // The point follows the real readings: never the 2100 timestamp, and it moves on.
    let p = h
        .point("bms-z2", "battery.cell_temp.max")
        .await?
        .expect("the point");
    let ts = p["ts_ms"].as_i64().unwrap_or(0);
    assert!(ts < now + 60_000, "the point froze at {ts}: {p}");
    dcim_e2e::wait_for("a newer real reading", Duration::from_secs(30), || async {
        Ok(h.point("bms-z2", "battery.cell_temp.max")
            .await?
            .filter(|q| q["ts_ms"].as_i64().is_some_and(|t| t > ts && t < FUTURE_MS)))
    })
    .await?;
    // The injected stream was a new epoch of a known agent: reported too. Acknowledge it so
    // that the wipe below is seen on its own.
    let spool_alarm = format!("agent-spool-new:{}", dcim_e2e::demo::AGENT);
    let a = dcim_e2e::wait_for(
        "the first new-stream trouble",
        Duration::from_secs(15),
        || async { h.alarm(&spool_alarm).await },
    )
    .await?;
    assert_eq!(a["base"], "rtn_unacknowledged", "{a}");
    let (status, body) = h
        .post(
            &format!("/api/alarms/{spool_alarm}/ack"),
            serde_json::json!({}),
        )
        .await?;
    assert_eq!(status, 200, "{body}");

    // 2. The agent's spool is wiped and the agent restarted.
    let spool = h.demo.agent_config.spool.dir.clone();
    let old_epoch = epoch_of(&spool)?;
    let duplicates_before = h.metric("dcim_ingest_duplicate_items_total").await?;
    let probe = h
        .point("ups-z1", "ups.output_kw")
        .await?
        .expect("a UPS point");
    let restart_ms = dcim_clock::now_ms();
    h.demo.restart_agent(true).await?;
    let new_epoch = epoch_of(&spool)?;
    assert_ne!(new_epoch, old_epoch, "a wiped spool is a new epoch");
    // The new stream is accepted: points move on after the restart.
    dcim_e2e::wait_for(
        "readings of the new stream",
        Duration::from_secs(30),
        || async {
            Ok(h.point("ups-z1", "ups.output_kw")
                .await?
                .filter(|q| q["ts_ms"].as_i64().is_some_and(|t| t > restart_ms)))
        },
    )
    .await?;
    // Reported: audited with the old and new epochs, and alarmed (restarted from seq 1).
    let audit = dcim_e2e::wait_for(
        "the agent.spool_epoch audit record",
        Duration::from_secs(15),
        || async {
            let a = h.get("/api/audit?limit=10000").await?;
            Ok(a["audit"].as_array().and_then(|rows| {
                rows.iter()
                    .find(|r| {
                        r["action"] == "agent.spool_epoch" && r["detail"]["epoch"] == new_epoch
                    })
                    .cloned()
            }))
        },
    )
    .await?;
    assert_eq!(audit["detail"]["restarted"], true, "{audit}");
    assert!(
        audit["detail"]["previous"]
            .as_array()
            .is_some_and(|p| p.iter().any(|e| e == old_epoch.as_str())),
        "{audit}"
    );
    let a = dcim_e2e::wait_for(
        "the new-stream trouble again",
        Duration::from_secs(15),
        || async {
            Ok(h.alarm(&spool_alarm)
                .await?
                .filter(|a| a["base"] == "rtn_unacknowledged"))
        },
    )
    .await?;
    assert!(
        a["message"]
            .as_str()
            .is_some_and(|m| m.contains("started over")),
        "{a}"
    );
    let duplicates = h.metric("dcim_ingest_duplicate_items_total").await? - duplicates_before;
    println!(
        "2100 sample refused ({}); spool wiped: epoch {old_epoch} -> {new_epoch}, accepted \
         (duplicate items meanwhile: {duplicates}); probe {}",
        clock["message"], probe["ts_ms"]
    );
    assert!(
        duplicates < 10.0,
        "the new stream was dropped as duplicates: {duplicates} items"
    );
    h.shutdown().await;
    Ok(())
}
