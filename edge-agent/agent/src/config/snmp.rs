//! The SNMP parts of the agent's configuration (SNMP device connections and `[snmp_traps]`):
//!
//! ```toml
//! [[device]]
//! id = "sw-row-h1-01"
//! profile = "../device-profiles/switch-if-mib-lldp.toml"
//! snmp = { address = "10.0.0.60:161", community = "monitor" }       # SNMPv2c
//! # SNMPv3 (authPriv only):
//! # snmp = { address = "10.0.0.60", version = "3", user = "dcim", auth = "sha256",
//! #          auth_password_file = "/etc/dcim/snmp-auth.pass", privacy = "aes128",
//! #          privacy_password_file = "/etc/dcim/snmp-priv.pass" }
//! labels = { feed = "A" }           # fills {feed} in the profile's label values (optional)
//! [[device.link]]                   # one per designed link through this switch
//! name = "core-a-row-h1-01"         # the link's name in the site model (label link = ...)
//! if_index = 49                     # IF-MIB ifIndex of the port
//! lldp_port = 49                    # LLDP local port number (default: if_index)
//! neighbor = "core-a"               # LLDP system name at the other end (optional check)
//!
//! [snmp_traps]                      # optional: receive traps and informs
//! listen = "0.0.0.0:162"
//! communities = ["monitor"]         # v1/v2c accepted only with one of these (none: refused)
//! engine_id = "80001f8880646369"    # hex, 5..32 bytes; default derived from the agent id
//! engine_file = "snmp-engine"       # boot counter; default <spool.dir>/../snmp-engine
//! [[snmp_traps.user]]               # v3 notifications: authPriv from these users only
//! name = "dcim-traps"
//! auth = "sha256"
//! auth_password_file = "/etc/dcim/trap-auth.pass"
//! privacy = "aes128"
//! privacy_password_file = "/etc/dcim/trap-priv.pass"
//! ```
//!
//! Traps are matched to devices by the source IP address of the notification.

use super::{ConfigError, Ctx};
use dcim_snmp::{AuthAlg, Credentials, LinkConfig, PrivAlg, ReceiverSettings, SnmpTarget, UsmUser};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use toml::Spanned;

/// An SNMP device's connection, links and labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnmpDeviceConfig {
    pub target: SnmpTarget,
    pub links: Vec<LinkConfig>,
    pub labels: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSnmpConn {
    address: String,
    version: Option<String>,
    community: Option<String>,
    community_file: Option<String>,
    user: Option<String>,
    auth: Option<String>,
    auth_password: Option<String>,
    auth_password_file: Option<String>,
    privacy: Option<String>,
    privacy_password: Option<String>,
    privacy_password_file: Option<String>,
}

