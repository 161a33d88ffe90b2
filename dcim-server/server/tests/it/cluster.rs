//! Two server replicas sharing one PostgreSQL database (a throwaway server this test starts;
//! skipped with a message without PostgreSQL unless `DCIM_REQUIRE_PEERS=1`), each with its own
//! embedded broker, one agent publishing to both, and a webhook receiver:
//!
//! - exactly one replica leads; the follower refuses alarm actions with 503 naming the leader;
//! - what an operator does on the leader (acknowledge, shelve with a reason, a comment) shows on
//!   the follower's console;
//! - an agent the follower no longer sees but the leader does is not lost (no single
//!   detector); lost by both, it is;
//! - the leader stops; the follower takes over within the lease time, restores the engine
//!   (the acknowledgement and the shelf survive), and a new alarm is notified exactly once,
//!   with no notification of the first term sent again.
//!
//! The site-loss proof with PostgreSQL under Patroni, etcd and SIGKILL is
//! `tests/e2e/tests/it/multisite.rs`.

use crate::common;

use common::pg::{PgServer, skip_or_fail};
use common::*;
use dcim_points::{Quality, Role, Sample, Value};
use dcim_server::Server;
use dcim_server::config::Config;
use dcim_server::state::cluster::ClusterConfig;
use dcim_server::storage::store::{StoreBackend, StoreConfig};
use serde_json::Value as Json;
use std::time::Duration;
use tokio::sync::mpsc;

fn sample(device: &str, on: bool) -> Sample {
    Sample {
        device: device.into(),
        point: "on_battery".into(),
        role: Role::new("ups.on_battery").unwrap(),
        labels: Default::default(),
        value: Some(Value::Bool(on)),
        unit: String::new(),
        quality: Quality::Good,
        ts_ms: dcim_clock::now_ms(),
    }
}

fn state(online: bool) -> Vec<u8> {
    state_detached(online, &[])
}

fn state_detached(online: bool, detached: &[&str]) -> Vec<u8> {
    dcim_wire::encode(&dcim_wire::AgentState {
        v: dcim_wire::VERSION,
        agent: "a1".into(),
        online,
        ts_ms: dcim_clock::now_ms(),
        version: "t".into(),
        spool_pending: 0,
        thinned_samples: 0,
        test: false,
        test_until_ms: None,
        detached: detached.iter().map(|d| d.to_string()).collect(),
    })
}

