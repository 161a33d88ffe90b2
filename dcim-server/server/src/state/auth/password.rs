//! Password rules and the browser's device cookie (pure).
//!
//! A password is measured in characters (Unicode scalar values), not bytes: at least
//! [`MIN_CHARS`] (so six "é" are six, not twelve), at most [`MAX_CHARS`] (a longer one is
//! refused before it is hashed), no control characters (NUL, line breaks...), and not only
//! whitespace.

use hmac::{KeyInit, Mac};

pub const MIN_CHARS: usize = 12;
pub const MAX_CHARS: usize = 256;
/// Longest password in bytes (256 four-byte characters).
pub const MAX_BYTES: usize = 4 * MAX_CHARS;

/// Why a new password is refused (the message is shown to the user).
pub fn check_new(password: &str) -> Result<(), String> {
    let chars = password.chars().count();
    if chars < MIN_CHARS {
        return Err(format!(
            "at least {MIN_CHARS} characters (this one has {chars})"
        ));
    }
    if chars > MAX_CHARS || password.len() > MAX_BYTES {
        return Err(format!("at most {MAX_CHARS} characters"));
    }
    if password.chars().any(char::is_control) {
        return Err("no control characters (line breaks, tabs, NUL...)".into());
    }
    if password.chars().all(char::is_whitespace) {
        return Err("not only spaces".into());
    }
    Ok(())
}

/// Whether a password offered at sign-in could be valid at all (checked before any hashing:
/// a 1 MB password is never hashed).
pub fn plausible(password: &str) -> bool {
    !password.is_empty() && password.len() <= MAX_BYTES
}

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

fn mac(key: &[u8], nonce: &str, user: &str) -> String {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any size");
    m.update(b"dcim-device-cookie\0");
    m.update(nonce.as_bytes());
    m.update(b"\0");
    m.update(user.as_bytes());
    hex::encode(m.finalize().into_bytes())
}

/// A device cookie value for `user`: `{nonce}:{mac}:{user}` (user names contain no `:`).
pub fn device_cookie(key: &[u8], nonce: &str, user: &str) -> String {
    format!("{nonce}:{}:{user}", mac(key, nonce, user))
}

/// The device id (nonce) of a cookie value issued by this server for `user`.
pub fn device_of<'a>(key: &[u8], value: &'a str, user: &str) -> Option<&'a str> {
    let mut it = value.splitn(3, ':');
    let (nonce, sent, for_user) = (it.next()?, it.next()?, it.next()?);
    (for_user == user
        && nonce.len() == 32
        && crate::state::auth::same_secret(sent, &mac(key, nonce, user)))
    .then_some(nonce)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hazard: the minimum was 12 bytes: six "é", twelve spaces or twelve NULs passed, and a
    /// 1 MB password was hashed.
    #[test]
    fn passwords_are_measured_in_characters() {
        assert!(check_new(&"é".repeat(6)).is_err());
        assert!(check_new(&"é".repeat(12)).is_ok());
        assert!(check_new(&" ".repeat(12)).is_err());
        assert!(check_new(&"\0".repeat(12)).is_err());
        assert!(check_new("correct horse\tbattery").is_err());
        assert!(check_new("correct horse battery").is_ok());
        assert!(check_new(&"x".repeat(MAX_CHARS + 1)).is_err());
        assert!(check_new(&"x".repeat(MAX_CHARS)).is_ok());
        assert!(!plausible(&"x".repeat(1 << 20)));
        assert!(!plausible(""));
    }

    #[test]
    fn device_cookies_are_bound_to_the_key_and_the_user() {
        let key = [7u8; 32];
        let nonce = "0123456789abcdef0123456789abcdef";
        let c = device_cookie(&key, nonce, "ops.1");
        assert_eq!(device_of(&key, &c, "ops.1"), Some(nonce));
        assert_eq!(device_of(&key, &c, "admin"), None);
        assert_eq!(device_of(&[8u8; 32], &c, "ops.1"), None);
        let forged = c.replacen('0', "1", 1);
        assert_eq!(device_of(&key, &forged, "ops.1"), None);
        assert_eq!(device_of(&key, "garbage", "ops.1"), None);
    }
}
