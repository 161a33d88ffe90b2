//! The agent with an SNMP switch (snmpsim replaying a recorded switch) and its trap receiver:
//! per-link `link.up` samples with the `link` label the server binds network components by
//! reach the broker, and a link going down, announced by a linkDown trap from the switch
//! (net-snmp's snmptrap), reaches the broker as an event and as `link.up = false` without
//! waiting for the next poll.
//!
//! Hazard: a carrier link lost on the switch while the center still shows the network 2N.

use crate::common;
use dcim_test_support::snmp as snmp_peers;

use common::*;
use dcim_edge_agent::config;
use dcim_points::{Quality, Value};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_switch_link_going_down_reaches_the_center_as_event_and_sample() {
    if !mosquitto_available()
        || !snmp_peers::snmpsim_available()
        || !snmp_peers::netsnmp_available()
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _broker = Mosquitto::start(&dir.path().join("broker"), port);
    let (got, sub) = subscribe(port, "snmp-test-sub").await;
    let sim = snmp_peers::snmpsim();
    let trap_port = snmp_peers::free_udp_port();
    // The switch profile with a slow link poll, so that only the trap can explain a quick
    // update after the link goes down.
    let profile =
        std::fs::read_to_string(snmp_peers::repo().join("device-profiles/switch-if-mib-lldp.toml"))
            .unwrap()
            .replace(
                "[snmp]",
                "[poll]\nfast_ms = 60000\nnormal_ms = 60000\n\n[snmp]",
            );
    std::fs::write(dir.path().join("switch.toml"), profile).unwrap();
    let head = config_head("snmp-agent", port, false);
    let text = format!(
        r#"{head}[[device]]
id = "sw-row-h1-01"
profile = "switch.toml"
snmp = {{ address = "127.0.0.1:{sim}", community = "switch" }}
[[device.link]]
name = "core-a-uplink"
if_index = 1
neighbor = "core-a"
[[device.link]]
name = "core-b-uplink"
if_index = 2
neighbor = "core-b"
[snmp_traps]
listen = "127.0.0.1:{trap_port}"
communities = ["switch-traps"]
"#,
        sim = sim.port
    );
    let cfg = config::parse("agent.toml", &text, dir.path()).unwrap();
    let agent = RunningAgent::start_config(cfg);
    let samples = || common::samples(&got);
    let events = || common::events(&got);
    let link_up = |link: &str, up: bool| {
        samples().iter().any(|s| {
            s.role.as_str() == "link.up"
                && s.labels.get("link").map(String::as_str) == Some(link)
                && s.quality == Quality::Good
                && s.value == Some(Value::Bool(up))
        })
    };
    let both_up = wait_until(Duration::from_secs(15), || {
        link_up("core-a-uplink", true) && link_up("core-b-uplink", true)
    })
    .await;

    // The link to core-b goes down on the switch, which sends a linkDown trap from its address.
    let sim_addr = format!("127.0.0.1:{}", sim.port);
    snmp_peers::netsnmp(&[
        "snmpset",
        "-v2c",
        "-c",
        "switch",
        &sim_addr,
        "1.3.6.1.2.1.2.2.1.8.2",
        "i",
        "2",
    ]);
    let down_at = Instant::now();
    snmp_peers::netsnmp(&[
        "snmptrap",
        "-v2c",
        "-c",
        "switch-traps",
        &format!("127.0.0.1:{trap_port}"),
        "",
        "1.3.6.1.6.3.1.1.5.3",
        "1.3.6.1.2.1.2.2.1.1.2",
        "i",
        "2",
    ]);
    let down = wait_until(Duration::from_secs(10), || {
        link_up("core-b-uplink", false)
            && events()
                .iter()
                .any(|e| e.kind == "link.down" && e.data["link"] == "core-b-uplink")
    })
    .await;
    let took = down_at.elapsed();
    agent.stop().await;
    sub.abort();
    assert!(both_up, "per-link samples did not arrive: {:?}", samples());
    assert!(
        down,
        "the link going down did not reach the center: {:?}",
        events()
    );
    assert!(
        took < Duration::from_secs(10),
        "the trap did not make the agent poll at once ({took:?}; the link poll is 60 s)"
    );
    let s = samples();
    let up = s.iter().find(|s| s.point == "up.core-a-uplink").unwrap();
    assert_eq!(up.device, "sw-row-h1-01");
    assert_eq!(up.labels["link"], "core-a-uplink");
}
