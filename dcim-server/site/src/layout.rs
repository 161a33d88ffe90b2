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
//! The types here are what the loader (the `load` module) builds. Every problem is a
//! [`SiteError`](crate::SiteError) with the file, the line of the `[[plan]]`, `[[plan.row]]`,
//! `[[plan.item]]` or `[[asset]]` block, the field and what was expected. Checked: rooms and
//! components exist and have the right kind; every tile lies on the plan; no two things share
//! a tile; a rack is placed once, in the plan of its own `room`; assets fit their rack and do
//! not overlap.

use serde::{Deserialize, Serialize};

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
    pub(crate) fn step(self) -> (i64, i64) {
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
