//! Alarm engine throughput.
//! Run: `cargo bench -p dcim-alarms --bench engine`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dcim_alarms::*;
use dcim_points::{Role, Sample, Value};
use std::hint::black_box;

const T0: i64 = 1_800_000_000_000;

fn sample(device: String, role: &str, v: Value) -> Sample {
    Sample::of_role(device, Role::new(role).unwrap(), v, T0)
}

fn bench(c: &mut Criterion) {
    // 3,000 devices x 3 samples, matching threshold, binary and fire rules.
    let samples: Vec<Sample> = (0..3000)
        .flat_map(|i| {
            [
                sample(
                    format!("bms-r{i:04}"),
                    "battery.cell_temp.max",
                    Value::Number(30.0),
                ),
                sample(format!("bms-r{i:04}"), "fire.stage", Value::Number(0.0)),
                sample(format!("ups-{i:04}"), "ups.on_battery", Value::Bool(false)),
            ]
        })
        .collect();
    let mut e = Engine::new(Rule::defaults(), EngineConfig::default()).unwrap();
    for s in &samples {
        e.on_sample(s, T0);
    }
    let mut g = c.benchmark_group("alarm engine");
    g.throughput(Throughput::Elements(samples.len() as u64));
    g.bench_function(
        "on_sample, steady values (9,000 samples, 12,000 alarm instances)",
        |b| {
            b.iter(|| {
                for s in &samples {
                    black_box(e.on_sample(s, T0 + 1));
                }
            })
        },
    );
    g.throughput(Throughput::Elements(1));
    let mut flip = false;
    let hot = sample(
        "bms-r0001".into(),
        "battery.cell_temp.max",
        Value::Number(0.0),
    );
    g.bench_function("on_sample, one alarm activating/clearing", |b| {
        b.iter(|| {
            flip = !flip;
            let mut s = hot.clone();
            s.value = Some(Value::Number(if flip { 50.0 } else { 20.0 }));
            black_box(e.on_sample(&s, T0 + 100_000))
        })
    });
    g.bench_function("tick over 12,000 alarm instances", |b| {
        b.iter(|| black_box(e.tick(T0 + 200_000, &NoSuppression)))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
