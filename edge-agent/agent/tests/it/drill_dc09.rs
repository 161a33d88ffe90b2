//! Drill (test) mode commanded by the center: `TestMode { on }` on `cmd/{agent}` is accepted;
//! while on, the DC-09 messages of a rack's fire stages go out with the test code (FX) between
//! the drill begin/end codes (FI/FK), and the events and the retained state on MQTT carry
//! `test: true`; the fire logic still latches its stages. A SIGKILL during the drill: the
//! restarted agent closes the drill at the receiver (FK) and does not resume it, so the next
//! stage goes out with its real code. A second drill is started and ended by command; a third
//! ends when the fire authority takes command (key switch).

use crate::common;
use dcim_test_support::sia as dc09_common;

use common::{Mosquitto, Received, events, mosquitto_available, signal, states, subscribe};
use dc09_common::{Receiver, ReceiverOpts, python};
use facility_sim::{ModbusShared, SimValue};
use rumqttc::{AsyncClient, MqttOptions, QoS};
use std::process::Child;
use std::time::Duration;

/// The rack I/O module: the two temperatures of `common::rack_io_profile` plus these.
const RIO_EXTRA: &str = r#"
[[point]]
id = "key"
role = "fire.authority"
table = "holding"
register = 2
type = "u16"
poll = "fast"
"#;

fn start_agent(dir: &std::path::Path) -> Child {
    common::spawn_agent(&dir.join("agent.toml"), &dir.join("agent.log"))
}

fn codes(rcv: &Receiver) -> Vec<String> {
    rcv.rows()
        .into_iter()
        .filter(|r| r["response"] == "ACK")
        .filter_map(|r| r["code"].as_str().map(str::to_owned))
        .collect()
}

async fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    dcim_test_support::wait::wait_until(what, timeout, || std::future::ready(f())).await
}

fn result(got: &Received, id: &str) -> Option<dcim_wire::CommandResult> {
    got.lock()
        .unwrap()
        .iter()
        .filter(|(t, _)| t.ends_with("/cmd_result"))
        .map(|(_, p)| dcim_wire::decode::<dcim_wire::CommandResult>(p).expect("valid result"))
        .find(|r| r.id == id)
}

