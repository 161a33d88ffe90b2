//! Uplink replay throughput: a spool pre-filled with telemetry batches (as after an outage) is
//! published to a local mosquitto with QoS 1 until every batch is acknowledged.
//!
//! `cargo bench -p dcim-edge-agent --bench uplink` (needs /usr/sbin/mosquitto)

#[path = "../tests/it/common/mod.rs"]
mod common;

use dcim_edge_agent::ingest::Shared;
use dcim_edge_agent::{config, payload, uplink};
use dcim_spool::{Class, FsyncPolicy, Spool, SpoolConfig};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BATCHES: u64 = 5_000;
const SAMPLES: usize = 100;

fn main() {
    common::bench_with_mosquitto(|| async {
        let dir = tempfile::tempdir().unwrap();
        let port = common::free_port();
        let _broker = common::Mosquitto::start(&dir.path().join("broker"), port);
        let mut sc = SpoolConfig::new(dir.path().join("spool"));
        sc.max_bytes = 1 << 30;
        sc.telemetry_fsync = FsyncPolicy::Never;
        sc.consumers = vec!["center".into()];
        let (mut spool, _) = Spool::open(sc).unwrap();
        let (samples, _) =
            dcim_edge_agent::devices::synthetic::tick("gen", SAMPLES, 0, 1, 1_700_000_000_000);
        let mut bytes = 0u64;
        for _ in 0..BATCHES {
            spool
                .append(Class::Telemetry, SAMPLES as u32, 0, |seq| {
                    let p = payload::telemetry_record(
                        "bench",
                        "0123456789abcdef",
                        seq,
                        samples.clone(),
                    );
                    bytes += p.len() as u64;
                    p
                })
                .unwrap();
        }
        let shared = Shared::new("s".into(), "bench".into(), vec![], spool);
        let text = format!(
            "site = \"s\"\nagent = \"bench\"\n[spool]\ndir = \"x\"\n[[broker]]\nname = \"center\"\nurl = \"mqtt://127.0.0.1:{port}\"\n"
        );
        let cfg = config::parse("bench.toml", &text, dir.path()).unwrap();
        let status = Arc::new(uplink::LinkStatus::default());
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let start = Instant::now();
        let task = tokio::spawn(uplink::run(
            shared.clone(),
            cfg.brokers[0].clone(),
            status,
            Duration::from_secs(30),
            stop_rx,
        ));
        loop {
            let acked = shared.with_spool(|s| s.acked("center", Class::Telemetry));
            if acked >= BATCHES {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(120), "too slow");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let secs = start.elapsed().as_secs_f64();
        stop_tx.send(true).unwrap();
        let _ = task.await;
        println!(
            "uplink replay: {BATCHES} batches x {SAMPLES} samples ({:.1} MB) acknowledged in {secs:.2} s: \
             {:.0} batches/s, {:.0} samples/s, {:.1} MB/s (inflight window 32)",
            bytes as f64 / 1e6,
            BATCHES as f64 / secs,
            (BATCHES as usize * SAMPLES) as f64 / secs,
            bytes as f64 / 1e6 / secs
        );
    });
}
