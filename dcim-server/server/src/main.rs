//! `dcim-server` command line.

use anyhow::Context;
use dcim_server::config::{Config, Role};
use dcim_server::store::UserRecord;
use std::path::PathBuf;

const USAGE: &str = "dcim-server {version}
Central DCIM server: MQTT ingest (embedded broker by default), storage, REST/SSE API.

USAGE:
    dcim-server [--config FILE]                 run the server (defaults: embedded broker on
                                                127.0.0.1:1883, HTTP on 127.0.0.1:8080,
                                                data in ./dcim-data)
    dcim-server mosquitto-acl [--config FILE]   print a mosquitto ACL file for the configured agents
    dcim-server user add --name NAME --role ROLE [--config FILE]
                                                create a user; the password is read from the
                                                environment variable DCIM_NEW_PASSWORD or stdin
    dcim-server user token --name NAME --label LABEL [--config FILE]
                                                create an API bearer token (printed once)
    dcim-server demo [--http ADDR] [--broker ADDR] [--data DIR]
                                                run the demo facility in one process: server,
                                                embedded broker, facility simulator, edge agent
                                                (defaults 127.0.0.1:8080, 127.0.0.1:1883, ./.data/demo)
                                                --dc09 LINK.toml: site-level events of the demo's
                                                battery rooms to a DC-09 receiver
    dcim-server drill SCENARIO.toml [--dc09 LINK.toml] [--http ADDR] [--broker ADDR] [--data DIR]
                                                run a scripted drill on the demo facility (format in
                                                tests/drills/README.md); writes the report to
                                                DIR/drills/<id>.md and .json, then stops
    dcim-server --help | --version

ROLES: viewer, operator, admin, fire_authority (read-only)
ENV:   DCIM_CONFIG (config file when --config is absent), DCIM_ADMIN_PASSWORD (bootstrap admin),
       RUST_LOG (log filter, default info)
TLS:   [http.tls] (HTTPS, HSTS, Secure cookies) and [broker.tls] (MQTT over TLS at the broker
       gate), each with cert_file, key_file and an optional client_ca_file, in the config file
";

struct Args {
    config: Option<PathBuf>,
    words: Vec<String>,
    opts: Vec<(String, String)>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        config: std::env::var_os("DCIM_CONFIG").map(PathBuf::from),
        words: Vec::new(),
        opts: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--config" | "-c" => {
                args.config = Some(it.next().ok_or("--config needs a file")?.into())
            }
            "--name" | "--role" | "--label" | "--http" | "--broker" | "--data" | "--dc09" => {
                let v = it.next().ok_or(format!("{a} needs a value"))?;
                args.opts.push((a.trim_start_matches('-').to_string(), v));
            }
            "--help" | "-h" | "--version" | "-V" => args.words.insert(0, a),
            s if s.starts_with('-') => return Err(format!("unknown option `{s}`")),
            _ => args.words.push(a),
        }
    }
    Ok(args)
}

fn opt<'a>(args: &'a Args, name: &str) -> anyhow::Result<&'a str> {
    args.opts
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .with_context(|| format!("--{name} is required"))
}

fn load_config(args: &Args) -> anyhow::Result<Config> {
    match &args.config {
        Some(p) => Ok(Config::load(p)?),
        None => Ok(Config::default()),
    }
}

fn read_password() -> anyhow::Result<String> {
    if let Ok(p) = std::env::var("DCIM_NEW_PASSWORD") {
        return Ok(p);
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

async fn user_command(args: &Args) -> anyhow::Result<()> {
    let config = load_config(args)?;
    let store = dcim_server::store::open(&config).await?;
    let name = opt(args, "name")?;
    match args.words.get(1).map(String::as_str) {
        Some("add") => {
            let role_s = opt(args, "role")?;
            let role = Role::parse(role_s).with_context(|| {
                format!("--role `{role_s}`: expected viewer, operator, admin or fire_authority")
            })?;
            let pw = read_password()?;
            anyhow::ensure!(
                pw.len() >= 12,
                "the password must have at least 12 characters"
            );
            let hash = dcim_server::auth::hash_password(
                &pw,
                config.auth.argon2_memory_kib,
                config.auth.argon2_iterations,
            )
            .map_err(|e| anyhow::anyhow!(e))?;
            let created = store
                .create_user(&UserRecord {
                    name: name.to_string(),
                    role: role.as_str().into(),
                    password_hash: hash,
                    created_ms: dcim_server::now_ms(),
                    disabled: false,
                })
                .await?;
            anyhow::ensure!(created, "user `{name}` already exists");
            store
                .audit(
                    dcim_server::now_ms(),
                    "cli",
                    "user.create",
                    name,
                    &serde_json::json!({"role": role}),
                )
                .await?;
            println!("created user {name} ({})", role.as_str());
        }
        Some("token") => {
            let label = opt(args, "label")?;
            anyhow::ensure!(store.get_user(name).await?.is_some(), "no user `{name}`");
            let token = dcim_server::auth::new_token("dcim_");
            store
                .create_token(
                    &dcim_server::auth::token_hash(&token),
                    name,
                    label,
                    dcim_server::now_ms(),
                )
                .await?;
            store
                .audit(
                    dcim_server::now_ms(),
                    "cli",
                    "token.create",
                    name,
                    &serde_json::json!({"name": label}),
                )
                .await?;
            println!("{token}");
        }
        other => {
            anyhow::bail!("unknown user command {other:?}: expected `user add` or `user token`")
        }
    }
    store.close().await;
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

async fn real_main(args: Args) -> anyhow::Result<()> {
    match args.words.first().map(String::as_str) {
        None => {
            let config = load_config(&args)?;
            dcim_server::run(config, shutdown_signal()).await
        }
        Some("mosquitto-acl") => {
            let config = load_config(&args)?;
            print!(
                "{}",
                dcim_server::mosquitto::acl_file(
                    &config,
                    &config
                        .broker
                        .username
                        .clone()
                        .unwrap_or(config.broker.client_id.clone())
                )
            );
            Ok(())
        }
        Some("user") => user_command(&args).await,
        Some("demo") => dcim_server::demo::run_cli(&args.opts, shutdown_signal()).await,
        Some("drill") => {
            let scenario = args
                .words
                .get(1)
                .context("`drill` needs a scenario file: dcim-server drill SCENARIO.toml")?;
            dcim_server::drill::run_cli(std::path::Path::new(scenario), &args.opts).await
        }
        Some(other) => anyhow::bail!("unknown command `{other}`"),
    }
}

fn main() {
    let usage = USAGE.replace("{version}", env!("CARGO_PKG_VERSION"));
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("dcim-server: {e}\n\n{usage}");
            std::process::exit(2);
        }
    };
    match args.words.first().map(String::as_str) {
        Some("--help") | Some("-h") => {
            print!("{usage}");
            return;
        }
        Some("--version") | Some("-V") => {
            println!("dcim-server {}", env!("CARGO_PKG_VERSION"));
            return;
        }
        _ => {}
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("info,rumqttd=warn,rumqttd::server::broker=off")
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Runtime::new().expect("starting the tokio runtime");
    if let Err(e) = rt.block_on(real_main(args)) {
        eprintln!("dcim-server: {e:#}");
        std::process::exit(1);
    }
}
