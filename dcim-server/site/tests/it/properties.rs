//! Property tests of the redundancy engine on random plant graphs.

use dcim_site::model::{Component, Group};
use dcim_site::*;
use proptest::prelude::*;

/// An intermediate node: member picks, need pick, place flag, rating.
type NodePlan = (Vec<usize>, usize, bool, Option<u32>);

#[derive(Debug, Clone)]
struct Plan {
    /// Per subsystem (power, cooling): number of sources, then intermediate nodes as
    /// (member picks, need pick, passive?, rating).
    sources: [usize; 2],
    nodes: [Vec<NodePlan>; 2],
    racks: Vec<(Vec<usize>, Vec<usize>, usize)>,
    states: Vec<(u8, Option<u32>)>,
}

fn plan() -> impl Strategy<Value = Plan> {
    let node = (
        prop::collection::vec(0usize..100, 1..4),
        0usize..4,
        prop::bool::weighted(0.2),
        prop::option::of(10u32..100),
    );
    (
        [1usize..4, 1usize..4],
        [
            prop::collection::vec(node.clone(), 0..8),
            prop::collection::vec(node, 0..8),
        ],
        prop::collection::vec(
            (
                prop::collection::vec(0usize..100, 1..3),
                prop::collection::vec(0usize..100, 1..3),
                0usize..3,
            ),
            1..6,
        ),
        prop::collection::vec((0u8..10, prop::option::of(1u32..60)), 40),
    )
        .prop_map(|(sources, nodes, racks, states)| Plan {
            sources,
            nodes,
            racks,
            states,
        })
}

fn comp(id: String, kind: Kind, groups: Vec<Group>, rating: Option<f64>) -> Component {
    Component {
        id,
        name: None,
        kind,
        room: None,
        zone: None,
        rating,
        nominal_v: None,
        design: None,
        groups,
        bindings: Vec::new(),
        tank: None,
        line: 0,
    }
}

fn group(s: Subsystem, pool: &[usize], picks: &[usize], need: usize) -> Group {
    let mut members: Vec<usize> = picks.iter().map(|p| pool[p % pool.len()]).collect();
    members.sort_unstable();
    members.dedup();
    let need = (need % members.len()) as u32 + 1;
    Group {
        subsystem: s,
        members,
        need,
    }
}

fn build(p: &Plan) -> (Site, Vec<ComponentState>) {
    let mut comps = Vec::new();
    let mut pools: [Vec<usize>; 2] = [Vec::new(), Vec::new()];
    for (si, s) in [Subsystem::Power, Subsystem::Cooling]
        .into_iter()
        .enumerate()
    {
        let (src_kind, node_kind) = if si == 0 {
            (Kind::UtilityFeed, Kind::Pdu)
        } else {
            (Kind::Chiller, Kind::Crah)
        };
        for k in 0..p.sources[si] {
            pools[si].push(comps.len());
            comps.push(comp(
                format!("{}-src{k}", s.as_str()),
                src_kind,
                vec![],
                Some(100.0),
            ));
        }
        for (k, (picks, need, passive, rating)) in p.nodes[si].iter().enumerate() {
            let g = group(s, &pools[si], picks, *need);
            // Places (rooms) exist in the cooling graph only; in the power graph the flag picks
            // another equipment kind.
            let kind = match (*passive, si) {
                (true, 0) => Kind::Ats,
                (true, _) => Kind::Room,
                (false, _) => node_kind,
            };
            let sub = kind.subsystem().unwrap();
            let g = Group { subsystem: s, ..g };
            assert_eq!(sub, s);
            pools[si].push(comps.len());
            comps.push(comp(
                format!("{}-n{k}", s.as_str()),
                kind,
                vec![g],
                rating.map(f64::from),
            ));
        }
    }
    for (k, (pp, cp, _)) in p.racks.iter().enumerate() {
        let gp = group(Subsystem::Power, &pools[0], pp, 0);
        let gc = group(Subsystem::Cooling, &pools[1], cp, 0);
        comps.push(comp(
            format!("rack{k}"),
            Kind::Rack,
            vec![gp, gc],
            Some(8.0),
        ));
    }
    let site = Site::from_components("random", comps).unwrap();
    let states = site
        .components
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let (st, load) = p.states[i % p.states.len()];
            let mut s = ComponentState::up();
            s.state = match st {
                0 => CompState::Down,
                1 => CompState::Unknown,
                2 => CompState::Maintenance,
                _ => CompState::Up,
            };
            if let (Some(l), Some(sub)) = (load, c.kind.subsystem().or(Some(Subsystem::Power))) {
                s.load[sub as usize] = Some(f64::from(l));
            }
            s
        })
        .collect();
    (site, states)
}

