//! Network redundancy from the switches themselves, end to end: a recorded edge switch
//! (snmpsim, IF-MIB + LLDP-MIB) carries the two carrier links of a small site; the edge agent
//! polls it over SNMP and publishes per-link `link.up` samples through the server's embedded
//! broker; the server binds them by the `link` label to the two carrier components. Taking one
//! carrier port down on the switch (net-snmp's snmpset) and sending its linkDown trap makes the
//! server's network redundancy drop from 2N to N, read through the REST API.
//!
//! Hazard: network redundancy learned only from a probe: a carrier link lost on the switch
//! while the center still shows 2N.

use dcim_test_support::snmp as snmp_peers;

use dcim_server::config::{AgentConfig, Config};
use serde_json::Value;
use std::time::Duration;

const SITE: &str = r#"
[site]
name = "links"

[[component]]
id = "carrier-a"
kind = "carrier"
rating_gbps = 100
device = "sw-edge-1"
labels = { link = "carrier-a" }
points = ["link.up"]

[[component]]
id = "carrier-b"
kind = "carrier"
rating_gbps = 100
device = "sw-edge-1"
labels = { link = "carrier-b" }
points = ["link.up"]

[[component]]
id = "core-1"
kind = "core"
rating_gbps = 400
upstream = ["carrier-a", "carrier-b"]
need = 1

[[component]]
id = "core-2"
kind = "core"
rating_gbps = 400
upstream = ["carrier-a", "carrier-b"]
need = 1

[[component]]
id = "row-1"
kind = "row"
rating_gbps = 100
upstream = ["core-1", "core-2"]
need = 1

[[component]]
id = "r01"
kind = "rack"
rating_kw = 8
upstream = [{ of = ["row-1"] }]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carrier_port_going_down_on_the_switch_drops_network_redundancy_to_n()
-> anyhow::Result<()> {
    if !snmp_peers::snmpsim_available() || !snmp_peers::netsnmp_available() {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let sim = snmp_peers::snmpsim();
    std::fs::write(dir.path().join("site.toml"), SITE)?;
    let mut c = Config {
        data_dir: dir.path().join("server"),
        site_model: Some(dir.path().join("site.toml")),
        ..Default::default()
    };
    c.http.listen = "127.0.0.1:0".parse()?;
    c.broker.listen = "127.0.0.1:0".parse()?;
    c.auth.argon2_memory_kib = 64;
    c.auth.argon2_iterations = 1;
    c.agents = vec![AgentConfig {
        id: "edge-net".into(),
        site: "links".into(),
        password: Some("edge-net-secret".into()),
        password_env: None,
        devices: vec!["sw-edge-1".into()],
    }];
    let server = dcim_server::start(c).await?;
    let token = dcim_e2e::admin_token(&server).await?;
    let mqtt = server.mqtt_addr.expect("embedded broker");

    // The edge agent: the recorded switch, its two carrier links (ports 1 and 2, LLDP
    // neighbours as recorded) and a trap receiver.
    let trap_port = snmp_peers::free_udp_port();
    let profile = snmp_peers::repo().join("device-profiles/switch-if-mib-lldp.toml");
    let text = format!(
        r#"
site = "links"
agent = "edge-net"
log_level = "warn"
[spool]
dir = "spool"
[[broker]]
name = "center"
url = "mqtt://{mqtt}"
username = "edge-net"
password = "edge-net-secret"
backoff_initial_ms = 50
[[device]]
id = "sw-edge-1"
profile = "{profile}"
snmp = {{ address = "127.0.0.1:{sim}", community = "switch" }}
[[device.link]]
name = "carrier-a"
if_index = 1
neighbor = "core-a"
[[device.link]]
name = "carrier-b"
if_index = 2
neighbor = "core-b"
[snmp_traps]
listen = "127.0.0.1:{trap_port}"
communities = ["switch-traps"]
"#,
        profile = profile.display(),
        sim = sim.port,
    );
    let cfg = dcim_edge_agent::config::parse("agent.toml", &text, &dir.path().join("agent"))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let agent = dcim_edge_agent::Agent::start(cfg)?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let run = tokio::spawn(agent.run(stop_rx));

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()?;
    let network = async || -> anyhow::Result<Value> {
        let r: Value = http
            .get(format!("http://{}/api/site/redundancy", server.http_addr))
            .bearer_auth(&token)
            .send()
            .await?
            .json()
            .await?;
        r["subsystems"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["subsystem"] == "network"))
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no network subsystem in {r}"))
    };
    let at = |want: &'static str| {
        let network = &network;
        async move {
            dcim_e2e::wait_for(
                &format!("network at {want}"),
                Duration::from_secs(20),
                || async {
                    let n = network().await?;
                    Ok((n["current"] == want).then_some(n))
                },
            )
            .await
        }
    };
    let healthy = at("2N").await?;
    assert_eq!(healthy["designed"], "2N");

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
    let degraded = at("N").await?;
    assert_eq!(degraded["designed"], "2N");
    assert_eq!(degraded["down"], serde_json::json!(["carrier-b"]));

    stop_tx.send(true)?;
    run.await?;
    server.shutdown().await;
    Ok(())
}
