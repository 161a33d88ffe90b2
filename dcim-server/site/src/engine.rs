//! The redundancy engine: supply, redundancy levels, independent paths, N-1 spare capacity,
//! single points of failure, buffer-tank ride-through, and what-if queries.
//!
//! Every quantity is computed twice: *proven*, where only components that are Up conduct
//! (what measurement supports: `current`, `live_paths`, `spare_after_one`, the tank's chillers),
//! and *if unknown up*, where Unknown components conduct too (`supplied`, `if_unknown_up`,
//! what-if, suppression by design: an unreachable meter does not cut power). A level is
//! *verified* when the two agree; the Unknown components it depends on are listed.
//!
//! Definitions (for a component `c` and a subsystem `s` it consumes):
//! - *available*: `c` conducts (proven: state up; if unknown up: up or unknown) and every group
//!   of `c` has at least `need` available members.
//! - *supplied in `s`*: `c` conducts and every group of `c` in `s` is satisfied.
//! - *group level*: with `a` available members and `k = max(need, k_cap)` required, where
//!   `k_cap` is the fewest available members whose ratings cover the group's demand: `a >= 2k` -> 2N,
//!   `a >= k+1` -> N+1, `a == k` -> N, else below N (also when the available ratings do not
//!   cover the demand). A group whose only member is a place (room, row) takes that member's
//!   level instead.
//! - *level* of `c` in `s`: below N when not supplied; otherwise the lowest level of its groups
//!   in `s`, capped at N when `c` has a single point of failure. A component with no group in
//!   its own subsystem is a source: N.
//! - *single point of failure* of `c`: an available, non-place ancestor whose failure alone
//!   leaves `c` unsupplied (exact, by simulation on the ancestor closure).
//! - *live paths*: the largest number of node-disjoint chains of available equipment from
//!   sources to `c` (places can be shared).
//! - *demand* of a group: the sum of its members' loads (measured, else estimated: a consumer's
//!   load split evenly across the members of the group that feeds it). *Spare after one more
//!   failure*: sum of available ratings - the largest available rating - demand.
//! - *designed*: the same computation with every component up and no capacity limit, unless
//!   the site file declares `design` for the component.
//! - *subsystem*: the worst level over its consumers (components that consume `s` and that
//!   nothing consumes from in `s`; the racks in a normal site).
//! - *ride-through* of a buffer tank: stored cooling `volume x level x 1000 x 4.186 x
//!   (max_supply_c - tank temperature)` kJ over the deficit `heat load - rated capacity of the
//!   chillers that are Up` kW (see [`RideThrough`]).
//!
//! Every failure can only lower levels and paths: availability is monotone in the set of
//! working components, loads do not depend on availability, and the cap by single points of
//! failure only tightens.

use crate::model::{CompIdx, Kind, Redundancy, Site, Subsystem};
use crate::state::{CompState, ComponentState};
use serde::Serialize;
use std::collections::HashMap;

/// Supply health of one component in one subsystem.
///
/// Two views of the same supply: *proven* (only components that are Up carry supply: what
/// measurement supports) and *if unknown up* (Unknown components carry supply too: what the
/// plant gives if the silent ones are fine, the view used for impact and what-if). `current`,
/// `live_paths` and `spare_after_one` are proven; `supplied` is "not known to be lost".
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SupplyHealth {
    pub subsystem: Subsystem,
    /// Supplied with Unknown components counted as up: `false` means known to be lost.
    pub supplied: bool,
    /// Supplied through components that are Up.
    pub proven_supplied: bool,
    pub designed: Redundancy,
    /// The level proven by Up components (below N when the supply is not proven at all).
    pub current: Redundancy,
    /// The level if every Unknown component were up.
    pub if_unknown_up: Redundancy,
    /// Unknown components do not change the answer: `current == if_unknown_up` and the supply
    /// is proven exactly when it is not known to be lost.
    pub verified: bool,
    /// Unknown components this supply depends on (upstream, in any subsystem), sorted.
    pub unverified: Vec<String>,
    pub designed_paths: u32,
    /// Node-disjoint chains of Up equipment from the sources.
    pub live_paths: u32,
    /// The same with Unknown components counted as up.
    pub live_paths_if_unknown_up: u32,
    /// Spare capacity of the component's own groups if any one more member fails (worst
    /// group, proven members only), in the subsystem's unit; `None` when ratings or loads are
    /// unknown.
    pub spare_after_one: Option<f64>,
    /// Ids of ancestors whose failure alone would cut this supply (on the proven state when
    /// the supply is proven, else with Unknown components counted as up).
    pub single_points_of_failure: Vec<String>,
    /// For people: `2N`, or `unverified: N proven, 2N if the 4 unknown components are up`.
    pub summary: String,
}

/// Health of one component.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComponentHealth {
    pub id: String,
    pub kind: Kind,
    pub state: CompState,
    /// Why the state is what it is (empty when Up and monitored).
    pub reason: String,
    /// Whether a bound point tells its state (else it is assumed up: unmonitored).
    pub monitored: bool,
    /// Since when it has been Unknown (or, once Down for that, since when it was).
    pub unknown_since_ms: Option<i64>,
    /// Energised, from measurement where there is one; `None` unknown or not a power
    /// component (see [`crate::energy`]).
    pub energised: Option<bool>,
    /// The role that decided `energised`.
    pub energised_by: Option<String>,
    /// Switch position and measurement disagree: what they say.
    pub mismatch: Option<String>,
    /// Available with Unknown components counted as up (used for impact and suppression).
    pub available: bool,
    /// Available through Up components only.
    pub proven_available: bool,
    /// Effective load (measured or estimated) per subsystem.
    pub load: [Option<f64>; 3],
    pub supply: Vec<SupplyHealth>,
}

