//! The controller's device profile (`device-profiles/rack-controller.toml`) and the register
//! constants of the firmware must describe the same map. This test fails on any disagreement.

use rack_registers::map::{self, DataType, POINTS, PointDef, Table};
use std::collections::BTreeMap;

const PROFILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../device-profiles/rack-controller.toml"
);

fn load() -> toml::Table {
    let text = std::fs::read_to_string(PROFILE).unwrap_or_else(|e| panic!("{PROFILE}: {e}"));
    text.parse::<toml::Table>()
        .unwrap_or_else(|e| panic!("{PROFILE}: {e}"))
}

fn str_field<'a>(t: &'a toml::Table, key: &str, id: &str) -> Option<&'a str> {
    t.get(key).map(|v| {
        v.as_str()
            .unwrap_or_else(|| panic!("{PROFILE}: point `{id}`: field `{key}` is not a string"))
    })
}

fn int_field(t: &toml::Table, key: &str, id: &str) -> Option<i64> {
    t.get(key).map(|v| {
        v.as_integer()
            .unwrap_or_else(|| panic!("{PROFILE}: point `{id}`: field `{key}` is not an integer"))
    })
}

fn float_field(t: &toml::Table, key: &str) -> Option<f64> {
    t.get(key)
        .and_then(|v| v.as_float().or_else(|| v.as_integer().map(|i| i as f64)))
}

