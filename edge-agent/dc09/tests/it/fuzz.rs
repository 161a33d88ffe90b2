//! Arbitrary bytes into every decoder: errors are fine, panics are not.

use proptest::prelude::*;
use sia_dc09::*;

fn key() -> Key {
    Key::from_ascii("AAAAAAAAAAAAAAAA").unwrap()
}

/// Valid frames with some bytes flipped reach deeper into the parsers than random bytes.
fn mutated_frame() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<bool>(),
        1u16..=9999,
        0usize..80,
        any::<u8>(),
        proptest::collection::vec(any::<u8>(), 0..40),
    )
        .prop_map(|(enc, seq, pos, byte, data)| {
            let h = Header {
                receiver: Some(1),
                line: 1,
                account: Account::new("1234").unwrap(),
            };
            let d: String = data.iter().map(|b| (b'0' + b % 10) as char).collect();
            let k = key();
            let m = Message {
                token: Token::SiaDcs,
                seq: Seq::new(seq).unwrap(),
                header: &h,
                data: &d,
                timestamp_ms: 0,
            };
            let mut f = encode_message(&m, enc.then_some(&k), &[1; 16]).unwrap();
            let i = pos % f.len();
            f[i] = byte;
            f
        })
}

proptest! {
    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let k = key();
        let _ = decode_message(&bytes, None);
        let _ = decode_message(&bytes, Some(&k));
        let _ = parse_response(&bytes, None);
        let _ = parse_response(&bytes, Some(&k));
        let _ = timestamp::parse(&String::from_utf8_lossy(&bytes));
        let _ = CodeTable::from_toml(&String::from_utf8_lossy(&bytes), "fuzz");
    }

    #[test]
    fn framed_garbage_never_panics(body in "[ -~]{0,200}") {
        let mut f = format!("\n{:04X}{:04X}", crc16(body.as_bytes()), body.len()).into_bytes();
        f.extend_from_slice(body.as_bytes());
        f.push(b'\r');
        let k = key();
        let _ = decode_message(&f, Some(&k));
        let _ = parse_response(&f, Some(&k));
    }

    #[test]
    fn mutated_frames_never_panic(f in mutated_frame()) {
        let k = key();
        let _ = decode_message(&f, Some(&k));
        let _ = decode_message(&f, None);
        let _ = parse_response(&f, Some(&k));
    }
}

#[test]
fn multibyte_in_header_fields() {
    for s in ["\n12é45678\"NULL\"\r", "\n1234567é\r", "\n1234567\u{e9}\r"] {
        let _ = decode_message(s.as_bytes(), None);
        let _ = parse_response(s.as_bytes(), None);
    }
}
