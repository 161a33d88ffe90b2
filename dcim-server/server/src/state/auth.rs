//! Pure authentication helpers: password hashing (argon2id), opaque tokens, role checks,
//! cookie and CSRF parsing. The HTTP wiring is in `api`.
//!
//! Roles: viewer < operator < admin; fire_authority reads everything and changes nothing but its
//! own password. Session cookies are HttpOnly and SameSite=Strict, with a double-submit CSRF
//! token and an Origin check on cookie-authenticated writes (scheme included: `https://` behind
//! TLS or `secure_cookies`); `host_ok` guards against DNS rebinding; `verify_password_in`
//! verifies in argon2 memory kept by the caller (`crate::state::security`). Pure submodules: `password`
//! (rules and the device cookie), `limits` (`LoginLimiter`), `coalesce` (`FailureAudit`).

use crate::config::Role;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use sha2::{Digest, Sha256};

pub mod coalesce;
pub mod limits;
pub mod password;

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Any signed-in role, including the fire authority.
    Read,
    /// Operators and admins: acknowledge, shelve, comment, incidents.
    Operate,
    /// Admins: users, tokens, audit log.
    Admin,
    /// Operators, admins and the fire authority: take command of the site (enter authority
    /// control). The fire authority's only write.
    TakeCommand,
}

pub fn allows(role: Role, access: Access) -> bool {
    match access {
        Access::Read => true,
        Access::Operate => matches!(role, Role::Operator | Role::Admin),
        Access::Admin => role == Role::Admin,
        Access::TakeCommand => {
            matches!(role, Role::Operator | Role::Admin | Role::FireAuthority)
        }
    }
}

