//! Dual-feed power meter with ATS (profile `power-meter-dual-feed-ats`): measures utility feeds
//! A and B, reports both breakers and the source the ATS is on. The ATS prefers A and transfers
//! to B when A is lost (and back when A returns).

use super::wobble;
use crate::modbus::{ModbusShared, SimValue};
use crate::{DeviceCommand, Env, SimDevice};
use dcim_profiles::Profile;
use std::sync::Arc;

pub struct Meter {
    id: String,
    index: usize,
    profile: Arc<Profile>,
    shared: Arc<ModbusShared>,
    breaker_closed: [bool; 2],
    energy_kwh: [f64; 2],
    source: Option<usize>,
}

impl Meter {
    pub fn new(id: &str, index: usize, profile: Arc<Profile>) -> Meter {
        Meter {
            id: id.to_owned(),
            index,
            profile,
            shared: Arc::new(ModbusShared::default()),
            breaker_closed: [true, true],
            energy_kwh: [1_250_000.0, 310_000.0],
            source: Some(0),
        }
    }
}

impl SimDevice for Meter {
    fn id(&self) -> &str {
        &self.id
    }
    fn kind(&self) -> &'static str {
        "power-meter-ats"
    }
    fn contribute(&self, env: &mut Env) {
        env.ats_source.insert(self.id.clone(), self.source);
    }
    fn step(&mut self, t: f64, dt: f64, env: &Env) {
        let ph = self.index as f64 * 1.3;
        let live = [
            env.feed_up[0] && self.breaker_closed[0],
            env.feed_up[1] && self.breaker_closed[1],
        ];
        let source = if live[0] {
            Some(0)
        } else if live[1] {
            Some(1)
        } else {
            None
        };
        self.source = source;
        // The demo's load model gives the ATS line-up's load; otherwise a plausible one.
        let load_kw = env
            .loads_kw
            .get(&self.id)
            .copied()
            .unwrap_or_else(|| 820.0 + 40.0 * wobble(t, 1800.0, ph));
        let mut values = Vec::new();
        for (f, name) in ["a", "b"].iter().enumerate() {
            let voltage = if env.feed_up[f] {
                400.0 + 2.5 * wobble(t, 240.0, ph + f as f64)
            } else {
                0.0
            };
            let power = if source == Some(f) { load_kw } else { 0.0 };
            let current = if voltage > 0.0 {
                power * 1000.0 / (3f64.sqrt() * voltage * 0.95)
            } else {
                0.0
            };
            self.energy_kwh[f] += power * dt / 3600.0;
            let freq = if voltage > 0.0 {
                60.0 + 0.02 * wobble(t, 90.0, ph + f as f64)
            } else {
                0.0
            };
            values.push((format!("feed_{name}_voltage"), SimValue::Number(voltage)));
            values.push((format!("feed_{name}_current"), SimValue::Number(current)));
            values.push((format!("feed_{name}_power"), SimValue::Number(power)));
            values.push((format!("feed_{name}_frequency"), SimValue::Number(freq)));
            values.push((
                format!("feed_{name}_energy"),
                SimValue::Number(self.energy_kwh[f]),
            ));
            values.push((
                format!("feed_{name}_breaker_closed"),
                SimValue::Bool(self.breaker_closed[f]),
            ));
        }
        let src = match source {
            Some(0) => "A",
            Some(_) => "B",
            None => "none",
        };
        values.push(("ats_source".into(), SimValue::Text(src.into())));
        values.push(("ats_transfer_inhibited".into(), SimValue::Bool(false)));
        let refs: Vec<(&str, SimValue)> = values
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        self.shared.write_values(&self.profile, &refs);
    }
    fn command(&mut self, cmd: &DeviceCommand) -> Result<(), String> {
        match cmd {
            DeviceCommand::Breaker { feed, closed } => self.breaker_closed[*feed] = *closed,
            other => return Err(format!("a power meter does not understand {other:?}")),
        }
        Ok(())
    }
    fn modbus(&self) -> Option<(&Arc<ModbusShared>, &Arc<Profile>)> {
        Some((&self.shared, &self.profile))
    }
}
