//! Floor plans and rack contents: where rooms, rows, racks, battery racks and other equipment
//! are, and what is mounted in a rack. Optional: a site file without `[[plan]]` or `[[asset]]`
//! loads as before, and the console then arranges the racks from the rows of the site graph.
//!
//! ```toml
//! [site]
//! rack_units = 42            # height of a rack in U (default 42), for elevations
//!
//! [[plan]]                   # one per room or battery room
//! room = "hall-1"            # a component of kind `room` or `battery_room`
//! building = "Building A"    # optional (default: the site's name)
//! floor = "1F"               # optional
//! width = 24                 # plan size in floor tiles (600 mm), 1..=1000
//! depth = 16
//!
//! [[plan.row]]               # a row of IT racks, in order from the first rack
//! name = "row-h1-01"         # optional (default: the racks' row component, else "row N")
//! x = 2                      # tile of the first rack (0-based, x to the right, y down)
//! y = 1
//! direction = "east"         # east (default), west, north or south: where the row runs
//! racks = "r001..r010"       # a range of rack ids, or a list ["r001", "r002"]
//!
//! [[plan.row]]               # a row of battery racks (strings) of a battery room
//! battery = "batt-z1"        # a component of kind `battery_room`
//! count = 6                  # battery racks in the row, 1..=100
//! x = 1
//! y = 1
//!
//! [[plan.item]]              # other equipment on the plan
//! component = "crah-h1-1"    # any component
//! label = "CRAH 1"           # optional
//! x = 0
//! y = 5
//! w = 1                      # tiles (default 1)
//! h = 2
//!
//! [[asset]]                  # equipment mounted in a rack, for its elevation
//! rack = "r017"
//! u = 10                     # lowest U it occupies, 1 = bottom
//! height = 2                 # in U (default 1)
//! name = "db-17a"
//! kind = "server"            # optional, free text
//! ```
//!
//! Every problem is a [`SiteError`] with the file, the line of the `[[plan]]`, `[[plan.row]]`,
//! `[[plan.item]]` or `[[asset]]` block, the field and what was expected. Checked: rooms and
//! components exist and have the right kind; every tile lies on the plan; no two things share
//! a tile; a rack is placed once, in the plan of its own `room`; assets fit their rack and do
//! not overlap.

use crate::model::{Component, Kind, SiteError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Default height of a rack in U.
pub const DEFAULT_RACK_UNITS: u32 = 42;
/// Largest plan side in tiles.
pub const MAX_PLAN_SIDE: u32 = 1000;
/// Most racks in one `[[plan.row]]`.
pub const MAX_ROW_LEN: usize = 1000;

/// Where things are and what racks hold. Empty when the site file has no plans or assets.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Layout {
    /// Height of a rack in U.
    pub rack_units: u32,
    pub plans: Vec<Plan>,
    /// Sorted by rack, then by U.
    pub assets: Vec<Asset>,
}

/// The floor plan of one room or battery room.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// Id of the room or battery room component.
    pub room: String,
    pub building: Option<String>,
    pub floor: Option<String>,
    /// Size in floor tiles.
    pub width: u32,
    pub depth: u32,
    pub rows: Vec<PlanRow>,
    /// Everything drawn on the plan: racks, battery racks and other equipment.
    pub cells: Vec<Cell>,
    /// 1-based line of the `[[plan]]` block.
    pub line: usize,
}

/// A row as the plan names it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanRow {
    pub name: String,
    pub x: u32,
    pub y: u32,
    pub direction: Direction,
    pub len: u32,
}

/// Where a row runs from its first rack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    #[default]
    East,
    West,
    North,
    South,
}

impl Direction {
    fn step(self) -> (i64, i64) {
        match self {
            Direction::East => (1, 0),
            Direction::West => (-1, 0),
            Direction::North => (0, -1),
            Direction::South => (0, 1),
        }
    }
}

/// What a cell of the plan is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CellKind {
    /// An IT rack (a component of kind `rack`).
    Rack,
    /// A battery rack of a battery room (coloured by the battery room's state).
    BatteryRack,
    /// Other equipment.
    Item,
}

/// One thing on a plan, at tile `(x, y)`, `w` x `h` tiles.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cell {
    pub kind: CellKind,
    /// The component it shows (the rack, the battery room, the equipment).
    pub component: String,
    pub label: Option<String>,
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
    /// The plan row of a rack or battery rack.
    pub row: Option<String>,
    /// 1-based position in that row.
    pub position: Option<u32>,
}

