//! Load generator: points per second one core polls from simulated Modbus TCP devices, and the
//! memory the pollers take for a given number of points.
//!
//! ```sh
//! cargo bench -p dcim-modbus --bench poll_throughput                      # 80 devices x 125 points
//! cargo bench -p dcim-modbus --bench poll_throughput -- --devices 667 --points 15 --seconds 5
//! cargo bench -p dcim-modbus --bench poll_throughput -- --devices 20 --points 125 --period-ms 0
//! ```
//!
//! The simulated devices (facility-sim's Modbus TCP servers) run on their own thread and
//! runtime; every poller runs on ONE current-thread runtime, i.e. one core. Each device polls
//! one class continuously (`--period-ms`, default 1; 0 polls back to back, the next read as soon
//! as the answer is in, as the other pollers of `tests/bench/run.sh` do); the figure counts
//! points decoded and passed through the deadband/quality tracker. Memory is the growth of the
//! process's resident set from before the pollers start to the end of the run (the simulated
//! devices were allocated before the baseline).

use dcim_modbus::{Connection, ModbusDevice};
use dcim_profiles::{Profile, load_str};
use facility_sim::{ModbusShared, SimValue, serve_tcp};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU seconds (user + system) used so far by the calling thread.
fn thread_cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn profile(points: usize, period_ms: u64) -> Profile {
    let mut t = String::from(
        "[profile]\nname = \"bench\"\nprotocol = \"modbus\"\n[modbus]\naddress_base = 0\nmax_gap = 0\n",
    );
    for i in 0..points {
        t.push_str(&format!(
            "[[point]]\nid = \"t{i}\"\nrole = \"rack.temp\"\nlabels = {{ sensor = \"{i}\" }}\ntable = \"input\"\nregister = {i}\ntype = \"i16\"\nscale = 0.1\npoll = \"fast\"\ndeadband = 0.5\n"
        ));
    }
    let mut p = load_str("bench.toml", &t).unwrap();
    p.poll.fast_ms = period_ms;
    p
}

/// Writes point `t{i}` of a simulated device as 20 + ((`phase` + i) mod 10) °C.
fn write_temps(shared: &ModbusShared, profile: &Profile, points: usize, phase: usize) {
    let values: Vec<(String, SimValue)> = (0..points)
        .map(|i| {
            (
                format!("t{i}"),
                SimValue::Number(20.0 + ((phase + i) % 10) as f64),
            )
        })
        .collect();
    let refs: Vec<_> = values
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    shared.write_values(profile, &refs);
}

fn main() {
    let mut devices = 80usize;
    let mut points = 125usize;
    let mut seconds = 5u64;
    let mut period_ms = 1u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = || {
            args.next()
                .and_then(|v| v.parse::<u64>().ok())
                .expect("a number")
        };
        match a.as_str() {
            "--devices" => devices = num() as usize,
            "--points" => points = num() as usize,
            "--seconds" => seconds = num(),
            "--period-ms" => period_ms = num(),
            _ => {} // cargo bench passes --bench
        }
    }
    let profile = Arc::new(profile(points, period_ms));

    // The simulated devices, on their own thread.
    let (addr_tx, addr_rx) = std::sync::mpsc::channel::<(SocketAddr, Arc<ModbusShared>)>();
    let p2 = profile.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut servers = Vec::new();
            let mut all = Vec::new();
            for d in 0..devices {
                let shared = Arc::new(ModbusShared::default());
                write_temps(&shared, &p2, points, d);
                let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx
                    .send((l.local_addr().unwrap(), shared.clone()))
                    .unwrap();
                servers.push(serve_tcp(l, shared.clone()));
                all.push(shared);
            }
            // Every value moves by 1.0 (over the 0.5 deadband) five times a second.
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            for k in 0usize.. {
                tick.tick().await;
                for (d, shared) in all.iter().enumerate() {
                    write_temps(shared, &p2, points, d + k);
                }
            }
        });
    });
    let sims: Vec<_> = (0..devices).map(|_| addr_rx.recv().unwrap()).collect();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let rss_before = rss_kib();
    let (samples, requests, elapsed, rss_after, cpu) = rt.block_on(async {
        let (tx, mut rx) = mpsc::channel::<Vec<dcim_points::Sample>>(1024);
        let mut tasks = Vec::new();
        for (i, (addr, _)) in sims.iter().enumerate() {
            let dev = ModbusDevice {
                id: format!("dev-{i}"),
                unit_id: 1,
                profile: profile.clone(),
            };
            tasks.push(
                dev.spawn(Connection::Tcp { addr: *addr }, tx.clone())
                    .unwrap(),
            );
        }
        drop(tx);
        let count = |sims: &[(SocketAddr, Arc<ModbusShared>)]| -> u64 {
            sims.iter()
                .map(|(_, s)| s.requests.load(Ordering::Relaxed))
                .sum()
        };
        // Warm up (connections, first full reports), then measure.
        let warm = Instant::now() + Duration::from_secs(1);
        while Instant::now() < warm {
            let _ = tokio::time::timeout(Duration::from_millis(50), rx.recv()).await;
        }
        let r0 = count(&sims);
        let cpu0 = thread_cpu_s();
        let t0 = Instant::now();
        let mut samples = 0usize;
        let end = t0 + Duration::from_secs(seconds);
        while Instant::now() < end {
            if let Ok(Some(b)) = tokio::time::timeout(Duration::from_millis(50), rx.recv()).await {
                samples += b.len();
            }
        }
        let elapsed = t0.elapsed();
        let cpu = thread_cpu_s() - cpu0;
        let requests = count(&sims) - r0;
        let rss_after = rss_kib();
        tasks.iter().for_each(|t| t.abort());
        (samples, requests, elapsed, rss_after, cpu)
    });
    let total_points = devices * points;
    let pps = requests as f64 * points as f64 / elapsed.as_secs_f64();
    println!(
        "devices={devices} points_per_device={points} total_points={total_points} seconds={:.1}",
        elapsed.as_secs_f64()
    );
    println!(
        "reads={requests} reads_per_s={:.0}",
        requests as f64 / elapsed.as_secs_f64()
    );
    println!("points_polled_per_s_one_core={pps:.0}");
    println!(
        "poller_thread_cpu_s={cpu:.2} points_per_cpu_second={:.0}",
        requests as f64 * points as f64 / cpu.max(0.01)
    );
    println!(
        "samples_reported_per_s={:.0} (every value moves past its deadband 5 times a second)",
        samples as f64 / elapsed.as_secs_f64()
    );
    println!(
        "rss_growth_kib={} (~{:.0} bytes/point, pollers + their connections)",
        rss_after.saturating_sub(rss_before),
        rss_after.saturating_sub(rss_before) as f64 * 1024.0 / total_points as f64
    );
}
