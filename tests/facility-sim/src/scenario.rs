//! Commands (faults and repairs) and scenario files.
//!
//! A command is one line of words (the same syntax on stdin and in a scenario file):
//!
//! | command | effect |
//! |---|---|
//! | `feed-loss A` / `feed-restore A` | utility feed A (or B) lost / back; ATSs transfer, UPSs go on battery when both are lost |
//! | `breaker <meter> A open` / `... close` | opens or closes a meter's feed breaker |
//! | `heat <bms> [rate]` | the rack's cells heat up at `rate` °C/min (default 2) through the fire stages |
//! | `cool <bms>` | stops the heating; the rack cools back |
//! | `fire-reset <bms>` | local reset of a latched fire stage (demo battery rooms and racks; refused above the fire logic's reset threshold, 45 °C) |
//! | `link-down <probe>` / `link-up <probe>` | a network link or device (demo network probes) goes down / comes back |
//! | `sensor-fail <device> <point>` | the point reads its fault code (first `health.invalid` value, else 0xFFFF) |
//! | `sensor-ok <device> <point>` | the point reads normally again |
//! | `silent <device>` / `revive <device>` | the device stops answering / answers again |
//! | `slow <device> <ms>` | the device answers after `ms` milliseconds (0 = normal) |
//! | `chiller-trip <id>` / `chiller-restore <id>` | the BACnet chiller stops with a fault / is reset and restarts; the buffer tank rides through |
//! | `status` | prints the devices and their endpoints |
//!
//! A scenario file has one command per line, preceded by the time in seconds from the start:
//!
//! ```text
//! # battery room incident drill
//! 10   feed-loss A
//! 40   feed-restore A
//! 60   heat bms-r03 3
//! 300  silent ups-z2
//! ```
//! Blank lines and lines starting with `#` are ignored.

use std::fmt;

/// A command addressed to one device.
#[derive(Debug, Clone, PartialEq)]
pub enum DeviceCommand {
    Heat {
        rate_c_per_min: f64,
    },
    Cool,
    Breaker {
        feed: usize,
        closed: bool,
    },
    /// Local reset of a latched fire stage (refused while the rack is still hot).
    FireReset,
    /// A network link goes down (`false`) or comes back.
    LinkUp(bool),
    /// For a device kind hosting several ids (the chiller plant): trip / reset chiller `id`.
    ChillerTrip(String),
    ChillerReset(String),
    /// A point of a hosted device reads as failed (BACnet status flag fault) or repaired.
    PointFault {
        device: String,
        point: String,
        failed: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    FeedLoss(usize),
    FeedRestore(usize),
    SensorFail { device: String, point: String },
    SensorOk { device: String, point: String },
    Silent(String),
    Revive(String),
    Slow { device: String, ms: u64 },
    ChillerTrip(String),
    ChillerRestore(String),
    Device { device: String, cmd: DeviceCommand },
    Status,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandError(pub String);

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CommandError {}

fn feed(s: Option<&str>) -> Result<usize, CommandError> {
    match s.map(str::to_ascii_uppercase).as_deref() {
        Some("A") => Ok(0),
        Some("B") => Ok(1),
        _ => Err(CommandError("expected a feed, A or B".into())),
    }
}

fn arg<'a>(w: &[&'a str], i: usize, what: &str) -> Result<&'a str, CommandError> {
    w.get(i)
        .copied()
        .ok_or_else(|| CommandError(format!("`{}` needs {what}", w[0])))
}

