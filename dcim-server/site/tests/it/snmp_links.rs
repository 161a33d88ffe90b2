//! Network redundancy from the switches themselves: the SNMP driver of the edge agent reports
//! each designed link of a switch as a `link.up` sample labelled `link = <name>` (IF-MIB
//! `ifOperStatus`; quality `bad` when LLDP shows another neighbour than designed). Two carrier
//! links through the same edge switch are two components bound by label.
//!
//! Hazard: if per-link samples of one switch were not told apart, one link going down would be
//! hidden by the other one up (or take both down), and the network would read 2N with a path lost.

use dcim_points::{Quality, Role, Sample, Value};
use dcim_site::*;
use std::collections::BTreeSet;

const NOW: i64 = 1_800_000_000_000;

/// Two carriers on one edge switch, two cores each fed by either carrier, a row and a rack.
const SITE: &str = include_str!("snmp_links.toml");

/// A sample as the SNMP driver publishes it for link `link` of switch `sw-edge-1`.
fn link_up(link: &str, up: bool, quality: Quality) -> Sample {
    Sample {
        device: "sw-edge-1".into(),
        point: format!("up.{link}"),
        role: Role::new("link.up").unwrap(),
        labels: [("link".to_string(), link.to_string())].into(),
        value: Some(Value::Bool(up)),
        unit: String::new(),
        quality,
        ts_ms: NOW - 500,
    }
}

fn evaluate_with(site: &Site, samples: &[Sample]) -> (Vec<ComponentState>, Evaluation) {
    let mut live = Live::default();
    for s in samples {
        live.update(s.clone());
    }
    let states = component_states(site, &live, &BTreeSet::new(), NOW);
    let ev = evaluate(site, &states);
    (states, ev)
}

#[test]
fn a_carrier_link_going_down_on_the_switch_takes_the_network_from_2n_to_n() {
    let site = Site::from_toml_str(SITE, "links.toml").unwrap();
    let idx = |id: &str| site.components.iter().position(|c| c.id == id).unwrap();
    let both = [
        link_up("carrier-a", true, Quality::Good),
        link_up("carrier-b", true, Quality::Good),
    ];
    let (_, ev) = evaluate_with(&site, &both);
    let n = ev.subsystem(Subsystem::Network).unwrap();
    assert_eq!(
        (n.designed, n.current),
        (Redundancy::TwoN, Redundancy::TwoN)
    );

    let one_down = [
        link_up("carrier-a", true, Quality::Good),
        link_up("carrier-b", false, Quality::Good),
    ];
    let (states, ev) = evaluate_with(&site, &one_down);
    assert_eq!(states[idx("carrier-b")].state, CompState::Down);
    assert_eq!(states[idx("carrier-a")].state, CompState::Up);
    let n = ev.subsystem(Subsystem::Network).unwrap();
    assert_eq!(n.current, Redundancy::N);
    assert_eq!(n.down, vec!["carrier-b".to_string()]);
    assert_eq!(n.single_points_of_failure, vec!["carrier-a".to_string()]);
}

#[test]
fn a_link_up_towards_the_wrong_neighbour_is_not_proof_of_the_designed_path() {
    let site = Site::from_toml_str(SITE, "links.toml").unwrap();
    let idx = |id: &str| site.components.iter().position(|c| c.id == id).unwrap();
    // LLDP shows another neighbour on carrier-b: the driver reports link.up bad.
    let samples = [
        link_up("carrier-a", true, Quality::Good),
        link_up("carrier-b", true, Quality::Bad),
    ];
    let (states, _) = evaluate_with(&site, &samples);
    assert_eq!(states[idx("carrier-b")].state, CompState::Unknown);
    assert!(
        states[idx("carrier-b")].reason.contains("bad"),
        "{}",
        states[idx("carrier-b")].reason
    );
}
