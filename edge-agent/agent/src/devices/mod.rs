//! Device drivers wired into the agent.
//!
//! - `mqtt`: devices that publish JSON over MQTT (profile `protocol = "mqtt"`);
//! - `synthetic`: the built-in signal generator;
//! - `modbus`: Modbus TCP, RTU over a serial port and RTU over a TCP gateway (`dcim-modbus`);
//!   devices on the same serial line or gateway share one poller ([`group_lines`]);
//! - `bacnet`: BACnet/IP devices (`dcim-bacnet`), ReadPropertyMultiple per poll class and COV;
//! - `snmp`: SNMP devices (`dcim-snmp`), GET/GETBULK per poll class, traps and informs.

pub mod bacnet;
pub mod modbus;
pub mod mqtt;
pub mod snmp;
pub mod synthetic;

use crate::config::{Connection, DeviceConfig};
use crate::ingest::Ingest;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// A device ready to run.
pub enum Driver {
    Modbus(Box<modbus::ModbusLine>),
    Mqtt(Box<(mqtt::MqttDevice, mqtt::MqttConn)>),
    Bacnet(Box<bacnet::BacnetDevice>),
    Snmp(Box<snmp::SnmpDriver>),
    Synthetic {
        id: String,
        points: usize,
        period: Duration,
        event_every: u64,
    },
}

impl Driver {
    /// The device ids this driver reads (a serial line reads several), for logs.
    pub fn name(&self) -> String {
        match self {
            Driver::Modbus(line) => line
                .devices
                .iter()
                .map(|d| d.id.as_str())
                .collect::<Vec<_>>()
                .join(","),
            Driver::Mqtt(d) => d.0.id().to_string(),
            Driver::Bacnet(d) => d.device.clone(),
            Driver::Snmp(d) => d.dev.device.clone(),
            Driver::Synthetic { id, .. } => id.clone(),
        }
    }
}

/// Load the profile and check that the connection fits it; `now_ms` (wall time) starts the
/// drivers' own timers.
pub fn prepare(d: &DeviceConfig, now_ms: i64) -> Result<Driver, String> {
    let profile = match &d.profile {
        Some(p) => Some(dcim_profiles::load_file(p).map_err(|e| e.to_string())?),
        None => None,
    };
    match (&d.connection, profile) {
        (
            Connection::Synthetic {
                points,
                period,
                event_every,
            },
            _,
        ) => Ok(Driver::Synthetic {
            id: d.id.clone(),
            points: *points,
            period: *period,
            event_every: *event_every,
        }),
        (Connection::Mqtt { .. }, Some(profile)) => prepare_mqtt(d, profile, now_ms),
        (
            Connection::ModbusTcp { .. }
            | Connection::ModbusRtu { .. }
            | Connection::ModbusRtuOverTcp { .. },
            Some(profile),
        ) => prepare_modbus(d, profile),
        (Connection::Snmp(cfg), Some(profile)) => Ok(Driver::Snmp(Box::new(
            snmp::SnmpDriver::new(&d.id, cfg, &profile, now_ms)?,
        ))),
        (Connection::Bacnet(target), Some(profile)) => Ok(Driver::Bacnet(Box::new(
            bacnet::BacnetDevice::new(&d.id, target.clone(), profile, now_ms)?,
        ))),
        (_, None) => Err("this device needs a profile".into()),
    }
}

/// An MQTT device: its profile's topics, the broker connection and its TLS settings.
fn prepare_mqtt(
    d: &DeviceConfig,
    profile: dcim_profiles::Profile,
    now_ms: i64,
) -> Result<Driver, String> {
    let Connection::Mqtt {
        endpoint,
        credentials,
        ca_file,
    } = &d.connection
    else {
        return Err("internal: not an MQTT connection".into());
    };
    let dev = mqtt::MqttDevice::new(&d.id, profile, now_ms)?;
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

/// A Modbus device (TCP, RTU or RTU over TCP) on a line of its own; [`group_lines`] merges
/// the devices of one line afterwards.
fn prepare_modbus(d: &DeviceConfig, profile: dcim_profiles::Profile) -> Result<Driver, String> {
    let (connection, unit_id) = match &d.connection {
        Connection::ModbusTcp { addr, unit } => {
            (dcim_modbus::Connection::Tcp { addr: *addr }, *unit)
        }
        Connection::ModbusRtuOverTcp { addr, unit } => {
            (dcim_modbus::Connection::RtuOverTcp { addr: *addr }, *unit)
        }
        Connection::ModbusRtu { port, baud, unit } => (
            dcim_modbus::Connection::Rtu {
                path: port.clone(),
                baud_rate: *baud,
            },
            *unit,
        ),
        _ => return Err("internal: not a Modbus connection".into()),
    };
    if profile.protocol != dcim_profiles::Protocol::Modbus || profile.modbus.is_none() {
        return Err(profile.not_for(dcim_profiles::Protocol::Modbus));
    }
    Ok(Driver::Modbus(Box::new(modbus::ModbusLine {
        connection,
        devices: vec![dcim_modbus::ModbusDevice {
            id: d.id.clone(),
            unit_id,
            profile: Arc::new(profile),
        }],
    })))
}

/// Merge Modbus devices that share a serial line or a serial gateway into one poller each (one
/// request at a time on the line); TCP devices keep a connection each.
pub fn group_lines(drivers: Vec<Driver>) -> Vec<Driver> {
    let mut out: Vec<Driver> = Vec::new();
    for d in drivers {
        if let Driver::Modbus(line) = &d
            && !matches!(line.connection, dcim_modbus::Connection::Tcp { .. })
            && let Some(Driver::Modbus(existing)) = out
                .iter_mut()
                .find(|o| matches!(o, Driver::Modbus(l) if l.connection == line.connection))
        {
            if let Driver::Modbus(line) = d {
                existing.devices.extend(line.devices);
            }
            continue;
        }
        out.push(d);
    }
    out
}

pub async fn run(ingest: Arc<Ingest>, driver: Driver, shutdown: watch::Receiver<bool>) {
    match driver {
        Driver::Modbus(line) => modbus::run(ingest, *line, shutdown).await,
        Driver::Bacnet(dev) => bacnet::run(ingest, *dev, shutdown).await,
        Driver::Snmp(dev) => snmp::run(ingest, *dev, shutdown).await,
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

#[cfg(test)]
mod tests {
    use super::*;

    // Hazard: the shipped example configuration (or a profile it names) no longer loads, so
    // an installation started from it polls nothing.
    #[test]
    fn the_example_file_is_valid_and_its_profiles_load() {
        let path = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/agent.example.toml"));
        let c = crate::config::load(path).unwrap();
        assert_eq!(c.brokers.len(), 2);
        assert_eq!(c.devices.len(), 10);
        assert!(c.snmp_traps.is_some());
        assert_eq!(c.racks.len(), 1);
        assert_eq!(
            c.racks[0].bms,
            Some(("bms-r02".to_string(), "cell_temp_max".to_string()))
        );
        for d in &c.devices {
            let drv = prepare(d, 1_700_000_000_000);
            assert!(drv.is_ok(), "{}: {:?}", d.id, drv.err());
        }
        let drivers: Vec<_> = c
            .devices
            .iter()
            .map(|d| prepare(d, 1_700_000_000_000).unwrap())
            .collect();
        // The two BMS on /dev/ttyUSB0 share one poller.
        assert_eq!(group_lines(drivers).len(), 9);
    }
}
