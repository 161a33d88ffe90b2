//! The embedded broker acknowledges an agent's events only after the server committed them.
//!
//! The commit is held back by a second SQLite connection that takes the database's write lock
//! (`BEGIN IMMEDIATE`): the server's insert waits on it (busy timeout), so no PUBACK may reach
//! the agent until the lock is released. Then the server binary is killed with SIGKILL while
//! the write is blocked: the agent has no PUBACK, so it still has the events (an edge agent
//! deletes them from its spool only on PUBACK) and sends them again to the restarted server,
//! which stores each exactly once.

use crate::common;
use common::*;
use rumqttc::{AsyncClient, Event, EventLoop, Packet, QoS};
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

const EVENTS_TOPIC: &str = "dcim/v1/s1/a1/events";

async fn db(dir: &Path) -> SqliteConnection {
    let path = dcim_server::storage::store::db_path(dir);
    let opts = SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(Duration::from_secs(10));
    SqliteConnection::connect_with(&opts).await.unwrap()
}

/// Takes the database's write lock until `release`.
async fn lock(c: &mut SqliteConnection) {
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut *c)
        .await
        .unwrap();
}

async fn release(c: &mut SqliteConnection) {
    sqlx::query("ROLLBACK").execute(&mut *c).await.unwrap();
}

async fn stored(c: &mut SqliteConnection, seqs: std::ops::RangeInclusive<u64>) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE agent = 'a1' AND seq BETWEEN ? AND ?")
        .bind(*seqs.start() as i64)
        .bind(*seqs.end() as i64)
        .fetch_one(c)
        .await
        .unwrap()
}

/// Drives the event loop for `within`: the packet id of the first PUBACK, if one arrived.
/// Connection errors are retried (the client reconnects on the next poll).
async fn puback_within(el: &mut EventLoop, within: Duration) -> Option<u16> {
    tokio::time::timeout(within, async {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::PubAck(a))) => return a.pkid,
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    })
    .await
    .ok()
}

/// Drives the event loop until the ingest has received `messages` messages in all (within
/// 5 s, else `late`), asserting meanwhile that no PUBACK arrives (`early`).
async fn no_puback_until_received(
    el: &mut EventLoop,
    server: &dcim_server::Server,
    messages: u64,
    (early, late): (&str, &str),
) {
    let received = &server.app.metrics.ingest_messages_total;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while received.load(Ordering::Relaxed) < messages {
        assert_eq!(
            puback_within(el, Duration::from_millis(50)).await,
            None,
            "{early}"
        );
        assert!(tokio::time::Instant::now() < deadline, "{late}");
    }
}

async fn publish(c: &AsyncClient, payload: Vec<u8>) {
    c.publish(EVENTS_TOPIC, QoS::AtLeastOnce, false, payload)
        .await
        .unwrap();
}

#[tokio::test]
async fn puback_of_events_waits_for_their_commit() {
    let dir = tempfile::tempdir().unwrap();
    let server = dcim_server::start(config(dir.path())).await.unwrap();
    let mqtt = server.mqtt_addr.unwrap();
    let (c, mut el, r) = mqtt_agent("127.0.0.1", mqtt.port(), "a1", "a1-secret").await;
    r.unwrap();
    let mut blocker = db(dir.path()).await;

    // Unblocked: acknowledged, and stored by then.
    publish(&c, events("a1", "rack-1", 1..=3)).await;
    assert!(
        puback_within(&mut el, Duration::from_secs(5))
            .await
            .is_some()
    );
    assert_eq!(stored(&mut blocker, 1..=3).await, 3);

    // The commit is blocked: the server receives the batch but does not acknowledge it.
    let received = server
        .app
        .metrics
        .ingest_messages_total
        .load(Ordering::Relaxed);
    lock(&mut blocker).await;
    publish(&c, events("a1", "rack-1", 4..=6)).await;
    let why = (
        "PUBACK before the commit",
        "the batch did not reach the ingest",
    );
    no_puback_until_received(&mut el, &server, received + 1, why).await;
    // The ingest has the batch; its commit waits for the lock.
    assert_eq!(
        puback_within(&mut el, Duration::from_millis(600)).await,
        None,
        "PUBACK before the commit"
    );
    release(&mut blocker).await;
    assert!(
        puback_within(&mut el, Duration::from_secs(5))
            .await
            .is_some()
    );
    // The server committed before the agent had its PUBACK.
    assert_eq!(stored(&mut blocker, 4..=6).await, 3);

    // What the server drops for good is released too, so the agent does not stall: a
    // duplicate, a batch refused by access control and an undecodable payload.
    for payload in [
        events("a1", "rack-1", 2..=5),
        events("a1", "crah-1", 7..=8),
        b"{not json".to_vec(),
    ] {
        publish(&c, payload).await;
        assert!(
            puback_within(&mut el, Duration::from_secs(5))
                .await
                .is_some()
        );
    }
    assert_eq!(stored(&mut blocker, 1..=100).await, 6);
    drop(blocker);
    server.shutdown().await;
}

