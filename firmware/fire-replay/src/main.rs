//! Replays a fire-logic trace and prints every transition as JSON lines.

const USAGE: &str = "fire-replay {version}\nReplays a fire-logic trace and prints every transition as JSON lines.\n\nUSAGE:\n    fire-replay [--help] [--version]\n\nNot yet functional: this binary only reports its version.\n";

fn main() {
    let usage = USAGE.replace("{version}", env!("CARGO_PKG_VERSION"));
    match std::env::args().nth(1).as_deref() {
        Some("--version") | Some("-V") => println!("fire-replay {}", env!("CARGO_PKG_VERSION")),
        Some("--help") | Some("-h") | None => print!("{usage}"),
        Some(other) => {
            eprintln!("fire-replay: unknown argument `{other}`\n\n{usage}");
            std::process::exit(2);
        }
    }
}
