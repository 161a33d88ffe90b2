//! The wire contract between edge agents and the server, version 1.
//!
//! Topics (all under one root, `dcim/v1`):
//!
//! | topic                                   | direction       | QoS | payload            |
//! |-----------------------------------------|-----------------|-----|--------------------|
//! | `dcim/v1/{site}/{agent}/telemetry`      | agent -> server | 1   | [`TelemetryBatch`] |
//! | `dcim/v1/{site}/{agent}/events`         | agent -> server | 1   | [`EventBatch`]     |
//! | `dcim/v1/{site}/{agent}/state`          | agent -> server | 1, retained, also the will | [`AgentState`] |
//! | `dcim/v1/{site}/{agent}/cmd/{device}`   | server -> agent | 1   | [`Command`]        |
//! | `dcim/v1/{site}/{agent}/cmd_result`     | agent -> server | 1   | [`CommandResult`]  |
//!
//! Delivery: every batch carries a sequence number that is strictly increasing per
//! `(agent, epoch, stream)` and survives agent restarts (it is assigned when the batch is
//! spooled). The *epoch* is a random id the agent's spool draws when it is created: a spool
//! that is wiped (disk replaced, reinstall) starts a new epoch and its sequence numbers start
//! again at 1, so a receiver must treat a new epoch as a new stream, never as duplicates of the
//! old one. The agent replays unacknowledged batches in order after a reconnect, so a receiver
//! can see a batch more than once and must be idempotent on `(agent, epoch, stream, seq)`.
//! Telemetry may have gaps (thinned when the agent's spool was full; the agent reports the count
//! in [`AgentState`]); events never have gaps within an epoch.
//!
//! Compatibility: `epoch` is optional on the wire (absent or empty = the one stream of an agent
//! from before epochs); a receiver accepts both, and writers leave it out when empty.
//!
//! Payloads are JSON objects with a `v` field; a receiver rejects a `v` it does not know.
//!
//! Event ids are `{agent}:{epoch}:{seq}` (`event_id`), so a wiped spool never repeats an id the
//! DC-09 outbox has delivered. `AgentState.detached` lists the brokers the agent detached (lag
//! limit). `CommandKind` is the whole vocabulary of network commands towards devices: safety
//! actions are not representable.

use dcim_points::Sample;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The payload schema version this crate reads and writes.
pub const VERSION: u32 = 1;
/// Topic root of this version.
pub const ROOT: &str = "dcim/v1";

/// What a topic carries.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Channel {
    Telemetry,
    Events,
    State,
    Command { device: String },
    CommandResult,
}

/// A parsed topic of the v1 scheme.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Topic {
    pub site: String,
    pub agent: String,
    pub channel: Channel,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("topic `{topic}` is not a dcim/v1 topic: {reason}")]
    BadTopic { topic: String, reason: &'static str },
    #[error("identifier `{0}` may only hold ASCII letters, digits, `-`, `_` and `.`")]
    BadIdentifier(String),
    #[error("payload is not valid {what}: {detail}")]
    BadPayload { what: &'static str, detail: String },
    #[error("payload schema version {found} is not supported (this build reads version {VERSION})")]
    UnsupportedVersion { found: u32 },
}

/// Site, agent and device identifiers appear in topics, so they are restricted to a safe set.
pub fn check_identifier(id: &str) -> Result<(), WireError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(WireError::BadIdentifier(id.to_owned()))
    }
}

impl Topic {
    pub fn new(site: &str, agent: &str, channel: Channel) -> Result<Topic, WireError> {
        check_identifier(site)?;
        check_identifier(agent)?;
        if let Channel::Command { device } = &channel {
            check_identifier(device)?;
        }
        Ok(Topic {
            site: site.to_owned(),
            agent: agent.to_owned(),
            channel,
        })
    }

