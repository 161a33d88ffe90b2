//! Commands from the center (`cmd/{device}`): decoding and the answer. Pure.
//!
//! The agent has no command path towards devices yet, so every well-formed command for a known
//! device is refused with that reason; malformed ones are refused with the decoding error. Every
//! command is answered on `cmd_result` so that the server never waits on silence.

use dcim_wire::{Channel, Command, CommandResult, Topic, VERSION};

/// The reason given while no driver can carry commands to its device.
pub const NO_PATH: &str = "no command path for this device yet";

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

pub fn handle(site: &str, agent: &str, devices: &[String], topic: &str, payload: &[u8]) -> Outcome {
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
        // The agent itself: drills only (test mode). Everything else stays refused.
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
    refuse(command.id.clone(), NO_PATH.into(), Some(command))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn devices() -> Vec<String> {
        vec!["rack-01".into()]
    }

    fn answer(topic: &str, payload: &str) -> CommandResult {
        match handle("s", "a", &devices(), topic, payload.as_bytes()) {
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

    #[test]
    fn other_topics_are_ignored() {
        for t in [
            "dcim/v1/s/other/cmd/rack-01",
            "dcim/v1/s/a/telemetry",
            "x/y",
        ] {
            assert!(matches!(
                handle("s", "a", &devices(), t, b"{}"),
                Outcome::Ignore(_)
            ));
        }
    }
}
