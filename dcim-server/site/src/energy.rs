//! Whether a power component is energised, decided from measurement.
//!
//! A breaker or contactor position says what the switch is doing, not whether there is voltage
//! behind it: a utility line can be lost with its breaker still closed. So, per component:
//!
//! 1. a fresh, good voltage (`feed.voltage`, `ups.output_voltage`, `ups.input_voltage`)
//!    decides: energised when above [`LIVE_FRACTION`] of `nominal_v` (or above
//!    [`LIVE_VOLTS_WITHOUT_NOMINAL`] when the site gives no nominal voltage);
//! 2. otherwise a fresh, good flow (`feed.current`, `feed.power_kw`, `ups.output_kw`,
//!    `pdu.power_kw`) above [`FLOW_EPSILON`] proves it energised (no flow proves nothing: a
//!    standby line carries none);
//! 3. otherwise the switch position (`feed.breaker_closed`, `pdu.breaker_closed`,
//!    `battery.contactor_closed`), marked as such in `by`;
//! 4. otherwise unknown.
//!
//! Breaker and measurement disagreeing is a trouble ([`Energy::mismatch`]): a switch reported
//! closed with no voltage measured, or reported open with current or power flowing. (A switch
//! reported open with voltage present is not one: the meter may sit on the line side.)

use crate::live::Live;
use crate::model::{Component, Site};
use dcim_points::{Quality, Sample, Value};
use serde::Serialize;

/// Voltage above this fraction of `nominal_v` counts as energised (live for firefighters even
/// when out of the operating band).
pub const LIVE_FRACTION: f64 = 0.10;
/// Without a nominal voltage: volts above which a conductor counts as energised.
pub const LIVE_VOLTS_WITHOUT_NOMINAL: f64 = 50.0;
/// Current (A) or power (kW) above this counts as flowing.
pub const FLOW_EPSILON: f64 = 0.5;

const VOLTAGE_ROLES: [&str; 3] = ["feed.voltage", "ups.output_voltage", "ups.input_voltage"];
const FLOW_ROLES: [&str; 4] = [
    "feed.current",
    "feed.power_kw",
    "ups.output_kw",
    "pdu.power_kw",
];
const SWITCH_ROLES: [&str; 3] = [
    "feed.breaker_closed",
    "pdu.breaker_closed",
    "battery.contactor_closed",
];

/// What is known about a component's energisation.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Energy {
    /// `Some(true)` energised, `Some(false)` de-energised, `None` unknown (or not a power
    /// component).
    pub energised: Option<bool>,
    /// The role that decided (`feed.voltage`, or a switch role when nothing was measured).
    pub by: Option<String>,
    /// Switch position and measurement disagree: what they say.
    pub mismatch: Option<String>,
}

fn fresh(s: Option<&Sample>, now_ms: i64, stale_after_ms: i64) -> Option<&Value> {
    let s = s?;
    (s.quality == Quality::Good && now_ms - s.ts_ms <= stale_after_ms)
        .then_some(s.value.as_ref())
        .flatten()
}

