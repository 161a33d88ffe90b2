//! The embedded broker's ingest under load: acknowledged telemetry is never lost, and alarms
//! do not wait behind a telemetry backlog.
//!
//! - A burst ten times larger than rumqttd's log (made small here, so the test is cheap) while
//!   the ingest is stalled. Telemetry no longer passes through that log (the gate hands it to
//!   the ingest), but the gate's budget, sized from it, still bounds what waits in the server:
//!   without it the burst would pile up unbounded (and, through rumqttd, the log would wrap past
//!   the ingest and drop acknowledged batches: "Read cursor start jumped"); with it the agent
//!   is slowed, and every acknowledged sample is taken in, none skipped.
//! - A telemetry backlog that fills the gate's budget while the bulk lane is paused: a fire
//!   stage inside another agent's telemetry batch (it takes the budget's reserve for alarm
//!   samples) and an events batch are handled while no backlog batch has been taken in.

use crate::common;
use common::*;
use dcim_points::{Quality, Role, Sample, Value};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

fn sample(device: String, point: String, role: &str, value: f64, ts: i64) -> Sample {
    Sample {
        device,
        point,
        role: Role::new(role).unwrap(),
        labels: Default::default(),
        value: Some(Value::Number(value)),
        unit: String::new(),
        quality: Quality::Good,
        ts_ms: ts,
    }
}

/// Batch `seq` of agent a1: `n` rack temperatures (racks 0-49, points t0..).
fn rack_batch(seq: u64, n: usize) -> Vec<u8> {
    let ts = dcim_clock::now_ms() + seq as i64;
    let samples = (0..n)
        .map(|k| {
            sample(
                format!("rack-{}", k % 50),
                format!("t{}", k / 50),
                "rack.temp",
                20.0 + (seq % 7) as f64,
                ts,
            )
        })
        .collect();
    batch_of("a1", seq, samples)
}

async fn client(port: u16, id: &str, inflight: u16) -> (AsyncClient, EventLoop) {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_credentials(id, format!("{id}-secret"));
    o.set_keep_alive(Duration::from_secs(30));
    o.set_max_packet_size(8 << 20, 8 << 20);
    o.set_inflight(inflight);
    AsyncClient::new(o, 4096)
}

/// Drives an event loop, counting PUBACKs.
fn pump(mut el: EventLoop, acks: Arc<AtomicU64>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    acks.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
}

fn taken(server: &dcim_server::Server) -> u64 {
    server
        .app
        .metrics
        .ingest_samples_total
        .load(Ordering::Relaxed)
}

#[tokio::test]
async fn no_acknowledged_telemetry_is_lost_in_a_burst_larger_than_the_broker_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    // rumqttd's log: 3 segments of 128 KiB per filter; the burst is ~5 MB.
    cfg.broker.max_payload = 64 * 1024;
    cfg.broker.log_segment_bytes = 128 * 1024;
    cfg.broker.log_segments = 3;
    let log_bytes = 3 * 128 * 1024;
    let server = dcim_server::start(cfg).await.unwrap();
    let port = server.mqtt_addr.unwrap().port();
    let (c, el) = client(port, "a1", 100).await;
    let acks = Arc::new(AtomicU64::new(0));
    let _pump = pump(el, acks.clone());
    let batches: Vec<Vec<u8>> = (1..=500).map(|seq| rack_batch(seq, 100)).collect();
    let batch_bytes = batches[0].len();
    assert!(
        batch_bytes * batches.len() > 10 * log_bytes,
        "the burst is larger than the log"
    );

    // The ingest is stalled (the facility lock held) while the agent publishes.
    let stall = server.app.plant.facility.lock().await;
    let publisher = {
        let c = c.clone();
        tokio::spawn(async move {
            for b in batches {
                c.publish("dcim/v1/s1/a1/telemetry", QoS::AtLeastOnce, false, b)
                    .await
                    .unwrap();
            }
        })
    };
    // Backpressure: the acknowledgements stop while the ingest cannot drain.
    let mut last = u64::MAX;
    loop {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let now = acks.load(Ordering::Relaxed);
        if now == last {
            break;
        }
        last = now;
    }
    assert!(
        (last as usize) * batch_bytes < 2 * log_bytes,
        "{last} batches acknowledged while the ingest was stalled: the broker log would wrap"
    );
    drop(stall);

    publisher.await.unwrap();
    let mut c2 = 0;
    eventually("every acknowledged batch is taken in", || {
        c2 = acks.load(Ordering::Relaxed);
        let done = c2 == 500 && taken(&server) == 500 * 100;
        async move { done }
    })
    .await;
    let m = &server.app.metrics;
    assert_eq!(m.ingest_skipped_messages_total.load(Ordering::Relaxed), 0);
    assert_eq!(m.ingest_duplicate_batches_total.load(Ordering::Relaxed), 0);
    assert_eq!(taken(&server), c2 * 100, "accepted == acknowledged");
    server.shutdown().await;
}