impl ComponentHealth {
    pub fn supply(&self, s: Subsystem) -> Option<&SupplyHealth> {
        self.supply.iter().find(|h| h.subsystem == s)
    }
}

/// Health of a whole subsystem.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubsystemHealth {
    pub subsystem: Subsystem,
    pub designed: Redundancy,
    /// Worst proven level over the consumers.
    pub current: Redundancy,
    /// Worst level over the consumers with Unknown components counted as up.
    pub if_unknown_up: Redundancy,
    /// Every consumer's level is verified (Unknown components change no answer).
    pub verified: bool,
    /// Unknown components the consumers depend on, sorted.
    pub unverified: Vec<String>,
    /// Consumers whose level is not verified.
    pub unverified_consumers: Vec<String>,
    /// Consumers the level is taken over (racks, normally).
    pub consumers: u32,
    /// Fewest proven live paths of any consumer.
    pub min_live_paths: u32,
    /// Consumers known to have lost this supply.
    pub lost: Vec<String>,
    /// Consumers still supplied whose level (with Unknown counted as up) is below their
    /// designed level: known degradation.
    pub degraded: Vec<String>,
    /// Worst spare capacity after one more failure over every group in the subsystem.
    pub spare_after_one: Option<f64>,
    /// The component whose group has that worst spare.
    pub spare_after_one_at: Option<String>,
    /// Union of the consumers' single points of failure.
    pub single_points_of_failure: Vec<String>,
    /// Components of the subsystem whose state is unknown / in maintenance / down.
    pub unknown: Vec<String>,
    pub maintenance: Vec<String>,
    pub down: Vec<String>,
    /// Components of the subsystem with no state point bound (assumed up).
    pub unmonitored: Vec<String>,
    /// For people, as [`SupplyHealth::summary`].
    pub summary: String,
}

/// Buffer-tank ride-through at the current heat load.
///
/// The tank supplies what the running chillers cannot: stored cooling
/// `E = volume x level x 1000 kg/m3 x 4.186 kJ/(kg K) x (max_supply_c - tank temperature)`
/// (kJ), drawn at the deficit `D = heat load - capacity of the chillers that are Up` (kW), lasts
/// `E / D` seconds. With no deficit the tank is not drawn (`drawing` false, `minutes` `None`);
/// `minutes_if_chillers_stop` is always `E / heat load`, the figure for a stop of every
/// chiller (e.g. a loss of both utility lines: chillers are not on UPS).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RideThrough {
    pub tank: String,
    /// Minutes the stored water lasts at the present deficit; `None` when the tank is not
    /// drawn (no deficit) or the tank temperature or heat load is unknown; `Some(0)` when the
    /// tank is not available.
    pub minutes: Option<f64>,
    /// Minutes at the full heat load, as if every chiller stopped now.
    pub minutes_if_chillers_stop: Option<f64>,
    /// Whether the chillers that are Up cannot carry the heat load (the tank is being drawn).
    pub drawing: bool,
    pub heat_load_kw: Option<f64>,
    /// Rated capacity of the chillers that are Up (a chiller without `rating_kw` counts 0).
    pub chiller_capacity_kw: f64,
    /// Heat load minus that capacity, when the heat load is known.
    pub deficit_kw: Option<f64>,
    pub tank_temp_c: Option<f64>,
    pub level_pct: Option<f64>,
    /// Chillers proven available (Up, with their supply).
    pub chillers_available: u32,
    /// Chillers whose state is Unknown (not counted as available).
    pub chillers_unknown: u32,
    pub chillers_total: u32,
}

/// The result of one evaluation of the site.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// In the order of [`Site::components`].
    pub components: Vec<ComponentHealth>,
    /// Power, cooling, network (only those present in the site).
    pub subsystems: Vec<SubsystemHealth>,
    pub ride_through: Vec<RideThrough>,
}

impl Evaluation {
    pub fn subsystem(&self, s: Subsystem) -> Option<&SubsystemHealth> {
        self.subsystems.iter().find(|h| h.subsystem == s)
    }

    pub fn component<'a>(&'a self, site: &Site, id: &str) -> Option<&'a ComponentHealth> {
        site.index_of(id).map(|i| &self.components[i])
    }
}

/// A change of level caused by a what-if.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LevelChange {
    pub id: String,
    pub subsystem: Subsystem,
    pub before: Redundancy,
    pub after: Redundancy,
}

/// The answer to "what if these components failed".
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WhatIf {
    pub failed: Vec<String>,
    /// Components (other than the failed ones) that lose their supply, per subsystem.
    pub loses_power: Vec<String>,
    pub loses_cooling: Vec<String>,
    pub loses_network: Vec<String>,
    /// Components still supplied whose level drops.
    pub loses_redundancy: Vec<LevelChange>,
    /// The whole evaluation after the failures.
    pub after: Evaluation,
}

/// A what-if named a component that is not in the site.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown component `{0}`")]
pub struct UnknownComponent(pub String);

// ------------------------------------------------------------------ engine

struct Ctx<'a> {
    site: &'a Site,
    conducts: Vec<bool>,
    avail: Vec<bool>,
    /// Effective load per component and subsystem.
    load: Vec<[Option<f64>; 3]>,
    capacity: bool,
    // scratch
    mark: Vec<u32>,
    stamp: u32,
    local: Vec<bool>,
    flow: Flow,
}

fn availability(site: &Site, conducts: &[bool]) -> Vec<bool> {
    let mut avail = vec![false; conducts.len()];
    for (i, c) in site.components.iter().enumerate() {
        avail[i] = conducts[i]
            && c.groups
                .iter()
                .all(|g| g.members.iter().filter(|&&m| avail[m]).count() >= g.need as usize);
    }
    avail
}

