//! SNMP for the edge agent: polling through device profiles (`protocol = "snmp"`), SNMPv2c and
//! SNMPv3 (authPriv), network link state and designed paths from IF-MIB and LLDP-MIB, and
//! traps/informs as events.
//!
//! - [`device`] (pure): per-link expansion of a profile (`{if_index}`, `{lldp_port}`, `{link}`),
//!   the GET and GETBULK-walk requests of each poll class, answers -> samples through the
//!   shared `DeviceTracker`, and the LLDP check: a link that is up but leads to another
//!   neighbour than designed has its `link.up` reported `bad` (never good) with one event.
//! - [`trap`] (pure): notifications -> events (IF-MIB linkDown/linkUp naming the configured
//!   link, UPS-MIB, cold/warm start, anything else as `snmp.trap`) and whether to poll at once.
//! - [`value`]: the values the pure core reads.
//! - [`client`] (shell): requests and the notification receiver over UDP with `async-snmp`
//!   (pinned; see ARCHITECTURE.md, "Dependency decisions").

pub mod client;
pub mod device;
pub mod trap;
pub mod value;

pub use client::{
    AuthAlg, Credentials, PrivAlg, Received, ReceiverSettings, SnmpClient, SnmpTarget,
    TrapReceiver, UsmUser,
};
pub use device::{ClassRequest, LinkConfig, Notice, PollAnswer, SnmpDevice, expand};
pub use trap::{Trap, classify};
pub use value::SnmpValue;
