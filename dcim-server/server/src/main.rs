//! Central DCIM server.

const USAGE: &str = "dcim-server {version}\nCentral DCIM server.\n\nUSAGE:\n    dcim-server [--help] [--version]\n\nNot yet functional: this binary only reports its version.\n";

fn main() {
    let usage = USAGE.replace("{version}", env!("CARGO_PKG_VERSION"));
    match std::env::args().nth(1).as_deref() {
        Some("--version") | Some("-V") => println!("dcim-server {}", env!("CARGO_PKG_VERSION")),
        Some("--help") | Some("-h") | None => print!("{usage}"),
        Some(other) => {
            eprintln!("dcim-server: unknown argument `{other}`\n\n{usage}");
            std::process::exit(2);
        }
    }
}