async fn webhook() -> (String, mpsc::UnboundedReceiver<(String, Json)>) {
    use axum::http::{HeaderMap, StatusCode};
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: bytes::Bytes| {
            let tx = tx.clone();
            async move {
                let id = headers
                    .get("x-dcim-delivery")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let _ = tx.send((id, serde_json::from_slice(&body).unwrap()));
                StatusCode::NO_CONTENT
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (url, rx)
}

fn replica_config(dir: &std::path::Path, db: &str, id: &str, hook: &str) -> Config {
    let mut c = config(dir);
    c.agents = vec![agent("a1", "s1", &["ups-*"])];
    c.store = StoreConfig {
        backend: StoreBackend::Postgres,
        urls: vec![db.to_owned()],
        ..Default::default()
    };
    let text = format!(
        r#"
[cluster]
replica = "{id}"
site = "site {id}"
advertise_url = "http://{id}.example:8080"
lease_ttl_ms = 3000
renew_ms = 500
peer_timeout_ms = 2000

[notify]
enabled = true
grade2 = ["hook"]
[[notify.channels]]
name = "hook"
kind = "webhook"
url = "{hook}"
"#
    );
    let parsed = Config::parse(&text, std::path::Path::new("replica.toml")).unwrap();
    c.cluster = parsed.cluster;
    c.notify = parsed.notify;
    let cl: &ClusterConfig = c.cluster.as_ref().unwrap();
    assert_eq!(cl.replica, id);
    c
}

async fn cluster_status(http: &reqwest::Client, s: &Server, token: &str) -> Json {
    get_json(http, &url(s, "/api/cluster"), token).await
}

async fn wait_for<F, Fut>(what: &str, secs: u64, f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    dcim_test_support::wait::wait_until(what, Duration::from_secs(secs), f).await
}

async fn alarm(http: &reqwest::Client, s: &Server, token: &str, id: &str) -> Option<Json> {
    let all = get_json(http, &url(s, "/api/alarms?all=true"), token).await;
    all["alarms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id)
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_one_leader_follower_console_and_takeover() {
    let pg = match PgServer::start(&[("fsync", "off")]) {
        Ok(p) => p,
        Err(why) => return skip_or_fail(&format!("PostgreSQL: {why}")),
    };
    let db = pg.create_db("dcim").await;
    let (hook, mut hooks) = webhook().await;
    let (da, db_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = dcim_server::start(replica_config(da.path(), &db, "a", &hook))
        .await
        .unwrap();
    let tokens = users_with_tokens(&a).await;
    let op = tokens[1].1.clone();
    let http = http();
    wait_for("replica a to lead", 10, || async {
        cluster_status(&http, &a, &op).await["role"] == "leader"
    })
    .await;
    let b = dcim_server::start(replica_config(db_dir.path(), &db, "b", &hook))
        .await
        .unwrap();
    wait_for("replica b to follow a", 10, || async {
        let s = cluster_status(&http, &b, &op).await;
        s["role"] == "follower" && s["leader"]["replica"] == "a"
    })
    .await;
    // A follower that reloads the leader's state is healthy (it says so when it cannot).
    wait_for("the follower's health", 10, || async {
        let h = get_json(&http, &url(&b, "/health"), &op).await;
        h["status"] == "ok" && h.get("cluster").is_none()
    })
    .await;

    // One agent, publishing to both sites' brokers (as an edge agent with two uplinks).
    let (ca, mut ea, r) =
        mqtt_agent("127.0.0.1", a.mqtt_addr.unwrap().port(), "a1", "a1-secret").await;
    r.unwrap();
    let (cb, mut eb, r) =
        mqtt_agent("127.0.0.1", b.mqtt_addr.unwrap().port(), "a1", "a1-secret").await;
    r.unwrap();
    let tele = "dcim/v1/s1/a1/telemetry";
    let st = "dcim/v1/s1/a1/state";
    for (c, e) in [(&ca, &mut ea), (&cb, &mut eb)] {
        publish(c, e, st, state(true)).await.unwrap();
        publish(
            c,
            e,
            tele,
            batch(1, vec![sample("ups-1", true), sample("ups-2", true)]),
        )
        .await
        .unwrap();
    }
    for id in ["ups-on-battery:ups-1", "ups-on-battery:ups-2"] {
        wait_for(&format!("{id} on the leader"), 10, || async {
            alarm(&http, &a, &op, id).await.is_some()
        })
        .await;
    }
    let mut first_term = Vec::new();
    for _ in 0..2 {
        let (id, body) = tokio::time::timeout(Duration::from_secs(10), hooks.recv())
            .await
            .expect("a notification")
            .unwrap();
        assert!(id.starts_with('j'), "{id}");
        assert_eq!(body["delivery_id"], id);
        first_term.push((id, body["alarm"].as_str().unwrap().to_owned()));
    }

    // The follower refuses alarm actions, naming the leader.
    let r = http
        .post(url(&b, "/api/alarms/ups-on-battery:ups-1/ack"))
        .bearer_auth(&op)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(
        r.headers().get("x-dcim-leader").unwrap(),
        "http://a.example:8080"
    );
    let body: Json = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(body["leader"]["replica"], "a");
    assert!(
        body["error"].as_str().unwrap().contains("not the leader"),
        "{body}"
    );
    // Unauthenticated: 401 as before, no leader information.
    let r = http
        .post(url(&b, "/api/alarms/ups-on-battery:ups-1/ack"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Operators act on the leader.
    let post = |s: &Server, path: &str, body: Json| {
        let req = http
            .post(url(s, path))
            .bearer_auth(&op)
            .header("content-type", "application/json")
            .body(body.to_string());
        async move {
            let r = req.send().await.unwrap();
            let st = r.status();
            assert!(st.is_success(), "{st}: {}", r.text().await.unwrap());
        }
    };
    post(
        &a,
        "/api/alarms/ups-on-battery:ups-1/ack",
        serde_json::json!({}),
    )
    .await;
    post(
        &a,
        "/api/alarms/ups-on-battery:ups-2/shelve",
        serde_json::json!({"minutes": 30, "reason": "feed work"}),
    )
    .await;
    post(
        &a,
        "/api/alarms/ups-on-battery:ups-1/comment",
        serde_json::json!({"text": "generator started"}),
    )
    .await;
    // ... and the follower's console shows it.
    wait_for(
        "the follower to show the acknowledgement and the shelf",
        10,
        || async {
            let u1 = alarm(&http, &b, &op, "ups-on-battery:ups-1").await;
            let u2 = alarm(&http, &b, &op, "ups-on-battery:ups-2").await;
            u1.is_some_and(|a| a["base"] == "acknowledged" && a["acked_by"] == "u-operator")
                && u2.is_some_and(|a| a["overlays"]["shelved_until"].is_number())
        },
    )
    .await;
    let j = get_json(
        &http,
        &url(&b, "/api/alarms/ups-on-battery:ups-1/journal"),
        &op,
    )
    .await;
    assert!(j.to_string().contains("generator started"), "{j}");

    // No single detector: b loses the agent (its broker fired the will), a still has it.
    publish(&cb, &mut eb, st, state(false)).await.unwrap();
    wait_for("a to hear b's view of the agent", 10, || async {
        let s = cluster_status(&http, &a, &op).await;
        s["agents"]["a1"]["online_at"] == serde_json::json!(["a"])
    })
    .await;
    let s = cluster_status(&http, &a, &op).await;
    assert_eq!(s["agents"]["a1"]["lost"], false, "{s}");
    publish(&ca, &mut ea, st, state(false)).await.unwrap();
    wait_for("both replicas to have lost the agent", 10, || async {
        cluster_status(&http, &a, &op).await["agents"]["a1"]["lost"] == true
    })
    .await;
    publish(&cb, &mut eb, st, state(true)).await.unwrap();
    // The agent detached site b's broker (its lag limit): the leader raises the uplink's
    // communication loss, and clears it when the agent no longer lists it.
    publish(&ca, &mut ea, st, state_detached(true, &["site-b"]))
        .await
        .unwrap();
    let uplink = "comm-lost:a1/uplink/site-b";
    wait_for("the detached uplink's alarm condition", 10, || async {
        alarm(&http, &a, &op, uplink)
            .await
            .is_some_and(|a| a["raw"] == true)
    })
    .await;
    publish(&ca, &mut ea, st, state(true)).await.unwrap();
    wait_for("the uplink's condition to clear", 10, || async {
        alarm(&http, &a, &op, uplink)
            .await
            .is_some_and(|a| a["raw"] == false)
    })
    .await;

    // The leader stops; b takes over and restores the engine.
    let t0 = std::time::Instant::now();
    a.shutdown().await;
    wait_for("b to lead", 10, || async {
        cluster_status(&http, &b, &op).await["role"] == "leader"
    })
    .await;
    let takeover = t0.elapsed();
    let s = cluster_status(&http, &b, &op).await;
    assert!(s["epoch"].as_i64().unwrap() >= 2, "{s}");
    let u1 = alarm(&http, &b, &op, "ups-on-battery:ups-1").await.unwrap();
    assert_eq!(u1["base"], "acknowledged", "{u1}");
    let u2 = alarm(&http, &b, &op, "ups-on-battery:ups-2").await.unwrap();
    assert!(u2["overlays"]["shelved_until"].is_number(), "{u2}");
    // A new alarm after the takeover is notified once, and nothing of the first term again.
    publish(&cb, &mut eb, tele, batch(2, vec![sample("ups-3", true)]))
        .await
        .unwrap();
    let (id, body) = tokio::time::timeout(Duration::from_secs(10), hooks.recv())
        .await
        .expect("the new alarm's notification from the new leader")
        .unwrap();
    assert_eq!(body["alarm"], "ups-on-battery:ups-3");
    assert!(!first_term.iter().any(|(i, _)| *i == id));
    // b acts as leader: an acknowledgement works there now.
    post(
        &b,
        "/api/alarms/ups-on-battery:ups-3/ack",
        serde_json::json!({}),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut extra = Vec::new();
    while let Ok(m) = hooks.try_recv() {
        extra.push(m);
    }
    assert!(extra.is_empty(), "nothing notified twice: {extra:?}");
    println!("takeover after a graceful stop: {takeover:?}");
    b.shutdown().await;
}