fn effective_loads(site: &Site, states: &[ComponentState]) -> Vec<[Option<f64>; 3]> {
    let n = site.components.len();
    let mut load: Vec<[Option<f64>; 3]> = states.iter().map(|s| s.load).collect();
    let mut est: Vec<[Option<f64>; 3]> = vec![[None; 3]; n];
    for i in (0..n).rev() {
        for s in Subsystem::ALL {
            let si = s.idx();
            if load[i][si].is_none() {
                load[i][si] = est[i][si];
            }
        }
        let c = &site.components[i];
        for g in &c.groups {
            let si = g.subsystem.idx();
            if let Some(l) = load[i][si] {
                let share = l / g.members.len() as f64;
                for &m in &g.members {
                    *est[m][si].get_or_insert(0.0) += share;
                }
            }
        }
    }
    load
}

fn count_level(a: usize, k: usize) -> Redundancy {
    if a >= 2 * k {
        Redundancy::TwoN
    } else if a > k {
        Redundancy::NPlus1
    } else if a == k {
        Redundancy::N
    } else {
        Redundancy::BelowN
    }
}

impl<'a> Ctx<'a> {
    fn new(site: &'a Site, conducts: Vec<bool>, states: &[ComponentState], capacity: bool) -> Self {
        let n = site.components.len();
        let avail = availability(site, &conducts);
        let load = if capacity {
            effective_loads(site, states)
        } else {
            vec![[None; 3]; n]
        };
        Ctx {
            site,
            conducts,
            avail,
            load,
            capacity,
            mark: vec![0; n],
            stamp: 0,
            local: vec![false; n],
            flow: Flow::default(),
        }
    }

    fn supplied(&self, i: CompIdx, s: Subsystem) -> bool {
        self.conducts[i]
            && self.site.components[i]
                .groups
                .iter()
                .filter(|g| g.subsystem == s)
                .all(|g| g.members.iter().filter(|&&m| self.avail[m]).count() >= g.need as usize)
    }

    /// Demand on a group (sum of member loads) and (level, spare-after-one) of the group.
    fn group_eval(&self, g: &crate::model::Group) -> (Redundancy, Option<f64>) {
        let si = g.subsystem.idx();
        let avail: Vec<CompIdx> = g
            .members
            .iter()
            .copied()
            .filter(|&m| self.avail[m])
            .collect();
        let need = g.need as usize;
        let mut k = need;
        let mut spare = None;
        let mut overloaded = false;
        if self.capacity {
            let demand: Option<f64> = g
                .members
                .iter()
                .filter_map(|&m| self.load[m][si])
                .fold(None, |acc, x| Some(acc.unwrap_or(0.0) + x));
            let ratings: Option<Vec<f64>> = avail
                .iter()
                .map(|&m| self.site.components[m].rating)
                .collect();
            if let (Some(d), Some(mut r)) = (demand, ratings) {
                r.sort_by(f64::total_cmp);
                let total: f64 = r.iter().sum();
                let max = r.last().copied().unwrap_or(0.0);
                spare = Some(total - max - d);
                if total < d {
                    overloaded = true;
                } else {
                    // Fewest members that can carry the demand (largest first), so that a
                    // failure can only raise it.
                    let mut acc = 0.0;
                    let mut kc = 0;
                    for x in r.iter().rev() {
                        if acc >= d {
                            break;
                        }
                        acc += x;
                        kc += 1;
                    }
                    k = k.max(kc);
                }
            }
        }
        let lvl = if overloaded {
            Redundancy::BelowN
        } else {
            count_level(avail.len(), k)
        };
        (lvl, spare)
    }

    /// Available ancestors reached through the groups of `c` in `s`, in topological order.
    fn closure(&mut self, c: CompIdx, s: Subsystem) -> Vec<CompIdx> {
        self.stamp += 1;
        let stamp = self.stamp;
        let mut stack: Vec<CompIdx> = Vec::new();
        for g in self.site.components[c]
            .groups
            .iter()
            .filter(|g| g.subsystem == s)
        {
            for &m in &g.members {
                if self.avail[m] && self.mark[m] != stamp {
                    self.mark[m] = stamp;
                    stack.push(m);
                }
            }
        }
        let mut out = Vec::new();
        while let Some(x) = stack.pop() {
            out.push(x);
            for g in &self.site.components[x].groups {
                for &m in &g.members {
                    if self.avail[m] && self.mark[m] != stamp {
                        self.mark[m] = stamp;
                        stack.push(m);
                    }
                }
            }
        }
        out.sort_unstable();
        out
    }

    /// Whether `c` stays supplied in `s` when `failed` fails, computed on the closure `anc`
    /// (marked with the current stamp).
    fn survives_without(
        &mut self,
        c: CompIdx,
        s: Subsystem,
        anc: &[CompIdx],
        failed: CompIdx,
    ) -> bool {
        let stamp = self.stamp;
        for &x in anc {
            let ok = x != failed
                && self.site.components[x].groups.iter().all(|g| {
                    g.members
                        .iter()
                        .filter(|&&m| self.mark[m] == stamp && self.local[m])
                        .count()
                        >= g.need as usize
                });
            self.local[x] = ok;
        }
        self.site.components[c]
            .groups
            .iter()
            .filter(|g| g.subsystem == s)
            .all(|g| {
                g.members
                    .iter()
                    .filter(|&&m| self.mark[m] == stamp && self.local[m])
                    .count()
                    >= g.need as usize
            })
    }

