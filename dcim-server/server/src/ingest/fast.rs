//! One-pass decoding of telemetry batches, the ingest's hottest path.
//!
//! `dcim_wire::decode` parses every payload twice (once for the version, once for the body),
//! and `dcim_points::Value` is an untagged enum, which serde decodes by buffering each value
//! and trying the variants in turn, building an error for each miss. Here the batch is parsed
//! once into mirror types whose value decoder dispatches on the JSON type directly; the result
//! is converted into the shared types with exhaustive struct literals, so a field added to
//! `Sample` or `TelemetryBatch` fails to compile here instead of being dropped silently.
//!
//! It accepts exactly what `dcim_wire::decode::<TelemetryBatch>` accepts (tests compare the
//! two); whenever this decoder refuses a payload, or the version is not ours, the payload is
//! decoded again by `dcim_wire::decode` so that the error message is the wire crate's.

use dcim_points::{Quality, Role, Sample, Value};
use dcim_wire::{TelemetryBatch, WireError};
use serde::Deserialize;
use serde::de::{Deserializer, Visitor};
use std::collections::BTreeMap;

#[derive(Deserialize)]
struct BatchIn {
    v: u32,
    agent: String,
    #[serde(default)]
    epoch: String,
    seq: u64,
    samples: Vec<SampleIn>,
}

#[derive(Deserialize)]
struct SampleIn {
    device: String,
    point: String,
    role: Role,
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

impl From<SampleIn> for Sample {
    fn from(s: SampleIn) -> Sample {
        Sample {
            device: s.device,
            point: s.point,
            role: s.role,
            labels: s.labels,
            value: s.value.map(|v| v.0),
            unit: s.unit,
            quality: s.quality,
            ts_ms: s.ts_ms,
        }
    }
}

/// Decodes a telemetry payload in one pass; errors are the wire crate's.
pub fn telemetry(payload: &[u8]) -> Result<TelemetryBatch, WireError> {
    match serde_json::from_slice::<BatchIn>(payload) {
        Ok(b) if b.v == dcim_wire::VERSION => Ok(TelemetryBatch {
            v: b.v,
            agent: b.agent,
            epoch: b.epoch,
            seq: b.seq,
            samples: b.samples.into_iter().map(Sample::from).collect(),
        }),
        _ => dcim_wire::decode(payload),
    }
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
    }
}
