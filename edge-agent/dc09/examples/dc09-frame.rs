//! Prints the DC-09 frame for one event, for checking against other implementations:
//! `cargo run -p sia-dc09 --example dc09-frame -- KIND ZONE RACK SEQ UNIX_MS [restore] [test] [cid] [key=ASCII]`
use sia_dc09::*;

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let kind = EventKind::from_name(&a[0]).expect("kind");
    let mut ev = Event::new(kind, a[1].parse().unwrap(), a[2].parse().unwrap());
    let mut table = CodeTable::default();
    let mut key = None;
    for f in &a[5..] {
        match f.as_str() {
            "restore" => ev.restore = true,
            "test" => ev.test = true,
            "cid" => table.format = Format::AdmCid,
            k if k.starts_with("key=") => key = Some(Key::from_ascii(&k[4..]).unwrap()),
            _ => panic!("unknown flag {f}"),
        }
    }
    let account = Account::new("1234").unwrap();
    let header = Header {
        receiver: Some(1),
        line: 1,
        account: account.clone(),
    };
    let p = table.payload(&account, &ev).unwrap();
    let m = Message {
        token: p.token,
        seq: Seq::new(a[3].parse().unwrap()).unwrap(),
        header: &header,
        data: &p.data,
        timestamp_ms: a[4].parse().unwrap(),
    };
    let f = encode_message(&m, key.as_ref(), &[0x42; 16]).unwrap();
    println!("{}", String::from_utf8(f).unwrap().escape_debug());
}
