//! Floor plans and rack contents in the site file: optional, placed where the file says, and
//! every mistake refused with the file, line, field and what was expected. The hazard: a plan
//! that silently puts a rack in the wrong room or on top of another sends a fire officer to the
//! wrong place.

use dcim_site::*;

const BASE: &str = r#"[site]
name = "t"

[[component]]
id = "hall-1"
kind = "room"

[[component]]
id = "hall-2"
kind = "room"

[[component]]
id = "batt-z1"
kind = "battery_room"
zone = "z1"

[[component]]
id = "crah-1"
kind = "crah"
room = "hall-1"

[[component]]
id = "row-1"
kind = "row"
room = "hall-1"

[[generate]]
count = 4
per_group = 4
[generate.template]
id = "r{n}"
kind = "rack"
room = "hall-1"
upstream = [{ of = ["hall-1"] }, { of = ["row-1"] }]

[[component]]
id = "r900"
kind = "rack"
room = "hall-2"
"#;

fn load(extra: &str) -> Result<Site, SiteError> {
    Site::from_toml_str(&format!("{BASE}{extra}"), "site.toml")
}

/// The line (in the whole file) of the first line of `extra` that starts the text `needle`.
fn line_of(extra: &str, needle: &str) -> usize {
    let at = extra
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} not in the text"));
    BASE.lines().count() + extra[..at].matches('\n').count() + 1
}

const PLAN: &str = r#"
[[plan]]
room = "hall-1"
floor = "2F"
width = 8
depth = 4

[[plan.row]]
x = 1
y = 1
racks = "r001..r004"

[[plan.item]]
component = "crah-1"
label = "CRAH 1"
x = 0
y = 3
w = 2

[[plan]]
room = "batt-z1"
width = 6
depth = 2

[[plan.row]]
battery = "batt-z1"
count = 3
x = 5
y = 0
direction = "west"

[[asset]]
rack = "r002"
u = 40
height = 3
name = "core"

[[asset]]
rack = "r002"
u = 1
name = "bbu"
kind = "battery backup unit"
"#;

#[test]
fn a_site_without_plans_loads_as_before() {
    let s = load("").unwrap();
    assert!(s.layout.plans.is_empty() && s.layout.assets.is_empty());
    assert_eq!(s.layout.rack_units, 42);
}

#[test]
fn plans_place_racks_battery_racks_and_equipment_in_order() {
    let s = load(PLAN).unwrap();
    let p = s.layout.plan("hall-1").unwrap();
    assert_eq!((p.width, p.depth, p.floor.as_deref()), (8, 4, Some("2F")));
    assert_eq!(p.line, line_of(PLAN, "room = \"hall-1\"") - 1);
    let racks: Vec<(&str, u32, u32, Option<u32>)> = p
        .cells
        .iter()
        .filter(|c| c.kind == CellKind::Rack)
        .map(|c| (c.component.as_str(), c.x, c.y, c.position))
        .collect();
    assert_eq!(
        racks,
        [
            ("r001", 1, 1, Some(1)),
            ("r002", 2, 1, Some(2)),
            ("r003", 3, 1, Some(3)),
            ("r004", 4, 1, Some(4))
        ]
    );
    // The row is named after the row component all its racks hang off.
    assert_eq!(p.rows[0].name, "row-1");
    assert!(
        p.cells
            .iter()
            .all(|c| c.kind != CellKind::Rack || c.row.as_deref() == Some("row-1"))
    );
    let (_, crah) = s.layout.cell_of("crah-1").unwrap();
    assert_eq!((crah.x, crah.y, crah.w, crah.h), (0, 3, 2, 1));
    // Battery racks run west from x = 5 and belong to their battery room.
    let b = s.layout.plan("batt-z1").unwrap();
    let xs: Vec<(u32, &str)> = b
        .cells
        .iter()
        .map(|c| (c.x, c.component.as_str()))
        .collect();
    assert_eq!(xs, [(5, "batt-z1"), (4, "batt-z1"), (3, "batt-z1")]);
    assert!(b.cells.iter().all(|c| c.kind == CellKind::BatteryRack));
    // Assets sorted by U within the rack.
    let a: Vec<(u32, u32, &str)> = s
        .layout
        .assets_of("r002")
        .map(|a| (a.u, a.height, a.name.as_str()))
        .collect();
    assert_eq!(a, [(1, 1, "bbu"), (40, 3, "core")]);
}

/// Replaces the first occurrence of `from` in the good plan and expects an error at the line of
/// the block (`[[plan]]`, `[[plan.row]]`, ...) holding `at` (in the changed text), naming `field`
/// and containing `says`.
fn refused(from: &str, to: &str, at: &str, field: &str, says: &str) {
    let extra = PLAN.replacen(from, to, 1);
    assert_ne!(extra, PLAN, "{from} not in the plan");
    let e = load(&extra).expect_err(&format!("accepted: {to}"));
    assert_eq!(e.file, "site.toml");
    assert_eq!(e.field, field, "{e}");
    assert!(e.message.contains(says), "{e}");
    let at = extra
        .find(at)
        .unwrap_or_else(|| panic!("{at} not in the text"));
    let block = extra[..at].rfind("[[").unwrap();
    assert_eq!(e.line, line_of(&extra, &extra[block..]), "{e}");
}

