//! Interop: the whole agent against a bacpypes3 device (a third-party BACnet stack,
//! `tests/interop/bacnet/bacpypes3_device.py`) answering at a configured address with another
//! device instance than configured, then the right one.
//!
//! Hazard: with `discover = false` the agent trusted the address; another controller answering
//! there was reported `good` under this device's name, so the center would see plausible values
//! of the wrong machine (a chiller that is running while the one meant has tripped).
//!
//! Needs bacpypes3 (`$DCIM_PYTHON`) and mosquitto; skipped with a message without them, unless
//! `DCIM_REQUIRE_PEERS=1`.

use crate::common;

use common::*;
use dcim_points::Quality;
use dcim_test_support::peers::python;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// True if bacpypes3 is importable; otherwise skips (or fails under DCIM_REQUIRE_PEERS=1).
fn bacpypes3_available() -> bool {
    dcim_test_support::peers::python_with("bacpypes3").is_some()
}

/// Starts the bacpypes3 device with `instance` on UDP `port`; returns once it serves.
async fn bacpypes3_device(port: u16, instance: u32) -> Child {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/interop/bacnet/bacpypes3_device.py");
    let mut child = Command::new(python())
        .arg(script)
        .args([
            "--port",
            &port.to_string(),
            "--instance",
            &instance.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start bacpypes3");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await;
    assert!(
        matches!(&ready, Ok(Ok(Some(l))) if l == "READY"),
        "bacpypes3 did not start: {ready:?}"
    );
    child
}

const PROFILE: &str = r#"
[profile]
name = "bacpypes3-chiller"
protocol = "bacnet"
[comm]
timeout_ms = 300
retries = 0
comm_lost_after_ms = 1500
[poll]
fast_ms = 200
normal_ms = 200
[[point]]
id = "supply_temp"
role = "chiller.supply_temp"
object = "analog-input"
instance = 1
poll = "fast"
[[point]]
id = "running"
role = "chiller.running"
object = "binary-input"
instance = 1
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_bacpypes3_device_at_the_configured_address_is_never_good_data() {
    if !bacpypes3_available() || !mosquitto_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _broker = Mosquitto::start(&dir.path().join("broker"), port);
    let (got, sub) = subscribe(port, "bacnet-identity-sub").await;
    let bacnet_port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Device 600 answers where device 599 is configured.
    let wrong = bacpypes3_device(bacnet_port, 600).await;
    std::fs::write(dir.path().join("chiller.toml"), PROFILE).unwrap();
    let head = config_head("bn-identity", port, true);
    let text = format!(
        r#"{head}[[device]]
id = "chiller-1"
profile = "chiller.toml"
bacnet = {{ address = "127.0.0.1:{bacnet_port}", instance = 599, bind = "127.0.0.1:0" }}
"#
    );
    let agent = RunningAgent::start(&text, dir.path());
    let samples = || common::samples(&got);
    let events = || common::events(&got);
    let kinds = |kind: &str| events().iter().filter(|e| e.kind == kind).count();
    let mismatch = wait_until(Duration::from_secs(15), || {
        kinds("device.identity_mismatch") > 0 && kinds("device.comm_lost") > 0
    })
    .await;
    // Keep polling for a while: still one report, still nothing good.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let good_from_wrong = samples()
        .iter()
        .filter(|s| s.point != "online" && s.quality == Quality::Good)
        .count();
    let mismatches: Vec<dcim_wire::Event> = events()
        .into_iter()
        .filter(|e| e.kind == "device.identity_mismatch")
        .collect();

    // The right device answers there now.
    drop(wrong);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _right = bacpypes3_device(bacnet_port, 599).await;
    let recovered = wait_until(Duration::from_secs(15), || {
        kinds("device.identity_confirmed") > 0
            && samples()
                .iter()
                .any(|s| s.point == "supply_temp" && s.quality == Quality::Good)
    })
    .await;
    agent.stop().await;
    sub.abort();

    assert!(
        mismatch,
        "no identity mismatch / comm lost reported: {:?}",
        events()
    );
    assert_eq!(mismatches.len(), 1, "reported once: {mismatches:?}");
    assert_eq!(
        mismatches[0].data["answered_instance"], 600,
        "{mismatches:?}"
    );
    assert_eq!(
        good_from_wrong,
        0,
        "the wrong device's values became good data: {:?}",
        samples()
    );
    assert!(
        samples()
            .iter()
            .any(|s| s.point == "supply_temp" && s.quality == Quality::CommLost),
        "the points were not marked comm_lost"
    );
    assert!(
        recovered,
        "the right device was not taken back: {:?}",
        events()
    );
    let temp = samples()
        .into_iter()
        .rfind(|s| s.point == "supply_temp" && s.quality == Quality::Good)
        .unwrap();
    assert_eq!(temp.value, Some(dcim_points::Value::Number(7.5)));
}