/// Equipment mounted in a rack.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Asset {
    pub rack: String,
    /// Lowest U occupied (1 = bottom).
    pub u: u32,
    pub height: u32,
    pub name: String,
    pub kind: Option<String>,
    pub line: usize,
}

impl Layout {
    /// The plan of a room, if the site file gives one.
    pub fn plan(&self, room: &str) -> Option<&Plan> {
        self.plans.iter().find(|p| p.room == room)
    }

    /// Where a component is drawn: its plan and its first cell.
    pub fn cell_of(&self, component: &str) -> Option<(&Plan, &Cell)> {
        self.plans.iter().find_map(|p| {
            p.cells
                .iter()
                .find(|c| c.component == component && c.kind != CellKind::BatteryRack)
                .map(|c| (p, c))
        })
    }

    /// The assets of one rack, lowest first.
    pub fn assets_of<'a>(&'a self, rack: &'a str) -> impl Iterator<Item = &'a Asset> + 'a {
        self.assets.iter().filter(move |a| a.rack == rack)
    }
}

// ---------------------------------------------------------------- raw TOML schema

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPlan {
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
pub(crate) struct RawAsset {
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

/// Expands `"r001..r010"` into `r001, r002, ... r010`: both ends share a prefix and the width
/// of their number, and the first is not after the last.
pub fn expand_range(spec: &str) -> Result<Vec<String>, String> {
    let Some((a, b)) = spec.split_once("..") else {
        return Err(format!(
            "`{spec}`: expected a list of rack ids or a range like \"r001..r010\""
        ));
    };
    let split = |s: &str| {
        let digits = s.chars().rev().take_while(char::is_ascii_digit).count();
        let (p, n) = s.split_at(s.len() - digits);
        (p.to_owned(), n.to_owned())
    };
    let ((pa, na), (pb, nb)) = (split(a.trim()), split(b.trim()));
    if na.is_empty() || nb.is_empty() || pa != pb || na.len() != nb.len() {
        return Err(format!(
            "`{spec}`: expected two ids with the same prefix and the same number of digits, like \"r001..r010\""
        ));
    }
    let (from, to): (u64, u64) = match (na.parse(), nb.parse()) {
        (Ok(f), Ok(t)) => (f, t),
        _ => return Err(format!("`{spec}`: the numbers are too long")),
    };
    if from > to {
        return Err(format!(
            "`{spec}`: expected the first id not after the last"
        ));
    }
    if to - from >= MAX_ROW_LEN as u64 {
        return Err(format!(
            "`{spec}`: expected at most {MAX_ROW_LEN} racks in one row"
        ));
    }
    let w = na.len();
    Ok((from..=to).map(|n| format!("{pa}{n:0w$}")).collect())
}

fn line_of(src: &str, offset: usize) -> usize {
    src.as_bytes()[..offset.min(src.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Builds and checks the layout against the resolved components.
pub(crate) fn build(
    plans: Vec<toml::Spanned<RawPlan>>,
    assets: Vec<toml::Spanned<RawAsset>>,
    rack_units: u32,
    components: &[Component],
    index: &HashMap<String, usize>,
    src: &str,
    file: &str,
) -> Result<Layout, SiteError> {
    let err = |line: usize, field: String, message: String| SiteError {
        file: file.to_owned(),
        line,
        field,
        message,
    };
    if !(1..=100).contains(&rack_units) {
        return Err(err(
            1,
            "site.rack_units".into(),
            format!("{rack_units}: expected the height of a rack in U, 1 to 100"),
        ));
    }
    let comp = |id: &str| index.get(id).map(|&i| &components[i]);
    // The row component a rack hangs off (its network group member of kind `row`).
    let row_of = |c: &Component| {
        c.groups
            .iter()
            .flat_map(|g| &g.members)
            .map(|&m| &components[m])
            .find(|m| m.kind == Kind::Row)
            .map(|m| m.id.clone())
    };
    let mut out = Vec::with_capacity(plans.len());
    // Where each rack is placed: (room, line), so a second placement names the first.
    let mut placed: BTreeMap<String, (String, usize)> = BTreeMap::new();
    for (pi, sp) in plans.into_iter().enumerate() {
        let line = line_of(src, sp.span().start);
        let p = sp.into_inner();
        let pf = |name: &str| {
            format!(
                "plan[{}].{name}",
                if p.room.is_empty() {
                    pi.to_string()
                } else {
                    p.room.clone()
                }
            )
        };
        match comp(&p.room) {
            Some(c) if matches!(c.kind, Kind::Room | Kind::BatteryRoom) => {}
            Some(c) => {
                return Err(err(
                    line,
                    pf("room"),
                    format!(
                        "`{}` is a {}: expected the id of a room or battery_room",
                        p.room,
                        c.kind.as_str()
                    ),
                ));
            }
            None => {
                return Err(err(
                    line,
                    pf("room"),
                    format!(
                        "unknown component `{}`: expected the id of a room or battery_room",
                        p.room
                    ),
                ));
            }
        }
        if out.iter().any(|o: &Plan| o.room == p.room) {
            return Err(err(
                line,
                pf("room"),
                "a second plan of the same room: expected one [[plan]] per room".into(),
            ));
        }
        for (what, v) in [("width", p.width), ("depth", p.depth)] {
            if !(1..=MAX_PLAN_SIDE).contains(&v) {
                return Err(err(
                    line,
                    pf(what),
                    format!("{v}: expected 1 to {MAX_PLAN_SIDE} tiles"),
                ));
            }
        }
        // Which cell holds each tile, to refuse overlaps with a useful message.
        let mut taken: HashMap<(u32, u32), String> = HashMap::new();
        let mut take = |x: u32, y: u32, what: &str, line: usize, field: String| {
            if x >= p.width || y >= p.depth {
                return Err(err(
                    line,
                    field,
                    format!(
                        "{what} at tile ({x}, {y}) lies outside the plan: expected x < {} and y < {}",
                        p.width, p.depth
                    ),
                ));
            }
            if let Some(other) = taken.insert((x, y), what.to_owned()) {
                return Err(err(
                    line,
                    field,
                    format!(
                        "{what} at tile ({x}, {y}): the tile already holds {other}; expected each tile used once"
                    ),
                ));
            }
            Ok(())
        };
        let mut rows = Vec::new();
        let mut cells = Vec::new();
        for (ri, sr) in p.row.into_iter().enumerate() {
            let rline = line_of(src, sr.span().start);
            let r = sr.into_inner();
            let rf = |name: &str| format!("{}[{ri}].{name}", pf("row"));
            let (ids, battery) = match (&r.racks, &r.battery) {
                (Some(_), Some(_)) | (None, None) => {
                    return Err(err(
                        rline,
                        rf("racks"),
                        "expected either `racks` (IT racks) or `battery` with `count` (battery racks)".into(),
                    ));
                }
                (Some(RawRacks::List(l)), None) => (l.clone(), None),
                (Some(RawRacks::Range(s)), None) => (
                    expand_range(s).map_err(|m| err(rline, rf("racks"), m))?,
                    None,
                ),
                (None, Some(b)) => {
                    match comp(b) {
                        Some(c) if c.kind == Kind::BatteryRoom => {}
                        _ => {
                            return Err(err(
                                rline,
                                rf("battery"),
                                format!("`{b}`: expected the id of a battery_room component"),
                            ));
                        }
                    }
                    let n = r.count.unwrap_or(0);
                    if !(1..=100).contains(&n) {
                        return Err(err(
                            rline,
                            rf("count"),
                            format!("{n}: expected 1 to 100 battery racks"),
                        ));
                    }
                    (Vec::new(), Some((b.clone(), n)))
                }
            };
            if r.racks.is_some() && r.count.is_some() {
                return Err(err(
                    rline,
                    rf("count"),
                    "`count` belongs to a row of battery racks: expected it only with `battery`"
                        .into(),
                ));
            }
            let len = battery.as_ref().map_or(ids.len(), |(_, n)| *n as usize);
            if len == 0 || len > MAX_ROW_LEN {
                return Err(err(
                    rline,
                    rf("racks"),
                    format!("{len} racks: expected 1 to {MAX_ROW_LEN}"),
                ));
            }
            // The default name: the row component all its racks hang off, else "row N".
            let mut row_comp = None;
            for (k, id) in ids.iter().enumerate() {
                let Some(c) = comp(id) else {
                    return Err(err(
                        rline,
                        rf("racks"),
                        format!("unknown component `{id}`: expected the id of a rack"),
                    ));
                };
                if c.kind != Kind::Rack {
                    return Err(err(
                        rline,
                        rf("racks"),
                        format!("`{id}` is a {}: expected the id of a rack", c.kind.as_str()),
                    ));
                }
                if let Some(room) = &c.room
                    && *room != p.room
                {
                    return Err(err(
                        rline,
                        rf("racks"),
                        format!(
                            "`{id}` is in room `{room}` (its `room` field): expected racks of `{}` only",
                            p.room
                        ),
                    ));
                }
                if let Some((room, l)) = placed.insert(id.clone(), (p.room.clone(), rline)) {
                    return Err(err(
                        rline,
                        rf("racks"),
                        format!(
                            "`{id}` is already placed in the plan of `{room}` (line {l}): expected each rack placed once"
                        ),
                    ));
                }
                let rc = row_of(c);
                if k == 0 {
                    row_comp = rc;
                } else if row_comp != rc {
                    row_comp = None;
                }
            }
            let name = r
                .name
                .clone()
                .or(row_comp)
                .or_else(|| battery.as_ref().map(|(b, _)| format!("{b} batteries")))
                .unwrap_or_else(|| format!("row {}", ri + 1));
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
                    return Err(err(
                        rline,
                        rf("direction"),
                        format!(
                            "{what} would be at tile ({x}, {y}): expected the row to stay on the plan"
                        ),
                    ));
                }
                let (x, y) = (x as u32, y as u32);
                take(x, y, &what, rline, rf("x"))?;
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
            rows.push(PlanRow {
                name,
                x: r.x,
                y: r.y,
                direction: r.direction,
                len: len as u32,
            });
        }
        for (ii, si) in p.item.into_iter().enumerate() {
            let iline = line_of(src, si.span().start);
            let it = si.into_inner();
            let f = |name: &str| format!("{}[{ii}].{name}", pf("item"));
            if comp(&it.component).is_none() {
                return Err(err(
                    iline,
                    f("component"),
                    format!(
                        "unknown component `{}`: expected the id of a declared component",
                        it.component
                    ),
                ));
            }
            if it.w == 0 || it.h == 0 {
                return Err(err(
                    iline,
                    f("w"),
                    "expected a size of at least one tile".into(),
                ));
            }
            let what = format!("`{}`", it.component);
            for dx in 0..it.w {
                for dy in 0..it.h {
                    take(
                        it.x.saturating_add(dx),
                        it.y.saturating_add(dy),
                        &what,
                        iline,
                        f("x"),
                    )?;
                }
            }
            cells.push(Cell {
                kind: CellKind::Item,
                component: it.component,
                label: it.label,
                x: it.x,
                y: it.y,
                w: it.w,
                h: it.h,
                row: None,
                position: None,
            });
        }
        out.push(Plan {
            room: p.room,
            building: p.building,
            floor: p.floor,
            width: p.width,
            depth: p.depth,
            rows,
            cells,
            line,
        });
    }

    let mut list: Vec<Asset> = Vec::with_capacity(assets.len());
    for (ai, sa) in assets.into_iter().enumerate() {
        let line = line_of(src, sa.span().start);
        let a = sa.into_inner();
        let f = |name: &str| format!("asset[{ai}].{name}");
        match comp(&a.rack) {
            Some(c) if c.kind == Kind::Rack => {}
            _ => {
                return Err(err(
                    line,
                    f("rack"),
                    format!("`{}`: expected the id of a rack", a.rack),
                ));
            }
        }
        if a.name.trim().is_empty() {
            return Err(err(line, f("name"), "expected a name".into()));
        }
        if a.u == 0 || a.height == 0 || a.u.saturating_add(a.height - 1) > rack_units {
            return Err(err(
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
            return Err(err(
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
    Ok(Layout {
        rack_units,
        plans: out,
        assets: list,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_expand_and_refuse_what_they_cannot_mean() {
        // Hazard: "r01..r100" read as some other set of racks than the file's author meant.
        assert_eq!(
            expand_range("r098..r101").unwrap(),
            ["r098", "r099", "r100", "r101"]
        );
        assert_eq!(expand_range("a-7..a-7").unwrap(), ["a-7"]);
        for bad in [
            "r001",
            "r010..r001",
            "r01..r100",
            "r001..s010",
            "rack..rack",
            "r1..r99999",
        ] {
            assert!(expand_range(bad).is_err(), "{bad} accepted");
        }
    }
}