/// The profile's description of one point, normalised to the firmware's terms.
fn describe(p: &toml::Table) -> (String, PointDesc) {
    let id = str_field(p, "id", "?")
        .expect("point without id")
        .to_string();
    let table = str_field(p, "table", &id).unwrap_or_else(|| panic!("point `{id}`: no table"));
    let default_type = if table == "coil" || table == "discrete" {
        "bool"
    } else {
        "u16"
    };
    let ty = str_field(p, "type", &id)
        .unwrap_or(default_type)
        .to_string();
    let labels = p
        .get("labels")
        .and_then(|l| l.as_table())
        .map(|l| {
            l.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    let desc = PointDesc {
        role: str_field(p, "role", &id).unwrap_or_default().to_string(),
        labels,
        table: table.to_string(),
        register: int_field(p, "register", &id).unwrap_or(-1),
        ty,
        bit: int_field(p, "bit", &id),
        scale: float_field(p, "scale").unwrap_or(1.0),
    };
    (id, desc)
}

#[derive(Debug, PartialEq)]
struct PointDesc {
    role: String,
    labels: BTreeMap<String, String>,
    table: String,
    register: i64,
    ty: String,
    bit: Option<i64>,
    scale: f64,
}

fn expected(d: &PointDef) -> PointDesc {
    PointDesc {
        role: d.role.to_string(),
        labels: d
            .labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        table: d.table.name().to_string(),
        register: i64::from(d.register),
        ty: d.data_type.name().to_string(),
        bit: match d.data_type {
            DataType::Bit(b) => Some(i64::from(b)),
            _ => None,
        },
        scale: f64::from(d.scale),
    }
}

#[test]
fn profile_and_firmware_register_map_agree() {
    let doc = load();
    let modbus = doc
        .get("modbus")
        .and_then(|m| m.as_table())
        .expect("[modbus] section");
    assert_eq!(
        modbus.get("address_base").and_then(|v| v.as_integer()),
        Some(0),
        "address_base must be 0"
    );
    let order = modbus
        .get("order")
        .and_then(|v| v.as_str())
        .unwrap_or("ABCD");
    assert_eq!(
        order, "ABCD",
        "the firmware sends 32-bit values high word first, big-endian"
    );
    assert_eq!(doc["profile"]["protocol"].as_str(), Some("modbus"));

    let points = doc
        .get("point")
        .and_then(|p| p.as_array())
        .expect("[[point]] entries");
    let mut in_profile = BTreeMap::new();
    for p in points {
        let (id, desc) = describe(p.as_table().expect("point is a table"));
        assert!(
            in_profile.insert(id.clone(), desc).is_none(),
            "point `{id}` listed twice in the profile"
        );
    }
    let mut problems = Vec::new();
    for d in POINTS {
        match in_profile.remove(d.id) {
            None => problems.push(format!(
                "firmware point `{}` is missing from the profile",
                d.id
            )),
            Some(desc) => {
                let want = expected(d);
                let scale_ok = (desc.scale - want.scale).abs() < 1e-6;
                if desc.role != want.role
                    || desc.labels != want.labels
                    || desc.table != want.table
                    || desc.register != want.register
                    || desc.ty != want.ty
                    || desc.bit != want.bit
                    || !scale_ok
                {
                    problems.push(format!(
                        "point `{}`: profile says {desc:?}, firmware says {want:?}",
                        d.id
                    ));
                }
            }
        }
    }
    for id in in_profile.keys() {
        problems.push(format!(
            "profile point `{id}` does not exist in the firmware map"
        ));
    }
    assert!(
        problems.is_empty(),
        "{PROFILE} disagrees with firmware/rack-registers:\n{}",
        problems.join("\n")
    );
}

#[test]
fn writable_points_are_exactly_the_command_coils() {
    let doc = load();
    for p in doc["point"].as_array().unwrap() {
        let p = p.as_table().unwrap();
        let table = p["table"].as_str().unwrap();
        assert!(
            table == "input" || table == "coil",
            "point {:?}: table `{table}` is not in the controller map",
            p["id"]
        );
    }
    let coils = POINTS.iter().filter(|p| p.table == Table::Coil).count();
    assert_eq!(coils, usize::from(map::coil::COUNT));
}

#[test]
fn header_comment_states_the_event_window_the_firmware_uses() {
    let text = std::fs::read_to_string(PROFILE).unwrap();
    let first = map::input::EVENT_WINDOW;
    let last = map::input::COUNT - 1;
    let span = format!("input registers {first}..{last}");
    assert!(
        text.contains(&span),
        "profile header must document the event window as `{span}`"
    );
    assert!(text.contains(&format!("newest {} events", map::EVENT_WINDOW_ENTRIES)));
}

#[test]
fn header_comment_documents_every_event_kind_by_code_and_name() {
    // Hazard: a master (the edge agent, a SCADA) decoding the event window from the profile's
    // documentation misreads a kind the firmware added (a reset loop read as "unknown").
    let text = std::fs::read_to_string(PROFILE).unwrap();
    let header: String = text
        .lines()
        .take_while(|l| l.starts_with('#') || l.is_empty())
        .map(|l| l.trim_start_matches('#').trim())
        .collect::<Vec<_>>()
        .join(" ");
    for (i, (code, name)) in map::event_kind::ALL.iter().enumerate() {
        assert_eq!(usize::from(*code), i + 1, "kinds are contiguous from 1");
        assert!(
            header.contains(&format!("{code} {name}")),
            "profile header does not document event kind `{code} {name}`"
        );
    }
    // The newest kind documented is the newest the firmware has: nothing beyond it.
    let next = map::event_kind::ALL.len() + 1;
    assert!(
        !header.contains(&format!(" {next} ")),
        "kind {next} documented but not in the map"
    );
}

#[test]
fn the_room_gas_release_register_is_an_enum_whose_not_wired_state_is_not_normal() {
    // Hazard: the room's gas release, not wired to board rev B, published as 0 ("not
    // operated"): a reader concludes the release path is supervised and idle.
    let doc = load();
    let p = doc["point"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_table().unwrap())
        .find(|p| p["id"].as_str() == Some("room_gas_release"))
        .expect("room_gas_release point");
    let e = p["enum"].as_table().expect("an enum");
    let state = |v: u16| e.get(&v.to_string()).and_then(|x| x.as_str());
    assert_eq!(state(map::input_state::NORMAL), Some("not_operated"));
    assert_eq!(state(map::input_state::ALARM), Some("operated"));
    assert_eq!(state(map::input_state::FAULT), Some("fault"));
    assert_eq!(state(map::input_state::NOT_FITTED), Some("not_wired"));
}
