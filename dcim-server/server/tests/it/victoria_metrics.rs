//! Time-series writer against a real InfluxDB-v2-compatible store: VictoriaMetrics (Debian),
//! started on a free port with a temp data dir, then queried back. Also: the store being down
//! does not block ingest, and lines are delivered once it is back.

use crate::common;
use common::*;
use dcim_server::config::InfluxConfig;

/// Waits until the server counts two lines written to the store.
async fn both_lines_written(client: &reqwest::Client, server: &dcim_server::Server, admin: &str) {
    let name = "dcim_influx_lines_written_total";
    eventually_metric("both lines written", client, server, admin, name, 2.0).await;
}

#[tokio::test]
async fn samples_reach_victoria_metrics_and_survive_its_outage() {
    let Some((dir, vm_port, mut cfg)) = vm_test("this test") else {
        return;
    };
    cfg.influx = Some(InfluxConfig {
        token: Some("unused-by-vm".into()),
        buffer_max_mb: 64,
        ..influx(vm_port)
    });
    // The store is down when the server starts and the first samples arrive.
    let (server, client, Tokens { admin, .. }) = started(cfg).await;
    let mut a1 = Agent::connect(&server, "a1").await;
    a1.send("dcim/v1/s1/a1/telemetry", telemetry("a1", 1, "ups-1", 41.5))
        .await;
    eventually("a failed write", || async {
        metric(&client, &server, &admin, "dcim_influx_write_errors_total").await >= 1.0
    })
    .await;
    assert_eq!(
        metric(&client, &server, &admin, "dcim_influx_queue").await,
        1.0
    );

    let _vm = start_vm(&dir.path().join("vm"), vm_port, &[]);
    a1.send(
        "dcim/v1/s1/a1/telemetry",
        telemetry("a1", 2, "rack-7", 42.5),
    )
    .await;
    both_lines_written(&client, &server, &admin).await;
    assert_eq!(
        metric(&client, &server, &admin, "dcim_influx_lines_dropped_total").await,
        0.0
    );

    // Query back through VictoriaMetrics' export API (raw samples, no caching).
    eventually("samples visible in VictoriaMetrics", || async {
        vm_export(&client, vm_port).await.len() == 2
    })
    .await;
    let series = vm_export(&client, vm_port).await;
    let ups = series
        .iter()
        .find(|s| s["metric"]["device"] == "ups-1")
        .expect("ups-1 series");
    assert_eq!(ups["metric"]["site"], "s1");
    assert_eq!(ups["metric"]["agent"], "a1");
    assert_eq!(ups["metric"]["role"], "ups.load_pct");
    assert_eq!(ups["metric"]["quality"], "good");
    assert_eq!(ups["values"][0], 41.5);
    assert_eq!(ups["timestamps"][0], 1_700_000_000_001i64);
    let rack = series
        .iter()
        .find(|s| s["metric"]["device"] == "rack-7")
        .expect("rack-7 series");
    assert_eq!(rack["values"][0], 42.5);
    server.shutdown().await;
}

/// The console's history asks VictoriaMetrics for the series under the name it really stores:
/// the measurement as written plus `_value`, selected by `__name__` (a measurement such as
/// `dcim-lab.ts` is no PromQL identifier, and VictoriaMetrics does not rename it).
///
/// Hazard: a history query for a name the store does not hold answers an empty series, which
/// the console would draw as "no samples in this range" although the store has them all.
#[tokio::test]
async fn history_is_read_from_the_store_under_the_name_it_stores() {
    let Some((_dir, vm_port, mut cfg, _vm)) = vm_running("this test") else {
        return;
    };
    let measurement = "dcim-lab.ts";
    cfg.influx = Some(InfluxConfig {
        measurement: measurement.into(),
        ..influx(vm_port)
    });
    let (server, client, Tokens { admin, .. }) = started(cfg).await;
    let mut a1 = Agent::connect(&server, "a1").await;
    // Samples from 2023 (the telemetry helper's times): older than the in-memory ring holds,
    // so only the store can answer.
    for (seq, v) in [(1, 41.5), (2, 43.5)] {
        a1.send("dcim/v1/s1/a1/telemetry", telemetry("a1", seq, "ups-1", v))
            .await;
    }
    both_lines_written(&client, &server, &admin).await;
    let t0 = 1_700_000_000_001i64;
    let path = format!(
        "/api/points/ups-1/load/history?from={}&to={}&step=60000",
        t0 - 60_000,
        t0 + 60_000
    );
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let h = loop {
        let _ = client
            .get(format!("http://127.0.0.1:{vm_port}/internal/force_flush"))
            .send()
            .await;
        let h = get_json(&client, &url(&server, &path), &admin).await;
        if h["buckets"].as_array().is_some_and(|b| !b.is_empty()) {
            break h;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no history from the store: {h}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(h["source"], "store", "{h}");
    let b = &h["buckets"][0];
    assert_eq!(b["n"], 2, "{h}");
    assert_eq!(b["min"], 41.5, "{h}");
    assert_eq!(b["max"], 43.5, "{h}");
    assert_eq!(b["last"], 43.5, "{h}");
    drop(a1);
    server.shutdown().await;
}

/// Samples of alarm-rule roles (fire stages, cell temperatures) are taken by the ingest's
/// priority lane ahead of their batch; the bulk lane then finds them no longer new. Both lanes
/// must write what they took in to the store.
///
/// Hazard: the time series of exactly the points that matter most in a fire (stages, cell
/// temperatures) missing from the store and its dashboards, while every other point is there.
#[tokio::test]
async fn alarm_rule_samples_reach_the_store_too() {
    let Some((_dir, vm_port, mut cfg, _vm)) = vm_running("this test") else {
        return;
    };
    cfg.influx = Some(InfluxConfig {
        query_url: None,
        ..influx(vm_port)
    });
    let (server, client, Tokens { admin, .. }) = started(cfg).await;
    let mut a1 = Agent::connect(&server, "a1").await;
    let sample = |device: &str, role: &str, v: f64| dcim_points::Sample {
        device: device.into(),
        point: role.replace('.', "_"),
        role: dcim_points::Role::new(role).unwrap(),
        labels: Default::default(),
        value: Some(dcim_points::Value::Number(v)),
        unit: String::new(),
        quality: dcim_points::Quality::Good,
        ts_ms: 1_700_000_000_000,
    };
    let batch = dcim_wire::encode(&dcim_wire::TelemetryBatch {
        v: dcim_wire::VERSION,
        agent: "a1".into(),
        epoch: String::new(),
        seq: 1,
        samples: vec![
            sample("rack-1", "fire.stage", 1.0),
            sample("rack-1", "battery.cell_temp.max", 61.5),
            sample("ups-1", "ups.load_pct", 40.0),
        ],
    });
    a1.send("dcim/v1/s1/a1/telemetry", batch).await;
    eventually("three lines written", || async {
        metric(&client, &server, &admin, "dcim_influx_lines_written_total").await >= 3.0
    })
    .await;
    let mut roles = Vec::new();
    for _ in 0..50 {
        roles = vm_export(&client, vm_port)
            .await
            .iter()
            .map(|v| v["metric"]["role"].as_str().unwrap().to_string())
            .collect();
        roles.sort();
        if roles.len() == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        roles,
        ["battery.cell_temp.max", "fire.stage", "ups.load_pct"],
        "every sample of the batch is in the store"
    );
    assert_eq!(
        metric(&client, &server, &admin, "dcim_influx_lines_written_total").await,
        3.0,
        "each sample written once"
    );
    drop(a1);
    server.shutdown().await;
}
