//! History that lasts: the on-disk time-series buffer keeps every line while the store
//! (VictoriaMetrics, a real peer) is down and across a server restart, delivers them once the
//! store is back, and the console's history is then served by the store (the in-memory ring
//! of the restarted server is empty), saying which source answered and what it covers.
//!
//! Hazards: trends with holes after an outage or a restart that nobody was told about; a
//! history that reads an empty ring after a restart as "no data"; a server that drops lines
//! while the store is away.

use crate::common;
use common::*;
use dcim_server::config::InfluxConfig;

fn telemetry_at(seq: u64, ts_ms: i64, value: f64) -> Vec<u8> {
    batch(seq, vec![load_sample("ups-1", value, ts_ms)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_buffer_survives_a_store_outage_and_a_server_restart() {
    let Some((dir, vm_port, mut cfg)) = vm_test("this test") else {
        return;
    };
    cfg.influx = Some(InfluxConfig {
        batch_size: 10,
        queue_capacity: 10_000,
        buffer_max_mb: 64,
        ..influx(vm_port)
    });
    // Samples over the last 30 minutes, one a minute-ish, written while the store is down.
    let now = dcim_clock::now_ms();
    let base = now - 30 * 60_000;
    let ts = |i: u64| base + i as i64 * 60_000;
    let client = http();

    // First run: the store is down the whole time.
    let server = dcim_server::start(cfg.clone()).await.unwrap();
    let admin = users_with_tokens(&server).await[2].1.clone();
    let mut a1 = Agent::connect(&server, "a1").await;
    for i in 1..=15u64 {
        a1.send("dcim/v1/s1/a1/telemetry", telemetry_at(i, ts(i), i as f64))
            .await;
    }
    eventually("failed writes while the store is down", || async {
        metric(&client, &server, &admin, "dcim_influx_write_errors_total").await >= 1.0
    })
    .await;
    eventually("every line in the on-disk buffer", || async {
        let h: serde_json::Value =
            serde_json::from_str(&client.get(url(&server, "/health")).body_text().await).unwrap();
        h["checks"]["tsdb"]["status"] == "degraded"
            && metric(&client, &server, &admin, "dcim_tsdb_buffer_lines").await == 15.0
    })
    .await;
    // The backlog is counted in lines, whatever the batches (hazard: a queue gauge that
    // counts 15 lines as the 2 batches holding them reads as "almost nothing waiting").
    assert_eq!(
        metric(&client, &server, &admin, "dcim_influx_queue").await,
        15.0
    );
    assert_eq!(
        metric(
            &client,
            &server,
            &admin,
            "dcim_tsdb_buffer_appended_lines_total"
        )
        .await,
        15.0
    );
    assert_eq!(
        metric(&client, &server, &admin, "dcim_influx_lines_dropped_total").await,
        0.0
    );
    // History while the store is down: the ring answers, and says why.
    let h = get_json(
        &client,
        &url(
            &server,
            &format!("/api/points/ups-1/load/history?from={}&to={now}", base),
        ),
        &admin,
    )
    .await;
    assert_eq!(h["source"], "memory", "{h}");
    drop(a1);
    server.shutdown().await;

    // Second run, the store still down: the buffer is reopened with what it held.
    let server = dcim_server::start(cfg.clone()).await.unwrap();
    let admin = token_again(&server, "u-admin").await;
    assert!(metric(&client, &server, &admin, "dcim_tsdb_buffer_batches").await >= 1.0);
    assert_eq!(
        metric(&client, &server, &admin, "dcim_tsdb_buffer_lines").await,
        15.0,
        "the lines of the first run, counted at open"
    );
    let mut a1 = Agent::connect(&server, "a1").await;
    for i in 16..=25u64 {
        a1.send("dcim/v1/s1/a1/telemetry", telemetry_at(i, ts(i), i as f64))
            .await;
    }
    // The store comes back: everything of both runs arrives, nothing dropped.
    let _vm = start_vm(&dir.path().join("vm"), vm_port, &[]);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while metric(&client, &server, &admin, "dcim_influx_lines_written_total").await < 10.0
        || metric(&client, &server, &admin, "dcim_tsdb_buffer_batches").await > 0.0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the buffer was not delivered"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(
        metric(&client, &server, &admin, "dcim_influx_lines_dropped_total").await,
        0.0
    );
    let _ = client
        .get(format!("http://127.0.0.1:{vm_port}/internal/force_flush"))
        .send()
        .await;
    // The restarted server's ring holds only the second run; the store has both.
    let path = format!("/api/points/ups-1/load/history?from={base}&to={now}&step=60000");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let h = loop {
        let h = get_json(&client, &url(&server, &path), &admin).await;
        let n: u64 = h["buckets"]
            .as_array()
            .map(|b| b.iter().map(|b| b["n"].as_u64().unwrap_or(0)).sum())
            .unwrap_or(0);
        if h["source"].as_str().is_some_and(|s| s.starts_with("store")) && n == 25 {
            break h;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "history from the store: {h}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    };
    assert_eq!(h["covers"]["from"], base, "{h}");
    let first = &h["buckets"][0];
    assert_eq!(
        first["min"], 1.0,
        "the first run's samples, from the store: {h}"
    );
    assert!(h["sources"][0]["source"] == "store", "{h}");
    drop(a1);
    server.shutdown().await;
}