#[tokio::test]
async fn alarms_and_events_pass_a_telemetry_backlog() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    // A small log, so that the backlog fills the gate's budget.
    cfg.broker.max_payload = 64 * 1024;
    cfg.broker.log_segment_bytes = 256 * 1024;
    cfg.broker.log_segments = 3;
    let server = dcim_server::start(cfg).await.unwrap();
    let port = server.mqtt_addr.unwrap().port();
    let mut live = server.app.live.subscribe();
    let (c1, el1) = client(port, "a1", 1000).await;
    let acks1 = Arc::new(AtomicU64::new(0));
    let _p1 = pump(el1, acks1.clone());
    let (c2, el2) = client(port, "a2", 10).await;
    let acks2 = Arc::new(AtomicU64::new(0));
    let _p2 = pump(el2, acks2.clone());

    // The bulk lane is paused: a1's telemetry piles up until the budget stops a1.
    let pause = server.app.intake.bulk_pause.write().await;
    let total = 100 * 100;
    for seq in 1..=100 {
        c1.publish(
            "dcim/v1/s1/a1/telemetry",
            QoS::AtLeastOnce,
            false,
            rack_batch(seq, 100),
        )
        .await
        .unwrap();
    }
    let mut last = u64::MAX;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = acks1.load(Ordering::Relaxed);
        if now == last {
            break;
        }
        last = now;
    }
    assert!(
        last > 0 && last < 100,
        "a1 is held by the budget: {last} acknowledged"
    );

    // Behind it, from a2: a fire stage inside an ordinary telemetry batch, and an event.
    let ts = dcim_clock::now_ms();
    let mut probe: Vec<Sample> = (0..100)
        .map(|k| sample("crah-1".into(), format!("t{k}"), "rack.temp", 21.0, ts))
        .collect();
    probe.push(sample(
        "crah-1".into(),
        "stage".into(),
        "fire.stage",
        3.0,
        ts,
    ));
    c2.publish(
        "dcim/v1/s1/a2/telemetry",
        QoS::AtLeastOnce,
        false,
        batch_of("a2", 1, probe),
    )
    .await
    .unwrap();
    let event = dcim_wire::encode(&dcim_wire::EventBatch {
        v: dcim_wire::VERSION,
        agent: "a2".into(),
        epoch: String::new(),
        events: vec![dcim_wire::Event {
            id: "a2:1".into(),
            seq: 1,
            ts_ms: ts,
            device: "crah-1".into(),
            kind: "device.comm_lost".into(),
            severity: dcim_wire::Severity::Trouble,
            message: "lost".into(),
            data: serde_json::Value::Null,
            test: false,
        }],
    });
    c2.publish("dcim/v1/s1/a2/events", QoS::AtLeastOnce, false, event)
        .await
        .unwrap();

    // Both are handled while no telemetry batch has been taken in.
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let m = live.recv().await.unwrap();
            if m.event == "alarm" && m.data.contains("fire-stage:crah-1") {
                return;
            }
        }
    })
    .await
    .expect("the fire alarm behind a full telemetry budget");
    eventually(
        "the events batch is acknowledged (after its commit)",
        || {
            let n = acks2.load(Ordering::Relaxed);
            async move { n == 2 }
        },
    )
    .await;
    assert_eq!(taken(&server), 0, "the bulk lane was paused throughout");

    // Then the backlog is taken in completely, the probe's batch once.
    drop(pause);
    eventually("the backlog is taken in", || {
        let done = acks1.load(Ordering::Relaxed) == 100 && taken(&server) == total + 101;
        async move { done }
    })
    .await;
    let m = &server.app.metrics;
    assert_eq!(m.ingest_priority_samples_total.load(Ordering::Relaxed), 1);
    assert_eq!(m.ingest_skipped_messages_total.load(Ordering::Relaxed), 0);
    server.shutdown().await;
}
