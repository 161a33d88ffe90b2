//! MQTT: the v1 wire payloads and topics, the agent's command handling, and the agent's
//! decoding of camera JSON messages through the camera profile.

use dcim_edge_agent::commands::{self, Outcome};
use dcim_edge_agent::devices::mqtt::MqttDevice;
use dcim_points::Value;
use dcim_profiles::Protocol;
use dcim_wire::{AgentState, Command, CommandResult, EventBatch, TelemetryBatch, Topic, decode};

/// The rest of the input is decoded as every payload type, parsed as a topic, and handed to
/// the agent's command handler (topic = the first line, payload = the rest).
pub fn payload(data: &[u8]) {
    let _ = decode::<TelemetryBatch>(data);
    let _ = decode::<EventBatch>(data);
    let _ = decode::<AgentState>(data);
    let _ = decode::<Command>(data);
    let _ = decode::<CommandResult>(data);
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(t) = Topic::parse(text)
    {
        let again = Topic::parse(&t.to_string());
        assert_eq!(again.as_ref(), Ok(&t), "topic {text:?} does not round-trip");
    }
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let (topic, body) = data.split_at(split);
    let body = body.get(1..).unwrap_or(&[]);
    let Ok(topic) = std::str::from_utf8(topic) else {
        return;
    };
    let devices = ["ups-z1".to_string(), "cam-1".to_string()];
    let keys = commands::AuthorityKeys::default();
    match commands::handle("site-a", "agent-1", &devices, &keys, topic, body) {
        Outcome::Answer { result, .. } => {
            // No command path towards devices exists: every command is refused with a reason.
            assert!(
                !result.accepted,
                "a command was accepted: {topic} {body:02x?}"
            );
            assert!(!result.reason.is_empty(), "refusal without a reason");
        }
        // The only command the agent takes is a drill, addressed to the agent itself.
        Outcome::TestMode { command, .. } => assert_eq!(
            command.device, "agent-1",
            "test mode accepted for a device: {topic} {body:02x?}"
        ),
        Outcome::Ignore(_) => {}
    }
}

/// Messages on the camera's topics (`data` split at 0x00; each chunk: 1 byte topic index,
/// 1 byte time step in 100 ms, then the JSON payload) go through the agent's MQTT device.
pub fn camera(data: &[u8]) {
    let profile = crate::modbus::shipped_profiles()
        .iter()
        .find(|p| p.protocol == Protocol::Mqtt)
        .expect("a shipped MQTT profile")
        .clone();
    let Ok(mut dev) = MqttDevice::new("cam-1", profile, 0) else {
        panic!("camera profile rejected by the MQTT device");
    };
    let topics: Vec<String> = dev.topics().map(str::to_owned).collect();
    let mut now_ms = 0i64;
    let mut out = Vec::new();
    for chunk in crate::chunks(data, 0, 32) {
        let [sel, step, payload @ ..] = chunk else {
            continue;
        };
        now_ms += i64::from(*step) * 100;
        let topic = &topics[usize::from(*sel) % topics.len()];
        let _ = dev.on_message(topic, payload, now_ms, &mut out);
        let _ = dev.tick(now_ms, &mut out);
    }
    for s in &out {
        if let Some(Value::Number(x)) = &s.value {
            assert!(x.is_finite(), "non-finite sample {s:?}");
        }
    }
}