    /// Node-disjoint paths from sources to `c` through the closure (places uncapacitated).
    fn live_paths(&mut self, c: CompIdx, s: Subsystem, anc: &[CompIdx]) -> u32 {
        if anc.is_empty() {
            return 0;
        }
        let site = self.site;
        let f = &mut self.flow;
        // Local nodes: for each ancestor j: in = 2j, out = 2j+1; source = 2n, sink = 2n+1.
        let n = anc.len();
        let nodes = 2 * n + 2;
        let pos = |x: CompIdx| anc.binary_search(&x).ok();
        let (src, sink) = (2 * n, 2 * n + 1);
        f.reset(nodes);
        for (j, &x) in anc.iter().enumerate() {
            let comp = &site.components[x];
            let node_cap = if comp.kind.is_passive() { Flow::INF } else { 1 };
            f.add(2 * j, 2 * j + 1, node_cap);
            if comp.groups.is_empty() {
                f.add(src, 2 * j, 1);
            }
            for g in &comp.groups {
                for &m in &g.members {
                    if let Some(p) = pos(m) {
                        f.add(2 * p + 1, 2 * j, Flow::INF);
                    }
                }
            }
        }
        for g in site.components[c]
            .groups
            .iter()
            .filter(|g| g.subsystem == s)
        {
            for &m in &g.members {
                if let Some(p) = pos(m) {
                    f.add(2 * p + 1, sink, Flow::INF);
                }
            }
        }
        f.max_flow(nodes, src, sink)
    }
}

/// Reused buffers of the max-flow in [`Ctx::live_paths`].
#[derive(Default)]
struct Flow {
    adj: Vec<Vec<usize>>,
    to: Vec<usize>,
    cap: Vec<u32>,
    prev: Vec<usize>,
    seen: Vec<bool>,
    q: std::collections::VecDeque<usize>,
}

impl Flow {
    /// Capacity of an edge that never limits the flow (wires, places).
    const INF: u32 = u32::MAX / 4;

    /// Empties the graph for `nodes` nodes, keeping the buffers.
    fn reset(&mut self, nodes: usize) {
        if self.adj.len() < nodes {
            self.adj.resize_with(nodes, Vec::new);
        }
        for a in &mut self.adj[..nodes] {
            a.clear();
        }
        self.to.clear();
        self.cap.clear();
    }

    /// Adds the edge `u -> v` of capacity `c` and its residual twin `v -> u` (index `e ^ 1`).
    fn add(&mut self, u: usize, v: usize, c: u32) {
        self.adj[u].push(self.to.len());
        self.to.push(v);
        self.cap.push(c);
        self.adj[v].push(self.to.len());
        self.to.push(u);
        self.cap.push(0);
    }

    /// Edmonds-Karp: augments along shortest paths until the sink is unreachable.
    fn max_flow(&mut self, nodes: usize, src: usize, sink: usize) -> u32 {
        let mut flow = 0u32;
        while self.augmenting_path(nodes, src, sink) {
            let mut v = sink;
            while self.prev[v] != Self::NONE {
                let e = self.prev[v];
                self.cap[e] -= 1;
                self.cap[e ^ 1] += 1;
                v = self.to[e ^ 1];
            }
            flow += 1;
        }
        flow
    }

    const NONE: usize = usize::MAX;

    /// Breadth-first search over edges with capacity left; `prev` holds the path found.
    fn augmenting_path(&mut self, nodes: usize, src: usize, sink: usize) -> bool {
        self.prev.clear();
        self.prev.resize(nodes, Self::NONE);
        self.seen.clear();
        self.seen.resize(nodes, false);
        self.seen[src] = true;
        self.q.clear();
        self.q.push_back(src);
        while let Some(u) = self.q.pop_front() {
            if u == sink {
                break;
            }
            for &e in &self.adj[u] {
                let v = self.to[e];
                if self.cap[e] > 0 && !self.seen[v] {
                    self.seen[v] = true;
                    self.prev[v] = e;
                    self.q.push_back(v);
                }
            }
        }
        self.seen[sink]
    }
}

/// A component's groups in one subsystem: members and need of each (see [`compute_with`]).
type Feeds<'a> = (Subsystem, Vec<(&'a [CompIdx], u32)>);

fn feeds_of<'a>(s: Subsystem, groups: &[&'a crate::model::Group]) -> Feeds<'a> {
    (
        s,
        groups
            .iter()
            .map(|g| (g.members.as_slice(), g.need))
            .collect(),
    )
}

#[derive(Clone, Debug, PartialEq)]
struct PairResult {
    supplied: bool,
    level: Redundancy,
    paths: u32,
    spare: Option<f64>,
    spofs: Vec<CompIdx>,
}

fn pairs_of(site: &Site, i: CompIdx) -> Vec<Subsystem> {
    let c = &site.components[i];
    let mut v: Vec<Subsystem> = Subsystem::ALL
        .into_iter()
        .filter(|s| c.consumes(*s))
        .collect();
    if let Some(own) = c.kind.subsystem()
        && !v.contains(&own)
    {
        v.insert(0, own);
    }
    v.sort();
    v
}

/// Computes every (component, subsystem) pair. `levels[i][s]` is filled in topological order.
///
/// A supplied component's level, spare, single points of failure and live paths depend only
/// on its groups in the subsystem (their members, what is upstream of them, and the levels of
/// members computed before it, components being in topological order), not on the component
/// itself: components fed alike, such as the racks of a row, share one computation
/// (`same_feeds`), which on a 10,000-rack site saves most of the tick.
/// `share: false` computes every component for itself (the reference the tests compare with).
fn compute_with(
    ctx: &mut Ctx<'_>,
    with_spofs: bool,
    share: bool,
) -> Vec<Vec<(Subsystem, PairResult)>> {
    let site = ctx.site;
    let n = site.components.len();
    let mut levels: Vec<[Redundancy; 3]> = vec![[Redundancy::BelowN; 3]; n];
    let mut out = Vec::with_capacity(n);
    let mut same_feeds: HashMap<Feeds<'_>, PairResult> = HashMap::new();
    for i in 0..n {
        let c = &site.components[i];
        let mut res = Vec::new();
        for s in pairs_of(site, i) {
            let supplied = ctx.supplied(i, s);
            let groups: Vec<&crate::model::Group> =
                c.groups.iter().filter(|g| g.subsystem == s).collect();
            let mut r = PairResult {
                supplied,
                level: Redundancy::BelowN,
                paths: 0,
                spare: None,
                spofs: Vec::new(),
            };
            if groups.is_empty() {
                // A source.
                r.level = if supplied {
                    Redundancy::N
                } else {
                    Redundancy::BelowN
                };
                r.paths = u32::from(supplied && ctx.avail[i]);
            } else if supplied {
                let feeds = share.then(|| feeds_of(s, &groups));
                r = match feeds.as_ref().and_then(|f| same_feeds.get(f)) {
                    Some(known) => known.clone(),
                    None => {
                        let r = supplied_through(ctx, (i, s), &groups, &levels, with_spofs);
                        if let Some(f) = feeds {
                            same_feeds.insert(f, r.clone());
                        }
                        r
                    }
                };
            }
            levels[i][s.idx()] = r.level;
            res.push((s, r));
        }
        out.push(res);
    }
    out
}

