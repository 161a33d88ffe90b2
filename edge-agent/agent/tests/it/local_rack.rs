//! A rack without a controller: its temperatures come from a Modbus device, the agent runs the
//! fire logic and drives the relay module's coils through the Modbus write path; events reach
//! the center and the latch record is on disk.

use crate::common;

use common::*;
use dcim_profiles::Table;
use facility_sim::{ModbusShared, SimValue};
use std::time::Duration;

/// The rack I/O module: the two temperatures of `common::rack_io_profile` plus these.
const RIO_EXTRA: &str = r#"
[[point]]
id = "do1"
role = "custom.relay1"
table = "coil"
register = 0
poll = "fast"
[[point]]
id = "do2"
role = "custom.relay2"
table = "coil"
register = 1
poll = "fast"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_local_rack_latches_its_relays_and_reports_stages() {
    if !mosquitto_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _broker = Mosquitto::start(&dir.path().join("broker"), port);
    let (got, sub) = subscribe(port, "rack-test-sub").await;
    let (profile, rio, addr, server) = common::serve_rack_io(dir.path(), RIO_EXTRA, &[]).await;
    let head = config_head("rack-agent", port, true);
    let rack = common::rack_07_toml(addr, None);
    let text = format!(
        r#"{head}{rack}relay = "rio"
coils = {{ contactor_open = "do1", blanket_drop = "do2" }}
latch_file = "fire/rack-07.latch"
"#
    );
    let agent = RunningAgent::start(&text, dir.path());
    let events = || common::events(&got);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let coils = |rio: &ModbusShared| rio.bank.lock().unwrap().bits(Table::Coil, 0, 2);
    assert_eq!(coils(&rio), vec![false, false], "no output at 25 C");
    rio.write_values(
        &profile,
        &[
            ("t1", SimValue::Number(65.0)),
            ("t2", SimValue::Number(65.0)),
        ],
    );
    let relays = wait_until(Duration::from_secs(10), || coils(&rio) == vec![true, true]).await;
    let stage1 = wait_until(Duration::from_secs(10), || {
        events()
            .iter()
            .any(|e| e.kind == "fire.stage" && e.data["entered"] == "stage1")
    })
    .await;
    // Someone clears a relay behind the agent's back: it is asserted again.
    rio.bank.lock().unwrap().set_bit(Table::Coil, 0, false);
    let reasserted = wait_until(Duration::from_secs(5), || coils(&rio) == vec![true, true]).await;
    agent.stop().await;
    sub.abort();
    server.abort();
    assert!(relays, "relay coils not driven: {:?}", coils(&rio));
    assert!(stage1, "no fire.stage event: {:?}", events());
    assert!(reasserted, "a latched output was not re-asserted");
    let latch = std::fs::read(dir.path().join("fire/rack-07.latch")).unwrap();
    let rec = fire_logic::LatchRecord::from_bytes(&latch).unwrap();
    assert!(rec.stage >= fire_logic::Stage::Stage1, "{rec:?}");
    let e = events()
        .into_iter()
        .find(|e| e.data["entered"] == "stage1")
        .unwrap();
    assert_eq!(e.device, "rack-07");
    assert_eq!(e.severity, dcim_wire::Severity::Alarm);
}
