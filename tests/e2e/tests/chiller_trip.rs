//! Chiller 1 trips in the simulator (BACnet/IP, polled by the edge agent): the server shows the
//! buffer tank's ride-through minutes (finite, plausible) and raises the chiller fault alarm and the
//! cooling redundancy alarm (N+1 -> N, grade 2).

use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chiller_trip_shows_ride_through_and_cooling_alarm() -> anyhow::Result<()> {
    let h = dcim_e2e::Harness::start().await?;
    h.wait_steady(Duration::from_secs(40)).await?;

    h.sim("chiller-trip chiller-1")?;

    let rt = dcim_e2e::wait_for("ride-through minutes", Duration::from_secs(30), || async {
        let r = h.get("/api/site/redundancy").await?;
        Ok(r["ride_through"]
            .as_array()
            .and_then(|a| a.first())
            .filter(|t| t["chillers_available"] == 1 && t["minutes"].as_f64().is_some())
            .cloned())
    })
    .await?;
    let minutes = rt["minutes"].as_f64().expect("minutes");
    assert!(
        minutes.is_finite() && minutes > 1.0 && minutes < 24.0 * 60.0,
        "{rt}"
    );

    let chiller = dcim_e2e::wait_for(
        "the chiller-1 fault alarm",
        Duration::from_secs(20),
        || async {
            Ok(h.active_alarms()
                .await?
                .into_iter()
                .find(|a| a["id"] == "chiller-fault:chiller-1"))
        },
    )
    .await?;
    println!("chiller alarm grade {}", chiller["grade"]);
    let cooling = h.redundancy("cooling").await?;
    println!(
        "cooling redundancy after the trip: designed {} current {} down {}",
        cooling["designed"], cooling["current"], cooling["down"]
    );
    let alarm = dcim_e2e::wait_for(
        "the cooling redundancy alarm",
        Duration::from_secs(20),
        || async {
            Ok(h.active_alarms()
                .await?
                .into_iter()
                .find(|a| a["id"] == "redundancy:cooling"))
        },
    )
    .await?;
    println!(
        "ride-through {rt}; alarm {} grade {} ({})",
        alarm["id"], alarm["grade"], alarm["message"]
    );
    h.shutdown().await;
    Ok(())
}
