//! The site model: components, their supply groups and their point bindings, loaded from TOML.

use dcim_points::Role;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;

/// One of the three plant subsystems the redundancy engine reasons about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Subsystem {
    Power,
    Cooling,
    Network,
}

impl Subsystem {
    pub const ALL: [Subsystem; 3] = [Subsystem::Power, Subsystem::Cooling, Subsystem::Network];

    pub fn as_str(self) -> &'static str {
        match self {
            Subsystem::Power => "power",
            Subsystem::Cooling => "cooling",
            Subsystem::Network => "network",
        }
    }

    pub(crate) fn idx(self) -> usize {
        self as usize
    }

    /// Unit of ratings and loads in this subsystem.
    pub fn unit(self) -> &'static str {
        match self {
            Subsystem::Power => "kW",
            Subsystem::Cooling => "kW",
            Subsystem::Network => "Gbit/s",
        }
    }
}

impl fmt::Display for Subsystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a component is. The kind fixes its subsystem and the rules that derive its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    UtilityFeed,
    Generator,
    Switchgear,
    Ats,
    Transformer,
    Ups,
    BatteryRoom,
    Pdu,
    Chiller,
    ChilledWaterLoop,
    BufferTank,
    Crah,
    Room,
    Carrier,
    Mmr,
    Core,
    Row,
    /// An IT rack: a consumer of power, cooling and network.
    Rack,
}

impl Kind {
    /// The subsystem the component belongs to; `None` for racks, which consume all three.
    pub fn subsystem(self) -> Option<Subsystem> {
        use Kind::*;
        match self {
            UtilityFeed | Generator | Switchgear | Ats | Transformer | Ups | BatteryRoom | Pdu => {
                Some(Subsystem::Power)
            }
            Chiller | ChilledWaterLoop | BufferTank | Crah | Room => Some(Subsystem::Cooling),
            Carrier | Mmr | Core | Row => Some(Subsystem::Network),
            Rack => None,
        }
    }

    /// Places rather than equipment (rooms, rows): they pass the redundancy of their supply
    /// through to their consumers and are never reported as single points of failure.
    pub fn is_passive(self) -> bool {
        matches!(self, Kind::Room | Kind::Row)
    }

    pub fn as_str(self) -> &'static str {
        use Kind::*;
        match self {
            UtilityFeed => "utility_feed",
            Generator => "generator",
            Switchgear => "switchgear",
            Ats => "ats",
            Transformer => "transformer",
            Ups => "ups",
            BatteryRoom => "battery_room",
            Pdu => "pdu",
            Chiller => "chiller",
            ChilledWaterLoop => "chilled_water_loop",
            BufferTank => "buffer_tank",
            Crah => "crah",
            Room => "room",
            Carrier => "carrier",
            Mmr => "mmr",
            Core => "core",
            Row => "row",
            Rack => "rack",
        }
    }
}

/// Redundancy level, ordered from worst to best.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Redundancy {
    /// Less than what the load needs (or no supply at all).
    #[serde(rename = "below_n")]
    BelowN,
    /// Exactly what is needed: one more failure loses something.
    #[serde(rename = "N")]
    N,
    /// At least one spare, but not a full second system.
    #[serde(rename = "N+1")]
    NPlus1,
    /// A full second system.
    #[serde(rename = "2N")]
    TwoN,
}

impl Redundancy {
    pub fn as_str(self) -> &'static str {
        match self {
            Redundancy::BelowN => "below N",
            Redundancy::N => "N",
            Redundancy::NPlus1 => "N+1",
            Redundancy::TwoN => "2N",
        }
    }

    fn parse(s: &str) -> Option<Redundancy> {
        match s {
            "2N" | "2n" => Some(Redundancy::TwoN),
            "N+1" | "n+1" => Some(Redundancy::NPlus1),
            "N" | "n" => Some(Redundancy::N),
            _ => None,
        }
    }
}

impl fmt::Display for Redundancy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Index of a component in [`Site::components`].
pub type CompIdx = usize;

