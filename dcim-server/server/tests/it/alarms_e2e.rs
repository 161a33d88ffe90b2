//! Agent -> embedded broker -> ingest -> redundancy + alarm engines -> committed journal -> SSE,
//! on the demo site: a utility feed opens, power redundancy drops from 2N, a grade-2 alarm and
//! an incident appear; an operator acknowledges it (the fire authority cannot); everything is
//! still there after a restart.

use crate::common;
use common::*;
use dcim_points::{Sample, Value};
use std::time::Duration;
use tokio::sync::mpsc;

/// Collects `(event, data)` of the live stream.
async fn live(
    client: &reqwest::Client,
    base: &str,
    token: &str,
) -> mpsc::UnboundedReceiver<(String, serde_json::Value)> {
    let resp = client
        .get(format!("{base}/api/stream"))
        .bearer_auth(token)
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut resp = resp;
        let mut buf = String::new();
        let mut event = String::new();
        while let Ok(Some(chunk)) = resp.chunk().await {
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(i) = buf.find('\n') {
                let line: String = buf.drain(..=i).collect();
                let line = line.trim_end();
                if let Some(e) = line.strip_prefix("event: ") {
                    event = e.to_string();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    let v = serde_json::from_str(d).unwrap_or(serde_json::Value::Null);
                    if tx.send((event.clone(), v)).is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}

#[tokio::test]
async fn feed_loss_raises_a_grade_2_redundancy_alarm_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let server = dcim_server::start(site_config(dir.path())).await.unwrap();
    let tokens = users_with_tokens(&server).await;
    let (operator, admin, fire) = (
        tokens[1].1.clone(),
        tokens[2].1.clone(),
        tokens[3].1.clone(),
    );
    let client = http();
    let base = format!("http://{}", server.http_addr);
    let site = dcim_site::Site::load(&demo_site()).unwrap();
    let now = dcim_clock::now_ms();
    let healthy = dcim_site::fixture::healthy_samples(&site, now);

    let mq = server.mqtt_addr.unwrap();
    let (c, mut el, r) = mqtt_agent(&mq.ip().to_string(), mq.port(), "a1", "a1-secret").await;
    r.unwrap();
    let mut seq = 0;
    for chunk in healthy.chunks(500) {
        seq += 1;
        publish(&c, &mut el, "dcim/v1/demo/a1/telemetry", batch(seq, chunk))
            .await
            .unwrap();
    }
    eventually_metric(
        "all healthy samples ingested",
        &client,
        &server,
        &admin,
        "dcim_points",
        healthy.len() as f64,
    )
    .await;
    let red = get_json(&client, &format!("{base}/api/site/redundancy"), &admin).await;
    let power = red["subsystems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["subsystem"] == "power")
        .unwrap()
        .clone();
    assert_eq!(power["current"], power["designed"], "healthy: {power}");
    // The ticker has run on the healthy site: nothing is active.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let alarms = get_json(&client, &format!("{base}/api/alarms"), &admin).await;
    assert_eq!(alarms["alarms"].as_array().unwrap().len(), 0, "{alarms}");

    // What-if before anything fails: feed A alone costs redundancy, not power.
    let w = get_json(
        &client,
        &format!("{base}/api/site/whatif?fail=feed-a"),
        &fire,
    )
    .await;
    assert!(w["loses_power"].as_array().unwrap().is_empty(), "{w}");
    assert!(!w["loses_redundancy"].as_array().unwrap().is_empty(), "{w}");

    let mut stream = live(&client, &base, &fire).await;
    let open: Vec<Sample> = healthy
        .iter()
        .filter(|s| s.device == "meter-a" && s.role.as_str() == "feed.breaker_closed")
        .map(|s| Sample {
            value: Some(Value::Bool(false)),
            ts_ms: dcim_clock::now_ms(),
            ..s.clone()
        })
        .collect();
    assert!(!open.is_empty());
    seq += 1;
    publish(
        &c,
        &mut el,
        "dcim/v1/demo/a1/telemetry",
        batch(seq, open.clone()),
    )
    .await
    .unwrap();

    // The redundancy alarm arrives on the live stream (after its journal row was committed).
    let record = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let (ev, data) = stream.recv().await.expect("stream open");
            if ev == "alarm"
                && data["alarm"].as_str().unwrap_or("").contains("power")
                && data["event"]["type"] == "activated"
            {
                return data;
            }
        }
    })
    .await
    .expect("no power redundancy alarm within 10 s");
    assert_eq!(record["grade"], 2, "losing 2N is grade 2: {record}");
    let alarm_id = record["alarm"].as_str().unwrap().to_string();
    let journal = get_json(
        &client,
        &format!("{base}/api/alarms/{alarm_id}/journal"),
        &fire,
    )
    .await;
    assert!(
        !journal["journal"].as_array().unwrap().is_empty(),
        "announced before stored"
    );

    let alarms = get_json(&client, &format!("{base}/api/alarms"), &admin).await;
    let list = alarms["alarms"].as_array().unwrap();
    assert!(
        list.iter().all(|a| a["grade"].as_u64() != Some(1)),
        "no grade-1 alarm for a feed loss: {alarms}"
    );
    let incidents = get_json(&client, &format!("{base}/api/incidents"), &admin).await;
    assert_eq!(
        incidents["incidents"].as_array().unwrap().len(),
        1,
        "{incidents}"
    );

    // The fire authority cannot acknowledge; an operator can.
    let ack = |token: String| {
        let client = client.clone();
        let url = format!("{base}/api/alarms/{alarm_id}/ack");
        async move { client.post(url).bearer_auth(token).send().await.unwrap() }
    };
    assert_eq!(ack(fire.clone()).await.status(), 403);
    let r = ack(operator.clone()).await;
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(body["alarm"]["acked_by"], "u-operator", "{body}");
    assert_eq!(
        ack(operator.clone()).await.status(),
        409,
        "a second ack is refused"
    );
    let audit = get_json(&client, &format!("{base}/api/audit"), &admin).await;
    assert!(
        audit["audit"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["action"] == "alarm.ack" && a["actor"] == "u-operator"),
        "{audit}"
    );
    // A note in the incident journal, exported as Markdown.
    let r = client
        .post(format!("{base}/api/incidents/1/note"))
        .bearer_auth(&operator)
        .body(r#"{"text":"switching to line B confirmed"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    drop(c);
    server.shutdown().await;

    // Restart on the same data dir: journal, audit and incidents are still there.
    let server = dcim_server::start(site_config(dir.path())).await.unwrap();
    let base = format!("http://{}", server.http_addr);
    let journal = get_json(
        &client,
        &format!("{base}/api/alarms/{alarm_id}/journal"),
        &admin,
    )
    .await;
    let events: Vec<&str> = journal["journal"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["record"]["event"]["type"].as_str().unwrap())
        .collect();
    assert!(
        events.contains(&"activated") && events.contains(&"acknowledged"),
        "{events:?}"
    );
    let md = client
        .get(format!("{base}/api/incidents/1/export?format=markdown"))
        .bearer_auth(&admin)
        .body_text()
        .await;
    assert!(md.contains("switching to line B confirmed"), "{md}");
    server.shutdown().await;
}
