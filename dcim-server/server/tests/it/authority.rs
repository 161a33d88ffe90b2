//! Authority control over the API and from the MQTT ingest: entry by an operator and by a rack's
//! key switch, refused commands/maintenance/shelving with audit rows, the audited exit (refused
//! while a key is on), the live `authority` event and persistence across a restart.

use crate::common;
use common::*;
use reqwest::StatusCode;
use serde_json::{Value as Json, json};
use std::time::Duration;

async fn audit(client: &reqwest::Client, server: &dcim_server::Server, admin: &str) -> Vec<Json> {
    get_json(client, &url(server, "/api/audit"), admin).await["audit"]
        .as_array()
        .unwrap()
        .clone()
}

fn rows<'a>(audit: &'a [Json], action: &str) -> Vec<&'a Json> {
    audit.iter().filter(|a| a["action"] == action).collect()
}

/// The `detail` of an audit row (stored as JSON text or as an object).
fn detail(row: &Json) -> Json {
    match &row["detail"] {
        Json::String(s) => serde_json::from_str(s).unwrap_or(Json::Null),
        other => other.clone(),
    }
}

#[tokio::test]
async fn operator_enters_then_commands_maintenance_and_shelving_are_refused_and_the_exit_is_audited()
 {
    let dir = tempfile::tempdir().unwrap();
    let server = dcim_server::start(config(dir.path())).await.unwrap();
    let tokens = users_with_tokens(&server).await;
    let (viewer, operator, admin, fire) = (
        tokens[0].1.clone(),
        tokens[1].1.clone(),
        tokens[2].1.clone(),
        tokens[3].1.clone(),
    );
    let client = http();
    let state = url(&server, "/api/authority");
    let enter = url(&server, "/api/authority/enter");
    let exit = url(&server, "/api/authority/exit");
    let command = url(&server, "/api/devices/ups-1/commands");
    let maintenance = url(&server, "/api/maintenance");

    assert_eq!(
        get_json(&client, &state, &viewer).await["authority"]["active"],
        false
    );
    // The live stream delivers the change.
    let mut sse = client
        .get(url(&server, "/api/stream?events=authority"))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), StatusCode::OK);

    let (st, _) = post_json(&client, &enter, &viewer, json!({"reason": "x"})).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "a viewer cannot enter");
    let (st, _) = post_json(&client, &enter, &operator, json!({"reason": "  "})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "a reason is required");
    let (st, body) = post_json(
        &client,
        &enter,
        &operator,
        json!({"reason": "fire brigade arriving"}),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["authority"]["active"], true);
    assert_eq!(body["authority"]["cause"]["by"], "user");
    assert_eq!(body["authority"]["cause"]["user"], "u-operator");
    assert_eq!(
        body["authority"]["cause"]["reason"],
        "fire brigade arriving"
    );
    let live = tokio::time::timeout(Duration::from_secs(5), sse.chunk())
        .await
        .expect("an authority event on the stream")
        .unwrap()
        .unwrap();
    let live = String::from_utf8_lossy(&live);
    assert!(
        live.contains("event: authority") && live.contains("\"active\":true"),
        "{live}"
    );
    drop(sse);
    let (st, _) = post_json(&client, &enter, &fire, json!({"reason": "again"})).await;
    assert_eq!(st, StatusCode::CONFLICT, "already under authority control");

    // Refused: device command, maintenance (on and off), shelving, out of service.
    let (st, body) = post_json(&client, &command, &operator, json!({"kind": "acknowledge"})).await;
    assert_eq!(st, StatusCode::LOCKED, "{body}");
    let why = body["error"].as_str().unwrap();
    assert!(why.contains("authority control"), "{why}");
    assert!(why.contains("u-operator"), "{why}");
    for on in [true, false] {
        let (st, body) = post_json(
            &client,
            &maintenance,
            &admin,
            json!({"subject": "ups-1", "on": on}),
        )
        .await;
        assert_eq!(st, StatusCode::LOCKED, "{body}");
    }
    for action in ["shelve", "out_of_service"] {
        let (st, _) = post_json(
            &client,
            &url(&server, &format!("/api/alarms/feed-breaker:ups-1/{action}")),
            &operator,
            json!({"minutes": 5}),
        )
        .await;
        assert_eq!(st, StatusCode::LOCKED, "{action}");
    }
    // Allowed: acknowledging and commenting (here: no such alarm, so 404, not 423), incidents,
    // reads.
    for action in ["ack", "comment"] {
        let (st, _) = post_json(
            &client,
            &url(&server, &format!("/api/alarms/nope/{action}")),
            &operator,
            json!({"text": "seen"}),
        )
        .await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{action} is not refused");
    }
    let (st, _) = post_json(
        &client,
        &url(&server, "/api/incidents"),
        &operator,
        json!({"title": "battery room fire", "grade": 1}),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED);
    get_json(&client, &url(&server, "/api/points"), &fire).await;

    let log = audit(&client, &server, &admin).await;
    let entered = rows(&log, "authority.enter");
    assert_eq!(entered.len(), 1, "{log:?}");
    assert_eq!(entered[0]["actor"], "u-operator");
    assert_eq!(
        detail(entered[0])["cause"]["reason"],
        "fire brigade arriving"
    );
    let refused = rows(&log, "authority.refused");
    let kinds: Vec<String> = refused
        .iter()
        .map(|r| detail(r)["action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        kinds,
        [
            "device_command",
            "maintenance",
            "maintenance",
            "alarm_shelve",
            "alarm_out_of_service"
        ],
        "{refused:?}"
    );
    assert_eq!(refused[0]["actor"], "u-operator");
    assert_eq!(refused[0]["target"], "ups-1");
    assert!(rows(&log, "command.send").is_empty(), "no command was sent");

    // Leaving: not the fire authority, not without a reason; then audited with the duration.
    let (st, _) = post_json(&client, &exit, &fire, json!({"reason": "done"})).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = post_json(&client, &exit, &admin, json!({})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, body) = post_json(
        &client,
        &exit,
        &admin,
        json!({"reason": "brigade handed the site back"}),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["authority"]["active"], false);
    let log = audit(&client, &server, &admin).await;
    let left = rows(&log, "authority.exit");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["actor"], "u-admin");
    let d = detail(left[0]);
    assert_eq!(d["reason"], "brigade handed the site back");
    assert!(d["duration_ms"].as_i64().unwrap() >= 0);
    assert_eq!(d["entered"]["user"], "u-operator");
    let (st, _) = post_json(&client, &exit, &admin, json!({"reason": "again"})).await;
    assert_eq!(st, StatusCode::CONFLICT, "not under authority control");
    let (st, body) = post_json(
        &client,
        &maintenance,
        &operator,
        json!({"subject": "ups-1", "on": false}),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "maintenance allowed again: {body}");

    // The state survives a restart.
    let (st, _) = post_json(&client, &enter, &fire, json!({"reason": "taking command"})).await;
    assert_eq!(st, StatusCode::OK);
    server.shutdown().await;
    let server = dcim_server::start(config(dir.path())).await.unwrap();
    let st = get_json(&client, &url(&server, "/api/authority"), &viewer).await;
    assert_eq!(st["authority"]["active"], true, "{st}");
    assert_eq!(st["authority"]["cause"]["role"], "fire_authority");
    let (st, _) = post_json(
        &client,
        &url(&server, "/api/devices/ups-1/commands"),
        &operator,
        json!({"kind": "acknowledge"}),
    )
    .await;
    assert_eq!(st, StatusCode::LOCKED);
    server.shutdown().await;
}