/// The result of component `i`, supplied in `s` through `groups` (its groups in `s`): the
/// worst level of its groups, the smallest spare, its single points of failure (with
/// `with_spofs`) and its live paths. `levels` holds the levels of the components before `i`.
fn supplied_through(
    ctx: &mut Ctx<'_>,
    (i, s): (CompIdx, Subsystem),
    groups: &[&crate::model::Group],
    levels: &[[Redundancy; 3]],
    with_spofs: bool,
) -> PairResult {
    let site = ctx.site;
    let mut r = PairResult {
        supplied: true,
        level: Redundancy::BelowN,
        paths: 0,
        spare: None,
        spofs: Vec::new(),
    };
    let mut lvl = Redundancy::TwoN;
    for g in groups {
        let (gl, spare) = ctx.group_eval(g);
        let m0 = g.members[0];
        let gl = if g.members.len() == 1 && g.need == 1 && site.components[m0].kind.is_passive() {
            // A place passes the level of its own supply through.
            if ctx.avail[m0] {
                levels[m0][g.subsystem.idx()]
            } else {
                Redundancy::BelowN
            }
        } else {
            gl
        };
        lvl = lvl.min(gl);
        r.spare = match (r.spare, spare) {
            (Some(a), Some(b)) => Some(f64::min(a, b)),
            (a, b) => a.or(b),
        };
    }
    let anc = ctx.closure(i, s);
    if with_spofs {
        for &a in &anc {
            if site.components[a].kind.is_passive() {
                continue;
            }
            if !ctx.survives_without(i, s, &anc, a) {
                r.spofs.push(a);
            }
        }
    }
    if !r.spofs.is_empty() {
        lvl = lvl.min(Redundancy::N);
    }
    r.level = lvl;
    r.paths = ctx.live_paths(i, s, &anc);
    r
}

/// The components that take part in subsystem `s` (its own equipment and what consumes it),
/// and its consumers: those that consume `s` and supply nothing in it (the racks, for power),
/// or every member when none does.
fn members_and_consumers(site: &Site, s: Subsystem) -> (Vec<CompIdx>, Vec<CompIdx>) {
    let n = site.components.len();
    let members: Vec<CompIdx> = (0..n)
        .filter(|&i| {
            site.components[i].kind.subsystem() == Some(s) || site.components[i].consumes(s)
        })
        .collect();
    let mut consumers: Vec<CompIdx> = members
        .iter()
        .copied()
        .filter(|&i| {
            site.components[i].consumes(s)
                && !site.children[i]
                    .iter()
                    .any(|&(d, gi)| site.components[d].groups[gi].subsystem == s)
        })
        .collect();
    if consumers.is_empty() {
        consumers = members.clone();
    }
    (members, consumers)
}

/// Unknown components among the ancestors of `c` reached through its groups in `s` (and, from
/// there, through every group of each ancestor), sorted by index.
fn unknown_ancestors(
    site: &Site,
    states: &[ComponentState],
    c: CompIdx,
    s: Subsystem,
    mark: &mut [u32],
    stamp: u32,
) -> Vec<CompIdx> {
    let mut stack: Vec<CompIdx> = Vec::new();
    let mut out = Vec::new();
    for g in site.components[c]
        .groups
        .iter()
        .filter(|g| g.subsystem == s)
    {
        for &m in &g.members {
            if mark[m] != stamp {
                mark[m] = stamp;
                stack.push(m);
            }
        }
    }
    while let Some(x) = stack.pop() {
        if states[x].state == CompState::Unknown {
            out.push(x);
        }
        for g in &site.components[x].groups {
            for &m in &g.members {
                if mark[m] != stamp {
                    mark[m] = stamp;
                    stack.push(m);
                }
            }
        }
    }
    out.sort_unstable();
    out
}

/// The text of a level for people (see [`SupplyHealth::summary`]).
fn summary_text(current: Redundancy, if_up: Redundancy, verified: bool, unknown: usize) -> String {
    let n = |k: usize| {
        if k == 1 {
            "the 1 unknown component is".to_owned()
        } else {
            format!("the {k} unknown components are")
        }
    };
    if verified {
        current.to_string()
    } else {
        format!("unverified: {current} proven, {if_up} if {} up", n(unknown))
    }
}

/// Evaluates the whole site from the component states (see the module docs for definitions).
pub fn evaluate(site: &Site, states: &[ComponentState]) -> Evaluation {
    evaluate_with(site, states, true)
}

/// [`evaluate`] computing every component for itself, without sharing the results of
/// components fed alike: the reference the property tests compare [`evaluate`] with.
#[doc(hidden)]
pub fn evaluate_without_sharing(site: &Site, states: &[ComponentState]) -> Evaluation {
    evaluate_with(site, states, false)
}

