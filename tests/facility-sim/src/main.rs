//! Simulated facility hardware served over the real protocols.

const USAGE: &str = "facility-sim {version}\nSimulated facility hardware served over the real protocols.\n\nUSAGE:\n    facility-sim [--help] [--version]\n\nNot yet functional: this binary only reports its version.\n";

fn main() {
    let usage = USAGE.replace("{version}", env!("CARGO_PKG_VERSION"));
    match std::env::args().nth(1).as_deref() {
        Some("--version") | Some("-V") => println!("facility-sim {}", env!("CARGO_PKG_VERSION")),
        Some("--help") | Some("-h") | None => print!("{usage}"),
        Some(other) => {
            eprintln!("facility-sim: unknown argument `{other}`\n\n{usage}");
            std::process::exit(2);
        }
    }
}
