//! Edge agent daemon: polls facility hardware and forwards it to the center.

const USAGE: &str = "dcim-edge-agent {version}\nEdge agent daemon: polls facility hardware and forwards it to the center.\n\nUSAGE:\n    dcim-edge-agent [--help] [--version]\n\nNot yet functional: this binary only reports its version.\n";

fn main() {
    let usage = USAGE.replace("{version}", env!("CARGO_PKG_VERSION"));
    match std::env::args().nth(1).as_deref() {
        Some("--version") | Some("-V") => println!("dcim-edge-agent {}", env!("CARGO_PKG_VERSION")),
        Some("--help") | Some("-h") | None => print!("{usage}"),
        Some(other) => {
            eprintln!("dcim-edge-agent: unknown argument `{other}`\n\n{usage}");
            std::process::exit(2);
        }
    }
}
