//! Floor plans and rack contents of a site file (`[[plan]]`, `[[plan.row]]`, `[[plan.item]]`,
//! `[[asset]]`; schema in [`crate::layout`]) checked against the resolved components: rooms
//! and components exist and have the right kind, every tile lies on the plan, no two things
//! share a tile, a rack is placed once in the plan of its own room, assets fit their rack and
//! do not overlap.

use super::Source;
use crate::layout::{
    Asset, Cell, CellKind, Direction, Layout, MAX_PLAN_SIDE, MAX_ROW_LEN, Plan, PlanRow,
    expand_range,
};
use crate::model::{Component, Kind, SiteError};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPlan {
    room: String,
    building: Option<String>,
    floor: Option<String>,
    width: u32,
    depth: u32,
    #[serde(default)]
    row: Vec<toml::Spanned<RawRow>>,
    #[serde(default)]
    item: Vec<toml::Spanned<RawItem>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRow {
    name: Option<String>,
    x: u32,
    y: u32,
    #[serde(default)]
    direction: Direction,
    racks: Option<RawRacks>,
    battery: Option<String>,
    count: Option<u32>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawRacks {
    List(Vec<String>),
    Range(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawItem {
    component: String,
    label: Option<String>,
    x: u32,
    y: u32,
    #[serde(default = "one")]
    w: u32,
    #[serde(default = "one")]
    h: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAsset {
    rack: String,
    u: u32,
    #[serde(default = "one")]
    height: u32,
    name: String,
    kind: Option<String>,
}

fn one() -> u32 {
    1
}

/// Builds and checks the layout against the resolved components.
pub(super) fn build(
    src: &Source,
    plans: Vec<toml::Spanned<RawPlan>>,
    assets: Vec<toml::Spanned<RawAsset>>,
    rack_units: u32,
    components: &[Component],
    index: &HashMap<String, usize>,
) -> Result<Layout, SiteError> {
    if !(1..=100).contains(&rack_units) {
        return Err(src.err(
            1,
            "site.rack_units".into(),
            format!("{rack_units}: expected the height of a rack in U, 1 to 100"),
        ));
    }
    let site = Components { components, index };
    let mut out = Vec::with_capacity(plans.len());
    // Where each rack is placed: (room, line), so a second placement names the first.
    let mut placed: BTreeMap<String, (String, usize)> = BTreeMap::new();
    for (pi, sp) in plans.into_iter().enumerate() {
        let line = src.line(sp.span().start);
        let plan = PlanCheck {
            src,
            site: &site,
            line,
            key: String::new(),
        }
        .build(pi, sp.into_inner(), &out, &mut placed)?;
        out.push(plan);
    }
    let assets = build_assets(src, &site, rack_units, assets)?;
    Ok(Layout {
        rack_units,
        plans: out,
        assets,
    })
}

/// The resolved components, looked up by id.
struct Components<'a> {
    components: &'a [Component],
    index: &'a HashMap<String, usize>,
}

impl Components<'_> {
    fn get(&self, id: &str) -> Option<&Component> {
        self.index.get(id).map(|&i| &self.components[i])
    }

    /// The row component a rack hangs off (its network group member of kind `row`).
    fn row_of(&self, c: &Component) -> Option<String> {
        c.groups
            .iter()
            .flat_map(|g| &g.members)
            .map(|&m| &self.components[m])
            .find(|m| m.kind == Kind::Row)
            .map(|m| m.id.clone())
    }
}

/// Which cell holds each tile of a plan, to refuse overlaps with a useful message.
struct Tiles {
    width: u32,
    depth: u32,
    taken: HashMap<(u32, u32), String>,
}

impl Tiles {
    fn take(
        &mut self,
        src: &Source,
        (x, y): (u32, u32),
        what: &str,
        line: usize,
        field: String,
    ) -> Result<(), SiteError> {
        if x >= self.width || y >= self.depth {
            return Err(src.err(
                line,
                field,
                format!(
                    "{what} at tile ({x}, {y}) lies outside the plan: expected x < {} and y < {}",
                    self.width, self.depth
                ),
            ));
        }
        if let Some(other) = self.taken.insert((x, y), what.to_owned()) {
            return Err(src.err(
                line,
                field,
                format!(
                    "{what} at tile ({x}, {y}): the tile already holds {other}; expected each tile used once"
                ),
            ));
        }
        Ok(())
    }
}

/// One `[[plan]]` being checked.
struct PlanCheck<'a> {
    src: &'a Source<'a>,
    site: &'a Components<'a>,
    /// Line of the `[[plan]]` block.
    line: usize,
    /// How fields of this plan are named: its room, else its position.
    key: String,
}

impl PlanCheck<'_> {
    fn field(&self, name: &str) -> String {
        format!("plan[{}].{name}", self.key)
    }

    fn build(
        mut self,
        pi: usize,
        p: RawPlan,
        earlier: &[Plan],
        placed: &mut BTreeMap<String, (String, usize)>,
    ) -> Result<Plan, SiteError> {
        self.key = if p.room.is_empty() {
            pi.to_string()
        } else {
            p.room.clone()
        };
        self.check_room(&p, earlier)?;
        let mut tiles = Tiles {
            width: p.width,
            depth: p.depth,
            taken: HashMap::new(),
        };
        let mut rows = Vec::new();
        let mut cells = Vec::new();
        for (ri, sr) in p.row.into_iter().enumerate() {
            let rline = self.src.line(sr.span().start);
            let row = RowCheck {
                plan: &self,
                room: &p.room,
                ri,
                line: rline,
            };
            rows.push(row.build(sr.into_inner(), &mut tiles, &mut cells, placed)?);
        }
        for (ii, si) in p.item.into_iter().enumerate() {
            let iline = self.src.line(si.span().start);
            cells.push(self.item(ii, iline, si.into_inner(), &mut tiles)?);
        }
        Ok(Plan {
            room: p.room,
            building: p.building,
            floor: p.floor,
            width: p.width,
            depth: p.depth,
            rows,
            cells,
            line: self.line,
        })
    }

    /// The plan's room exists, is a room or battery room, has no other plan, and the plan's
    /// size is within bounds.
    fn check_room(&self, p: &RawPlan, earlier: &[Plan]) -> Result<(), SiteError> {
        let (src, line) = (self.src, self.line);
        match self.site.get(&p.room) {
            Some(c) if matches!(c.kind, Kind::Room | Kind::BatteryRoom) => {}
            Some(c) => {
                return Err(src.err(
                    line,
                    self.field("room"),
                    format!(
                        "`{}` is a {}: expected the id of a room or battery_room",
                        p.room,
                        c.kind.as_str()
                    ),
                ));
            }
            None => {
                return Err(src.err(
                    line,
                    self.field("room"),
                    format!(
                        "unknown component `{}`: expected the id of a room or battery_room",
                        p.room
                    ),
                ));
            }
        }
        if earlier.iter().any(|o| o.room == p.room) {
            return Err(src.err(
                line,
                self.field("room"),
                "a second plan of the same room: expected one [[plan]] per room".into(),
            ));
        }
        for (what, v) in [("width", p.width), ("depth", p.depth)] {
            if !(1..=MAX_PLAN_SIDE).contains(&v) {
                return Err(src.err(
                    line,
                    self.field(what),
                    format!("{v}: expected 1 to {MAX_PLAN_SIDE} tiles"),
                ));
            }
        }
        Ok(())
    }

    /// A `[[plan.item]]`: any component, on free tiles of the plan.
    fn item(
        &self,
        ii: usize,
        iline: usize,
        it: RawItem,
        tiles: &mut Tiles,
    ) -> Result<Cell, SiteError> {
        let src = self.src;
        let f = |name: &str| format!("{}[{ii}].{name}", self.field("item"));
        if self.site.get(&it.component).is_none() {
            return Err(src.err(
                iline,
                f("component"),
                format!(
                    "unknown component `{}`: expected the id of a declared component",
                    it.component
                ),
            ));
        }
        if it.w == 0 || it.h == 0 {
            return Err(src.err(iline, f("w"), "expected a size of at least one tile".into()));
        }
        let what = format!("`{}`", it.component);
        for dx in 0..it.w {
            for dy in 0..it.h {
                let tile = (it.x.saturating_add(dx), it.y.saturating_add(dy));
                tiles.take(src, tile, &what, iline, f("x"))?;
            }
        }
        Ok(Cell {
            kind: CellKind::Item,
            component: it.component,
            label: it.label,
            x: it.x,
            y: it.y,
            w: it.w,
            h: it.h,
            row: None,
            position: None,
        })
    }
}

/// One `[[plan.row]]` being checked.
struct RowCheck<'a> {
    plan: &'a PlanCheck<'a>,
    room: &'a str,
    ri: usize,
    /// Line of the `[[plan.row]]` block.
    line: usize,
}

