//! Device drivers wired into the agent.
//!
//! - `mqtt`: devices that publish JSON over MQTT (profile `protocol = "mqtt"`);
//! - `synthetic`: the built-in signal generator;
//! - Modbus TCP/RTU devices are accepted in the configuration but the agent refuses to start
//!   with them until the `dcim-modbus` driver is wired in here (see [`prepare`]).

pub mod mqtt;
pub mod synthetic;

use crate::config::{Connection, DeviceConfig};
use crate::ingest::Ingest;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// A device ready to run.
pub enum Driver {
    Mqtt(Box<(mqtt::MqttDevice, mqtt::MqttConn)>),
    Synthetic {
        id: String,
        points: usize,
        period: Duration,
        event_every: u64,
    },
}

/// Load the profile and check that the connection fits it.
pub fn prepare(d: &DeviceConfig) -> Result<Driver, String> {
    let profile = match &d.profile {
        Some(p) => Some(dcim_profiles::load_file(p).map_err(|e| e.to_string())?),
        None => None,
    };
    match (&d.connection, profile) {
        (Connection::Synthetic { points, period, event_every }, _) => Ok(Driver::Synthetic {
            id: d.id.clone(),
            points: *points,
            period: *period,
            event_every: *event_every,
        }),
        (
            Connection::Mqtt {
                endpoint,
                credentials,
                ca_file,
            },
            Some(profile),
        ) => {
            let dev = mqtt::MqttDevice::new(&d.id, profile, crate::uplink::unix_ms())?;
            let tls = if endpoint.tls {
                Some(crate::uplink::tls_config(ca_file.as_deref(), None)?)
            } else {
                None
            };
            Ok(Driver::Mqtt(Box::new((
                dev,
                mqtt::MqttConn {
                    endpoint: endpoint.clone(),
                    credentials: credentials.clone(),
                    tls,
                },
            ))))
        }
        (Connection::ModbusTcp { .. } | Connection::ModbusRtu { .. }, _) => Err(
            "Modbus devices are not wired into this build of the agent yet (dcim-modbus driver pending)"
                .into(),
        ),
        (Connection::Mqtt { .. }, None) => Err("an mqtt device needs a profile".into()),
    }
}

pub async fn run(ingest: Arc<Ingest>, driver: Driver, shutdown: watch::Receiver<bool>) {
    match driver {
        Driver::Mqtt(b) => {
            let (dev, conn) = *b;
            mqtt::run(ingest, dev, conn, shutdown).await
        }
        Driver::Synthetic {
            id,
            points,
            period,
            event_every,
        } => synthetic::run(ingest, id, points, period, event_every, shutdown).await,
    }
}
