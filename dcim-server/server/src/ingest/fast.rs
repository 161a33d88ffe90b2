//! One-pass decoding of telemetry batches, the ingest's hottest path.
//!
//! `dcim_wire::decode` parses every payload twice (once for the version, once for the body),
//! and `dcim_points::Value` is an untagged enum, which serde decodes by buffering each value
//! and trying the variants in turn, building an error for each miss. Here the batch is parsed
//! once into mirror types whose value decoder dispatches on the JSON type directly; the result
//! is converted into the shared types with exhaustive struct literals, so a field added to
//! `Sample` or `TelemetryBatch` fails to compile here instead of being dropped silently.
//!
//! Per sample it allocates only the strings a `Sample` owns (device, point, unit, role): the
//! role is read borrowed from the payload and checked against the vocabulary once per run of
//! equal roles (a batch is usually one role after another of the same kind), not once per
//! sample, and the owned `Role` is a clone of the checked one.
//!
//! It accepts exactly what `dcim_wire::decode::<TelemetryBatch>` accepts (tests compare the
//! two); whenever this decoder refuses a payload, or the version is not ours, the payload is
//! decoded again by `dcim_wire::decode` so that the error message is the wire crate's.

use dcim_points::{Quality, Role, Sample, Value};
use dcim_wire::{TelemetryBatch, WireError};
use serde::Deserialize;
use serde::de::{Deserializer, Visitor};
use std::borrow::Cow;
use std::collections::BTreeMap;

#[derive(Deserialize)]
struct BatchIn<'a> {
    v: u32,
    agent: String,
    #[serde(default)]
    epoch: String,
    seq: u64,
    #[serde(borrow)]
    samples: Vec<SampleIn<'a>>,
}

/// A sample as `Sample` reads it (same fields, same order: a JSON array form decodes the same),
/// with the role borrowed until it is checked.
#[derive(Deserialize)]
struct SampleIn<'a> {
    device: String,
    point: String,
    #[serde(borrow)]
    role: Cow<'a, str>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    value: Option<ValueIn>,
    #[serde(default)]
    unit: String,
    quality: Quality,
    ts_ms: i64,
}

/// `dcim_points::Value` as the untagged enum reads it: a JSON bool, number or string.
struct ValueIn(Value);

impl<'de> Deserialize<'de> for ValueIn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ValueIn;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a boolean, a number or a string")
            }
            fn visit_bool<E>(self, b: bool) -> Result<ValueIn, E> {
                Ok(ValueIn(Value::Bool(b)))
            }
            fn visit_i64<E>(self, n: i64) -> Result<ValueIn, E> {
                Ok(ValueIn(Value::Number(n as f64)))
            }
            fn visit_u64<E>(self, n: u64) -> Result<ValueIn, E> {
                Ok(ValueIn(Value::Number(n as f64)))
            }
            fn visit_f64<E>(self, n: f64) -> Result<ValueIn, E> {
                Ok(ValueIn(Value::Number(n)))
            }
            fn visit_str<E>(self, s: &str) -> Result<ValueIn, E> {
                Ok(ValueIn(Value::Text(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<ValueIn, E> {
                Ok(ValueIn(Value::Text(s)))
            }
        }
        d.deserialize_any(V)
    }
}

/// The last role checked against the vocabulary, reused while the next samples have the same.
#[derive(Default)]
struct RoleCache(Option<Role>);

impl RoleCache {
    /// The role named `name`, or None when the vocabulary does not know it (the wire decoder
    /// refuses the batch then).
    #[inline]
    fn role(&mut self, name: &str) -> Option<Role> {
        match &self.0 {
            Some(r) if r.as_str() == name => Some(r.clone()),
            _ => {
                let r = Role::new(name).ok()?;
                self.0 = Some(r.clone());
                Some(r)
            }
        }
    }
}

impl SampleIn<'_> {
    /// The shared type, with an exhaustive literal (a field added to `Sample` must be added
    /// here); None for a role the vocabulary does not know.
    #[inline]
    fn into_sample(self, roles: &mut RoleCache) -> Option<Sample> {
        Some(Sample {
            device: self.device,
            point: self.point,
            role: roles.role(&self.role)?,
            labels: self.labels,
            value: self.value.map(|v| v.0),
            unit: self.unit,
            quality: self.quality,
            ts_ms: self.ts_ms,
        })
    }
}