impl RowCheck<'_> {
    fn field(&self, name: &str) -> String {
        format!("{}[{}].{name}", self.plan.field("row"), self.ri)
    }

    fn err(&self, name: &str, message: String) -> SiteError {
        self.plan.src.err(self.line, self.field(name), message)
    }

    fn build(
        &self,
        r: RawRow,
        tiles: &mut Tiles,
        cells: &mut Vec<Cell>,
        placed: &mut BTreeMap<String, (String, usize)>,
    ) -> Result<PlanRow, SiteError> {
        let (ids, battery) = self.members(&r)?;
        let len = battery.as_ref().map_or(ids.len(), |(_, n)| *n as usize);
        if len == 0 || len > MAX_ROW_LEN {
            return Err(self.err("racks", format!("{len} racks: expected 1 to {MAX_ROW_LEN}")));
        }
        // The default name: the row component all its racks hang off, else "row N".
        let row_comp = self.check_racks(&ids, placed)?;
        let name = r
            .name
            .clone()
            .or(row_comp)
            .or_else(|| battery.as_ref().map(|(b, _)| format!("{b} batteries")))
            .unwrap_or_else(|| format!("row {}", self.ri + 1));
        let (dx, dy) = r.direction.step();
        for k in 0..len {
            let x = i64::from(r.x) + dx * k as i64;
            let y = i64::from(r.y) + dy * k as i64;
            let (component, kind, label) = match &battery {
                Some((b, _)) => (b.clone(), CellKind::BatteryRack, Some(format!("{}", k + 1))),
                None => (
                    ids.get(k).cloned().unwrap_or_default(),
                    CellKind::Rack,
                    None,
                ),
            };
            let what = match kind {
                CellKind::BatteryRack => format!("battery rack {} of `{component}`", k + 1),
                _ => format!("rack `{component}`"),
            };
            if x < 0 || y < 0 {
                return Err(self.err(
                    "direction",
                    format!(
                        "{what} would be at tile ({x}, {y}): expected the row to stay on the plan"
                    ),
                ));
            }
            let (x, y) = (x as u32, y as u32);
            tiles.take(self.plan.src, (x, y), &what, self.line, self.field("x"))?;
            cells.push(Cell {
                kind,
                component,
                label,
                x,
                y,
                w: 1,
                h: 1,
                row: Some(name.clone()),
                position: Some(k as u32 + 1),
            });
        }
        Ok(PlanRow {
            name,
            x: r.x,
            y: r.y,
            direction: r.direction,
            len: len as u32,
        })
    }

    /// The rack ids of an IT row, or the battery room and count of a battery row.
    #[allow(clippy::type_complexity)]
    fn members(&self, r: &RawRow) -> Result<(Vec<String>, Option<(String, u32)>), SiteError> {
        let out = match (&r.racks, &r.battery) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(self.err(
                    "racks",
                    "expected either `racks` (IT racks) or `battery` with `count` (battery racks)"
                        .into(),
                ));
            }
            (Some(RawRacks::List(l)), None) => (l.clone(), None),
            (Some(RawRacks::Range(s)), None) => {
                (expand_range(s).map_err(|m| self.err("racks", m))?, None)
            }
            (None, Some(b)) => {
                match self.plan.site.get(b) {
                    Some(c) if c.kind == Kind::BatteryRoom => {}
                    _ => {
                        return Err(self.err(
                            "battery",
                            format!("`{b}`: expected the id of a battery_room component"),
                        ));
                    }
                }
                let n = r.count.unwrap_or(0);
                if !(1..=100).contains(&n) {
                    return Err(self.err("count", format!("{n}: expected 1 to 100 battery racks")));
                }
                (Vec::new(), Some((b.clone(), n)))
            }
        };
        if r.racks.is_some() && r.count.is_some() {
            return Err(self.err(
                "count",
                "`count` belongs to a row of battery racks: expected it only with `battery`".into(),
            ));
        }
        Ok(out)
    }

    /// Every id is a rack of this plan's room placed nowhere else; returns the row component
    /// all of them hang off, if they share one.
    fn check_racks(
        &self,
        ids: &[String],
        placed: &mut BTreeMap<String, (String, usize)>,
    ) -> Result<Option<String>, SiteError> {
        let mut row_comp = None;
        for (k, id) in ids.iter().enumerate() {
            let Some(c) = self.plan.site.get(id) else {
                return Err(self.err(
                    "racks",
                    format!("unknown component `{id}`: expected the id of a rack"),
                ));
            };
            if c.kind != Kind::Rack {
                return Err(self.err(
                    "racks",
                    format!("`{id}` is a {}: expected the id of a rack", c.kind.as_str()),
                ));
            }
            if let Some(room) = &c.room
                && *room != self.room
            {
                return Err(self.err(
                    "racks",
                    format!(
                        "`{id}` is in room `{room}` (its `room` field): expected racks of `{}` only",
                        self.room
                    ),
                ));
            }
            if let Some((room, l)) = placed.insert(id.clone(), (self.room.to_owned(), self.line)) {
                return Err(self.err(
                    "racks",
                    format!(
                        "`{id}` is already placed in the plan of `{room}` (line {l}): expected each rack placed once"
                    ),
                ));
            }
            let rc = self.plan.site.row_of(c);
            if k == 0 {
                row_comp = rc;
            } else if row_comp != rc {
                row_comp = None;
            }
        }
        Ok(row_comp)
    }
}

