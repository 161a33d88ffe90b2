//! The server's DC-09 transmitter and drill mode against pysiaalarm (the receiver).
//!
//! - A site-level fire alarm raised by the server's alarm engine in a zone whose agent has no
//!   DC-09 link is ACKed; the same alarm in a zone whose agent sends over its own DC-09 link (and
//!   reported it over MQTT) is not sent again by the server; losing the agent of a zone with a
//!   fire stage active is sent as a trouble at once.
//! - The shipped drill on the demo facility is tested with the demo (dcim-server/demo/tests/it/drill.rs).
//! - The drill flag survives a restart.

use crate::common;
use dcim_test_support::sia;

use common::*;
use dcim_server::io::dc09::{Dc09Config, ZoneConfig};
use std::time::Duration;

fn link(port: u16) -> dc09_link::LinkConfig {
    link_named(port, "receiver")
}

fn link_named(port: u16, name: &str) -> dc09_link::LinkConfig {
    dc09_link::LinkConfig::from_toml(&sia::link_toml(port, name), "test link", None).unwrap()
}

fn stage_sample(agent: &str, seq: u64, device: &str, stage: f64) -> Vec<u8> {
    let stage = sample_now(device, "fire.stage", dcim_points::Value::Number(stage));
    batch_of(agent, seq, vec![stage])
}

fn state(agent: &str, online: bool) -> Vec<u8> {
    // JSON rather than the struct, so that fields added to `AgentState` keep their defaults.
    serde_json::json!({"v": dcim_wire::VERSION, "agent": agent, "online": online,
        "ts_ms": dcim_clock::now_ms(), "version": "test"})
    .to_string()
    .into_bytes()
}

fn stage_event(agent: &str, seq: u64, device: &str, code: u8) -> Vec<u8> {
    dcim_wire::encode(&dcim_wire::EventBatch {
        v: dcim_wire::VERSION,
        agent: agent.into(),
        epoch: String::new(),
        events: vec![dcim_wire::Event {
            id: format!("{agent}:{seq}"),
            seq,
            ts_ms: dcim_clock::now_ms(),
            device: device.into(),
            kind: "fire.stage".into(),
            severity: dcim_wire::Severity::Alarm,
            message: "stage 1".into(),
            data: serde_json::json!({"rack": device, "stage": "stage1", "stage_code": code, "entered": "stage1"}),
            test: false,
        }],
    })
}

