//! Layer 1, leaves: modules that import nothing else of the crate (the stop signal, the leader
//! lease primitive, counters and histograms, disk checks, TLS, the embedded console files and
//! the notification templates).

pub mod console;
pub mod disk;
pub mod leader;
pub mod metrics;
pub mod notify_templates;
pub mod observe;
pub mod stop;
pub mod tls;
