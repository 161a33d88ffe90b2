//! UPS of one UPS zone (profile `ups-modular-3ph`). Goes on battery when neither utility feed
//! is up, and its runtime and state of charge then fall.

use super::wobble;
use crate::modbus::{ModbusShared, SimValue};
use crate::{Env, SimDevice};
use dcim_profiles::Profile;
use std::sync::Arc;

pub struct Ups {
    id: String,
    index: usize,
    profile: Arc<Profile>,
    shared: Arc<ModbusShared>,
    soc: f64,
    /// Rated output and the ATS feeding it (demo facility); loads then come from the load model.
    rating_kw: f64,
    ats: Option<String>,
    on_battery: bool,
}

impl Ups {
    pub fn new(id: &str, index: usize, profile: Arc<Profile>) -> Ups {
        Ups {
            id: id.to_owned(),
            index,
            profile,
            shared: Arc::new(ModbusShared::default()),
            soc: 100.0,
            rating_kw: 450.0,
            ats: None,
            on_battery: false,
        }
    }

    /// A UPS of the demo facility: rated `rating_kw`, fed through `ats`, output from the load
    /// model (`Env::loads_kw`).
    pub fn fed_by(mut self, ats: &str, rating_kw: f64) -> Ups {
        self.ats = Some(ats.to_owned());
        self.rating_kw = rating_kw;
        self
    }
}

impl SimDevice for Ups {
    fn id(&self) -> &str {
        &self.id
    }
    fn kind(&self) -> &'static str {
        "ups"
    }
    fn contribute(&self, env: &mut Env) {
        if self.on_battery {
            env.ups_on_battery.insert(self.id.clone());
        } else {
            env.ups_on_battery.remove(&self.id);
        }
    }
    fn step(&mut self, t: f64, dt: f64, env: &Env) {
        let ph = self.index as f64 * 0.7;
        let on_battery = match self.ats.as_ref().and_then(|a| env.ats_source.get(a)) {
            Some(source) => source.is_none(),
            None => !env.feed_up.iter().any(|u| *u),
        };
        self.on_battery = on_battery;
        let (load_pct, output_kw) = match env.loads_kw.get(&self.id) {
            Some(kw) => (100.0 * kw / self.rating_kw, *kw),
            None => {
                let pct = 48.0 + 6.0 * wobble(t, 1200.0, ph);
                (pct, self.rating_kw * pct / 100.0)
            }
        };
        // 15 minutes of autonomy at 100 % load from a full battery.
        let full_runtime_s = 900.0 * 100.0 / load_pct.max(1.0);
        if on_battery {
            self.soc = (self.soc - 100.0 * dt / full_runtime_s).max(0.0);
        } else {
            self.soc = (self.soc + 100.0 * dt / 3600.0).min(100.0);
        }
        let v = |x: f64| SimValue::Number(x);
        self.shared.write_values(
            &self.profile,
            &[
                ("on_battery", SimValue::Bool(on_battery)),
                ("on_bypass", SimValue::Bool(false)),
                ("general_alarm", SimValue::Bool(on_battery)),
                ("load_pct", v(load_pct)),
                ("output_kw", v(output_kw)),
                (
                    "input_voltage",
                    v(if on_battery {
                        0.0
                    } else {
                        400.0 + 3.0 * wobble(t, 200.0, ph)
                    }),
                ),
                ("output_voltage", v(400.0 + 0.5 * wobble(t, 60.0, ph))),
                ("runtime", v((full_runtime_s * self.soc / 100.0).round())),
                ("battery_soc", v(self.soc)),
                ("firmware", SimValue::Text("UPS-7.1".into())),
            ],
        );
    }
    fn modbus(&self) -> Option<(&Arc<ModbusShared>, &Arc<Profile>)> {
        Some((&self.shared, &self.profile))
    }
}
