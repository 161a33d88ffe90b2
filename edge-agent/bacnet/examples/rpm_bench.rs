//! Load generator: ReadPropertyMultiple round trips per second against the device server on
//! loopback (chiller plant model, 10 properties per request).
//!
//! ```sh
//! cargo run --release -p dcim-bacnet --example rpm_bench -- [seconds] [concurrency]
//! ```
//! Concurrency is the number of client tasks, each with one request outstanding at a time,
//! sharing one client socket (so invoke ids are shared too).

use dcim_bacnet::chiller_plant::{self, ChillerPlant};
use dcim_bacnet::client::{BacnetClient, ClientConfig, PropertyRef};
use dcim_bacnet::codec::types::PropertyId;
use dcim_bacnet::server::DeviceServer;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(5);
    let concurrency: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1);

    let plant = ChillerPlant::new(4);
    let server = DeviceServer::bind("127.0.0.1:0".parse().unwrap(), plant.device(2001, "plant"))
        .await
        .expect("bind server");
    let client = Arc::new(
        BacnetClient::bind_with(
            "127.0.0.1:0".parse().unwrap(),
            ClientConfig {
                broadcast: server.local_addr(),
                timeout: Duration::from_secs(1),
                retries: 0,
                ..ClientConfig::default()
            },
        )
        .await
        .expect("bind client"),
    );
    client
        .find_device(2001, server.local_addr(), Duration::from_secs(2))
        .await
        .expect("who-is")
        .expect("device answers");

    let mut refs = Vec::new();
    for n in 1..=2 {
        refs.push(PropertyRef::present_value(chiller_plant::chiller_running(
            n,
        )));
        refs.push(PropertyRef::present_value(
            chiller_plant::chiller_supply_temp(n),
        ));
        refs.push(PropertyRef::present_value(
            chiller_plant::chiller_return_temp(n),
        ));
        refs.push(PropertyRef::present_value(chiller_plant::chiller_load(n)));
    }
    refs.push(PropertyRef::present_value(chiller_plant::tank_temp()));
    refs.push(PropertyRef::new(
        chiller_plant::tank_level(),
        PropertyId::STATUS_FLAGS,
    ));
    let refs = Arc::new(refs);

    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, refs, ok, failed) = (client.clone(), refs.clone(), ok.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < end {
                match client.read_multiple(2001, &refs).await {
                    Ok(r) if r.iter().all(|v| v.is_ok()) => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for t in tasks {
        t.await.expect("bench task");
    }
    let secs = start.elapsed().as_secs_f64();
    let n = ok.load(Ordering::Relaxed);
    println!(
        "ReadPropertyMultiple ({} properties) on loopback: {} round trips in {:.1} s = {:.0} req/s, {:.0} properties/s, concurrency {}, failures {}",
        refs.len(),
        n,
        secs,
        n as f64 / secs,
        n as f64 * refs.len() as f64 / secs,
        concurrency,
        failed.load(Ordering::Relaxed)
    );
}
