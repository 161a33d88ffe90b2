//! Commands from the center (`cmd/{device}`): decoding and the answer. Pure.
//!
//! The agent has no command path towards devices yet, so every well-formed command for a known
//! device is refused with that reason; malformed ones are refused with the decoding error. Every
//! command is answered on `cmd_result` so that the server never waits on silence.
//!
//! Authority control: while a device of this agent reports its fire-authority key switch on
//! (a good `fire.authority` reading, tracked by [`AuthorityKeys`]), a command for that device,
//! and a drill (test mode) for the agent itself, are refused with a reason that says so
//! ([`authority_reason`]), matching the server's own refusal.

use dcim_points::{Quality, Sample, Value};
use dcim_wire::{Channel, Command, CommandResult, Topic, VERSION};
use std::collections::BTreeSet;
use std::sync::Mutex;

/// The reason given while no driver can carry commands to its device.
pub const NO_PATH: &str = "no command path for this device yet";

/// The key switch state a sample reports: `Some(on)` for a good `fire.authority` reading;
/// stale, bad or lost readings say nothing (the last known state holds).
pub fn key_reading(s: &Sample) -> Option<bool> {
    if s.role.as_str() != "fire.authority" || s.quality != Quality::Good {
        return None;
    }
    match s.value.as_ref()? {
        Value::Bool(b) => Some(*b),
        Value::Number(x) if x.is_finite() => Some(*x != 0.0),
        _ => None,
    }
}

/// The devices of this agent whose fire-authority key switch reads on, fed with every batch
/// of samples the drivers produce.
#[derive(Debug, Default)]
pub struct AuthorityKeys(Mutex<BTreeSet<String>>);

impl AuthorityKeys {
    pub fn update(&self, samples: &[Sample]) {
        let mut readings = samples
            .iter()
            .filter_map(|s| key_reading(s).map(|on| (s, on)))
            .peekable();
        if readings.peek().is_none() {
            return;
        }
        let mut keys = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for (s, on) in readings {
            if on {
                keys.insert(s.device.clone());
            } else {
                keys.remove(&s.device);
            }
        }
    }

    /// Devices with the key on.
    pub fn on(&self) -> BTreeSet<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The refusal reason while the key switch at `devices` is on.
pub fn authority_reason(devices: &BTreeSet<String>) -> String {
    let at: Vec<&str> = devices.iter().map(String::as_str).collect();
    format!(
        "refused: authority control: the fire-authority key switch at {} is on; no remote command is carried out while the fire authority is in command",
        at.join(", ")
    )
}

/// What to do with a message that arrived on a subscribed topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Not a command for this agent: ignore it (and log it).
    Ignore(String),
    /// Publish this result on `cmd_result`.
    Answer {
        result: CommandResult,
        command: Option<Command>,
    },
    /// `TestMode { on }` addressed to the agent itself (`cmd/{agent}`): the caller applies it
    /// (see `crate::test_mode`) and answers with the result.
    TestMode { on: bool, command: Command },
}

