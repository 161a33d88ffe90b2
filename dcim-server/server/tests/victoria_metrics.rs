//! Time-series writer against a real InfluxDB-v2-compatible store: VictoriaMetrics (Debian),
//! started on a free port with a temp data dir, then queried back. Also: the store being down
//! does not block ingest, and lines are delivered once it is back.

mod common;
use common::*;
use dcim_server::config::InfluxConfig;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

struct Vm(Child);
impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn vm_bin() -> Option<PathBuf> {
    [
        "/usr/bin/victoria-metrics",
        "/usr/local/bin/victoria-metrics",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

fn start_vm(dir: &std::path::Path, port: u16) -> Vm {
    Vm(Command::new(vm_bin().unwrap())
        .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
        .arg(format!("-storageDataPath={}", dir.display()))
        .arg("-retentionPeriod=100y")
        .arg("-search.disableCache")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap())
}

#[tokio::test]
async fn samples_reach_victoria_metrics_and_survive_its_outage() {
    if vm_bin().is_none() {
        if std::env::var("DCIM_REQUIRE_PEERS").as_deref() == Ok("1") {
            panic!("required peer missing: victoria-metrics (apt-get install victoria-metrics)");
        }
        println!("skipped: victoria-metrics is not installed (apt-get install victoria-metrics)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let vm_port = free_port();
    let mut cfg = config(&dir.path().join("data"));
    cfg.influx = Some(InfluxConfig {
        url: format!("http://127.0.0.1:{vm_port}"),
        org: "dcim".into(),
        bucket: "dcim".into(),
        token: Some("unused-by-vm".into()),
        token_env: None,
        batch_size: 100,
        flush_interval_ms: 100,
        queue_capacity: 1000,
        measurement: "dcim".into(),
        buffer_dir: None,
        buffer_max_mb: 64,
        query_url: Some(format!("http://127.0.0.1:{vm_port}")),
        query_timeout_ms: 3000,
    });
    // The store is down when the server starts and the first samples arrive.
    let server = dcim_server::start(cfg).await.unwrap();
    let tokens = users_with_tokens(&server).await;
    let admin = tokens[2].1.clone();
    let client = http();
    let mq = server.mqtt_addr.unwrap();
    let (c, mut el, r) = mqtt_agent(&mq.ip().to_string(), mq.port(), "a1", "a1-secret").await;
    r.unwrap();
    publish(
        &c,
        &mut el,
        "dcim/v1/s1/a1/telemetry",
        telemetry("a1", 1, "ups-1", 41.5),
    )
    .await
    .unwrap();
    eventually("a failed write", || async {
        metric(&client, &server, &admin, "dcim_influx_write_errors_total").await >= 1.0
    })
    .await;
    assert_eq!(
        metric(&client, &server, &admin, "dcim_influx_queue").await,
        1.0
    );

    let _vm = start_vm(&dir.path().join("vm"), vm_port);
    publish(
        &c,
        &mut el,
        "dcim/v1/s1/a1/telemetry",
        telemetry("a1", 2, "rack-7", 42.5),
    )
    .await
    .unwrap();
    eventually("both lines written", || async {
        metric(&client, &server, &admin, "dcim_influx_lines_written_total").await == 2.0
    })
    .await;
    assert_eq!(
        metric(&client, &server, &admin, "dcim_influx_lines_dropped_total").await,
        0.0
    );

    // Query back through VictoriaMetrics' export API (raw samples, no caching).
    let export = format!(
        "http://127.0.0.1:{vm_port}/api/v1/export?match[]={}&start=0",
        "%7B__name__%3D%22dcim_value%22%7D"
    );
    let fetch = || async {
        let _ = client
            .get(format!("http://127.0.0.1:{vm_port}/internal/force_flush"))
            .send()
            .await;
        let text = client
            .get(&export)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines().map(str::to_owned).collect::<Vec<_>>()
    };
    eventually("samples visible in VictoriaMetrics", || async {
        fetch().await.len() == 2
    })
    .await;
    let lines = fetch().await;
    let series: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
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
