//! Modbus devices through `dcim-modbus`: one poller per line (a TCP device, or an RS-485 line /
//! RTU-over-TCP gateway shared by several unit ids). The poller reports samples, including each
//! device's `device.online`; this module forwards them to the spool and turns `device.online`
//! transitions into `device.comm_lost` / `device.comm_restored` events.

use crate::ingest::Ingest;
use crate::payload::EventDraft;
use dcim_modbus::{Connection, ModbusDevice, Notice};
use dcim_points::{Sample, Value};
use dcim_wire::Severity;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tracing::{error, warn};

pub struct ModbusLine {
    pub connection: Connection,
    pub devices: Vec<ModbusDevice>,
}

/// Events for changes of `device.online` in a batch. `known` holds the last state per device.
/// Pure.
pub fn online_events(known: &mut BTreeMap<String, bool>, samples: &[Sample]) -> Vec<EventDraft> {
    let mut out = Vec::new();
    for s in samples
        .iter()
        .filter(|s| s.role.as_str() == "device.online")
    {
        let Some(Value::Bool(online)) = s.value else {
            continue;
        };
        let before = known.insert(s.device.clone(), online);
        out.extend(EventDraft::comm_change(
            &s.device,
            before,
            Some(online),
            ["stopped answering", "answers again"],
            s.ts_ms,
            serde_json::Value::Null,
        ));
    }
    out
}

/// The event for a line's [`Notice`] (a point the device refused on its own, or serves again).
/// Pure.
pub fn notice_event(n: &Notice, ts_ms: i64) -> EventDraft {
    match n {
        Notice::Refused {
            device,
            point,
            table,
            address,
            exception,
        } => EventDraft {
            ts_ms,
            device: device.clone(),
            kind: "device.point_refused".into(),
            severity: Severity::Trouble,
            message: format!(
                "{device} refuses to read point {point} ({table:?} register at wire address {address}, Modbus exception {exception}): the point is bad, the others are read without it"
            ),
            data: serde_json::json!({
                "point": point,
                "table": format!("{table:?}").to_lowercase(),
                "address": address,
                "exception": exception,
            }),
            test: false,
        },
        Notice::Accepted { device, point } => EventDraft {
            ts_ms,
            device: device.clone(),
            kind: "device.point_accepted".into(),
            severity: Severity::Info,
            message: format!("{device} serves point {point} again"),
            data: serde_json::json!({ "point": point }),
            test: false,
        },
    }
}

/// `fire.stage` events for changes of a rack controller's `fire.stage` point (role
/// `fire.stage`), shaped like the local fire logic's so the center and the fire authority see
/// both kinds of rack alike. `known` holds the last stage code per device. Pure.
pub fn stage_events(known: &mut BTreeMap<String, u8>, samples: &[Sample]) -> Vec<EventDraft> {
    let mut out = Vec::new();
    for s in samples
        .iter()
        .filter(|s| s.role.as_str() == "fire.stage" && s.quality == dcim_points::Quality::Good)
    {
        // The controller profile maps the code to the stage key (`stage1`); plain codes
        // are accepted too.
        let code = s.value.as_ref().and_then(dcim_wire::fire_stage_code);
        let Some(stage) = code.and_then(fire_logic::Stage::from_code) else {
            continue;
        };
        let before = known.insert(s.device.clone(), stage.code());
        if before == Some(stage.code()) || (before.is_none() && stage == fire_logic::Stage::Normal)
        {
            continue;
        }
        let severity = if stage >= fire_logic::Stage::Stage1 {
            Severity::Alarm
        } else if stage == fire_logic::Stage::PreAlarm {
            Severity::Supervisory
        } else {
            Severity::Info
        };
        out.push(EventDraft {
            ts_ms: s.ts_ms,
            device: s.device.clone(),
            kind: "fire.stage".into(),
            severity,
            message: format!("rack {}: fire stage entered: {}", s.device, stage.title()),
            data: serde_json::json!({
                "rack": s.device,
                "stage": stage.name(),
                "stage_name": stage.title(),
                "stage_code": stage.code(),
                "entered": stage.name(),
                "previous": before.and_then(fire_logic::Stage::from_code).map(|p| p.name()),
                "source": "controller",
            }),
            test: false,
        });
    }
    out
}