/// Energisation of one component from its bound points (see the module docs).
pub fn energy(site: &Site, c: &Component, live: &Live, now_ms: i64) -> Energy {
    let mut voltage: Option<(&str, f64)> = None;
    let mut flow: Option<(&str, f64)> = None;
    let mut switch: Option<(&str, bool)> = None;
    let mut any = false;
    for b in &c.bindings {
        let role = b.role.as_str();
        let kind = if VOLTAGE_ROLES.contains(&role) {
            0
        } else if FLOW_ROLES.contains(&role) {
            1
        } else if SWITCH_ROLES.contains(&role) {
            2
        } else {
            continue;
        };
        any = true;
        let Some(v) = fresh(live.get(b), now_ms, site.stale_after_ms) else {
            continue;
        };
        match kind {
            0 => {
                if let Some(x) = v.as_f64() {
                    voltage.get_or_insert((role, x));
                }
            }
            1 => {
                if let Some(x) = v.as_f64() {
                    // The largest flow wins (several meters on one component).
                    if flow.is_none_or(|(_, f)| x > f) {
                        flow = Some((role, x));
                    }
                }
            }
            _ => {
                if let Some(x) = v.as_bool() {
                    switch.get_or_insert((role, x));
                }
            }
        }
    }
    if !any {
        return Energy::default();
    }
    let live_threshold = match c.nominal_v {
        Some(n) if n > 0.0 => n * LIVE_FRACTION,
        _ => LIVE_VOLTS_WITHOUT_NOMINAL,
    };
    let mut e = Energy::default();
    if let Some((role, v)) = voltage {
        e.energised = Some(v > live_threshold);
        e.by = Some(role.to_owned());
    } else if let Some((role, _)) = flow.filter(|(_, f)| *f > FLOW_EPSILON) {
        e.energised = Some(true);
        e.by = Some(role.to_owned());
    } else if let Some((role, closed)) = switch {
        e.energised = Some(closed);
        e.by = Some(role.to_owned());
    }
    if let Some((srole, closed)) = switch {
        if closed && let Some((vrole, v)) = voltage.filter(|(_, v)| *v <= live_threshold) {
            e.mismatch = Some(format!(
                "{srole} reports closed but {vrole} measures {v} V: de-energised"
            ));
        } else if !closed && let Some((frole, f)) = flow.filter(|(_, f)| *f > FLOW_EPSILON) {
            e.mismatch = Some(format!(
                "{srole} reports open but {frole} measures {f}: energised"
            ));
        }
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::sample;

    const T: i64 = 1_800_000_000_000;

    fn site() -> Site {
        crate::fixture::test_site(
            r#"[[component]]
id = "feed-a"
kind = "utility_feed"
nominal_v = 22900
device = "meter-a"
points = ["feed.breaker_closed", "feed.voltage", "feed.power_kw"]
[[component]]
id = "pdu"
kind = "pdu"
device = "pdu-1"
points = ["pdu.breaker_closed", "pdu.power_kw"]
[[component]]
id = "tx"
kind = "transformer"
device = "tx-1"
points = ["transformer.temp"]
"#,
        )
    }

    fn of(site: &Site, live: &Live, id: &str) -> Energy {
        energy(site, site.get(id).unwrap(), live, T)
    }

    #[test]
    fn a_lost_feed_with_its_breaker_closed_is_de_energised_and_a_mismatch() {
        // Hazard: utility line A lost (0 V, 0 A) read as LIVE because only its breaker, still
        // closed, was looked at; firefighters told a dead line is live or, worse, the reverse.
        let s = site();
        let mut live = Live::new();
        live.update(sample(
            "meter-a",
            "feed.breaker_closed",
            Value::Bool(true),
            T,
        ));
        live.update(sample(
            "meter-a",
            "feed.voltage",
            Value::Number(22_850.0),
            T,
        ));
        let e = of(&s, &live, "feed-a");
        assert_eq!(e.energised, Some(true));
        assert_eq!(e.by.as_deref(), Some("feed.voltage"));
        assert_eq!(e.mismatch, None);
        live.update(sample("meter-a", "feed.voltage", Value::Number(0.0), T + 1));
        live.update(sample(
            "meter-a",
            "feed.power_kw",
            Value::Number(0.0),
            T + 1,
        ));
        let e = of(&s, &live, "feed-a");
        assert_eq!(e.energised, Some(false));
        let m = e.mismatch.expect("breaker closed, no voltage");
        assert!(m.contains("feed.breaker_closed reports closed"), "{m}");
        // 80 % of nominal is out of band (the feed is down) but still live.
        live.update(sample(
            "meter-a",
            "feed.voltage",
            Value::Number(18_000.0),
            T + 2,
        ));
        assert_eq!(of(&s, &live, "feed-a").energised, Some(true));
    }

    #[test]
    fn without_voltage_flow_proves_energised_and_the_switch_is_the_last_resort() {
        let s = site();
        let mut live = Live::new();
        assert_eq!(of(&s, &live, "pdu").energised, None, "nothing known");
        live.update(sample("pdu-1", "pdu.breaker_closed", Value::Bool(true), T));
        let e = of(&s, &live, "pdu");
        assert_eq!(
            (e.energised, e.by.as_deref()),
            (Some(true), Some("pdu.breaker_closed"))
        );
        // No load proves nothing; the breaker still decides.
        live.update(sample("pdu-1", "pdu.power_kw", Value::Number(0.0), T));
        assert_eq!(
            of(&s, &live, "pdu").by.as_deref(),
            Some("pdu.breaker_closed")
        );
        live.update(sample("pdu-1", "pdu.power_kw", Value::Number(20.0), T));
        assert_eq!(of(&s, &live, "pdu").by.as_deref(), Some("pdu.power_kw"));
        // Open breaker with power flowing: they disagree.
        live.update(sample(
            "pdu-1",
            "pdu.breaker_closed",
            Value::Bool(false),
            T + 1,
        ));
        let e = of(&s, &live, "pdu");
        assert_eq!(e.energised, Some(true));
        assert!(e.mismatch.unwrap().contains("reports open"));
        // A stale measurement is not evidence.
        let e = energy(&s, s.get("pdu").unwrap(), &live, T + 10 * 60_000);
        assert_eq!(e.energised, None);
        assert_eq!(of(&s, &live, "tx"), Energy::default(), "not a power point");
    }
}
