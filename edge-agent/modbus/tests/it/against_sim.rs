//! The poller against the facility simulator over real Modbus TCP / RTU-over-TCP sockets.

use crate::common;

use common::{Collector, good, is, near};
use dcim_modbus::{Connection, ModbusDevice, spawn_line};
use dcim_points::{Quality, Value};
use dcim_profiles::{Profile, load_file};
use facility_sim::{Command, ModbusShared, SimConfig, SimValue, serve_rtu_gateway, serve_tcp};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;

fn profile(name: &str) -> Profile {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../device-profiles");
    load_file(&dir.join(format!("{name}.toml"))).unwrap()
}

/// The same profile with test-friendly periods: 200 ms polls, 300 ms timeout, short back-off.
fn quick(mut p: Profile) -> Arc<Profile> {
    p.poll.fast_ms = 200;
    p.poll.normal_ms = 200;
    p.poll.slow_ms = 1000;
    p.comm.timeout_ms = 300;
    p.comm.retries = 1;
    p.comm.backoff_initial_ms = 200;
    p.comm.backoff_max_ms = 400;
    p.comm.comm_lost_after_ms = 3000;
    Arc::new(p)
}

fn small_sim() -> SimConfig {
    SimConfig {
        racks: 2,
        ups: 1,
        meters: 1,
        camera: false,
        step: Duration::from_millis(50),
        ..SimConfig::default()
    }
}

/// The small simulated facility with `devices` (id, profile name) polled with [`quick`]
/// periods into one collector; keep the tasks for as long as the polls should run.
async fn poll_sim(
    devices: &[(&str, &str)],
) -> (
    facility_sim::SimHandle,
    Vec<tokio::task::JoinHandle<()>>,
    Collector,
) {
    let sim = facility_sim::start(small_sim()).await.unwrap();
    let (tx, rx) = mpsc::channel(64);
    let tasks = devices
        .iter()
        .map(|(id, p)| spawn_sim_device(&sim, id, quick(profile(p)), tx.clone()))
        .collect();
    (sim, tasks, Collector::new(rx))
}

fn spawn_sim_device(
    sim: &facility_sim::SimHandle,
    id: &str,
    profile: Arc<Profile>,
    tx: mpsc::Sender<Vec<dcim_points::Sample>>,
) -> tokio::task::JoinHandle<()> {
    let addr = sim.endpoint(id).unwrap().modbus.unwrap();
    ModbusDevice {
        id: id.into(),
        unit_id: 1,
        profile,
    }
    .spawn(Connection::Tcp { addr }, tx)
    .unwrap()
}

#[tokio::test]
async fn polls_meter_ups_and_bms_and_follows_a_feed_loss() {
    let (sim, _polls, mut c) = poll_sim(&[
        ("meter-1", "power-meter-dual-feed-ats"),
        ("ups-z1", "ups-modular-3ph"),
        ("bms-r01", "rack-bms-li-ion"),
    ])
    .await;
    c.until(
        Duration::from_secs(5),
        "every device up with good values",
        |l| {
            near(l, "meter-1/feed_a_voltage", 400.0, 5.0)
                && near(l, "meter-1/feed_b_voltage", 400.0, 5.0)
                && good(l, "meter-1/ats_source", Value::Text("A".into()))
                && good(l, "meter-1/feed_a_breaker_closed", Value::Bool(true))
                && near(l, "meter-1/feed_a_power", 820.0, 60.0)
                && good(l, "ups-z1/on_battery", Value::Bool(false))
                && near(l, "ups-z1/load_pct", 48.0, 7.0)
                && good(l, "ups-z1/firmware", Value::Text("UPS-7.1".into()))
                && near(l, "bms-r01/cell_temp_max", 24.0, 2.0)
                && good(l, "bms-r01/firmware", Value::Text("BMS-2.4.1".into()))
                && good(l, "bms-r01/contactor_closed", Value::Bool(true))
                && good(l, "bms-r01/online", Value::Bool(true))
                && l.contains_key("meter-1/feed_a_energy")
        },
    )
    .await;
    // The meter's energy counter is a word-swapped u64 scaled by 0.1.
    assert!(c.num("meter-1/feed_a_energy").unwrap() > 1_000_000.0);

    sim.command(&Command::parse("feed-loss A").unwrap())
        .unwrap();
    c.until(Duration::from_secs(5), "ATS on B after feed A loss", |l| {
        good(l, "meter-1/ats_source", Value::Text("B".into()))
            && near(l, "meter-1/feed_a_voltage", 0.0, 0.1)
            && near(l, "meter-1/feed_b_power", 820.0, 60.0)
            && good(l, "ups-z1/on_battery", Value::Bool(false))
    })
    .await;
    sim.command(&Command::parse("feed-loss B").unwrap())
        .unwrap();
    c.until(
        Duration::from_secs(5),
        "UPS on battery with both feeds lost",
        |l| {
            good(l, "ups-z1/on_battery", Value::Bool(true))
                && good(l, "meter-1/ats_source", Value::Text("none".into()))
        },
    )
    .await;
}

