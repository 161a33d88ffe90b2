//! The shell: SNMP requests over UDP (`async-snmp`) and the trap/inform receiver. Everything
//! else in this crate is pure; this module only moves bytes and converts types.

use crate::device::{ClassRequest, PollAnswer};
use crate::trap::Trap;
use crate::value::SnmpValue;
use async_snmp::notification::{
    Notification, NotificationAcceptance, NotificationEnvelope, NotificationReceiver,
};
use async_snmp::{
    Auth, AuthProtocol, AuthoritativeEngine, Client, Oid, PersistedAuthoritativeEngine,
    PrivProtocol, Retry, SecurityLevel, UdpHandle, UsmConfig, Value, VarBind,
};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// SNMPv3 authentication protocols the agent accepts in its configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthAlg {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl AuthAlg {
    pub const NAMES: &'static str = "sha, sha224, sha256, sha384, sha512";
    pub fn parse(s: &str) -> Option<AuthAlg> {
        Some(match s.to_ascii_lowercase().as_str() {
            "sha" | "sha1" => AuthAlg::Sha1,
            "sha224" => AuthAlg::Sha224,
            "sha256" => AuthAlg::Sha256,
            "sha384" => AuthAlg::Sha384,
            "sha512" => AuthAlg::Sha512,
            _ => return None,
        })
    }
    fn protocol(self) -> AuthProtocol {
        match self {
            AuthAlg::Sha1 => AuthProtocol::Sha1,
            AuthAlg::Sha224 => AuthProtocol::Sha224,
            AuthAlg::Sha256 => AuthProtocol::Sha256,
            AuthAlg::Sha384 => AuthProtocol::Sha384,
            AuthAlg::Sha512 => AuthProtocol::Sha512,
        }
    }
}

/// SNMPv3 privacy protocols the agent accepts (no DES: it is broken).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivAlg {
    Aes128,
    Aes192,
    Aes256,
}

impl PrivAlg {
    pub const NAMES: &'static str = "aes (aes128), aes192, aes256";
    pub fn parse(s: &str) -> Option<PrivAlg> {
        Some(match s.to_ascii_lowercase().as_str() {
            "aes" | "aes128" => PrivAlg::Aes128,
            "aes192" => PrivAlg::Aes192,
            "aes256" => PrivAlg::Aes256,
            _ => return None,
        })
    }
    fn protocol(self) -> PrivProtocol {
        match self {
            PrivAlg::Aes128 => PrivProtocol::Aes128,
            PrivAlg::Aes192 => PrivProtocol::Aes192Blumenthal,
            PrivAlg::Aes256 => PrivProtocol::Aes256Blumenthal,
        }
    }
}

/// A USM user with authentication and privacy (authPriv; the only v3 level the agent uses).
#[derive(Clone, PartialEq, Eq)]
pub struct UsmUser {
    pub name: String,
    pub auth: AuthAlg,
    pub auth_password: String,
    pub privacy: PrivAlg,
    pub privacy_password: String,
}

impl std::fmt::Debug for UsmUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsmUser")
            .field("name", &self.name)
            .field("auth", &self.auth)
            .field("privacy", &self.privacy)
            .finish_non_exhaustive()
    }
}

/// How the agent authenticates to a device.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// SNMPv2c with a community (cleartext; for isolated management networks).
    V2c { community: String },
    /// SNMPv3 USM, authPriv.
    V3(UsmUser),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::V2c { .. } => f.write_str("V2c"),
            Credentials::V3(u) => write!(f, "V3({u:?})"),
        }
    }
}

/// Where and how to reach a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnmpTarget {
    pub address: SocketAddr,
    pub credentials: Credentials,
}

fn auth_of(c: &Credentials) -> Result<Auth, String> {
    match c {
        Credentials::V2c { community } => Ok(Auth::v2c(community.as_str())),
        Credentials::V3(u) => UsmConfig::new(u.name.clone())
            .auth_priv(
                u.auth.protocol(),
                u.auth_password.clone(),
                u.privacy.protocol(),
                u.privacy_password.clone(),
            )
            .map(Auth::from)
            .map_err(|e| format!("SNMPv3 user {}: {e}", u.name)),
    }
}

