//! The shipped drill `tests/drills/battery-room-fire.toml` on the demo facility, with the server's
//! DC-09 transmitter sending to pysiaalarm (the receiver). Hazard: a drill that sends real fire
//! alarm codes to the fire authority, or a report that claims detections, acknowledgements or
//! receiver ACKs that did not happen: the report must say what was detected, acknowledged and
//! ACKed when, and everything the drill produced is tagged as test (the receiver sees the test
//! code, never a fire alarm code; alarm journal and incidents carry the drill id).

use dcim_test_support::sia;

use dcim_server::io::dc09::Dc09Config;
use std::time::Duration;

fn link_named(port: u16, name: &str) -> dc09_link::LinkConfig {
    dc09_link::LinkConfig::from_toml(&sia::link_toml(port, name), "test link", None).unwrap()
}

/// A `sim` step with a command the facility simulator does not know is refused when the file
/// is loaded, naming file, line and field (hazard: a drill that runs for minutes and then
/// reports a step that never acted on the facility).
#[test]
fn the_simulator_grammar_checks_sim_steps() {
    let e = dcim_server::io::drill::Scenario::parse(
        "name='x'\nduration_s=5\n[[step]]\nat_s=1\nsim='boil it'\n",
        "d.toml",
        &dcim_demo::drill::check_sim,
    )
    .unwrap_err();
    assert!(e.starts_with("d.toml:3: step[0].sim"), "{e}");
    dcim_server::io::drill::Scenario::parse(
        "name='x'\nduration_s=5\n[[step]]\nat_s=1\nsim='heat bms-z2 1200'\n",
        "d.toml",
        &dcim_demo::drill::check_sim,
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn battery_room_fire_drill_reports_and_tags_everything_as_test() {
    let Some(py) = sia::python("drill_battery_fire") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let rx = sia::Receiver::start(
        &py,
        &dir.path().join("rx.jsonl"),
        sia::ReceiverOpts::default(),
    );
    let scenario = dcim_demo::drill::load_scenario(
        &sia::repo_root().join("tests/drills/battery-room-fire.toml"),
    )
    .unwrap();

    let mut opts = dcim_demo::demo::DemoOptions::for_tests(dir.path().join("demo"));
    let mut d = Dc09Config::with_link(link_named(rx.port, "arc-primary"));
    d.poll_ms = 100;
    d.zone = Dc09Config::demo_zones(dcim_demo::demo::AGENT);
    opts.dc09 = Some(d);
    let demo = dcim_demo::demo::start(opts).await.unwrap();
    let app = demo.server.app.clone();
    assert!(
        dcim_server::io::drill::wait_agents_online(&app, Duration::from_secs(15))
            .await
            .unwrap(),
        "the demo agent came online"
    );

    let report = dcim_demo::drill::run(&app, &demo.sim, &scenario)
        .await
        .unwrap();
    println!("{}", report.markdown());

    // The drill is over and persisted as such.
    assert!(app.active_drill_id().is_none());
    assert!(report.drill.ended_ms.is_some());
    assert!(report.steps.iter().all(|s| s.ok), "{:?}", report.steps);

    // What was detected when, who acknowledged when.
    let fire = report
        .detected
        .iter()
        .find(|x| x.alarm == "fire-stage:bms-z2")
        .expect("the fire-stage alarm detected during the drill");
    assert_eq!(fire.grade, 1);
    assert!(fire.after_s > 1.0 && fire.after_s < 9.0, "{fire:?}");
    let ack = report
        .acknowledged
        .iter()
        .find(|x| x.alarm == "fire-stage:bms-z2")
        .expect("acknowledged");
    assert_eq!(ack.user, "operator");
    assert!(ack.after_s >= 9.0, "{ack:?}");
    assert!(
        report.incidents.iter().any(|i| i.grade == 1),
        "a grade-1 incident tagged with the drill: {:?}",
        report.incidents
    );

    // What reached the receiver when: test messages, ACKed, with their ACK times.
    let stage1 = report
        .dc09
        .iter()
        .find(|m| m.kind == "fire.stage1" && !m.restore)
        .expect("stage 1 sent by the server");
    assert!(stage1.test, "{stage1:?}");
    assert_eq!((stage1.zone, stage1.rack), (2, 1));
    assert_eq!(stage1.status, "delivered");
    let acked = stage1.acked_after_s.unwrap();
    assert!(acked >= fire.after_s - 0.5, "{stage1:?} vs {fire:?}");
    assert!(report.dc09.iter().all(|m| m.test), "{:?}", report.dc09);
    assert!(
        report.dc09.iter().all(|m| m.status == "delivered"),
        "{:?}",
        report.dc09
    );
    // At the receiver: the drill bracket (FI ... FK) around the room's messages, every one with
    // the test code, never a fire alarm code, all ACKed.
    let rows = rx.rows();
    let codes: Vec<&str> = rows
        .iter()
        .map(|r| r["code"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(codes.first(), Some(&"FI"), "{rows:?}");
    assert_eq!(codes.last(), Some(&"FK"), "{rows:?}");
    assert!(
        codes[1..codes.len() - 1].iter().all(|c| *c == "FX"),
        "every drill message carries the test code: {codes:?}"
    );
    assert!(rows.iter().all(|r| r["response"] == "ACK"), "{rows:?}");
    let room2 = rows.iter().filter(|r| r["ri"] == "2").count();
    assert!(room2 >= 4, "pre-alarm and stages 1-3 of room 2: {rows:?}");
    assert_eq!(
        room2,
        report.dc09.iter().filter(|m| m.zone == 2).count(),
        "{rows:?}"
    );
    assert_eq!(rows.len(), report.dc09.len(), "{rows:?}");
    assert!(
        report.expectations.iter().all(|e| e.met),
        "{:?}",
        report.expectations
    );

    // The agent saw the stages at the edge and, in test mode, flagged its events as test.
    let edge: Vec<_> = report
        .edge_events
        .iter()
        .filter(|e| e.device == "bms-z2" && e.kind == "fire.stage")
        .collect();
    assert!(!edge.is_empty(), "{:?}", report.edge_events);
    assert!(edge.iter().all(|e| e.test), "{edge:?}");
    // The agent was told about the drill (test mode on, then off).
    let sent: Vec<bool> = report.agents.iter().map(|a| a.on).collect();
    assert_eq!(sent, vec![true, false], "{:?}", report.agents);

    // Alarm journal records carry the drill id; records after the drill do not.
    let journal = app.store.list_journal(None, 0, 100_000).await.unwrap();
    let tagged = journal
        .iter()
        .filter(|j| j.record["drill"] == report.drill.id.as_str())
        .count();
    assert!(tagged >= 1, "tagged journal records");

    // The report is on disk and served by the API.
    let md = dir
        .path()
        .join("demo/drills")
        .join(format!("{}.md", report.drill.id));
    assert!(
        std::fs::read_to_string(&md)
            .unwrap()
            .contains("fire-stage:bms-z2")
    );
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    let login = client
        .post(format!("{}/api/login", demo.base_url()))
        .header("content-type", "application/json")
        .body(
            serde_json::json!({"username": "viewer", "password": dcim_demo::demo::DEFAULT_PASSWORD})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert!(login.status().is_success(), "{}", login.status());
    let cookies: Vec<String> = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|c| c.split(';').next().unwrap_or_default().to_string())
        .collect();
    let api = client
        .get(format!(
            "{}/api/drills/{}/report",
            demo.base_url(),
            report.drill.id
        ))
        .header("cookie", cookies.join("; "))
        .send()
        .await
        .unwrap();
    assert!(api.status().is_success(), "{}", api.status());
    let served: serde_json::Value = serde_json::from_str(&api.text().await.unwrap()).unwrap();
    assert_eq!(served["drill"]["id"], report.drill.id.as_str());
    assert_eq!(
        served["dc09"].as_array().map(Vec::len),
        Some(report.dc09.len())
    );
    demo.shutdown().await;
}
