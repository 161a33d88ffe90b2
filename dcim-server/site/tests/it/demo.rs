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
    for s in &ev.subsystems {
        assert!(s.verified && s.unverified.is_empty(), "{s:?}");
        assert_eq!(s.summary, s.current.to_string());
    }
    // Transformers bind only measurements: unmonitored, assumed up, and listed as such.
    let p = ev.subsystem(Subsystem::Power).unwrap();
    assert_eq!(p.unmonitored, ["tx-1", "tx-2", "tx-3", "tx-4"]);
    let tx = ev.component(&site, "tx-1").unwrap();
    assert!(!tx.monitored && tx.reason.contains("unmonitored"), "{tx:?}");
    // Both chillers carry the heat: the tank is not drawn; if both stopped it would last
    // 60 m3 x 1000 x 4.186 x (14 - 8) K / 1500 kW = 1004.6 s.
    let rt = &ev.ride_through[0];
    assert!(!rt.drawing && rt.minutes.is_none(), "{rt:?}");
    let stop = rt.minutes_if_chillers_stop.unwrap();
    assert!((stop - 16.744).abs() < 0.01, "{stop}");
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
    // Hazard: ride-through computed as if the tank carried the whole heat load (17 min) while
    // the remaining chiller carries most of it, so operators would shed load or call for
    // help an hour early, and with both chillers running the figure looked like a countdown.
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
    // Worked example: 60 m3 full, 8 degC, usable to 14 degC: 60 x 1000 kg x 4.186 kJ/(kg K)
    // x 6 K = 1,506,960 kJ. Heat 300 racks x 5 kW = 1500 kW, chiller-2 gives 1200 kW: the
    // tank covers 300 kW, 1,506,960 / 300 = 5023 s = 83.7 min.
    assert!(rt.drawing);
    assert_eq!(rt.chiller_capacity_kw, 1200.0);
    assert_eq!(rt.deficit_kw, Some(300.0));
    let m = rt.minutes.unwrap();
    assert!((m - 83.72).abs() < 0.01, "{m}");
    assert!((rt.minutes_if_chillers_stop.unwrap() - 16.744).abs() < 0.01);
}

#[test]
fn ride_through_of_the_demo_scenario_is_about_an_hour() {
    // The simulator's plant in the demo scenario: 1.54 MW of IT plus 5 % other heat, tank at
    // 7 degC and 96 %, one 1200 kW chiller left after the trip. E = 60 x 0.96 x 1000 x 4.186
    // x 7 = 1,687,795 kJ; D = 1617 - 1200 = 417 kW; E / D = 4047 s = 67.5 min.
    let site = demo();
    let mut live = healthy_live(&site, NOW - 1000);
    for (d, r, v) in [
        ("chiller-1", "chiller.running", Value::Bool(false)),
        ("chiller-1", "chiller.load_kw", Value::Number(0.0)),
        ("chiller-2", "chiller.load_kw", Value::Number(1200.0)),
        ("tank-1", "buffer_tank.temp", Value::Number(7.0)),
        ("tank-1", "buffer_tank.level_pct", Value::Number(96.0)),
    ] {
        live.update(sample(d, r, v, NOW - 500));
    }
    for i in 1..=300 {
        live.update(sample(
            &format!("bms-r{i:03}"),
            "it.power_kw",
            Value::Number(1617.0 / 300.0),
            NOW - 500,
        ));
    }
    let states = component_states(&site, &live, &BTreeSet::new(), NOW);
    let rt = &evaluate(&site, &states).ride_through[0];
    let m = rt.minutes.unwrap();
    assert!((m - 67.46).abs() < 0.05, "{m} min: {rt:?}");
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
    let rt = &ev.ride_through[0];
    assert_eq!(rt.chillers_available, 0);
    // No chiller: the tank carries everything.
    assert_eq!(rt.minutes, rt.minutes_if_chillers_stop);
    assert!(rt.minutes.unwrap() > 10.0);
}

#[test]
fn stale_meter_is_unknown_and_the_level_it_would_give_is_unverified() {
    // Hazard: a meter gone silent counted as a healthy feed, so the overview kept saying 2N.
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
    // Proven: only feed B. Feed A still carries power for impact (nothing is lost).
    assert_eq!(p.current, Redundancy::N);
    assert_eq!(p.if_unknown_up, Redundancy::TwoN);
    assert!(!p.verified);
    assert!(p.lost.is_empty() && p.degraded.is_empty(), "{p:?}");
    assert_eq!(p.unknown, vec!["feed-a".to_string()]);
    assert_eq!(p.unverified, vec!["feed-a".to_string()]);
    assert_eq!(p.unverified_consumers.len(), 300);
    assert_eq!(
        p.summary,
        "unverified: N proven, 2N if the 1 unknown component is up"
    );
    let r = ev
        .component(&site, "r001")
        .unwrap()
        .supply(Subsystem::Power)
        .unwrap();
    assert!(r.supplied && r.proven_supplied && !r.verified);
    assert_eq!((r.live_paths, r.live_paths_if_unknown_up), (1, 2));
    assert_eq!(r.single_points_of_failure, ["feed-b"]);
    // Much later the whole table is stale: everything unknown.
    let states = component_states(&site, &live, &BTreeSet::new(), NOW + 60_000);
    assert!(
        states
            .iter()
            .filter(|s| s.monitored)
            .all(|s| s.state == CompState::Unknown)
    );
}

