//! A UPS served over Modbus TCP (the facility simulator's server) is polled through its device
//! profile by the agent and its values reach the center as telemetry.

use crate::common;

use common::*;
use dcim_points::{Quality, Value};
use facility_sim::{ModbusShared, SimValue, serve_tcp};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_modbus_ups_is_polled_and_forwarded() {
    if !mosquitto_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _broker = Mosquitto::start(&dir.path().join("broker"), port);
    let (got, sub) = subscribe(port, "modbus-test-sub").await;

    let profile_path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../device-profiles/ups-modular-3ph.toml"
    );
    let profile = dcim_profiles::load_file(std::path::Path::new(profile_path)).unwrap();
    let ups = Arc::new(ModbusShared::default());
    ups.write_values(
        &profile,
        &[
            ("load_pct", SimValue::Number(42.0)),
            ("on_battery", SimValue::Bool(true)),
        ],
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = serve_tcp(listener, ups.clone());

    let head = config_head("mb-agent", port, true);
    let text = format!(
        r#"{head}[[device]]
id = "ups-z1"
profile = "{profile_path}"
modbus = {{ tcp = "{addr}", unit = 1 }}
"#
    );
    let agent = RunningAgent::start(&text, dir.path());

    let samples = || common::samples(&got);
    let arrived = wait_until(Duration::from_secs(10), || {
        let s = samples();
        s.iter().any(|s| s.point == "load_pct") && s.iter().any(|s| s.point == "on_battery")
    })
    .await;
    agent.stop().await;
    sub.abort();
    server.abort();
    assert!(arrived, "UPS values did not reach the center");
    let s = samples();
    let load = s.iter().find(|s| s.point == "load_pct").unwrap();
    assert_eq!(load.device, "ups-z1");
    assert_eq!(load.role.as_str(), "ups.load_pct");
    assert_eq!(load.quality, Quality::Good);
    assert_eq!(load.value, Some(Value::Number(42.0)));
    let on_batt = s.iter().find(|s| s.point == "on_battery").unwrap();
    assert_eq!(on_batt.value, Some(Value::Bool(true)));
    assert!(
        s.iter()
            .any(|s| s.role.as_str() == "device.online" && s.value == Some(Value::Bool(true)))
    );
}