#[tokio::test]
async fn telemetry_taken_by_the_gate_is_acknowledged_after_a_held_events_batch_before_it() {
    // Hazard: the gate takes telemetry itself (not through rumqttd) and acknowledges it; its
    // PUBACK must not overtake the PUBACK of an events batch sent before it that waits for its
    // commit (MQTT 3.1.1 §4.6), nor may the telemetry wait for that commit to be taken in.
    let dir = tempfile::tempdir().unwrap();
    let server = dcim_server::start(config(dir.path())).await.unwrap();
    let mqtt = server.mqtt_addr.unwrap();
    let (c, mut el, r) = mqtt_agent("127.0.0.1", mqtt.port(), "a1", "a1-secret").await;
    r.unwrap();
    let mut blocker = db(dir.path()).await;
    let messages = server
        .app
        .metrics
        .ingest_messages_total
        .load(Ordering::Relaxed);
    lock(&mut blocker).await;
    publish(&c, events("a1", "rack-1", 1..=3)).await;
    c.publish(
        "dcim/v1/s1/a1/telemetry",
        QoS::AtLeastOnce,
        false,
        telemetry("a1", 1, "rack-1", 42.0),
    )
    .await
    .unwrap();
    // Both reach the ingest; the telemetry is applied while the events' commit waits.
    let why = (
        "a PUBACK before the events' commit",
        "telemetry waited for the events' commit (or did not arrive)",
    );
    no_puback_until_received(&mut el, &server, messages + 2, why).await;
    assert_eq!(
        puback_within(&mut el, Duration::from_millis(400)).await,
        None,
        "the telemetry's PUBACK overtook the held events PUBACK"
    );
    release(&mut blocker).await;
    let first = puback_within(&mut el, Duration::from_secs(5)).await;
    let second = puback_within(&mut el, Duration::from_secs(5)).await;
    assert_eq!(
        (first, second),
        (Some(1), Some(2)),
        "PUBACKs in the order of the publishes"
    );
    assert_eq!(stored(&mut blocker, 1..=3).await, 3);
    drop(blocker);
    server.shutdown().await;
}

async fn wait_port(port: u16) {
    eventually("the broker port", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await;
}

#[tokio::test]
async fn events_received_but_not_committed_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let (http, mqtt) = (free_port(), free_port());
    let cfg = write_config(dir.path(), http, mqtt);
    let data = dir.path().join("data");
    let mut child = spawn(&cfg);
    wait_port(mqtt).await;
    let (c, mut el, r) = mqtt_agent("127.0.0.1", mqtt, "a1", "a1-secret").await;
    r.unwrap();
    publish(&c, events("a1", "rack-1", 1..=2)).await;
    assert!(
        puback_within(&mut el, Duration::from_secs(5))
            .await
            .is_some()
    );

    // Received by the broker, commit blocked, then the server dies.
    let mut blocker = db(&data).await;
    lock(&mut blocker).await;
    publish(&c, events("a1", "rack-1", 3..=5)).await;
    assert_eq!(
        puback_within(&mut el, Duration::from_millis(800)).await,
        None,
        "PUBACK before the commit"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    release(&mut blocker).await;
    assert_eq!(stored(&mut blocker, 3..=5).await, 0, "not committed");

    // The agent still has the batch (no PUBACK: still in its spool) and, like the edge agent's
    // uplink on every CONNACK, sends what is unacknowledged again once the server is back.
    let mut child = spawn(&cfg);
    let acked = tokio::time::timeout(Duration::from_secs(8), async {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    publish(&c, events("a1", "rack-1", 3..=5)).await
                }
                Ok(Event::Incoming(Packet::PubAck(_))) => return,
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    })
    .await
    .ok();
    let (n1, n2) = (
        stored(&mut blocker, 1..=5).await,
        stored(&mut blocker, 3..=5).await,
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(acked.is_some(), "no PUBACK after the restart");
    assert_eq!((n1, n2), (5, 3), "each event stored exactly once");
}