/// A client for one device.
pub struct SnmpClient {
    client: Client<UdpHandle>,
}

impl SnmpClient {
    /// `timeout` bounds each attempt; `retries` more attempts follow a timeout.
    pub async fn connect(
        target: &SnmpTarget,
        timeout: Duration,
        retries: u32,
    ) -> Result<SnmpClient, String> {
        let retry = if retries == 0 {
            Retry::none()
        } else {
            Retry::fixed(retries, Duration::ZERO).map_err(|e| e.to_string())?
        };
        let client = Client::builder(target.address, auth_of(&target.credentials)?)
            .request_timeout(timeout)
            .retry(retry)
            .connect()
            .await
            .map_err(|e| e.to_string())?;
        Ok(SnmpClient { client })
    }

    /// One poll: every GET, then every walk. The first failure fails the poll.
    pub async fn poll(
        &self,
        req: &ClassRequest,
        max_repetitions: u32,
    ) -> Result<PollAnswer, String> {
        let mut answer = PollAnswer::default();
        for chunk in &req.gets {
            let oids: Vec<Oid> = chunk
                .iter()
                .map(|o| Oid::parse(o).map_err(|e| format!("OID {o}: {e}")))
                .collect::<Result<_, _>>()?;
            let r = self
                .client
                .get_many(&oids)
                .await
                .map_err(|e| e.to_string())?;
            for vb in r.varbinds {
                answer
                    .values
                    .insert(vb.oid.to_string(), value_of(&vb.value));
            }
        }
        for column in &req.walks {
            let oid = Oid::parse(column).map_err(|e| format!("OID {column}: {e}"))?;
            let options = async_snmp::WalkOptions {
                max_repetitions,
                result_limit: Some(10_000),
                ..Default::default()
            };
            let rows = self
                .client
                .walk_with(oid.clone(), options)
                .map_err(|e| e.to_string())?
                .collect()
                .await
                .map_err(|e| e.to_string())?;
            let prefix = oid.arcs().len();
            answer.rows.insert(
                column.clone(),
                rows.iter()
                    .filter(|vb| vb.oid.starts_with(&oid))
                    .map(|vb| (vb.oid.arcs()[prefix..].to_vec(), value_of(&vb.value)))
                    .collect(),
            );
        }
        Ok(answer)
    }
}

/// A library value as the pure core's value.
pub fn value_of(v: &Value) -> SnmpValue {
    match v {
        Value::Integer(i) => SnmpValue::Integer(i64::from(*i)),
        Value::Counter32(u) | Value::Gauge32(u) | Value::UInteger32(u) | Value::TimeTicks(u) => {
            SnmpValue::Unsigned(u64::from(*u))
        }
        Value::Counter64(u) => SnmpValue::Unsigned(*u),
        Value::OctetString(b) => SnmpValue::Text(
            String::from_utf8_lossy(b)
                .trim_end_matches(['\0', ' '])
                .to_owned(),
        ),
        Value::IpAddress(a) => SnmpValue::Text(std::net::Ipv4Addr::from(*a).to_string()),
        Value::ObjectIdentifier(o) => SnmpValue::Text(o.to_string()),
        _ => SnmpValue::Missing,
    }
}

fn varbinds(vbs: &[VarBind]) -> Vec<(String, SnmpValue)> {
    vbs.iter()
        .map(|vb| (vb.oid.to_string(), value_of(&vb.value)))
        .collect()
}

