//! Files read at start-up or from operators: device profiles (TOML), the site model (TOML)
//! and fire-logic traces (CSV, replayed through the fire logic).

use dcim_site::{Live, Site, component_states, evaluate, what_if};
use std::collections::BTreeSet;

/// Any text as a device profile. A rejected profile must name at least one problem with a
/// line inside the file; an accepted one is decoded with all-zero registers and a JSON null.
pub fn profile_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match dcim_profiles::load_str("fuzz.toml", text) {
        Ok(p) => {
            let zeros = [0u16; 256];
            for point in &p.points {
                let _ = point.reading_from_registers(&zeros);
                let _ = point.reading_from_bit(true);
                let _ = point.reading_from_json(&serde_json::Value::Null);
            }
        }
        Err(errors) => {
            assert!(!errors.0.is_empty(), "rejected without a reason");
            let lines = text.lines().count().max(1) + 1;
            for e in &errors.0 {
                assert!(
                    (1..=lines).contains(&e.line),
                    "error line {} outside the file ({lines} lines): {e}",
                    e.line
                );
                assert!(!e.message.is_empty());
            }
        }
    }
}

/// Any text as a site model. An accepted model is evaluated with no live data, and a what-if
/// fails its first component.
pub fn site_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let site = match Site::from_toml_str(text, "fuzz.toml") {
        Ok(s) => s,
        Err(e) => {
            assert!(!e.message.is_empty(), "rejected without a reason");
            return;
        }
    };
    let states = component_states(&site, &Live::new(), &BTreeSet::new(), 0);
    assert_eq!(states.len(), site.components.len());
    let eval = evaluate(&site, &states);
    if let Some(c) = site.components.first() {
        let id = c.id.clone();
        what_if(&site, &states, &eval, &[id.as_str()])
            .unwrap_or_else(|e| panic!("what-if on a known component {id}: {e:?}"));
    }
}

/// Any text as a fire trace, replayed with the default configuration. Every line written is
/// a JSON object: one per reported transition, then the summary line.
pub fn fire_trace(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut out = String::new();
    let Ok(summary) = fire_trace::replay(text, &fire_logic::Config::default(), &mut out) else {
        return;
    };
    let mut lines = 0u32;
    for line in out.lines() {
        lines += 1;
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("replay wrote a line that is not JSON ({e}): {line}"));
        assert!(v.is_object(), "replay line is not an object: {line}");
    }
    assert_eq!(
        lines,
        summary.transitions + 1,
        "lines written vs transitions plus the summary"
    );
    assert!(summary.max_stage >= summary.final_stage);
}
