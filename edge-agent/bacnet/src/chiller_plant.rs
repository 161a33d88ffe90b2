//! A ready-made chiller plant for simulators: two chillers, the chilled-water loop, a buffer
//! tank and CRAH units, as BACnet objects of one device, with a small deterministic thermal
//! model and fault injection (chiller trip, sensor fault).
//!
//! Object map (instance numbers are stable; profiles refer to them):
//!
//! | object | instance | meaning | units |
//! |---|---|---|---|
//! | binary-input  | 100·n+1 | chiller n running | |
//! | binary-input  | 100·n+2 | chiller n fault (tripped) | |
//! | binary-value  | 100·n+1 | chiller n enable command | |
//! | analog-input  | 100·n+1 | chiller n leaving (supply) water temperature | °C |
//! | analog-input  | 100·n+2 | chiller n entering (return) water temperature | °C |
//! | analog-input  | 100·n+3 | chiller n electrical load | kW |
//! | analog-input  | 1 | chilled-water loop flow | m³/h |
//! | analog-input  | 11 | buffer tank water temperature | °C |
//! | analog-input  | 12 | buffer tank level | % |
//! | analog-value  | 1 | chilled-water supply setpoint | °C |
//! | binary-input  | 1000+10·k+1 | CRAH k running | |
//! | analog-input  | 1000+10·k+1 | CRAH k supply air temperature | °C |
//! | analog-input  | 1000+10·k+2 | CRAH k return air temperature | °C |
//!
//! with n = 1, 2 and k = 1..=crah_count.
//!
//! Integration in a simulator is a few lines:
//! ```no_run
//! # async fn f() -> std::io::Result<()> {
//! use dcim_bacnet::chiller_plant::ChillerPlant;
//! use dcim_bacnet::server::DeviceServer;
//! let mut plant = ChillerPlant::new(4);
//! let server = DeviceServer::bind("127.0.0.1:0".parse().unwrap(), plant.device(2001, "chiller-plant")).await?;
//! // every second:
//! plant.step(1.0);
//! server.update(|dev, now| ((), plant.write_to(dev, now))).await;
//! // scripted fault:
//! plant.trip_chiller(1);
//! # Ok(()) }
//! ```

use crate::codec::types::{ObjectId, ObjectType, Value, units};
use crate::device::{Device, Object, Outgoing, StatusFlags};

/// Cooling capacity of one chiller.
pub const CHILLER_CAPACITY_KW: f32 = 1200.0;
/// Coefficient of performance used to derive electrical load from cooling delivered.
pub const CHILLER_COP: f32 = 5.5;
/// Thermal mass of the buffer tank water (500 m³): kJ per kelvin.
pub const TANK_KJ_PER_K: f32 = 500_000.0 * 4.186;

