//! The site model: components, their supply groups and their point bindings, as loaded from a
//! site file by the `load` module (or built directly with [`Site::from_components`]).

use dcim_points::Role;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fmt;

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

    pub(crate) fn parse(s: &str) -> Option<Redundancy> {
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
    pub(crate) index: HashMap<String, CompIdx>,
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

impl Site {
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
