//! The demo starts in one call and serves health, the console and authenticated API routes.

use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_starts_and_serves_health_and_console() -> anyhow::Result<()> {
    let h = dcim_e2e::Harness::start().await?;
    let (status, body) = h.get_anonymous("/health").await?;
    assert_eq!(status, 200, "{body}");
    let (status, body) = h.get_anonymous("/console/").await?;
    assert_eq!(status, 200);
    assert!(
        body.contains("<html") || body.contains("<!doctype") || body.contains("<!DOCTYPE"),
        "{body}"
    );
    // No route but health (and the console's static files) without credentials.
    let (status, _) = h.get_anonymous("/api/alarms").await?;
    assert_eq!(status, 401);

    // The demo users can log in with the printed password.
    let client = reqwest::Client::builder().no_proxy().build()?;
    let r = client
        .post(h.url("/api/login"))
        .json(&serde_json::json!({"username": "operator", "password": dcim_e2e::demo::DEFAULT_PASSWORD}))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 200);

    // The site model is loaded, and data flows from the simulator through the agent.
    let site = h.get("/api/site").await?;
    assert!(site.to_string().contains("feed-a"), "site model not loaded");
    let v = dcim_e2e::wait_for(
        "meter-a's breaker state at the server",
        Duration::from_secs(30),
        || h.point("meter-a", "feed.breaker_closed"),
    )
    .await?;
    assert_eq!(v["value"], true, "{v}");
    assert_eq!(v["agent"], dcim_e2e::demo::AGENT);
    let (status, metrics) = h.get_text("/metrics").await?;
    assert_eq!(status, 200);
    assert!(metrics.contains("dcim_ingest_samples_total"), "{metrics}");
    h.shutdown().await;
    Ok(())
}