pub fn hash_password(password: &str, memory_kib: u32, iterations: u32) -> Result<String, String> {
    let params = Params::new(memory_kib, iterations, 1, None).map_err(|e| e.to_string())?;
    let a = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    a.hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Verifies `password` against a PHC `hash` in the argon2 memory `blocks` (grown to the
/// hash's memory cost if needed and kept by the caller): nothing is allocated per attempt,
/// so a flood of sign-ins cannot leave the allocator holding a hash's memory per thread.
pub fn verify_password_in(password: &str, hash: &str, blocks: &mut Vec<argon2::Block>) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return false;
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let need = params.block_count();
    if blocks.len() < need {
        blocks.resize(need, argon2::Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    let a = Argon2::new(algorithm, version, params);
    a.hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut blocks[..need])
        .is_ok()
        && out.len() == expected.len()
        && out
            .iter()
            .zip(expected.as_bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A fresh random token (256 bits, hex) with the given prefix.
pub fn new_token(prefix: &str) -> String {
    let mut buf = [0u8; 32];
    getrandom::fill(&mut buf).expect("the OS random source is available");
    format!("{prefix}{}", hex::encode(buf))
}

/// Tokens are stored hashed, so a database leak does not leak live credentials.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The value of a cookie in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

/// Constant-time comparison of two secrets.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Whether a browser request's `Origin` is acceptable: absent (not a cross-site browser
/// request: browsers always send it on cross-origin POSTs), listed in `allowed`, or the
/// request's own host with the scheme the server is reached by (`https` when `https`): a page
/// served over plain HTTP on the same host and port is another origin.
pub fn origin_ok(
    origin: Option<&str>,
    host: Option<&str>,
    allowed: &[String],
    https: bool,
) -> bool {
    let Some(origin) = origin else { return true };
    if allowed.iter().any(|a| a == origin) {
        return true;
    }
    let Some(host) = host else { return false };
    let scheme = if https { "https://" } else { "http://" };
    origin.strip_prefix(scheme) == Some(host)
}

/// Whether a request's `Host` names this server (a DNS-rebinding page reaches a loopback or
/// LAN server under its own name: `Host: evil.example`). Accepted: an IP literal (with or
/// without port), `localhost`, a name in `allowed_hosts`, or the host of an allowed origin.
/// A request without `Host` (HTTP/1.0 tools) is accepted: a browser always sends one.
pub fn host_ok(host: Option<&str>, allowed_hosts: &[String], allowed_origins: &[String]) -> bool {
    let Some(host) = host else { return true };
    let name = host_name(host);
    if name.parse::<std::net::IpAddr>().is_ok() || name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    allowed_hosts
        .iter()
        .any(|h| host_name(h).eq_ignore_ascii_case(name))
        || allowed_origins.iter().any(|o| {
            let bare = o.split_once("://").map_or(o.as_str(), |(_, rest)| rest);
            host_name(bare).eq_ignore_ascii_case(name)
        })
}

/// The name of a `Host` value without its port (`[v6]:port`, `name:port`, `v4:port`).
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !name.contains(':') => {
            name
        }
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse", 64, 1).unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("x", "not a hash"));
        let mut blocks = Vec::new();
        assert!(verify_password_in("correct horse", &h, &mut blocks));
        assert_eq!(blocks.len(), 64, "one block per KiB of memory cost");
        assert!(!verify_password_in("correct horsf", &h, &mut blocks));
        assert!(!verify_password_in("x", "not a hash", &mut blocks));
        let other = hash_password("other one here", 128, 2).unwrap();
        assert!(verify_password_in("other one here", &other, &mut blocks));
        assert_eq!(blocks.len(), 128, "grown to the larger cost, then kept");
        assert_ne!(h, hash_password("correct horse", 64, 1).unwrap(), "salted");
    }

    #[test]
    fn roles() {
        assert!(allows(Role::FireAuthority, Access::Read));
        assert!(!allows(Role::FireAuthority, Access::Operate));
        assert!(!allows(Role::Viewer, Access::Operate));
        assert!(allows(Role::Operator, Access::Operate));
        assert!(!allows(Role::Operator, Access::Admin));
        assert!(allows(Role::Admin, Access::Admin));
        assert!(allows(Role::FireAuthority, Access::TakeCommand));
        assert!(allows(Role::Operator, Access::TakeCommand));
        assert!(!allows(Role::Viewer, Access::TakeCommand));
    }

    #[test]
    fn cookies_tokens_origins() {
        assert_eq!(
            cookie("a=1; dcim_session=xyz; b=2", "dcim_session"),
            Some("xyz")
        );
        assert_eq!(cookie("a=1", "dcim_session"), None);
        let t = new_token("dcim_");
        assert_eq!(t.len(), 5 + 64);
        assert_ne!(t, new_token("dcim_"));
        assert_eq!(token_hash("x").len(), 64);
        assert!(same_secret("abc", "abc") && !same_secret("abc", "abd") && !same_secret("a", "ab"));
        assert!(origin_ok(None, Some("h:1"), &[], false));
        assert!(origin_ok(Some("http://h:1"), Some("h:1"), &[], false));
        assert!(!origin_ok(Some("http://evil"), Some("h:1"), &[], false));
        assert!(origin_ok(
            Some("https://console"),
            Some("h:1"),
            &["https://console".into()],
            false
        ));
    }

    /// Hazard: an `http://` page on the same host and port was accepted as the origin of an
    /// HTTPS console (the scheme was not compared).
    #[test]
    fn the_origin_scheme_must_match_the_server() {
        assert!(!origin_ok(Some("http://h:1"), Some("h:1"), &[], true));
        assert!(origin_ok(Some("https://h:1"), Some("h:1"), &[], true));
        assert!(!origin_ok(Some("https://h:1"), Some("h:1"), &[], false));
    }

    /// Hazard: DNS rebinding: a page of evil.example, re-resolved to 127.0.0.1, reaches a
    /// console on loopback under its own name and reads it with the victim's cookies.
    #[test]
    fn only_names_of_this_server_are_accepted_as_host() {
        let none: &[String] = &[];
        assert!(host_ok(Some("127.0.0.1:8080"), none, none));
        assert!(host_ok(Some("[::1]:8080"), none, none));
        assert!(host_ok(Some("10.1.2.3"), none, none));
        assert!(host_ok(Some("localhost:8080"), none, none));
        assert!(host_ok(None, none, none));
        assert!(!host_ok(Some("evil.example:8080"), none, none));
        assert!(!host_ok(Some("evil.example"), none, none));
        let hosts = ["dcim.example.org".to_string()];
        assert!(host_ok(Some("DCIM.example.org:443"), &hosts, none));
        let origins = ["https://console.example.org:8443".to_string()];
        assert!(host_ok(Some("console.example.org:8443"), none, &origins));
        assert!(!host_ok(Some("other.example.org"), &hosts, &origins));
    }
}
