//! Network probes published over MQTT on `net/{device}/state`: links (carriers, row switch
//! uplinks; profile `network-link-probe`) and devices (Meet-Me-Room equipment, core switches;
//! profile `network-device-probe`).

use super::wobble;
use crate::{DeviceCommand, Env, SimDevice};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ProbeKind {
    /// A link with a nominal throughput (Gbit/s) and latency (ms).
    Link { gbps: f64, latency_ms: f64 },
    /// A device that is online or not.
    Device,
}

pub struct NetProbe {
    id: String,
    index: usize,
    kind: ProbeKind,
    up: bool,
    t: f64,
}

impl NetProbe {
    pub fn new(id: &str, index: usize, kind: ProbeKind) -> NetProbe {
        NetProbe {
            id: id.to_owned(),
            index,
            kind,
            up: true,
            t: 0.0,
        }
    }
}

impl SimDevice for NetProbe {
    fn id(&self) -> &str {
        &self.id
    }
    fn kind(&self) -> &'static str {
        match self.kind {
            ProbeKind::Link { .. } => "link-probe",
            ProbeKind::Device => "device-probe",
        }
    }
    fn profile_name(&self) -> Option<&str> {
        Some(match self.kind {
            ProbeKind::Link { .. } => "network-link-probe",
            ProbeKind::Device => "network-device-probe",
        })
    }
    fn step(&mut self, t: f64, _dt: f64, _env: &Env) {
        self.t = t;
    }
    fn command(&mut self, cmd: &DeviceCommand) -> Result<(), String> {
        match cmd {
            DeviceCommand::LinkUp(up) => self.up = *up,
            other => return Err(format!("a network probe does not understand {other:?}")),
        }
        Ok(())
    }
    fn mqtt(&self, ts_ms: i64) -> Vec<(String, String)> {
        let ph = self.index as f64;
        let r1 = |x: f64| (x * 10.0).round() / 10.0;
        let body = match self.kind {
            ProbeKind::Link { gbps, latency_ms } => serde_json::json!({
                "ts_ms": ts_ms,
                "up": self.up,
                "throughput_gbps": if self.up { r1(gbps * (1.0 + 0.15 * wobble(self.t, 600.0, ph))) } else { 0.0 },
                "latency_ms": if self.up { r1(latency_ms * (1.0 + 0.1 * wobble(self.t, 90.0, ph))) } else { 0.0 },
                "loss_pct": if self.up { 0.0 } else { 100.0 },
            }),
            ProbeKind::Device => serde_json::json!({
                "ts_ms": ts_ms,
                "online": self.up,
                "uptime_s": 3_000_000.0 + self.t.floor(),
            }),
        };
        vec![(format!("net/{}/state", self.id), body.to_string())]
    }
}
