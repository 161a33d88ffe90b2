//! The drill runner's facility part: a scenario's `sim` steps act on the demo's facility
//! simulator. Drill mode, the scenario format, the report and `GET /api/drills/...` are the
//! server's (`dcim_server::io::drill`); this module gives them the simulator's grammar
//! ([`check_sim`]) and a [`dcim_server::io::drill::SimDriver`] over the simulator ([`run`]), and
//! runs a drill on the demo facility from the command line ([`run_cli`]).

use dcim_server::io::drill::{Report, Scenario, SimDriver};
use std::sync::Arc;
use std::time::Duration;

/// The facility simulator's grammar for a `sim` step (`facility_sim::Command`).
pub fn check_sim(line: &str) -> Result<(), String> {
    facility_sim::Command::parse(line)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Loads a scenario file, checking its `sim` steps against the simulator's grammar.
pub fn load_scenario(path: &std::path::Path) -> anyhow::Result<Scenario> {
    Scenario::load(path, &check_sim)
}

/// The simulator as the drill's facility.
struct Simulator<'a>(&'a facility_sim::SimHandle);

impl SimDriver for Simulator<'_> {
    fn command(&self, line: &str) -> Result<String, String> {
        let c = facility_sim::Command::parse(line).map_err(|e| e.to_string())?;
        self.0.command(&c)
    }
}

/// Runs a scenario (`dcim_server::io::drill::run`) with its `sim` steps acting on `sim`.
pub async fn run(
    app: &Arc<dcim_server::App>,
    sim: &facility_sim::SimHandle,
    scenario: &Scenario,
) -> anyhow::Result<Report> {
    dcim_server::io::drill::run(app, Some(&Simulator(sim)), scenario).await
}

/// `dcim-demo drill SCENARIO.toml [--dc09 LINK.toml] [--http ADDR] [--broker ADDR] [--data DIR]`:
/// the demo facility, the drill, the report, then stop.
pub async fn run_cli(scenario: &std::path::Path, opts: &[(String, String)]) -> anyhow::Result<()> {
    let scenario = load_scenario(scenario)?;
    let mut o = crate::demo::DemoOptions::from_args(opts)?;
    o.scenario = false;
    if o.dc09.is_none() {
        tracing::warn!(
            "no --dc09 link file: the drill runs without the server's DC-09 transmitter"
        );
    }
    let demo = crate::demo::start(o.clone()).await?;
    print!("{}", crate::demo::banner(&demo, &o));
    if !dcim_server::io::drill::wait_agents_online(&demo.server.app, Duration::from_secs(30))
        .await?
    {
        tracing::warn!("not every agent is online; the drill starts anyway");
    }
    let result = run(&demo.server.app, &demo.sim, &scenario).await;
    demo.shutdown().await;
    let report = result?;
    let dir = o.data_dir.join("drills");
    println!("{}", report.markdown());
    println!("report: {}/{}.md and .json", dir.display(), report.drill.id);
    Ok(())
}