/// Decodes a telemetry payload in one pass; errors are the wire crate's.
pub fn telemetry(payload: &[u8]) -> Result<TelemetryBatch, WireError> {
    match serde_json::from_slice::<BatchIn>(payload) {
        Ok(b) if b.v == dcim_wire::VERSION => {
            let mut roles = RoleCache::default();
            let samples: Option<Vec<Sample>> = b
                .samples
                .into_iter()
                .map(|s| s.into_sample(&mut roles))
                .collect();
            match samples {
                Some(samples) => Ok(TelemetryBatch {
                    v: b.v,
                    agent: b.agent,
                    epoch: b.epoch,
                    seq: b.seq,
                    samples,
                }),
                None => dcim_wire::decode(payload),
            }
        }
        _ => dcim_wire::decode(payload),
    }
}

/// A telemetry batch read without copying its strings (for the priority lane's look at it).
#[derive(Deserialize)]
struct BatchRef<'a> {
    v: u32,
    #[serde(borrow)]
    agent: Cow<'a, str>,
    #[serde(default, borrow)]
    epoch: Cow<'a, str>,
    seq: u64,
    #[serde(borrow)]
    samples: Vec<SampleRef<'a>>,
}

#[derive(Deserialize)]
struct SampleRef<'a> {
    #[serde(borrow)]
    device: Cow<'a, str>,
    #[serde(borrow)]
    point: Cow<'a, str>,
    #[serde(borrow)]
    role: Cow<'a, str>,
    #[serde(default, borrow)]
    labels: BTreeMap<Cow<'a, str>, Cow<'a, str>>,
    value: Option<ValueIn>,
    #[serde(default, borrow)]
    unit: Cow<'a, str>,
    quality: Quality,
    ts_ms: i64,
}

