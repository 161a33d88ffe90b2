//! Spool record payloads and the wire payloads built from them. Pure.
//!
//! A telemetry record holds one complete `TelemetryBatch` (its `seq` is the record's sequence
//! number, its `epoch` the spool's), so it is published as it is. An event record holds one
//! `Event` (id `{agent}:{epoch}:{seq}`, see `dcim_wire::event_id`); several consecutive event
//! records of one epoch are published together as one `EventBatch`.
//!
//! Fire events (local logic and controllers' stage changes) name the stage from
//! `fire_logic::STAGE_TABLE` (`stage_name` in their data, `fire stage entered: <name>` in their
//! text).

use dcim_points::Sample;
pub use dcim_wire::EventDraft;
use dcim_wire::{Event, TelemetryBatch, VERSION};

pub fn telemetry_record(agent: &str, epoch: &str, seq: u64, samples: Vec<Sample>) -> Vec<u8> {
    dcim_wire::encode(&TelemetryBatch {
        v: VERSION,
        agent: agent.to_owned(),
        epoch: epoch.to_owned(),
        seq,
        samples,
    })
}

pub fn event_record(agent: &str, epoch: &str, seq: u64, draft: EventDraft) -> Vec<u8> {
    dcim_wire::encode(&Event {
        id: dcim_wire::event_id(agent, epoch, seq),
        seq,
        ts_ms: draft.ts_ms,
        device: draft.device,
        kind: draft.kind,
        severity: draft.severity,
        message: draft.message,
        data: draft.data,
        test: draft.test,
    })
}

/// An `EventBatch` from consecutive event records of one epoch (each an encoded `Event`).
pub fn event_batch<'a>(
    agent: &str,
    epoch: &str,
    events: impl IntoIterator<Item = &'a [u8]>,
) -> Vec<u8> {
    let epoch = if epoch.is_empty() {
        String::new()
    } else {
        format!(",\"epoch\":{}", serde_json::Value::from(epoch))
    };
    let mut out = format!(
        "{{\"v\":{VERSION},\"agent\":{}{epoch},\"events\":[",
        serde_json::Value::from(agent)
    )
    .into_bytes();
    for (i, e) in events.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(e);
    }
    out.extend_from_slice(b"]}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use dcim_points::{Quality, Role, Value};
    use dcim_wire::{EventBatch, Severity, decode};

    fn draft(n: i64) -> EventDraft {
        EventDraft {
            ts_ms: n,
            device: "rack-01".into(),
            kind: "fire.stage".into(),
            severity: Severity::Alarm,
            message: format!("stage {n} \"quoted\""),
            data: serde_json::json!({"stage": n}),
            test: (n as u64).is_multiple_of(2),
        }
    }

    #[test]
    fn an_event_batch_decodes_with_the_wire_contract() {
        let recs: Vec<Vec<u8>> = (1..=3)
            .map(|s| event_record("ag-1", "e0", s, draft(s as i64)))
            .collect();
        let batch: EventBatch = decode(&event_batch(
            "ag-1",
            "e0",
            recs.iter().map(|r| r.as_slice()),
        ))
        .unwrap();
        assert_eq!(batch.agent, "ag-1");
        assert_eq!(batch.epoch, "e0");
        assert_eq!(batch.events.len(), 3);
        for (i, e) in batch.events.iter().enumerate() {
            let seq = i as u64 + 1;
            assert_eq!(e.seq, seq);
            assert_eq!(e.id, format!("ag-1:e0:{seq}"));
            assert_eq!(e.message, format!("stage {seq} \"quoted\""));
            assert_eq!(e.test, seq.is_multiple_of(2));
        }
        let empty: EventBatch = decode(&event_batch("a", "", [])).unwrap();
        assert!(empty.events.is_empty());
        assert_eq!(empty.epoch, "");
    }

    #[test]
    fn a_telemetry_record_is_a_wire_batch() {
        let s = Sample {
            device: "ups-1".into(),
            point: "load".into(),
            role: Role::new("ups.load_pct").unwrap(),
            labels: Default::default(),
            value: Some(Value::Number(40.0)),
            unit: "%".into(),
            quality: Quality::Good,
            ts_ms: 5,
        };
        let b: TelemetryBatch = decode(&telemetry_record("a", "e1", 9, vec![s.clone()])).unwrap();
        assert_eq!((b.seq, b.epoch.as_str()), (9, "e1"));
        assert_eq!(b.samples, vec![s]);
    }
}