pub fn handle(
    site: &str,
    agent: &str,
    devices: &[String],
    keys: &AuthorityKeys,
    topic: &str,
    payload: &[u8],
) -> Outcome {
    let parsed = match Topic::parse(topic) {
        Ok(t) => t,
        Err(e) => return Outcome::Ignore(e.to_string()),
    };
    let Channel::Command { device } = &parsed.channel else {
        return Outcome::Ignore(format!("`{topic}` is not a command topic"));
    };
    if parsed.site != site || parsed.agent != agent {
        return Outcome::Ignore(format!("`{topic}` is addressed to another agent"));
    }
    let refuse = |id: String, reason: String, command: Option<Command>| Outcome::Answer {
        result: CommandResult {
            v: VERSION,
            id,
            accepted: false,
            reason,
        },
        command,
    };
    let command: Command = match dcim_wire::decode(payload) {
        Ok(c) => c,
        Err(e) => {
            // Echo the id if the payload has one, so the server can match the refusal.
            let id = serde_json::from_slice::<serde_json::Value>(payload)
                .ok()
                .and_then(|v| v.get("id").and_then(|i| i.as_str()).map(str::to_owned))
                .unwrap_or_default();
            return refuse(id, format!("rejected: {e}"), None);
        }
    };
    if &command.device != device {
        let reason = format!(
            "device `{}` in the payload does not match the topic's `{device}`",
            command.device
        );
        return refuse(command.id.clone(), reason, Some(command));
    }
    if device == agent {
        // The agent itself: drills only (test mode), and none while a key switch is on.
        let on = keys.on();
        if !on.is_empty() {
            return refuse(command.id.clone(), authority_reason(&on), Some(command));
        }
        if let dcim_wire::CommandKind::TestMode { on } = command.kind {
            return Outcome::TestMode { on, command };
        }
        let reason = format!(
            "the agent `{agent}` itself accepts only test_mode; other commands go to a device"
        );
        return refuse(command.id.clone(), reason, Some(command));
    }
    if !devices.iter().any(|d| d == device) {
        let reason = format!("unknown device `{device}` on this agent");
        return refuse(command.id.clone(), reason, Some(command));
    }
    let on = keys.on();
    if on.contains(device.as_str()) {
        let here = BTreeSet::from([device.clone()]);
        return refuse(command.id.clone(), authority_reason(&here), Some(command));
    }
    refuse(command.id.clone(), NO_PATH.into(), Some(command))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn devices() -> Vec<String> {
        vec!["rack-01".into()]
    }

    fn answer(topic: &str, payload: &str) -> CommandResult {
        match handle(
            "s",
            "a",
            &devices(),
            &AuthorityKeys::default(),
            topic,
            payload.as_bytes(),
        ) {
            Outcome::Answer { result, .. } => result,
            other => panic!("expected an answer, got {other:?}"),
        }
    }

    #[test]
    fn a_valid_command_is_refused_honestly() {
        let r = answer(
            "dcim/v1/s/a/cmd/rack-01",
            r#"{"v":1,"id":"c1","device":"rack-01","user":"op","kind":"acknowledge"}"#,
        );
        assert_eq!(r.id, "c1");
        assert!(!r.accepted);
        assert_eq!(r.reason, NO_PATH);
    }

    #[test]
    fn safety_actions_and_garbage_are_rejected_with_the_id() {
        let r = answer(
            "dcim/v1/s/a/cmd/rack-01",
            r#"{"v":1,"id":"c2","device":"rack-01","user":"op","kind":"reset"}"#,
        );
        assert_eq!(r.id, "c2");
        assert!(r.reason.starts_with("rejected:"), "{}", r.reason);
        let r = answer("dcim/v1/s/a/cmd/rack-01", "not json");
        assert_eq!(r.id, "");
        assert!(!r.accepted);
    }

    #[test]
    fn device_mismatch_and_unknown_devices_are_refused() {
        let r = answer(
            "dcim/v1/s/a/cmd/rack-01",
            r#"{"v":1,"id":"c3","device":"rack-02","user":"op","kind":"acknowledge"}"#,
        );
        assert!(r.reason.contains("does not match"));
        let r = answer(
            "dcim/v1/s/a/cmd/rack-09",
            r#"{"v":1,"id":"c4","device":"rack-09","user":"op","kind":"acknowledge"}"#,
        );
        assert!(r.reason.contains("unknown device"));
    }

    #[test]
    fn test_mode_for_the_agent_is_accepted_and_nothing_else() {
        let on = handle(
            "s",
            "a",
            &devices(),
            &AuthorityKeys::default(),
            "dcim/v1/s/a/cmd/a",
            br#"{"v":1,"id":"t1","device":"a","user":"drill:d1","kind":"test_mode","on":true}"#,
        );
        assert!(
            matches!(&on, Outcome::TestMode { on: true, command } if command.id == "t1"),
            "{on:?}"
        );
        let r = answer(
            "dcim/v1/s/a/cmd/a",
            r#"{"v":1,"id":"t2","device":"a","user":"op","kind":"acknowledge"}"#,
        );
        assert!(
            !r.accepted && r.reason.contains("only test_mode"),
            "{}",
            r.reason
        );
        // test mode for a device is not the agent's drill: refused like any device command
        let r = answer(
            "dcim/v1/s/a/cmd/rack-01",
            r#"{"v":1,"id":"t3","device":"rack-01","user":"op","kind":"test_mode","on":true}"#,
        );
        assert!(!r.accepted);
    }

    fn key(device: &str, value: Option<Value>, quality: Quality) -> Sample {
        Sample {
            device: device.into(),
            point: "authority".into(),
            role: dcim_points::Role::new("fire.authority").unwrap(),
            labels: Default::default(),
            value,
            unit: String::new(),
            quality,
            ts_ms: 0,
        }
    }

    #[test]
    fn under_the_authority_key_commands_and_drills_are_refused_as_authority_control() {
        let keys = AuthorityKeys::default();
        let ack = br#"{"v":1,"id":"k1","device":"rack-01","user":"op","kind":"acknowledge"}"#;
        let drill =
            br#"{"v":1,"id":"k2","device":"a","user":"drill:d1","kind":"test_mode","on":true}"#;
        let result = |keys: &AuthorityKeys, topic: &str, payload: &[u8]| match handle(
            "s",
            "a",
            &devices(),
            keys,
            topic,
            payload,
        ) {
            Outcome::Answer { result, .. } => result,
            other => panic!("expected an answer, got {other:?}"),
        };
        keys.update(&[key("rack-01", Some(Value::Bool(true)), Quality::Good)]);
        assert_eq!(keys.on(), BTreeSet::from(["rack-01".to_string()]));
        let r = result(&keys, "dcim/v1/s/a/cmd/rack-01", ack);
        assert!(!r.accepted);
        assert_eq!(r.id, "k1");
        assert!(
            r.reason.contains("authority control") && r.reason.contains("rack-01"),
            "{}",
            r.reason
        );
        let r = result(&keys, "dcim/v1/s/a/cmd/a", drill);
        assert!(
            !r.accepted && r.reason.contains("authority control"),
            "{}",
            r.reason
        );
        // A stale or lost reading keeps the key on; a good "off" reading turns it off.
        keys.update(&[key("rack-01", Some(Value::Bool(false)), Quality::Stale)]);
        keys.update(&[key("rack-01", None, Quality::CommLost)]);
        assert!(!keys.on().is_empty());
        keys.update(&[key("rack-01", Some(Value::Number(0.0)), Quality::Good)]);
        assert!(keys.on().is_empty());
        assert_eq!(
            result(&keys, "dcim/v1/s/a/cmd/rack-01", ack).reason,
            NO_PATH
        );
        assert!(matches!(
            handle("s", "a", &devices(), &keys, "dcim/v1/s/a/cmd/a", drill),
            Outcome::TestMode { on: true, .. }
        ));
        // Other roles are not key readings.
        let mut other = key("rack-01", Some(Value::Bool(true)), Quality::Good);
        other.role = dcim_points::Role::new("fire.manual_only").unwrap();
        assert_eq!(key_reading(&other), None);
        keys.update(&[other]);
        assert!(keys.on().is_empty());
    }

    #[test]
    fn other_topics_are_ignored() {
        for t in [
            "dcim/v1/s/other/cmd/rack-01",
            "dcim/v1/s/a/telemetry",
            "x/y",
        ] {
            assert!(matches!(
                handle("s", "a", &devices(), &AuthorityKeys::default(), t, b"{}"),
                Outcome::Ignore(_)
            ));
        }
    }
}