#[tokio::test]
async fn heating_rack_and_failed_sensor() {
    let (sim, _polls, mut c) = poll_sim(&[("bms-r02", "rack-bms-li-ion")]).await;
    c.until(Duration::from_secs(5), "rack temp good", |l| {
        near(l, "bms-r02/rack_temp_1", 23.0, 3.0)
    })
    .await;
    sim.command(&Command::parse("sensor-fail bms-r02 rack_temp_1").unwrap())
        .unwrap();
    c.until(Duration::from_secs(5), "failed sensor reads bad", |l| {
        is(l, "bms-r02/rack_temp_1", Quality::Bad, None)
            && near(l, "bms-r02/rack_temp_2", 23.0, 3.0)
    })
    .await;
    // Very fast heating: through 60 °C (contactor opens) and 68 °C (smoke) within seconds.
    sim.command(&Command::parse("heat bms-r02 3000").unwrap())
        .unwrap();
    c.until(
        Duration::from_secs(8),
        "rack through the fire stages",
        |l| {
            c_at_least(l, "bms-r02/cell_temp_max", 80.0)
                && good(l, "bms-r02/contactor_closed", Value::Bool(false))
                && good(l, "bms-r02/smoke", Value::Bool(true))
        },
    )
    .await;
}

fn c_at_least(l: &HashMap<String, dcim_points::Sample>, key: &str, x: f64) -> bool {
    l.get(key)
        .and_then(|s| s.value.as_ref()?.as_f64())
        .is_some_and(|v| v >= x)
}

#[tokio::test]
async fn silent_device_goes_stale_then_comm_lost_and_comes_back() {
    let (sim, _polls, mut c) = poll_sim(&[("ups-z1", "ups-modular-3ph")]).await;
    c.until(Duration::from_secs(5), "ups online", |l| {
        near(l, "ups-z1/load_pct", 48.0, 7.0)
    })
    .await;
    sim.command(&Command::Silent("ups-z1".into())).unwrap();
    c.until(Duration::from_secs(5), "comm lost", |l| {
        is(l, "ups-z1/load_pct", Quality::CommLost, None)
            && good(l, "ups-z1/online", Value::Bool(false))
    })
    .await;
    // On the way the points went stale (keeping their last value) before comm_lost.
    let history: Vec<_> = c.all.iter().filter(|s| s.point == "load_pct").collect();
    let stale = history
        .iter()
        .position(|s| s.quality == Quality::Stale)
        .expect("a stale sample");
    let lost = history
        .iter()
        .position(|s| s.quality == Quality::CommLost)
        .unwrap();
    assert!(stale < lost);
    assert!(
        history[stale].value.is_some() && history[lost].value.is_some(),
        "last value kept"
    );
    sim.command(&Command::Revive("ups-z1".into())).unwrap();
    c.until(Duration::from_secs(5), "back online", |l| {
        good(l, "ups-z1/online", Value::Bool(true)) && near(l, "ups-z1/load_pct", 48.0, 7.0)
    })
    .await;
}

