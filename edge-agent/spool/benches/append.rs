//! Spool append throughput per fsync policy and record size.
//!
//! `cargo bench -p dcim-spool --bench append`
//! Reports records/s (and bytes/s in the `bytes` group). Under `always` every append waits for
//! `fdatasync`, so the number is the disk's flush rate, not the spool's CPU cost.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dcim_spool::{Class, FsyncPolicy, Spool, SpoolConfig};
use std::time::{Duration, Instant};

fn policies() -> [(&'static str, FsyncPolicy); 3] {
    [
        ("always", FsyncPolicy::Always),
        ("interval_1s", FsyncPolicy::Interval(Duration::from_secs(1))),
        ("never", FsyncPolicy::Never),
    ]
}

fn bench(c: &mut Criterion) {
    for size in [256usize, 4096] {
        let mut group = c.benchmark_group(format!("append_{size}B"));
        group
            .sample_size(10)
            .measurement_time(Duration::from_secs(3))
            .warm_up_time(Duration::from_millis(500))
            .throughput(Throughput::Bytes(size as u64));
        for (name, policy) in policies() {
            let dir = tempfile::tempdir().unwrap();
            let mut cfg = SpoolConfig::new(dir.path());
            cfg.max_bytes = 128 << 20;
            cfg.segment_bytes = 4 << 20;
            cfg.event_fsync = policy;
            cfg.telemetry_fsync = policy;
            let (mut spool, _) = Spool::open(cfg).unwrap();
            let payload = vec![b'x'; size];
            let start = Instant::now();
            group.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter(|| {
                    let now = start.elapsed().as_millis() as u64;
                    spool
                        .append(Class::Telemetry, 1, now, |_| payload.clone())
                        .unwrap()
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
