//! What the gate decides about each packet of a connection, without sockets: the CONNECT
//! (protocol, field lengths, login, client id, will topic) and every later packet of the agent
//! (which packet types an MQTT client may send, and the topic ACLs).

use crate::acl::{may_publish, may_subscribe};
use crate::codec::Frame;
use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4;
use rumqttc::mqttbytes::{self, Protocol, QoS};

/// Longest accepted client id: an agent id (64) with a suffix.
pub const MAX_CLIENT_ID: usize = 128;
/// Longest accepted user name: agent ids are at most 64 characters.
pub const MAX_USER: usize = 64;
/// Longest accepted password, in bytes.
pub const MAX_PASSWORD: usize = 512;
/// Longest accepted will topic.
pub const MAX_WILL_TOPIC: usize = 256;

/// CONNACK return codes (MQTT 3.1.1, 3.2.2.3).
pub mod connack {
    pub const UNACCEPTABLE_PROTOCOL: u8 = 1;
    pub const IDENTIFIER_REJECTED: u8 = 2;
    pub const NOT_AUTHORIZED: u8 = 5;
}

/// The CONNACK packet with a return code (session present = 0).
pub fn connack_packet(code: u8) -> [u8; 4] {
    [0x20, 0x02, 0x00, code]
}

/// Why a connection was refused at its CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not a well-formed MQTT 3.1.1 CONNECT, or a field over its limit: closed, no CONNACK
    /// unless `connack` says so.
    Malformed { why: String, connack: Option<u8> },
    /// Wrong user name or password, or a client id that is not the user's.
    BadLogin { user: String },
    /// The server's own client id.
    ServerClientId { user: String },
    /// A will topic the agent may not publish on.
    Will { user: String, topic: String },
}

impl Refusal {
    /// The CONNACK return code to send before closing, if any.
    pub fn connack(&self) -> Option<u8> {
        match self {
            Refusal::Malformed { connack, .. } => *connack,
            Refusal::BadLogin { .. } | Refusal::Will { .. } => Some(connack::NOT_AUTHORIZED),
            Refusal::ServerClientId { .. } => Some(connack::IDENTIFIER_REJECTED),
        }
    }
}

fn malformed(why: impl Into<String>) -> Refusal {
    Refusal::Malformed {
        why: why.into(),
        connack: None,
    }
}

/// A user name as it may be logged and audited: at most [`MAX_USER`] characters, control
/// characters replaced.
pub fn printable_user(user: &str) -> String {
    let mut out: String = user
        .chars()
        .take(MAX_USER)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if user.chars().count() > MAX_USER {
        out.push('…');
    }
    out
}

/// Who may log in: the result of checking a user name and password.
pub trait Logins {
    /// No agents configured: anyone may connect, no topic ACL (development).
    fn open(&self) -> bool;
    /// The server's own client id on the internal port, which no agent may take.
    fn server_client_id(&self) -> &str;
    /// The site of agent `user` when `password` is its secret.
    fn site_of(&self, user: &str, password: &str) -> Option<String>;
}

/// A CONNECT that passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub connect: v4::Connect,
    /// `(site, agent)` the connection is bound to; `None` in open mode.
    pub identity: Option<(String, String)>,
}

/// Parses a CONNECT with the maintained codec and checks its protocol level and field
/// lengths (before any credential is looked at).
pub fn parse_connect(frame: &Frame) -> Result<v4::Connect, Refusal> {
    if frame.kind() != 1 {
        return Err(malformed(format!(
            "the first packet is not CONNECT (packet type {})",
            frame.kind()
        )));
    }
    if frame.flags() != 0 {
        return Err(malformed("CONNECT with reserved flags set"));
    }
    let c = v4::Connect::read(frame.fixed_header(), frame.raw().clone()).map_err(|e| match e {
        mqttbytes::Error::InvalidProtocol | mqttbytes::Error::InvalidProtocolLevel(_) => {
            Refusal::Malformed {
                why: format!("unsupported protocol: {e}"),
                connack: Some(connack::UNACCEPTABLE_PROTOCOL),
            }
        }
        e => malformed(format!("CONNECT: {e}")),
    })?;
    if c.protocol != Protocol::V4 {
        // The gate parses MQTT 3.1.1 only (no v5 properties).
        return Err(Refusal::Malformed {
            why: "unsupported protocol: MQTT 5".into(),
            connack: Some(connack::UNACCEPTABLE_PROTOCOL),
        });
    }
    let too_long = |what: &str, len: usize, max: usize| {
        (len > max).then(|| malformed(format!("{what} of {len} bytes (at most {max})")))
    };
    if let Some(r) = too_long("client id", c.client_id.len(), MAX_CLIENT_ID) {
        return Err(r);
    }
    if let Some(w) = &c.last_will
        && let Some(r) = too_long("will topic", w.topic.len(), MAX_WILL_TOPIC)
    {
        return Err(r);
    }
    if let Some(l) = &c.login
        && (l.username.len() > MAX_USER || l.password.len() > MAX_PASSWORD)
    {
        return Err(Refusal::BadLogin {
            user: printable_user(&l.username),
        });
    }
    Ok(c)
}

