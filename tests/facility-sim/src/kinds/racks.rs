//! Demo racks: the master BMS of a UPS battery room (`battery-room-bms`, eight battery strings
//! watched by the room's thermal camera) and IT racks behind their row's serial gateway
//! (`it-rack`). Both report the latched fire stage of the staged fire logic as its code
//! (role `fire.stage`), with the thresholds of the fire logic's stage table
//! (`fire_logic::STAGE_TABLE`): pre-alarm, stage1 "Power cut and fire blanket", stage2
//! "Extinguishing patch" and stage3 "Extinguishing agent" at their default temperatures. The
//! simulator does not model the coolant and room-gas stages (stage4, stage5).

use super::wobble;
use crate::modbus::{ModbusShared, SimValue};
use crate::{DeviceCommand, Env, SimDevice};
use dcim_profiles::Profile;
use std::sync::Arc;

/// Default threshold (°C) of a stage in the fire logic's stage table.
const fn table_c(s: fire_logic::Stage) -> f64 {
    match s.info().default_threshold {
        Some(t) => t as f64 / 10.0,
        None => f64::INFINITY,
    }
}

/// Pre-alarm threshold and the thresholds of stage1..stage3 (°C): the fire logic's defaults.
pub const PRE_ALARM_C: f64 = table_c(fire_logic::Stage::PreAlarm);
pub const STAGE_C: [f64; 3] = [
    table_c(fire_logic::Stage::Stage1),
    table_c(fire_logic::Stage::Stage2),
    table_c(fire_logic::Stage::Stage3),
];
/// A local reset is refused while the rack is at or above this (°C): the fire logic's default.
pub fn reset_max_c() -> f64 {
    f64::from(fire_logic::Config::default().reset_max) / 10.0
}

/// The `fire.stage` code a governing temperature reaches.
pub fn stage_for(temp_c: f64) -> u16 {
    use fire_logic::Stage;
    let stage = match temp_c {
        x if x >= STAGE_C[2] => Stage::Stage3,
        x if x >= STAGE_C[1] => Stage::Stage2,
        x if x >= STAGE_C[0] => Stage::Stage1,
        x if x >= PRE_ALARM_C => Stage::PreAlarm,
        _ => Stage::Normal,
    };
    u16::from(stage.code())
}

/// Heating of one rack or string and its latched stage.
#[derive(Debug, Clone, Default)]
pub struct FireLatch {
    /// °C per minute while heating.
    pub heating: Option<f64>,
    /// Temperature above normal, °C.
    pub extra_c: f64,
    /// Latched stage (kept until a local reset).
    pub stage: u16,
}

impl FireLatch {
    pub fn step(&mut self, dt: f64, governing_c: impl Fn(f64) -> f64) {
        match self.heating {
            Some(rate) => self.extra_c = (self.extra_c + rate * dt / 60.0).min(250.0),
            None => self.extra_c *= (-dt / 120.0).exp(),
        }
        self.stage = self.stage.max(stage_for(governing_c(self.extra_c)));
    }

    pub fn command(&mut self, cmd: &DeviceCommand, temp_now: f64) -> Result<(), String> {
        match cmd {
            DeviceCommand::Heat { rate_c_per_min } => self.heating = Some(*rate_c_per_min),
            DeviceCommand::Cool => self.heating = None,
            DeviceCommand::FireReset => {
                let max = reset_max_c();
                if temp_now >= max {
                    return Err(format!(
                        "reset refused: {temp_now:.1} °C is above the reset threshold {max} °C"
                    ));
                }
                self.stage = 0;
            }
            other => return Err(format!("a rack does not understand {other:?}")),
        }
        Ok(())
    }
}

/// Strings per battery room (camera regions `rack-01`..`rack-08`).
pub const STRINGS: usize = 8;
/// The string that `heat` heats (region `rack-03`).
pub const HEATED_STRING: usize = 2;

/// The master BMS of one UPS battery room.
pub struct BatteryRoom {
    id: String,
    index: usize,
    /// Room ambient above the others, °C (one room runs warmer).
    warmer_c: f64,
    profile: Arc<Profile>,
    shared: Arc<ModbusShared>,
    fire: FireLatch,
    strings_c: [f64; STRINGS],
    ups: String,
}

impl BatteryRoom {
    pub fn new(id: &str, index: usize, warmer_c: f64, ups: &str, profile: Arc<Profile>) -> Self {
        BatteryRoom {
            id: id.to_owned(),
            index,
            warmer_c,
            profile,
            shared: Arc::new(ModbusShared::default()),
            fire: FireLatch::default(),
            strings_c: [25.0; STRINGS],
            ups: ups.to_owned(),
        }
    }

    fn cell_max(&self) -> f64 {
        self.strings_c.iter().copied().fold(f64::MIN, f64::max)
    }
}

