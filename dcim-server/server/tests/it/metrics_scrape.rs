//! `/metrics` scraped the way Prometheus does it, by a real scraper: VictoriaMetrics' built-in
//! Prometheus scraper (`-promscrape.config`) reads the server's main listener with the
//! `[metrics]` scrape token, the metrics listener without credentials, and the main listener
//! with a wrong token and with none (both refused). The same is checked request by request.
//!
//! Hazards: Prometheus cannot scrape the server (no account, or a format it does not parse), so
//! the detector of failures is itself unwatched; a scrape token that opens the rest of the API;
//! a metrics listener that serves more than `/metrics` and `/health` without authentication.

use crate::common;
use common::*;
use std::time::Duration;

const TOKEN: &str = "scrape-token-0123456789";

async fn status(req: reqwest::RequestBuilder) -> (u16, String, String) {
    let r = req.send().await.unwrap();
    let s = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (s, ct, r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_with_the_token_and_on_the_metrics_listener() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.metrics.listen = Some("127.0.0.1:0".parse().unwrap());
    cfg.metrics.scrape_token = Some(TOKEN.into());
    let server = dcim_server::start(cfg).await.unwrap();
    let main = server.http_addr;
    let own = server.metrics_addr.expect("the metrics listener");
    let tokens = users_with_tokens(&server).await;
    let viewer = tokens[0].1.clone();
    let client = http();

    // Request by request.
    let m = format!("http://{main}/metrics");
    let (s, ct, body) = status(client.get(&m).bearer_auth(TOKEN)).await;
    assert_eq!(s, 200);
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    for name in [
        "dcim_build_info",
        "process_resident_memory_bytes",
        "dcim_ingest_to_alarm_seconds_bucket",
    ] {
        assert!(body.contains(name), "{name} missing");
    }
    assert!(
        body.trim_end().ends_with("# EOF"),
        "OpenMetrics ends with # EOF"
    );
    assert_eq!(status(client.get(&m)).await.0, 401, "no credentials");
    assert_eq!(
        status(client.get(&m).bearer_auth("scrape-token-0123456788"))
            .await
            .0,
        401,
        "a wrong token"
    );
    assert_eq!(status(client.get(&m).bearer_auth(&viewer)).await.0, 200);
    for path in [
        "/api/alarms",
        "/api/points",
        "/api/audit",
        "/api/openapi.json",
    ] {
        assert_eq!(
            status(
                client
                    .get(format!("http://{main}{path}"))
                    .bearer_auth(TOKEN)
            )
            .await
            .0,
            401,
            "the scrape token opens {path}"
        );
    }
    let (s, _, body) = status(client.get(format!("http://{own}/metrics"))).await;
    assert_eq!(s, 200);
    assert!(body.contains("dcim_build_info"));
    // /health answers there too; a server without a site model is healthy (its energy
    // sampler has nothing to meter and is no failed task).
    let (s, ct, h) = status(client.get(format!("http://{own}/health"))).await;
    assert_eq!(s, 200, "{h}");
    assert!(ct.starts_with("application/json"), "{ct}");
    for path in ["/api/alarms", "/api/points", "/console/", "/api/login"] {
        assert_eq!(
            status(client.get(format!("http://{own}{path}"))).await.0,
            404,
            "the metrics listener serves {path}"
        );
    }

    // A real scraper.
    if !vm_or_skip("the scrape by VictoriaMetrics") {
        server.shutdown().await;
        return;
    }
    let scrape = dir.path().join("scrape.yml");
    std::fs::write(
        &scrape,
        format!(
            r#"global:
  scrape_interval: 1s
scrape_configs:
  - job_name: token
    bearer_token: {TOKEN}
    static_configs: [{{targets: ["{main}"]}}]
  - job_name: listener
    static_configs: [{{targets: ["{own}"]}}]
  - job_name: wrong-token
    bearer_token: not-the-scrape-token
    static_configs: [{{targets: ["{main}"]}}]
  - job_name: anonymous
    static_configs: [{{targets: ["{main}"]}}]
"#
        ),
    )
    .unwrap();
    let port = free_port();
    let _vm = start_vm(
        &dir.path().join("vm"),
        port,
        &[format!("-promscrape.config={}", scrape.display())],
    );
    let query = |q: &str| {
        let url = format!(
            "http://127.0.0.1:{port}/api/v1/query?query={}&nocache=1",
            dcim_server::influx::urlencode(q)
        );
        let client = client.clone();
        async move {
            let r = client.get(url).send().await.ok()?;
            let v: serde_json::Value = serde_json::from_str(&r.text().await.ok()?).ok()?;
            let mut out: Vec<(String, f64)> = v["data"]["result"]
                .as_array()?
                .iter()
                .map(|s| {
                    (
                        s["metric"]["job"].as_str().unwrap_or_default().to_string(),
                        s["value"][1].as_str().unwrap().parse().unwrap(),
                    )
                })
                .collect();
            out.sort_by(|a, b| a.0.cmp(&b.0));
            Some(out)
        }
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let up = loop {
        let _ = client
            .get(format!("http://127.0.0.1:{port}/internal/force_flush"))
            .send()
            .await;
        if let Some(up) = query("up").await
            && up.len() == 4
        {
            break up;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "VictoriaMetrics did not scrape four targets"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        up,
        vec![
            ("anonymous".into(), 0.0),
            ("listener".into(), 1.0),
            ("token".into(), 1.0),
            ("wrong-token".into(), 0.0),
        ]
    );
    // What it scraped parsed into series: the build info of both scrapes that succeeded.
    let build = query("dcim_build_info").await.unwrap();
    let jobs: Vec<&str> = build.iter().map(|(j, _)| j.as_str()).collect();
    assert_eq!(jobs, ["listener", "token"], "{build:?}");
    assert!(build.iter().all(|(_, v)| *v == 1.0));
    let hist = query("count by (job) (dcim_ingest_to_alarm_seconds_bucket)")
        .await
        .unwrap();
    assert_eq!(hist.len(), 2, "histogram buckets scraped: {hist:?}");
    server.shutdown().await;
}
