//! The chilled-water plant over BACnet/IP: chillers, chilled-water loops, the buffer tank and the
//! CRAH units, each a BACnet device of its own (one UDP port each, keyed by device instance) whose
//! objects follow its profile (`chiller-water-cooled`, `chilled-water-loop`, `buffer-tank`,
//! `crah-chilled-water`).
//!
//! The thermal model is `dcim_bacnet::chiller_plant::ChillerPlant` (two chillers, loop, tank,
//! CRAHs), stepped by the simulator's clock, with the tank's thermal mass scaled to the tank
//! volume of the site (`PlantLayout::tank_m3`): while the running chillers cannot carry the heat
//! load (a chiller tripped, or both), the tank supplies the difference and its temperature rises
//! at `deficit / (volume x 4186 kJ/m3K)`; once the chillers are back it is recharged.
//!
//! Chiller `mode` (a multi-state-value in the chiller profile) is not hosted: the BACnet device
//! server of `dcim-bacnet` hosts analog and binary objects only.

use super::wobble;
use crate::scenario::DeviceCommand;
use crate::{BacnetDevice, BacnetObject, Env, SimDevice};
use dcim_bacnet::chiller_plant::{CHILLER_CAPACITY_KW, CHILLER_COP, ChillerPlant, TANK_KJ_PER_K};
use dcim_bacnet::codec::types::{ObjectId, ObjectType, Value, units};
use dcim_profiles::{Address, Profile};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

/// Ids and sizes of the plant's devices.
#[derive(Debug, Clone, PartialEq)]
pub struct PlantLayout {
    /// Chiller device ids (exactly two: the model has two chillers).
    pub chillers: [String; 2],
    pub tank: String,
    /// Buffer tank volume, m³.
    pub tank_m3: f64,
    pub loops: Vec<String>,
    /// CRAH device id and the room it cools.
    pub crahs: Vec<(String, String)>,
    /// First BACnet device instance; devices are numbered from it in the order above.
    pub instance_base: u32,
    /// Heat load when no load model fills `Env::it_kw`, kW.
    pub default_heat_kw: f64,
    /// Rated cooling of one CRAH, kW.
    pub crah_rating_kw: f64,
}

impl PlantLayout {
    /// The basic preset: `chiller-1`, `chiller-2`, `tank-1` (60 m³), `loop-a`, `crah-1`..`crah-4`
    /// in `room-1`.
    pub fn basic() -> PlantLayout {
        PlantLayout {
            chillers: ["chiller-1".into(), "chiller-2".into()],
            tank: "tank-1".into(),
            tank_m3: 60.0,
            loops: vec!["loop-a".into()],
            crahs: (1..=4)
                .map(|k| (format!("crah-{k}"), "room-1".to_string()))
                .collect(),
            instance_base: 3001,
            default_heat_kw: 600.0,
            crah_rating_kw: 200.0,
        }
    }
}

/// Pumps and cooling towers, kW (electrical), while the plant runs.
const AUX_KW: f64 = 90.0;
/// One CRAH's fans, kW (electrical).
const CRAH_FAN_KW: f64 = 6.5;

pub struct Plant {
    layout: PlantLayout,
    model: ChillerPlant,
    chiller_profile: Arc<Profile>,
    loop_profile: Arc<Profile>,
    tank_profile: Arc<Profile>,
    crah_profile: Arc<Profile>,
    /// (device, point) whose sensor is failed.
    failed: BTreeSet<(String, String)>,
    t: f64,
    /// Cooling the chillers could not deliver in the last step (drawn from the tank), kW.
    deficit_kw: f64,
    /// Heat per room, kW, and the room temperatures it leads to.
    room_heat: Vec<(String, f64)>,
    room_temp: Vec<(String, f64)>,
}