fn key_sample(device: &str, on: bool) -> dcim_points::Sample {
    dcim_points::Sample {
        device: device.into(),
        point: "authority".into(),
        role: dcim_points::Role::new("fire.authority").unwrap(),
        labels: Default::default(),
        value: Some(dcim_points::Value::Bool(on)),
        unit: String::new(),
        quality: dcim_points::Quality::Good,
        ts_ms: 1_700_000_000_000,
    }
}

fn key_telemetry(seq: u64, device: &str, on: bool) -> Vec<u8> {
    dcim_wire::encode(&dcim_wire::TelemetryBatch {
        v: dcim_wire::VERSION,
        agent: "a1".into(),
        epoch: String::new(),
        seq,
        samples: vec![key_sample(device, on)],
    })
}

fn key_event(seq: u64, device: &str, on: bool) -> Vec<u8> {
    let detail = if on {
        "SupervisoryRaised(Authority)"
    } else {
        "SupervisoryCleared(Authority)"
    };
    dcim_wire::encode(&dcim_wire::EventBatch {
        v: dcim_wire::VERSION,
        agent: "a1".into(),
        epoch: String::new(),
        events: vec![dcim_wire::Event {
            id: format!("a1:{seq}"),
            seq,
            ts_ms: 1_700_000_000_000,
            device: device.into(),
            kind: "fire.supervisory".into(),
            severity: dcim_wire::Severity::Supervisory,
            message: format!("rack {device}: {detail}"),
            data: json!({"rack": device, "detail": detail}),
            test: false,
        }],
    })
}

