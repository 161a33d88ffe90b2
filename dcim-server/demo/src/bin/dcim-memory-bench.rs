//! Memory per point: loads distinct points through the server's ingest core and reports the
//! resident memory they take (VmRSS from `/proc/self/status`, before and after).
//!
//! ```sh
//! cargo run --release -p dcim-demo --bin dcim-memory-bench -- [--devices 10000] [--points 100] [--batch 500] [--facility 0] [--fill-history 1]
//! ```
//!
//! Every point is sent once as JSON telemetry batches of `--batch` samples and goes through
//! what a message from the broker goes through in the server: `ingest::decode`,
//! `Ingest::apply` (access control, de-duplication, the latest value of every point: the
//! server's one table of them) and `Facility::on_samples` (the alarm engine with the default
//! rules; roles cycle through the vocabulary, so some points create alarm instances; the site
//! engine's live table holds only the devices a site model binds, none here).
//! Then every point is sent a second time with a new value (steady state: the maps are full,
//! nothing new is allocated), and the memory is read again. `--facility 0` measures the
//! ingest alone. Each point also has a history ring (one-minute buckets for an hour by
//! default), holding one bucket after these passes; `--fill-history 1` then sends every point
//! once per bucket width until every ring is full and reads the memory again (use fewer points:
//! that is 60 more passes). Not included: the broker's own buffers (rumqttd keeps a bounded commit log),
//! SQLite and the SSE stream.

use dcim_points::{Quality, ROLES, Role, Sample, Value};
use dcim_server::engine::facility::Facility;
use dcim_server::engine::ingest::{self, Ingest, Outcome};
use std::time::Instant;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

struct Opts {
    devices: usize,
    points: usize,
    batch: usize,
    /// Feed the facility (site live table and alarm engine) too; 0 measures the ingest alone.
    facility: bool,
    fill_history: bool,
}

fn opts() -> Opts {
    let mut o = Opts {
        devices: 10_000,
        points: 100,
        batch: 500,
        facility: true,
        fill_history: false,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let v = pair.get(1).and_then(|v| v.parse().ok());
        match (pair[0].as_str(), v) {
            ("--devices", Some(v)) => o.devices = v,
            ("--points", Some(v)) => o.points = v,
            ("--batch", Some(v)) if v > 0 => o.batch = v,
            ("--facility", Some(v)) => o.facility = v != 0,
            ("--fill-history", Some(v)) => o.fill_history = v != 0,
            _ => {
                eprintln!(
                    "usage: dcim-memory-bench [--devices N] [--points N] [--batch N] [--facility 0|1] [--fill-history 0|1]"
                );
                std::process::exit(2);
            }
        }
    }
    o
}

/// Sends every point once with `value`; returns the samples the ingest accepted.
fn pass(
    o: &Opts,
    roles: &[(&'static str, &'static str)],
    ing: &mut Ingest,
    f: &mut Facility,
    seq: &mut u64,
    value: f64,
    ts: i64,
) -> u64 {
    let total = o.devices * o.points;
    let mut accepted = 0;
    let mut samples = Vec::with_capacity(o.batch);
    for k in 0..total {
        let (d, p) = (k / o.points, k % o.points);
        let (role, unit) = roles[p % roles.len()];
        samples.push(Sample {
            device: format!("dev-{d:06}"),
            point: format!("p{p:03}"),
            role: Role::new(role).expect("vocabulary role"),
            labels: Default::default(),
            value: Some(Value::Number(value)),
            unit: unit.to_owned(),
            quality: Quality::Good,
            ts_ms: ts,
        });
        if samples.len() == o.batch || k + 1 == total {
            *seq += 1;
            let payload = dcim_wire::encode(&dcim_wire::TelemetryBatch {
                v: dcim_wire::VERSION,
                agent: "mem".into(),
                epoch: String::new(),
                seq: *seq,
                samples: std::mem::take(&mut samples),
            });
            let msg = ingest::decode("dcim/v1/bench/mem/telemetry", &payload);
            match ing.apply(msg, None, ts) {
                Outcome::Telemetry { samples: s, .. } => {
                    accepted += s.len() as u64;
                    if o.facility {
                        f.on_samples(&s, ts);
                    }
                }
                other => panic!("ingest refused a batch: {other:?}"),
            }
        }
    }
    accepted
}

fn main() {
    let o = opts();
    // Numeric roles without qualifying labels (every point distinct by device and point).
    let roles: Vec<(&'static str, &'static str)> = ROLES
        .iter()
        .filter(|r| r.labels.is_empty() && !r.unit.is_empty())
        .map(|r| (r.name, r.unit))
        .collect();
    let total = o.devices * o.points;
    let ts = 1_800_000_000_000;
    let mut ing = Ingest::new(&[]);
    let mut f = Facility::new(None, None).expect("default rules");
    let before = rss_kib();
    let t0 = Instant::now();
    let mut seq = 0;
    let accepted = pass(&o, &roles, &mut ing, &mut f, &mut seq, 10.0, ts);
    let load_s = t0.elapsed().as_secs_f64();
    let loaded = rss_kib();
    let t1 = Instant::now();
    let again = pass(&o, &roles, &mut ing, &mut f, &mut seq, 11.0, ts + 1000);
    let steady_s = t1.elapsed().as_secs_f64();
    let steady = rss_kib();
    assert_eq!(ing.point_count(), total, "every point is in memory");
    let per_point = |kib: u64| (kib.saturating_sub(before) as f64 * 1024.0) / total as f64;
    println!(
        "dcim-memory-bench: {} devices x {} points = {total} points ({} roles, batches of {}; {})",
        o.devices,
        o.points,
        roles.len(),
        o.batch,
        if o.facility {
            "ingest and alarm engine"
        } else {
            "ingest only"
        }
    );
    println!(
        "first pass: {accepted} samples in {load_s:.2} s ({:.0} samples/s); second pass: {again} in {steady_s:.2} s ({:.0} samples/s)",
        accepted as f64 / load_s,
        again as f64 / steady_s
    );
    println!(
        "alarm instances: {}; points in memory: {}",
        f.engine.alarms().count(),
        ing.point_count()
    );
    println!(
        "VmRSS: {before} KiB before, {loaded} KiB after loading, {steady} KiB after the second pass"
    );
    println!(
        "memory per point: {:.0} bytes after loading, {:.0} bytes in steady state",
        per_point(loaded),
        per_point(steady)
    );
    if o.fill_history {
        let h = ing.history_config();
        let t2 = Instant::now();
        for k in 1..=h.buckets as i64 {
            let ts = ts + k * h.resolution_ms;
            pass(&o, &roles, &mut ing, &mut f, &mut seq, 12.0 + k as f64, ts);
        }
        let full = rss_kib();
        println!(
            "history rings filled ({} buckets of {} s, {} more passes in {:.1} s): VmRSS {full} KiB, {:.0} bytes per point",
            h.buckets,
            h.resolution_ms / 1000,
            h.buckets,
            t2.elapsed().as_secs_f64(),
            per_point(full)
        );
    }
}