/// The USM fields shared by a device's `snmp` table and a trap user.
pub(crate) struct RawUserFields {
    auth: Option<String>,
    auth_password: Option<String>,
    auth_password_file: Option<String>,
    privacy: Option<String>,
    privacy_password: Option<String>,
    privacy_password_file: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLink {
    name: Spanned<String>,
    if_index: u32,
    lldp_port: Option<u32>,
    neighbor: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSnmpTraps {
    listen: Spanned<String>,
    #[serde(default)]
    communities: Vec<String>,
    engine_id: Option<Spanned<String>>,
    engine_file: Option<String>,
    #[serde(default)]
    user: Vec<Spanned<RawTrapUser>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTrapUser {
    name: String,
    auth: Option<String>,
    auth_password: Option<String>,
    auth_password_file: Option<String>,
    privacy: Option<String>,
    privacy_password: Option<String>,
    privacy_password_file: Option<String>,
}

impl RawTrapUser {
    fn fields(&self) -> RawUserFields {
        RawUserFields {
            auth: self.auth.clone(),
            auth_password: self.auth_password.clone(),
            auth_password_file: self.auth_password_file.clone(),
            privacy: self.privacy.clone(),
            privacy_password: self.privacy_password.clone(),
            privacy_password_file: self.privacy_password_file.clone(),
        }
    }
}

impl RawSnmpConn {
    fn fields(&self) -> RawUserFields {
        RawUserFields {
            auth: self.auth.clone(),
            auth_password: self.auth_password.clone(),
            auth_password_file: self.auth_password_file.clone(),
            privacy: self.privacy.clone(),
            privacy_password: self.privacy_password.clone(),
            privacy_password_file: self.privacy_password_file.clone(),
        }
    }
}

fn secret(
    ctx: &Ctx,
    span: std::ops::Range<usize>,
    field: &str,
    inline: &Option<String>,
    file: &Option<String>,
) -> Result<Option<String>, ConfigError> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(ctx.err(
            span,
            field,
            format!("set either {field} or {field}_file, not both"),
        )),
        (Some(v), None) => Ok(Some(v.clone())),
        (None, Some(f)) => {
            let path = ctx.path(f);
            std::fs::read_to_string(&path)
                .map(|t| Some(t.trim_end_matches(['\r', '\n']).to_owned()))
                .map_err(|e| {
                    ctx.err(
                        span,
                        &format!("{field}_file"),
                        format!("{}: {e}", path.display()),
                    )
                })
        }
        (None, None) => Ok(None),
    }
}

/// An authPriv USM user from its fields; `field` prefixes error field names.
fn usm_user(
    ctx: &Ctx,
    span: std::ops::Range<usize>,
    field: &str,
    name: &str,
    u: &RawUserFields,
) -> Result<UsmUser, ConfigError> {
    let f = |n: &str| format!("{field}.{n}");
    let auth = u.auth.as_deref().ok_or_else(|| {
        ctx.err(
            span.clone(),
            &f("auth"),
            format!("missing: SNMPv3 is used with authentication and privacy (authPriv); expected one of {}", AuthAlg::NAMES),
        )
    })?;
    let auth = AuthAlg::parse(auth).ok_or_else(|| {
        ctx.err(
            span.clone(),
            &f("auth"),
            format!(
                "`{auth}`: expected one of {} (MD5 is not accepted)",
                AuthAlg::NAMES
            ),
        )
    })?;
    let privacy = u.privacy.as_deref().ok_or_else(|| {
        ctx.err(
            span.clone(),
            &f("privacy"),
            format!(
                "missing: SNMPv3 is used with privacy (authPriv); expected one of {}",
                PrivAlg::NAMES
            ),
        )
    })?;
    let privacy = PrivAlg::parse(privacy).ok_or_else(|| {
        ctx.err(
            span.clone(),
            &f("privacy"),
            format!(
                "`{privacy}`: expected one of {} (DES is not accepted)",
                PrivAlg::NAMES
            ),
        )
    })?;
    let password = |what: &str, inline: &Option<String>, file: &Option<String>| {
        let p = secret(ctx, span.clone(), &f(what), inline, file)?.ok_or_else(|| {
            ctx.err(
                span.clone(),
                &f(what),
                format!("missing: set {what} or {what}_file"),
            )
        })?;
        if p.len() < 8 {
            return Err(ctx.err(
                span.clone(),
                &f(what),
                "an SNMPv3 password has at least 8 characters (RFC 3414)",
            ));
        }
        Ok(p)
    };
    Ok(UsmUser {
        name: name.to_owned(),
        auth,
        auth_password: password("auth_password", &u.auth_password, &u.auth_password_file)?,
        privacy,
        privacy_password: password(
            "privacy_password",
            &u.privacy_password,
            &u.privacy_password_file,
        )?,
    })
}

/// `[[device]]`'s `snmp = { ... }`, `labels` and `[[device.link]]`; `f` names fields of this
/// device (`device[3].snmp`).
pub(crate) fn device(
    ctx: &Ctx,
    f: &dyn Fn(&str) -> String,
    conn: &Spanned<RawSnmpConn>,
    links: &[Spanned<RawLink>],
    labels: &Option<BTreeMap<String, String>>,
) -> Result<SnmpDeviceConfig, ConfigError> {
    let span = conn.span();
    let c = conn.get_ref();
    let address = if c.address.contains(':') {
        c.address.clone()
    } else {
        format!("{}:161", c.address)
    };
    let address: SocketAddr = address.parse().map_err(|_| {
        ctx.err(
            span.clone(),
            &f("snmp.address"),
            format!(
                "`{}` is not an address: expected IP or IP:port, e.g. 10.0.0.60:161",
                c.address
            ),
        )
    })?;
    let credentials = credentials(ctx, f, span, c)?;
    let links = device_links(ctx, f, links)?;
    Ok(SnmpDeviceConfig {
        target: SnmpTarget {
            address,
            credentials,
        },
        links,
        labels: labels.clone().unwrap_or_default(),
    })
}

/// The SNMPv2c community or the SNMPv3 user of a device, by `version`.
fn credentials(
    ctx: &Ctx,
    f: &dyn Fn(&str) -> String,
    span: std::ops::Range<usize>,
    c: &RawSnmpConn,
) -> Result<Credentials, ConfigError> {
    Ok(match c.version.as_deref().unwrap_or("2c") {
        "2c" => {
            if c.user.is_some() || c.auth.is_some() || c.privacy.is_some() {
                return Err(ctx.err(
                    span,
                    &f("snmp.version"),
                    "user/auth/privacy are SNMPv3 settings: add version = \"3\"",
                ));
            }
            let community = secret(
                ctx,
                span.clone(),
                &f("snmp.community"),
                &c.community,
                &c.community_file,
            )?
            .ok_or_else(|| {
                ctx.err(
                    span.clone(),
                    &f("snmp.community"),
                    "missing: SNMPv2c needs community (or community_file); or use version = \"3\"",
                )
            })?;
            Credentials::V2c { community }
        }
        "3" => {
            if c.community.is_some() || c.community_file.is_some() {
                return Err(ctx.err(
                    span,
                    &f("snmp.community"),
                    "SNMPv3 has no community: remove it (or use version = \"2c\")",
                ));
            }
            let name = c.user.as_deref().ok_or_else(|| {
                ctx.err(
                    span.clone(),
                    &f("snmp.user"),
                    "missing: the SNMPv3 user name",
                )
            })?;
            Credentials::V3(usm_user(ctx, span.clone(), &f("snmp"), name, &c.fields())?)
        }
        other => {
            return Err(ctx.err(
                span,
                &f("snmp.version"),
                format!("`{other}`: expected \"2c\" or \"3\" (SNMPv1 is not supported)"),
            ));
        }
    })
}

/// The `[[device.link]]` entries: names as in the site model, unique names and interfaces.
fn device_links(
    ctx: &Ctx,
    f: &dyn Fn(&str) -> String,
    links: &[Spanned<RawLink>],
) -> Result<Vec<LinkConfig>, ConfigError> {
    let mut out_links: Vec<LinkConfig> = Vec::new();
    for (i, l) in links.iter().enumerate() {
        let lspan = l.span();
        let l = l.get_ref();
        let name = l.name.get_ref();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(ctx.err(
                l.name.span(),
                &f(&format!("link[{i}].name")),
                "expected the link's name in the site model: letters, digits, `-`, `_`, `.`",
            ));
        }
        if out_links.iter().any(|o| &o.name == name) {
            return Err(ctx.err(
                lspan,
                &f(&format!("link[{i}].name")),
                "link names must be unique",
            ));
        }
        if out_links.iter().any(|o| o.if_index == l.if_index) {
            return Err(ctx.err(
                lspan,
                &f(&format!("link[{i}].if_index")),
                format!(
                    "if_index {} is already used by another link of this device",
                    l.if_index
                ),
            ));
        }
        out_links.push(LinkConfig {
            name: name.clone(),
            if_index: l.if_index,
            lldp_port: l.lldp_port.unwrap_or(l.if_index),
            neighbor: l.neighbor.clone().filter(|n| !n.is_empty()),
        });
    }
    Ok(out_links)
}

