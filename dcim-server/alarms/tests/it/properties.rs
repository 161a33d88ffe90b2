//! Random operator actions and process values never produce an invalid transition, never lose
//! an unacknowledged alarm from the active list, and shelving always expires.

use crate::common;
use dcim_alarms::*;
use dcim_points::{Quality, Role, Sample, Value};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

const T0: i64 = 1_800_000_000_000;
const DEVICES: [&str; 3] = ["ups-z1", "ups-z2", "ups-z3"];

#[derive(Debug, Clone)]
enum Op {
    Value(usize, bool, bool),
    Temp(usize, f64),
    Ack(usize, u8),
    Shelve(usize, u8, i64),
    Unshelve(usize, u8),
    Comment(usize, u8),
    OutOfService(usize, u8),
    ReturnToService(usize, u8),
    Maintenance(usize, bool),
    Tick(i64, u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3usize, any::<bool>(), prop::bool::weighted(0.9)).prop_map(|(d, v, g)| Op::Value(d, v, g)),
        2 => (0..3usize, 20.0..40.0f64).prop_map(|(d, t)| Op::Temp(d, t)),
        3 => (0..3usize, 0..2u8).prop_map(|(d, r)| Op::Ack(d, r)),
        1 => (0..3usize, 0..2u8, 1..200_000i64).prop_map(|(d, r, t)| Op::Shelve(d, r, t)),
        1 => (0..3usize, 0..2u8).prop_map(|(d, r)| Op::Unshelve(d, r)),
        1 => (0..3usize, 0..2u8).prop_map(|(d, r)| Op::Comment(d, r)),
        1 => (0..3usize, 0..2u8).prop_map(|(d, r)| Op::OutOfService(d, r)),
        1 => (0..3usize, 0..2u8).prop_map(|(d, r)| Op::ReturnToService(d, r)),
        1 => (0..3usize, any::<bool>()).prop_map(|(d, on)| Op::Maintenance(d, on)),
        3 => (0..120_000i64, 0..8u8).prop_map(|(dt, sup)| Op::Tick(dt, sup)),
    ]
}

fn rules() -> Vec<Rule> {
    vec![
        Rule {
            off_delay_ms: 5_000,
            expected_recovery_ms: 300_000,
            ..common::binary_rule("onbat")
        },
        Rule {
            id: "hot".into(),
            name: "Hot".into(),
            condition: Condition::Threshold {
                role: "battery.cell_temp.max".into(),
                high: Some(30.0),
                low: Some(22.0),
                deadband: 1.5,
            },
            grade: 3,
            device_prefix: String::new(),
            labels: Default::default(),
            on_delay_ms: 2_000,
            off_delay_ms: 0,
            expected_recovery_ms: 0,
        },
    ]
}

fn alarm_id(d: usize, r: u8) -> String {
    format!("{}:{}", if r == 0 { "onbat" } else { "hot" }, DEVICES[d])
}

