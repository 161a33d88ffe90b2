//! Agents through the embedded broker: credentials, topic ACLs at the gate, device ownership at
//! ingest, de-duplication of replayed batches.

use crate::common;
use common::*;

#[tokio::test]
async fn agents_cannot_publish_or_subscribe_as_another_agent() {
    let dir = tempfile::tempdir().unwrap();
    let (server, client, Tokens { admin, .. }) = started(config(dir.path())).await;
    let mq = server.mqtt_addr.unwrap();
    let (host, port) = (mq.ip().to_string(), mq.port());

    // Wrong password, and a1's password with a2's name: refused at CONNECT.
    let (_c, _el, r) = mqtt_agent(&host, port, "a1", "wrong").await;
    assert!(r.is_err(), "bad password accepted");
    let (_c, _el, r) = mqtt_agent(&host, port, "a2", "a1-secret").await;
    assert!(r.is_err(), "a1's password accepted for a2");

    // a1 publishes its own telemetry: accepted.
    let mut a1 = Agent::connect(&server, "a1").await;
    a1.send("dcim/v1/s1/a1/telemetry", telemetry("a1", 1, "ups-1", 40.0))
        .await;
    eventually("a1's point", || async {
        get_json(&client, &url(&server, "/api/points?device=ups-1"), &admin).await["points"]
            .as_array()
            .unwrap()
            .len()
            == 1
    })
    .await;

    // Its recent history, kept in memory: one bucket holding the sample.
    let h = get_json(
        &client,
        &url(
            &server,
            "/api/points/ups-1/load/history?from=0&to=1800000000000",
        ),
        &admin,
    )
    .await;
    assert_eq!(
        (h["site"].as_str(), h["resolution_ms"].as_i64()),
        (Some("s1"), Some(60_000))
    );
    let b = h["buckets"].as_array().unwrap();
    assert_eq!(b.len(), 1, "{h}");
    assert_eq!(
        (b[0]["n"].as_u64(), b[0]["last"].as_f64()),
        (Some(1), Some(40.0))
    );
    assert_eq!(
        b[0]["t_ms"].as_i64(),
        Some(1_700_000_000_000 / 60_000 * 60_000)
    );
    for (q, status) in [
        ("/api/points/ups-1/nope/history", 404),
        ("/api/points/ups-1/load/history?from=2&to=1", 400),
        ("/api/points/ups-1/load/history?step=-5", 400),
    ] {
        let r = client
            .get(url(&server, q))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{q}");
    }

    // a1 publishes on a2's topic (with a2's payload): the gate closes the connection.
    let r = a1
        .try_send("dcim/v1/s1/a2/telemetry", telemetry("a2", 1, "crah-1", 1.0))
        .await;
    assert!(r.is_err(), "publish as a2 was acknowledged");
    assert_eq!(
        metric(&client, &server, &admin, "dcim_acl_rejections_total").await,
        1.0
    );

    // a1 subscribes to a2's commands: closed too.
    let mut a1 = Agent::connect(&server, "a1").await;
    assert!(
        !a1.subscribe("dcim/v1/s1/a2/cmd/+").await,
        "subscription to another agent's commands was granted"
    );
    assert_eq!(
        metric(&client, &server, &admin, "dcim_acl_rejections_total").await,
        2.0
    );

    // Its own commands: granted.
    let mut a1 = Agent::connect(&server, "a1").await;
    assert!(
        a1.subscribe("dcim/v1/s1/a1/cmd/+").await,
        "own commands refused"
    );

    // A device a1 does not own, on a1's own topic: passes the broker, refused at ingest.
    a1.send("dcim/v1/s1/a1/telemetry", telemetry("a1", 2, "crah-1", 2.0))
        .await;
    eventually_metric(
        "the ingest rejection",
        &client,
        &server,
        &admin,
        "dcim_acl_rejections_total",
        3.0,
    )
    .await;
    let pts = get_json(&client, &url(&server, "/api/points"), &admin).await;
    let devices: Vec<&str> = pts["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["device"].as_str().unwrap())
        .collect();
    assert_eq!(
        devices,
        vec!["ups-1"],
        "nothing of the refused messages is visible"
    );

    // The rejection is counted before its audit record is committed: wait for the records.
    eventually("three audited rejections", || async {
        let audit = get_json(&client, &url(&server, "/api/audit"), &admin).await;
        let rejected = audit["audit"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["action"] == "mqtt.rejected" && a["actor"] == "mqtt:a1")
            .count();
        assert!(rejected <= 3, "{audit}");
        rejected == 3
    })
    .await;
    assert!(metric(&client, &server, &admin, "dcim_broker_auth_failures_total").await >= 2.0);
    server.shutdown().await;
}

#[tokio::test]
async fn replayed_batches_do_not_duplicate_events_even_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let (server, client, Tokens { admin, .. }) = started(config(dir.path())).await;
    let mut a1 = Agent::connect(&server, "a1").await;
    for _ in 0..3 {
        a1.send("dcim/v1/s1/a1/events", events("a1", "rack-1", 1..=5))
            .await;
        a1.send("dcim/v1/s1/a1/telemetry", telemetry("a1", 7, "ups-1", 1.0))
            .await;
    }
    a1.send("dcim/v1/s1/a1/events", events("a1", "rack-1", 4..=6))
        .await;
    let count = |server_url: String, token: String| {
        let client = client.clone();
        async move {
            get_json(
                &client,
                &format!("{server_url}/api/events?limit=1000"),
                &token,
            )
            .await["events"]
                .as_array()
                .unwrap()
                .len()
        }
    };
    let base = format!("http://{}", server.http_addr);
    eventually("6 events", || count(base.clone(), admin.clone()).map_eq(6)).await;
    eventually("dedup counters", || async {
        metric(
            &client,
            &server,
            &admin,
            "dcim_ingest_duplicate_batches_total",
        )
        .await
            >= 4.0
    })
    .await;
    assert_metrics(
        &client,
        &server,
        &admin,
        &[
            ("dcim_ingest_events_total", 6.0),
            ("dcim_ingest_samples_total", 1.0),
        ],
    )
    .await;
    drop(a1);
    server.shutdown().await;

    // Same data dir, new ports: the stored events and the de-dup marks are still there.
    let server = dcim_server::start(config(dir.path())).await.unwrap();
    let base = format!("http://{}", server.http_addr);
    assert_eq!(count(base.clone(), admin.clone()).await, 6);
    let mut a1 = Agent::connect(&server, "a1").await;
    a1.send("dcim/v1/s1/a1/events", events("a1", "rack-1", 1..=6))
        .await;
    a1.send("dcim/v1/s1/a1/telemetry", telemetry("a1", 7, "ups-1", 1.0))
        .await;
    a1.send("dcim/v1/s1/a1/events", events("a1", "rack-1", 7..=7))
        .await;
    eventually("7 events", || count(base.clone(), admin.clone()).map_eq(7)).await;
    assert_eq!(
        metric(
            &client,
            &server,
            &admin,
            "dcim_ingest_duplicate_batches_total"
        )
        .await,
        2.0
    );
    let ev = get_json(&client, &format!("{base}/api/events?limit=1000"), &admin).await;
    let mut seqs: Vec<i64> = ev["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    seqs.sort();
    assert_eq!(seqs, (1..=7).collect::<Vec<_>>());
    server.shutdown().await;
}

trait MapEq {
    fn map_eq(self, n: usize) -> impl std::future::Future<Output = bool>;
}
impl<F: std::future::Future<Output = usize>> MapEq for F {
    async fn map_eq(self, n: usize) -> bool {
        self.await == n
    }
}

#[tokio::test]
async fn operators_send_only_contract_commands_to_the_owning_agent() {
    let dir = tempfile::tempdir().unwrap();
    let (server, client, t) = started(config(dir.path())).await;
    let (operator, admin) = (t.operator, t.admin);
    let mut a1 = Agent::connect(&server, "a1").await;
    assert!(a1.subscribe("dcim/v1/s1/a1/cmd/+").await);
    let send = |device: &str, body: &str| {
        client
            .post(url(&server, &format!("/api/devices/{device}/commands")))
            .bearer_auth(&operator)
            .body(body.to_string())
            .send()
    };
    assert_eq!(
        send("rack-1", r#"{"kind":"reset"}"#)
            .await
            .unwrap()
            .status(),
        400,
        "safety actions do not parse"
    );
    assert_eq!(
        send("nobody-owns", r#"{"kind":"acknowledge"}"#)
            .await
            .unwrap()
            .status(),
        404
    );
    let r = send(
        "rack-1",
        r#"{"kind":"inhibit_sensor","sensor":"rack_temp2","seconds":600}"#,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 202);
    let got = a1.next_publish().await;
    assert_eq!(got.topic, "dcim/v1/s1/a1/cmd/rack-1");
    let cmd: dcim_wire::Command = dcim_wire::decode(&got.payload).unwrap();
    assert_eq!(cmd.user, "u-operator");
    assert_eq!(
        cmd.kind,
        dcim_wire::CommandKind::InhibitSensor {
            sensor: "rack_temp2".into(),
            seconds: 600
        }
    );
    // The agent's result is audited.
    let result = dcim_wire::CommandResult {
        v: dcim_wire::VERSION,
        id: cmd.id.clone(),
        accepted: true,
        reason: String::new(),
    };
    a1.send("dcim/v1/s1/a1/cmd_result", dcim_wire::encode(&result))
        .await;
    eventually("command result audited", || async {
        let actions = audit_actions(&client, &server, &admin).await;
        actions.contains(&"command.send".to_string())
            && actions.contains(&"command.result".to_string())
    })
    .await;
    server.shutdown().await;
}
