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
//!   (pinned exactly; see "Why `async-snmp`" below).
//!
//! # Why `async-snmp`
//!
//! `async-snmp` is pinned exactly (`=0.18.1`) and used only in `client.rs`, over `snmp2` 0.5:
//! tokio-native with concurrent requests on one client (snmp2's async session takes `&mut self`,
//! one request at a time); SNMPv3 USM with engine discovery, SHA-2 and AES-192/256 and
//! time-window handling; GETBULK walks with ordering checks and result limits; a notification
//! receiver that acknowledges informs and accepts v3 notifications (snmp2 only parses trap PDUs);
//! `deny(unsafe_code)`; and it uses the RustCrypto generation already in the tree for DC-09
//! (`aes` 0.9, `cbc` 0.2, `digest` 0.11), where snmp2 pulls the previous one as duplicates. Risk:
//! pre-1.0 with breaking releases, hence the exact pin and this wrapper; checked against
//! net-snmp's snmpd/snmptrap/snmpinform and snmpsim in `tests/`.
//!
//! Network link state and redundancy come from the switches: `link.up` samples labelled per link
//! are bound by label to network components in the site model, so the server needs no SNMP
//! knowledge.

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