fn sample(d: usize, role: &str, v: Value, good: bool, ts: i64) -> Sample {
    let mut s = Sample::of_role(DEVICES[d], Role::new(role).unwrap(), v, ts);
    if !good {
        s.quality = Quality::Bad;
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, .. ProptestConfig::default() })]

    #[test]
    fn random_operations_keep_every_invariant(ops in prop::collection::vec(op(), 1..120)) {
        let cfg = EngineConfig { chatter_count: 4, chatter_window_ms: 60_000, chatter_shelve_ms: 100_000, flood_count: 4, flood_window_ms: 30_000, max_shelve_ms: 150_000 };
        let mut e = Engine::new(rules(), cfg).unwrap();
        let mut now = T0;
        let mut needs_ack: BTreeSet<String> = BTreeSet::new();
        let mut last_seq = 0u64;
        for op in ops {
            let before: BTreeMap<String, AlarmState> = e.alarms().map(|a| (a.id.clone(), a.state())).collect();
            now += 1;
            let recs: Vec<Record> = match op {
                Op::Value(d, v, g) => e.on_sample(&sample(d, "ups.on_battery", Value::Bool(v), g, now), now),
                Op::Temp(d, t) => e.on_sample(&sample(d, "battery.cell_temp.max", Value::Number(t), true, now), now),
                Op::Ack(d, r) => e.act(&alarm_id(d, r), Action::Ack, "op", now).unwrap_or_default(),
                Op::Shelve(d, r, dt) => e.act(&alarm_id(d, r), Action::Shelve { until_ms: now + dt, reason: "test".into() }, "op", now).unwrap_or_default(),
                Op::Unshelve(d, r) => e.act(&alarm_id(d, r), Action::Unshelve, "op", now).unwrap_or_default(),
                Op::Comment(d, r) => e.act(&alarm_id(d, r), Action::Comment { text: "x".into() }, "op", now).unwrap_or_default(),
                Op::OutOfService(d, r) => e.act(&alarm_id(d, r), Action::OutOfService, "op", now).unwrap_or_default(),
                Op::ReturnToService(d, r) => e.act(&alarm_id(d, r), Action::ReturnToService, "op", now).unwrap_or_default(),
                Op::Maintenance(d, on) => e.set_maintenance(DEVICES[d], on, "op", now),
                Op::Tick(dt, sup) => {
                    now += dt;
                    let f = move |a: &Alarm| DEVICES.iter().position(|d| *d == a.subject).filter(|i| sup & (1 << i) != 0).map(|_| "upstream".to_string());
                    e.tick(now, &f)
                }
            };
            // Records are ordered, valid and consistent with the states they claim.
            let mut cur = before.clone();
            let mut acked = BTreeSet::new();
            for r in &recs {
                prop_assert!(r.seq > last_seq);
                last_seq = r.seq;
                prop_assert_eq!(r.ts_ms, now);
                if r.alarm == "flood" {
                    continue;
                }
                let from = cur.get(&r.alarm).copied().unwrap_or(AlarmState::Normal);
                prop_assert_eq!(r.from, from, "record {:?}", r);
                if r.is_transition() {
                    prop_assert!(valid_transition(r.from, r.to), "invalid {:?}", r);
                }
                if let Some(u) = &r.user && matches!(r.event, Event::Acknowledged | Event::Shelved { .. } | Event::Unshelved | Event::Comment { .. } | Event::OutOfService | Event::ReturnedToService) {
                    prop_assert_eq!(u.as_str(), "op");
                }
                if r.event == Event::Acknowledged {
                    acked.insert(r.alarm.clone());
                }
                cur.insert(r.alarm.clone(), r.to);
            }
            let active: BTreeSet<String> = e.active().map(|a| a.id.clone()).collect();
            for a in e.alarms() {
                prop_assert_eq!(cur.get(&a.id).copied().unwrap_or(AlarmState::Normal), a.state(), "engine and records disagree on {}", a.id);
                // Never lost while unacknowledged.
                if a.base.needs_ack() {
                    prop_assert!(active.contains(&a.id));
                }
                if needs_ack.contains(&a.id) && !a.base.needs_ack() {
                    prop_assert!(acked.contains(&a.id), "{} left unacknowledged state without an ack", a.id);
                }
                // Shelving always expires.
                if let Some(until) = a.overlays.shelved_until {
                    prop_assert!(until - now <= 150_000, "shelved beyond the maximum");
                    if matches!(op, Op::Tick(..)) {
                        prop_assert!(until > now, "shelf past its expiry after a tick");
                    }
                }
            }
            needs_ack = e.alarms().filter(|a| a.base.needs_ack()).map(|a| a.id.clone()).collect();
        }
        // Enough time and every shelf is gone.
        now += 1_000_000;
        e.tick(now, &NoSuppression);
        prop_assert!(e.alarms().all(|a| a.overlays.shelved_until.is_none()));
    }
}
