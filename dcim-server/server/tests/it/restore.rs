//! Alarm engine state across a restart: an acknowledged alarm stays acknowledged, a shelved one
//! stays shelved, and the same conditions arriving again after the restart raise no second
//! activation in the journal.

use crate::common;
use common::*;
use dcim_alarms::AlarmState;
use dcim_points::{Sample, Value};
use std::time::Duration;

fn both_on_battery(seq: u64) -> Vec<u8> {
    batch(
        seq,
        vec![
            sample_now("ups-1", "ups.on_battery", Value::Bool(true)),
            // (A fire pre-alarm cannot be shelved: a rack's own UPS on battery can.)
            sample_now("rack-ups-1", "ups.on_battery", Value::Bool(true)),
        ],
    )
}

const ACKED: &str = "ups-on-battery:ups-1";
const SHELVED: &str = "ups-on-battery:rack-ups-1";

async fn state(server: &dcim_server::Server, id: &str) -> Option<(AlarmState, Option<String>)> {
    let f = server.app.plant.facility.lock().await;
    f.engine
        .get(id)
        .map(|a| (a.state(), a.overlays.shelved_by.clone()))
}

/// `(activations, total records)` in the stored journal of an alarm.
async fn journal(server: &dcim_server::Server, id: &str) -> (usize, usize) {
    let rows = server
        .app
        .store
        .list_journal(Some(id), 0, 1000)
        .await
        .unwrap();
    let activated = rows
        .iter()
        .filter(|r| r.record["event"]["type"] == "activated")
        .count();
    (activated, rows.len())
}

#[tokio::test]
async fn acknowledged_and_shelved_alarms_keep_their_state_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (server, client, t) = started(config(dir.path())).await;
    let (operator, admin) = (t.operator, t.admin);
    let mut a1 = Agent::connect(&server, "a1").await;
    a1.send("dcim/v1/s1/a1/telemetry", both_on_battery(1)).await;
    eventually("both alarms raised", || async {
        state(&server, ACKED).await.map(|s| s.0) == Some(AlarmState::Unacknowledged)
            && state(&server, SHELVED).await.map(|s| s.0) == Some(AlarmState::Unacknowledged)
    })
    .await;
    let act = |path: String, body: &'static str| {
        let client = client.clone();
        let operator = operator.clone();
        async move {
            let r = client
                .post(path)
                .bearer_auth(operator)
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        }
    };
    act(url(&server, &format!("/api/alarms/{ACKED}/ack")), "").await;
    act(
        url(&server, &format!("/api/alarms/{SHELVED}/shelve")),
        r#"{"minutes": 30, "reason": "maintenance window"}"#,
    )
    .await;
    let before_acked = journal(&server, ACKED).await;
    let before_shelved = journal(&server, SHELVED).await;
    assert_eq!(before_acked.0, 1);
    assert_eq!(before_shelved.0, 1);
    let seq_before = server.app.plant.facility.lock().await.engine.snapshot().seq;
    drop(a1);
    server.shutdown().await;

    // Restart on the same data directory.
    let server = dcim_server::start(config(dir.path())).await.unwrap();
    assert_eq!(
        state(&server, ACKED).await,
        Some((AlarmState::Acknowledged, None))
    );
    assert_eq!(
        state(&server, SHELVED).await,
        Some((AlarmState::Shelved, Some("u-operator".into())))
    );
    assert_eq!(
        server.app.plant.facility.lock().await.engine.snapshot().seq,
        seq_before,
        "the record sequence continues"
    );
    // The agent reports the same conditions again: nothing is raised a second time.
    let mut a1 = Agent::connect(&server, "a1").await;
    a1.send("dcim/v1/s1/a1/telemetry", both_on_battery(2)).await;
    eventually_metric(
        "the new batch ingested",
        &client,
        &server,
        &admin,
        "dcim_ingest_samples_total",
        2.0,
    )
    .await;
    // Let the ticker run over the restored state as well.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(journal(&server, ACKED).await, before_acked);
    assert_eq!(journal(&server, SHELVED).await, before_shelved);
    assert_eq!(
        state(&server, ACKED).await.map(|s| s.0),
        Some(AlarmState::Acknowledged)
    );
    assert_eq!(
        state(&server, SHELVED).await.map(|s| s.0),
        Some(AlarmState::Shelved)
    );
    drop(a1);
    server.shutdown().await;
}

/// The site engine counts components without data as available: right after a restart a
/// restored redundancy alarm must neither clear for lack of data nor be raised again when the
/// data shows the same loss.
#[test]
fn restored_redundancy_alarm_waits_for_the_data_instead_of_clearing() {
    use dcim_alarms::Action;
    use dcim_server::engine::facility::Facility;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../site/sites/demo.toml");
    let site = dcim_site::Site::load(&path).unwrap();
    let now = 1_700_000_000_000;
    let feed_a_open = |ts: i64| -> Vec<Sample> {
        dcim_site::fixture::healthy_samples(&site, ts)
            .into_iter()
            .map(|mut s| {
                if s.device == "meter-a" && s.role.as_str() == "feed.breaker_closed" {
                    s.value = Some(Value::Bool(false));
                }
                s
            })
            .collect()
    };
    let mut f = Facility::new(Some(site.clone()), None).unwrap();
    f.on_samples(&feed_a_open(now), now);
    let c = f.tick(now);
    let id = "redundancy:power";
    assert!(
        c.records
            .iter()
            .any(|r| r.alarm == id && r.to == AlarmState::Unacknowledged),
        "{:?}",
        c.records
    );
    f.act(id, Action::Ack, "op", now + 500).unwrap();
    let snap = f.engine.snapshot();

    // Restart: nothing has reported yet.
    let mut g = Facility::new(Some(site.clone()), None).unwrap();
    g.restore(snap, now + 1_000);
    let c = g.tick(now + 2_000);
    // Neither the subsystem's alarm nor its racks' grouped alarms move for lack of data.
    assert!(
        c.records
            .iter()
            .all(|r| !r.alarm.starts_with("redundancy:")),
        "no data is not a recovery: {:?}",
        c.records
    );
    assert_eq!(g.engine.get(id).unwrap().state(), AlarmState::Acknowledged);
    // The data arrives, feed A still open: the alarm goes on, acknowledged, not raised again.
    g.on_samples(&feed_a_open(now + 3_000), now + 3_000);
    let c = g.tick(now + 3_000);
    assert!(
        c.records
            .iter()
            .all(|r| !r.alarm.starts_with("redundancy:")),
        "{:?}",
        c.records
    );
    assert_eq!(g.engine.get(id).unwrap().state(), AlarmState::Acknowledged);
    // Feed A closes: it returns to normal as usual.
    let healthy = dcim_site::fixture::healthy_samples(&site, now + 4_000);
    g.on_samples(&healthy, now + 4_000);
    let c = g.tick(now + 4_000);
    assert!(
        c.records
            .iter()
            .any(|r| r.alarm == id && r.to == AlarmState::Normal),
        "{:?}",
        c.records
    );
}