#[tokio::test]
async fn late_answers_never_corrupt_later_reads() {
    // The device answers after the timeout (tokio-modbus #324: the late reply would otherwise be
    // taken as the answer to the next request); then it answers promptly again.
    let (sim, _polls, mut c) = poll_sim(&[("meter-1", "power-meter-dual-feed-ats")]).await;
    c.until(Duration::from_secs(5), "meter good", |l| {
        near(l, "meter-1/feed_a_voltage", 400.0, 5.0)
    })
    .await;
    sim.command(&Command::Slow {
        device: "meter-1".into(),
        ms: 450,
    })
    .unwrap();
    c.until(Duration::from_secs(5), "stale while slow", |l| {
        is(l, "meter-1/feed_a_voltage", Quality::Stale, None)
    })
    .await;
    sim.command(&Command::Revive("meter-1".into())).unwrap();
    c.until(Duration::from_secs(5), "good again", |l| {
        near(l, "meter-1/feed_a_voltage", 400.0, 5.0)
    })
    .await;
    // Every good value after recovery is a plausible one (no reply of another request).
    let start = c.all.len();
    c.until(Duration::from_secs(3), "more polls", |l| {
        l.get("meter-1/feed_a_frequency").is_some()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    while let Ok(b) = c.rx.try_recv() {
        c.all.extend(b);
    }
    for s in &c.all[start..] {
        if s.point == "feed_a_voltage" && s.quality == Quality::Good {
            let v = s.value.as_ref().unwrap().as_f64().unwrap();
            assert!((390.0..=410.0).contains(&v), "corrupted read: {s:?}");
        }
    }
}

#[tokio::test]
async fn reconnects_after_the_server_goes_away() {
    let p = quick(profile("ups-modular-3ph"));
    let shared = Arc::new(ModbusShared::default());
    shared.write_values(&p, &[("load_pct", SimValue::Number(42.0))]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = serve_tcp(listener, shared.clone());
    let (tx, rx) = mpsc::channel(64);
    let _d = ModbusDevice {
        id: "ups".into(),
        unit_id: 1,
        profile: p.clone(),
    }
    .spawn(Connection::Tcp { addr }, tx)
    .unwrap();
    let mut c = Collector::new(rx);
    c.until(Duration::from_secs(5), "good", |l| {
        near(l, "ups/load_pct", 42.0, 0.01)
    })
    .await;
    server.abort();
    let _ = server.await;
    c.until(Duration::from_secs(5), "comm lost while unplugged", |l| {
        good(l, "ups/online", Value::Bool(false))
    })
    .await;
    shared.write_values(&p, &[("load_pct", SimValue::Number(43.0))]);
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let _server = serve_tcp(listener, shared);
    c.until(Duration::from_secs(5), "back after plug-in", |l| {
        good(l, "ups/online", Value::Bool(true)) && near(l, "ups/load_pct", 43.0, 0.01)
    })
    .await;
}

#[tokio::test]
async fn a_dead_unit_on_a_shared_gateway_does_not_stall_the_others() {
    let p = quick(profile("ups-modular-3ph"));
    let mut units = HashMap::new();
    for (unit, load) in [(1u8, 11.0), (2, 22.0), (3, 33.0)] {
        let s = Arc::new(ModbusShared::default());
        s.write_values(&p, &[("load_pct", SimValue::Number(load))]);
        units.insert(unit, s);
    }
    units[&2].silent.store(true, Ordering::Relaxed);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _gw = serve_rtu_gateway(listener, units.clone());
    let devices = (1..=3)
        .map(|u| ModbusDevice {
            id: format!("ups-{u}"),
            unit_id: u,
            profile: p.clone(),
        })
        .collect();
    let (tx, rx) = mpsc::channel(64);
    let _line = spawn_line(Connection::RtuOverTcp { addr }, devices, tx).unwrap();
    let mut c = Collector::new(rx);
    c.until(
        Duration::from_secs(5),
        "units 1 and 3 good, unit 2 lost",
        |l| {
            near(l, "ups-1/load_pct", 11.0, 0.01)
                && near(l, "ups-3/load_pct", 33.0, 0.01)
                && good(l, "ups-2/online", Value::Bool(false))
        },
    )
    .await;
    // Over 2 s, units 1 and 3 are still polled at (nearly) their 200 ms rate although unit 2
    // never answers: it costs one 300 ms timeout per back-off period at most.
    let before = [
        units[&1].requests.load(Ordering::Relaxed),
        units[&3].requests.load(Ordering::Relaxed),
    ];
    let drain = async {
        loop {
            if c.rx.recv().await.is_none() {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
    let after = [
        units[&1].requests.load(Ordering::Relaxed),
        units[&3].requests.load(Ordering::Relaxed),
    ];
    for i in 0..2 {
        let polls = after[i] - before[i];
        assert!(polls >= 4, "unit polled only {polls} times in 2 s");
    }
    units[&2].silent.store(false, Ordering::Relaxed);
    c.until(Duration::from_secs(5), "unit 2 back", |l| {
        near(l, "ups-2/load_pct", 22.0, 0.01)
    })
    .await;
}

#[tokio::test]
async fn rtu_over_a_serial_line_with_a_dead_unit() {
    use tokio_serial::SerialPort;
    let p = quick(profile("ups-modular-3ph"));
    let mut units = HashMap::new();
    for (unit, load) in [(1u8, 11.0), (2, 22.0)] {
        let s = Arc::new(ModbusShared::default());
        s.write_values(&p, &[("load_pct", SimValue::Number(load))]);
        units.insert(unit, s);
    }
    units[&2].silent.store(true, Ordering::Relaxed);
    // A pseudo-terminal pair stands in for the RS-485 line: the simulator serves the master end,
    // the poller opens the slave end by its path.
    let (master, slave) = tokio_serial::SerialStream::pair().unwrap();
    let path = slave.name().expect("pty path");
    let _srv = facility_sim::serve_rtu_serial(master, units.clone());
    let devices = (1..=2)
        .map(|u| ModbusDevice {
            id: format!("ups-{u}"),
            unit_id: u,
            profile: p.clone(),
        })
        .collect();
    let (tx, rx) = mpsc::channel(64);
    let _line = spawn_line(
        Connection::Rtu {
            path,
            baud_rate: 19_200,
        },
        devices,
        tx,
    )
    .unwrap();
    let mut c = Collector::new(rx);
    c.until(
        Duration::from_secs(8),
        "unit 1 good over RTU, unit 2 lost",
        |l| near(l, "ups-1/load_pct", 11.0, 0.01) && good(l, "ups-2/online", Value::Bool(false)),
    )
    .await;
    units[&2].silent.store(false, Ordering::Relaxed);
    c.until(Duration::from_secs(8), "unit 2 back", |l| {
        near(l, "ups-2/load_pct", 22.0, 0.01)
    })
    .await;
    drop(slave);
}

#[tokio::test]
async fn writes_go_through_the_line_and_failures_are_returned() {
    use dcim_modbus::{WriteError, spawn_line_with_writes};
    let p = dcim_profiles::load_str(
        "relay.toml",
        r#"[profile]
name = "relay"
protocol = "modbus"
[comm]
timeout_ms = 200
retries = 0
[modbus]
address_base = 1
order = "CDAB"
[[point]]
id = "blanket_release"
role = "custom.blanket_release"
table = "coil"
register = 3
[[point]]
id = "setpoint"
role = "custom.setpoint"
table = "holding"
register = 11
type = "f32"
scale = 0.5
[[point]]
id = "state"
role = "custom.state"
table = "input"
register = 1
"#,
    )
    .unwrap();
    let p = Arc::new(p);
    let shared = Arc::new(ModbusShared::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _srv = serve_tcp(listener, shared.clone());
    let (tx, _rx) = mpsc::channel(64);
    let dev = ModbusDevice {
        id: "relay".into(),
        unit_id: 1,
        profile: p,
    };
    let line = spawn_line_with_writes(Connection::Tcp { addr }, vec![dev], tx, None).unwrap();

    line.write("relay", "blanket_release", Value::Bool(true))
        .await
        .unwrap();
    line.write("relay", "setpoint", Value::Number(61.0))
        .await
        .unwrap();
    {
        let bank = shared.bank.lock().unwrap();
        assert_eq!(
            bank.bits(dcim_profiles::Table::Coil, 2, 1),
            vec![true],
            "coil 3 = wire 2"
        );
        // 61.0 / 0.5 = 122.0f32 = 0x42F40000, word-swapped.
        assert_eq!(
            bank.registers(dcim_profiles::Table::Holding, 10, 2),
            vec![0x0000, 0x42F4]
        );
    }
    assert!(matches!(
        line.write("relay", "state", Value::Number(1.0)).await,
        Err(WriteError::NotWritable(..))
    ));
    assert!(matches!(
        line.write("relay", "nope", Value::Bool(true)).await,
        Err(WriteError::UnknownPoint(..))
    ));
    assert!(matches!(
        line.write("other", "setpoint", Value::Bool(true)).await,
        Err(WriteError::UnknownDevice(..))
    ));
    shared.silent.store(true, Ordering::Relaxed);
    assert_eq!(
        line.write("relay", "blanket_release", Value::Bool(false))
            .await,
        Err(WriteError::NoAnswer)
    );
}
