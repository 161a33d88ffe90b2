//! Runs a DC-09 transmitter from a configuration file and an outbox directory and submits the
//! events it reads on standard input. The input and output lines are documented in [`HELP`]
//! (`dc09-send --help` prints it); tests and scripts rely on them, so keep them stable.

use dc09_link::{LinkConfig, LinkEvent, Submission, Transmitter};
use sia_dc09::{Event, EventKind};
use std::path::PathBuf;
use tokio::io::{AsyncBufReadExt, BufReader};

/// What `--help` prints: the command line, the input lines and every output line.
pub const HELP: &str = "\
dc09-send: send fire-authority events over SIA DC-09 from the command line

USAGE
    dc09-send --config LINK.toml --outbox DIR
    dc09-send --help

    --config  a dc09-link configuration (account, key, paths, code table; see
              edge-agent/dc09-link/config/link.example.toml)
    --outbox  directory of the persistent outbox; undelivered messages in it are sent again
              at start with their original sequence numbers

INPUT (standard input, one event per line; empty lines are ignored)
    <event-id> <kind> [zone] [rack] [restore] [test]

    event-id  your id of the event (1-200 characters, no spaces); an id already queued is
              not queued again (DUPLICATE), so a line can be resent safely
    kind      fire.prealarm fire.stage1 fire.stage2_patch fire.stage3_agent
              fire.stage4_coolant fire.stage5_gas fire.gas_released fire.smoke fire.trouble
              fire.trouble.sensor fire.supervisory.offgas drain_tank.high fire.manual_only
              battery.isolated fire.authority path.fail test.periodic test.drill
    zone      fire zone / room number (default 0); rack: rack or point number (default 0)
    restore   send the restore (return to normal) of the kind
    test      drill: sent with the authority's test code, never as a real alarm

    example:  e1 fire.stage3_agent 1 101

OUTPUT (standard output, one line per fact, fields separated by single spaces)
    QUEUED <seq> <event-id>            the message is fsynced in the outbox
    DUPLICATE <seq> <event-id>         the id was queued before; nothing new was queued
    ERROR <event-id> <reason>          the event cannot be queued (e.g. zone out of range)
    ERROR <reason>                     the input line cannot be read
    DELIVERED <seq> <event-id> <path>  the receiver ACKed the message on that path
    DELIVERED-FALLBACK <seq> <event-id> <path> <code>
                                       ACKed with the generic fire alarm code <code>
    FALLBACK <seq> <event-id> <path> <refused> <code>
                                       the receiver answered DUH to fire alarm <event-id>'s
                                       code <refused>; it goes out again as <seq> with the
                                       generic fire alarm code <code> (never dropped)
    REJECTED <seq> <event-id> <path>   DUH to a message without a fallback (or to the
                                       generic code itself): a local trouble, not retried
    NAK <path> <offset-ms>             the receiver refused our clock; resent with its time
    PATH-DOWN <path> <reason>          every attempt on the path failed
    PATH-UP <path>                     a failed path answers again

<seq> is the DC-09 sequence number (0001-9999). The tool keeps running after standard input
closes (resends, supervision, periodic test report) until it is killed.

EXIT STATUS
    2  bad command line or configuration; 1  the outbox cannot be opened
";

fn usage() -> ! {
    eprintln!(
        "usage: dc09-send --config FILE --outbox DIR   (dc09-send --help for the input and output lines)"
    );
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
    let Some((config, outbox)) = parse_args() else {
        return;
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
            print_event(e);
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

/// `--config FILE --outbox DIR` (both required); None after `--help` printed the help.
fn parse_args() -> Option<(PathBuf, PathBuf)> {
    let args: Vec<String> = std::env::args().collect();
    let (mut config, mut outbox) = (None, None);
    if args.iter().skip(1).any(|a| a == "--help" || a == "-h") {
        print!("{HELP}");
        return None;
    }
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
    Some((config, outbox))
}

/// One line on stdout per link event (the protocol the callers read).
fn print_event(e: LinkEvent) {
    match e {
        LinkEvent::Delivered {
            seq,
            event_id,
            path,
            fallback: None,
            ..
        } => println!("DELIVERED {seq} {event_id} {path}"),
        LinkEvent::Delivered {
            seq,
            event_id,
            path,
            fallback: Some(f),
            ..
        } => println!("DELIVERED-FALLBACK {seq} {event_id} {path} {}", f.code),
        LinkEvent::FallingBack {
            seq,
            event_id,
            path,
            fallback,
            ..
        } => println!(
            "FALLBACK {seq} {event_id} {path} {} {}",
            fallback.refused, fallback.code
        ),
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