fn evaluate_with(site: &Site, states: &[ComponentState], share: bool) -> Evaluation {
    assert_eq!(
        states.len(),
        site.components.len(),
        "one state per component, in site order"
    );
    let n = site.components.len();
    // With Unknown counted as up (impact), and proven (Up only). Without Unknown components
    // the two are the same computation.
    let conducts: Vec<bool> = states.iter().map(|s| s.state.conducts()).collect();
    let mut ctx = Ctx::new(site, conducts, states, true);
    let optimistic = compute_with(&mut ctx, true, share);
    let any_unknown = states.iter().any(|s| s.state == CompState::Unknown);
    let (proven, proven_avail) = if any_unknown {
        let conducts: Vec<bool> = states.iter().map(|s| s.state == CompState::Up).collect();
        let mut pctx = Ctx::new(site, conducts, states, true);
        let p = compute_with(&mut pctx, true, share);
        (p, pctx.avail)
    } else {
        (optimistic.clone(), ctx.avail.clone())
    };
    let design = || -> Vec<Vec<(Redundancy, u32)>> {
        let mut dctx = Ctx::new(site, vec![true; n], states, false);
        compute_with(&mut dctx, true, share)
            .into_iter()
            .map(|v| v.into_iter().map(|(_, r)| (r.level, r.paths)).collect())
            .collect()
    };
    let unshared;
    let designed = if share {
        site.designed.get_or_init(design)
    } else {
        unshared = design();
        &unshared
    };
    let views = Views {
        site,
        states,
        optimistic: &optimistic,
        proven: &proven,
        designed,
        avail: &ctx.avail,
        proven_avail: &proven_avail,
        load: &ctx.load,
        any_unknown,
    };
    let (components, unknown_of) = views.components();
    let subsystems = Subsystem::ALL
        .into_iter()
        .filter_map(|s| views.subsystem((&components, &unknown_of), s))
        .collect();
    let ride_through = views.ride_through();
    Evaluation {
        components,
        subsystems,
        ride_through,
    }
}

/// The three computations of one evaluation (with Unknown counted as up, proven, designed) and
/// the inputs every part of the result is built from.
struct Views<'a> {
    site: &'a Site,
    states: &'a [ComponentState],
    optimistic: &'a [Vec<(Subsystem, PairResult)>],
    proven: &'a [Vec<(Subsystem, PairResult)>],
    designed: &'a [Vec<(Redundancy, u32)>],
    /// Available with Unknown counted as up.
    avail: &'a [bool],
    proven_avail: &'a [bool],
    load: &'a [[Option<f64>; 3]],
    any_unknown: bool,
}

