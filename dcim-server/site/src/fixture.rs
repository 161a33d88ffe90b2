//! Healthy live values for any site, for tests, benchmarks and simulators: one good sample per
//! binding with a plausible value for its role.

use crate::live::Live;
use crate::model::{Kind, Site};
use dcim_points::{Quality, Sample, Value};

/// A plausible healthy value for a bound role on a component of `kind`.
pub fn healthy_value(kind: Kind, role: &str, nominal_v: Option<f64>) -> Value {
    use Value::{Bool, Number, Text};
    match role {
        r if crate::state::TRUE_WHEN_UP.contains(&r) => Bool(true),
        "chiller.fault" | "crah.fault" | "ups.on_battery" | "ups.alarm" => Bool(false),
        "feed.voltage" | "ups.output_voltage" => Number(nominal_v.unwrap_or(400.0)),
        "ats.source" => Text("A".into()),
        "fire.stage" => Number(0.0),
        "it.power_kw" => Number(5.0),
        "pdu.power_kw" => Number(25.0),
        "ups.output_kw" => Number(375.0),
        "feed.power_kw" => Number(if kind == Kind::UtilityFeed {
            900.0
        } else {
            0.0
        }),
        "chiller.load_kw" => Number(750.0),
        "crah.cooling_kw" => Number(125.0),
        "loop.flow" => Number(180.0),
        "buffer_tank.temp" => Number(8.0),
        "buffer_tank.level_pct" => Number(100.0),
        "link.throughput_gbps" => Number(10.0),
        _ => Number(20.0),
    }
}

/// One good sample per binding of the site, at `ts_ms`.
pub fn healthy_samples(site: &Site, ts_ms: i64) -> Vec<Sample> {
    let mut out = Vec::new();
    for c in &site.components {
        for b in &c.bindings {
            out.push(Sample {
                device: b.device.clone(),
                point: b.role.as_str().replace('.', "_"),
                role: b.role.clone(),
                labels: b.labels.clone(),
                value: Some(healthy_value(c.kind, b.role.as_str(), c.nominal_v)),
                unit: String::new(),
                quality: Quality::Good,
                ts_ms,
            });
        }
    }
    out
}

/// The healthy samples as a [`Live`] table.
pub fn healthy_live(site: &Site, ts_ms: i64) -> Live {
    Live::from_samples(&healthy_samples(site, ts_ms))
}

/// A sample for `device`/`role` (no labels), to override a healthy value in tests.
pub fn sample(device: &str, role: &str, value: Value, ts_ms: i64) -> Sample {
    let role = dcim_points::Role::new(role).expect("a vocabulary role");
    Sample::of_role(device, role, value, ts_ms)
}

/// The site `t` of the `[site]` keys and sections in `rest` (from `t.toml`), for unit tests.
pub fn test_site(rest: &str) -> Site {
    Site::from_toml_str(&format!("[site]\nname = \"t\"\n{rest}"), "t.toml").unwrap()
}
