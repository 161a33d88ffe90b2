//! The embedded broker's gate (`dcim-mqtt-gate`): what an unauthenticated peer's bytes reach.
//!
//! Input: a mode byte, then the client's byte stream. Mode bit 0x80 puts a well-formed
//! CONNECT of agent `a1` (password `pw`, or a wrong one with bit 0x40) in front of the stream
//! so that the fuzzer reaches the packets after a login; bits 0..=5 give the size of the reads
//! the stream arrives in (1..=64 bytes). Bit 0x40 without 0x80 opens the gate (no agents
//! configured).
//!
//! Checked on top of "no panic": nothing before the login is framed larger than
//! `CONNECT_MAX`; the buffer never holds more than one frame plus one read; a relayed CONNECT
//! carries the gate's login and the agent's client id and will; a publish or subscribe
//! relayed for an agent is on its own topics.

use dcim_mqtt_gate::acl::{may_publish, may_subscribe};
use dcim_mqtt_gate::codec::{self, CONNECT_MAX, LOGIN_CHUNK, READ_CHUNK};
use dcim_mqtt_gate::mqttbytes::{QoS, v4};
use dcim_mqtt_gate::session::{self, Inbound, Logins};

struct Agents {
    open: bool,
}

impl Logins for Agents {
    fn open(&self) -> bool {
        self.open
    }
    fn server_client_id(&self) -> &str {
        "dcim-server"
    }
    fn site_of(&self, user: &str, password: &str) -> Option<String> {
        (user == "a1" && password == "pw").then(|| "s".to_string())
    }
}

/// Largest packet after the login in this harness (the server's is `max_payload + 64 KiB`).
const MAX: usize = 4096;

pub fn mqtt_gate(data: &[u8]) {
    let [mode, rest @ ..] = data else { return };
    let mode = *mode;
    let read = usize::from(mode & 0x3f) + 1;
    let logins = Agents {
        open: mode & 0xc0 == 0x40,
    };
    let mut stream = Vec::new();
    if mode & 0x80 != 0 {
        let mut b = bytes::BytesMut::new();
        write_connect(&mut b, mode);
        stream.extend_from_slice(&b);
    }
    stream.extend_from_slice(rest);

    let mut buf = bytes::BytesMut::new();
    let mut chunks = stream.chunks(read);
    // Before the login: a CONNECT of at most CONNECT_MAX bytes.
    let connect = loop {
        match codec::next_connect(&mut buf) {
            Ok(Some(f)) => break f,
            Ok(None) => {}
            Err(_) => return,
        }
        // The shell reads at most `read_size` bytes; the reads here are at most 64.
        assert!(codec::read_size(&buf, CONNECT_MAX, LOGIN_CHUNK) >= 1);
        let Some(c) = chunks.next() else { return };
        buf.extend_from_slice(c);
        assert!(
            buf.len() <= CONNECT_MAX + 5 + LOGIN_CHUNK + read,
            "{} bytes buffered before the login",
            buf.len()
        );
    };
    assert!(connect.raw().len() <= CONNECT_MAX + 5);
    let accepted = match session::connect(&connect, &logins) {
        Ok(a) => a,
        Err(r) => {
            let _ = r.connack();
            return;
        }
    };
    // The CONNECT relayed upstream carries the gate's login, the rest unchanged.
    let relayed = session::with_login(&accepted.connect, "dcim-gate", "gate-secret");
    let mut rb = bytes::BytesMut::from(&relayed[..]);
    let back = codec::next_connect(&mut rb)
        .ok()
        .flatten()
        .map(|f| session::parse_connect(&f));
    match back {
        Some(Ok(c)) => {
            assert_eq!(c.client_id, accepted.connect.client_id);
            assert_eq!(c.last_will, accepted.connect.last_will);
            let l = c.login.expect("gate login");
            assert_eq!(
                (l.username.as_str(), l.password.as_str()),
                ("dcim-gate", "gate-secret")
            );
        }
        other => panic!("relayed CONNECT does not parse back: {other:?}"),
    }
    if !logins.open {
        assert_eq!(
            accepted
                .identity
                .as_ref()
                .map(|(s, a)| (s.as_str(), a.as_str())),
            Some(("s", "a1"))
        );
    }
    // After the login: every packet checked.
    for c in chunks {
        buf.extend_from_slice(c);
        loop {
            match codec::next_frame(&mut buf, MAX) {
                Ok(Some(f)) => {
                    assert!(f.body().len() <= MAX);
                    match session::inbound(accepted.identity.as_ref(), &f) {
                        Ok(Inbound::Publish { topic, .. }) => {
                            if let Some((site, agent)) = &accepted.identity {
                                assert!(may_publish(site, agent, &topic), "relayed {topic}");
                            }
                        }
                        Ok(Inbound::Other) => {
                            if f.kind() == 8
                                && let Some((site, agent)) = &accepted.identity
                            {
                                let s = v4::Subscribe::read(f.fixed_header(), f.raw().clone())
                                    .expect("relayed subscribe parses");
                                for filter in s.filters {
                                    assert!(may_subscribe(site, agent, &filter.path));
                                }
                            }
                        }
                        Ok(Inbound::Disconnect) | Err(_) => return,
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
        assert!(buf.len() <= MAX + 5 + READ_CHUNK);
    }
}

/// A well-formed CONNECT of agent `a1` with its will; the password is `pw`, or with mode bit
/// 0x40 a wrong one.
fn write_connect(out: &mut bytes::BytesMut, mode: u8) {
    let mut c = v4::Connect::new("a1");
    c.set_login("a1", if mode & 0x40 != 0 { "wrong" } else { "pw" });
    c.last_will = Some(v4::LastWill::new(
        "dcim/v1/s/a1/state",
        b"{\"v\":1}".to_vec(),
        QoS::AtLeastOnce,
        true,
    ));
    c.write(out).expect("a small CONNECT encodes");
}
