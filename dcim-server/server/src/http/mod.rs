//! Layer 6, HTTP: `api_base` (route declarations, errors, authorisation), the `api_*` handlers
//! and `api`, whose `ROUTES` declares every route once and builds the router.

pub mod api;
pub mod api_auth;
pub mod api_authority;
pub mod api_base;
pub mod api_cluster;
pub mod api_console;
pub mod api_drill;
pub mod api_energy;
pub mod api_export;
pub mod api_facility;
pub mod api_history;
pub mod api_windows;
pub mod http_limits;