/// The `[[asset]]` blocks: each in a rack, within its units, not overlapping another; sorted
/// by rack, then by U.
fn build_assets(
    src: &Source,
    site: &Components,
    rack_units: u32,
    assets: Vec<toml::Spanned<RawAsset>>,
) -> Result<Vec<Asset>, SiteError> {
    let mut list: Vec<Asset> = Vec::with_capacity(assets.len());
    for (ai, sa) in assets.into_iter().enumerate() {
        let line = src.line(sa.span().start);
        let a = sa.into_inner();
        let f = |name: &str| format!("asset[{ai}].{name}");
        match site.get(&a.rack) {
            Some(c) if c.kind == Kind::Rack => {}
            _ => {
                return Err(src.err(
                    line,
                    f("rack"),
                    format!("`{}`: expected the id of a rack", a.rack),
                ));
            }
        }
        if a.name.trim().is_empty() {
            return Err(src.err(line, f("name"), "expected a name".into()));
        }
        if a.u == 0 || a.height == 0 || a.u.saturating_add(a.height - 1) > rack_units {
            return Err(src.err(
                line,
                f("u"),
                format!(
                    "U {} to {}: expected 1 to {rack_units} (site.rack_units)",
                    a.u,
                    a.u.saturating_add(a.height.saturating_sub(1))
                ),
            ));
        }
        if let Some(o) = list
            .iter()
            .find(|o| o.rack == a.rack && o.u < a.u + a.height && a.u < o.u + o.height)
        {
            return Err(src.err(
                line,
                f("u"),
                format!(
                    "`{}` at U {}-{} overlaps `{}` (U {}-{}, line {}) in rack `{}`: expected free units",
                    a.name,
                    a.u,
                    a.u + a.height - 1,
                    o.name,
                    o.u,
                    o.u + o.height - 1,
                    o.line,
                    a.rack
                ),
            ));
        }
        list.push(Asset {
            rack: a.rack,
            u: a.u,
            height: a.height,
            name: a.name,
            kind: a.kind,
            line,
        });
    }
    list.sort_by(|a, b| (&a.rack, a.u).cmp(&(&b.rack, b.u)));
    Ok(list)
}
