//! Site-size benchmark: start-up, the once-a-second tick, `/api/status` and
//! `/api/site/redundancy` for sites of growing size, to check that every per-tick and
//! per-request cost grows linearly with the site.
//!
//! ```sh
//! cargo run --release -p dcim-demo --bin dcim-scale-bench -- [--racks 300,1000,4000,10000] [--repeat 5]
//! cargo run --release -p dcim-demo --bin dcim-scale-bench -- --racks 4000 --write-site site.toml
//! ```
//!
//! `--write-site PATH` only writes the site file of the first size (`tests/bench/run.sh` runs
//! its server on it).
//!
//! Each site is the demo site's plant (two utility lines, two ATS line-ups, four UPS zones,
//! chillers, loops, buffer tank, carriers, Meet-Me-Rooms, core) with as many halls of 100 racks
//! as needed (per hall: 10 rows with an A and a B PDU each, 4 CRAH, a row switch per row).
//! For each size it writes the site file, starts a server on it (embedded broker, temp data
//! directory) and reports: the start-up time (`dcim_server::start`, site load included), the
//! site load alone, the tick before any sample (every component Unknown: the evaluation's
//! costliest case, as when every agent of a site falls silent), taking in one healthy sample of every bound point (`Facility::on_samples`),
//! the tick (as the ticker runs it: `Facility::tick_inputs` under the facility lock,
//! `dcim_site::evaluate` without it, `Facility::tick_with` under it again; the median total and
//! the median time the lock was held; each measured between two ticks of the server's own
//! ticker, which runs alongside), and the
//! median of `--repeat` HTTP requests of `/api/status` and `/api/site/redundancy` (token auth,
//! JSON included).

use dcim_server::config::Config;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

fn opts() -> (Vec<usize>, usize, Option<std::path::PathBuf>) {
    let mut racks = vec![300, 1000, 4000, 10_000];
    let mut repeat = 5;
    let mut write = None;
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        match (pair[0].as_str(), pair.get(1)) {
            ("--racks", Some(v)) => {
                racks = v
                    .split(',')
                    .map(|x| x.trim().parse().expect("--racks: numbers"))
                    .collect()
            }
            ("--repeat", Some(v)) => repeat = v.parse().expect("--repeat: a number"),
            ("--write-site", Some(v)) => write = Some(v.into()),
            _ => {
                eprintln!(
                    "usage: dcim-scale-bench [--racks 300,1000,4000,10000] [--repeat 5] [--write-site PATH]"
                );
                std::process::exit(2);
            }
        }
    }
    (racks, repeat.max(1), write)
}

const DEMO: &str = include_str!("../../../site/sites/demo.toml");

