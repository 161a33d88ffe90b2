//! Interop with bacpypes3 (a third-party BACnet stack) on 127.0.0.1:
//! - our client discovers, reads (ReadPropertyMultiple) and subscribes (COV) to a bacpypes3
//!   device (`tests/interop/bacnet/bacpypes3_device.py`);
//! - bacpypes3 as a client discovers and reads our device server and subscribes to COV
//!   (`tests/interop/bacnet/bacpypes3_client.py`).
//!
//! The interpreter is `$DCIM_PYTHON` (default `python3`). If bacpypes3 cannot be imported the
//! tests print "skipped: ..." and pass, unless `DCIM_REQUIRE_PEERS=1`, where they fail.

use dcim_bacnet::chiller_plant::{self, ChillerPlant};
use dcim_bacnet::client::{BacnetClient, ClientConfig, CovOptions, PropertyRef};
use dcim_bacnet::codec::types::*;
use dcim_bacnet::server::DeviceServer;
use dcim_test_support::peers::python;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/interop/bacnet")
        .join(name)
}

/// True if bacpypes3 is importable; otherwise skips (or fails under DCIM_REQUIRE_PEERS=1).
fn peer_available() -> bool {
    dcim_test_support::peers::python_with("bacpypes3").is_some()
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn next_line(lines: &mut Lines<BufReader<ChildStdout>>, what: &str) -> String {
    match tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await {
        Ok(Ok(Some(l))) => l,
        other => panic!("peer ended or timed out waiting for {what}: {other:?}"),
    }
}

fn spawn(args: &[&str]) -> (Child, Lines<BufReader<ChildStdout>>) {
    let mut child = Command::new(python())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start python peer");
    let out = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, out)
}

#[tokio::test]
async fn our_client_against_bacpypes3_device() {
    if !peer_available() {
        return;
    }
    let port = free_udp_port();
    let dev_script = script("bacpypes3_device.py");
    let (mut child, mut lines) = spawn(&[
        dev_script.to_str().unwrap(),
        "--port",
        &port.to_string(),
        "--instance",
        "599",
    ]);
    assert_eq!(next_line(&mut lines, "READY").await, "READY");
    let peer: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let client = BacnetClient::bind_with(
        "127.0.0.1:0".parse().unwrap(),
        ClientConfig {
            broadcast: peer,
            timeout: Duration::from_millis(1500),
            retries: 2,
            ..ClientConfig::default()
        },
    )
    .await
    .unwrap();

    let found = client
        .discover(Some((599, 599)), Duration::from_millis(800))
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].instance, 599);
    assert_eq!(found[0].addr, peer);
    assert_eq!(found[0].vendor_id, 999);

    let ai1 = ObjectId::new(ObjectType::ANALOG_INPUT, 1);
    let bi1 = ObjectId::new(ObjectType::BINARY_INPUT, 1);
    let av1 = ObjectId::new(ObjectType::ANALOG_VALUE, 1);
    let refs = [
        PropertyRef::present_value(ai1),
        PropertyRef::new(ai1, PropertyId::UNITS),
        PropertyRef::new(ai1, PropertyId::STATUS_FLAGS),
        PropertyRef::present_value(bi1),
        PropertyRef::new(av1, PropertyId::OBJECT_NAME),
        PropertyRef::present_value(ObjectId::new(ObjectType::ANALOG_INPUT, 99)),
        PropertyRef::new(ObjectId::device(599), PropertyId::OBJECT_LIST),
    ];
    let res = client.read_multiple(599, &refs).await.unwrap();
    assert_eq!(res[0], Ok(Value::Real(7.5)));
    assert_eq!(res[1], Ok(Value::Enumerated(units::DEGREES_CELSIUS)));
    assert_eq!(
        res[2],
        Ok(Value::BitString(BitString::from_bits(&[false; 4])))
    );
    assert_eq!(res[3], Ok(Value::Enumerated(1)));
    assert_eq!(res[4], Ok(Value::CharacterString("setpoint".into())));
    assert_eq!(
        res[5].as_ref().unwrap_err().class,
        BacnetError::CLASS_OBJECT
    );
    let Ok(Value::List(list)) = &res[6] else {
        panic!("object-list: {:?}", res[6])
    };
    assert!(list.contains(&Value::ObjectId(ai1)));
    assert!(list.contains(&Value::ObjectId(ObjectId::device(599))));

    for confirmed in [false, true] {
        let mut sub = client
            .subscribe_cov(
                599,
                ai1,
                CovOptions {
                    lifetime_s: 60,
                    confirmed,
                },
            )
            .await
            .unwrap();
        let first = sub.next_notification(Duration::from_secs(5)).await.unwrap();
        assert_eq!(first.device, ObjectId::device(599));
        assert_eq!(first.object, ai1);
        assert!(first.value_of(PropertyId::PRESENT_VALUE).is_some());
        let target = if confirmed { 50.0f32 } else { 42.5 };
        let stdin = child.stdin.as_mut().unwrap();
        stdin
            .write_all(format!("set analog-input,1 {target}\n").as_bytes())
            .await
            .unwrap();
        assert_eq!(next_line(&mut lines, "OK").await, "OK");
        let n = sub.next_notification(Duration::from_secs(5)).await.unwrap();
        assert_eq!(
            n.value_of(PropertyId::PRESENT_VALUE),
            Some(&Value::Real(target))
        );
        assert!(n.time_remaining > 0 && n.time_remaining <= 60);
        sub.cancel().await.unwrap();
    }
    let _ = child.stdin.as_mut().unwrap().write_all(b"quit\n").await;
    let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
}

