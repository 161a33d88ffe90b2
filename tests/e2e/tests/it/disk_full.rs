//! The demo's data directory (database and agent spool) fills up while utility line A is lost.
//! Hazard: with the disk full the center showed no alarm and `/health` ok while the scenario lost
//! a feed, logins answered 503, and after space was freed the store said "database is locked"
//! for minutes until a restart.
//!
//! Checked through the API only: `/health` says "disk full" for the whole episode,
//! `dcim_store_disk_full` is 1 and the `store-disk-full` alarm is raised; the feed loss raises
//! its redundancy alarm, journalled from the free-space reserve; an operator can log in; and once
//! space is freed the server recovers by itself within seconds, without a restart.
//!
//! Mounting a tmpfs needs root; without it the test prints "skipped" and passes, unless
//! `DCIM_REQUIRE_PEERS=1`.

use dcim_test_support::tmpfs::{Tmpfs, fill};
use serde_json::Value;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_loud_keeps_alarms_and_logins_and_recovers_by_itself() -> anyhow::Result<()>
{
    if !dcim_test_support::slow::run("the demo's full-disk test") {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let Some(_tmpfs) = Tmpfs::mount_or_skip(&data, "64m", "the data directory") else {
        return Ok(());
    };
    let h = dcim_e2e::Harness::start_in(dir, |_| {}).await?;
    h.wait_steady(Duration::from_secs(60)).await?;
    let health = || async {
        let (_, t) = h.get_anonymous("/health").await?;
        anyhow::Ok(serde_json::from_str::<Value>(&t)?)
    };
    assert_eq!(health().await?["status"], "ok");

    fill(&data);
    let filled = Instant::now();
    let h1 = dcim_e2e::wait_for(
        "/health saying disk full",
        Duration::from_secs(10),
        || async {
            let v = health().await?;
            Ok((v["store"] == "disk full").then_some(v))
        },
    )
    .await?;
    let t_loud = filled.elapsed();
    assert_eq!(h1["status"], "degraded", "{h1}");
    assert_eq!(h.metric("dcim_store_disk_full").await?, 1.0);
    let disk = dcim_e2e::wait_for(
        "the store-disk-full alarm",
        Duration::from_secs(10),
        || async {
            Ok(h.alarm("store-disk-full:database")
                .await?
                .filter(|a| a["active"] == true))
        },
    )
    .await?;
    assert_eq!(disk["grade"], 2, "{disk}");

    // The center is not blind: the feed loss raises its alarm, journalled from the reserve.
    h.sim("feed-loss A")?;
    dcim_e2e::wait_for(
        "the power redundancy alarm",
        Duration::from_secs(30),
        || async {
            Ok(h.alarm("redundancy:power")
                .await?
                .filter(|a| a["active"] == true))
        },
    )
    .await?;
    let journal = dcim_e2e::wait_for(
        "the power alarm journalled while the disk is full",
        Duration::from_secs(10),
        || async {
            let j = h.get("/api/alarms/redundancy:power/journal").await?;
            Ok(j["journal"].as_array().filter(|a| !a.is_empty()).cloned())
        },
    )
    .await?;
    assert!(!journal.is_empty());
    // An operator can still log in.
    let login = reqwest::Client::new()
        .post(h.url("/api/login"))
        .header("content-type", "application/json")
        .body(
            serde_json::json!({"username": "admin", "password": dcim_e2e::demo::DEFAULT_PASSWORD})
                .to_string(),
        )
        .send()
        .await?;
    assert_eq!(login.status().as_u16(), 200, "{}", login.text().await?);
    // Loud for the whole episode: never back to ok while the disk is full.
    for _ in 0..10 {
        assert_eq!(health().await?["store"], "disk full");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    std::fs::remove_file(data.join("filler"))?;
    let freed = Instant::now();
    dcim_e2e::wait_for("healthy again", Duration::from_secs(15), || async {
        Ok((health().await?["status"] == "ok").then_some(()))
    })
    .await?;
    let t_recovered = freed.elapsed();
    assert_eq!(h.metric("dcim_store_disk_full").await?, 0.0);
    dcim_e2e::wait_for(
        "the disk alarm cleared",
        Duration::from_secs(10),
        || async {
            Ok(h.alarm("store-disk-full:database")
                .await?
                .filter(|a| a["active"] == false))
        },
    )
    .await?;
    // And it keeps committing: the feed comes back, its alarm clears and is journalled.
    h.sim("feed-restore A")?;
    dcim_e2e::wait_for(
        "the power alarm cleared",
        Duration::from_secs(30),
        || async {
            Ok(h.alarm("redundancy:power")
                .await?
                .filter(|a| a["active"] == false))
        },
    )
    .await?;
    println!(
        "disk full reported {t_loud:?} after the disk filled; recovered {t_recovered:?} after \
         space was freed"
    );
    assert!(t_recovered < Duration::from_secs(10));
    h.shutdown().await;
    Ok(())
}