impl Views<'_> {
    fn ids(&self, v: &[CompIdx]) -> Vec<String> {
        v.iter()
            .map(|&a| self.site.components[a].id.clone())
            .collect()
    }

    /// Health of every component, with one [`SupplyHealth`] per subsystem it takes part in;
    /// and, in the same order, the Unknown ancestors of each supply as indices (the subsystems
    /// aggregate those rather than the ids: no string copied or compared per consumer).
    fn components(&self) -> (Vec<ComponentHealth>, Vec<Vec<Vec<CompIdx>>>) {
        let (site, states) = (self.site, self.states);
        let n = site.components.len();
        let mut mark = vec![0u32; n];
        let mut stamp = 0u32;
        let mut components = Vec::with_capacity(n);
        let mut unknown_of = Vec::with_capacity(n);
        for (i, c) in site.components.iter().enumerate() {
            let mut supply = Vec::with_capacity(self.optimistic[i].len());
            let mut unknowns = Vec::with_capacity(self.optimistic[i].len());
            for (((s, o), (_, p)), &(dl, dp)) in self.optimistic[i]
                .iter()
                .zip(&self.proven[i])
                .zip(&self.designed[i])
            {
                let unknown = if self.any_unknown {
                    stamp += 1;
                    unknown_ancestors(site, states, i, *s, &mut mark, stamp)
                } else {
                    Vec::new()
                };
                let verified = p.level == o.level && p.supplied == o.supplied;
                let spofs = if p.supplied { &p.spofs } else { &o.spofs };
                supply.push(SupplyHealth {
                    subsystem: *s,
                    supplied: o.supplied,
                    proven_supplied: p.supplied,
                    designed: c.design.unwrap_or(dl),
                    current: p.level,
                    if_unknown_up: o.level,
                    verified,
                    summary: summary_text(p.level, o.level, verified, unknown.len()),
                    unverified: self.ids(&unknown),
                    designed_paths: dp,
                    live_paths: p.paths,
                    live_paths_if_unknown_up: o.paths,
                    spare_after_one: p.spare,
                    single_points_of_failure: self.ids(spofs),
                });
                unknowns.push(unknown);
            }
            unknown_of.push(unknowns);
            let st = &states[i];
            components.push(ComponentHealth {
                id: c.id.clone(),
                kind: c.kind,
                state: st.state,
                reason: st.reason.clone(),
                monitored: st.monitored,
                unknown_since_ms: st.unknown_since_ms,
                energised: st.energised,
                energised_by: st.energised_by.clone(),
                mismatch: st.mismatch.clone(),
                available: self.avail[i],
                proven_available: self.proven_avail[i],
                load: self.load[i],
                supply,
            });
        }
        (components, unknown_of)
    }

    /// The ids of `idx`, sorted (each component once).
    fn sorted_ids(&self, mut idx: Vec<CompIdx>) -> Vec<String> {
        idx.sort_unstable();
        idx.dedup();
        let mut ids = self.ids(&idx);
        ids.sort_unstable();
        ids
    }

    /// Health of subsystem `s` from its consumers' supply (`None` when nothing takes part).
    fn subsystem(
        &self,
        (components, unknown_of): (&[ComponentHealth], &[Vec<Vec<CompIdx>>]),
        s: Subsystem,
    ) -> Option<SubsystemHealth> {
        let (members, consumers) = members_and_consumers(self.site, s);
        if members.is_empty() {
            return None;
        }
        let mut h = SubsystemHealth {
            subsystem: s,
            designed: Redundancy::TwoN,
            current: Redundancy::TwoN,
            if_unknown_up: Redundancy::TwoN,
            verified: true,
            unverified: Vec::new(),
            unverified_consumers: Vec::new(),
            consumers: consumers.len() as u32,
            min_live_paths: u32::MAX,
            lost: Vec::new(),
            degraded: Vec::new(),
            spare_after_one: None,
            spare_after_one_at: None,
            single_points_of_failure: Vec::new(),
            unknown: Vec::new(),
            maintenance: Vec::new(),
            down: Vec::new(),
            unmonitored: Vec::new(),
            summary: String::new(),
        };
        self.add_consumers(&mut h, (components, unknown_of), &consumers);
        self.add_members(&mut h, components, &members);
        h.summary = summary_text(h.current, h.if_unknown_up, h.verified, h.unverified.len());
        Some(h)
    }

    /// The levels, losses and single points of failure of a subsystem: the worst over its
    /// consumers.
    fn add_consumers(
        &self,
        h: &mut SubsystemHealth,
        (components, unknown_of): (&[ComponentHealth], &[Vec<Vec<CompIdx>>]),
        consumers: &[CompIdx],
    ) {
        let s = h.subsystem;
        let (mut spofs, mut unverified) = (Vec::new(), Vec::new());
        for &i in consumers {
            let Some(k) = components[i].supply.iter().position(|x| x.subsystem == s) else {
                continue;
            };
            let sh = &components[i].supply[k];
            h.designed = h.designed.min(sh.designed);
            h.current = h.current.min(sh.current);
            h.if_unknown_up = h.if_unknown_up.min(sh.if_unknown_up);
            h.min_live_paths = h.min_live_paths.min(sh.live_paths);
            if !sh.supplied {
                h.lost.push(self.site.components[i].id.clone());
            } else if sh.if_unknown_up < sh.designed {
                h.degraded.push(self.site.components[i].id.clone());
            }
            if !sh.verified {
                h.verified = false;
                h.unverified_consumers
                    .push(self.site.components[i].id.clone());
            }
            // The same lists as the consumer's own (`unverified`, `single_points_of_failure`),
            // as indices.
            unverified.extend_from_slice(&unknown_of[i][k]);
            let (o, p) = (&self.optimistic[i][k].1, &self.proven[i][k].1);
            spofs.extend_from_slice(if p.supplied { &p.spofs } else { &o.spofs });
        }
        if h.min_live_paths == u32::MAX {
            h.min_live_paths = 0;
        }
        h.single_points_of_failure = self.sorted_ids(spofs);
        h.unverified = self.sorted_ids(unverified);
    }

    /// The smallest spare capacity and the subsystem's own equipment by state.
    fn add_members(
        &self,
        h: &mut SubsystemHealth,
        components: &[ComponentHealth],
        members: &[CompIdx],
    ) {
        let (site, states, s) = (self.site, self.states, h.subsystem);
        for &i in members {
            if let Some(sh) = components[i].supply(s)
                && let Some(sp) = sh.spare_after_one
                && h.spare_after_one.is_none_or(|cur| sp < cur)
            {
                h.spare_after_one = Some(sp);
                h.spare_after_one_at = Some(site.components[i].id.clone());
            }
            if site.components[i].kind.subsystem() == Some(s) {
                let id = site.components[i].id.clone();
                if !states[i].monitored {
                    h.unmonitored.push(id.clone());
                }
                match states[i].state {
                    CompState::Unknown => h.unknown.push(id),
                    CompState::Maintenance => h.maintenance.push(id),
                    CompState::Down => h.down.push(id),
                    CompState::Up => {}
                }
            }
        }
    }

    /// Ride-through of every buffer tank on the proven chiller capacity.
    fn ride_through(&self) -> Vec<RideThrough> {
        let (site, states, n) = (self.site, self.states, self.site.components.len());
        let chillers: Vec<CompIdx> = (0..n)
            .filter(|&i| site.components[i].kind == Kind::Chiller)
            .collect();
        let plant = ChillerPlant {
            available: chillers.iter().filter(|&&i| self.proven_avail[i]).count() as u32,
            unknown: chillers
                .iter()
                .filter(|&&i| states[i].state == CompState::Unknown)
                .count() as u32,
            total: chillers.len() as u32,
            capacity: chillers
                .iter()
                .filter(|&&i| self.proven_avail[i])
                .map(|&i| site.components[i].rating.unwrap_or(0.0))
                .sum(),
        };
        let mut ride_through = Vec::new();
        for (i, c) in site.components.iter().enumerate() {
            if let Some(t) = &c.tank {
                ride_through.push(self.tank(i, t, &plant));
            }
        }
        ride_through
    }

    /// How long tank `i` carries the heat load the available chillers cannot.
    fn tank(&self, i: CompIdx, t: &crate::model::TankSpec, plant: &ChillerPlant) -> RideThrough {
        let states = self.states;
        let capacity = plant.capacity;
        let heat: Option<f64> = t
            .covers
            .iter()
            .filter_map(|&r| self.load[r][Subsystem::Cooling.idx()])
            .fold(None, |a, x| Some(a.unwrap_or(0.0) + x));
        let temp = states[i].readings.get("buffer_tank.temp").copied();
        let level = states[i].readings.get("buffer_tank.level_pct").copied();
        let stored_kj = temp.map(|tc| {
            if self.proven_avail[i] {
                let frac = level.map(|l| (l / 100.0).clamp(0.0, 1.0)).unwrap_or(1.0);
                t.volume_m3 * frac * 1000.0 * 4.186 * (t.max_supply_c - tc).max(0.0)
            } else {
                0.0
            }
        });
        let deficit = heat.map(|q| q - capacity);
        let drawing = deficit.is_some_and(|d| d > 0.0);
        let minutes = match (stored_kj, deficit) {
            (Some(e), Some(d)) if d > 0.0 => Some(e / d / 60.0),
            _ => None,
        };
        let minutes_if_chillers_stop = match (stored_kj, heat) {
            (Some(e), Some(q)) if q > 0.0 => Some(e / q / 60.0),
            _ => None,
        };
        RideThrough {
            tank: self.site.components[i].id.clone(),
            minutes,
            minutes_if_chillers_stop,
            drawing,
            heat_load_kw: heat,
            chiller_capacity_kw: capacity,
            deficit_kw: deficit,
            tank_temp_c: temp,
            level_pct: level,
            chillers_available: plant.available,
            chillers_unknown: plant.unknown,
            chillers_total: plant.total,
        }
    }
}

