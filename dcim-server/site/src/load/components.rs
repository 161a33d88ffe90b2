//! Components of a site file: `[[generate]]` blocks expanded into plain components, ids
//! checked, each component's upstream groups, point bindings, design and buffer tank resolved,
//! and the graph put in topological order.

use super::Source;
use crate::model::{Binding, Component, Group, Kind, Redundancy, SiteError, Subsystem, TankSpec};
use dcim_points::Role;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};

/// A component as written (or generated) and the line it comes from.
pub(super) type Located = (RawComponent, usize);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGenerate {
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
pub(super) struct RawComponent {
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

/// The file's components followed by the generated ones, each with its line.
pub(super) fn expand(
    src: &Source,
    component: Vec<toml::Spanned<RawComponent>>,
    generate: Vec<toml::Spanned<RawGenerate>>,
) -> Result<Vec<Located>, SiteError> {
    let mut comps: Vec<Located> = component
        .into_iter()
        .map(|s| {
            let line = src.line(s.span().start);
            (s.into_inner(), line)
        })
        .collect();
    for (gi, g) in generate.into_iter().enumerate() {
        let line = src.line(g.span().start);
        let g = g.into_inner();
        if g.per_group == 0 {
            return Err(src.err(
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
                src.err(
                    line,
                    format!("generate[{gi}].template"),
                    e.message().trim().to_owned(),
                )
            })?;
            comps.push((c, line));
        }
    }
    Ok(comps)
}

/// Every id well-formed and declared once: id -> position in `comps`.
pub(super) fn check_ids(
    src: &Source,
    comps: &[Located],
) -> Result<HashMap<String, usize>, SiteError> {
    let mut index = HashMap::new();
    for (i, (c, line)) in comps.iter().enumerate() {
        if c.id.is_empty()
            || !c
                .id
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch))
        {
            return Err(src.err(
                *line,
                "component.id".into(),
                format!("`{}`: expected letters, digits, `-`, `_` or `.`", c.id),
            ));
        }
        if index.insert(c.id.clone(), i).is_some() {
            return Err(src.err(
                *line,
                format!("component[{}].id", c.id),
                "duplicate id: expected each component id once".into(),
            ));
        }
    }
    Ok(index)
}

/// Every component resolved, in file order (indices are positions in `comps`).
pub(super) fn resolve(
    src: &Source,
    comps: &[Located],
    index: &HashMap<String, usize>,
) -> Result<Vec<Component>, SiteError> {
    let all_rooms: Vec<usize> = comps
        .iter()
        .enumerate()
        .filter(|(_, (c, _))| c.kind == Kind::Room)
        .map(|(i, _)| i)
        .collect();
    comps
        .iter()
        .map(|(c, line)| {
            Resolver {
                src,
                comps,
                index,
                c,
                line: *line,
            }
            .component(&all_rooms)
        })
        .collect()
}

/// One component being resolved against the others.
struct Resolver<'a> {
    src: &'a Source<'a>,
    comps: &'a [Located],
    index: &'a HashMap<String, usize>,
    c: &'a RawComponent,
    line: usize,
}

