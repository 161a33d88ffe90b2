//! The console's global search over everything an operator may look for by name: components
//! (racks, battery rooms, rooms, plant), devices and points. Pure: the caller passes the site
//! model, the places and the points the server has received.
//!
//! Matching: the query is split into words; every word must appear (case-insensitive) in what
//! an entry is known by (its id, name, kind, room, row; a point's device, point id, role and
//! the role's description). Ranking: an id equal to the query first, then ids starting with
//! it, then ids containing it, then matches on other text; racks and components before devices
//! and points at equal rank; then by id.

use crate::engine::fire_view::Place;
use dcim_site::Site;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Most results a search returns.
pub const MAX_RESULTS: usize = 100;

/// What a result is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Hit {
    Rack,
    Component,
    Device,
    Point,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchResult {
    pub kind: Hit,
    /// Component id, device id, or `device/point`.
    pub id: String,
    /// The component kind (`rack`, `ups`, ...), or the point's role.
    pub detail: String,
    pub name: Option<String>,
    /// The component a device or point belongs to, when the site model binds it.
    pub component: Option<String>,
    /// Its subsystem when it has one (`power`, `cooling`, `network`), for the console's link.
    pub subsystem: Option<&'static str>,
    pub place: Option<Place>,
    pub device: Option<String>,
    pub point: Option<String>,
    pub score: u32,
}

/// A point the server has received.
pub struct PointRef<'a> {
    pub device: &'a str,
    pub point: &'a str,
    pub role: &'a str,
}

fn score(id: &str, other: &str, q: &str, words: &[String]) -> Option<u32> {
    let id_l = id.to_lowercase();
    let hay = format!("{id_l} {}", other.to_lowercase());
    if !words.iter().all(|w| hay.contains(w.as_str())) {
        return None;
    }
    Some(if id_l == q {
        1000
    } else if id_l.starts_with(q) {
        800
    } else if id_l.contains(q) {
        600
    } else if words.iter().all(|w| id_l.contains(w.as_str())) {
        500
    } else {
        300
    })
}

/// Searches. `descriptions` maps role names to their description.
pub fn search(
    site: Option<&Site>,
    places: &BTreeMap<String, Place>,
    points: &[PointRef<'_>],
    descriptions: &BTreeMap<&str, &str>,
    query: &str,
    limit: usize,
) -> Vec<SearchResult> {
    let q = query.trim().to_lowercase();
    let words: Vec<String> = q.split_whitespace().map(str::to_owned).collect();
    if words.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut device_comp: BTreeMap<&str, &str> = BTreeMap::new();
    if let Some(site) = site {
        component_hits(site, places, &q, &words, &mut device_comp, &mut out);
    }
    let comp_of = |device: &str| -> (Option<String>, Option<&'static str>) {
        let c = device_comp.get(device).copied();
        let sub = c
            .and_then(|c| site?.get(c))
            .and_then(|c| c.kind.subsystem())
            .map(|s| s.as_str());
        (c.map(str::to_owned), sub)
    };
    let mut devices: BTreeSet<&str> = points.iter().map(|p| p.device).collect();
    devices.extend(device_comp.keys().copied());
    for d in devices {
        let (component, subsystem) = comp_of(d);
        if let Some(s) = score(d, component.as_deref().unwrap_or(""), &q, &words) {
            out.push(SearchResult {
                kind: Hit::Device,
                id: d.to_owned(),
                detail: String::new(),
                name: None,
                place: component.as_deref().and_then(|c| places.get(c)).cloned(),
                component,
                subsystem,
                device: Some(d.to_owned()),
                point: None,
                score: s,
            });
        }
    }
    for p in points {
        let desc = descriptions.get(p.role).copied().unwrap_or("");
        out.extend(point_hit(p, desc, comp_of(p.device), places, &q, &words));
    }
    out.sort_by(|a, b| {
        b.score
            .cmp(&a.score)
            .then(a.kind.cmp(&b.kind))
            .then(a.id.cmp(&b.id))
    });
    out.truncate(limit.clamp(1, MAX_RESULTS));
    out
}

/// The site's components that match (by id, name, kind, room, row, zone); notes each bound
/// device's component (the first that binds it) in `device_comp`.
fn component_hits<'a>(
    site: &'a Site,
    places: &BTreeMap<String, Place>,
    q: &str,
    words: &[String],
    device_comp: &mut BTreeMap<&'a str, &'a str>,
    out: &mut Vec<SearchResult>,
) {
    for c in &site.components {
        for b in &c.bindings {
            device_comp
                .entry(b.device.as_str())
                .or_insert(c.id.as_str());
        }
        let place = places.get(&c.id);
        let other = format!(
            "{} {} {} {} {}",
            c.name.as_deref().unwrap_or(""),
            c.kind.as_str(),
            place.and_then(|p| p.room.as_deref()).unwrap_or(""),
            place.and_then(|p| p.row.as_deref()).unwrap_or(""),
            c.zone.as_deref().unwrap_or(""),
        );
        if let Some(s) = score(&c.id, &other, q, words) {
            out.push(SearchResult {
                kind: if c.kind == dcim_site::Kind::Rack {
                    Hit::Rack
                } else {
                    Hit::Component
                },
                id: c.id.clone(),
                detail: c.kind.as_str().to_owned(),
                name: c.name.clone(),
                component: None,
                subsystem: c.kind.subsystem().map(|x| x.as_str()),
                place: place.cloned(),
                device: None,
                point: None,
                score: s,
            });
        }
    }
}

