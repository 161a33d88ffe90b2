//! Lithium-ion battery rack BMS (profile `rack-bms-li-ion`), with the fault "heat": the rack's
//! cells heat up at a given rate through the fire stages (60, 68, 80 °C and beyond).

use super::wobble;
use crate::modbus::{ModbusShared, SimValue};
use crate::{DeviceCommand, Env, SimDevice};
use dcim_profiles::Profile;
use std::sync::Arc;

pub struct Bms {
    id: String,
    index: usize,
    profile: Arc<Profile>,
    shared: Arc<ModbusShared>,
    /// Heating rate in °C per minute while heating, and the extra temperature reached.
    heating: Option<f64>,
    extra_c: f64,
    cell_max: f64,
    rack_temp: [f64; 2],
}

impl Bms {
    pub fn new(id: &str, index: usize, profile: Arc<Profile>) -> Bms {
        Bms {
            id: id.to_owned(),
            index,
            profile,
            shared: Arc::new(ModbusShared::default()),
            heating: None,
            extra_c: 0.0,
            cell_max: 25.0,
            rack_temp: [23.0, 23.0],
        }
    }

    /// Surface temperature a thermal camera sees on this rack.
    pub fn surface_temp(&self) -> f64 {
        self.rack_temp[0]
            .max(self.rack_temp[1])
            .max(self.cell_max - 1.5)
    }
}

impl SimDevice for Bms {
    fn id(&self) -> &str {
        &self.id
    }
    fn kind(&self) -> &'static str {
        "rack-bms"
    }
    fn region(&self) -> Option<(String, f64)> {
        Some((format!("rack-{:02}", self.index + 1), self.surface_temp()))
    }
    fn step(&mut self, t: f64, dt: f64, _env: &Env) {
        let ph = self.index as f64;
        match self.heating {
            Some(rate) => self.extra_c = (self.extra_c + rate * dt / 60.0).min(250.0),
            // Cools back with a 2-minute time constant.
            None => self.extra_c *= (-dt / 120.0).exp(),
        }
        let base = 24.0 + 0.6 * wobble(t, 900.0, ph);
        self.cell_max = base + self.extra_c;
        let cell_min = base - 2.0 + 0.3 * wobble(t, 700.0, ph);
        self.rack_temp = [
            23.0 + 0.4 * wobble(t, 600.0, ph) + 0.7 * self.extra_c,
            23.2 + 0.4 * wobble(t, 650.0, ph + 1.0) + 0.6 * self.extra_c,
        ];
        let current = 12.0 + 4.0 * wobble(t, 300.0, ph);
        // The fire logic's stage table: contactor open from stage1, smoke from stage2's
        // temperature, the warning bit from the pre-alarm.
        use super::racks::{PRE_ALARM_C, STAGE_C};
        let contactor = self.cell_max < STAGE_C[0];
        let smoke = self.cell_max >= STAGE_C[1];
        let mut alarm = 0u16;
        if self.cell_max >= PRE_ALARM_C {
            alarm |= 1;
        }
        if self.cell_max >= STAGE_C[0] {
            alarm |= 2;
        }
        if smoke {
            alarm |= 4;
        }
        let v = |x: f64| SimValue::Number(x);
        self.shared.write_values(
            &self.profile,
            &[
                ("cell_temp_max", v(self.cell_max)),
                ("cell_temp_min", v(cell_min)),
                ("cell_voltage_max", v(3.34 + 0.005 * wobble(t, 400.0, ph))),
                ("cell_voltage_min", v(3.30 + 0.005 * wobble(t, 450.0, ph))),
                (
                    "string_voltage",
                    v(3.32 * 16.0 * 17.0 + 2.0 * wobble(t, 500.0, ph)),
                ),
                ("string_current", v(if contactor { current } else { 0.0 })),
                ("soc", v(96.0 + 1.5 * wobble(t, 3600.0, ph))),
                ("soh", v(97.5)),
                ("alarm_word", v(alarm as f64)),
                ("contactor_closed", SimValue::Bool(contactor)),
                ("smoke", SimValue::Bool(smoke)),
                ("rack_temp_1", v(self.rack_temp[0])),
                ("rack_temp_2", v(self.rack_temp[1])),
                ("uptime", v(86_400.0 + t.floor())),
                ("firmware", SimValue::Text("BMS-2.4.1".into())),
            ],
        );
    }
    fn command(&mut self, cmd: &DeviceCommand) -> Result<(), String> {
        match cmd {
            DeviceCommand::Heat { rate_c_per_min } => self.heating = Some(*rate_c_per_min),
            DeviceCommand::Cool => self.heating = None,
            other => return Err(format!("a rack BMS does not understand {other:?}")),
        }
        Ok(())
    }
    fn modbus(&self) -> Option<(&Arc<ModbusShared>, &Arc<Profile>)> {
        Some((&self.shared, &self.profile))
    }
}