#[test]
fn a_site_that_never_reported_is_not_green() {
    // Hazard: on a fresh site where nothing has reported the overview said power 2N,
    // cooling N+1, network 2N and "chillers 2/2".
    let site = demo();
    let states = component_states(&site, &Live::new(), &BTreeSet::new(), NOW);
    let ev = evaluate(&site, &states);
    for s in &ev.subsystems {
        assert_eq!(s.current, Redundancy::BelowN, "{s:?}");
        assert_eq!(s.if_unknown_up, s.designed, "{s:?}");
        assert!(!s.verified && !s.unverified.is_empty());
        assert!(s.lost.is_empty(), "nothing is known lost either");
        assert!(
            s.summary.starts_with("unverified: below N proven, "),
            "{}",
            s.summary
        );
        assert_eq!(s.min_live_paths, 0);
    }
    // An unmonitored transformer whose meter never reported is not assumed up either; a rack
    // or a room (no supply of its own) keeps its place.
    let tx = ev.component(&site, "tx-1").unwrap();
    assert_eq!((tx.state, tx.monitored), (CompState::Unknown, false));
    assert_eq!(ev.component(&site, "r001").unwrap().state, CompState::Up);
    let rt = &ev.ride_through[0];
    assert_eq!((rt.chillers_available, rt.chillers_unknown), (0, 2));
    assert_eq!(rt.minutes, None, "no tank temperature, no figure");
}

#[test]
fn unknown_for_longer_than_down_after_is_down_in_every_level() {
    // Hazard: a feed meter silent for hours still counted (as unknown) as half of 2N.
    let site = demo();
    let mut timer = UnknownTimer::new();
    let mut at = |now: i64| {
        // Everything else keeps reporting; the meter's points come back comm-lost.
        let mut live = healthy_live(&site, now - 1000);
        let mut s = sample("meter-a", "feed.voltage", Value::Number(22_900.0), now);
        s.quality = dcim_points::Quality::CommLost;
        live.update(s);
        let mut st = component_states(&site, &live, &BTreeSet::new(), now);
        timer.apply(&site, &mut st, now, 300_000);
        let ev = evaluate(&site, &st);
        ev.subsystem(Subsystem::Power).unwrap().clone()
    };
    let p = at(NOW);
    assert_eq!(
        (p.current, p.if_unknown_up),
        (Redundancy::N, Redundancy::TwoN)
    );
    let p = at(NOW + 300_000);
    assert_eq!((p.current, p.if_unknown_up), (Redundancy::N, Redundancy::N));
    assert!(p.verified);
    assert_eq!(p.down, vec!["feed-a".to_string()]);
    assert_eq!(p.degraded.len(), 300);
}

#[test]
fn a_lost_feed_is_de_energised_although_its_breaker_is_closed() {
    // Hazard: utility line A lost (0 V) shown to the fire authority as LIVE because its
    // breaker stayed closed.
    let site = demo();
    let (_, ev) = eval_with(
        &site,
        &[
            ("meter-a", "feed.voltage", Value::Number(0.0)),
            ("meter-a", "feed.power_kw", Value::Number(0.0)),
        ],
    );
    let a = ev.component(&site, "feed-a").unwrap();
    assert_eq!(a.state, CompState::Down);
    assert_eq!(a.energised, Some(false));
    assert_eq!(a.energised_by.as_deref(), Some("feed.voltage"));
    assert!(a.mismatch.as_deref().unwrap().contains("reports closed"));
    let b = ev.component(&site, "feed-b").unwrap();
    assert_eq!((b.energised, b.mismatch.as_deref()), (Some(true), None));
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
    assert!(
        states[i].reason.contains("Extinguishing patch (stage2)"),
        "{}",
        states[i].reason
    );
    // A controller that reports its stage as the table's key (an `enum` profile) cuts it too.
    let (states, _) = eval_with(
        &site,
        &[("bms-z2", "fire.stage", Value::Text("stage1".into()))],
    );
    assert_eq!(states[i].state, CompState::Down);
}
