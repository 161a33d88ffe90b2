//! Modbus devices through `dcim-modbus`: one poller per line (a TCP device, or an RS-485 line /
//! RTU-over-TCP gateway shared by several unit ids). The poller reports samples, including each
//! device's `device.online`; this module forwards them to the spool and turns `device.online`
//! transitions into `device.comm_lost` / `device.comm_restored` events.

use crate::ingest::Ingest;
use crate::payload::EventDraft;
use dcim_modbus::{Connection, ModbusDevice};
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
        let (kind, severity, message) = match (before, online) {
            (Some(true) | None, false) => (
                "device.comm_lost",
                Severity::Trouble,
                format!("{} stopped answering", s.device),
            ),
            (Some(false), true) => (
                "device.comm_restored",
                Severity::Info,
                format!("{} answers again", s.device),
            ),
            _ => continue,
        };
        out.push(EventDraft {
            ts_ms: s.ts_ms,
            device: s.device.clone(),
            kind: kind.into(),
            severity,
            message,
            data: serde_json::Value::Null,
            test: false,
        });
    }
    out
}

pub async fn run(ingest: Arc<Ingest>, line: ModbusLine, mut shutdown: watch::Receiver<bool>) {
    let (tx, mut rx) = mpsc::channel::<Vec<Sample>>(256);
    let name = line.connection.to_string();
    let handle = match dcim_modbus::spawn_line(line.connection, line.devices, tx) {
        Ok(h) => h,
        Err(e) => {
            error!(line = %name, error = %e, "cannot start the Modbus poller");
            return;
        }
    };
    let mut known = BTreeMap::new();
    loop {
        tokio::select! {
            batch = rx.recv() => match batch {
                Some(samples) => {
                    for e in online_events(&mut known, &samples) {
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
            _ = shutdown.changed() => if *shutdown.borrow() {
                drop(rx);
                handle.abort();
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
