//! Full evaluation of the demo site and one what-if.
//! Run: `cargo bench -p dcim-site --bench evaluate`

use criterion::{Criterion, criterion_group, criterion_main};
use dcim_site::fixture::healthy_live;
use dcim_site::*;
use std::collections::BTreeSet;
use std::hint::black_box;
use std::path::Path;

fn bench(c: &mut Criterion) {
    let site = Site::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("sites/demo.toml")).unwrap();
    let now = 1_800_000_000_000;
    let live = healthy_live(&site, now - 1000);
    let none = BTreeSet::new();
    let states = component_states(&site, &live, &none, now);
    let before = evaluate(&site, &states);
    c.bench_function(
        "demo: component states from live values (432 components)",
        |b| b.iter(|| component_states(black_box(&site), black_box(&live), &none, now)),
    );
    c.bench_function("demo: full evaluation", |b| {
        b.iter(|| evaluate(black_box(&site), black_box(&states)))
    });
    // The proven and the if-unknown-up views differ only when something is Unknown: the
    // engine then computes both, plus the unknown components each supply depends on.
    let mut unknown = states.clone();
    for id in ["feed-a", "chiller-1", "core-1"] {
        unknown[site.index_of(id).unwrap()].state = CompState::Unknown;
    }
    c.bench_function("demo: full evaluation, 3 components unknown", |b| {
        b.iter(|| evaluate(black_box(&site), black_box(&unknown)))
    });
    c.bench_function("demo: what-if feed-a fails", |b| {
        b.iter(|| what_if(black_box(&site), black_box(&states), &before, &["feed-a"]).unwrap())
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