#[tokio::test]
async fn bacpypes3_client_against_our_device_server() {
    if !peer_available() {
        return;
    }
    let mut plant = ChillerPlant::new(2);
    let server = DeviceServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        plant.device(2001, "chiller-plant"),
    )
    .await
    .unwrap();
    let client_script = script("bacpypes3_client.py");
    let (_child, mut lines) = spawn(&[
        client_script.to_str().unwrap(),
        "--port",
        &free_udp_port().to_string(),
        "--device-port",
        &server.local_addr().port().to_string(),
        "--instance",
        "2001",
    ]);
    let mut steps: Vec<serde_json::Value> = Vec::new();
    loop {
        let line = next_line(&mut lines, "client step").await;
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
        let step = v["step"].as_str().unwrap().to_string();
        eprintln!("peer: {line}");
        steps.push(v.clone());
        if step == "subscribed" {
            assert_eq!(v["property"], "present-value");
            assert!((v["value"].as_f64().unwrap() - 7.0).abs() < 1e-6, "{v}");
            plant.tank_temp_c = 9.5;
            server
                .update(|dev, now| ((), plant.write_to(dev, now)))
                .await;
        }
        if step == "done" {
            break;
        }
    }
    let find = |step: &str, prop: &str| -> serde_json::Value {
        steps
            .iter()
            .find(|s| s["step"] == step && (prop.is_empty() || s["property"] == prop))
            .unwrap_or_else(|| panic!("no step {step} {prop}: {steps:#?}"))
            .clone()
    };
    let who = find("who_is", "");
    let i_ams = who["i_ams"].as_array().unwrap();
    assert_eq!(i_ams.len(), 1, "{who}");
    assert_eq!(i_ams[0]["device"], "device,2001");
    assert_eq!(i_ams[0]["vendor"], 999);
    assert_eq!(i_ams[0]["max_apdu"], 1476);
    assert_eq!(i_ams[0]["segmentation"], "no-segmentation");
    assert_eq!(
        find("read_property", "object-name")["value"],
        "chiller-plant"
    );
    assert_eq!(find("read_property", "vendor-identifier")["value"], 999);
    assert_eq!(find("read_property", "protocol-version")["value"], 1);
    let objects = server.with_device(|d| d.objects().count()) as u64 + 1;
    assert_eq!(find("read_property", "object-list[0]")["value"], objects);
    let list = find("read_property", "object-list");
    assert_eq!(
        list["value"].as_array().unwrap().len() as u64,
        objects,
        "{list}"
    );
    let pv = steps
        .iter()
        .find(|s| s["object"] == "analog-input,11" && s["property"] == "present-value")
        .unwrap();
    assert_eq!(pv["value"].as_f64().unwrap(), 7.0);
    let missing = steps
        .iter()
        .find(|s| s["object"] == "analog-input,4000")
        .unwrap();
    assert!(
        missing["value"].as_str().unwrap().starts_with("error:"),
        "{missing}"
    );

    let rpm = find("rpm", "");
    let results = rpm["results"].as_array().unwrap();
    let get = |obj: &str, prop: &str| {
        results
            .iter()
            .find(|r| r["object"] == obj && r["property"] == prop)
            .unwrap_or_else(|| panic!("{obj} {prop} missing in {rpm}"))["value"]
            .clone()
    };
    let supply = chiller_plant::chiller_supply_temp(1);
    assert_eq!(supply.instance, 101);
    assert_eq!(
        get("analog-input,101", "present-value").as_f64().unwrap(),
        7.0
    );
    // Enumerations come through as their numbers: 62 = degrees-celsius, 1 = active.
    assert_eq!(get("analog-input,101", "units"), 62);
    assert_eq!(get("analog-input,101", "object-name"), "CH-1 CHWS temp");
    assert_eq!(
        get("analog-input,101", "status-flags"),
        serde_json::json!([0, 0, 0, 0])
    );
    assert_eq!(get("binary-input,101", "present-value"), 1);
    assert!(
        get("analog-input,4000", "present-value")
            .as_str()
            .unwrap()
            .contains("unknown-object"),
        "{rpm}"
    );
    let cov = find("cov", "present-value");
    assert_eq!(cov["value"].as_f64().unwrap(), 9.5);
}