    pub fn parse(topic: &str) -> Result<Topic, WireError> {
        let bad = |reason| WireError::BadTopic {
            topic: topic.to_owned(),
            reason,
        };
        let rest = topic
            .strip_prefix(ROOT)
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(|| bad("it does not start with dcim/v1/"))?;
        let parts: Vec<&str> = rest.split('/').collect();
        let channel = match parts.as_slice() {
            [_, _, "telemetry"] => Channel::Telemetry,
            [_, _, "events"] => Channel::Events,
            [_, _, "state"] => Channel::State,
            [_, _, "cmd_result"] => Channel::CommandResult,
            [_, _, "cmd", device] => Channel::Command {
                device: (*device).to_owned(),
            },
            _ => {
                return Err(bad(
                    "expected {site}/{agent}/{telemetry|events|state|cmd/{device}|cmd_result}",
                ));
            }
        };
        let (site, agent) = match parts.as_slice() {
            [site, agent, ..] => (*site, *agent),
            _ => return Err(bad("missing site or agent")),
        };
        Topic::new(site, agent, channel)
            .map_err(|_| bad("site, agent or device has characters outside [A-Za-z0-9._-]"))
    }

    /// Subscription filter for one channel of every agent of every site, e.g. `dcim/v1/+/+/telemetry`.
    pub fn filter_all(channel_leaf: &str) -> String {
        format!("{ROOT}/+/+/{channel_leaf}")
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{ROOT}/{}/{}/", self.site, self.agent)?;
        match &self.channel {
            Channel::Telemetry => f.write_str("telemetry"),
            Channel::Events => f.write_str("events"),
            Channel::State => f.write_str("state"),
            Channel::Command { device } => write!(f, "cmd/{device}"),
            Channel::CommandResult => f.write_str("cmd_result"),
        }
    }
}

/// A batch of samples from one agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TelemetryBatch {
    pub v: u32,
    pub agent: String,
    /// The agent's spool epoch (random id drawn when the spool was created); empty from agents
    /// that predate epochs.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub epoch: String,
    /// Strictly increasing per agent and epoch for the telemetry stream.
    pub seq: u64,
    pub samples: Vec<Sample>,
}

/// The kind, severity and message of the event for a change of a device's online state from
/// `before` to `after` (`None`: not known yet): `device.comm_lost` when it goes offline from
/// online or unknown, `device.comm_restored` when it comes back from offline, `None` for
/// anything else. The message is `"{device} {lost}"` or `"{device} {restored}"` (e.g.
/// `stopped answering` / `answers again`).
pub fn comm_change(
    device: &str,
    before: Option<bool>,
    after: Option<bool>,
    lost: &str,
    restored: &str,
) -> Option<(&'static str, Severity, String)> {
    match (before, after) {
        (b, Some(false)) if b != Some(false) => Some((
            "device.comm_lost",
            Severity::Trouble,
            format!("{device} {lost}"),
        )),
        (Some(false), Some(true)) => Some((
            "device.comm_restored",
            Severity::Info,
            format!("{device} {restored}"),
        )),
        _ => None,
    }
}

/// The number of fire stage codes: 0 normal, 1 pre-alarm, 2..=6 stages 1 to 5 (the codes of
/// `fire_logic::STAGE_TABLE`).
pub const FIRE_STAGE_CODES: u8 = 7;

/// The stage code of a `fire.stage` sample value: a number `0..FIRE_STAGE_CODES`, or a
/// profile's text label (`normal`, `pre_alarm`, `stage1...` .. `stage5...`); `None` for
/// anything else (never "normal" for a value it does not know).
pub fn fire_stage_code(v: &dcim_points::Value) -> Option<u8> {
    use dcim_points::Value;
    match v {
        Value::Number(x) if x.is_finite() && *x >= 0.0 && *x < f64::from(FIRE_STAGE_CODES) => {
            Some(*x as u8)
        }
        Value::Text(t) => match t.as_str() {
            "normal" => Some(0),
            "pre_alarm" => Some(1),
            t => t
                .strip_prefix("stage")
                .and_then(|r| r.chars().next())
                .and_then(|c| c.to_digit(10))
                .filter(|d| (1..=5).contains(d))
                .map(|d| d as u8 + 1),
        },
        _ => None,
    }
}

