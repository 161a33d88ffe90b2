//! Power-chain devices of the demo facility: utility feed meters (`power-meter-feed`),
//! transformers (`transformer`) and row PDUs (`pdu-row`). Their loads come from the facility's
//! load model (`Env::loads_kw`, see [`crate::demo::compute_loads`]).

use super::wobble;
use crate::modbus::{ModbusShared, SimValue};
use crate::{DeviceCommand, Env, SimDevice};
use dcim_profiles::Profile;
use std::sync::Arc;

/// Line current of a three-phase load: I = P / (sqrt(3) U cos phi), cos phi = 0.95.
pub fn line_current_a(kw: f64, volts: f64) -> f64 {
    if volts <= 0.0 {
        0.0
    } else {
        kw * 1000.0 / (3f64.sqrt() * volts * 0.95)
    }
}

/// The meter of one 22.9 kV utility line.
pub struct FeedMeter {
    id: String,
    feed: usize,
    profile: Arc<Profile>,
    shared: Arc<ModbusShared>,
    breaker_closed: bool,
}

impl FeedMeter {
    pub fn new(id: &str, feed: usize, profile: Arc<Profile>) -> FeedMeter {
        FeedMeter {
            id: id.to_owned(),
            feed,
            profile,
            shared: Arc::new(ModbusShared::default()),
            breaker_closed: true,
        }
    }
}

impl SimDevice for FeedMeter {
    fn id(&self) -> &str {
        &self.id
    }
    fn kind(&self) -> &'static str {
        "feed-meter"
    }
    fn step(&mut self, t: f64, _dt: f64, env: &Env) {
        let ph = self.feed as f64 * 1.7;
        let up = env.feed_up[self.feed];
        let volts = if up {
            22_900.0 + 120.0 * wobble(t, 300.0, ph)
        } else {
            0.0
        };
        let kw = if up && self.breaker_closed {
            env.loads_kw.get(&self.id).copied().unwrap_or(0.0)
        } else {
            0.0
        };
        let v = SimValue::Number;
        self.shared.write_values(
            &self.profile,
            &[
                ("voltage", v(volts)),
                ("current", v(line_current_a(kw, volts))),
                ("power_kw", v(kw)),
                (
                    "frequency",
                    v(if up {
                        60.0 + 0.02 * wobble(t, 90.0, ph)
                    } else {
                        0.0
                    }),
                ),
                ("breaker_closed", SimValue::Bool(self.breaker_closed)),
            ],
        );
    }
    fn command(&mut self, cmd: &DeviceCommand) -> Result<(), String> {
        match cmd {
            DeviceCommand::Breaker { closed, .. } => self.breaker_closed = *closed,
            other => return Err(format!("a feed meter does not understand {other:?}")),
        }
        Ok(())
    }
    fn modbus(&self) -> Option<(&Arc<ModbusShared>, &Arc<Profile>)> {
        Some((&self.shared, &self.profile))
    }
}

/// A 22.9 kV / 400 V transformer with its temperature relay.
pub struct Transformer {
    id: String,
    index: usize,
    rating_kw: f64,
    profile: Arc<Profile>,
    shared: Arc<ModbusShared>,
    temp_c: f64,
}

impl Transformer {
    pub fn new(id: &str, index: usize, rating_kw: f64, profile: Arc<Profile>) -> Transformer {
        Transformer {
            id: id.to_owned(),
            index,
            rating_kw,
            profile,
            shared: Arc::new(ModbusShared::default()),
            temp_c: 0.0,
        }
    }
}

impl SimDevice for Transformer {
    fn id(&self) -> &str {
        &self.id
    }
    fn kind(&self) -> &'static str {
        "transformer"
    }
    fn step(&mut self, t: f64, dt: f64, env: &Env) {
        let kw = env.loads_kw.get(&self.id).copied().unwrap_or(0.0);
        let load = kw / self.rating_kw;
        // Hottest winding: ambient + rise proportional to the square of the load.
        let target = 32.0 + 75.0 * load * load + 0.5 * wobble(t, 900.0, self.index as f64);
        if self.temp_c == 0.0 {
            self.temp_c = target;
        }
        // 20-minute thermal time constant.
        self.temp_c += (target - self.temp_c) * (dt / 1200.0).min(1.0);
        self.shared.write_values(
            &self.profile,
            &[
                ("winding_temp", SimValue::Number(self.temp_c)),
                ("load_pct", SimValue::Number(100.0 * load)),
            ],
        );
    }
    fn modbus(&self) -> Option<(&Arc<ModbusShared>, &Arc<Profile>)> {
        Some((&self.shared, &self.profile))
    }
}

/// One side (A or B) of a row's power distribution, behind the row's serial gateway.
pub struct Pdu {
    id: String,
    gateway: String,
    unit: u8,
    profile: Arc<Profile>,
    shared: Arc<ModbusShared>,
    breaker_closed: bool,
}

impl Pdu {
    pub fn new(id: &str, gateway: &str, unit: u8, profile: Arc<Profile>) -> Pdu {
        Pdu {
            id: id.to_owned(),
            gateway: gateway.to_owned(),
            unit,
            profile,
            shared: Arc::new(ModbusShared::default()),
            breaker_closed: true,
        }
    }
}

impl SimDevice for Pdu {
    fn id(&self) -> &str {
        &self.id
    }
    fn kind(&self) -> &'static str {
        "pdu"
    }
    fn gateway(&self) -> Option<(String, u8)> {
        Some((self.gateway.clone(), self.unit))
    }
    fn contribute(&self, env: &mut Env) {
        if self.breaker_closed {
            env.open_breakers.remove(&self.id);
        } else {
            env.open_breakers.insert(self.id.clone());
        }
    }
    fn step(&mut self, _t: f64, _dt: f64, env: &Env) {
        let kw = if self.breaker_closed {
            env.loads_kw.get(&self.id).copied().unwrap_or(0.0)
        } else {
            0.0
        };
        self.shared.write_values(
            &self.profile,
            &[
                ("power_kw", SimValue::Number(kw)),
                ("current", SimValue::Number(line_current_a(kw, 400.0))),
                ("breaker_closed", SimValue::Bool(self.breaker_closed)),
            ],
        );
    }
    fn command(&mut self, cmd: &DeviceCommand) -> Result<(), String> {
        match cmd {
            DeviceCommand::Breaker { closed, .. } => self.breaker_closed = *closed,
            other => return Err(format!("a PDU does not understand {other:?}")),
        }
        Ok(())
    }
    fn modbus(&self) -> Option<(&Arc<ModbusShared>, &Arc<Profile>)> {
        Some((&self.shared, &self.profile))
    }
}
