//! [`Intake`]: the telemetry and event intake: the ingest table of latest values, the broker
//! client, the bulk lane's pause switch and the time-series writer's handle.
//!
//! Locks: `ingest` is a std mutex, never held across an `.await`, taken after the plant's
//! `facility` when both are held. The order between handles is in the [`App`](crate::App) docs.

use crate::engine::ingest::Ingest;
use crate::storage::tsdb::influx::InfluxHandle;
use std::sync::{Mutex, OnceLock};

pub struct Intake {
    /// Latest values, de-duplication marks and history of every agent's points.
    pub ingest: Mutex<Ingest>,
    /// The broker client (set once the ingest starts), used to send commands to agents.
    pub mqtt: OnceLock<rumqttc::AsyncClient>,
    /// The ingest's bulk lane takes this for reading around each telemetry batch; holding it
    /// for writing pauses that lane alone (tests and benchmarks use it to build a telemetry
    /// backlog and check that the priority lane does not wait for it).
    pub bulk_pause: tokio::sync::RwLock<()>,
    /// The time-series writer, when `[influx]` is configured.
    pub influx: Option<InfluxHandle>,
}

impl Intake {
    pub fn new(ingest: Ingest, influx: Option<InfluxHandle>) -> Intake {
        Intake {
            ingest: Mutex::new(ingest),
            mqtt: OnceLock::new(),
            bulk_pause: tokio::sync::RwLock::new(()),
            influx,
        }
    }
}