/// An [`Event`] before a spool gave it its sequence number and id: what a driver or the local
/// fire logic reports besides samples.
#[derive(Debug, Clone, PartialEq)]
pub struct EventDraft {
    pub ts_ms: i64,
    pub device: String,
    pub kind: String,
    pub severity: Severity,
    pub message: String,
    pub data: serde_json::Value,
    /// Set on events produced while a drill runs.
    pub test: bool,
}

impl EventDraft {
    /// The event at `ts_ms` for a change of `device`'s online state ([`comm_change`], with its
    /// `[lost, restored]` words), carrying `data`; `None` when the change is no event.
    pub fn comm_change(
        device: &str,
        before: Option<bool>,
        after: Option<bool>,
        [lost, restored]: [&str; 2],
        ts_ms: i64,
        data: serde_json::Value,
    ) -> Option<EventDraft> {
        let (kind, severity, message) = comm_change(device, before, after, lost, restored)?;
        Some(EventDraft {
            ts_ms,
            device: device.to_owned(),
            kind: kind.into(),
            severity,
            message,
            data,
            test: false,
        })
    }
}

/// How urgent an event is; the order is the order of delivery priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Trouble,
    Supervisory,
    Alarm,
}

/// Something that happened at the edge: a fire-logic transition, a device going silent, ...
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Globally unique and stable across retries: `{agent}:{epoch}:{seq}` (`{agent}:{seq}`
    /// from agents without an epoch). The DC-09 link and the server use it to avoid raising
    /// the same alarm twice, so it must never repeat, even after the agent's spool is wiped.
    pub id: String,
    /// Strictly increasing per agent and epoch for the events stream, without gaps.
    pub seq: u64,
    pub ts_ms: i64,
    pub device: String,
    /// Machine-readable kind, e.g. `fire.stage`, `fire.trouble`, `device.comm_lost`.
    pub kind: String,
    pub severity: Severity,
    /// One line for people.
    pub message: String,
    /// Kind-specific details.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub data: serde_json::Value,
    /// Set on events produced while a drill runs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub test: bool,
}

/// A batch of events from one agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventBatch {
    pub v: u32,
    pub agent: String,
    /// The agent's spool epoch (see [`TelemetryBatch::epoch`]).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub epoch: String,
    pub events: Vec<Event>,
}

/// The id of an event: `{agent}:{epoch}:{seq}`, or `{agent}:{seq}` without an epoch.
pub fn event_id(agent: &str, epoch: &str, seq: u64) -> String {
    if epoch.is_empty() {
        format!("{agent}:{seq}")
    } else {
        format!("{agent}:{epoch}:{seq}")
    }
}

/// Agent health, published retained on connect and as the MQTT will (with `online: false`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentState {
    pub v: u32,
    pub agent: String,
    pub online: bool,
    pub ts_ms: i64,
    #[serde(default)]
    pub version: String,
    /// Batches waiting in the spool.
    #[serde(default)]
    pub spool_pending: u64,
    /// Samples dropped since the agent was installed because the spool was full (never events).
    #[serde(default)]
    pub thinned_samples: u64,
    /// The agent is in test (drill) mode: what it publishes and sends over DC-09 is marked as
    /// test. Absent (false) outside drills and from agents that predate drills.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub test: bool,
    /// When the drill ends by itself (Unix ms), while `test` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_until_ms: Option<i64>,
    /// Brokers the agent detached because they lag past their limit (a dead site): records
    /// no longer wait in the spool for them. Absent when none (and from older agents).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub detached: Vec<String>,
}

