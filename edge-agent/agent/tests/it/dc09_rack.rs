//! A rack without a controller forwards its fire alarms over SIA DC-09 to a pysiaalarm
//! receiver (`tests/interop/dc09/receiver.py`), which acknowledges them; the time from the
//! Modbus sample that crossed a threshold to the receiver's ACK is measured and printed.

use crate::common;
use dcim_test_support::sia as dc09_common;

use common::RunningAgent;
use dc09_common::{Receiver, ReceiverOpts, python};
use facility_sim::SimValue;
use std::time::{Duration, Instant};

async fn wait_code(rcv: &Receiver, code: &str, timeout: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < timeout {
        if rcv
            .rows()
            .iter()
            .any(|r| r["code"] == code && r["response"] == "ACK")
        {
            return Some(t0.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fire_alarms_of_a_local_rack_reach_the_receiver() {
    let Some(py) = python("fire_alarms_of_a_local_rack_reach_the_receiver") else {
        return;
    };
    let mut latencies = Vec::new();
    for run in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let rcv = Receiver::start(&py, &dir.path().join("rcv.log"), ReceiverOpts::default());
        common::write_link_toml(dir.path(), rcv.port, true);
        let (profile, rio, addr, server) = common::serve_rack_io(dir.path(), "", &[]).await;
        // The broker is never started: fire forwarding must not depend on the center.
        let head = common::dc09_agent_head(common::free_port());
        let rack = common::rack_07_toml(addr, Some(1));
        let text = format!(r#"{head}{rack}"#);
        let agent = RunningAgent::start(&text, dir.path());
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let mut steps = Vec::new();
        for (temp, code) in [(61.0, "KA"), (69.0, "FA"), (81.0, "SA")] {
            rio.write_values(
                &profile,
                &[
                    ("t1", SimValue::Number(temp)),
                    ("t2", SimValue::Number(temp)),
                ],
            );
            let got = wait_code(&rcv, code, Duration::from_secs(10)).await;
            steps.push((code, got));
        }
        agent.stop().await;
        server.abort();
        for (code, got) in &steps {
            let d = got.unwrap_or_else(|| panic!("run {run}: {code} not ACKed: {:?}", rcv.rows()));
            latencies.push(d);
        }
        let rows = rcv.rows();
        let ka: Vec<_> = rows.iter().filter(|r| r["code"] == "KA").collect();
        assert_eq!(ka.len(), 1, "stage 1 sent once: {rows:?}");
    }
    latencies.sort();
    println!(
        "threshold sample -> DC-09 ACK: n={} p50={:?} max={:?}",
        latencies.len(),
        latencies[latencies.len() / 2],
        latencies.last().unwrap()
    );
}