impl Plant {
    pub fn new(layout: PlantLayout, profiles_dir: &Path) -> Result<Plant, String> {
        let load = |n: &str| crate::load_profile(profiles_dir, n);
        let mut model = ChillerPlant::new(layout.crahs.len() as u32);
        model.heat_load_kw = layout.default_heat_kw as f32;
        let rooms: Vec<String> = layout.crahs.iter().fold(Vec::new(), |mut v, (_, r)| {
            if !v.contains(r) {
                v.push(r.clone());
            }
            v
        });
        Ok(Plant {
            chiller_profile: load("chiller-water-cooled")?,
            loop_profile: load("chilled-water-loop")?,
            tank_profile: load("buffer-tank")?,
            crah_profile: load("crah-chilled-water")?,
            model,
            failed: BTreeSet::new(),
            t: 0.0,
            deficit_kw: 0.0,
            room_heat: rooms.iter().map(|r| (r.clone(), 0.0)).collect(),
            room_temp: rooms.iter().map(|r| (r.clone(), 24.0)).collect(),
            layout,
        })
    }

    /// The thermal model (for tests and status).
    pub fn model(&self) -> &ChillerPlant {
        &self.model
    }

    fn tank_kj_per_k(&self) -> f64 {
        self.layout.tank_m3 * 1000.0 * 4.186
    }

    fn chiller_index(&self, id: &str) -> Option<usize> {
        self.layout.chillers.iter().position(|c| c == id)
    }

    /// Water temperature delivered to the loads: the chillers' leaving water, or the tank's
    /// while it rides through.
    fn loop_supply_c(&self) -> f64 {
        let running: Vec<f64> = self
            .model
            .chillers
            .iter()
            .filter(|c| c.running)
            .map(|c| c.supply_c as f64)
            .collect();
        if running.is_empty() || self.deficit_kw > 0.0 {
            self.model.tank_temp_c as f64
        } else {
            running.iter().sum::<f64>() / running.len() as f64
        }
    }

    fn loop_return_c(&self) -> f64 {
        self.model.chillers[0].return_c as f64
    }

    fn crahs_in(&self, room: &str) -> usize {
        self.layout.crahs.iter().filter(|(_, r)| r == room).count()
    }

    fn device(
        &self,
        id: &str,
        profile: &Profile,
        instance: u32,
        values: &[(&str, Value)],
    ) -> BacnetDevice {
        let objects = values
            .iter()
            .filter_map(|(point, value)| {
                let p = profile.point(point)?;
                let Address::Bacnet(a) = &p.address else {
                    return None;
                };
                // Analog and binary kinds only.
                let object_type = ObjectType::from_name(a.object.as_str())
                    .filter(|t| t.is_analog() || t.is_binary())?;
                let units = match value {
                    Value::Real(_) => Some(bacnet_units(&p.unit)),
                    _ => None,
                };
                Some(BacnetObject {
                    id: ObjectId::new(object_type, a.instance),
                    name: format!("{id} {point}"),
                    value: value.clone(),
                    units,
                    fault: self.failed.contains(&(id.to_owned(), point.to_string())),
                })
            })
            .collect();
        BacnetDevice {
            device: id.to_owned(),
            profile: profile.name.clone(),
            instance,
            objects,
        }
    }
}

fn bacnet_units(unit: &str) -> u32 {
    match unit {
        "degC" => units::DEGREES_CELSIUS,
        "kW" => units::KILOWATTS,
        "%" => units::PERCENT,
        "m3/h" => units::CUBIC_METERS_PER_HOUR,
        "l/s" => units::LITERS_PER_SECOND,
        _ => units::NO_UNITS,
    }
}

fn real(x: f64) -> Value {
    Value::Real(x as f32)
}
fn bin(b: bool) -> Value {
    Value::Enumerated(u32::from(b))
}