impl Resolver<'_> {
    fn err(&self, field: &str, message: String) -> SiteError {
        self.src.err(
            self.line,
            format!("component[{}].{field}", self.c.id),
            message,
        )
    }

    /// The position of a referenced component.
    fn id(&self, id: &str, field: &str) -> Result<usize, SiteError> {
        self.index.get(id).copied().ok_or_else(|| {
            self.err(
                field,
                format!("unknown component `{id}`: expected the id of a declared component"),
            )
        })
    }

    fn component(&self, all_rooms: &[usize]) -> Result<Component, SiteError> {
        let c = self.c;
        let groups = self.groups()?;
        if groups.iter().any(|g| g.members.is_empty()) {
            return Err(self.err("upstream", "empty group".into()));
        }
        let bindings = self.bindings()?;
        let design = match &c.design {
            None => None,
            Some(d) => Some(Redundancy::parse(d).ok_or_else(|| {
                self.err(
                    "design",
                    format!("`{d}`: expected \"2N\", \"N+1\" or \"N\""),
                )
            })?),
        };
        let tank = self.tank(all_rooms)?;
        let rating = match c.kind.subsystem() {
            Some(Subsystem::Network) => c.rating_gbps,
            _ => c.rating_kw,
        };
        if rating.is_some_and(|r| r.is_nan() || r < 0.0) {
            return Err(self.err("rating", "expected a rating >= 0".into()));
        }
        Ok(Component {
            id: c.id.clone(),
            name: c.name.clone(),
            kind: c.kind,
            room: c.room.clone(),
            zone: c.zone.clone(),
            rating,
            nominal_v: c.nominal_v,
            design,
            groups,
            bindings,
            tank,
            line: self.line,
        })
    }

    /// The upstream groups: plain ids form the first group (`need` of them), then each
    /// `{ of = [...], need = n }`.
    fn groups(&self) -> Result<Vec<Group>, SiteError> {
        let mut groups = Vec::new();
        let mut default_members = Vec::new();
        for u in &self.c.upstream {
            match u {
                RawUpstream::Id(id) => default_members.push(self.id(id, "upstream")?),
                RawUpstream::Group { of, need } => {
                    let members = of
                        .iter()
                        .map(|id| self.id(id, "upstream"))
                        .collect::<Result<Vec<_>, _>>()?;
                    groups.push((members, need.unwrap_or(1)));
                }
            }
        }
        if !default_members.is_empty() {
            groups.insert(0, (default_members, self.c.need));
        }
        groups
            .into_iter()
            .map(|(members, need)| self.group(members, need))
            .collect()
    }

    fn group(&self, members: Vec<usize>, need: u32) -> Result<Group, SiteError> {
        if need == 0 || need as usize > members.len() {
            return Err(self.err(
                "need",
                format!(
                    "need = {need}: expected between 1 and the number of upstream members ({})",
                    members.len()
                ),
            ));
        }
        let mut sub = None;
        for &m in &members {
            let (mc, _) = &self.comps[m];
            let Some(ms) = mc.kind.subsystem() else {
                return Err(self.err(
                    "upstream",
                    format!("`{}` is a rack: expected a supplying component", mc.id),
                ));
            };
            if *sub.get_or_insert(ms) != ms {
                return Err(self.err(
                    "upstream",
                    "members of one group are in different subsystems: expected one subsystem per group".into(),
                ));
            }
        }
        let mut dedup = members.clone();
        dedup.sort_unstable();
        dedup.dedup();
        if dedup.len() != members.len() {
            return Err(self.err(
                "upstream",
                "a component is listed twice in one group".into(),
            ));
        }
        Ok(Group {
            subsystem: sub.expect("groups are non-empty"),
            members,
            need,
        })
    }

    fn bindings(&self) -> Result<Vec<Binding>, SiteError> {
        let c = self.c;
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
                .map_err(|e| self.err(&format!("points[{bi}].role"), e.to_string()))?;
            let device = device.or_else(|| c.device.clone()).ok_or_else(|| {
                self.err(
                    &format!("points[{bi}].device"),
                    "no device: expected `device` on the binding or on the component".into(),
                )
            })?;
            bindings.push(Binding {
                device,
                role,
                labels: labels.unwrap_or_else(|| c.labels.clone()),
            });
        }
        Ok(bindings)
    }

    /// A buffer tank's volume and the rooms it covers (all rooms when none are listed).
    fn tank(&self, all_rooms: &[usize]) -> Result<Option<TankSpec>, SiteError> {
        let c = self.c;
        if c.kind != Kind::BufferTank {
            return Ok(None);
        }
        let volume = c
            .volume_m3
            .filter(|v| *v > 0.0)
            .ok_or_else(|| self.err("volume_m3", "expected a positive tank volume in m3".into()))?;
        let covers = if c.covers.is_empty() {
            all_rooms.to_vec()
        } else {
            c.covers
                .iter()
                .map(|id| self.id(id, "covers"))
                .collect::<Result<Vec<_>, _>>()?
        };
        Ok(Some(TankSpec {
            volume_m3: volume,
            max_supply_c: c.max_supply_c.unwrap_or(14.0),
            covers,
        }))
    }
}

/// Puts the components in topological order (Kahn, stable by file order) and renumbers the
/// references; a cycle is an error.
pub(super) fn topological(src: &Source, out: Vec<Component>) -> Result<Vec<Component>, SiteError> {
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
    let mut ready: std::collections::BTreeSet<usize> = (0..n).filter(|&i| indeg[i] == 0).collect();
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
        return Err(src.err(
            out[stuck].line,
            format!("component[{}].upstream", out[stuck].id),
            "dependency cycle: expected the upstream graph to be acyclic".into(),
        ));
    }
    Ok(reorder(out, &order))
}

/// The components in `order` (old positions), every reference renumbered.
fn reorder(out: Vec<Component>, order: &[usize]) -> Vec<Component> {
    let mut new_pos = vec![0usize; out.len()];
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
    components
}