fn codes(rx: &sia::Receiver, ri: &str) -> Vec<(String, String)> {
    rx.rows()
        .iter()
        .filter(|r| r["ri"].as_str() == Some(ri))
        .map(|r| {
            (
                r["code"].as_str().unwrap_or_default().to_string(),
                r["response"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn site_level_alarm_is_acked_and_agent_sent_alarm_is_not_repeated() {
    let Some(py) = sia::python("dc09_interop") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let rx = sia::Receiver::start(
        &py,
        &dir.path().join("rx.jsonl"),
        sia::ReceiverOpts::default(),
    );

    let mut cfg = config(&dir.path().join("server"));
    cfg.agents = vec![
        agent("a1", "s1", &["bms-z1"]),
        agent("a2", "s1", &["bms-z2"]),
    ];
    let mut d = Dc09Config::with_link(link(rx.port));
    d.poll_ms = 100;
    d.zone = vec![
        ZoneConfig {
            number: 1,
            name: "battery room 1".into(),
            devices: vec!["bms-z1".into()],
            racks: [("bms-z1".to_string(), 1)].into(),
            agents: vec!["a1".into()],
            dc09_agents: vec!["a1".into()],
        },
        ZoneConfig {
            number: 2,
            name: "battery room 2".into(),
            devices: vec!["bms-z2".into()],
            racks: [("bms-z2".to_string(), 1)].into(),
            agents: vec!["a2".into()],
            dc09_agents: vec![],
        },
    ];
    cfg.dc09 = Some(d);
    let server = dcim_server::start(cfg).await.unwrap();
    let mqtt = server.mqtt_addr.unwrap();
    let host = mqtt.ip().to_string();

    // Agent a1 runs its own DC-09 link (as the edge agent does with `[dc09]`).
    let a1_link = dc09_link::Transmitter::start(link(rx.port), dir.path().join("a1-outbox"))
        .await
        .unwrap();
    let (c1, mut e1, r) = mqtt_agent(&host, mqtt.port(), "a1", "a1-secret").await;
    r.unwrap();
    let (c2, mut e2, r) = mqtt_agent(&host, mqtt.port(), "a2", "a2-secret").await;
    r.unwrap();
    publish(&c1, &mut e1, "dcim/v1/s1/a1/state", state("a1", true))
        .await
        .unwrap();
    publish(&c2, &mut e2, "dcim/v1/s1/a2/state", state("a2", true))
        .await
        .unwrap();

    // Battery room 1: a1 sends stage 1 over its own link and reports it over MQTT.
    a1_link
        .submit(dc09_link::Submission {
            event_id: "a1:1".into(),
            event: sia_dc09::Event::new(sia_dc09::EventKind::FireStage1, 1, 1),
        })
        .await
        .unwrap();
    publish(
        &c1,
        &mut e1,
        "dcim/v1/s1/a1/events",
        stage_event("a1", 1, "bms-z1", 2),
    )
    .await
    .unwrap();
    publish(
        &c1,
        &mut e1,
        "dcim/v1/s1/a1/telemetry",
        stage_sample("a1", 1, "bms-z1", 2.0),
    )
    .await
    .unwrap();
    // Battery room 2: a2 has no DC-09 link; only the point reaches the server.
    publish(
        &c2,
        &mut e2,
        "dcim/v1/s1/a2/telemetry",
        stage_sample("a2", 1, "bms-z2", 2.0),
    )
    .await
    .unwrap();

    assert!(
        sia::wait_until(Duration::from_secs(10), || {
            codes(&rx, "2").contains(&("KA".into(), "ACK".into()))
                && codes(&rx, "1").contains(&("KA".into(), "ACK".into()))
        }),
        "both stage-1 alarms ACKed: {:?}",
        rx.rows()
    );
    let client = http();
    let tokens = users_with_tokens(&server).await;
    let token = &tokens[0].1;
    let d = get_json(&client, &url(&server, "/api/dc09"), token).await;
    // The server sent room 2's pre-alarm and stage 1 (every stage is its own event), nothing
    // for room 1.
    let msgs = d["messages"].as_array().unwrap();
    let kinds: Vec<(&str, u64)> = msgs
        .iter()
        .map(|m| (m["kind"].as_str().unwrap(), m["zone"].as_u64().unwrap()))
        .collect();
    assert_eq!(kinds, vec![("fire.prealarm", 2), ("fire.stage1", 2)], "{d}");
    assert!(msgs.iter().all(|m| m["test"] == false), "{d}");
    eventually("the ACK times recorded", || async {
        get_json(&client, &url(&server, "/api/dc09"), token).await["messages"]
            .as_array()
            .is_some_and(|m| {
                m.iter()
                    .all(|m| m["status"] == "delivered" && m["acked_ms"].is_i64())
            })
    })
    .await;

    // Agent a1 goes away with the stage active: the stage it reported stays its own (it went
    // out over its link); losing it is a trouble of zone 1 (site-level, sent by the server).
    publish(&c1, &mut e1, "dcim/v1/s1/a1/state", state("a1", false))
        .await
        .unwrap();
    assert!(
        sia::wait_until(Duration::from_secs(10), || codes(&rx, "1")
            .contains(&("FT".into(), "ACK".into()))),
        "agent loss reported as a zone-1 trouble: {:?}",
        rx.rows()
    );
    // Give the planner a few more cycles: still exactly one stage-1 alarm per room.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for ri in ["1", "2"] {
        let ka = codes(&rx, ri).iter().filter(|(c, _)| c == "KA").count();
        assert_eq!(ka, 1, "room {ri}: one KA at the receiver: {:?}", rx.rows());
    }

    // Room 2 returns to normal: the server restores what it sent.
    publish(
        &c2,
        &mut e2,
        "dcim/v1/s1/a2/telemetry",
        stage_sample("a2", 2, "bms-z2", 0.0),
    )
    .await
    .unwrap();
    assert!(
        sia::wait_until(Duration::from_secs(10), || codes(&rx, "2")
            .contains(&("KH".into(), "ACK".into()))),
        "stage-1 restore for room 2: {:?}",
        rx.rows()
    );
    a1_link.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn drill_flag_survives_a_restart_and_tags_alarm_records() {
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        let mut c = dcim_server::config::Config {
            data_dir: dir.path().to_owned(),
            ..Default::default()
        };
        c.http.listen = "127.0.0.1:0".parse().unwrap();
        c.broker.listen = "127.0.0.1:0".parse().unwrap();
        c.auth.argon2_memory_kib = 64;
        c.auth.argon2_iterations = 1;
        c
    };
    let server = dcim_server::start(config()).await.unwrap();
    let d = dcim_server::io::drill::begin(&server.app, "restart check", 60_000)
        .await
        .unwrap();
    assert!(
        dcim_server::io::drill::begin(&server.app, "second", 60_000)
            .await
            .is_err(),
        "one drill at a time"
    );
    server.shutdown().await;

    let server = dcim_server::start(config()).await.unwrap();
    let app = server.app.clone();
    assert_eq!(app.active_drill_id(), Some(d.id.clone()));
    // An alarm record made now carries the drill id; after the end it does not.
    let sample = |v: f64| dcim_points::Sample {
        device: "bms-z9".into(),
        point: "fire_stage".into(),
        role: dcim_points::Role::new("fire.stage").unwrap(),
        labels: Default::default(),
        value: Some(dcim_points::Value::Number(v)),
        unit: String::new(),
        quality: dcim_points::Quality::Good,
        ts_ms: dcim_clock::now_ms(),
    };
    {
        let mut f = app.plant.facility.lock().await;
        let ch = f.on_samples(&[sample(2.0)], dcim_clock::now_ms());
        assert!(!ch.records.is_empty());
        app.commit_changes(&f, &ch, None).await.unwrap();
    }
    let ended = dcim_server::io::drill::end(&app).await.unwrap().unwrap();
    assert_eq!(ended.id, d.id);
    {
        let mut f = app.plant.facility.lock().await;
        let ch = f.on_samples(&[sample(0.0)], dcim_clock::now_ms());
        app.commit_changes(&f, &ch, None).await.unwrap();
    }
    let journal = app.store.list_journal(None, 0, 1000).await.unwrap();
    let during: Vec<_> = journal
        .iter()
        .filter(|j| j.record["event"]["type"] == "activated")
        .collect();
    assert!(!during.is_empty());
    assert!(
        during.iter().all(|j| j.record["drill"] == d.id.as_str()),
        "{during:?}"
    );
    let after: Vec<_> = journal
        .iter()
        .filter(|j| j.record["event"]["type"] == "cleared")
        .collect();
    assert!(!after.is_empty(), "{journal:?}");
    assert!(after.iter().all(|j| j.record.get("drill").is_none()));
    // Incidents opened during the drill are tagged.
    let tags = app.store.list_docs("incident.drill").await.unwrap();
    assert!(
        tags.iter().any(|t| t.body["drill"] == d.id.as_str()),
        "{tags:?}"
    );
    server.shutdown().await;
    let server = dcim_server::start(config()).await.unwrap();
    assert_eq!(server.app.active_drill_id(), None);
    // Under authority control a drill is refused (it would mark real alarms as test), and
    // the refusal is audited.
    server
        .app
        .control
        .authority
        .lock()
        .await
        .enter(
            "ops",
            dcim_server::config::Role::Operator,
            "fire brigade on site",
            dcim_clock::now_ms(),
        )
        .unwrap();
    let refused = dcim_server::io::drill::begin(&server.app, "under control", 60_000)
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("authority control"),
        "{refused:#}"
    );
    assert_eq!(server.app.active_drill_id(), None);
    let audit = server.app.store.list_audit(0, i64::MAX).await.unwrap();
    assert!(
        audit.iter().any(|a| a.action == "authority.refused"),
        "{audit:?}"
    );
    server.shutdown().await;
}