/// A point that matches (by `device/point`, role, role description, component).
fn point_hit(
    p: &PointRef<'_>,
    desc: &str,
    (component, subsystem): (Option<String>, Option<&'static str>),
    places: &BTreeMap<String, Place>,
    q: &str,
    words: &[String],
) -> Option<SearchResult> {
    let id = format!("{}/{}", p.device, p.point);
    let other = format!("{} {desc} {}", p.role, component.as_deref().unwrap_or(""));
    let s = score(&id, &other, q, words)?;
    Some(SearchResult {
        kind: Hit::Point,
        id,
        detail: p.role.to_owned(),
        name: (!desc.is_empty()).then(|| desc.to_owned()),
        place: component.as_deref().and_then(|c| places.get(c)).cloned(),
        component,
        subsystem,
        device: Some(p.device.to_owned()),
        point: Some(p.point.to_owned()),
        // Points rank below what they belong to at an equal match.
        score: s.saturating_sub(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SITE: &str = r#"
[site]
name = "t"

[[component]]
id = "ups-z1"
kind = "ups"
name = "UPS zone 1"
device = "ups-z1"
points = ["ups.on_battery"]

[[component]]
id = "hall-1"
kind = "room"
name = "Data hall 1"

[[generate]]
count = 12
[generate.template]
id = "r{n}"
kind = "rack"
room = "hall-1"
device = "bms-r{n}"
points = ["rack.temp"]
upstream = [{ of = ["hall-1"] }]
"#;

    fn run(q: &str) -> Vec<SearchResult> {
        let site = Site::from_toml_str(SITE, "t.toml").unwrap();
        let places = crate::engine::fire_view::places(&site);
        let points = [
            PointRef {
                device: "bms-r001",
                point: "rack_temp",
                role: "rack.temp",
            },
            PointRef {
                device: "ups-z1",
                point: "on_battery",
                role: "ups.on_battery",
            },
            PointRef {
                device: "meter-x",
                point: "kw",
                role: "feed.power_kw",
            },
        ];
        let desc = BTreeMap::from([
            ("rack.temp", "Rack inlet temperature"),
            ("ups.on_battery", "UPS running on battery"),
        ]);
        search(Some(&site), &places, &points, &desc, q, 20)
    }

    #[test]
    fn an_exact_id_comes_first_then_prefixes_then_the_rest() {
        // Hazard: the operator typing the id of the burning rack and being offered r010 first.
        let r = run("r001");
        assert_eq!((r[0].kind, r[0].id.as_str()), (Hit::Rack, "r001"));
        assert_eq!(r[0].place.as_ref().unwrap().room.as_deref(), Some("hall-1"));
        assert!(r.iter().any(|x| x.kind == Hit::Device
            && x.id == "bms-r001"
            && x.component.as_deref() == Some("r001")));
        assert!(
            r.iter()
                .any(|x| x.kind == Hit::Point && x.id == "bms-r001/rack_temp")
        );
        let r = run("r01");
        assert_eq!(
            r.iter().filter(|x| x.kind == Hit::Rack).count(),
            3,
            "r010, r011, r012"
        );
    }

    #[test]
    fn every_word_must_match_names_roles_and_descriptions() {
        // Hazard: a point reachable only by its id, not by what people call it.
        let r = run("battery ups");
        assert_eq!(r[0].id, "ups-z1/on_battery", "{r:?}");
        assert_eq!(r[0].subsystem, Some("power"));
        let r = run("HALL-1 data");
        assert_eq!(r[0].id, "hall-1");
        // A device the site model does not bind is still found, without a component.
        let r = run("meter-x");
        assert!(
            r.iter()
                .any(|x| x.kind == Hit::Device && x.component.is_none())
        );
        assert!(run("   ").is_empty());
        assert!(run("nothing-like-this").is_empty());
    }
}