/// Decides a connection's CONNECT: the login (unless the gate is open), the client id (the
/// agent's id, or `{id}-suffix`; never the server's) and the will topic.
pub fn connect(frame: &Frame, logins: &impl Logins) -> Result<Accepted, Refusal> {
    let c = parse_connect(frame)?;
    let (user, password) = c
        .login
        .as_ref()
        .map(|l| (l.username.as_str(), l.password.as_str()))
        .unwrap_or_default();
    if c.client_id == logins.server_client_id() {
        return Err(Refusal::ServerClientId {
            user: printable_user(user),
        });
    }
    if logins.open() {
        return Ok(Accepted {
            connect: c,
            identity: None,
        });
    }
    let own_id = c.client_id == user
        || c.client_id
            .strip_prefix(user)
            .is_some_and(|r| r.starts_with('-'));
    let site = match logins.site_of(user, password) {
        Some(site) if own_id && !user.is_empty() => site,
        _ => {
            return Err(Refusal::BadLogin {
                user: printable_user(user),
            });
        }
    };
    if let Some(w) = &c.last_will
        && !may_publish(&site, user, &w.topic)
    {
        return Err(Refusal::Will {
            user: user.to_owned(),
            topic: w.topic.clone(),
        });
    }
    let identity = Some((site, user.to_owned()));
    Ok(Accepted {
        connect: c,
        identity,
    })
}

/// The CONNECT to relay upstream: the agent's, with its login replaced by `user`/`password`
/// (client id, clean session, keep-alive and will kept).
pub fn with_login(c: &v4::Connect, user: &str, password: &str) -> Bytes {
    let mut c = c.clone();
    c.login = Some(v4::Login::new(user, password));
    let mut out = BytesMut::with_capacity(c.size());
    // Cannot fail: the fields were read from a CONNECT within the length limits.
    let _ = c.write(&mut out);
    out.freeze()
}

/// A packet from a connected agent that may be relayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    Publish {
        topic: String,
        qos: QoS,
        pkid: u16,
        payload: Bytes,
    },
    /// SUBSCRIBE (filters checked), UNSUBSCRIBE, acknowledgements and PINGREQ.
    Other,
    /// DISCONNECT: relay it, then the connection ends.
    Disconnect,
}

/// Why a connected agent's connection is closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// Not a well-formed packet, or one a client never sends (a second CONNECT, CONNACK, ...).
    Protocol(String),
    /// PUBLISH on a topic it may not publish on.
    Publish { topic: String },
    /// SUBSCRIBE to a filter it may not subscribe to.
    Subscribe { filter: String },
}

