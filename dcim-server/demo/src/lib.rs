//! The demo and the drill runner: the product in one process on the facility simulator, kept
//! out of the server so that the production `dcim-server` links no simulator and no edge agent.
//!
//! - [`demo`]: server, embedded broker, facility simulator (`facility-sim`, BACnet device
//!   servers included) and edge agent in one process (`cargo run -p dcim-demo`).
//! - [`drill`]: the drill runner's facility part (`cargo run -p dcim-demo -- drill FILE`): the
//!   simulator's grammar for a scenario's `sim` steps and the [`dcim_server::io::drill::SimDriver`]
//!   that runs them; drill state, scenario, report and the API stay in `dcim_server::io::drill`.
//! - `src/bin/`: the server's load generators (`dcim-ingest-bench`, `dcim-memory-bench`,
//!   `dcim-scale-bench`; results in BENCHMARKS.md).

pub mod demo;
pub mod drill;
