//! A thermal camera publishing region JSON to mosquitto is read through its device profile and
//! forwarded as telemetry; a command for it is answered on `cmd_result`.

use crate::common;

use common::*;
use dcim_edge_agent::commands;
use dcim_points::{Quality, Value};
use rumqttc::{AsyncClient, MqttOptions, QoS};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn camera_json_becomes_telemetry_and_commands_are_answered() {
    if !mosquitto_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _broker = Mosquitto::start(&dir.path().join("broker"), port);
    let (got, sub) = subscribe(port, "device-test-sub").await;
    let profile = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../device-profiles/thermal-camera-battery-room.toml"
    );
    let head = config_head("cam-agent", port, true);
    let text = format!(
        r#"{head}[[device]]
id = "cam-1"
profile = "{profile}"
mqtt = {{ url = "mqtt://127.0.0.1:{port}" }}
"#
    );
    let agent = RunningAgent::start(&text, dir.path());

    // The camera and the operator's command, from a separate client.
    let mut o = MqttOptions::new("camera", "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(5));
    let (cam, mut el) = AsyncClient::new(o, 16);
    tokio::spawn(async move { while el.poll().await.is_ok() {} });
    let published = wait_until(Duration::from_secs(10), || {
        // Keep publishing until the agent's device subscription is in place.
        let _ = cam.try_publish(
            "thermal/cam-1/region/rack-02",
            QoS::AtLeastOnce,
            false,
            br#"{"ts_ms":1,"max_c":41.5,"avg_c":30.25,"hotspot":true}"#.to_vec(),
        );
        got.lock().unwrap().iter().any(|(t, p)| {
            t.ends_with("/telemetry")
                && dcim_wire::decode::<dcim_wire::TelemetryBatch>(p)
                    .unwrap()
                    .samples
                    .iter()
                    .any(|s| s.point == "rack-02_max")
        })
    })
    .await;
    assert!(published, "camera reading did not reach the center");
    let samples: Vec<dcim_points::Sample> = got
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, _)| t.ends_with("/telemetry"))
        .flat_map(|(_, p)| {
            dcim_wire::decode::<dcim_wire::TelemetryBatch>(p)
                .unwrap()
                .samples
        })
        .collect();
    let max = samples.iter().find(|s| s.point == "rack-02_max").unwrap();
    assert_eq!(max.device, "cam-1");
    assert_eq!(max.role.as_str(), "camera.region_max_temp");
    assert_eq!(max.value, Some(Value::Number(41.5)));
    assert_eq!(max.quality, Quality::Good);
    let hot = samples
        .iter()
        .find(|s| s.point == "rack-02_hotspot")
        .unwrap();
    assert_eq!(hot.value, Some(Value::Bool(true)));

    // A command for the camera gets an honest refusal on cmd_result.
    cam.publish(
        "dcim/v1/s/cam-agent/cmd/cam-1",
        QoS::AtLeastOnce,
        false,
        br#"{"v":1,"id":"cmd-7","device":"cam-1","user":"op","kind":"acknowledge"}"#.to_vec(),
    )
    .await
    .unwrap();
    let answered = wait_until(Duration::from_secs(5), || {
        got.lock()
            .unwrap()
            .iter()
            .any(|(t, _)| t.ends_with("/cmd_result"))
    })
    .await;
    assert!(answered, "no cmd_result");
    let (_, payload) = got
        .lock()
        .unwrap()
        .iter()
        .find(|(t, _)| t.ends_with("/cmd_result"))
        .cloned()
        .unwrap();
    let result: dcim_wire::CommandResult = dcim_wire::decode(&payload).unwrap();
    assert_eq!(result.id, "cmd-7");
    assert!(!result.accepted);
    assert_eq!(result.reason, commands::NO_PATH);

    agent.stop().await;
    sub.abort();
}