/// The samples of a telemetry payload whose role `keep` selects, with the batch's agent, epoch
/// and seq; the other samples are read but not copied. None when the payload is not a valid batch
/// of this version (the bulk lane reports it) or no sample is selected.
pub fn select(payload: &[u8], keep: impl Fn(&str) -> bool) -> Option<TelemetryBatch> {
    let b: BatchRef = serde_json::from_slice(payload).ok()?;
    if b.v != dcim_wire::VERSION {
        return None;
    }
    let mut samples = Vec::new();
    for s in b.samples.into_iter().filter(|s| keep(&s.role)) {
        samples.push(Sample {
            device: s.device.into_owned(),
            point: s.point.into_owned(),
            role: Role::new(&s.role).ok()?,
            labels: s
                .labels
                .into_iter()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
            value: s.value.map(|v| v.0),
            unit: s.unit.into_owned(),
            quality: s.quality,
            ts_ms: s.ts_ms,
        });
    }
    (!samples.is_empty()).then(|| TelemetryBatch {
        v: b.v,
        agent: b.agent.into_owned(),
        epoch: b.epoch.into_owned(),
        seq: b.seq,
        samples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both(
        json: &str,
    ) -> (
        Result<TelemetryBatch, WireError>,
        Result<TelemetryBatch, WireError>,
    ) {
        (
            telemetry(json.as_bytes()),
            dcim_wire::decode::<TelemetryBatch>(json.as_bytes()),
        )
    }

    #[test]
    fn same_result_as_the_wire_decoder() {
        let v = dcim_wire::VERSION;
        let cases = [
            format!(
                r#"{{"v":{v},"agent":"a","seq":1,"samples":[{{"device":"d","point":"p","role":"ups.load_pct","value":12.5,"unit":"%","quality":"good","ts_ms":5}}]}}"#
            ),
            format!(
                r#"{{"v":{v},"agent":"a","seq":2,"samples":[{{"device":"d","point":"p","role":"feed.breaker_closed","labels":{{"feed":"A"}},"value":true,"quality":"good","ts_ms":5}},{{"device":"d","point":"q","role":"custom.x","value":"on","quality":"bad","ts_ms":6}},{{"device":"d","point":"r","role":"custom.x","value":null,"quality":"comm_lost","ts_ms":7}},{{"device":"d","point":"s","role":"custom.x","quality":"good","ts_ms":8}},{{"device":"d","point":"t","role":"custom.x","value":-3,"quality":"good","ts_ms":9,"extra":1}}]}}"#
            ),
            format!(r#"{{"v":{v},"agent":"a","seq":3,"samples":[]}}"#),
            format!(r#"{{"v":{v},"agent":"a","epoch":"e9","seq":4,"samples":[]}}"#),
            format!(r#"{{"v":{v},"agent":"a","epoch":7,"seq":4,"samples":[]}}"#),
            // Refused by both: arrays and objects are not values, unknown roles, bad version,
            // missing fields, not JSON.
            format!(
                r#"{{"v":{v},"agent":"a","seq":1,"samples":[{{"device":"d","point":"p","role":"custom.x","value":[1],"quality":"good","ts_ms":5}}]}}"#
            ),
            format!(
                r#"{{"v":{v},"agent":"a","seq":1,"samples":[{{"device":"d","point":"p","role":"no.such.role","value":1,"quality":"good","ts_ms":5}}]}}"#
            ),
            r#"{"v":99,"agent":"a","seq":1,"samples":[]}"#.to_string(),
            // The role check is cached across a run of equal roles: roles alternating, an
            // unknown role after known ones (the whole batch is refused), a role spelled with
            // escapes, a sample in the array form the derived decoders also read.
            format!(
                r#"{{"v":{v},"agent":"a","seq":5,"samples":[{{"device":"d","point":"p","role":"rack.temp","value":1,"quality":"good","ts_ms":5}},{{"device":"d","point":"q","role":"rack.temp","value":2,"quality":"good","ts_ms":5}},{{"device":"d","point":"r","role":"fire.stage","value":3,"quality":"good","ts_ms":5}},{{"device":"d","point":"s","role":"rack.temp","value":4,"quality":"good","ts_ms":5}}]}}"#
            ),
            format!(
                r#"{{"v":{v},"agent":"a","seq":6,"samples":[{{"device":"d","point":"p","role":"rack.temp","value":1,"quality":"good","ts_ms":5}},{{"device":"d","point":"q","role":"rack.tem","value":2,"quality":"good","ts_ms":5}}]}}"#
            ),
            format!(
                r#"{{"v":{v},"agent":"a","seq":7,"samples":[{{"device":"d\u002d1","point":"p","role":"rack\u002etemp","value":1,"quality":"good","ts_ms":5}},{{"device":"d","point":"q","role":"rack.temp","value":2,"quality":"good","ts_ms":5}}]}}"#
            ),
            format!(
                r#"{{"v":{v},"agent":"a","seq":8,"samples":[["d","p","rack.temp",{{}},1.5,"degC","good",5]]}}"#
            ),
            format!(
                r#"{{"v":{v},"agent":"a","seq":9,"samples":[{{"device":"d","point":"p","role":"rack.temp","role":"rack.temp","value":1,"quality":"good","ts_ms":5}}]}}"#
            ),
            format!(r#"{{"v":{v},"agent":"a","samples":[]}}"#),
            "not json".to_string(),
        ];
        for c in &cases {
            let (fast, wire) = both(c);
            match (&fast, &wire) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{c}"),
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{c}"),
                _ => panic!("decoders disagree on {c}: {fast:?} vs {wire:?}"),
            }
        }
        // The cases exercise both outcomes.
        assert!(telemetry(cases[1].as_bytes()).unwrap().samples.len() == 5);
        assert!(telemetry(cases[5].as_bytes()).is_err());
        assert_eq!(telemetry(cases[3].as_bytes()).unwrap().epoch, "e9");
        let roles: Vec<String> = telemetry(cases[8].as_bytes())
            .unwrap()
            .samples
            .iter()
            .map(|s| s.role.as_str().to_owned())
            .collect();
        assert_eq!(roles, ["rack.temp", "rack.temp", "fire.stage", "rack.temp"]);
        assert!(telemetry(cases[9].as_bytes()).is_err(), "unknown role");
        assert_eq!(
            telemetry(cases[10].as_bytes()).unwrap().samples[0].device,
            "d-1"
        );
        assert_eq!(telemetry(cases[11].as_bytes()).unwrap().samples.len(), 1);
        assert!(telemetry(cases[12].as_bytes()).is_err(), "duplicate field");
    }

    #[test]
    fn select_keeps_the_chosen_roles_as_the_full_decoder_reads_them() {
        let v = dcim_wire::VERSION;
        let json = format!(
            r#"{{"v":{v},"agent":"a","epoch":"e1","seq":7,"samples":[{{"device":"d","point":"p","role":"rack.temp","value":21.5,"unit":"degC","quality":"good","ts_ms":5}},{{"device":"r\u002d1","point":"s","role":"fire.stage","labels":{{"k":"v"}},"value":3,"quality":"good","ts_ms":6}}]}}"#
        );
        let full = telemetry(json.as_bytes()).unwrap();
        let sel = select(json.as_bytes(), |r| r == "fire.stage").unwrap();
        // The epoch too: the priority lane checks duplicates in the batch's own stream.
        assert_eq!(
            (sel.agent.as_str(), sel.epoch.as_str(), sel.seq),
            ("a", "e1", 7)
        );
        assert_eq!(sel.samples, vec![full.samples[1].clone()]);
        assert_eq!(sel.samples[0].device, "r-1", "escaped strings are decoded");
        assert!(select(json.as_bytes(), |r| r == "ups.on_battery").is_none());
        assert!(select(b"not json", |_| true).is_none());
    }
}
