//! Runs a DC-09 transmitter from a configuration file and an outbox directory, submitting the
//! events it reads on stdin, one per line:
//!
//! ```text
//! <event-id> <kind> [zone] [rack] [restore] [test]
//! ```
//!
//! e.g. `e1 fire.stage3_agent 1 101`. For each line it prints `QUEUED <seq> <event-id>` (or
//! `DUPLICATE <seq> <event-id>`) once the message is on disk, and `DELIVERED <seq> <event-id>
//! <path>` / `REJECTED ...` as the receiver answers. It keeps running (supervision, periodic
//! test, resends) after stdin closes, until killed.
//!
//! Usage: `dc09-send --config link.toml --outbox DIR`

use dc09_link::{LinkConfig, LinkEvent, Submission, Transmitter};
use sia_dc09::{Event, EventKind};
use std::path::PathBuf;
use tokio::io::{AsyncBufReadExt, BufReader};

fn usage() -> ! {
    eprintln!("usage: dc09-send --config FILE --outbox DIR");
    std::process::exit(2)
}

fn parse_line(line: &str) -> Result<Submission, String> {
    let mut it = line.split_whitespace();
    let event_id = it.next().ok_or("missing event id")?.to_string();
    let kind_name = it.next().ok_or("missing kind")?;
    let kind =
        EventKind::from_name(kind_name).ok_or_else(|| format!("unknown kind {kind_name:?}"))?;
    let mut nums = Vec::new();
    let mut event = Event::new(kind, 0, 0);
    for w in it {
        match w {
            "restore" => event.restore = true,
            "test" => event.test = true,
            n => nums.push(n.parse::<u16>().map_err(|_| format!("bad number {n:?}"))?),
        }
    }
    event.zone = nums.first().copied().unwrap_or(0);
    event.rack = nums.get(1).copied().unwrap_or(0);
    Ok(Submission { event_id, event })
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (mut config, mut outbox) = (None, None);
    let mut i = 1;
    while i < args.len() {
        match (args[i].as_str(), args.get(i + 1)) {
            ("--config", Some(v)) => config = Some(PathBuf::from(v)),
            ("--outbox", Some(v)) => outbox = Some(PathBuf::from(v)),
            _ => usage(),
        }
        i += 2;
    }
    let (Some(config), Some(outbox)) = (config, outbox) else {
        usage()
    };
    let cfg = match LinkConfig::from_file(&config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2)
        }
    };
    let handle = match Transmitter::start(cfg, &outbox).await {
        Ok(h) => h,
        Err(e) => {
            eprintln!("cannot start: {e}");
            std::process::exit(1)
        }
    };
    let mut events = handle.subscribe();
    tokio::spawn(async move {
        while let Ok(e) = events.recv().await {
            match e {
                LinkEvent::Delivered {
                    seq,
                    event_id,
                    path,
                    ..
                } => println!("DELIVERED {seq} {event_id} {path}"),
                LinkEvent::Rejected {
                    seq,
                    event_id,
                    path,
                    ..
                } => println!("REJECTED {seq} {event_id} {path}"),
                LinkEvent::PathDown { path, reason } => println!("PATH-DOWN {path} {reason}"),
                LinkEvent::PathUp { path } => println!("PATH-UP {path}"),
                LinkEvent::Nak { path, offset_ms } => println!("NAK {path} {offset_ms}"),
                LinkEvent::SupervisionAcked { .. } => {}
            }
        }
    });
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(&line) {
            Ok(sub) => {
                let id = sub.event_id.clone();
                match handle.submit(sub).await {
                    Ok(q) if q.duplicate => println!("DUPLICATE {} {id}", q.seq),
                    Ok(q) => println!("QUEUED {} {id}", q.seq),
                    Err(e) => println!("ERROR {id} {e}"),
                }
            }
            Err(e) => println!("ERROR {e}"),
        }
    }
    std::future::pending::<()>().await;
}
