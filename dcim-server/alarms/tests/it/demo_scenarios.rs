//! The alarm engine on the demo site model: feed loss, an ATS loss with suppression by design,
//! a chiller trip.

use dcim_alarms::*;
use dcim_points::{Sample, Value};
use dcim_site::fixture::{healthy_samples, sample};
use dcim_site::*;
use std::collections::BTreeSet;
use std::path::Path;

const T0: i64 = 1_800_000_000_000;

struct World {
    site: Site,
    live: Live,
    engine: Engine,
    incidents: Incidents,
    records: Vec<Record>,
    eval: Option<Evaluation>,
}

impl World {
    fn new() -> World {
        let site =
            Site::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../site/sites/demo.toml"))
                .unwrap();
        let mut engine = Engine::new(Rule::defaults(), EngineConfig::default()).unwrap();
        engine.set_device_components(device_components(&site));
        let mut w = World {
            live: Live::new(),
            site,
            engine,
            incidents: Incidents::new(IncidentConfig::default()),
            records: Vec::new(),
            eval: None,
        };
        let healthy = healthy_samples(&w.site, T0);
        for s in &healthy {
            w.ingest(s.clone(), T0);
        }
        w.step(T0);
        assert!(
            w.records.is_empty(),
            "a healthy site raises nothing: {:?}",
            w.records
        );
        w
    }

    fn ingest(&mut self, s: Sample, now: i64) {
        let r = self.engine.on_sample(&s, now);
        self.incidents.on_records(&r);
        self.records.extend(r);
        self.live.update(s);
    }

    /// What the server does on a tick: states, evaluation, redundancy alarms, engine tick.
    fn step(&mut self, now: i64) {
        let states = component_states(&self.site, &self.live, &BTreeSet::new(), now);
        let ev = evaluate(&self.site, &states);
        for h in &ev.subsystems {
            let detail = format!(
                "{} consumers lost, {} degraded",
                h.lost.len(),
                h.degraded.len()
            );
            let r = self.engine.on_redundancy(
                h.subsystem.as_str(),
                h.designed,
                h.current,
                &detail,
                now,
            );
            self.incidents.on_records(&r);
            self.records.extend(r);
        }
        let sup = SiteSuppression::new(&self.site, &ev);
        let r = self.engine.tick(now, &sup);
        self.incidents.on_records(&r);
        self.records.extend(r);
        self.eval = Some(ev);
    }

    fn set(&mut self, device: &str, role: &str, v: Value, now: i64) {
        self.ingest(sample(device, role, v, now), now);
    }

    fn annunciated(&self) -> Vec<(String, u8)> {
        self.records
            .iter()
            .filter(|r| r.is_transition() && r.to == AlarmState::Unacknowledged)
            .map(|r| (r.alarm.clone(), r.grade))
            .collect()
    }
}

#[test]
fn feed_loss_gives_a_grade_2_redundancy_alarm_and_nothing_else_but_the_feed() {
    let mut w = World::new();
    let t = T0 + 1000;
    w.set("meter-a", "feed.breaker_closed", Value::Bool(false), t);
    w.set("meter-a", "feed.voltage", Value::Number(0.0), t);
    w.step(t);
    w.step(t + 2_000);
    let mut a = w.annunciated();
    a.sort();
    assert_eq!(
        a,
        vec![
            ("feed-breaker-open:meter-a".to_string(), 3),
            ("redundancy:power".to_string(), 2)
        ]
    );
    let ev = w.eval.as_ref().unwrap();
    assert!(ev.subsystem(Subsystem::Power).unwrap().lost.is_empty());
    // One incident, grade 2, holding both alarms.
    assert_eq!(w.incidents.list.len(), 1);
    let inc = &w.incidents.list[0];
    assert_eq!(inc.grade, 2);
    assert_eq!(inc.alarms.len(), 2);
    assert!(inc.to_markdown().contains("redundancy:power"));
}

