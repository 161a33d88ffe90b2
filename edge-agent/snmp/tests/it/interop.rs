//! The SNMP driver against real SNMP agents from the package registries: snmpsim (PyPI)
//! replaying recorded devices (a switch with IF-MIB and LLDP-MIB, a UPS-MIB UPS, a switched
//! PDU), net-snmp's snmpd (Debian) with an SNMPv3 authPriv user, and net-snmp's snmptrap /
//! snmpinform as notification senders.

use crate::common;

use common::*;
use dcim_points::{Quality, Sample, Value};
use dcim_profiles::load_file;
use dcim_snmp::*;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

fn profile(name: &str) -> dcim_profiles::Profile {
    load_file(&repo().join("device-profiles").join(name)).unwrap()
}

fn v2c(port: u16, community: &str) -> SnmpTarget {
    SnmpTarget {
        address: format!("127.0.0.1:{port}").parse().unwrap(),
        credentials: Credentials::V2c {
            community: community.into(),
        },
    }
}

fn link(name: &str, if_index: u32, neighbor: Option<&str>) -> LinkConfig {
    LinkConfig {
        name: name.into(),
        if_index,
        lldp_port: if_index,
        neighbor: neighbor.map(Into::into),
    }
}

/// The device `id` read with the profile file `profile_name`, `links` and device `labels`.
fn device(
    id: &str,
    profile_name: &str,
    links: Vec<LinkConfig>,
    labels: &BTreeMap<String, String>,
) -> Result<SnmpDevice, String> {
    SnmpDevice::new(id, &profile(profile_name), links, labels, 0)
}

/// A SNMPv2c client of snmpsim's recorded device `community` on `port`.
async fn recorded(port: u16, community: &str) -> SnmpClient {
    SnmpClient::connect(&v2c(port, community), Duration::from_secs(2), 1)
        .await
        .unwrap()
}

/// Polls every class once; returns the latest sample per point id, and the notices.
async fn poll_all(
    dev: &mut SnmpDevice,
    client: &SnmpClient,
    now_ms: i64,
) -> (HashMap<String, Sample>, Vec<Notice>) {
    let mut out = Vec::new();
    let mut notices = Vec::new();
    for (class, _) in dev.schedule() {
        let r = client
            .poll(&dev.request(class), dev.max_repetitions())
            .await;
        notices.extend(dev.on_poll(class, &r, now_ms, &mut out));
    }
    (
        out.into_iter().map(|s| (s.point.clone(), s)).collect(),
        notices,
    )
}

fn good(s: &HashMap<String, Sample>, id: &str) -> Value {
    let x = s
        .get(id)
        .unwrap_or_else(|| panic!("no sample for {id}: {s:#?}"));
    assert_eq!(x.quality, Quality::Good, "{id}: {x:?}");
    x.value.clone().unwrap()
}

/// Hazard: network redundancy learned only from a probe is blind to what the switches say; a
/// link that is down, or up towards the wrong neighbour, must show as such from the switch
/// itself, and a link going down must not read as up.
#[tokio::test]
async fn a_recorded_switch_gives_link_state_speed_neighbours_and_a_link_going_down() {
    if !snmpsim_available() || !netsnmp_available() {
        return;
    }
    let sim = snmpsim();
    let links = vec![
        link("core-a-uplink", 1, Some("core-a")),
        link("core-b-uplink", 2, Some("core-b")),
        link("row-peer", 3, Some("sw-row-h1-99")),
        link("spare", 4, None),
    ];
    let mut dev = device(
        "sw-row-h1-01",
        "switch-if-mib-lldp.toml",
        links,
        &BTreeMap::new(),
    )
    .unwrap();
    let client = recorded(sim.port, "switch").await;
    let (s, notices) = poll_all(&mut dev, &client, 1000).await;
    assert_eq!(good(&s, "up.core-a-uplink"), Value::Bool(true));
    assert_eq!(good(&s, "up.core-b-uplink"), Value::Bool(true));
    assert_eq!(good(&s, "speed.core-a-uplink"), Value::Number(100.0));
    assert_eq!(good(&s, "speed.row-peer"), Value::Number(25.0));
    assert_eq!(
        good(&s, "neighbor.core-a-uplink"),
        Value::Text("core-a".into())
    );
    assert_eq!(
        good(&s, "up.spare"),
        Value::Bool(false),
        "ifOperStatus 2 is down"
    );
    assert_eq!(good(&s, "admin_up.spare"), Value::Bool(false));
    assert_eq!(good(&s, "name"), Value::Text("sw-row-h1-01".into()));
    let up = &s["up.core-a-uplink"];
    assert_eq!(up.role.as_str(), "link.up");
    assert_eq!(
        up.labels.get("link").map(String::as_str),
        Some("core-a-uplink")
    );
    // Up, but towards another switch than designed: not proof of the designed path.
    let peer = &s["up.row-peer"];
    assert_eq!(
        (peer.quality, peer.value.clone()),
        (Quality::Bad, Some(Value::Bool(true)))
    );
    let mism: Vec<&Notice> = notices
        .iter()
        .filter(|n| n.kind == "link.neighbor_mismatch")
        .collect();
    assert_eq!(mism.len(), 1, "{notices:?}");
    assert_eq!(mism[0].data["link"], "row-peer");
    assert_eq!(mism[0].data["seen"], "sw-row-h1-02");

    // The link to core-b goes down (net-snmp's snmpset on the simulator's writable record).
    let addr = format!("127.0.0.1:{}", sim.port);
    netsnmp(&[
        "snmpset",
        "-v2c",
        "-c",
        "switch",
        &addr,
        "1.3.6.1.2.1.2.2.1.8.2",
        "i",
        "2",
    ]);
    let (s, notices) = poll_all(&mut dev, &client, 2000).await;
    assert_eq!(good(&s, "up.core-b-uplink"), Value::Bool(false));
    assert!(
        notices.is_empty(),
        "the mismatch is reported once: {notices:?}"
    );
    assert_eq!(
        dev.current("up.row-peer").unwrap().1,
        Some(Quality::Bad),
        "still not the designed path"
    );
}

