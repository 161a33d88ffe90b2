//! Texts of the fire alarms, from the fire logic's stage table (`fire_logic::STAGE_TABLE`
//! through `dcim_site::fire`) and the site model's places.
//!
//! A fire-stage or pre-alarm text names the stage by its name (never by its code alone), the
//! temperature that enters it (the table's default threshold), the hottest temperature the
//! device reports now, the actions the fire logic has taken, and where the device is:
//!
//! ```text
//! Battery fire stage: Extinguishing agent (stage3) at bms-z2, battery room batt-z2 "Battery
//! room of UPS zone 2", zone z2. Entered at 80 °C or above; now 82.4 °C
//! (battery.cell_temp.max). Actions: battery contactor opened (power cut), fire blanket
//! dropped, extinguishing patch fired, extinguishing agent released.
//! ```
//!
//! The engine rebuilds it whenever the stage or the temperature changes, so an alarm always
//! shows the present values, not those at activation.

use dcim_site::fire::{self, StageInfo};
use dcim_site::{Kind, Site};
use std::collections::BTreeMap;

/// Temperature roles that describe a rack's or a battery's fire state, hottest first when equal.
pub const FIRE_TEMPERATURE_ROLES: [&str; 4] = [
    "battery.cell_temp.max",
    "rack.temp",
    "camera.region_max_temp",
    "battery.temp",
];

/// Where each device is, from the site model: `device -> "rack r007 in hall-1, row row-h1-01"`.
/// A device bound to several components gets the first one (in site order).
pub fn device_places(site: &Site) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for c in &site.components {
        let mut place = format!("{} {}", kind_words(c.kind), c.id);
        if let Some(n) = &c.name {
            place.push_str(&format!(" \"{n}\""));
        }
        let mut where_ = Vec::new();
        if let Some(r) = &c.room {
            where_.push(format!("in {r}"));
        }
        for g in &c.groups {
            for &m in &g.members {
                let mc = &site.components[m];
                if mc.kind == Kind::Row {
                    where_.push(format!("row {}", mc.id));
                }
            }
        }
        if let Some(z) = &c.zone {
            where_.push(format!("zone {z}"));
        }
        if !where_.is_empty() {
            place.push_str(&format!(", {}", where_.join(", ")));
        }
        for b in &c.bindings {
            out.entry(b.device.clone()).or_insert_with(|| place.clone());
        }
    }
    out
}

fn kind_words(k: Kind) -> &'static str {
    match k {
        Kind::BatteryRoom => "battery room",
        Kind::Rack => "rack",
        Kind::Ups => "UPS",
        other => other.as_str(),
    }
}

/// The text of a fire alarm (see the module docs). `hottest` is `(role, °C)`.
pub fn fire_message(
    rule_name: &str,
    subject: &str,
    stage: Option<&StageInfo>,
    place: Option<&str>,
    hottest: Option<(&str, f64)>,
) -> String {
    let mut m = format!("{rule_name}: ");
    match stage {
        Some(st) => m.push_str(&fire::label(st)),
        None => m.push_str("unknown stage"),
    }
    m.push_str(&format!(" at {subject}"));
    if let Some(p) = place {
        m.push_str(&format!(", {p}"));
    }
    m.push('.');
    if let Some(st) = stage
        && let Some(t) = fire::threshold_c(st)
    {
        m.push_str(&format!(" Entered at {t} °C or above;"));
    } else if let Some(st) = stage {
        m.push_str(&format!(" Entered when {};", st.condition));
    }
    match hottest {
        Some((role, t)) => m.push_str(&format!(" now {t:.1} °C ({role}).")),
        None => m.push_str(" no temperature reading now."),
    }
    if let Some(st) = stage {
        let actions: Vec<&str> = fire::actions_through(st)
            .into_iter()
            .map(fire::action_text)
            .collect();
        if actions.is_empty() {
            m.push_str(" No action yet (warning).");
        } else {
            m.push_str(&format!(" Actions: {}.", actions.join(", ")));
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_name_the_room_row_and_zone() {
        let site = Site::from_toml_str(
            r#"
[site]
name = "t"
[[component]]
id = "row-1"
kind = "row"
device = "sw-1"
points = ["link.up"]
[[component]]
id = "r007"
kind = "rack"
room = "hall-1"
upstream = [{ of = ["row-1"] }]
device = "bms-r007"
points = ["fire.stage"]
[[component]]
id = "batt-z2"
kind = "battery_room"
name = "Battery room of UPS zone 2"
zone = "z2"
device = "bms-z2"
points = ["fire.stage"]
"#,
            "t.toml",
        )
        .unwrap();
        let p = device_places(&site);
        assert_eq!(p["bms-r007"], "rack r007, in hall-1, row row-1");
        assert_eq!(
            p["bms-z2"],
            "battery room batt-z2 \"Battery room of UPS zone 2\", zone z2"
        );
    }

    #[test]
    fn the_text_names_stage_threshold_temperature_actions_and_place() {
        let st = fire::stage_of(&dcim_points::Value::Number(4.0)).unwrap();
        let m = fire_message(
            "Battery fire stage",
            "bms-z2",
            Some(st),
            Some("battery room batt-z2, zone z2"),
            Some(("battery.cell_temp.max", 82.44)),
        );
        assert_eq!(
            m,
            "Battery fire stage: Extinguishing agent (stage3) at bms-z2, battery room batt-z2, \
             zone z2. Entered at 80 °C or above; now 82.4 °C (battery.cell_temp.max). Actions: \
             battery contactor opened (power cut), fire blanket dropped, extinguishing patch \
             fired, extinguishing agent released."
        );
        let coolant = fire::stage_of(&dcim_points::Value::Number(5.0)).unwrap();
        let m = fire_message("F", "r1", Some(coolant), None, None);
        assert!(m.contains("Continuous coolant (stage4)"), "{m}");
        // Stages without a temperature threshold state their condition from the table.
        assert!(
            m.contains(&format!("Entered when {};", coolant.condition)),
            "{m}"
        );
        assert!(m.contains("not fallen"), "{m}");
        assert!(m.contains("no temperature reading now"), "{m}");
        assert!(m.contains("coolant water on"), "{m}");
    }
}