/// A "need `need` of these members" dependency of a component on upstream components.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Group {
    /// Subsystem of the members (all members of a group share it).
    pub subsystem: Subsystem,
    pub members: Vec<CompIdx>,
    pub need: u32,
}

/// A live point bound to a component by role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Binding {
    pub device: String,
    pub role: Role,
    /// Labels the sample must carry (a subset match), e.g. `feed = "A"`.
    pub labels: BTreeMap<String, String>,
}

/// Buffer tank parameters for ride-through.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TankSpec {
    pub volume_m3: f64,
    /// Highest water temperature still usable for cooling (°C).
    pub max_supply_c: f64,
    /// Rooms whose heat load the tank rides through (all rooms when empty in the file).
    pub covers: Vec<CompIdx>,
}

/// One piece of plant (or a place: room, row) in the site graph.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Component {
    pub id: String,
    pub name: Option<String>,
    pub kind: Kind,
    pub room: Option<String>,
    pub zone: Option<String>,
    /// Rating in the unit of its subsystem (kW, kW of cooling, Gbit/s).
    pub rating: Option<f64>,
    /// Nominal voltage (V) for voltage-based state rules.
    pub nominal_v: Option<f64>,
    /// Designed redundancy as declared in the file (overrides the topology-derived one).
    pub design: Option<Redundancy>,
    pub groups: Vec<Group>,
    pub bindings: Vec<Binding>,
    pub tank: Option<TankSpec>,
    /// 1-based line in the site file where it is declared (or generated).
    pub line: usize,
}

impl Component {
    /// Whether the component depends on anything in `s`.
    pub fn consumes(&self, s: Subsystem) -> bool {
        self.groups.iter().any(|g| g.subsystem == s)
    }
}

/// The loaded, validated site model. Components are in a topological order: every member of a
/// group has a smaller index than the component that depends on it.
#[derive(Debug, Clone, Serialize)]
pub struct Site {
    pub name: String,
    /// Samples older than this are treated as stale by the state rules.
    pub stale_after_ms: i64,
    /// Tolerance of voltages around `nominal_v` (fraction, default 0.10).
    pub voltage_tolerance: f64,
    pub components: Vec<Component>,
    #[serde(skip)]
    index: HashMap<String, CompIdx>,
    /// Same-group children of each component (who depends on it), by index.
    #[serde(skip)]
    pub(crate) children: Vec<Vec<(CompIdx, usize)>>,
    /// Designed (level, paths) per component and subsystem pair, computed once.
    #[serde(skip)]
    pub(crate) designed: std::sync::OnceLock<Vec<Vec<(Redundancy, u32)>>>,
    /// Floor plans and rack contents (empty when the file gives none).
    pub layout: crate::layout::Layout,
}

/// A site file that cannot be loaded: where, which field, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {field}: {message}")]
pub struct SiteError {
    pub file: String,
    pub line: usize,
    /// Dotted path of the field, e.g. `component[feed-a].upstream`.
    pub field: String,
    pub message: String,
}

// ---------------------------------------------------------------- raw TOML schema

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    site: RawSiteHeader,
    #[serde(default)]
    component: Vec<toml::Spanned<RawComponent>>,
    #[serde(default)]
    generate: Vec<toml::Spanned<RawGenerate>>,
    /// Floor plans (`crate::layout`).
    #[serde(default)]
    plan: Vec<toml::Spanned<crate::layout::RawPlan>>,
    /// Equipment mounted in racks (`crate::layout`).
    #[serde(default)]
    asset: Vec<toml::Spanned<crate::layout::RawAsset>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSiteHeader {
    name: String,
    #[serde(default = "default_stale")]
    stale_after_ms: i64,
    #[serde(default = "default_vtol")]
    voltage_tolerance_pct: f64,
    #[serde(default = "default_rack_units")]
    rack_units: u32,
}

fn default_rack_units() -> u32 {
    crate::layout::DEFAULT_RACK_UNITS
}