/// Hazard: a UPS or PDU read through the wrong OID or scale looks plausible and wrong; the
/// values of the recorded devices must come out as the MIBs define them.
#[tokio::test]
async fn recorded_ups_mib_ups_and_switched_pdu_decode() {
    if !snmpsim_available() || !netsnmp_available() {
        return;
    }
    let sim = snmpsim();
    let mut ups = device("ups-z1", "ups-mib-rfc1628.toml", vec![], &BTreeMap::new()).unwrap();
    let client = recorded(sim.port, "ups").await;
    let (s, _) = poll_all(&mut ups, &client, 1000).await;
    assert_eq!(good(&s, "on_battery"), Value::Bool(false));
    assert_eq!(good(&s, "on_bypass"), Value::Bool(false));
    assert_eq!(good(&s, "output_source"), Value::Text("normal".into()));
    assert_eq!(good(&s, "battery_status"), Value::Text("normal".into()));
    assert_eq!(good(&s, "runtime"), Value::Number(1440.0));
    assert_eq!(good(&s, "charge"), Value::Number(97.0));
    assert_eq!(good(&s, "battery_temp"), Value::Number(27.0));
    assert_eq!(good(&s, "output_voltage"), Value::Number(230.0));
    assert_eq!(
        good(&s, "output_current_l3"),
        Value::Number(130.20000000000002)
    );
    assert_eq!(s["output_current_l3"].labels["phase"], "L3");
    assert_eq!(good(&s, "alarms"), Value::Bool(false));

    let labels: BTreeMap<String, String> = [("feed".to_string(), "A".to_string())].into();
    let mut pdu = device("pdu-r07-a", "pdu-switched-apc-rpdu.toml", vec![], &labels).unwrap();
    let client = recorded(sim.port, "pdu").await;
    let (s, _) = poll_all(&mut pdu, &client, 1000).await;
    assert_eq!(good(&s, "current"), Value::Number(6.300000000000001));
    assert_eq!(s["current"].labels["feed"], "A");
    assert_eq!(good(&s, "outlet_1"), Value::Bool(true));
    assert_eq!(good(&s, "outlet_4"), Value::Bool(false));
    // A device label the configuration does not give is an error, not an unlabelled value.
    let e = device(
        "pdu",
        "pdu-switched-apc-rpdu.toml",
        vec![],
        &BTreeMap::new(),
    )
    .err()
    .unwrap();
    assert!(e.contains("feed"), "{e}");
}

/// Hazard: SNMPv3 is what a secured management network uses; a key mismatch must show as a
/// communication failure, never as values.
#[tokio::test]
async fn snmpv3_auth_priv_against_net_snmp_and_a_wrong_key_is_never_good() {
    if !netsnmp_available() {
        return;
    }
    let agent = snmpd();
    let target = |priv_password: &str| SnmpTarget {
        address: format!("127.0.0.1:{}", agent.port).parse().unwrap(),
        credentials: Credentials::V3(UsmUser {
            name: V3_USER.into(),
            auth: AuthAlg::Sha1,
            auth_password: V3_AUTH.into(),
            privacy: PrivAlg::Aes128,
            privacy_password: priv_password.into(),
        }),
    };
    // ifIndex 1 of the machine's own IF-MIB is the loopback interface: up.
    let lab = || {
        let links = vec![link("lo", 1, None)];
        device("lab", "switch-if-mib-lldp.toml", links, &BTreeMap::new()).unwrap()
    };
    let mut dev = lab();
    let client = SnmpClient::connect(&target(V3_PRIV), Duration::from_secs(2), 1)
        .await
        .unwrap();
    let (s, _) = poll_all(&mut dev, &client, 1000).await;
    assert_eq!(good(&s, "name"), Value::Text("snmpd-lab".into()));
    assert_eq!(good(&s, "up.lo"), Value::Bool(true));

    let mut dev = lab();
    let client = SnmpClient::connect(&target("wrongpass123"), Duration::from_millis(500), 0)
        .await
        .unwrap();
    let mut out = Vec::new();
    for (class, _) in dev.schedule() {
        let r = client.poll(&dev.request(class), 10).await;
        assert!(
            r.is_err(),
            "a wrong privacy key must not yield values: {r:?}"
        );
        dev.on_poll(class, &r, 1000, &mut out);
    }
    let notices = dev.tick(1000 + 15_000, &mut out);
    assert!(notices.iter().any(|n| n.kind == "device.comm_lost"));
    assert!(
        out.iter()
            .all(|s| s.quality != Quality::Good || s.point == "online")
    );
}