fn pairs(ev: &Evaluation) -> Vec<(String, Subsystem, bool, Redundancy, u32, Redundancy)> {
    ev.components
        .iter()
        .flat_map(|c| {
            c.supply.iter().map(move |s| {
                (
                    c.id.clone(),
                    s.subsystem,
                    s.supplied,
                    s.current,
                    s.live_paths,
                    s.if_unknown_up,
                )
            })
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn failing_a_component_never_increases_redundancy_or_paths(p in plan(), pick in 0usize..1000) {
        let (site, states) = build(&p);
        let before = evaluate(&site, &states);
        let victim = site.components[pick % site.components.len()].id.clone();
        let w = what_if(&site, &states, &before, &[&victim]).unwrap();
        for (b, a) in pairs(&before).into_iter().zip(pairs(&w.after)) {
            prop_assert!(a.3 <= b.3, "level rose for {} {}: {:?} -> {:?} after failing {}", b.0, b.1, b.3, a.3, victim);
            prop_assert!(a.4 <= b.4, "paths rose for {} {}", b.0, b.1);
            prop_assert!(a.5 <= b.5, "level if unknown up rose for {} {}", b.0, b.1);
            prop_assert!(!a.2 || b.2, "supply appeared for {}", b.0);
        }
        for s in &w.after.subsystems {
            let sb = before.subsystem(s.subsystem).unwrap();
            prop_assert!(s.current <= sb.current);
            prop_assert!(s.if_unknown_up <= sb.if_unknown_up);
            prop_assert!(s.min_live_paths <= sb.min_live_paths);
            prop_assert!(s.lost.len() >= sb.lost.len());
        }
    }

    #[test]
    fn what_if_with_the_empty_set_equals_the_current_state(p in plan()) {
        let (site, states) = build(&p);
        let before = evaluate(&site, &states);
        let w = what_if(&site, &states, &before, &[]).unwrap();
        prop_assert_eq!(&w.after, &before);
        prop_assert!(w.loses_power.is_empty() && w.loses_cooling.is_empty() && w.loses_redundancy.is_empty());
    }

    #[test]
    fn no_live_path_means_lost_and_lost_means_below_n(p in plan()) {
        let (site, states) = build(&p);
        let ev = evaluate(&site, &states);
        for c in &ev.components {
            for s in &c.supply {
                prop_assert_eq!(s.live_paths_if_unknown_up == 0, !s.supplied, "{} {}", c.id, s.subsystem);
                prop_assert_eq!(s.live_paths == 0, !s.proven_supplied, "{} {}", c.id, s.subsystem);
                if !s.supplied {
                    prop_assert_eq!(s.if_unknown_up, Redundancy::BelowN);
                }
                if !s.proven_supplied {
                    prop_assert_eq!(s.current, Redundancy::BelowN);
                }
                prop_assert!(s.if_unknown_up <= s.designed, "{} {}: {:?} above design {:?}", c.id, s.subsystem, s.if_unknown_up, s.designed);
                // What is proven never exceeds what the unknown could give.
                prop_assert!(s.current <= s.if_unknown_up, "{} {}", c.id, s.subsystem);
                prop_assert!(!s.proven_supplied || s.supplied);
                prop_assert!(s.live_paths <= s.live_paths_if_unknown_up);
                prop_assert!(s.live_paths_if_unknown_up <= s.designed_paths);
                prop_assert_eq!(s.verified, s.current == s.if_unknown_up && s.proven_supplied == s.supplied);
            }
            if c.kind == Kind::Rack {
                for s in &c.supply {
                    let h = ev.subsystem(s.subsystem).unwrap();
                    prop_assert_eq!(h.lost.contains(&c.id), !s.supplied);
                }
            }
        }
    }

    #[test]
    fn without_unknown_components_everything_is_verified(p in plan()) {
        // Hazard: the proven and the optimistic view drifting apart when nothing is unknown.
        let (site, mut states) = build(&p);
        for s in &mut states {
            if s.state == CompState::Unknown {
                s.state = CompState::Up;
            }
        }
        let ev = evaluate(&site, &states);
        for c in &ev.components {
            for s in &c.supply {
                prop_assert!(s.verified && s.unverified.is_empty(), "{} {}", c.id, s.subsystem);
                prop_assert_eq!(s.current, s.if_unknown_up);
            }
        }
        for s in &ev.subsystems {
            prop_assert!(s.verified);
        }
    }

    #[test]
    fn an_unknown_component_never_raises_the_proven_level(p in plan(), pick in 0usize..1000) {
        // Hazard: silence reading as good news. Turning a Down component Unknown may raise the
        // level it could give, never the proven one.
        let (site, mut states) = build(&p);
        let i = pick % states.len();
        states[i].state = CompState::Down;
        let down = evaluate(&site, &states);
        states[i].state = CompState::Unknown;
        let unknown = evaluate(&site, &states);
        for (a, b) in down.components.iter().zip(&unknown.components) {
            for (sa, sb) in a.supply.iter().zip(&b.supply) {
                prop_assert_eq!(sa.current, sb.current, "{} {}", a.id, sa.subsystem);
                prop_assert_eq!(sa.live_paths, sb.live_paths);
                prop_assert!(sb.if_unknown_up >= sa.if_unknown_up);
            }
        }
    }

    #[test]
    fn sharing_the_results_of_components_fed_alike_changes_nothing(p in plan()) {
        // Hazard: a component given the result of another one fed alike that is not its own
        // (a missed single point of failure, a wrong level or path count).
        let (site, states) = build(&p);
        prop_assert_eq!(evaluate(&site, &states), evaluate_without_sharing(&site, &states));
    }

    #[test]
    fn evaluation_is_deterministic(p in plan()) {
        let (site, states) = build(&p);
        let a = evaluate(&site, &states);
        let b = evaluate(&site.clone(), &states.clone());
        prop_assert_eq!(a, b);
    }

    #[test]
    fn failing_several_components_is_monotone_too(p in plan(), picks in prop::collection::vec(0usize..1000, 0..4)) {
        let (site, states) = build(&p);
        let before = evaluate(&site, &states);
        let ids: Vec<String> = picks.iter().map(|k| site.components[k % site.components.len()].id.clone()).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let w = what_if(&site, &states, &before, &refs).unwrap();
        for (b, a) in pairs(&before).into_iter().zip(pairs(&w.after)) {
            prop_assert!(a.3 <= b.3 && a.4 <= b.4);
            prop_assert!(a.5 <= b.5);
        }
    }
}