#[test]
fn ats_loss_suppresses_the_alarms_of_the_ups_zones_behind_it() {
    let mut w = World::new();
    let t = T0 + 1000;
    w.set("ats-1", "ats.source", Value::Text("none".into()), t);
    // The UPS zones behind ats-1 go on battery: a consequence, not a cause.
    w.set("ups-z1", "ups.on_battery", Value::Bool(true), t);
    w.set("ups-z2", "ups.on_battery", Value::Bool(true), t);
    w.step(t);
    let z1 = w.engine.get("ups-on-battery:ups-z1").unwrap();
    assert_eq!(z1.state(), AlarmState::SuppressedByDesign);
    assert_eq!(
        z1.overlays.suppressed_by.as_deref(),
        Some("upstream lost: ats-1")
    );
    assert_eq!(
        w.engine.get("ups-on-battery:ups-z2").unwrap().state(),
        AlarmState::SuppressedByDesign
    );
    // The redundancy alarm is never suppressed.
    assert_eq!(
        w.engine.get("redundancy:power").unwrap().state(),
        AlarmState::Unacknowledged
    );
    // ATS back: the UPS alarm, still active, is annunciated.
    let t2 = t + 60_000;
    w.set("ats-1", "ats.source", Value::Text("A".into()), t2);
    w.step(t2);
    assert_eq!(
        w.engine.get("ups-on-battery:ups-z1").unwrap().state(),
        AlarmState::Unacknowledged
    );
}

#[test]
fn chiller_trip_raises_a_cooling_redundancy_alarm_and_shows_ride_through() {
    let mut w = World::new();
    let t = T0 + 1000;
    w.set("chiller-1", "chiller.fault", Value::Bool(true), t);
    w.set("chiller-1", "chiller.running", Value::Bool(false), t);
    w.step(t);
    let a = w.annunciated();
    assert!(a.contains(&("redundancy:cooling".to_string(), 2)), "{a:?}");
    assert!(
        a.contains(&("chiller-fault:chiller-1".to_string(), 3)),
        "{a:?}"
    );
    let rt = &w.eval.as_ref().unwrap().ride_through[0];
    assert!(rt.minutes.unwrap() > 15.0);
    assert!(
        w.engine
            .get("redundancy:cooling")
            .unwrap()
            .message
            .contains("designed N+1, now N")
    );
}

#[test]
fn battery_rack_heating_to_stage_3_is_a_grade_1_incident() {
    let mut w = World::new();
    let t = T0 + 1000;
    w.set("bms-r042", "fire.stage", Value::Number(1.0), t);
    w.step(t);
    w.set("bms-r042", "fire.stage", Value::Number(4.0), t + 30_000);
    w.step(t + 30_000);
    assert_eq!(w.engine.get("fire-stage:bms-r042").unwrap().grade, 1);
    assert_eq!(w.incidents.list.len(), 1);
    assert_eq!(
        w.incidents.list[0].grade, 1,
        "raised by the grade-1 alarm joining it"
    );
}

#[test]
fn losing_one_side_of_a_2n_pair_suppresses_nothing_downstream() {
    let mut w = World::new();
    let t = T0 + 1000;
    w.set("pdu-h1-01a", "pdu.breaker_closed", Value::Bool(false), t);
    w.engine.on_comm("bms-r001", true, t);
    w.step(t + 30_000);
    let ev = w.eval.as_ref().unwrap();
    let sup = SiteSuppression::new(&w.site, ev);
    assert_eq!(sup.cause("r001"), None, "r001 still has its B side");
    assert_eq!(
        w.engine.get("comm-lost:bms-r001").unwrap().state(),
        AlarmState::Unacknowledged
    );
    // Both sides gone: the rack's alarms are consequences of the PDUs.
    // (Fresh samples: the ones from before are stale by now.)
    for d in ["pdu-h1-01a", "pdu-h1-01b"] {
        w.set(d, "pdu.breaker_closed", Value::Bool(false), t + 31_000);
    }
    w.step(t + 31_000);
    let ev = w.eval.as_ref().unwrap();
    let sup = SiteSuppression::new(&w.site, ev);
    assert_eq!(
        sup.cause("r001"),
        Some("upstream lost: pdu-h1-01a, pdu-h1-01b")
    );
    assert_eq!(
        w.engine.get("comm-lost:bms-r001").unwrap().state(),
        AlarmState::SuppressedByDesign
    );
}