impl SimDevice for Plant {
    fn id(&self) -> &str {
        "chiller-plant"
    }
    fn kind(&self) -> &'static str {
        "chiller-plant"
    }
    fn owns(&self, id: &str) -> bool {
        id == "chiller-plant"
            || self.layout.chillers.iter().any(|c| c == id)
            || self.layout.tank == id
            || self.layout.loops.iter().any(|l| l == id)
            || self.layout.crahs.iter().any(|(c, _)| c == id)
    }
    fn contribute(&self, env: &mut Env) {
        let chillers: f64 = self.model.chillers.iter().map(|c| c.load_kw as f64).sum();
        let running = self.model.chillers.iter().any(|c| c.running);
        let aux = if running { AUX_KW } else { AUX_KW * 0.4 };
        env.cooling_kw = chillers + aux + CRAH_FAN_KW * self.layout.crahs.len() as f64;
        for (room, temp) in &self.room_temp {
            env.room_temp.insert(room.clone(), *temp);
        }
    }
    fn step(&mut self, t: f64, dt: f64, env: &Env) {
        self.t = t;
        // Chillers are not on UPS: without any live utility feed they stop.
        let powered = env.feed_up.iter().any(|u| *u);
        for c in &mut self.model.chillers {
            c.enabled = powered;
        }
        // Heat into the loop: IT load plus lights, people and UPS losses in the halls (5 %).
        let heat = if env.it_kw > 0.0 {
            env.it_kw * 1.05
        } else {
            self.layout.default_heat_kw
        };
        self.model.heat_load_kw = heat as f32;
        let before = self.model.tank_temp_c as f64;
        self.model.step(dt as f32);
        // The model's tank is 500 m³; rescale its temperature change to this tank's volume.
        let rise = self.model.tank_temp_c as f64 - before;
        let scaled = before + rise * TANK_KJ_PER_K as f64 / self.tank_kj_per_k();
        self.model.tank_temp_c = scaled.max(self.model.setpoint_c as f64) as f32;
        let running = self.model.chillers.iter().filter(|c| c.running).count() as f64;
        self.deficit_kw = (heat - running * CHILLER_CAPACITY_KW as f64).max(0.0);
        // Rooms: heat per room from the load model (or shared evenly), supply air from the loop.
        let rooms = self.room_heat.len().max(1) as f64;
        for (room, h) in &mut self.room_heat {
            *h = env.room_it_kw.get(room).copied().unwrap_or(heat / rooms);
        }
        let supply = self.loop_supply_c();
        for (i, (room, temp)) in self.room_temp.iter_mut().enumerate() {
            let crahs = self
                .layout
                .crahs
                .iter()
                .filter(|(_, r)| r == room)
                .count()
                .max(1);
            let h = self.room_heat[i].1;
            let per_crah_load = h / (crahs as f64 * self.layout.crah_rating_kw);
            let target = supply + 11.0 + 4.0 * per_crah_load + 0.3 * wobble(t, 700.0, i as f64);
            // Room air follows with a 3-minute time constant.
            *temp += (target - *temp) * (dt / 180.0).min(1.0);
        }
    }
    fn command(&mut self, cmd: &DeviceCommand) -> Result<(), String> {
        match cmd {
            DeviceCommand::ChillerTrip(id) => {
                let n = self
                    .chiller_index(id)
                    .ok_or_else(|| format!("`{id}` is not a chiller"))?;
                self.model.trip_chiller(n + 1);
            }
            DeviceCommand::ChillerReset(id) => {
                let n = self
                    .chiller_index(id)
                    .ok_or_else(|| format!("`{id}` is not a chiller"))?;
                self.model.reset_chiller(n + 1);
            }
            DeviceCommand::PointFault {
                device,
                point,
                failed,
            } => {
                let known = self.bacnet().iter().any(|b| {
                    &b.device == device
                        && b.objects
                            .iter()
                            .any(|o| o.name.ends_with(&format!(" {point}")))
                });
                if !known {
                    return Err(format!("`{device}` has no BACnet point `{point}`"));
                }
                let key = (device.clone(), point.clone());
                if *failed {
                    self.failed.insert(key);
                } else {
                    self.failed.remove(&key);
                }
            }
            other => return Err(format!("the chiller plant does not understand {other:?}")),
        }
        Ok(())
    }
    fn bacnet(&self) -> Vec<BacnetDevice> {
        let l = &self.layout;
        let m = &self.model;
        let mut out = Vec::new();
        let mut instance = l.instance_base;
        let mut next = || {
            let i = instance;
            instance += 1;
            i
        };
        let flow_total = m.loop_flow_m3h as f64;
        let running = m.chillers.iter().filter(|c| c.running).count().max(1) as f64;
        for (i, id) in l.chillers.iter().enumerate() {
            let c = &m.chillers[i];
            let power = c.load_kw as f64;
            out.push(self.device(
                id,
                &self.chiller_profile,
                next(),
                &[
                    ("running", bin(c.running)),
                    ("fault", bin(c.fault)),
                    ("supply_temp", real(c.supply_c as f64)),
                    ("return_temp", real(c.return_c as f64)),
                    (
                        "flow",
                        real(if c.running { flow_total / running } else { 0.0 }),
                    ),
                    ("load_kw", real(power * CHILLER_COP as f64)),
                    ("power_kw", real(power)),
                ],
            ));
        }
        let supply = self.loop_supply_c();
        let ret = self.loop_return_c();
        let tank = m.tank_temp_c as f64;
        out.push(self.device(
            &l.tank,
            &self.tank_profile,
            next(),
            &[
                ("tank_temp", real(tank)),
                // Stratified: the bottom (cold) layer stays colder while the tank discharges.
                (
                    "tank_temp_bottom",
                    real((tank - 0.4).max(m.setpoint_c as f64)),
                ),
                ("level", real(m.tank_level_pct as f64)),
                ("loop_supply_temp", real(supply)),
                ("loop_return_temp", real(ret)),
                ("discharging", bin(self.deficit_kw > 0.0)),
            ],
        ));
        let loops = l.loops.len().max(1) as f64;
        for (i, id) in l.loops.iter().enumerate() {
            out.push(self.device(
                id,
                &self.loop_profile,
                next(),
                &[
                    (
                        "flow",
                        real(flow_total / loops + 2.0 * wobble(self.t, 300.0, i as f64)),
                    ),
                    ("supply_temp", real(supply)),
                    ("return_temp", real(ret)),
                ],
            ));
        }
        for (k, (id, room)) in l.crahs.iter().enumerate() {
            let c = &m.crahs[k];
            let room_i = self
                .room_temp
                .iter()
                .position(|(r, _)| r == room)
                .unwrap_or(0);
            let room_temp = self.room_temp.get(room_i).map_or(24.0, |x| x.1);
            let heat = self.room_heat.get(room_i).map_or(0.0, |x| x.1);
            let cooling = heat / self.crahs_in(room).max(1) as f64;
            let share = (cooling / l.crah_rating_kw).clamp(0.0, 1.0);
            let ph = k as f64;
            out.push(self.device(
                id,
                &self.crah_profile,
                next(),
                &[
                    ("running", bin(c.running)),
                    ("fault", bin(false)),
                    (
                        "supply_air_temp",
                        real(c.supply_air_c as f64 + 0.2 * wobble(self.t, 240.0, ph)),
                    ),
                    (
                        "return_air_temp",
                        real(room_temp + 7.0 + 0.3 * wobble(self.t, 260.0, ph)),
                    ),
                    ("room_temp", real(room_temp)),
                    (
                        "room_humidity",
                        real(45.0 + 3.0 * wobble(self.t, 1800.0, ph)),
                    ),
                    ("fan_pct", real(45.0 + 40.0 * share)),
                    ("valve_pct", real(100.0 * share)),
                    ("cooling_kw", real(cooling)),
                ],
            ));
        }
        out
    }
}