/// The demo file's lines `from..to` (1-based, `to` excluded).
fn demo_section(starts: impl Fn(&str) -> bool, ends: impl Fn(&str) -> bool) -> String {
    // By the demo's own section markers, not line numbers: the demo file grows (floor plans
    // were added) and a fixed range would cut a table in two.
    let mut lines = DEMO.lines().skip_while(|l| !starts(l));
    let first = lines.next().unwrap_or_default();
    std::iter::once(first)
        .chain(lines.take_while(|l| !ends(l)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A site of `racks` racks (see the module documentation).
fn site_toml(racks: usize) -> String {
    // The plant above the halls, as in the demo: power (to the UPS zones and battery rooms),
    // cooling (chillers, loops, tank) and network (carriers, MMRs, core).
    let mut s = demo_section(|_| true, |l| l.starts_with("# Row PDUs"));
    s.push('\n');
    s.push_str(&demo_section(
        |l| l.starts_with("# ---") && l.ends_with(" cooling"),
        |l| l.starts_with("[[generate]]"),
    ));
    s.push('\n');
    s.push_str(&demo_section(
        |l| l.starts_with("# ---") && l.ends_with(" network"),
        |l| l.starts_with("[[generate]]"),
    ));
    s.push('\n');
    let halls = racks.div_ceil(100);
    for h in 1..=halls {
        let (za, zb) = if h % 2 == 1 { (1, 3) } else { (2, 4) };
        let n = (racks - (h - 1) * 100).min(100);
        let rows = n.div_ceil(10);
        let _ = write!(
            s,
            r#"
[[generate]]
count = {rows}
start = 1
digits = 2
[generate.template]
id = "pdu-h{h}-{{n}}a"
kind = "pdu"
room = "hall-{h}"
rating_kw = 150
upstream = ["ups-z{za}"]
device = "pdu-h{h}-{{n}}a"
points = ["pdu.breaker_closed", "pdu.power_kw"]

[[generate]]
count = {rows}
start = 1
digits = 2
[generate.template]
id = "pdu-h{h}-{{n}}b"
kind = "pdu"
room = "hall-{h}"
rating_kw = 150
upstream = ["ups-z{zb}"]
device = "pdu-h{h}-{{n}}b"
points = ["pdu.breaker_closed", "pdu.power_kw"]

[[generate]]
count = 4
digits = 1
[generate.template]
id = "crah-h{h}-{{n}}"
kind = "crah"
room = "hall-{h}"
rating_kw = 200
upstream = ["loop-a", "loop-b"]
need = 1
device = "crah-h{h}-{{n}}"
points = ["crah.running", "crah.fault", "crah.cooling_kw", "crah.supply_air_temp"]

[[component]]
id = "hall-{h}"
kind = "room"
upstream = ["crah-h{h}-1", "crah-h{h}-2", "crah-h{h}-3", "crah-h{h}-4"]
need = 3
device = "env-h{h}"
points = ["room.temp", "room.humidity"]

[[generate]]
count = {rows}
digits = 2
[generate.template]
id = "row-h{h}-{{n}}"
kind = "row"
room = "hall-{h}"
rating_gbps = 100
upstream = ["core-1", "core-2"]
need = 1
device = "sw-h{h}-{{n}}"
points = ["link.up", "link.throughput_gbps"]

[[generate]]
count = {n}
start = {start}
digits = 5
per_group = 10
[generate.template]
id = "r{{n}}"
kind = "rack"
room = "hall-{h}"
rating_kw = 8
device = "bms-r{{n}}"
points = ["it.power_kw", "fire.stage", "rack.temp"]
upstream = [
  {{ of = ["pdu-h{h}-{{g}}a", "pdu-h{h}-{{g}}b"], need = 1 }},
  {{ of = ["hall-{h}"] }},
  {{ of = ["row-h{h}-{{g}}"] }},
]
"#,
            start = (h - 1) * 100 + 1,
        );
    }
    s
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (sizes, repeat, write) = opts();
    if let Some(path) = write {
        std::fs::write(&path, site_toml(sizes[0]))?;
        return Ok(());
    }
    println!(
        "| racks | components | bound points | start-up ms | site load ms | tick ms, no data yet (every component Unknown) | samples in ms | tick ms | of which facility lock held ms | /api/status ms | /api/site/redundancy ms |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for racks in sizes {
        measure(racks, repeat).await?;
    }
    Ok(())
}

/// One row of the table: a site of `racks` racks loaded, a server started on it, one round of
/// healthy samples, `repeat` ticks and `repeat` requests of each timed route.
async fn measure(racks: usize, repeat: usize) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("dcim-scale-{}-{racks}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("site.toml");
    std::fs::write(&path, site_toml(racks))?;
    let t = Instant::now();
    let site = dcim_site::Site::load(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let load_ms = ms(t.elapsed());
    let config = bench_config(&dir, &path)?;
    let t = Instant::now();
    let server = dcim_server::start(config).await?;
    let start_ms = ms(t.elapsed());
    let token = dcim_server::state::auth::new_token("dcim_");
    server
        .app
        .store
        .create_token(
            &dcim_server::state::auth::token_hash(&token),
            "admin",
            "bench",
            0,
        )
        .await?;
    let now = dcim_clock::now_ms();
    // Before any sample (a site whose agents are all silent): the evaluation's costliest case.
    let (unknown_tick_ms, _) = time_ticks(&server, now, repeat).await;
    let now = now + repeat as i64;
    let samples = dcim_site::fixture::healthy_samples(&site, now);
    let samples_ms = {
        let mut f = server.app.plant.facility.lock().await;
        let t = Instant::now();
        f.on_samples(&samples, now);
        ms(t.elapsed())
    };
    let (tick_ms, locked_ms) = time_ticks(&server, now, repeat).await;
    // One client for both routes, its connection reused.
    let http = reqwest::Client::new();
    let status_ms = time_get(&http, &server, &token, "/api/status", repeat).await?;
    let redundancy_ms = time_get(&http, &server, &token, "/api/site/redundancy", repeat).await?;
    println!(
        "| {racks} | {} | {} | {start_ms:.0} | {load_ms:.0} | {unknown_tick_ms:.1} | {samples_ms:.1} | {tick_ms:.1} | {locked_ms:.1} | {status_ms:.1} | {redundancy_ms:.1} |",
        site.components.len(),
        samples.len(),
    );
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The server's configuration: data under `dir`, the site model at `path`, ephemeral
/// listeners, light hashing.
fn bench_config(dir: &std::path::Path, path: &std::path::Path) -> anyhow::Result<Config> {
    let mut config = Config {
        data_dir: dir.join("data"),
        site_model: Some(path.to_path_buf()),
        ..Default::default()
    };
    config.http.listen = "127.0.0.1:0".parse()?;
    config.broker.listen = "127.0.0.1:0".parse()?;
    config.auth.argon2_memory_kib = 64;
    config.auth.argon2_iterations = 1;
    Ok(config)
}

/// The tick as the server's ticker runs it: states under the lock, the evaluation without it,
/// then the alarm engine under the lock again. Medians over `repeat` ticks, in ms: the whole
/// tick, and the time the facility lock was held.
async fn time_ticks(server: &dcim_server::Server, now: i64, repeat: usize) -> (f64, f64) {
    let (mut ticks, mut locked) = (Vec::new(), Vec::new());
    for i in 0..repeat {
        between_server_ticks(server).await;
        let at = now + i as i64;
        let t = Instant::now();
        let (inputs, l1) = {
            let mut f = server.app.plant.facility.lock().await;
            let t = Instant::now();
            (f.tick_inputs(at), t.elapsed())
        };
        let evaluated = inputs.map(|(site, states)| {
            let ev = dcim_site::evaluate(&site, &states);
            (states, ev)
        });
        let l2 = {
            let mut f = server.app.plant.facility.lock().await;
            let t = Instant::now();
            f.tick_with(at, evaluated);
            // Freed off the tick, as the server's ticker does.
            if let Some(retired) = f.take_retired() {
                std::thread::spawn(move || drop(retired));
            }
            t.elapsed()
        };
        ticks.push(ms(t.elapsed()));
        locked.push(ms(l1 + l2));
    }
    (median(ticks), median(locked))
}

/// Waits until the server's own ticker has just run its tick, so that the measured tick does
/// not share the two cores (and the facility lock) with it: in a server only one tick runs at
/// a time. (Measured while the server's ticker ran alongside, the 10,000-rack tick varied from
/// 104 to 170 ms.)
async fn between_server_ticks(server: &dcim_server::Server) {
    let beat = &server.app.health.ticker_beat_ms;
    let last = beat.load(std::sync::atomic::Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(3);
    while beat.load(std::sync::atomic::Ordering::Relaxed) == last && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The server's tick (states, evaluation, alarm engine) takes well under this at 10,000
    // racks; the next one is a second after the beat.
    tokio::time::sleep(Duration::from_millis(400)).await;
}

/// The median time in ms of `repeat` authenticated GETs of `path`, body read.
async fn time_get(
    http: &reqwest::Client,
    server: &dcim_server::Server,
    token: &str,
    path: &str,
    repeat: usize,
) -> anyhow::Result<f64> {
    let mut v = Vec::new();
    for _ in 0..repeat {
        let t = Instant::now();
        let r = http
            .get(format!("http://{}{path}", server.http_addr))
            .bearer_auth(token)
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "{path}: {}", r.status());
        let _ = r.bytes().await?;
        v.push(ms(t.elapsed()));
    }
    Ok(median(v))
}