/// The `[snmp_traps]` section. `agent` and `spool_dir` give the defaults of the engine id and
/// the engine file.
pub(crate) fn traps(
    ctx: &Ctx,
    raw: &Spanned<RawSnmpTraps>,
    agent: &str,
    spool_dir: &Path,
) -> Result<ReceiverSettings, ConfigError> {
    let t = raw.get_ref();
    let listen: SocketAddr = t.listen.get_ref().parse().map_err(|_| {
        ctx.err(
            t.listen.span(),
            "snmp_traps.listen",
            format!(
                "`{}` is not an address: expected IP:port, e.g. 0.0.0.0:162",
                t.listen.get_ref()
            ),
        )
    })?;
    let engine_id = match &t.engine_id {
        Some(h) => {
            let text = h.get_ref();
            let bytes: Option<Vec<u8>> = (text.len() % 2 == 0)
                .then(|| {
                    (0..text.len())
                        .step_by(2)
                        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
                        .collect()
                })
                .flatten();
            match bytes {
                Some(b) if (5..=32).contains(&b.len()) => b,
                _ => {
                    return Err(ctx.err(
                        h.span(),
                        "snmp_traps.engine_id",
                        "expected 5 to 32 bytes in hex, e.g. \"80001f8880646369\"",
                    ));
                }
            }
        }
        // RFC 3411 text format: enterprise 8072 (net-snmp's), format 4 (text), the agent id.
        None => {
            let mut id = vec![0x80, 0x00, 0x1f, 0x88, 0x04];
            id.extend(agent.bytes().take(27));
            id
        }
    };
    let mut users = Vec::new();
    for (i, u) in t.user.iter().enumerate() {
        let field = format!("snmp_traps.user[{i}]");
        users.push(usm_user(
            ctx,
            u.span(),
            &field,
            &u.get_ref().name,
            &u.get_ref().fields(),
        )?);
    }
    if t.communities.is_empty() && users.is_empty() {
        return Err(ctx.err(
            raw.span(),
            "snmp_traps",
            "no community and no user: every notification would be refused; add communities = [...] or a [[snmp_traps.user]]",
        ));
    }
    let engine_file = match &t.engine_file {
        Some(p) => ctx.path(p),
        None => spool_dir
            .parent()
            .unwrap_or(Path::new("."))
            .join("snmp-engine"),
    };
    Ok(ReceiverSettings {
        listen,
        communities: t.communities.clone(),
        users,
        engine_id,
        engine_file,
    })
}

