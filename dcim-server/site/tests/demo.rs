//! The demo site: loads, is healthy by design, and behaves as operators expect on failures.

use dcim_points::Value;
use dcim_site::fixture::{healthy_live, sample};
use dcim_site::*;
use std::collections::BTreeSet;
use std::path::Path;

const NOW: i64 = 1_800_000_000_000;

fn demo() -> Site {
    Site::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("sites/demo.toml")).expect("demo loads")
}

fn eval_with(site: &Site, overrides: &[(&str, &str, Value)]) -> (Vec<ComponentState>, Evaluation) {
    let mut live = healthy_live(site, NOW - 1000);
    for (d, r, v) in overrides {
        live.update(sample(d, r, v.clone(), NOW - 500));
    }
    let states = component_states(site, &live, &BTreeSet::new(), NOW);
    let ev = evaluate(site, &states);
    (states, ev)
}

#[test]
fn demo_site_has_the_expected_shape() {
    let site = demo();
    let racks = site
        .components
        .iter()
        .filter(|c| c.kind == Kind::Rack)
        .count();
    assert_eq!(racks, 300);
    let devices = site.devices();
    for d in [
        "meter-a",
        "meter-b",
        "ats-1",
        "ups-z1",
        "ups-z4",
        "bms-r001",
        "bms-r300",
        "chiller-1",
        "chiller-2",
        "tank-1",
        "crah-h1-1",
        "link-carrier-a",
        "link-carrier-b",
    ] {
        assert!(devices.iter().any(|x| x == d), "missing device {d}");
    }
}

#[test]
fn healthy_demo_is_at_design_everywhere() {
    let site = demo();
    let (states, ev) = eval_with(&site, &[]);
    assert!(states.iter().all(|s| s.state == CompState::Up), "all up");
    let p = ev.subsystem(Subsystem::Power).unwrap();
    assert_eq!(p.designed, Redundancy::TwoN);
    assert_eq!(p.current, Redundancy::TwoN);
    assert_eq!(p.consumers, 300);
    assert_eq!(p.min_live_paths, 2);
    assert!(
        p.single_points_of_failure.is_empty(),
        "{:?}",
        p.single_points_of_failure
    );
    let c = ev.subsystem(Subsystem::Cooling).unwrap();
    assert_eq!(c.designed, Redundancy::NPlus1);
    assert_eq!(c.current, Redundancy::NPlus1);
    let n = ev.subsystem(Subsystem::Network).unwrap();
    assert_eq!(n.current, Redundancy::TwoN);
    assert!(ev.ride_through[0].minutes.unwrap() > 0.0);
}

#[test]
fn losing_feed_a_takes_power_from_2n_to_n_and_no_rack_loses_power() {
    let site = demo();
    let (_, ev) = eval_with(
        &site,
        &[("meter-a", "feed.breaker_closed", Value::Bool(false))],
    );
    let p = ev.subsystem(Subsystem::Power).unwrap();
    assert_eq!(p.designed, Redundancy::TwoN);
    assert_eq!(p.current, Redundancy::N);
    assert!(p.lost.is_empty());
    assert_eq!(p.degraded.len(), 300);
    assert_eq!(p.single_points_of_failure, vec!["feed-b".to_string()]);
    assert_eq!(p.min_live_paths, 1);
    assert_eq!(p.down, vec!["feed-a".to_string()]);
    // Nothing else changes.
    assert_eq!(
        ev.subsystem(Subsystem::Cooling).unwrap().current,
        Redundancy::NPlus1
    );
    assert_eq!(
        ev.subsystem(Subsystem::Network).unwrap().current,
        Redundancy::TwoN
    );
    let r = ev
        .component(&site, "r001")
        .unwrap()
        .supply(Subsystem::Power)
        .unwrap();
    assert!(r.supplied);
    assert_eq!((r.designed, r.current), (Redundancy::TwoN, Redundancy::N));
}

#[test]
fn feed_voltage_out_of_band_is_a_lost_feed() {
    let site = demo();
    let (states, ev) = eval_with(
        &site,
        &[("meter-b", "feed.voltage", Value::Number(19_000.0))],
    );
    let i = site.index_of("feed-b").unwrap();
    assert_eq!(states[i].state, CompState::Down);
    assert_eq!(
        ev.subsystem(Subsystem::Power).unwrap().current,
        Redundancy::N
    );
}

#[test]
fn losing_a_chiller_shows_ride_through_minutes() {
    let site = demo();
    let (_, ev) = eval_with(
        &site,
        &[("chiller-1", "chiller.running", Value::Bool(false))],
    );
    let c = ev.subsystem(Subsystem::Cooling).unwrap();
    assert_eq!(c.current, Redundancy::N);
    assert!(c.lost.is_empty());
    assert_eq!(c.single_points_of_failure, vec!["chiller-2".to_string()]);
    let rt = &ev.ride_through[0];
    assert_eq!((rt.chillers_available, rt.chillers_total), (1, 2));
    // 60 m3 x 4.186 kJ/kg.K x 6 K over 300 racks x 5 kW of heat = 16.7 min.
    let m = rt.minutes.unwrap();
    assert!((m - 16.744).abs() < 0.01, "{m}");
}

