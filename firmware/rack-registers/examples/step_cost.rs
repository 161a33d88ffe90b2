//! Workload for measuring the cost of one fire-logic step on the host. Every step goes through
//! `measured_step` (never inlined), so a profiler can isolate each call:
//!
//! ```sh
//! bash tests/firmware/step-cost.sh    # callgrind, one dump per step: worst and mean instructions
//! ```
//!
//! Steps replayed: every shipped trace (`tests/traces/*.csv`), the built-in thermal runaway up to
//! the room-gas release, and an adversarial run where every source faults at once in the middle
//! of a stage change with the event log full.

use std::hint::black_box;

use fire_logic::{Actions, Analog, Config, Digital, Inputs, Outputs, RackLogic, Stage};
use fire_trace::Header;
use rack_registers::scenario::{PERIOD_MS, ThermalRunaway};

#[inline(never)]
fn measured_step(logic: &mut RackLogic, now_ms: u64, inputs: &Inputs) -> Outputs {
    // Not a tail call, so the profiler sees this function return after each step.
    let out = logic.step(black_box(now_ms), black_box(inputs));
    black_box(&out);
    out
}

fn traces(steps: &mut u64) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/traces");
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "csv"))
                .collect()
        })
        .unwrap_or_default();
    paths.sort();
    for p in paths {
        let text = std::fs::read_to_string(&p).expect("read trace");
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l))
            .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
        let Some((hn, h)) = lines.next() else {
            continue;
        };
        let header = Header::parse(h, hn).expect("header");
        let mut cfg = Config::default();
        cfg.fitted = header.fitted(cfg.fitted);
        let mut logic = RackLogic::new(cfg).expect("config");
        for (n, l) in lines {
            let row = header.parse_row(l, n).expect("row");
            if let Some(c) = row.command {
                let _ = logic.command(row.t_ms, c);
            }
            measured_step(&mut logic, row.t_ms, &row.inputs);
            while logic.take_event().is_some() {}
            *steps += 1;
        }
    }
}

fn runaway(steps: &mut u64) {
    let s = ThermalRunaway::default();
    let mut logic = RackLogic::new(Config::default()).expect("config");
    let mut actions = Actions::NONE;
    let mut now = 0;
    while now < 600_000 {
        let out = measured_step(&mut logic, now, &s.inputs(now, actions));
        actions = out.actions;
        while logic.take_event().is_some() {}
        now += PERIOD_MS;
        *steps += 1;
    }
}

fn adversarial(steps: &mut u64) {
    // The event log is never drained here, so it fills up and every new event evicts one.
    let s = ThermalRunaway::default();
    let mut logic = RackLogic::new(Config::default()).expect("config");
    let mut actions = Actions::NONE;
    let mut now = 0;
    let mut toggle = false;
    while now < 600_000 {
        let mut i = s.inputs(now, actions);
        // Every 3 s all sources fault together for one cycle, feedbacks chatter, keys bounce.
        if now % 3_000 == 0 {
            i.bms_max = Analog::Fault;
            i.rack_temp1 = Analog::Fault;
            i.rack_temp2 = Analog::Fault;
            i.camera_max = Analog::Fault;
            i.smoke = Digital::Fault;
            i.offgas = Analog::Fault;
            i.feedback = [Digital::Fault; 6];
        }
        toggle = !toggle;
        i.reset = if toggle { Digital::On } else { Digital::Off };
        i.hold = if logic.stage() == Stage::Stage5 && toggle {
            Digital::On
        } else {
            Digital::Off
        };
        let out = measured_step(&mut logic, now, &i);
        actions = out.actions;
        now += PERIOD_MS;
        *steps += 1;
    }
}

fn main() {
    let mut steps = 0u64;
    let started = std::time::Instant::now();
    traces(&mut steps);
    runaway(&mut steps);
    adversarial(&mut steps);
    let ns = started.elapsed().as_nanos() as f64 / steps as f64;
    println!("{steps} steps, {ns:.0} ns per step on average (wall clock, including the workload)");
}
