//! A battery string in battery room 2 (`bms-z2`, Modbus behind the edge agent) heats through the
//! fire stages to stage 3: the fire stage reaches the server as a point, a grade-1 alarm is raised
//! and a grade-1 incident is opened.

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

    let alarm = dcim_e2e::wait_for(
        "a grade-1 alarm for bms-z2",
        Duration::from_secs(15),
        || async {
            Ok(h.active_alarms().await?.into_iter().find(|a| {
                a["grade"] == 1 && a["id"].as_str().is_some_and(|id| id.contains("bms-z2"))
            }))
        },
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
    println!(
        "heat command -> first fire alarm on SSE: {to_sse:?}; -> fire.stage 4 at the server: \
         {to_stage3:?}; alarm {} ({}), incident {}; SSE record {record}",
        alarm["id"], alarm["message"], inc["id"]
    );
    h.shutdown().await;
    Ok(())
}