#[cfg(test)]
mod tests {
    use crate::config::{ConfigError, Connection, parse};
    use std::path::Path;

    /// The configuration error of `cfg(device, extra)`.
    fn err(device: &str, extra: &str) -> ConfigError {
        parse("a.toml", &cfg(device, extra), Path::new(".")).unwrap_err()
    }

    fn cfg(device: &str, extra: &str) -> String {
        format!(
            "site = \"s\"\nagent = \"a\"\n[spool]\ndir = \"spool\"\n[[device]]\nid = \"sw\"\nprofile = \"p.toml\"\n{device}\n{extra}\n[[broker]]\nname = \"c\"\nurl = \"mqtt://127.0.0.1:1883\"\n"
        )
    }

    #[test]
    fn v2c_device_with_links_and_a_trap_receiver() {
        let text = cfg(
            "snmp = { address = \"10.0.0.60\", community = \"monitor\" }\n[[device.link]]\nname = \"core-a-1\"\nif_index = 49\nneighbor = \"core-a\"",
            "[snmp_traps]\nlisten = \"0.0.0.0:1162\"\ncommunities = [\"monitor\"]",
        );
        let c = parse("a.toml", &text, Path::new("/etc/dcim")).unwrap();
        let Connection::Snmp(s) = &c.devices[0].connection else {
            panic!("not snmp")
        };
        assert_eq!(s.target.address.to_string(), "10.0.0.60:161");
        assert_eq!(s.links[0].lldp_port, 49, "defaults to if_index");
        assert_eq!(s.links[0].neighbor.as_deref(), Some("core-a"));
        let t = c.snmp_traps.unwrap();
        assert_eq!(t.engine_id[..5], [0x80, 0x00, 0x1f, 0x88, 0x04]);
        assert_eq!(t.engine_file, Path::new("/etc/dcim/snmp-engine"));
    }

    /// Hazard: an SNMPv3 device configured without privacy, or with MD5/DES, would send the
    /// facility's state in clear or with broken crypto while the operator believes it secured.
    #[test]
    fn v3_needs_auth_priv_with_strong_algorithms_and_errors_name_line_and_field() {
        let e = err(
            "snmp = { address = \"10.0.0.60:161\", version = \"3\", user = \"dcim\", auth = \"sha256\", auth_password = \"authpass123\" }",
            "",
        );
        assert_eq!((e.line, e.field.as_str()), (8, "device[0].snmp.privacy"));
        let e = err(
            "snmp = { address = \"10.0.0.60\", version = \"3\", user = \"dcim\", auth = \"md5\", auth_password = \"authpass123\", privacy = \"aes\", privacy_password = \"privpass123\" }",
            "",
        );
        assert!(e.message.contains("MD5 is not accepted"), "{e}");
        let e = err(
            "snmp = { address = \"10.0.0.60\", version = \"3\", user = \"dcim\", auth = \"sha\", auth_password = \"short\", privacy = \"aes\", privacy_password = \"privpass123\" }",
            "",
        );
        assert!(e.message.contains("at least 8"), "{e}");
        let e = err("snmp = { address = \"10.0.0.60\" }", "");
        assert!(e.message.contains("community"), "{e}");
        let e = err(
            "snmp = { address = \"10.0.0.60\", community = \"c\" }",
            "[snmp_traps]\nlisten = \"0.0.0.0:162\"",
        );
        assert_eq!(e.field, "snmp_traps");
    }
}