fn default_stale() -> i64 {
    30_000
}
fn default_vtol() -> f64 {
    10.0
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGenerate {
    count: u32,
    #[serde(default = "one")]
    start: u32,
    #[serde(default = "three")]
    digits: usize,
    #[serde(default = "ten")]
    per_group: u32,
    #[serde(default = "one")]
    group_start: u32,
    #[serde(default = "two")]
    group_digits: usize,
    template: toml::Table,
}

fn one() -> u32 {
    1
}
fn two() -> usize {
    2
}
fn three() -> usize {
    3
}
fn ten() -> u32 {
    10
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawComponent {
    id: String,
    kind: Kind,
    name: Option<String>,
    room: Option<String>,
    zone: Option<String>,
    rating_kw: Option<f64>,
    rating_gbps: Option<f64>,
    nominal_v: Option<f64>,
    design: Option<String>,
    #[serde(default)]
    upstream: Vec<RawUpstream>,
    #[serde(default = "one")]
    need: u32,
    device: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    points: Vec<RawBinding>,
    volume_m3: Option<f64>,
    max_supply_c: Option<f64>,
    #[serde(default)]
    covers: Vec<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawUpstream {
    Id(String),
    Group { of: Vec<String>, need: Option<u32> },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawBinding {
    Role(String),
    Full {
        role: String,
        device: Option<String>,
        #[serde(default)]
        labels: Option<BTreeMap<String, String>>,
    },
}

/// Line numbers of byte offsets in a source text: the newline positions are found once, so
/// each lookup is a binary search (a site of many components is not read once per component).
struct Lines(Vec<usize>);

impl Lines {
    fn new(src: &str) -> Lines {
        Lines(
            src.bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i)
                .collect(),
        )
    }

    /// The 1-based line of `offset`.
    fn line_of(&self, offset: usize) -> usize {
        self.0.partition_point(|&nl| nl < offset) + 1
    }
}

fn substitute(v: &toml::Value, n: &str, g: &str, i: u32) -> toml::Value {
    match v {
        toml::Value::String(s) => toml::Value::String(
            s.replace("{n}", n)
                .replace("{g}", g)
                .replace("{i}", &i.to_string()),
        ),
        toml::Value::Array(a) => {
            toml::Value::Array(a.iter().map(|x| substitute(x, n, g, i)).collect())
        }
        toml::Value::Table(t) => toml::Value::Table(
            t.iter()
                .map(|(k, x)| (k.clone(), substitute(x, n, g, i)))
                .collect(),
        ),
        other => other.clone(),
    }
}

impl Site {
    /// Reads and validates a site file.
    pub fn load(path: &Path) -> Result<Site, SiteError> {
        let file = path.display().to_string();
        let src = std::fs::read_to_string(path).map_err(|e| SiteError {
            file: file.clone(),
            line: 0,
            field: "(file)".into(),
            message: format!("cannot read: {e}"),
        })?;
        Site::from_toml_str(&src, &file)
    }

    /// Parses and validates a site model; `file` is only used in error messages.
    pub fn from_toml_str(src: &str, file: &str) -> Result<Site, SiteError> {
        let err = |line: usize, field: String, message: String| SiteError {
            file: file.to_owned(),
            line,
            field,
            message,
        };
        let lines = Lines::new(src);
        let raw: RawFile = toml::from_str(src).map_err(|e| {
            let line = e.span().map(|s| lines.line_of(s.start)).unwrap_or(0);
            err(line, "(toml)".into(), e.message().trim().to_owned())
        })?;
        if raw.site.stale_after_ms <= 0 {
            return Err(err(
                1,
                "site.stale_after_ms".into(),
                "expected a positive number of milliseconds".into(),
            ));
        }
        // Expand generators into plain components, remembering their lines.
        let mut comps: Vec<(RawComponent, usize)> = raw
            .component
            .into_iter()
            .map(|s| {
                let line = lines.line_of(s.span().start);
                (s.into_inner(), line)
            })
            .collect();
        for (gi, g) in raw.generate.into_iter().enumerate() {
            let line = lines.line_of(g.span().start);
            let g = g.into_inner();
            if g.per_group == 0 {
                return Err(err(
                    line,
                    format!("generate[{gi}].per_group"),
                    "expected a positive number".into(),
                ));
            }
            let tpl = toml::Value::Table(g.template);
            for i in 0..g.count {
                let n = format!("{:0w$}", g.start + i, w = g.digits);
                let gn = format!(
                    "{:0w$}",
                    g.group_start + i / g.per_group,
                    w = g.group_digits
                );
                let v = substitute(&tpl, &n, &gn, i);
                let c: RawComponent = v.try_into().map_err(|e: toml::de::Error| {
                    err(
                        line,
                        format!("generate[{gi}].template"),
                        e.message().trim().to_owned(),
                    )
                })?;
                comps.push((c, line));
            }
        }

        // Ids.
        let mut index = HashMap::new();
        for (i, (c, line)) in comps.iter().enumerate() {
            if c.id.is_empty()
                || !c
                    .id
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch))
            {
                return Err(err(
                    *line,
                    "component.id".into(),
                    format!("`{}`: expected letters, digits, `-`, `_` or `.`", c.id),
                ));
            }
            if index.insert(c.id.clone(), i).is_some() {
                return Err(err(
                    *line,
                    format!("component[{}].id", c.id),
                    "duplicate id: expected each component id once".into(),
                ));
            }
        }
        let all_rooms: Vec<usize> = comps
            .iter()
            .enumerate()
            .filter(|(_, (c, _))| c.kind == Kind::Room)
            .map(|(i, _)| i)
            .collect();

        // Resolve each component (indices in file order for now).
        let mut out: Vec<Component> = Vec::with_capacity(comps.len());
        for (c, line) in &comps {
            let line = *line;
            let f = |name: &str| format!("component[{}].{name}", c.id);
            let resolve = |id: &str, field: &str| -> Result<usize, SiteError> {
                index.get(id).copied().ok_or_else(|| {
                    err(
                        line,
                        f(field),
                        format!(
                            "unknown component `{id}`: expected the id of a declared component"
                        ),
                    )
                })
            };
            let mut groups = Vec::new();
            let mut default_members = Vec::new();
            for u in &c.upstream {
                match u {
                    RawUpstream::Id(id) => default_members.push(resolve(id, "upstream")?),
                    RawUpstream::Group { of, need } => {
                        let members = of
                            .iter()
                            .map(|id| resolve(id, "upstream"))
                            .collect::<Result<Vec<_>, _>>()?;
                        groups.push((members, need.unwrap_or(1)));
                    }
                }
            }
            if !default_members.is_empty() {
                groups.insert(0, (default_members, c.need));
            }
            let mut resolved_groups = Vec::new();
            for (members, need) in groups {
                if need == 0 || need as usize > members.len() {
                    return Err(err(
                        line,
                        f("need"),
                        format!(
                            "need = {need}: expected between 1 and the number of upstream members ({})",
                            members.len()
                        ),
                    ));
                }
                let mut sub = None;
                for &m in &members {
                    let (mc, _) = &comps[m];
                    let Some(ms) = mc.kind.subsystem() else {
                        return Err(err(
                            line,
                            f("upstream"),
                            format!("`{}` is a rack: expected a supplying component", mc.id),
                        ));
                    };
                    if *sub.get_or_insert(ms) != ms {
                        return Err(err(
                            line,
                            f("upstream"),
                            "members of one group are in different subsystems: expected one subsystem per group".into(),
                        ));
                    }
                }
                let mut dedup = members.clone();
                dedup.sort_unstable();
                dedup.dedup();
                if dedup.len() != members.len() {
                    return Err(err(
                        line,
                        f("upstream"),
                        "a component is listed twice in one group".into(),
                    ));
                }
                resolved_groups.push(Group {
                    subsystem: sub.expect("groups are non-empty"),
                    members,
                    need,
                });
            }
            if resolved_groups.iter().any(|g| g.members.is_empty()) {
                return Err(err(line, f("upstream"), "empty group".into()));
            }
            let mut bindings = Vec::new();
            for (bi, b) in c.points.iter().enumerate() {
                let (role, device, labels) = match b {
                    RawBinding::Role(r) => (r.clone(), None, None),
                    RawBinding::Full {
                        role,
                        device,
                        labels,
                    } => (role.clone(), device.clone(), labels.clone()),
                };
                let role = Role::new(&role)
                    .map_err(|e| err(line, f(&format!("points[{bi}].role")), e.to_string()))?;
                let device = device.or_else(|| c.device.clone()).ok_or_else(|| {
                    err(
                        line,
                        f(&format!("points[{bi}].device")),
                        "no device: expected `device` on the binding or on the component".into(),
                    )
                })?;
                bindings.push(Binding {
                    device,
                    role,
                    labels: labels.unwrap_or_else(|| c.labels.clone()),
                });
            }
            let design = match &c.design {
                None => None,
                Some(d) => Some(Redundancy::parse(d).ok_or_else(|| {
                    err(
                        line,
                        f("design"),
                        format!("`{d}`: expected \"2N\", \"N+1\" or \"N\""),
                    )
                })?),
            };
            let tank = if c.kind == Kind::BufferTank {
                let volume = c.volume_m3.filter(|v| *v > 0.0).ok_or_else(|| {
                    err(
                        line,
                        f("volume_m3"),
                        "expected a positive tank volume in m3".into(),
                    )
                })?;
                let covers = if c.covers.is_empty() {
                    all_rooms.clone()
                } else {
                    c.covers
                        .iter()
                        .map(|id| resolve(id, "covers"))
                        .collect::<Result<Vec<_>, _>>()?
                };
                Some(TankSpec {
                    volume_m3: volume,
                    max_supply_c: c.max_supply_c.unwrap_or(14.0),
                    covers,
                })
            } else {
                None
            };
            let rating = match c.kind.subsystem() {
                Some(Subsystem::Network) => c.rating_gbps,
                _ => c.rating_kw,
            };
            if rating.is_some_and(|r| r.is_nan() || r < 0.0) {
                return Err(err(line, f("rating"), "expected a rating >= 0".into()));
            }
            out.push(Component {
                id: c.id.clone(),
                name: c.name.clone(),
                kind: c.kind,
                room: c.room.clone(),
                zone: c.zone.clone(),
                rating,
                nominal_v: c.nominal_v,
                design,
                groups: resolved_groups,
                bindings,
                tank,
                line,
            });
        }

        // Topological order (Kahn, stable by file order); a cycle is an error.
        let n = out.len();
        let mut indeg = vec![0usize; n];
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, c) in out.iter().enumerate() {
            let mut ups: Vec<usize> = c.groups.iter().flat_map(|g| g.members.clone()).collect();
            ups.sort_unstable();
            ups.dedup();
            indeg[i] = ups.len();
            for u in ups {
                dependents[u].push(i);
            }
        }
        let mut ready: std::collections::BTreeSet<usize> =
            (0..n).filter(|&i| indeg[i] == 0).collect();
        let mut order = Vec::with_capacity(n);
        while let Some(i) = ready.pop_first() {
            order.push(i);
            for &d in &dependents[i] {
                indeg[d] -= 1;
                if indeg[d] == 0 {
                    ready.insert(d);
                }
            }
        }
        if order.len() != n {
            let stuck = (0..n).find(|&i| indeg[i] > 0).expect("a node is stuck");
            return Err(err(
                out[stuck].line,
                format!("component[{}].upstream", out[stuck].id),
                "dependency cycle: expected the upstream graph to be acyclic".into(),
            ));
        }
        let mut new_pos = vec![0usize; n];
        for (pos, &old) in order.iter().enumerate() {
            new_pos[old] = pos;
        }
        let mut sorted: Vec<Option<Component>> = out.into_iter().map(Some).collect();
        let mut components: Vec<Component> = order
            .iter()
            .map(|&old| sorted[old].take().expect("each index once"))
            .collect();
        for c in &mut components {
            for g in &mut c.groups {
                for m in &mut g.members {
                    *m = new_pos[*m];
                }
            }
            if let Some(t) = &mut c.tank {
                for r in &mut t.covers {
                    *r = new_pos[*r];
                }
            }
        }
        let index: HashMap<String, CompIdx> = components
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.clone(), i))
            .collect();
        let layout = crate::layout::build(
            raw.plan,
            raw.asset,
            raw.site.rack_units,
            &components,
            &index,
            src,
            file,
        )?;
        let mut children = vec![Vec::new(); n];
        for (i, c) in components.iter().enumerate() {
            for (gi, g) in c.groups.iter().enumerate() {
                for &m in &g.members {
                    children[m].push((i, gi));
                }
            }
        }
        Ok(Site {
            name: raw.site.name,
            stale_after_ms: raw.site.stale_after_ms,
            voltage_tolerance: raw.site.voltage_tolerance_pct / 100.0,
            components,
            index,
            children,
            designed: Default::default(),
            layout,
        })
    }

    /// Index of a component by id.
    pub fn index_of(&self, id: &str) -> Option<CompIdx> {
        self.index.get(id).copied()
    }

    pub fn get(&self, id: &str) -> Option<&Component> {
        self.index_of(id).map(|i| &self.components[i])
    }

    /// Every device id referenced by a binding, sorted.
    pub fn devices(&self) -> Vec<String> {
        let mut d: Vec<String> = self
            .components
            .iter()
            .flat_map(|c| c.bindings.iter().map(|b| b.device.clone()))
            .collect();
        d.sort();
        d.dedup();
        d
    }

    /// Components bound to a device (for "which component does this device feed").
    pub fn components_of_device(&self, device: &str) -> Vec<CompIdx> {
        self.components
            .iter()
            .enumerate()
            .filter(|(_, c)| c.bindings.iter().any(|b| b.device == device))
            .map(|(i, _)| i)
            .collect()
    }

    /// Components that depend on `idx` directly (any group), sorted.
    pub fn dependents(&self, idx: CompIdx) -> Vec<CompIdx> {
        let mut v: Vec<CompIdx> = self.children[idx].iter().map(|&(c, _)| c).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Everything downstream of `idx` (transitively), sorted; what a failure of `idx` can touch.
    pub fn downstream(&self, idx: CompIdx) -> Vec<CompIdx> {
        let mut seen = vec![false; self.components.len()];
        let mut stack = vec![idx];
        while let Some(i) = stack.pop() {
            for &(c, _) in &self.children[i] {
                if !seen[c] {
                    seen[c] = true;
                    stack.push(c);
                }
            }
        }
        (0..seen.len()).filter(|&i| seen[i]).collect()
    }

    /// Builds a site directly from components (used by tests and generators). Components must
    /// already be in topological order (members before dependents).
    pub fn from_components(name: &str, components: Vec<Component>) -> Result<Site, String> {
        let n = components.len();
        let mut children = vec![Vec::new(); n];
        let mut index = HashMap::new();
        for (i, c) in components.iter().enumerate() {
            if index.insert(c.id.clone(), i).is_some() {
                return Err(format!("duplicate id {}", c.id));
            }
            for (gi, g) in c.groups.iter().enumerate() {
                if g.need == 0 || g.need as usize > g.members.len() {
                    return Err(format!("{}: bad need", c.id));
                }
                for &m in &g.members {
                    if m >= i {
                        return Err(format!("{}: members must come first", c.id));
                    }
                    children[m].push((i, gi));
                }
            }
        }
        Ok(Site {
            name: name.to_owned(),
            stale_after_ms: 30_000,
            voltage_tolerance: 0.10,
            components,
            index,
            children,
            designed: Default::default(),
            layout: crate::layout::Layout {
                rack_units: crate::layout::DEFAULT_RACK_UNITS,
                ..Default::default()
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Lines;

    #[test]
    fn line_numbers_match_counting_newlines() {
        // Hazard: an error message pointing at the wrong line of a site file.
        let src = "a\nbb\n\nccc\n";
        let lines = Lines::new(src);
        for offset in 0..=src.len() + 2 {
            let naive = src.as_bytes()[..offset.min(src.len())]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            assert_eq!(lines.line_of(offset), naive, "offset {offset}");
        }
    }
}