#[test]
fn losing_both_chillers_loses_cooling_of_every_rack() {
    let site = demo();
    let (_, ev) = eval_with(
        &site,
        &[
            ("chiller-1", "chiller.running", Value::Bool(false)),
            ("chiller-2", "chiller.fault", Value::Bool(true)),
        ],
    );
    let c = ev.subsystem(Subsystem::Cooling).unwrap();
    assert_eq!(c.current, Redundancy::BelowN);
    assert_eq!(c.lost.len(), 300);
    assert_eq!(ev.ride_through[0].chillers_available, 0);
    assert!(ev.ride_through[0].minutes.unwrap() > 10.0);
}

#[test]
fn stale_meter_is_unknown_but_still_carries_power() {
    let site = demo();
    let mut live = healthy_live(&site, NOW - 1000);
    let mut s = sample(
        "meter-a",
        "feed.breaker_closed",
        Value::Bool(true),
        NOW - 1000,
    );
    s.quality = dcim_points::Quality::CommLost;
    live.update(s);
    let states = component_states(&site, &live, &BTreeSet::new(), NOW);
    assert_eq!(
        states[site.index_of("feed-a").unwrap()].state,
        CompState::Unknown
    );
    let ev = evaluate(&site, &states);
    let p = ev.subsystem(Subsystem::Power).unwrap();
    assert_eq!(p.current, Redundancy::TwoN);
    assert_eq!(p.unknown, vec!["feed-a".to_string()]);
    // Much later the whole table is stale: everything unknown.
    let states = component_states(&site, &live, &BTreeSet::new(), NOW + 60_000);
    assert!(
        states
            .iter()
            .filter(|s| !s.reason.is_empty())
            .all(|s| s.state == CompState::Unknown)
    );
}

#[test]
fn maintenance_of_a_ups_zone_degrades_its_racks_only() {
    let site = demo();
    let live = healthy_live(&site, NOW - 1000);
    let maint: BTreeSet<String> = ["ups-z1".to_string()].into();
    let states = component_states(&site, &live, &maint, NOW);
    let ev = evaluate(&site, &states);
    let p = ev.subsystem(Subsystem::Power).unwrap();
    assert_eq!(p.current, Redundancy::N);
    assert!(p.lost.is_empty());
    // hall-1 (A = z1) and hall-3 rows 1-5 (A = z1): 150 racks degraded.
    assert_eq!(p.degraded.len(), 150);
    assert_eq!(p.maintenance, vec!["ups-z1".to_string()]);
}

#[test]
fn what_if_feed_a_and_ups_z3_loses_the_racks_fed_by_z1_and_z3() {
    let site = demo();
    let (states, before) = eval_with(&site, &[]);
    let w = what_if(&site, &states, &before, &["ups-z1", "ups-z3"]).unwrap();
    // hall-1 racks are fed A = z1, B = z3.
    let racks: Vec<_> = w
        .loses_power
        .iter()
        .filter(|id| id.starts_with('r'))
        .collect();
    assert_eq!(racks.len(), 100);
    assert!(w.loses_power.contains(&"r001".to_string()));
    assert!(w.loses_power.contains(&"pdu-h1-01a".to_string()));
    assert!(w.loses_cooling.is_empty() && w.loses_network.is_empty());
    assert!(w.loses_redundancy.iter().any(|c| c.id == "r201"));
    assert!(what_if(&site, &states, &before, &["nope"]).is_err());
}

#[test]
fn what_if_empty_equals_current() {
    let site = demo();
    let (states, before) = eval_with(
        &site,
        &[("meter-a", "feed.breaker_closed", Value::Bool(false))],
    );
    let w = what_if(&site, &states, &before, &[]).unwrap();
    assert_eq!(w.after, before);
    assert!(w.loses_power.is_empty() && w.loses_redundancy.is_empty());
}

#[test]
fn a_battery_room_fire_stage_cuts_that_battery_only() {
    let site = demo();
    let (states, ev) = eval_with(&site, &[("bms-z2", "fire.stage", Value::Number(3.0))]);
    let i = site.index_of("batt-z2").unwrap();
    assert_eq!(states[i].state, CompState::Down);
    assert_eq!(
        ev.subsystem(Subsystem::Power).unwrap().current,
        Redundancy::TwoN
    );
    assert_eq!(
        ev.subsystem(Subsystem::Power).unwrap().down,
        vec!["batt-z2".to_string()]
    );
}
