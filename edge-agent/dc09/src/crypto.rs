//! AES-CBC as DC-09 uses it: zero IV, no padding of its own (the message carries random pad
//! characters so that the plaintext is a whole number of 16-byte blocks).

use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use std::fmt;

/// An AES key of 16, 24 or 32 bytes (AES-128/192/256).
#[derive(Clone, PartialEq, Eq)]
pub struct Key(Vec<u8>);

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key(AES-{}, redacted)", self.0.len() * 8)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("key must be 16, 24 or 32 bytes (AES-128/192/256), got {0} bytes")]
    Length(usize),
    #[error("hex key must be 32, 48 or 64 hex digits, got {0} characters")]
    HexLength(usize),
    #[error("hex key contains a character that is not a hex digit at position {0}")]
    HexDigit(usize),
    #[error("text key must be printable ASCII; character at position {0} is not")]
    NotAscii(usize),
}

impl Key {
    /// A key from raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Key, KeyError> {
        match bytes.len() {
            16 | 24 | 32 => Ok(Key(bytes.to_vec())),
            n => Err(KeyError::Length(n)),
        }
    }

    /// A binary key written as hex digits (32, 48 or 64 of them), the encoding most receivers
    /// and the standard's examples use.
    pub fn from_hex(s: &str) -> Result<Key, KeyError> {
        let s = s.trim();
        if !matches!(s.len(), 32 | 48 | 64) {
            return Err(KeyError::HexLength(s.len()));
        }
        let bytes = hex_decode(s).map_err(KeyError::HexDigit)?;
        Key::from_bytes(&bytes)
    }

    /// A key whose bytes are the ASCII characters of a 16/24/32-character string. This is how
    /// pysiaalarm (and panels configured with a "password") use the key.
    pub fn from_ascii(s: &str) -> Result<Key, KeyError> {
        if let Some(i) = s.bytes().position(|c| !(0x20..0x7f).contains(&c)) {
            return Err(KeyError::NotAscii(i));
        }
        Key::from_bytes(s.as_bytes())
    }

    pub fn bits(&self) -> usize {
        self.0.len() * 8
    }

    /// Encrypts `buf` in place; `buf.len()` must be a multiple of 16.
    pub fn encrypt_in_place(&self, buf: &mut [u8]) {
        assert!(buf.len().is_multiple_of(16), "plaintext not block aligned");
        let iv = [0u8; 16];
        macro_rules! run {
            ($c:ty) => {{
                let mut enc = cbc::Encryptor::<$c>::new_from_slices(&self.0, &iv)
                    .expect("key length checked at construction");
                for chunk in buf.chunks_exact_mut(16) {
                    let block: &mut aes::Block = chunk.try_into().expect("16-byte chunk");
                    enc.encrypt_block(block);
                }
            }};
        }
        match self.0.len() {
            16 => run!(aes::Aes128),
            24 => run!(aes::Aes192),
            _ => run!(aes::Aes256),
        }
    }

    /// Decrypts `buf` in place; returns `false` (and leaves `buf` alone) when the length is not
    /// a multiple of 16.
    pub fn decrypt_in_place(&self, buf: &mut [u8]) -> bool {
        if !buf.len().is_multiple_of(16) {
            return false;
        }
        let iv = [0u8; 16];
        macro_rules! run {
            ($c:ty) => {{
                let mut dec = cbc::Decryptor::<$c>::new_from_slices(&self.0, &iv)
                    .expect("key length checked at construction");
                for chunk in buf.chunks_exact_mut(16) {
                    let block: &mut aes::Block = chunk.try_into().expect("16-byte chunk");
                    dec.decrypt_block(block);
                }
            }};
        }
        match self.0.len() {
            16 => run!(aes::Aes128),
            24 => run!(aes::Aes192),
            _ => run!(aes::Aes256),
        }
        true
    }
}

/// Uppercase hex.
pub(crate) fn hex_encode(bytes: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(D[(b >> 4) as usize] as char);
        s.push(D[(b & 15) as usize] as char);
    }
    s
}

/// Decodes hex (either case); on error returns the offending character position.
pub(crate) fn hex_decode(s: &str) -> Result<Vec<u8>, usize> {
    let b = s.as_bytes();
    let val = |i: usize| -> Result<u8, usize> {
        match b[i] {
            c @ b'0'..=b'9' => Ok(c - b'0'),
            c @ b'a'..=b'f' => Ok(c - b'a' + 10),
            c @ b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err(i),
        }
    };
    if !b.len().is_multiple_of(2) {
        return Err(b.len());
    }
    (0..b.len() / 2)
        .map(|i| Ok((val(2 * i)? << 4) | val(2 * i + 1)?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fips197_aes128_cbc_zero_iv_single_block() {
        // FIPS-197 appendix C.1: with a zero IV, one CBC block equals one ECB block.
        let key = Key::from_hex("000102030405060708090a0b0c0d0e0f").unwrap();
        let mut buf = hex_decode("00112233445566778899aabbccddeeff").unwrap();
        key.encrypt_in_place(&mut buf);
        assert_eq!(hex_encode(&buf), "69C4E0D86A7B0430D8CDB78070B4C55A");
        assert!(key.decrypt_in_place(&mut buf));
        assert_eq!(hex_encode(&buf), "00112233445566778899AABBCCDDEEFF");
    }

    #[test]
    fn fips197_aes192_and_256() {
        let k192 = Key::from_hex("000102030405060708090a0b0c0d0e0f1011121314151617").unwrap();
        let mut buf = hex_decode("00112233445566778899aabbccddeeff").unwrap();
        k192.encrypt_in_place(&mut buf);
        assert_eq!(hex_encode(&buf), "DDA97CA4864CDFE06EAF70A0EC0D7191");
        let k256 =
            Key::from_hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
                .unwrap();
        let mut buf = hex_decode("00112233445566778899aabbccddeeff").unwrap();
        k256.encrypt_in_place(&mut buf);
        assert_eq!(hex_encode(&buf), "8EA2B7CA516745BFEAFC49904B496089");
    }

    #[test]
    fn key_encodings() {
        assert_eq!(
            Key::from_ascii("0123456789ABCDEF").unwrap(),
            Key::from_hex("30313233343536373839414243444546").unwrap()
        );
        assert_eq!(Key::from_hex("00"), Err(KeyError::HexLength(2)));
        assert_eq!(
            Key::from_hex("0g0102030405060708090a0b0c0d0e0f"),
            Err(KeyError::HexDigit(1))
        );
        assert_eq!(Key::from_ascii("short"), Err(KeyError::Length(5)));
        assert_eq!(
            Key::from_ascii("0123456789ABCDE\u{e9}").unwrap_err(),
            KeyError::NotAscii(15)
        );
        assert_eq!(
            Key::from_ascii("0123456789ABCDEF01234567").unwrap().bits(),
            192
        );
    }
}
