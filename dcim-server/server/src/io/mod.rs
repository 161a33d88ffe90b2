//! Layer 5, shells: the tasks and side effects around the engines (broker and MQTT ingest,
//! notifications, DC-09, drills, reload, cluster tasks). They take the [`App`](crate::App).

pub mod authority_io;
pub mod broker;
pub mod cluster_hooks;
pub mod cluster_tasks;
pub mod dc09;
pub mod deferred;
pub mod drill;
pub mod energy_io;
pub mod health_probe;
pub mod mqtt;
pub mod notify_io;
pub mod openmetrics;
pub mod reload;
pub mod security_io;
pub mod stream_report;
pub mod windows_io;