impl Command {
    pub fn parse(line: &str) -> Result<Command, CommandError> {
        let w: Vec<&str> = line.split_whitespace().collect();
        let Some(&verb) = w.first() else {
            return Err(CommandError("empty command".into()));
        };
        let dev = |i| arg(&w, i, "a device id").map(str::to_owned);
        let c = match verb {
            "feed-loss" => Command::FeedLoss(feed(w.get(1).copied())?),
            "feed-restore" => Command::FeedRestore(feed(w.get(1).copied())?),
            "breaker" => {
                let device = dev(1)?;
                let f = feed(w.get(2).copied())?;
                let closed = match w.get(3).copied() {
                    Some("open") => false,
                    Some("close") | Some("closed") => true,
                    _ => return Err(CommandError("`breaker` expects open or close".into())),
                };
                Command::Device {
                    device,
                    cmd: DeviceCommand::Breaker { feed: f, closed },
                }
            }
            "heat" => {
                let device = dev(1)?;
                let rate = match w.get(2) {
                    None => 2.0,
                    Some(r) => r
                        .parse::<f64>()
                        .ok()
                        .filter(|r| r.is_finite() && *r > 0.0)
                        .ok_or_else(|| CommandError(format!("rate `{r}`: expected °C/min > 0")))?,
                };
                Command::Device {
                    device,
                    cmd: DeviceCommand::Heat {
                        rate_c_per_min: rate,
                    },
                }
            }
            "cool" => Command::Device {
                device: dev(1)?,
                cmd: DeviceCommand::Cool,
            },
            "fire-reset" => Command::Device {
                device: dev(1)?,
                cmd: DeviceCommand::FireReset,
            },
            "link-down" => Command::Device {
                device: dev(1)?,
                cmd: DeviceCommand::LinkUp(false),
            },
            "link-up" => Command::Device {
                device: dev(1)?,
                cmd: DeviceCommand::LinkUp(true),
            },
            "sensor-fail" => Command::SensorFail {
                device: dev(1)?,
                point: arg(&w, 2, "a point id")?.to_owned(),
            },
            "sensor-ok" => Command::SensorOk {
                device: dev(1)?,
                point: arg(&w, 2, "a point id")?.to_owned(),
            },
            "silent" => Command::Silent(dev(1)?),
            "revive" => Command::Revive(dev(1)?),
            "slow" => Command::Slow {
                device: dev(1)?,
                ms: arg(&w, 2, "a delay in ms")?
                    .parse()
                    .map_err(|_| CommandError("expected a delay in milliseconds".into()))?,
            },
            "chiller-trip" => Command::ChillerTrip(dev(1)?),
            "chiller-restore" => Command::ChillerRestore(dev(1)?),
            "status" => Command::Status,
            other => {
                return Err(CommandError(format!(
                    "unknown command `{other}`; expected feed-loss, feed-restore, breaker, heat, cool, fire-reset, link-down, link-up, sensor-fail, sensor-ok, silent, revive, slow, chiller-trip, chiller-restore or status"
                )));
            }
        };
        Ok(c)
    }
}

/// One timed step of a scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub at_s: f64,
    pub command: Command,
}

/// Parses a scenario file; errors name the line.
pub fn parse_scenario(text: &str) -> Result<Vec<Step>, CommandError> {
    let mut steps = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (t, rest) = line.split_once(char::is_whitespace).ok_or_else(|| {
            CommandError(format!("line {}: expected `<seconds> <command>`", n + 1))
        })?;
        let at_s: f64 = t
            .trim_end_matches('s')
            .parse()
            .ok()
            .filter(|x: &f64| x.is_finite() && *x >= 0.0)
            .ok_or_else(|| {
                CommandError(format!("line {}: `{t}` is not a time in seconds", n + 1))
            })?;
        let command =
            Command::parse(rest).map_err(|e| CommandError(format!("line {}: {e}", n + 1)))?;
        steps.push(Step { at_s, command });
    }
    steps.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse() {
        assert_eq!(Command::parse("feed-loss A").unwrap(), Command::FeedLoss(0));
        assert_eq!(
            Command::parse("feed-restore b").unwrap(),
            Command::FeedRestore(1)
        );
        assert_eq!(
            Command::parse("heat bms-r01").unwrap(),
            Command::Device {
                device: "bms-r01".into(),
                cmd: DeviceCommand::Heat {
                    rate_c_per_min: 2.0
                }
            }
        );
        assert_eq!(
            Command::parse("breaker meter-1 B open").unwrap(),
            Command::Device {
                device: "meter-1".into(),
                cmd: DeviceCommand::Breaker {
                    feed: 1,
                    closed: false
                }
            }
        );
        assert!(Command::parse("feed-loss C").is_err());
        assert!(Command::parse("heat").is_err());
        assert!(Command::parse("explode x").is_err());
    }

    #[test]
    fn scenario_files_parse_and_sort_and_name_bad_lines() {
        let s = parse_scenario("# drill\n\n20 silent ups-z1\n5s feed-loss A\n").unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].at_s, 5.0);
        let e = parse_scenario("5 feed-loss A\nsoon heat x\n").unwrap_err();
        assert!(e.0.starts_with("line 2:"), "{e}");
        let e = parse_scenario("5 feed-loss Z\n").unwrap_err();
        assert!(e.0.contains("line 1"), "{e}");
    }
}