/// The chillers as the ride-through sees them: proven available ones and their capacity.
struct ChillerPlant {
    available: u32,
    unknown: u32,
    total: u32,
    capacity: f64,
}

/// Fails `failed` on a copy of the states and reports what loses supply or redundancy
/// compared with `before` (the evaluation of `states`, usually cached by the caller). Impact is
/// judged with Unknown components counted as up (`supplied`, `if_unknown_up`): an unreachable
/// meter does not make its feed's failure harmless.
pub fn what_if(
    site: &Site,
    states: &[ComponentState],
    before: &Evaluation,
    failed: &[&str],
) -> Result<WhatIf, UnknownComponent> {
    let mut idx = Vec::new();
    for id in failed {
        idx.push(
            site.index_of(id)
                .ok_or_else(|| UnknownComponent((*id).to_owned()))?,
        );
    }
    let mut copy = states.to_vec();
    for &i in &idx {
        copy[i].state = CompState::Down;
        copy[i].reason = "what-if: failed".into();
    }
    let after = evaluate(site, &copy);
    let mut w = WhatIf {
        failed: failed.iter().map(|s| (*s).to_owned()).collect(),
        loses_power: Vec::new(),
        loses_cooling: Vec::new(),
        loses_network: Vec::new(),
        loses_redundancy: Vec::new(),
        after: Evaluation {
            components: Vec::new(),
            subsystems: Vec::new(),
            ride_through: Vec::new(),
        },
    };
    for (i, (b, a)) in before.components.iter().zip(&after.components).enumerate() {
        if idx.contains(&i) {
            continue;
        }
        for (sb, sa) in b.supply.iter().zip(&a.supply) {
            if sb.supplied && !sa.supplied {
                match sb.subsystem {
                    Subsystem::Power => w.loses_power.push(b.id.clone()),
                    Subsystem::Cooling => w.loses_cooling.push(b.id.clone()),
                    Subsystem::Network => w.loses_network.push(b.id.clone()),
                }
            } else if sa.supplied && sa.if_unknown_up < sb.if_unknown_up {
                w.loses_redundancy.push(LevelChange {
                    id: b.id.clone(),
                    subsystem: sb.subsystem,
                    before: sb.if_unknown_up,
                    after: sa.if_unknown_up,
                });
            }
        }
    }
    w.after = after;
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A subsystem's single points of failure and unverified components, as they were
    /// defined before they were aggregated as indices: every consumer's own lists merged,
    /// sorted, each id once.
    fn merged(site: &Site, ev: &Evaluation, s: Subsystem) -> (Vec<String>, Vec<String>) {
        let (_, consumers) = members_and_consumers(site, s);
        let (mut spofs, mut unverified) = (Vec::new(), Vec::new());
        for i in consumers {
            if let Some(sh) = ev.components[i].supply(s) {
                spofs.extend(sh.single_points_of_failure.iter().cloned());
                unverified.extend(sh.unverified.iter().cloned());
            }
        }
        for v in [&mut spofs, &mut unverified] {
            v.sort();
            v.dedup();
        }
        (spofs, unverified)
    }

    #[test]
    fn subsystem_lists_are_their_consumers_lists_merged() {
        // Hazard: the subsystem's lists are built from indices for speed; a consumer left out
        // would hide a single point of failure or an unverified component from the operators.
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sites/demo.toml");
        let site = Site::load(&path).expect("demo loads");
        let now = 1_800_000_000_000;
        let live = crate::fixture::healthy_live(&site, now - 1000);
        let healthy = crate::state::component_states(&site, &live, &Default::default(), now);
        let mut mixed = healthy.clone();
        for (i, st) in mixed.iter_mut().enumerate() {
            if i % 7 == 3 {
                st.state = CompState::Unknown;
            } else if i % 11 == 5 {
                st.state = CompState::Down;
            }
        }
        let mut unknown = healthy.clone();
        for st in &mut unknown {
            st.state = CompState::Unknown;
        }
        // One Unknown component at a time, so that a list held by a single consumer is
        // checked too.
        let singles = (0..healthy.len()).step_by(3).map(|i| {
            let mut s = healthy.clone();
            s[i].state = CompState::Unknown;
            s
        });
        let cases: Vec<_> = [healthy.clone(), mixed, unknown]
            .into_iter()
            .chain(singles)
            .collect();
        for states in cases {
            let ev = evaluate(&site, &states);
            assert!(!ev.subsystems.is_empty());
            for h in &ev.subsystems {
                let (spofs, unverified) = merged(&site, &ev, h.subsystem);
                assert_eq!(h.single_points_of_failure, spofs, "{:?}", h.subsystem);
                assert_eq!(h.unverified, unverified, "{:?}", h.subsystem);
            }
        }
    }
}