/// The only commands the network may send towards devices. Anything that could start, stop,
/// silence or cancel a suppression stage is deliberately not representable here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CommandKind {
    /// Acknowledge the alarm and silence the local buzzer.
    Acknowledge,
    /// Set the device clock.
    TimeSync { unix_ms: i64 },
    /// Ask for test mode (refused by the controller while any stage is active). Addressed to the
    /// agent itself (`cmd/{agent}` with `device` = the agent id) it starts or ends a drill of
    /// that agent: its DC-09 messages carry the authority's test code between drill begin/end
    /// codes, its events and `AgentState` carry `test`; the drill ends by itself after the
    /// agent's configured maximum (2 h by default), when the fire authority takes command, and
    /// it never resumes after an agent restart. The fire logic is not affected.
    TestMode { on: bool },
    /// Inhibit one faulted sensor for a bounded time (itself reported as a trouble).
    InhibitSensor { sensor: String, seconds: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    pub v: u32,
    /// Unique id chosen by the server; echoed in the [`CommandResult`].
    pub id: String,
    pub device: String,
    /// Who asked, for the audit trail.
    pub user: String,
    #[serde(flatten)]
    pub kind: CommandKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResult {
    pub v: u32,
    pub id: String,
    pub accepted: bool,
    #[serde(default)]
    pub reason: String,
}

/// Encode any v1 payload as JSON.
pub fn encode<T: Serialize>(payload: &T) -> Vec<u8> {
    // Serialising these plain structs cannot fail: no maps with non-string keys, no NaN keys.
    serde_json::to_vec(payload).unwrap_or_default()
}

#[derive(Deserialize)]
struct VersionOnly {
    v: u32,
}

/// Decode a v1 payload, checking the schema version first so that a newer payload gets a
/// clear error rather than a field mismatch.
pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, WireError> {
    let version: VersionOnly =
        serde_json::from_slice(bytes).map_err(|e| WireError::BadPayload {
            what: "a dcim payload (JSON object with a `v` field)",
            detail: e.to_string(),
        })?;
    if version.v != VERSION {
        return Err(WireError::UnsupportedVersion { found: version.v });
    }
    serde_json::from_slice(bytes).map_err(|e| WireError::BadPayload {
        what: std::any::type_name::<T>()
            .rsplit("::")
            .next()
            .unwrap_or("payload"),
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dcim_points::{Quality, Role, Value};

    #[test]
    fn topics_round_trip() {
        for t in [
            "dcim/v1/pangyo/agent-b1/telemetry",
            "dcim/v1/pangyo/agent-b1/events",
            "dcim/v1/pangyo/agent-b1/state",
            "dcim/v1/pangyo/agent-b1/cmd/rack-017",
            "dcim/v1/pangyo/agent-b1/cmd_result",
        ] {
            let parsed = Topic::parse(t).unwrap();
            assert_eq!(parsed.to_string(), t);
        }
    }

    #[test]
    fn foreign_and_malformed_topics_are_rejected() {
        for t in [
            "dcim/v2/s/a/telemetry",
            "dcim/v1/s/telemetry",
            "dcim/v1/s/a/telemetry/extra",
            "dcim/v1/s/a/cmd",
            "dcim/v1/s/+/telemetry",
            "dcim/v1//a/events",
        ] {
            assert!(Topic::parse(t).is_err(), "{t} should be rejected");
        }
    }

    #[test]
    fn telemetry_round_trips() {
        let batch = TelemetryBatch {
            v: VERSION,
            agent: "a1".into(),
            epoch: String::new(),
            seq: 7,
            samples: vec![Sample {
                device: "ups-z1".into(),
                point: "load".into(),
                role: Role::new("ups.load_pct").unwrap(),
                labels: Default::default(),
                value: Some(Value::Number(41.5)),
                unit: "%".into(),
                quality: Quality::Good,
                ts_ms: 1,
            }],
        };
        let back: TelemetryBatch = decode(&encode(&batch)).unwrap();
        assert_eq!(back, batch);
    }

    #[test]
    fn the_epoch_is_optional_on_the_wire_both_ways() {
        // Hazard: an agent from before epochs refused by a newer server (or the reverse), or a
        // wiped spool's new stream taken for duplicates of the old one.
        let old = br#"{"v":1,"agent":"a","seq":3,"samples":[]}"#;
        let b: TelemetryBatch = decode(old).unwrap();
        assert_eq!((b.epoch.as_str(), b.seq), ("", 3));
        assert!(!String::from_utf8(encode(&b)).unwrap().contains("epoch"));
        let new = TelemetryBatch {
            epoch: "7f3a9c01d2e4b5a6".into(),
            ..b
        };
        let text = String::from_utf8(encode(&new)).unwrap();
        assert!(text.contains(r#""epoch":"7f3a9c01d2e4b5a6""#), "{text}");
        assert_eq!(decode::<TelemetryBatch>(text.as_bytes()).unwrap(), new);
        let ev: EventBatch = decode(br#"{"v":1,"agent":"a","events":[]}"#).unwrap();
        assert_eq!(ev.epoch, "");
        let ev: EventBatch = decode(br#"{"v":1,"agent":"a","epoch":"e1","events":[]}"#).unwrap();
        assert_eq!(ev.epoch, "e1");
        assert_eq!(event_id("a", "", 7), "a:7");
        assert_eq!(event_id("a", "e1", 7), "a:e1:7");
    }

    #[test]
    fn agent_state_test_fields_are_optional() {
        let old = br#"{"v":1,"agent":"a","online":true,"ts_ms":1}"#;
        let s: AgentState = decode(old).unwrap();
        assert!(!s.test);
        assert_eq!(s.test_until_ms, None);
        // Outside drills the fields are not written at all.
        let text = String::from_utf8(encode(&s)).unwrap();
        assert!(!text.contains("test"), "{text}");
        let drill = AgentState {
            test: true,
            test_until_ms: Some(99),
            ..s.clone()
        };
        let text = String::from_utf8(encode(&drill)).unwrap();
        assert!(text.contains(r#""test":true,"test_until_ms":99"#), "{text}");
        assert_eq!(decode::<AgentState>(text.as_bytes()).unwrap(), drill);
        assert!(s.detached.is_empty() && !text.contains("detached"));
        let detached = AgentState {
            detached: vec!["site-b".into()],
            ..s
        };
        let text = String::from_utf8(encode(&detached)).unwrap();
        assert!(text.contains(r#""detached":["site-b"]"#), "{text}");
        assert_eq!(decode::<AgentState>(text.as_bytes()).unwrap(), detached);
    }

    #[test]
    fn a_newer_schema_version_gets_a_clear_error() {
        let err = decode::<EventBatch>(br#"{"v":2,"agent":"a","events":[]}"#).unwrap_err();
        assert_eq!(err, WireError::UnsupportedVersion { found: 2 });
    }

    #[test]
    fn garbage_is_a_payload_error() {
        assert!(matches!(
            decode::<EventBatch>(b"\xff\x00"),
            Err(WireError::BadPayload { .. })
        ));
        assert!(matches!(
            decode::<EventBatch>(br#"{"v":1,"agent":"a"}"#),
            Err(WireError::BadPayload { .. })
        ));
    }

    #[test]
    fn commands_cannot_express_safety_actions() {
        let ok: Command = decode(
            br#"{"v":1,"id":"c1","device":"rack-1","user":"op","kind":"inhibit_sensor","sensor":"rack_temp2","seconds":600}"#,
        )
        .unwrap();
        assert_eq!(
            ok.kind,
            CommandKind::InhibitSensor {
                sensor: "rack_temp2".into(),
                seconds: 600
            }
        );
        for kind in [
            "reset",
            "abort",
            "close_contactor",
            "silence_stage",
            "set_threshold",
        ] {
            let json = format!(r#"{{"v":1,"id":"c","device":"d","user":"u","kind":"{kind}"}}"#);
            assert!(
                decode::<Command>(json.as_bytes()).is_err(),
                "{kind} must not decode"
            );
        }
    }

    #[test]
    fn fire_stage_codes_from_numbers_and_labels_and_nothing_else() {
        // Hazard: a label or number the contract does not know read as stage 0 ("normal")
        // would hide a rack in fire; it must be no stage at all.
        for (v, code) in [
            (Value::Number(0.0), Some(0)),
            (Value::Number(6.0), Some(6)),
            (Value::Number(7.0), None),
            (Value::Number(-1.0), None),
            (Value::Number(f64::NAN), None),
            (Value::Text("normal".into()), Some(0)),
            (Value::Text("pre_alarm".into()), Some(1)),
            (Value::Text("stage1_power_cut".into()), Some(2)),
            (Value::Text("stage5".into()), Some(6)),
            (Value::Text("stage6".into()), None),
            (Value::Text("fire".into()), None),
            (Value::Bool(true), None),
        ] {
            assert_eq!(fire_stage_code(&v), code, "{v:?}");
        }
    }
}
