//! Data-hall temperature/humidity transmitter (`room-environment`); the temperature comes from
//! the cooling plant (`Env::room_temp`).

use super::wobble;
use crate::modbus::{ModbusShared, SimValue};
use crate::{Env, SimDevice};
use dcim_profiles::Profile;
use std::sync::Arc;

pub struct RoomEnv {
    id: String,
    room: String,
    index: usize,
    profile: Arc<Profile>,
    shared: Arc<ModbusShared>,
}

impl RoomEnv {
    pub fn new(id: &str, room: &str, index: usize, profile: Arc<Profile>) -> RoomEnv {
        RoomEnv {
            id: id.to_owned(),
            room: room.to_owned(),
            index,
            profile,
            shared: Arc::new(ModbusShared::default()),
        }
    }
}

impl SimDevice for RoomEnv {
    fn id(&self) -> &str {
        &self.id
    }
    fn kind(&self) -> &'static str {
        "room-environment"
    }
    fn step(&mut self, t: f64, _dt: f64, env: &Env) {
        let temp = env.room_temp.get(&self.room).copied().unwrap_or(24.0);
        let ph = self.index as f64;
        self.shared.write_values(
            &self.profile,
            &[
                ("temp", SimValue::Number(temp + 0.1 * wobble(t, 120.0, ph))),
                (
                    "humidity",
                    SimValue::Number(45.0 + 4.0 * wobble(t, 2400.0, ph)),
                ),
            ],
        );
    }
    fn modbus(&self) -> Option<(&Arc<ModbusShared>, &Arc<Profile>)> {
        Some((&self.shared, &self.profile))
    }
}