async fn ramp(rio: &ModbusShared, profile: &dcim_profiles::Profile, from: f64, to: f64) {
    let mut t = from;
    while t < to {
        t = (t + 4.0).min(to);
        rio.write_values(
            profile,
            &[("t1", SimValue::Number(t)), ("t2", SimValue::Number(t))],
        );
        tokio::time::sleep(Duration::from_millis(120)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_drill_marks_dc09_messages_and_events_as_test_and_never_resumes_after_a_restart() {
    let Some(py) = python("a_drill_marks_dc09_messages_and_events_as_test") else {
        return;
    };
    if !mosquitto_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let _broker = Mosquitto::start(&dir.path().join("mosquitto"), port);
    let rcv = Receiver::start(&py, &dir.path().join("rcv.log"), ReceiverOpts::default());
    common::write_link_toml(dir.path(), rcv.port, true);
    let (profile, rio, addr, _server) =
        common::serve_rack_io(dir.path(), RIO_EXTRA, &[("key", SimValue::Number(0.0))]).await;
    let rack = common::rack_07_toml(addr, Some(1));
    std::fs::write(
        dir.path().join("agent.toml"),
        format!(
            r#"
site = "s"
agent = "fire-agent"
log_level = "info"
[spool]
dir = "spool"
[[broker]]
name = "center"
url = "mqtt://127.0.0.1:{port}"
keep_alive_s = 5
backoff_initial_ms = 100
backoff_max_ms = 500
[dc09]
link_config = "link.toml"
[test_mode]
max_minutes = 30
{rack}"#
        ),
    )
    .unwrap();
    let (got, _sub) = subscribe(port, "drill-observer").await;
    let (center, mut el) = AsyncClient::new(MqttOptions::new("center", "127.0.0.1", port), 16);
    tokio::spawn(async move {
        loop {
            if el.poll().await.is_err() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });
    let send = |id: &str, on: bool| {
        let payload = format!(
            r#"{{"v":1,"id":"{id}","device":"fire-agent","user":"drill:d1","kind":"test_mode","on":{on}}}"#
        );
        let center = center.clone();
        async move {
            center
                .publish(
                    "dcim/v1/s/fire-agent/cmd/fire-agent",
                    QoS::AtLeastOnce,
                    false,
                    payload,
                )
                .await
                .unwrap();
        }
    };
    let timeout = Duration::from_secs(10);

    let mut agent = start_agent(dir.path());
    wait_for("the agent online", timeout, || {
        states(&got).iter().any(|s| s.online)
    })
    .await;

    // Drill on: accepted, announced to the receiver (FI) and in the retained state.
    send("d1-on", true).await;
    wait_for("d1-on accepted", timeout, || {
        result(&got, "d1-on").is_some_and(|r| r.accepted)
    })
    .await;
    wait_for("FI at the receiver", timeout, || {
        codes(&rcv).contains(&"FI".to_string())
    })
    .await;
    wait_for("a test state", timeout, || {
        states(&got)
            .iter()
            .any(|s| s.test && s.test_until_ms.is_some())
    })
    .await;

    // A stage during the drill: the logic latches it, the receiver gets test codes only.
    ramp(&rio, &profile, 25.0, 61.0).await;
    wait_for("stage 1 in the drill as a test event", timeout, || {
        events(&got)
            .iter()
            .any(|e| e.kind == "fire.stage" && e.data["entered"] == "stage1" && e.test)
    })
    .await;
    wait_for("FX at the receiver", timeout, || {
        codes(&rcv).iter().filter(|c| *c == "FX").count() >= 2
    })
    .await;
    let c = codes(&rcv);
    assert!(!c.iter().any(|c| c == "KA" || c == "KS"), "{c:?}");

    // Killed during the drill: the restart closes it (FK) and does not resume it.
    signal(&agent, "-KILL");
    let _ = agent.wait();
    agent = start_agent(dir.path());
    wait_for("FK after the restart", timeout, || {
        codes(&rcv).contains(&"FK".to_string())
    })
    .await;
    wait_for("the state without test after the restart", timeout, || {
        states(&got).last().is_some_and(|s| s.online && !s.test)
    })
    .await;
    ramp(&rio, &profile, 61.0, 70.0).await;
    wait_for("FA (a real stage 2 alarm) at the receiver", timeout, || {
        codes(&rcv).contains(&"FA".to_string())
    })
    .await;
    let last = states(&got).into_iter().last().unwrap();
    assert!(!last.test, "{last:?}");
    let stage2 = events(&got)
        .into_iter()
        .find(|e| e.kind == "fire.stage" && e.data["entered"] == "stage2")
        .expect("stage 2 event");
    assert!(!stage2.test, "{stage2:?}");

    // A second drill, ended by command.
    send("d2-on", true).await;
    wait_for("the second FI", timeout, || {
        codes(&rcv).iter().filter(|c| *c == "FI").count() == 2
    })
    .await;
    wait_for("the test state of the second drill", timeout, || {
        states(&got).last().is_some_and(|s| s.test)
    })
    .await;
    send("d2-off", false).await;
    wait_for("the second FK", timeout, || {
        codes(&rcv).iter().filter(|c| *c == "FK").count() == 2
    })
    .await;
    wait_for(
        "the state without test after the second drill",
        timeout,
        || states(&got).last().is_some_and(|s| !s.test),
    )
    .await;
    assert!(result(&got, "d2-off").is_some_and(|r| r.accepted && r.reason == "test mode off"));

    // A third drill, ended because the fire authority takes command (key switch on).
    send("d3-on", true).await;
    wait_for("the third FI", timeout, || {
        codes(&rcv).iter().filter(|c| *c == "FI").count() == 3
    })
    .await;
    rio.write_values(&profile, &[("key", SimValue::Number(1.0))]);
    wait_for("the third FK (authority control)", timeout, || {
        codes(&rcv).iter().filter(|c| *c == "FK").count() == 3
    })
    .await;
    wait_for(
        "the state without test under authority control",
        timeout,
        || states(&got).last().is_some_and(|s| !s.test),
    )
    .await;
    signal(&agent, "-TERM");
    assert!(agent.wait().unwrap().success());

    // The order at the receiver: drill 1 bracket around test codes only, then real codes.
    let c = codes(&rcv);
    println!("ACKed at the receiver, in order: {c:?}");
    let fi = c.iter().position(|x| x == "FI").unwrap();
    let fk = c.iter().position(|x| x == "FK").unwrap();
    assert!(
        c[fi + 1..fk].iter().all(|x| x == "FX"),
        "only test codes inside the drill: {c:?}"
    );
    assert!(c[fk..].contains(&"FA".to_string()), "{c:?}");
}
