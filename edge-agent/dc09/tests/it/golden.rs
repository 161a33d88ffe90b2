//! Golden vectors. The frames follow from the DC-09 rules (CRC-16/ARC over the body, hex
//! length, decimal sequence, `_HH:MM:SS,MM-DD-YYYY` UTC) and were cross-checked with
//! pysiaalarm 3.2.2's parser (CRC, length, fields, code and, for the encrypted one, decryption
//! with the ASCII key "AAAAAAAAAAAAAAAA"). The replies were produced by pysiaalarm itself.
//! `tests/interop/dc09/parse_frames.py` repeats the cross-check at test time.

use sia_dc09::*;

const T: i64 = 1_700_000_000_000; // 2023-11-14T22:13:20Z

fn header() -> Header {
    Header {
        receiver: Some(1),
        line: 1,
        account: Account::new("1234").unwrap(),
    }
}

fn frame(ev: Event, format: Format, seq: u16, key: Option<&Key>) -> String {
    let mut table = CodeTable::default();
    table.format = format;
    let h = header();
    let p = table.payload(&h.account, &ev).unwrap();
    let m = Message {
        token: p.token,
        seq: Seq::new(seq).unwrap(),
        header: &h,
        data: &p.data,
        timestamp_ms: T,
    };
    String::from_utf8(encode_message(&m, key, &[0x42; 16]).unwrap()).unwrap()
}

#[test]
fn sia_dcs_heat_alarm_and_restore() {
    let ev = Event::new(EventKind::FireStage1, 1, 101);
    assert_eq!(
        frame(ev, Format::SiaDcs, 1, None),
        "\nB9D1003D\"SIA-DCS\"0001R1L1#1234[#1234|Nri1/KA0101]_22:13:20,11-14-2023\r"
    );
    assert_eq!(
        frame(ev.restored(), Format::SiaDcs, 2, None),
        "\n4E94003D\"SIA-DCS\"0002R1L1#1234[#1234|Nri1/KH0101]_22:13:20,11-14-2023\r"
    );
}

#[test]
fn adm_cid_smoke_at_sequence_9999() {
    assert_eq!(
        frame(
            Event::new(EventKind::FireSmoke, 2, 7),
            Format::AdmCid,
            9999,
            None
        ),
        "\n4241003D\"ADM-CID\"9999R1L1#1234[#1234|1111 02 007]_22:13:20,11-14-2023\r"
    );
}

#[test]
fn periodic_test() {
    assert_eq!(
        frame(
            Event::new(EventKind::PeriodicTest, 0, 0),
            Format::SiaDcs,
            42,
            None
        ),
        "\n5BCD003D\"SIA-DCS\"0042R1L1#1234[#1234|Nri0/RP0000]_22:13:20,11-14-2023\r"
    );
}

#[test]
fn encrypted_agent_release_aes128() {
    let key = Key::from_ascii("AAAAAAAAAAAAAAAA").unwrap();
    let f = frame(
        Event::new(EventKind::FireStage3Agent, 1, 101),
        Format::SiaDcs,
        3,
        Some(&key),
    );
    assert_eq!(
        f,
        "\n0CD90078\"*SIA-DCS\"0003R1L1#1234[31BDFBFA2F4BE848B0381370E6615DE7F24FFEF118DC1047FFF6E72\
         1729F5858A8781197D009529638687D72F00D15D9\r"
    );
    let d = decode_message(f.as_bytes(), Some(&key)).unwrap();
    assert_eq!(d.data, "#1234|Nri1/SA0101");
    // same key given as hex
    let hex = Key::from_hex("41414141414141414141414141414141").unwrap();
    assert_eq!(decode_message(f.as_bytes(), Some(&hex)).unwrap(), d);
}

#[test]
fn pysiaalarm_replies() {
    let key = Key::from_ascii("AAAAAAAAAAAAAAAA").unwrap();
    let ack = b"\n66AE0054\"*ACK\"0003R1L1#1234[FE538606881BFA2799A9A7FCD416DF8E5C75EC866EDBE89E2AC5CDEBD9AF0576\r";
    let r = parse_response(ack, Some(&key)).unwrap();
    assert_eq!(r.kind, ResponseKind::Ack);
    assert!(r.encrypted);
    assert_eq!(r.seq, 3);
    assert_eq!(r.account.as_deref(), Some("1234"));
    assert_eq!(r.timestamp_ms, Some(T + 5000));

    let r = parse_response(b"\nD2770014\"ACK\"0001R1L1#1234[]\r", None).unwrap();
    assert_eq!(
        (r.kind, r.seq, r.timestamp_ms),
        (ResponseKind::Ack, 1, None)
    );

    let r = parse_response(b"\n909E0025\"NAK\"0000R1L1A0[]_22:13:25,11-14-2023\r", None).unwrap();
    assert_eq!(
        (r.kind, r.seq, r.timestamp_ms),
        (ResponseKind::Nak, 0, Some(T + 5000))
    );

    // pysiaalarm echoes a message without receiver number with "None" in its place
    let r = parse_response(b"\nAE140016\"ACK\"0001NoneL1#1234[]\r", None).unwrap();
    assert_eq!(
        (r.kind, r.seq, r.account.as_deref()),
        (ResponseKind::Ack, 1, Some("1234"))
    );

    // pysiaalarm answers a frame with a bad CRC with an empty "\n\r"
    assert!(parse_response(b"\n\r", None).is_err());
}
