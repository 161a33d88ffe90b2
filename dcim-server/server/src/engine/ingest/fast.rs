//! One-pass decoding of telemetry batches, the ingest's hottest path.
//!
//! `dcim_wire::decode` parses every payload twice (once for the version, once for the body),
//! and `dcim_points::Value` is an untagged enum, which serde decodes by buffering each value
//! and trying the variants in turn, building an error for each miss. Here the batch is parsed
//! once into mirror types whose value decoder dispatches on the JSON type directly; the result
//! is converted into the shared types with exhaustive struct literals, so a field added to
//! `Sample` or `TelemetryBatch` fails to compile here instead of being dropped silently.
//!
//! Per sample it allocates at most the strings a `Sample` owns (device, point, unit; none when
//! a recycled vector lends its strings, see [`recycle`]): the role is read borrowed from the
//! payload and checked against the vocabulary once per run of equal roles (a batch is usually
//! one role after another of the same kind), not once per sample, and the owned `Role` is a
//! clone of the checked one (a vocabulary role is the vocabulary's name: no allocation).
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
    if let Some(b) = scan::batch(payload) {
        return Ok(b);
    }
    serde_decode(payload)
}

/// The serde path: every payload the scanner leaves (escapes, unknown fields, another
/// version, errors...).
fn serde_decode(payload: &[u8]) -> Result<TelemetryBatch, WireError> {
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

/// Sample vectors given back after a batch was handled ([`recycle`]), reused by the scanner with
/// the samples still in them: the scanner writes each new sample's device, point and unit into
/// the strings of the old sample at its place (their allocations reused; every field of the new
/// sample is still set from the payload), so a steady stream of batches allocates no string
/// per sample (four before this, with the role's), and frees none. And the vector itself is not freed
/// after the batch's small strings, which made glibc sweep its free lists once per batch.
static SPARE: std::sync::Mutex<Vec<Vec<Sample>>> = std::sync::Mutex::new(Vec::new());
/// At most this many spare vectors, each of at most `SPARE_CAPACITY` samples (a few MB).
const SPARE_COUNT: usize = 4;
const SPARE_CAPACITY: usize = 4096;

/// Gives a handled batch's sample vector back for reuse.
pub fn recycle(v: Vec<Sample>) {
    if v.capacity() == 0 || v.capacity() > SPARE_CAPACITY {
        return;
    }
    if let Ok(mut spare) = SPARE.lock()
        && spare.len() < SPARE_COUNT
    {
        spare.push(v);
    }
}

/// A vector for about `hint` samples: a spare one (with its old samples) when there is one.
fn vector(hint: usize) -> Vec<Sample> {
    let spare = SPARE.lock().ok().and_then(|mut s| s.pop());
    match spare {
        Some(mut v) => {
            v.reserve(hint.saturating_sub(v.len()));
            v
        }
        None => Vec::with_capacity(hint),
    }
}

/// `text` in an owned string: the old string's allocation when there is one.
#[inline]
fn reuse(old: Option<&mut String>, text: &str) -> String {
    match old {
        Some(o) => {
            let mut o = std::mem::take(o);
            o.clear();
            o.push_str(text);
            o
        }
        None => text.to_owned(),
    }
}

/// A scanner for the batches agents send (`dcim_wire::encode`'s compact JSON: no escapes in
/// strings, no unknown fields): one pass over the bytes, each string copied once into the
/// `Sample` that owns it, no intermediate values. It answers only when it is sure to decode
/// exactly as serde does; anything else (a backslash or a control character in a string, an
/// unknown or repeated field, another version, a number it does not parse itself, malformed
/// JSON) returns None and the serde path decides. Numbers with a fraction or an exponent are
/// handed to serde_json's own parser, so that a value is the same float either way.
mod scan {
    use super::{RoleCache, SPARE_CAPACITY, reuse};
    use dcim_points::{Quality, Sample, Value};
    use dcim_wire::TelemetryBatch;
    use serde::Deserialize;
    use serde::de::IntoDeserializer;
    use std::collections::BTreeMap;

    struct Cur<'a> {
        /// The payload, checked as UTF-8 once (serde_json checks each string; a payload that
        /// is not UTF-8 is left to it).
        t: &'a str,
        b: &'a [u8],
        i: usize,
    }

    impl<'a> Cur<'a> {
        #[inline]
        fn ws(&mut self) {
            while let Some(c) = self.b.get(self.i) {
                if !matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
                    break;
                }
                self.i += 1;
            }
        }

        /// Skips whitespace and takes `c`.
        #[inline]
        fn eat(&mut self, c: u8) -> Option<()> {
            self.ws();
            (self.b.get(self.i) == Some(&c)).then(|| self.i += 1)
        }

        /// Skips whitespace and looks at the next byte.
        #[inline]
        fn peek(&mut self) -> Option<u8> {
            self.ws();
            self.b.get(self.i).copied()
        }

        /// A string without escapes or control characters, borrowed.
        #[inline]
        fn str(&mut self) -> Option<&'a str> {
            self.eat(b'"')?;
            let start = self.i;
            let len = self.b[start..]
                .iter()
                .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
            if self.b[start + len] != b'"' {
                return None;
            }
            self.i = start + len + 1;
            // The payload is UTF-8 (checked once) and both ends are at ASCII quotes.
            self.t.get(start..start + len)
        }

        /// The bytes of a JSON number token (not checked).
        #[inline]
        fn number_token(&mut self) -> &'a [u8] {
            self.ws();
            let start = self.i;
            while let Some(c) = self.b.get(self.i) {
                if !matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') {
                    break;
                }
                self.i += 1;
            }
            &self.b[start..self.i]
        }

        /// A non-negative integer of at most 18 digits without a leading zero (so no
        /// overflow), or None.
        #[inline]
        fn small_uint(&mut self) -> Option<u64> {
            digits(self.number_token())
        }

        /// An `i64` as serde reads one (an integer of at most 18 digits, optionally negative).
        #[inline]
        fn small_int(&mut self) -> Option<i64> {
            let t = self.number_token();
            match t.split_first() {
                // serde_json reads `-0` as a float (not an integer): left to serde.
                Some((b'-', rest)) => digits(rest).filter(|&n| n > 0).map(|n| -(n as i64)),
                _ => digits(t).map(|n| n as i64),
            }
        }

        /// A sample's value: null, a boolean, a number or a string.
        #[inline]
        fn value(&mut self) -> Option<Option<Value>> {
            match self.peek()? {
                b'n' => self.word(b"null").map(|_| None),
                b't' => self.word(b"true").map(|_| Some(Value::Bool(true))),
                b'f' => self.word(b"false").map(|_| Some(Value::Bool(false))),
                b'"' => Some(Some(Value::Text(self.str()?.to_owned()))),
                b'-' | b'0'..=b'9' => {
                    let t = self.number_token();
                    let plain = match t.split_first() {
                        // `-0` is the float -0.0 for serde_json: its parser below.
                        Some((b'-', rest)) => {
                            digits(rest).filter(|&n| n > 0).map(|n| -(n as i64) as f64)
                        }
                        _ => digits(t).map(|n| n as f64),
                    };
                    match plain {
                        Some(x) => Some(Some(Value::Number(x))),
                        // A fraction or an exponent: serde_json's parser, for the same float.
                        None => serde_json::from_slice::<f64>(t)
                            .ok()
                            .map(|x| Some(Value::Number(x))),
                    }
                }
                _ => None,
            }
        }

        #[inline]
        fn word(&mut self, w: &[u8]) -> Option<()> {
            if self.b[self.i..].starts_with(w) {
                self.i += w.len();
                Some(())
            } else {
                None
            }
        }

        /// `{"k":"v",...}` of strings (a repeated key: the last wins, as serde's map).
        fn labels(&mut self) -> Option<BTreeMap<String, String>> {
            self.eat(b'{')?;
            let mut m = BTreeMap::new();
            if self.peek()? == b'}' {
                self.i += 1;
                return Some(m);
            }
            loop {
                let k = self.str()?;
                self.eat(b':')?;
                let v = self.str()?;
                m.insert(k.to_owned(), v.to_owned());
                match self.peek()? {
                    b',' => self.i += 1,
                    b'}' => {
                        self.i += 1;
                        return Some(m);
                    }
                    _ => return None,
                }
            }
        }

        /// One sample object, its fields in any order, each once.
        /// One sample; `old`, a sample of an earlier batch whose strings it may reuse.
        fn sample(&mut self, roles: &mut RoleCache, old: Option<&mut Sample>) -> Option<Sample> {
            let (mut old_device, mut old_point, mut old_unit) = match old {
                Some(o) => (Some(&mut o.device), Some(&mut o.point), Some(&mut o.unit)),
                None => (None, None, None),
            };
            self.eat(b'{')?;
            let (mut device, mut point, mut role) = (None, None, None);
            let (mut labels, mut value, mut unit) = (None, None, None);
            let (mut quality, mut ts_ms) = (None, None);
            if self.peek()? == b'}' {
                return None;
            }
            loop {
                let key = self.str()?;
                self.eat(b':')?;
                match key {
                    "device" if device.is_none() => {
                        device = Some(reuse(old_device.take(), self.str()?));
                    }
                    "point" if point.is_none() => {
                        point = Some(reuse(old_point.take(), self.str()?));
                    }
                    "role" if role.is_none() => role = Some(roles.role(self.str()?)?),
                    "labels" if labels.is_none() => labels = Some(self.labels()?),
                    "value" if value.is_none() => value = Some(self.value()?),
                    "unit" if unit.is_none() => unit = Some(reuse(old_unit.take(), self.str()?)),
                    "quality" if quality.is_none() => {
                        let q = self.str()?;
                        let d: serde::de::value::StrDeserializer<serde::de::value::Error> =
                            q.into_deserializer();
                        quality = Some(Quality::deserialize(d).ok()?);
                    }
                    "ts_ms" if ts_ms.is_none() => ts_ms = Some(self.small_int()?),
                    _ => return None,
                }
                match self.peek()? {
                    b',' => self.i += 1,
                    b'}' => {
                        self.i += 1;
                        break;
                    }
                    _ => return None,
                }
            }
            Some(Sample {
                device: device?,
                point: point?,
                role: role?,
                labels: labels.unwrap_or_default(),
                value: value.flatten(),
                unit: unit.unwrap_or_default(),
                quality: quality?,
                ts_ms: ts_ms?,
            })
        }

        fn samples(&mut self) -> Option<Vec<Sample>> {
            self.eat(b'[')?;
            // Compact samples are 100 to 200 bytes: one allocation for a whole batch.
            let mut v = super::vector(((self.b.len() - self.i) / 100).min(SPARE_CAPACITY));
            let mut roles = RoleCache::default();
            // Samples `..n` are this batch's; from `n` on, an earlier batch's, to reuse.
            let mut n = 0;
            if self.peek()? == b']' {
                self.i += 1;
                v.clear();
                return Some(v);
            }
            loop {
                let s = self.sample(&mut roles, v.get_mut(n))?;
                match v.get_mut(n) {
                    Some(old) => *old = s,
                    None => v.push(s),
                }
                n += 1;
                match self.peek()? {
                    b',' => self.i += 1,
                    b']' => {
                        self.i += 1;
                        v.truncate(n);
                        return Some(v);
                    }
                    _ => return None,
                }
            }
        }
    }

    /// `[1-9][0-9]{0,17}` or `0`.
    #[inline]
    fn digits(t: &[u8]) -> Option<u64> {
        if t.is_empty() || t.len() > 18 || (t[0] == b'0' && t.len() > 1) {
            return None;
        }
        let mut n: u64 = 0;
        for &c in t {
            if !c.is_ascii_digit() {
                return None;
            }
            n = n * 10 + u64::from(c - b'0');
        }
        Some(n)
    }

    /// The batch, when the scanner can decode it exactly as serde does; else None.
    pub fn batch(payload: &[u8]) -> Option<TelemetryBatch> {
        let t = std::str::from_utf8(payload).ok()?;
        let mut c = Cur {
            t,
            b: t.as_bytes(),
            i: 0,
        };
        c.eat(b'{')?;
        let (mut v, mut agent, mut epoch, mut seq, mut samples) = (None, None, None, None, None);
        if c.peek()? == b'}' {
            return None;
        }
        loop {
            let key = c.str()?;
            c.eat(b':')?;
            match key {
                "v" if v.is_none() => v = Some(c.small_uint()?),
                "agent" if agent.is_none() => agent = Some(c.str()?.to_owned()),
                "epoch" if epoch.is_none() => epoch = Some(c.str()?.to_owned()),
                "seq" if seq.is_none() => seq = Some(c.small_uint()?),
                "samples" if samples.is_none() => samples = Some(c.samples()?),
                _ => return None,
            }
            match c.peek()? {
                b',' => c.i += 1,
                b'}' => {
                    c.i += 1;
                    break;
                }
                _ => return None,
            }
        }
        c.ws();
        if c.i != payload.len() || v? != u64::from(dcim_wire::VERSION) {
            return None;
        }
        Some(TelemetryBatch {
            v: dcim_wire::VERSION,
            agent: agent?,
            epoch: epoch.unwrap_or_default(),
            seq: seq?,
            samples: samples?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both decoders give the same batch (to the bit: floats compared by their encoding, so
    /// `-0.0` is not `0.0`) or the same error.
    fn same(bytes: &[u8]) -> bool {
        let fast = telemetry(bytes);
        let wire = dcim_wire::decode::<TelemetryBatch>(bytes);
        let shown = String::from_utf8_lossy(bytes);
        match (&fast, &wire) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a, b, "{shown}");
                assert_eq!(dcim_wire::encode(a), dcim_wire::encode(b), "{shown}");
                true
            }
            (Err(a), Err(b)) => {
                assert_eq!(a.to_string(), b.to_string(), "{shown}");
                false
            }
            _ => panic!("decoders disagree on {shown}: {fast:?} vs {wire:?}"),
        }
    }

    #[test]
    fn the_scanner_decodes_as_serde_or_leaves_the_payload_to_it() {
        // Hazard: the fast scanner reading a value, a timestamp or a quality differently from
        // the wire decoder (an alarm on a wrong number, a stale sample taken as fresh), or
        // accepting a payload the wire decoder refuses.
        let v = dcim_wire::VERSION;
        let good = [
            format!(
                r#"{{"v":{v},"agent":"load0","epoch":"e1","seq":12,"samples":[{{"device":"dev-1","point":"t1","role":"rack.temp","value":20.5,"unit":"°C","quality":"good","ts_ms":1800000000000}},{{"device":"ups-1","point":"on_batt","role":"ups.on_battery","labels":{{"feed":"A","z":"1","feed":"B"}},"value":true,"quality":"stale","ts_ms":-5}},{{"device":"d","point":"s","role":"custom.x","value":"on","quality":"bad","ts_ms":0}},{{"device":"d","point":"n","role":"custom.x","value":null,"quality":"comm_lost","ts_ms":7}},{{"device":"d","point":"m","role":"custom.x","quality":"good","ts_ms":8,"unit":""}},{{"ts_ms":9,"quality":"good","value":-3,"role":"custom.x","point":"o","device":"d"}},{{"device":"d","point":"f","role":"custom.x","value":false,"quality":"good","ts_ms":9}}]}}"#
            ),
            format!(
                " {{ \"v\" : {v} ,\n\"seq\":3, \"agent\":\"a\",\"samples\" : [ {{ \"device\" : \"d\" , \"point\":\"p\",\"role\":\"rack.temp\",\"value\": 1e3,\"quality\":\"good\",\"ts_ms\":1 }} ] }}\t"
            ),
            // Numbers at the edges of the scanner's own integer parsing: serde's parser, the
            // same float either way; -0 (a float for serde_json), 18 and 19 digits.
            format!(
                r#"{{"v":{v},"agent":"a","seq":1,"samples":[{{"device":"d","point":"a","role":"custom.x","value":-0,"quality":"good","ts_ms":1}},{{"device":"d","point":"b","role":"custom.x","value":-0.0,"quality":"good","ts_ms":1}},{{"device":"d","point":"c","role":"custom.x","value":123456789012345678,"quality":"good","ts_ms":1}},{{"device":"d","point":"e","role":"custom.x","value":12345678901234567890123,"quality":"good","ts_ms":1}},{{"device":"d","point":"g","role":"custom.x","value":0.30000000000000004,"quality":"good","ts_ms":1}},{{"device":"d","point":"h","role":"custom.x","value":-9223372036854775808,"quality":"good","ts_ms":-999999999999999999}}]}}"#
            ),
        ];
        for g in &good {
            assert!(same(g.as_bytes()), "valid: {g}");
        }
        assert!(
            scan::batch(good[0].as_bytes()).is_some(),
            "the scanner takes it"
        );
        assert!(scan::batch(good[1].as_bytes()).is_some(), "whitespace too");
        let refused_by_both = [
            format!(
                r#"{{"v":{v},"agent":"a","seq":1,"samples":[{{"device":"d","point":"p","role":"custom.x","quality":"good","ts_ms":-0}}]}}"#
            ),
            format!(
                r#"{{"v":{v},"agent":"a","seq":1,"samples":[{{"device":"d","point":"p","role":"custom.x","quality":"good","ts_ms":1.0}}]}}"#
            ),
            format!(
                r#"{{"v":{v},"agent":"a","seq":1,"samples":[{{"device":"d","point":"p","role":"custom.x","quality":"good","ts_ms":01}}]}}"#
            ),
            format!(
                r#"{{"v":{v},"agent":"a","seq":1,"samples":[{{"device":"d","point":"p","role":"custom.x","quality":"fine","ts_ms":1}}]}}"#
            ),
            format!(
                r#"{{"v":{v},"agent":"a","seq":1,"samples":[{{"device":"d","point":"p","role":"custom.x","quality":"good","ts_ms":1}}]}} x"#
            ),
            format!("{{\"v\":{v},\"agent\":\"a\u{1}\",\"seq\":1,\"samples\":[]}}"),
            format!(r#"{{"v":{v},"v":{v},"agent":"a","seq":1,"samples":[]}}"#),
        ];
        for r in &refused_by_both {
            assert!(!same(r.as_bytes()), "invalid: {r}");
        }
        // Every one-byte change of the valid batches (deleted, doubled, replaced by a byte
        // that matters to JSON): the two decoders agree on each.
        let swaps = b" \\\"{}[],:-.e0129ntfx\x01\xc3";
        let mut n = 0;
        for g in &good {
            let g = g.as_bytes();
            for i in 0..g.len() {
                let mut d = g.to_vec();
                d.remove(i);
                same(&d);
                let mut d = g.to_vec();
                d.insert(i, g[i]);
                same(&d);
                for &b in swaps {
                    let mut d = g.to_vec();
                    d[i] = b;
                    same(&d);
                    n += 1;
                }
            }
        }
        assert!(n > 10_000);
    }

    #[test]
    fn a_recycled_vector_never_carries_an_earlier_batch_into_a_later_one() {
        // Hazard: a reused sample keeping an old unit, label, value or a longer device name of
        // an earlier batch: a reading shown and judged as another device's or in another unit.
        let v = dcim_wire::VERSION;
        let sample = |i: usize, unit: &str, extra: &str| {
            format!(
                r#"{{"device":"device-with-a-long-name-{i}","point":"p{i}","role":"rack.temp"{extra},"value":{i}.25{unit},"quality":"good","ts_ms":{i}}}"#
            )
        };
        let batch = |seq: usize, n: usize, unit: &str, extra: &str| {
            let s: Vec<String> = (0..n).map(|i| sample(i, unit, extra)).collect();
            format!(
                r#"{{"v":{v},"agent":"a","seq":{seq},"samples":[{}]}}"#,
                s.join(",")
            )
        };
        let runs = [
            batch(1, 600, r#","unit":"degC""#, r#","labels":{"sensor":"2"}"#),
            batch(2, 3, "", ""),
            batch(3, 0, "", ""),
            batch(4, 700, r#","unit":"K""#, ""),
            batch(5, 1, "", r#","labels":{"x":"y"}"#).replace("device-with-a-long-name-0", "d"),
        ];
        for _ in 0..3 {
            for r in &runs {
                let fast = telemetry(r.as_bytes()).unwrap();
                let wire: TelemetryBatch = dcim_wire::decode(r.as_bytes()).unwrap();
                assert_eq!(fast, wire);
                recycle(fast.samples);
            }
        }
        assert_eq!(
            telemetry(runs[4].as_bytes()).unwrap().samples[0].device,
            "d"
        );
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
            same(c.as_bytes());
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
