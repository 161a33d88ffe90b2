//! A battery string in battery room 2 (`bms-z2`, Modbus behind the edge agent) heats through the
//! fire stages to stage3 "Extinguishing agent": the fire stage reaches the server as a point, a
//! grade-1 alarm is raised and a grade-1 incident is opened. The alarm's text names the stage by
//! the fire logic's stage table, its threshold, the present temperature, the actions taken and
//! the battery room, and follows the present values. It cannot be shelved (refused, audited);
//! another alarm can, with a reason.

use super::common::wait_active_alarm;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn battery_heating_to_stage_3_raises_grade_1_alarm_and_incident() -> anyhow::Result<()> {
    let h = dcim_e2e::Harness::start().await?;
    h.wait_steady(Duration::from_secs(40)).await?;
    let stage = h
        .point("bms-z2", "fire.stage")
        .await?
        .expect("bms-z2 fire.stage");
    assert_eq!(stage["value"], 0.0, "{stage}");

    let mut stream = h.events().await?;
    // 1200 degC/min: from ~29 degC to stage 3 (80 degC) in about 3 s.
    let t0 = Instant::now();
    h.sim("heat bms-z2 1200")?;

    // The alarm's activation is pushed on the live stream once it is committed.
    let record = stream
        .wait("alarm", Duration::from_secs(30), |r| {
            r.to_string().contains("fire-stage:bms-z2")
        })
        .await?;
    let to_sse = t0.elapsed();

    // fire.stage 4 is stage 3 (0 normal, 1 pre-alarm, 2..4 stages 1..3).
    let p = dcim_e2e::wait_for(
        "bms-z2 fire.stage 4 at the server",
        Duration::from_secs(30),
        || async {
            Ok(h.point("bms-z2", "fire.stage")
                .await?
                .filter(|p| p["value"].as_f64() == Some(4.0)))
        },
    )
    .await?;
    let to_stage3 = t0.elapsed();
    assert_eq!(p["agent"], dcim_e2e::demo::AGENT);
    let temp = h
        .point("bms-z2", "battery.cell_temp.max")
        .await?
        .expect("cell temperature");
    assert!(temp["value"].as_f64().unwrap_or(0.0) >= 80.0, "{temp}");

    let alarm = wait_active_alarm(
        &h,
        "a grade-1 alarm for bms-z2",
        Duration::from_secs(15),
        |a| a["grade"] == 1 && a["id"].as_str().is_some_and(|id| id.contains("bms-z2")),
    )
    .await?;
    let inc = dcim_e2e::wait_for(
        "a grade-1 incident with the fire alarm",
        Duration::from_secs(15),
        || async {
            Ok(h.incidents().await?.into_iter().find(|i| {
                i["grade"] == 1
                    && i["alarms"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|x| x == &alarm["id"]))
            }))
        },
    )
    .await?;
    // The text: the present stage by name, its threshold, the present temperature, the actions
    // and the place (hazard: "Battery fire stage: bms-z2 = 2" while the room was at stage3).
    let fire = dcim_e2e::wait_for(
        "the fire-stage alarm's text at stage3",
        Duration::from_secs(15),
        || async {
            Ok(h.alarm("fire-stage:bms-z2").await?.filter(|a| {
                a["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("Extinguishing agent (stage3)"))
            }))
        },
    )
    .await?;
    let m = fire["message"].as_str().unwrap_or_default();
    for want in [
        "Entered at 80 °C or above",
        "°C (battery.cell_temp.max)",
        "extinguishing agent released",
        "battery room batt-z2",
        "zone z2",
    ] {
        assert!(m.contains(want), "`{want}` missing from: {m}");
    }
    assert!(!m.contains("= 4"), "a bare code: {m}");

    // Not shelvable: refused with a reason, and audited.
    let (status, body) = h
        .post(
            "/api/alarms/fire-stage:bms-z2/shelve",
            serde_json::json!({"minutes": 60, "reason": "test"}),
        )
        .await?;
    assert_eq!(status, 403, "{body}");
    assert!(body.to_string().contains("never shelved"), "{body}");
    let audit = h.get("/api/audit?limit=1000").await?;
    assert!(
        audit["audit"]
            .as_array()
            .is_some_and(|a| a.iter().any(|r| r["action"] == "alarm.shelve.refused"
                && r["target"] == "alarm/fire-stage:bms-z2")),
        "the refusal is audited: {audit}"
    );
    let still = h.alarm("fire-stage:bms-z2").await?.unwrap_or_default();
    assert_eq!(
        (&still["base"], &still["overlays"]["shelved_until"]),
        (
            &serde_json::Value::from("unacknowledged"),
            &serde_json::Value::Null
        ),
        "{still}"
    );
    // Any other alarm needs a reason.
    let other = h.active_alarms().await?.into_iter().find(|a| {
        a["rule"]
            .as_str()
            .is_some_and(|r| !r.starts_with("fire") && r != "battery-hot")
    });
    if let Some(o) = other {
        let path = format!(
            "/api/alarms/{}/shelve",
            o["id"].as_str().unwrap_or_default()
        );
        let (status, body) = h.post(&path, serde_json::json!({"minutes": 5})).await?;
        assert_eq!(status, 400, "{body}");
        let (status, body) = h
            .post(
                &path,
                serde_json::json!({"minutes": 5, "reason": "e2e: known, handled"}),
            )
            .await?;
        assert_eq!(status, 200, "{body}");
    }
    println!(
        "heat command -> first fire alarm on SSE: {to_sse:?}; -> fire.stage 4 at the server: \
         {to_stage3:?}; alarm {} ({}), incident {}; SSE record {record}",
        alarm["id"], m, inc["id"]
    );
    h.shutdown().await;
    Ok(())
}