#[tokio::test]
async fn a_rack_key_switch_over_mqtt_enters_authority_control_and_blocks_the_exit() {
    let dir = tempfile::tempdir().unwrap();
    let (server, client, t) = started(config(dir.path())).await;
    let (operator, admin) = (t.operator, t.admin);
    let mut a1 = Agent::connect(&server, "a1").await;
    let state = || async {
        get_json(&client, &url(&server, "/api/authority"), &operator).await["authority"].clone()
    };

    // A key switch reading "off" changes nothing.
    a1.send(
        "dcim/v1/s1/a1/telemetry",
        key_telemetry(1, "rack-07", false),
    )
    .await;
    // The rack controller at rack-07 reports its key on (telemetry, as the profile's
    // `fire.authority` point).
    a1.send("dcim/v1/s1/a1/telemetry", key_telemetry(2, "rack-07", true))
        .await;
    eventually("authority control by the key at rack-07", || async {
        state().await["active"] == true
    })
    .await;
    let s = state().await;
    assert_eq!(s["cause"]["by"], "key_switch");
    assert_eq!(s["cause"]["device"], "rack-07");
    assert_eq!(s["cause"]["agent"], "a1");
    // The local fire logic of another rack reports its key on as an event.
    a1.send("dcim/v1/s1/a1/events", key_event(1, "rack-08", true))
        .await;
    eventually("two keys on", || async {
        state().await["keys_on"].as_array().unwrap().len() == 2
    })
    .await;
    let (st, body) = post_json(
        &client,
        &url(&server, "/api/devices/rack-07/commands"),
        &operator,
        json!({"kind": "acknowledge"}),
    )
    .await;
    assert_eq!(st, StatusCode::LOCKED);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("key switch at rack-07"),
        "{body}"
    );

    // Leaving is refused while a key is on (and the refusal is audited).
    let exit = url(&server, "/api/authority/exit");
    let (st, body) = post_json(&client, &exit, &operator, json!({"reason": "all clear"})).await;
    assert_eq!(st, StatusCode::LOCKED, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("rack-07, rack-08"),
        "{body}"
    );

    // Keys off (telemetry for rack-07, event for rack-08): still under authority control.
    a1.send(
        "dcim/v1/s1/a1/telemetry",
        key_telemetry(3, "rack-07", false),
    )
    .await;
    a1.send("dcim/v1/s1/a1/events", key_event(2, "rack-08", false))
        .await;
    eventually("keys off", || async {
        state().await["keys_on"].as_array().unwrap().is_empty()
    })
    .await;
    assert_eq!(state().await["active"], true, "the keys do not leave");
    let (st, body) = post_json(&client, &exit, &operator, json!({"reason": "all clear"})).await;
    assert_eq!(st, StatusCode::OK, "{body}");

    let log = audit(&client, &server, &admin).await;
    let actions: Vec<(&str, &str, &str)> = log
        .iter()
        .filter(|a| a["action"].as_str().unwrap().starts_with("authority."))
        .map(|a| {
            (
                a["actor"].as_str().unwrap(),
                a["action"].as_str().unwrap(),
                a["target"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("mqtt:a1", "authority.enter", "rack-07"),
            ("mqtt:a1", "authority.key_on", "rack-08"),
            ("u-operator", "authority.refused", "rack-07"),
            ("u-operator", "authority.exit_refused", "site"),
            ("mqtt:a1", "authority.key_off", "rack-07"),
            ("mqtt:a1", "authority.key_off", "rack-08"),
            ("u-operator", "authority.exit", "site"),
        ]
    );
    server.shutdown().await;
}
