//! Utility feed A is lost in the simulator: the meters (Modbus TCP) report it through the edge
//! agent and the embedded broker; the server's power redundancy drops from 2N to N, one grade-2
//! redundancy alarm is raised with an incident, and nothing else alarms (no rack loses power)
//! but the feed's own trouble: its breaker still reports closed while its meter measures 0 V,
//! so the feed is shown de-energised (never LIVE) and the disagreement is a grade-3
//! `breaker-mismatch` trouble. The chain ends at a webhook receiver: the grade-2 alarm's
//! notification arrives, and no other.

use super::common::wait_active_alarm;
use serde_json::Value;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_a_lost_drops_power_from_2n_to_n_with_one_grade_2_alarm() -> anyhow::Result<()> {
    let h = dcim_e2e::Harness::start().await?;
    h.wait_steady(Duration::from_secs(40)).await?;
    let before = h.redundancy("power").await?;
    assert_eq!(before["designed"], "2N");
    assert_eq!(before["current"], "2N");
    // On the healthy facility every component is at its designed redundancy (the console
    // colours components by this; a measured load above N-1 capacity would show here). The
    // level is the one proven by what reported, so a component whose device has not reported
    // yet (the tank's BACnet controller can come last) is waited for, not taken as healthy.
    let degraded_now = || async {
        let all = h.get("/api/site/redundancy?components=true").await?;
        let degraded: Vec<String> = all["components"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|c| {
                c["supply"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|s| s["current"] != s["designed"] || s["verified"] != true)
                    .map(move |s| {
                        format!(
                            "{} {}: {} of {} ({}; {})",
                            c["id"],
                            s["subsystem"],
                            s["current"],
                            s["designed"],
                            s["summary"],
                            c["reason"]
                        )
                    })
            })
            .collect();
        anyhow::Ok(degraded)
    };
    let at_design = dcim_e2e::wait_for(
        "every component at its designed redundancy",
        Duration::from_secs(30),
        || async { Ok(degraded_now().await?.is_empty().then_some(())) },
    )
    .await;
    if at_design.is_err() {
        panic!(
            "healthy facility below its design: {:?}",
            degraded_now().await?
        );
    }
    let mut notifications = h.webhook_notifications().await?;

    h.sim("feed-loss A")?;

    let power = dcim_e2e::wait_for("power redundancy N", Duration::from_secs(30), || async {
        let p = h.redundancy("power").await?;
        Ok((p["current"] == "N").then_some(p))
    })
    .await?;
    assert_eq!(
        power["lost"],
        Value::Array(vec![]),
        "racks lost power: {power}"
    );
    assert!(
        power["single_points_of_failure"]
            .as_array()
            .is_some_and(|a| a.iter().any(|c| c == "feed-b")),
        "feed B should be the single point of failure: {power}"
    );

    let alarm = wait_active_alarm(
        &h,
        "the power redundancy alarm",
        Duration::from_secs(15),
        |a| a["rule"] == "redundancy" && a["subject"] == "power",
    )
    .await?;
    assert_eq!(alarm["grade"], 2, "{alarm}");
    let note = tokio::time::timeout(Duration::from_secs(10), notifications.recv())
        .await
        .map_err(|_| anyhow::anyhow!("no webhook notification within 10 s"))?
        .ok_or_else(|| anyhow::anyhow!("the webhook receiver stopped"))?;
    assert_eq!(note["alarm"], alarm["id"], "{note}");
    assert_eq!(note["grade"], 2, "{note}");
    assert_eq!(note["channel"], "hook", "{note}");

    // The lost feed reads de-energised from its meter, whatever its breaker says.
    let all = h.get("/api/site/redundancy?components=true").await?;
    let feed = |id: &str| {
        all["components"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["id"] == id))
            .cloned()
            .unwrap_or_default()
    };
    let a = feed("feed-a");
    assert_eq!(
        (&a["state"], &a["energised"], &a["energised_by"]),
        (
            &Value::from("down"),
            &Value::from(false),
            &Value::from("feed.voltage")
        ),
        "{a}"
    );
    assert!(
        a["mismatch"]
            .as_str()
            .is_some_and(|m| m.contains("reports closed")),
        "{a}"
    );
    assert_eq!(feed("feed-b")["energised"], true);
    let mismatch = dcim_e2e::wait_for(
        "the breaker-mismatch trouble of feed A",
        Duration::from_secs(15),
        || async {
            Ok(h.alarm("breaker-mismatch:feed-a")
                .await?
                .filter(|a| a["active"] == true))
        },
    )
    .await?;
    assert_eq!(
        (&mismatch["grade"], &mismatch["active"]),
        (&Value::from(3), &Value::from(true)),
        "{mismatch}"
    );

    // Give every other rule time to fire if it would (the on-delays of the default rules are
    // shorter than this), then check that nothing else is active.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let active = h.active_alarms().await?;
    let mut ids: Vec<&str> = active.iter().filter_map(|a| a["id"].as_str()).collect();
    ids.sort();
    assert_eq!(
        ids,
        ["breaker-mismatch:feed-a", "redundancy:power"],
        "only the power redundancy alarm and the feed's trouble should be active"
    );
    if let Ok(other) = notifications.try_recv() {
        panic!("only the redundancy alarm is notified, also got {other}");
    }
    for s in ["cooling", "network"] {
        let r = h.redundancy(s).await?;
        assert_eq!(r["current"], r["designed"], "{s}: {r}");
    }

    let incidents = h.incidents().await?;
    let inc = incidents
        .iter()
        .find(|i| {
            i["alarms"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == &alarm["id"]))
        })
        .unwrap_or_else(|| panic!("no incident for {}: {incidents:?}", alarm["id"]));
    assert_eq!(inc["grade"], 2, "{inc}");
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    h.shutdown().await;
    Ok(())
}
