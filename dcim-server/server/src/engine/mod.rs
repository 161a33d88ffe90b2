//! Layer 2, pure engines and planners: data in, data out, no I/O and no clock read (time is
//! passed in). They may use `base` and `config`.

pub mod authority;
pub mod dc09_plan;
pub mod energy;
pub mod facility;
pub mod fire_view;
pub mod ingest;
pub mod maint_windows;
pub mod mosquitto;
pub mod search;