impl SimDevice for BatteryRoom {
    fn id(&self) -> &str {
        &self.id
    }
    fn kind(&self) -> &'static str {
        "battery-room-bms"
    }
    fn contribute(&self, env: &mut Env) {
        for (i, c) in self.strings_c.iter().enumerate() {
            // The camera sees the enclosure surface, a little below the hottest cell.
            env.regions
                .insert(format!("{}:rack-{:02}", self.id, i + 1), c - 1.5);
        }
    }
    fn step(&mut self, t: f64, dt: f64, env: &Env) {
        let base = 25.0 + self.warmer_c + 0.4 * wobble(t, 1200.0, self.index as f64);
        let on_battery = env.ups_on_battery.contains(&self.ups);
        // Discharging warms the cells a little.
        let discharge_c = if on_battery { 2.0 } else { 0.0 };
        self.fire.step(dt, |extra| base + discharge_c + extra);
        for (i, s) in self.strings_c.iter_mut().enumerate() {
            *s = base + discharge_c + 0.3 * wobble(t, 600.0 + 37.0 * i as f64, i as f64)
                - 0.1 * i as f64;
            if i == HEATED_STRING {
                *s += self.fire.extra_c;
            }
        }
        let max = self.cell_max();
        let min = self.strings_c.iter().copied().fold(f64::MAX, f64::min) - 2.0;
        let stage = self.fire.stage;
        let v = SimValue::Number;
        self.shared.write_values(
            &self.profile,
            &[
                ("cell_temp_max", v(max)),
                ("cell_temp_min", v(min)),
                ("soc", v(if on_battery { 90.0 } else { 98.5 })),
                ("contactor_closed", SimValue::Bool(stage < 2)),
                ("smoke", SimValue::Bool(max >= STAGE_C[1])),
                ("fire_stage", v(stage as f64)),
                (
                    "room_temp",
                    v(23.0 + self.warmer_c + 0.25 * self.fire.extra_c),
                ),
            ],
        );
    }
    fn command(&mut self, cmd: &DeviceCommand) -> Result<(), String> {
        let now = self.cell_max();
        self.fire.command(cmd, now)
    }
    fn modbus(&self) -> Option<(&Arc<ModbusShared>, &Arc<Profile>)> {
        Some((&self.shared, &self.profile))
    }
}

/// An IT rack behind its row's serial gateway.
pub struct ItRack {
    id: String,
    number: usize,
    room: String,
    gateway: String,
    unit: u8,
    profile: Arc<Profile>,
    shared: Arc<ModbusShared>,
    fire: FireLatch,
    inlet_c: f64,
}

impl ItRack {
    pub fn new(
        id: &str,
        number: usize,
        room: &str,
        gateway: &str,
        unit: u8,
        profile: Arc<Profile>,
    ) -> Self {
        ItRack {
            id: id.to_owned(),
            number,
            room: room.to_owned(),
            gateway: gateway.to_owned(),
            unit,
            profile,
            shared: Arc::new(ModbusShared::default()),
            fire: FireLatch::default(),
            inlet_c: 22.0,
        }
    }
}

impl SimDevice for ItRack {
    fn id(&self) -> &str {
        &self.id
    }
    fn kind(&self) -> &'static str {
        "it-rack"
    }
    fn gateway(&self) -> Option<(String, u8)> {
        Some((self.gateway.clone(), self.unit))
    }
    fn step(&mut self, t: f64, dt: f64, env: &Env) {
        let room = env.room_temp.get(&self.room).copied().unwrap_or(24.0);
        let n = self.number as f64;
        // Cold-aisle inlet: a few degrees below the room average, racks at row ends warmer.
        let end_of_row = if matches!(self.number % 10, 0 | 1) {
            0.8
        } else {
            0.0
        };
        let base = room - 2.5 + end_of_row + 0.3 * wobble(t, 500.0 + n, n);
        self.fire.step(dt, |extra| base + extra);
        self.inlet_c = base + self.fire.extra_c;
        let kw = env.loads_kw.get(&self.id).copied().unwrap_or(0.0);
        let stage = self.fire.stage;
        let v = SimValue::Number;
        self.shared.write_values(
            &self.profile,
            &[
                ("it_power_kw", v(if stage >= 2 { 0.0 } else { kw })),
                ("inlet_temp", v(self.inlet_c)),
                ("smoke", SimValue::Bool(self.inlet_c >= STAGE_C[1])),
                ("fire_stage", v(stage as f64)),
            ],
        );
    }
    fn command(&mut self, cmd: &DeviceCommand) -> Result<(), String> {
        let now = self.inlet_c;
        self.fire.command(cmd, now)
    }
    fn modbus(&self) -> Option<(&Arc<ModbusShared>, &Arc<Profile>)> {
        Some((&self.shared, &self.profile))
    }
}