/// Checks one packet of a connected client. `identity` is the `(site, agent)` of the
/// connection, `None` in open mode (no topic ACL).
pub fn inbound(identity: Option<&(String, String)>, frame: &Frame) -> Result<Inbound, Violation> {
    let h = frame.fixed_header();
    let raw = frame.raw().clone();
    let bad =
        |e: mqttbytes::Error| Violation::Protocol(format!("packet type {}: {e}", frame.kind()));
    let flags_must_be = |f: u8| {
        if frame.flags() == f {
            Ok(())
        } else {
            Err(Violation::Protocol(format!(
                "packet type {} with flags {:#x}",
                frame.kind(),
                frame.flags()
            )))
        }
    };
    match frame.kind() {
        3 => {
            let p = v4::Publish::read(h, raw).map_err(bad)?;
            if let Some((site, agent)) = identity
                && !may_publish(site, agent, &p.topic)
            {
                return Err(Violation::Publish { topic: p.topic });
            }
            Ok(Inbound::Publish {
                topic: p.topic,
                qos: p.qos,
                pkid: p.pkid,
                payload: p.payload,
            })
        }
        8 => {
            flags_must_be(2)?;
            let s = v4::Subscribe::read(h, raw).map_err(bad)?;
            if let Some((site, agent)) = identity
                && let Some(f) = s
                    .filters
                    .iter()
                    .find(|f| !may_subscribe(site, agent, &f.path))
            {
                return Err(Violation::Subscribe {
                    filter: f.path.clone(),
                });
            }
            Ok(Inbound::Other)
        }
        10 => {
            flags_must_be(2)?;
            v4::Unsubscribe::read(h, raw).map_err(bad)?;
            Ok(Inbound::Other)
        }
        4 | 5 | 7 => {
            flags_must_be(0)?;
            check_ack(frame)?;
            Ok(Inbound::Other)
        }
        6 => {
            flags_must_be(2)?;
            check_ack(frame)?;
            Ok(Inbound::Other)
        }
        12 | 14 => {
            flags_must_be(0)?;
            if !frame.body().is_empty() {
                return Err(Violation::Protocol(format!(
                    "packet type {} with a body",
                    frame.kind()
                )));
            }
            Ok(if frame.kind() == 14 {
                Inbound::Disconnect
            } else {
                Inbound::Other
            })
        }
        k => Err(Violation::Protocol(format!(
            "packet type {k} is not sent by a client"
        ))),
    }
}

/// PUBACK, PUBREC, PUBREL, PUBCOMP: exactly a non-zero packet id.
fn check_ack(frame: &Frame) -> Result<(), Violation> {
    match frame.body() {
        [hi, lo] if (*hi, *lo) != (0, 0) => Ok(()),
        _ => Err(Violation::Protocol(format!(
            "packet type {}: expected a packet id",
            frame.kind()
        ))),
    }
}

