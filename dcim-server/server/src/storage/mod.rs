//! Layer 3a, storage: the SQLite/PostgreSQL store, incident records, backups, the time-series
//! writer and reader, and the pure export and drill plans over the store's records.

pub mod backup;
pub mod drill_plan;
pub mod export;
pub mod incident_store;
pub mod store;
pub mod tsdb;
