//! Every device of the power plant stops answering (the simulator's `silent`, Modbus requests
//! swallowed): the edge agent marks them comm-lost after their profiles' `comm_lost_after_ms`
//! (10-20 s), and the server must never read the silence as good news. Its redundancy API says
//! the power level is unverified (proven below what the silent components would give) within
//! `comm_lost_after`; once the components have been Unknown for `down_after` (20 s here) they
//! are Down, the known level is below N, and the grade-1 power redundancy alarm is raised.
//! Hazard: the Korean incident's "the detector of failures failed and nobody saw".

use super::common::wait_active_alarm;
use serde_json::Value;
use std::time::{Duration, Instant};

/// Every Modbus device the power components of the demo site bind.
fn power_devices() -> Vec<String> {
    let mut v: Vec<String> = ["meter-a", "meter-b", "ats-1", "ats-2"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for i in 1..=4 {
        v.extend([format!("tx-{i}"), format!("ups-z{i}"), format!("bms-z{i}")]);
    }
    for h in 1..=3 {
        for r in 1..=10 {
            for side in ["a", "b"] {
                v.push(format!("pdu-h{h}-{r:02}{side}"));
            }
        }
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_power_plant_is_unverified_then_down_with_an_alarm() -> anyhow::Result<()> {
    let down_after = Duration::from_secs(20);
    let h = dcim_e2e::Harness::start_with(|o| o.down_after = Some(down_after)).await?;
    h.wait_steady(Duration::from_secs(60)).await?;
    let before = h.redundancy("power").await?;
    assert_eq!(
        (
            &before["current"],
            &before["if_unknown_up"],
            &before["verified"]
        ),
        (&Value::from("2N"), &Value::from("2N"), &Value::from(true)),
        "{before}"
    );

    let silenced = Instant::now();
    for d in power_devices() {
        h.sim(&format!("silent {d}"))?;
    }

    // Within comm_lost_after (the profiles say 10-20 s; plus a poll and a tick): unverified.
    let p = dcim_e2e::wait_for("power unverified", Duration::from_secs(30), || async {
        let p = h.redundancy("power").await?;
        Ok((p["verified"] == false).then_some(p))
    })
    .await?;
    let t_unverified = silenced.elapsed();
    assert!(
        p["summary"]
            .as_str()
            .is_some_and(|s| s.starts_with("unverified: ")),
        "{p}"
    );
    assert_ne!(p["current"], "2N", "a level no measurement supports: {p}");
    assert!(
        p["unverified"].as_array().is_some_and(|a| !a.is_empty()),
        "{p}"
    );
    assert_eq!(
        p["lost"],
        Value::Array(vec![]),
        "unknown is not lost yet: {p}"
    );

    // After down_after: Down, below N, and the alarm.
    let p = dcim_e2e::wait_for(
        "power below N once Unknown lasted down_after",
        Duration::from_secs(60),
        || async {
            let p = h.redundancy("power").await?;
            let down = |id: &str| {
                p["down"]
                    .as_array()
                    .is_some_and(|d| d.iter().any(|x| x == id))
            };
            Ok((p["if_unknown_up"] == "below_n" && down("feed-a") && down("ups-z1")).then_some(p))
        },
    )
    .await?;
    let t_down = silenced.elapsed();
    assert_eq!(p["current"], "below_n", "{p}");
    let alarm = wait_active_alarm(
        &h,
        "the power redundancy alarm",
        Duration::from_secs(15),
        |a| a["id"] == "redundancy:power",
    )
    .await?;
    assert_eq!(alarm["grade"], 1, "{alarm}");
    // The components say why.
    let all = h.get("/api/site/redundancy?components=true").await?;
    let feed = all["components"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["id"] == "feed-a"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(feed["state"], "down", "{feed}");
    assert!(
        feed["reason"]
            .as_str()
            .is_some_and(|r| r.contains("no usable data")),
        "{feed}"
    );
    println!(
        "power unverified {t_unverified:?} after the plant went silent, below N (Down) after \
         {t_down:?}; alarm {} grade {}: {}",
        alarm["id"], alarm["grade"], alarm["message"]
    );
    h.shutdown().await;
    Ok(())
}