/// The packet id of a PUBACK from the broker (`None` for any other packet).
pub fn puback_id(frame: &Frame) -> Option<u16> {
    match (frame.kind(), frame.body()) {
        (4, [hi, lo]) => Some(u16::from_be_bytes([*hi, *lo])),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{next_connect, next_frame};

    struct Agents;
    impl Logins for Agents {
        fn open(&self) -> bool {
            false
        }
        fn server_client_id(&self) -> &str {
            "dcim-server"
        }
        fn site_of(&self, user: &str, password: &str) -> Option<String> {
            (user == "a1" && password == "pw").then(|| "s".to_string())
        }
    }

    fn connect_bytes(c: &v4::Connect) -> BytesMut {
        let mut b = BytesMut::new();
        c.write(&mut b).unwrap();
        b
    }

    fn agent_connect(id: &str, user: &str, pw: &str) -> v4::Connect {
        let mut c = v4::Connect::new(id);
        c.set_login(user, pw);
        c.last_will = Some(v4::LastWill::new(
            "dcim/v1/s/a1/state",
            b"{}".to_vec(),
            QoS::AtLeastOnce,
            true,
        ));
        c
    }

    fn decide(c: &v4::Connect) -> Result<Accepted, Refusal> {
        let mut b = connect_bytes(c);
        let f = next_connect(&mut b).unwrap().unwrap();
        connect(&f, &Agents)
    }

    #[test]
    fn logins_client_ids_and_wills_are_checked() {
        let ok = decide(&agent_connect("a1", "a1", "pw")).unwrap();
        assert_eq!(ok.identity, Some(("s".into(), "a1".into())));
        assert!(decide(&agent_connect("a1-2", "a1", "pw")).is_ok());
        assert_eq!(
            decide(&agent_connect("a1", "a1", "bad")),
            Err(Refusal::BadLogin { user: "a1".into() })
        );
        assert_eq!(
            decide(&agent_connect("a2", "a1", "pw")),
            Err(Refusal::BadLogin { user: "a1".into() }),
            "another agent's client id"
        );
        assert!(matches!(
            decide(&agent_connect("a10", "a1", "pw")),
            Err(Refusal::BadLogin { .. })
        ));
        assert!(matches!(
            decide(&agent_connect("dcim-server", "a1", "pw")),
            Err(Refusal::ServerClientId { .. })
        ));
        let mut c = agent_connect("a1", "a1", "pw");
        c.last_will.as_mut().unwrap().topic = "dcim/v1/s/a2/state".into();
        assert!(matches!(decide(&c), Err(Refusal::Will { .. })));
    }

    /// Hazard: 60 kB user names in 1,000 CONNECTs added 68 MB of audit rows.
    #[test]
    fn long_names_are_refused_and_never_carried_whole() {
        let long = "u".repeat(3000);
        match decide(&agent_connect("x", &long, "pw")) {
            Err(Refusal::BadLogin { user }) => assert!(user.chars().count() <= MAX_USER + 1),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decide(&agent_connect(&"c".repeat(200), "a1", "pw")),
            Err(Refusal::Malformed { .. })
        ));
        assert_eq!(printable_user("a\u{0}b"), "a?b");
    }

    #[test]
    fn mqtt_5_and_3_1_are_refused_with_unacceptable_protocol() {
        let mut c = agent_connect("a1", "a1", "pw");
        c.protocol = Protocol::V5;
        assert_eq!(
            decide(&c).unwrap_err().connack(),
            Some(connack::UNACCEPTABLE_PROTOCOL)
        );
    }

    #[test]
    fn the_relayed_connect_carries_the_gate_login_and_keeps_the_rest() {
        let c = agent_connect("a1-x", "a1", "pw");
        let relayed = with_login(&c, "dcim-gate", &"s".repeat(200));
        let mut b = BytesMut::from(&relayed[..]);
        let back = parse_connect(&next_connect(&mut b).unwrap().unwrap()).unwrap();
        assert_eq!(back.client_id, "a1-x");
        assert_eq!(back.last_will, c.last_will);
        assert_eq!(back.keep_alive, c.keep_alive);
        assert_eq!(back.clean_session, c.clean_session);
        let l = back.login.unwrap();
        assert_eq!((l.username.as_str(), l.password.len()), ("dcim-gate", 200));
    }

    fn frame_of(p: v4::Packet) -> Frame {
        let mut b = BytesMut::new();
        p.write(&mut b, usize::MAX).unwrap();
        next_frame(&mut b, 1 << 20).unwrap().unwrap()
    }

    #[test]
    fn packets_of_a_connected_agent_are_checked() {
        let id = ("s".to_string(), "a1".to_string());
        let mut p = v4::Publish::new("dcim/v1/s/a1/telemetry", QoS::AtLeastOnce, "x");
        p.pkid = 7;
        assert!(matches!(
            inbound(Some(&id), &frame_of(v4::Packet::Publish(p.clone()))),
            Ok(Inbound::Publish { pkid: 7, .. })
        ));
        p.topic = "dcim/v1/s/a2/telemetry".into();
        assert!(matches!(
            inbound(Some(&id), &frame_of(v4::Packet::Publish(p.clone()))),
            Err(Violation::Publish { .. })
        ));
        assert!(inbound(None, &frame_of(v4::Packet::Publish(p))).is_ok());
        let s = v4::Subscribe::new("dcim/v1/s/a1/cmd/+", QoS::AtLeastOnce);
        assert_eq!(
            inbound(Some(&id), &frame_of(v4::Packet::Subscribe(s))),
            Ok(Inbound::Other)
        );
        let s = v4::Subscribe::new("#", QoS::AtLeastOnce);
        assert!(matches!(
            inbound(Some(&id), &frame_of(v4::Packet::Subscribe(s))),
            Err(Violation::Subscribe { .. })
        ));
        assert_eq!(
            inbound(Some(&id), &frame_of(v4::Packet::Disconnect)),
            Ok(Inbound::Disconnect)
        );
        assert_eq!(
            inbound(Some(&id), &frame_of(v4::Packet::PingReq)),
            Ok(Inbound::Other)
        );
        let ack = frame_of(v4::Packet::PubAck(v4::PubAck::new(9)));
        assert_eq!(inbound(Some(&id), &ack), Ok(Inbound::Other));
        assert_eq!(puback_id(&ack), Some(9));
        // A second CONNECT, or a packet only a broker sends, closes the connection.
        let again = frame_of(v4::Packet::Connect(v4::Connect::new("a1")));
        assert!(matches!(
            inbound(Some(&id), &again),
            Err(Violation::Protocol(_))
        ));
        let pong = frame_of(v4::Packet::PingResp);
        assert!(matches!(
            inbound(Some(&id), &pong),
            Err(Violation::Protocol(_))
        ));
    }
}
