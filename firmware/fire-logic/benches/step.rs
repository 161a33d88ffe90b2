//! One control cycle of the rack fire logic.
//!
//! `worst_case`: every sensor alternates between a plausible reading and a fault on every
//! cycle (a dozen events per cycle), the partner check arbitrates, all feedbacks mismatch,
//! the logic sits in stage 5 with the room gas held, and the event log is full so that every
//! event goes through the priority eviction. `steady_stage5`: a normal cycle in stage 5.

use criterion::{Criterion, criterion_group, criterion_main};
use fire_logic::{Analog, Config, Digital, Inputs, RackLogic, Stage};
use std::hint::black_box;

fn hot(t: i32) -> Inputs {
    let mut i = Inputs {
        bms_max: Analog::Value(t),
        rack_temp1: Analog::Value(t - 5),
        rack_temp2: Analog::Value(t - 170), // disagrees with its partner: arbitration
        camera_max: Analog::Value(t + 20),
        smoke: Digital::On,
        offgas: Analog::Value(300),
        ..Inputs::default()
    };
    i.hold = Digital::On;
    i.manual_only = Digital::Off;
    i.authority = Digital::Off;
    i.feedback = [Digital::Off; 6];
    i
}

fn faulted() -> Inputs {
    let mut i = Inputs {
        bms_max: Analog::Fault,
        rack_temp1: Analog::Value(32_767),
        rack_temp2: Analog::Value(-32_768),
        camera_max: Analog::Value(20_000),
        smoke: Digital::Fault,
        offgas: Analog::Fault,
        ..Inputs::default()
    };
    i.feedback = [Digital::Fault; 6];
    i.hold = Digital::On;
    i
}

fn in_stage5() -> (RackLogic, u64) {
    let mut cfg = Config::default();
    cfg.fitted.offgas = true;
    cfg.fitted.feedback = [true; 6];
    let mut l = RackLogic::new(cfg).unwrap();
    let mut t = 0;
    let mut temp = 250;
    while l.stage() != Stage::Stage5 {
        t += 500;
        temp = (temp + 50).min(1_000);
        l.step(t, &hot(temp));
    }
    (l, t)
}

fn bench(c: &mut Criterion) {
    let (logic, t0) = in_stage5();
    c.bench_function("step/steady_stage5", |b| {
        let mut l = logic.clone();
        let mut t = t0;
        let i = hot(1_000);
        b.iter(|| {
            t += 1;
            black_box(l.step(t, black_box(&i)))
        })
    });
    c.bench_function("step/worst_case", |b| {
        let mut l = logic.clone();
        let mut t = t0;
        let (good, bad) = (hot(1_000), faulted());
        let mut odd = false;
        b.iter(|| {
            t += 1;
            odd = !odd;
            let i = if odd { &bad } else { &good };
            black_box(l.step(t, black_box(i)))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