/// Hazard: a switch or UPS announcing a lost link or a change to battery by a notification
/// that nobody receives (or that anybody may forge) is an alarm that never comes. v2c traps
/// and informs with the configured community, and v3 authPriv traps and informs, must arrive;
/// an unknown community must not.
#[tokio::test]
async fn traps_and_informs_v2c_and_v3_reach_the_receiver() {
    if !netsnmp_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_udp_port();
    let settings = ReceiverSettings {
        listen: format!("127.0.0.1:{port}").parse().unwrap(),
        communities: vec!["monitor".into()],
        users: vec![UsmUser {
            name: "trapper".into(),
            auth: AuthAlg::Sha256,
            auth_password: "trapauth123".into(),
            privacy: PrivAlg::Aes128,
            privacy_password: "trappriv123".into(),
        }],
        engine_id: vec![0x80, 0x00, 0x1f, 0x88, 0x04, b'a', b'g', b'e', b'n', b't'],
        engine_file: dir.path().join("engine"),
    };
    let rx = TrapReceiver::bind(&settings).await.unwrap();
    let addr = format!("127.0.0.1:{port}");
    let link_down = [
        "",
        "1.3.6.1.6.3.1.1.5.3",
        "1.3.6.1.2.1.2.2.1.1.2",
        "i",
        "2",
        "1.3.6.1.2.1.2.2.1.8.2",
        "i",
        "2",
    ];
    let send = |tool: &'static str, args: Vec<String>| {
        std::thread::spawn(move || {
            let mut all = vec![tool.to_string()];
            all.extend(args);
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            netsnmp(&refs);
        })
    };
    let with = |head: &[&str]| -> Vec<String> {
        head.iter()
            .chain([addr.as_str()].iter())
            .chain(link_down.iter())
            .map(|s| s.to_string())
            .collect()
    };
    let expect = async |what: &str| -> Received {
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no {what} received"))
            .unwrap()
    };
    // v2c trap with an unknown community: dropped; then one with the configured community.
    send("snmptrap", with(&["-v2c", "-c", "public"]))
        .join()
        .unwrap();
    send("snmptrap", with(&["-v2c", "-c", "monitor"]))
        .join()
        .unwrap();
    let r = expect("v2c trap").await;
    assert_eq!(r.trap.trap_oid, trap::LINK_DOWN);
    assert!(!r.trap.inform);
    let (n, poll) = classify(&r.trap, "sw", &[link("core-b-uplink", 2, None)], 1);
    assert_eq!((n.kind.as_str(), poll), ("link.down", true));
    assert_eq!(n.data["link"], "core-b-uplink");
    // v2c inform: snmpinform exits successfully only once the receiver acknowledged it.
    let inform = send(
        "snmpinform",
        with(&["-v2c", "-c", "monitor", "-t", "2", "-r", "1"]),
    );
    let r = expect("v2c inform").await;
    assert!(r.trap.inform);
    inform.join().unwrap();
    // v3 authPriv trap (the sender is authoritative: its engine id is given) and inform (the
    // receiver is authoritative: snmpinform discovers its engine id).
    let v3 = |extra: &[&str]| {
        let mut h = vec![
            "-v3",
            "-l",
            "authPriv",
            "-u",
            "trapper",
            "-a",
            "SHA-256",
            "-A",
            "trapauth123",
            "-x",
            "AES",
            "-X",
            "trappriv123",
        ];
        h.extend_from_slice(extra);
        with(&h)
    };
    send("snmptrap", v3(&["-e", "0x8000000001020304"]))
        .join()
        .unwrap();
    let r = expect("v3 trap").await;
    assert!(r.trap.security.contains("trapper"), "{}", r.trap.security);
    let inform = send("snmpinform", v3(&["-t", "2", "-r", "1"]));
    let r = expect("v3 inform").await;
    assert!(r.trap.inform);
    inform.join().unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), rx.recv())
            .await
            .is_err(),
        "the trap with the wrong community must have been dropped"
    );
}