pub async fn run(ingest: Arc<Ingest>, line: ModbusLine, mut shutdown: watch::Receiver<bool>) {
    let (tx, mut rx) = mpsc::channel::<Vec<Sample>>(256);
    let (ntx, mut notices) = mpsc::unbounded_channel::<Notice>();
    let name = line.connection.to_string();
    let ids: Vec<String> = line.devices.iter().map(|d| d.id.clone()).collect();
    let handle =
        match dcim_modbus::spawn_line_with_writes(line.connection, line.devices, tx, Some(ntx)) {
            Ok(h) => {
                let h = Arc::new(h);
                for id in &ids {
                    ingest.latest().set_writer(id, h.clone());
                }
                h
            }
            Err(e) => {
                error!(line = %name, error = %e, "cannot start the Modbus poller");
                return;
            }
        };
    let mut known = BTreeMap::new();
    let mut stages = BTreeMap::new();
    loop {
        tokio::select! {
            batch = rx.recv() => match batch {
                Some(samples) => {
                    for e in online_events(&mut known, &samples)
                        .into_iter()
                        .chain(stage_events(&mut stages, &samples))
                    {
                        warn!(device = %e.device, kind = %e.kind, "{}", e.message);
                        let _ = ingest.event(e);
                    }
                    ingest.samples(samples);
                }
                None => {
                    error!(line = %name, "Modbus poller stopped");
                    return;
                }
            },
            Some(n) = notices.recv() => {
                let e = notice_event(&n, ingest.clock().now_ms());
                warn!(device = %e.device, kind = %e.kind, "{}", e.message);
                let _ = ingest.event(e);
            }
            _ = shutdown.changed() => if *shutdown.borrow() {
                drop(rx);
                handle.task.abort();
                return;
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dcim_points::{Quality, Role};

    fn online(device: &str, v: bool) -> Sample {
        Sample {
            device: device.into(),
            point: "online".into(),
            role: Role::new("device.online").unwrap(),
            labels: Default::default(),
            value: Some(Value::Bool(v)),
            unit: String::new(),
            quality: Quality::Good,
            ts_ms: 1,
        }
    }

    #[test]
    fn controller_stage_changes_make_fire_stage_events() {
        let stage = |v: f64| Sample {
            device: "rc-07".into(),
            point: "stage".into(),
            role: Role::new("fire.stage").unwrap(),
            labels: Default::default(),
            value: Some(Value::Number(v)),
            unit: String::new(),
            quality: Quality::Good,
            ts_ms: 1,
        };
        let mut known = BTreeMap::new();
        assert!(stage_events(&mut known, &[stage(0.0)]).is_empty());
        let e = stage_events(&mut known, &[stage(2.0)]);
        assert_eq!(e.len(), 1);
        assert_eq!(
            (e[0].kind.as_str(), e[0].severity),
            ("fire.stage", Severity::Alarm)
        );
        assert_eq!(e[0].data["entered"], "stage1");
        assert_eq!(e[0].data["previous"], "normal");
        // The wire event names the stage from the fire logic's stage table.
        assert_eq!(
            e[0].message,
            "rack rc-07: fire stage entered: Power cut and fire blanket"
        );
        assert_eq!(
            e[0].data["stage_name"],
            fire_logic::STAGE_TABLE[2].name,
            "{}",
            e[0].data
        );
        assert!(stage_events(&mut known, &[stage(2.0)]).is_empty());
        assert_eq!(
            stage_events(&mut known, &[stage(0.0)])[0].severity,
            Severity::Info
        );
    }

    /// Hazard: a refused point reported without naming the point, register and exception
    /// leaves the technician guessing which register the firmware lacks.
    #[test]
    fn a_refused_point_is_a_trouble_event_naming_point_register_and_exception() {
        let e = notice_event(
            &Notice::Refused {
                device: "ups-z1".into(),
                point: "input_frequency".into(),
                table: dcim_profiles::Table::Holding,
                address: 4,
                exception: 2,
            },
            7,
        );
        assert_eq!(
            (e.kind.as_str(), e.severity, e.ts_ms),
            ("device.point_refused", Severity::Trouble, 7)
        );
        assert_eq!(e.data["point"], "input_frequency");
        assert_eq!(e.data["table"], "holding");
        assert_eq!(e.data["address"], 4);
        assert_eq!(e.data["exception"], 2);
        let e = notice_event(
            &Notice::Accepted {
                device: "ups-z1".into(),
                point: "input_frequency".into(),
            },
            8,
        );
        assert_eq!(
            (e.kind.as_str(), e.severity),
            ("device.point_accepted", Severity::Info)
        );
    }

    #[test]
    fn only_transitions_make_events() {
        let mut known = BTreeMap::new();
        assert!(online_events(&mut known, &[online("ups", true)]).is_empty());
        let e = online_events(&mut known, &[online("ups", false), online("bms", true)]);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].kind, "device.comm_lost");
        assert!(online_events(&mut known, &[online("ups", false)]).is_empty());
        let e = online_events(&mut known, &[online("ups", true)]);
        assert_eq!(e[0].kind, "device.comm_restored");
        // A device that was never seen online and is declared lost is reported too.
        let e = online_events(&mut known, &[online("meter", false)]);
        assert_eq!(e[0].kind, "device.comm_lost");
    }
}