/// Trap/inform receiver settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiverSettings {
    pub listen: SocketAddr,
    /// v1/v2c notifications are accepted only with one of these communities (none: v1/v2c
    /// refused).
    pub communities: Vec<String>,
    /// v3 notifications are accepted only authenticated and encrypted (authPriv) from these
    /// users.
    pub users: Vec<UsmUser>,
    /// The receiver's SNMPv3 engine id (the one v3 informs are sent to).
    pub engine_id: Vec<u8>,
    /// Where the engine's boot counter is kept (RFC 3414 needs it to grow across restarts).
    pub engine_file: PathBuf,
}

/// A notification received, with its source address.
#[derive(Debug, Clone)]
pub struct Received {
    pub source: SocketAddr,
    pub trap: Trap,
}

fn load_boots(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn store_boots(path: &Path, boots: u32) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{boots}\n"))?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The notification receiver (traps and informs; informs are acknowledged by it).
pub struct TrapReceiver {
    inner: NotificationReceiver,
}

impl TrapReceiver {
    pub async fn bind(s: &ReceiverSettings) -> Result<TrapReceiver, String> {
        let file = s.engine_file.clone();
        let persist = move |p: &PersistedAuthoritativeEngine| store_boots(&file, p.engine_boots());
        let engine = match load_boots(&s.engine_file) {
            Some(boots) => AuthoritativeEngine::restart(
                PersistedAuthoritativeEngine::new(s.engine_id.clone(), boots)
                    .map_err(|e| e.to_string())?,
                persist,
            ),
            None => AuthoritativeEngine::install(s.engine_id.clone(), persist),
        }
        .map_err(|e| format!("SNMP engine state {}: {e}", s.engine_file.display()))?;
        let mut b = NotificationReceiver::builder()
            .bind(s.listen.to_string())
            .authoritative_engine(engine);
        if !s.communities.is_empty() {
            b = b.communities(s.communities.clone());
        }
        for u in &s.users {
            let (ap, pp) = (u.auth_password.clone(), u.privacy_password.clone());
            let (aa, pa) = (u.auth.protocol(), u.privacy.protocol());
            b = b
                .usm_user(u.name.clone(), move |c| {
                    c.auth_priv(aa, ap.as_bytes(), pa, pp.as_bytes())
                })
                .map_err(|e| format!("SNMPv3 user {}: {e}", u.name))?;
        }
        let allow_v2c = !s.communities.is_empty();
        let inner = b
            .acceptance_policy(move |n: &NotificationEnvelope<'_>| match n.security_level {
                // v1/v2c: only through the community allowlist (and only when one is set).
                None if allow_v2c => NotificationAcceptance::Accept,
                Some(SecurityLevel::AuthPriv) => NotificationAcceptance::Accept,
                _ => NotificationAcceptance::Reject,
            })
            .build()
            .await
            .map_err(|e| format!("SNMP trap receiver on {}: {e}", s.listen))?;
        Ok(TrapReceiver { inner })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr()
    }

    /// The next accepted notification.
    pub async fn recv(&self) -> Result<Received, String> {
        let r = self.inner.recv().await.map_err(|e| e.to_string())?;
        let n = &r.notification;
        let trap_oid = n.trap_oid().map(|o| o.to_string()).unwrap_or_default();
        let (inform, security) = match n {
            Notification::TrapV1 { .. } => (false, "v1 community".to_owned()),
            Notification::TrapV2c { .. } => (false, "v2c community".to_owned()),
            Notification::InformV2c { .. } => (true, "v2c community".to_owned()),
            Notification::TrapV3 {
                username,
                security_level,
                ..
            } => (
                false,
                format!(
                    "v3 user {} {security_level:?}",
                    String::from_utf8_lossy(username.as_ref())
                ),
            ),
            Notification::InformV3 {
                username,
                security_level,
                ..
            } => (
                true,
                format!(
                    "v3 user {} {security_level:?}",
                    String::from_utf8_lossy(username.as_ref())
                ),
            ),
        };
        Ok(Received {
            source: r.source,
            trap: Trap {
                trap_oid,
                varbinds: varbinds(n.varbinds()),
                inform,
                security,
            },
        })
    }
}