#[test]
fn plan_mistakes_name_the_line_the_field_and_what_was_expected() {
    refused(
        "room = \"hall-1\"",
        "room = \"hall-9\"",
        "room = \"hall-9\"",
        "plan[hall-9].room",
        "expected the id of a room or battery_room",
    );
    refused(
        "room = \"hall-1\"",
        "room = \"crah-1\"",
        "room = \"crah-1\"",
        "plan[crah-1].room",
        "is a crah",
    );
    refused(
        "width = 8",
        "width = 0",
        "room = \"hall-1\"",
        "plan[hall-1].width",
        "expected 1 to 1000",
    );
    // A rack off the plan, a rack in another room's plan, a rack placed twice, two things on a tile.
    refused(
        "x = 1\ny = 1",
        "x = 5\ny = 1",
        "x = 5",
        "plan[hall-1].row[0].x",
        "outside the plan",
    );
    refused(
        "racks = \"r001..r004\"",
        "racks = [\"r001\", \"r900\"]",
        "racks = [",
        "plan[hall-1].row[0].racks",
        "in room `hall-2`",
    );
    refused(
        "racks = \"r001..r004\"",
        "racks = [\"r001\", \"r001\"]",
        "racks = [",
        "plan[hall-1].row[0].racks",
        "already placed",
    );
    refused(
        "x = 0\ny = 3",
        "x = 1\ny = 1",
        "component = \"crah-1\"",
        "plan[hall-1].item[0].x",
        "already holds rack `r001`",
    );
    refused(
        "racks = \"r001..r004\"",
        "racks = \"r004..r001\"",
        "racks = \"r004",
        "plan[hall-1].row[0].racks",
        "not after the last",
    );
    refused(
        "racks = \"r001..r004\"",
        "racks = [\"crah-1\"]",
        "racks = [",
        "plan[hall-1].row[0].racks",
        "is a crah: expected the id of a rack",
    );
    refused(
        "count = 3",
        "count = 0",
        "battery = ",
        "plan[batt-z1].row[0].count",
        "expected 1 to 100",
    );
    refused(
        "direction = \"west\"",
        "direction = \"east\"",
        "battery = ",
        "plan[batt-z1].row[0].x",
        "outside the plan",
    );
    refused(
        "battery = \"batt-z1\"",
        "battery = \"hall-1\"",
        "battery = ",
        "plan[batt-z1].row[0].battery",
        "battery_room",
    );
    refused(
        "component = \"crah-1\"",
        "component = \"crah-9\"",
        "component = \"crah-9\"",
        "plan[hall-1].item[0].component",
        "unknown component",
    );
}

#[test]
fn asset_mistakes_name_the_line_the_field_and_what_was_expected() {
    refused(
        "rack = \"r002\"\nu = 40",
        "rack = \"crah-1\"\nu = 40",
        "rack = \"crah-1\"",
        "asset[0].rack",
        "expected the id of a rack",
    );
    refused(
        "u = 40\nheight = 3",
        "u = 41\nheight = 3",
        "rack = \"r002\"\nu = 41",
        "asset[0].u",
        "expected 1 to 42",
    );
    refused(
        "u = 1\nname = \"bbu\"",
        "u = 41\nname = \"bbu\"",
        "name = \"bbu\"",
        "asset[1].u",
        "overlaps `core`",
    );
}

#[test]
fn a_range_of_rack_ids_that_cannot_be_meant_is_refused() {
    let e = load(&PLAN.replacen("racks = \"r001..r004\"", "racks = \"r001-r004\"", 1)).unwrap_err();
    assert!(e.message.contains("range like"), "{e}");
}

#[test]
fn the_demo_site_has_a_plan_for_every_hall_and_battery_room_and_places_every_rack_once() {
    let s = Site::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/sites/demo.toml"
    )))
    .unwrap();
    for room in s
        .components
        .iter()
        .filter(|c| matches!(c.kind, Kind::Room | Kind::BatteryRoom))
    {
        assert!(s.layout.plan(&room.id).is_some(), "no plan of {}", room.id);
    }
    let racks = s.components.iter().filter(|c| c.kind == Kind::Rack).count();
    let placed = s
        .layout
        .plans
        .iter()
        .flat_map(|p| &p.cells)
        .filter(|c| c.kind == CellKind::Rack)
        .count();
    assert_eq!(placed, racks);
    // r017 is the seventh rack of row h1-02, as the console's place has always said.
    let (p, c) = s.layout.cell_of("r017").unwrap();
    assert_eq!(
        (p.room.as_str(), c.row.as_deref(), c.position),
        ("hall-1", Some("row-h1-02"), Some(7))
    );
    assert!(s.layout.assets_of("r017").count() >= 3);
}