#[derive(Debug, Clone, PartialEq)]
pub struct ChillerState {
    pub enabled: bool,
    pub running: bool,
    pub fault: bool,
    pub supply_c: f32,
    pub return_c: f32,
    pub load_kw: f32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CrahState {
    pub running: bool,
    pub supply_air_c: f32,
    pub return_air_c: f32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChillerPlant {
    pub chillers: [ChillerState; 2],
    pub loop_flow_m3h: f32,
    pub tank_temp_c: f32,
    pub tank_level_pct: f32,
    pub setpoint_c: f32,
    /// Heat rejected by the rooms into the chilled-water loop.
    pub heat_load_kw: f32,
    pub crahs: Vec<CrahState>,
    /// Objects whose sensor is failed: their status flags carry `fault`.
    pub failed_sensors: Vec<ObjectId>,
}

pub fn chiller_running(n: u32) -> ObjectId {
    ObjectId::new(ObjectType::BINARY_INPUT, 100 * n + 1)
}
pub fn chiller_fault(n: u32) -> ObjectId {
    ObjectId::new(ObjectType::BINARY_INPUT, 100 * n + 2)
}
pub fn chiller_enable(n: u32) -> ObjectId {
    ObjectId::new(ObjectType::BINARY_VALUE, 100 * n + 1)
}
pub fn chiller_supply_temp(n: u32) -> ObjectId {
    ObjectId::new(ObjectType::ANALOG_INPUT, 100 * n + 1)
}
pub fn chiller_return_temp(n: u32) -> ObjectId {
    ObjectId::new(ObjectType::ANALOG_INPUT, 100 * n + 2)
}
pub fn chiller_load(n: u32) -> ObjectId {
    ObjectId::new(ObjectType::ANALOG_INPUT, 100 * n + 3)
}
pub fn loop_flow() -> ObjectId {
    ObjectId::new(ObjectType::ANALOG_INPUT, 1)
}
pub fn tank_temp() -> ObjectId {
    ObjectId::new(ObjectType::ANALOG_INPUT, 11)
}
pub fn tank_level() -> ObjectId {
    ObjectId::new(ObjectType::ANALOG_INPUT, 12)
}
pub fn supply_setpoint() -> ObjectId {
    ObjectId::new(ObjectType::ANALOG_VALUE, 1)
}
pub fn crah_running(k: u32) -> ObjectId {
    ObjectId::new(ObjectType::BINARY_INPUT, 1000 + 10 * k + 1)
}
pub fn crah_supply_air(k: u32) -> ObjectId {
    ObjectId::new(ObjectType::ANALOG_INPUT, 1000 + 10 * k + 1)
}
pub fn crah_return_air(k: u32) -> ObjectId {
    ObjectId::new(ObjectType::ANALOG_INPUT, 1000 + 10 * k + 2)
}

impl ChillerPlant {
    /// A plant in steady state: both chillers running at half load, tank full and cold.
    pub fn new(crah_count: u32) -> Self {
        let chiller = ChillerState {
            enabled: true,
            running: true,
            fault: false,
            supply_c: 7.0,
            return_c: 12.0,
            load_kw: 0.0,
        };
        let mut p = ChillerPlant {
            chillers: [chiller.clone(), chiller],
            loop_flow_m3h: 300.0,
            tank_temp_c: 7.0,
            tank_level_pct: 96.0,
            setpoint_c: 7.0,
            heat_load_kw: 1400.0,
            crahs: (0..crah_count)
                .map(|_| CrahState {
                    running: true,
                    supply_air_c: 18.0,
                    return_air_c: 29.0,
                })
                .collect(),
            failed_sensors: Vec::new(),
        };
        p.step(0.0);
        p
    }

    /// Builds the BACnet device hosting every object of the plant with its current values.
    pub fn device(&self, instance: u32, name: &str) -> Device {
        let mut d = Device::new(instance, name);
        d.model_name = "dcim simulated chiller plant".to_string();
        let mut add = |o: Object| {
            // The object map above has no duplicates and only supported types.
            if let Err(e) = d.add_object(o) {
                unreachable!("chiller plant object map: {e}");
            }
        };
        let c = units::DEGREES_CELSIUS;
        for n in 1..=2u32 {
            add(Object::binary(
                chiller_running(n),
                &format!("CH-{n} running"),
                false,
            ));
            add(Object::binary(
                chiller_fault(n),
                &format!("CH-{n} fault"),
                false,
            ));
            add(Object::binary(
                chiller_enable(n),
                &format!("CH-{n} enable"),
                true,
            ));
            add(Object::analog(
                chiller_supply_temp(n),
                &format!("CH-{n} CHWS temp"),
                0.0,
                c,
                0.1,
            ));
            add(Object::analog(
                chiller_return_temp(n),
                &format!("CH-{n} CHWR temp"),
                0.0,
                c,
                0.1,
            ));
            add(Object::analog(
                chiller_load(n),
                &format!("CH-{n} load"),
                0.0,
                units::KILOWATTS,
                5.0,
            ));
        }
        add(Object::analog(
            loop_flow(),
            "CHW loop flow",
            0.0,
            units::CUBIC_METERS_PER_HOUR,
            1.0,
        ));
        add(Object::analog(tank_temp(), "Buffer tank temp", 0.0, c, 0.1));
        add(Object::analog(
            tank_level(),
            "Buffer tank level",
            0.0,
            units::PERCENT,
            0.5,
        ));
        add(Object::analog(
            supply_setpoint(),
            "CHWS setpoint",
            0.0,
            c,
            0.1,
        ));
        for k in 1..=self.crahs.len() as u32 {
            add(Object::binary(
                crah_running(k),
                &format!("CRAH-{k} running"),
                false,
            ));
            add(Object::analog(
                crah_supply_air(k),
                &format!("CRAH-{k} supply air"),
                0.0,
                c,
                0.2,
            ));
            add(Object::analog(
                crah_return_air(k),
                &format!("CRAH-{k} return air"),
                0.0,
                c,
                0.2,
            ));
        }
        // Load the current values; no subscriptions exist yet, so nothing is sent.
        let _ = self.write_to(&mut d, 0);
        d
    }

    /// Trips chiller `n` (1 or 2): it stops and reports a fault until [`ChillerPlant::reset_chiller`].
    pub fn trip_chiller(&mut self, n: usize) {
        if let Some(c) = self.chillers.get_mut(n.wrapping_sub(1)) {
            c.fault = true;
            c.running = false;
        }
    }

    pub fn reset_chiller(&mut self, n: usize) {
        if let Some(c) = self.chillers.get_mut(n.wrapping_sub(1)) {
            c.fault = false;
        }
    }

    /// Marks the sensor behind `object` as failed (status flag `fault`) or repaired.
    pub fn set_sensor_failed(&mut self, object: ObjectId, failed: bool) {
        self.failed_sensors.retain(|o| *o != object);
        if failed {
            self.failed_sensors.push(object);
        }
    }

    /// Advances the thermal model by `dt_s` seconds.
    pub fn step(&mut self, dt_s: f32) {
        for c in &mut self.chillers {
            c.running = c.enabled && !c.fault;
        }
        let running = self.chillers.iter().filter(|c| c.running).count() as f32;
        let capacity = running * CHILLER_CAPACITY_KW;
        // Chillers first cool the returning water; any surplus recharges the tank, a deficit
        // is drawn from it (the tank rides the plant through a chiller trip).
        let tank_error = (self.tank_temp_c - self.setpoint_c).max(0.0);
        let recharge_kw = (tank_error * 400.0).min(600.0);
        let cooling = capacity.min(self.heat_load_kw + recharge_kw);
        let deficit_kw = self.heat_load_kw - cooling;
        self.tank_temp_c += deficit_kw * dt_s / TANK_KJ_PER_K;
        self.tank_temp_c = self.tank_temp_c.max(self.setpoint_c);
        // Water mass flow: m³/h -> kg/s; delta-T across the loads.
        let kg_s = (self.loop_flow_m3h * 1000.0 / 3600.0).max(1.0);
        let delta_t = self.heat_load_kw / (kg_s * 4.186);
        let supply = if running > 0.0 && deficit_kw <= 0.0 {
            self.setpoint_c
        } else {
            self.tank_temp_c
        };
        for c in &mut self.chillers {
            if c.running {
                c.supply_c = supply;
                c.load_kw = cooling / running / CHILLER_COP;
            } else {
                // A stopped chiller's leaving water drifts towards the loop return.
                c.supply_c += (supply + delta_t - c.supply_c) * (dt_s / 120.0).min(1.0);
                c.load_kw = 0.0;
            }
            c.return_c = supply + delta_t;
        }
        let running_crahs = self.crahs.iter().filter(|c| c.running).count().max(1) as f32;
        let per_crah_kw = self.heat_load_kw / running_crahs;
        for crah in &mut self.crahs {
            if crah.running {
                crah.supply_air_c = supply + 11.0;
                crah.return_air_c = crah.supply_air_c + per_crah_kw / 100.0;
            }
        }
    }

    /// Writes every value into `device` and returns the COV notifications due.
    pub fn write_to(&self, device: &mut Device, now_ms: u64) -> Vec<Outgoing> {
        let mut out = Vec::new();
        let mut set = |id: ObjectId, v: Value| {
            if let Ok(o) = device.set_present_value(id, v, now_ms) {
                out.extend(o);
            }
            let flags = StatusFlags {
                fault: self.failed_sensors.contains(&id),
                ..StatusFlags::default()
            };
            if let Ok(o) = device.set_status_flags(id, flags, now_ms) {
                out.extend(o);
            }
        };
        let b = |x: bool| Value::Enumerated(u32::from(x));
        for (i, c) in self.chillers.iter().enumerate() {
            let n = i as u32 + 1;
            set(chiller_running(n), b(c.running));
            set(chiller_fault(n), b(c.fault));
            set(chiller_enable(n), b(c.enabled));
            set(chiller_supply_temp(n), Value::Real(c.supply_c));
            set(chiller_return_temp(n), Value::Real(c.return_c));
            set(chiller_load(n), Value::Real(c.load_kw));
        }
        set(loop_flow(), Value::Real(self.loop_flow_m3h));
        set(tank_temp(), Value::Real(self.tank_temp_c));
        set(tank_level(), Value::Real(self.tank_level_pct));
        set(supply_setpoint(), Value::Real(self.setpoint_c));
        for (i, c) in self.crahs.iter().enumerate() {
            let k = i as u32 + 1;
            set(crah_running(k), b(c.running));
            set(crah_supply_air(k), Value::Real(c.supply_air_c));
            set(crah_return_air(k), Value::Real(c.return_air_c));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::types::PropertyId;

    #[test]
    fn device_hosts_every_object_with_values() {
        let plant = ChillerPlant::new(3);
        let d = plant.device(2001, "plant");
        assert_eq!(d.objects().count(), 2 * 6 + 4 + 3 * 3);
        let v = d
            .read_property(chiller_running(1), PropertyId::PRESENT_VALUE, None)
            .unwrap();
        assert_eq!(v, Value::Enumerated(1));
        let t = d
            .read_property(chiller_supply_temp(2), PropertyId::PRESENT_VALUE, None)
            .unwrap();
        assert_eq!(t, Value::Real(7.0));
        assert_eq!(
            d.read_property(tank_level(), PropertyId::UNITS, None)
                .unwrap(),
            Value::Enumerated(units::PERCENT)
        );
    }

    #[test]
    fn chiller_trip_stops_it_and_the_tank_warms_when_capacity_is_short() {
        let mut plant = ChillerPlant::new(2);
        plant.heat_load_kw = 2000.0;
        plant.step(1.0);
        assert!(plant.chillers.iter().all(|c| c.running));
        let t0 = plant.tank_temp_c;
        plant.trip_chiller(1);
        for _ in 0..600 {
            plant.step(1.0);
        }
        assert!(!plant.chillers[0].running && plant.chillers[0].fault);
        assert_eq!(plant.chillers[0].load_kw, 0.0);
        assert!(plant.tank_temp_c > t0 + 0.1, "tank {}", plant.tank_temp_c);
        plant.reset_chiller(1);
        plant.step(1.0);
        assert!(plant.chillers[0].running);
    }

    #[test]
    fn sensor_failure_sets_fault_flag() {
        let mut plant = ChillerPlant::new(1);
        let mut d = plant.device(1, "p");
        plant.set_sensor_failed(tank_temp(), true);
        let _ = plant.write_to(&mut d, 10);
        assert!(d.object(tank_temp()).unwrap().status_flags.fault);
        assert!(!d.object(tank_level()).unwrap().status_flags.fault);
    }
}
