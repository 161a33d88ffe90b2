//! `dcim-server` command line.

use anyhow::Context;
use dcim_server::config::{Config, Role};
use dcim_server::storage::store::UserRecord;
use dcim_service::cli;
use std::path::PathBuf;

const USAGE: &str = "dcim-server {version}
Central DCIM server: MQTT ingest (embedded broker by default), storage, REST/SSE API.

USAGE:
    dcim-server [--config FILE]                 run the server (defaults: embedded broker on
                                                127.0.0.1:1883, HTTP on 127.0.0.1:8080,
                                                data in ./dcim-data)
    dcim-server --check-config FILE             check a configuration file (and the files it
                                                names: TLS, site model, DC-09 link) without
                                                starting; errors name file, line and field
    dcim-server backup FILE [--config FILE]     write a consistent copy of the database to FILE
                                                (online: the server may be running)
    dcim-server restore FILE [--config FILE]    replace the database of a stopped server by
                                                FILE (the old one is kept aside)
    dcim-server mosquitto-acl [--config FILE]   print a mosquitto ACL file for the configured agents
    dcim-server user add --name NAME --role ROLE [--config FILE]
                                                create a user; the password is read from the
                                                environment variable DCIM_NEW_PASSWORD or stdin
                                                (12-256 characters, not only spaces, no control
                                                characters)
    dcim-server user passwd --name NAME [--config FILE]
                                                set a user's password (as for `add`); ends its
                                                sessions
    dcim-server user disable --name NAME | user enable --name NAME [--config FILE]
                                                disable (sessions end, tokens refused) or enable
    dcim-server user token --name NAME --label LABEL [--days DAYS] [--config FILE]
                                                create an API bearer token (printed once) that
                                                expires after DAYS (default auth.token_days)
    dcim-server user tokens --name NAME [--config FILE]
                                                list a user's tokens (id, label, expiry)
    dcim-server user revoke --name NAME --token ID [--config FILE]
                                                revoke a token by its id
    (the demo and the drill runner: cargo run -p dcim-demo [-- drill SCENARIO.toml])
    dcim-server --help | --version

ROLES: viewer, operator, admin, fire_authority (read-only)
ENV:   DCIM_CONFIG (config file when --config is absent), DCIM_ADMIN_PASSWORD (bootstrap admin),
       RUST_LOG (log filter; else [log] level), DCIM_LOG_FORMAT (text or json; else [log] format)
SIGNALS: SIGTERM/SIGINT stop; SIGHUP reloads [notify] and [[users]] (the rest needs a restart)
TLS:   [http.tls] (HTTPS, HSTS, Secure cookies) and [broker.tls] (MQTT over TLS at the broker
       gate), each with cert_file, key_file and an optional client_ca_file, in the config file
";

/// The command line: `config` from `--config`/`-c` (or `--check-config`, which also makes
/// `check-config` the command), else `DCIM_CONFIG`.
struct Args {
    config: Option<PathBuf>,
    words: Vec<String>,
    opts: Vec<(String, String)>,
}

impl Args {
    fn command(&self) -> Option<&str> {
        self.words.first().map(String::as_str)
    }
}

fn parse_args() -> Result<Args, String> {
    let mut config = std::env::var_os("DCIM_CONFIG").map(PathBuf::from);
    let cli::Args { words, opts } = cli::Args::parse(
        std::env::args().skip(1),
        &[
            "--name", "--role", "--label", "--days", "--token", "--http", "--broker", "--data",
            "--dc09", "--influx",
        ],
        |a, it, args| match a {
            "--config" | "-c" => {
                config = Some(it.next().ok_or("--config needs a file")?.into());
                Ok(true)
            }
            "--check-config" => {
                config = Some(it.next().ok_or("--check-config needs a file")?.into());
                args.words.insert(0, "check-config".into());
                Ok(true)
            }
            _ => Ok(false),
        },
    )?;
    Ok(Args {
        config,
        words,
        opts,
    })
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

fn new_password_hash(config: &Config) -> anyhow::Result<String> {
    let pw = read_password()?;
    dcim_server::state::auth::password::check_new(&pw)
        .map_err(|e| anyhow::anyhow!("password: {e}"))?;
    dcim_server::state::auth::hash_password(
        &pw,
        config.auth.argon2_memory_kib,
        config.auth.argon2_iterations,
    )
    .map_err(|e| anyhow::anyhow!(e))
}

async fn audit_cli(
    store: &dyn dcim_server::storage::store::Store,
    action: &str,
    target: &str,
    detail: serde_json::Value,
) -> anyhow::Result<()> {
    // Wall time genuinely meant (here and in the user and token commands below): an operator's
    // command-line action, stamped when it happens; no timer of the server runs here.
    store
        .audit(dcim_clock::now_ms(), "cli", action, target, &detail)
        .await?;
    Ok(())
}

async fn user_command(args: &Args) -> anyhow::Result<()> {
    let config = load_config(args)?;
    let store = dcim_server::storage::store::open(&config, dcim_clock::Clock::system()).await?;
    let name = opt(args, "name")?;
    let st = store.as_ref();
    match args.words.get(1).map(String::as_str) {
        Some("add") => user_add(args, &config, st, name).await?,
        Some("passwd") => user_passwd(&config, st, name).await?,
        Some(w @ ("disable" | "enable")) => user_enable(st, name, w).await?,
        Some("token") => user_token(args, &config, st, name).await?,
        Some("tokens") => user_tokens(st, name).await?,
        Some("revoke") => user_revoke(args, st, name).await?,
        other => {
            anyhow::bail!(
                "unknown user command {other:?}: expected add, passwd, disable, enable, token, tokens or revoke"
            )
        }
    }
    store.close().await;
    Ok(())
}

type DynStore = dyn dcim_server::storage::store::Store;

async fn user_exists(store: &DynStore, name: &str) -> anyhow::Result<()> {
    anyhow::ensure!(store.get_user(name).await?.is_some(), "no user `{name}`");
    Ok(())
}

/// `user add --name N --role R`: the password from stdin or `DCIM_NEW_PASSWORD`.
async fn user_add(
    args: &Args,
    config: &Config,
    store: &DynStore,
    name: &str,
) -> anyhow::Result<()> {
    let role_s = opt(args, "role")?;
    let role = Role::parse(role_s).with_context(|| {
        format!("--role `{role_s}`: expected viewer, operator, admin or fire_authority")
    })?;
    anyhow::ensure!(
        dcim_wire::check_identifier(name).is_ok(),
        "--name `{name}`: 1-64 of [A-Za-z0-9._-]"
    );
    let hash = new_password_hash(config)?;
    let created = store
        .create_user(&UserRecord {
            name: name.to_string(),
            role: role.as_str().into(),
            password_hash: hash,
            created_ms: dcim_clock::now_ms(),
            disabled: false,
        })
        .await?;
    anyhow::ensure!(created, "user `{name}` already exists");
    audit_cli(
        store,
        "user.create",
        name,
        serde_json::json!({"role": role}),
    )
    .await?;
    println!("created user {name} ({})", role.as_str());
    Ok(())
}

/// `user passwd --name N`: a new password; the user's sessions end.
async fn user_passwd(config: &Config, store: &DynStore, name: &str) -> anyhow::Result<()> {
    user_exists(store, name).await?;
    let hash = new_password_hash(config)?;
    store.set_password(name, &hash).await?;
    let ended = store.delete_sessions_of(name, None).await?;
    audit_cli(
        store,
        "user.password",
        name,
        serde_json::json!({"by": "cli", "sessions_ended": ended}),
    )
    .await?;
    println!("password of {name} set; {ended} sessions ended");
    Ok(())
}

/// `user disable|enable --name N`: disabling ends the user's sessions.
async fn user_enable(store: &DynStore, name: &str, w: &str) -> anyhow::Result<()> {
    user_exists(store, name).await?;
    let disable = w == "disable";
    store.set_user_disabled(name, disable).await?;
    let ended = if disable {
        store.delete_sessions_of(name, None).await?
    } else {
        0
    };
    audit_cli(
        store,
        &format!("user.{w}"),
        name,
        serde_json::json!({"sessions_ended": ended}),
    )
    .await?;
    println!("{name} {w}d");
    Ok(())
}

/// `user token --name N --label L [--days D]`: prints a new API token (shown once).
async fn user_token(
    args: &Args,
    config: &Config,
    store: &DynStore,
    name: &str,
) -> anyhow::Result<()> {
    let label = opt(args, "label")?;
    user_exists(store, name).await?;
    let days: u32 = match args.opts.iter().find(|(k, _)| k == "days") {
        Some((_, d)) => d
            .parse()
            .ok()
            .filter(|d| *d <= 3650)
            .with_context(|| format!("--days `{d}`: expected 0..=3650 (0: never expires)"))?,
        None => config.auth.token_days,
    };
    let token = dcim_server::state::auth::new_token("dcim_");
    let now = dcim_clock::now_ms();
    let expires = (days > 0).then(|| now + i64::from(days) * 86_400_000);
    let hash = dcim_server::state::auth::token_hash(&token);
    store
        .create_token_until(&hash, name, label, now, expires)
        .await?;
    audit_cli(
        store,
        "token.create",
        name,
        serde_json::json!({"name": label, "id": &hash[..dcim_server::storage::store::TOKEN_ID_LEN], "expires_ms": expires}),
    )
    .await?;
    println!("{token}");
    Ok(())
}

/// `user tokens --name N`: the user's tokens (id, label, created, expiry).
async fn user_tokens(store: &DynStore, name: &str) -> anyhow::Result<()> {
    user_exists(store, name).await?;
    for t in store.list_tokens(Some(name)).await? {
        let expires = match t.expires_ms {
            Some(ms) => format!("expires at {ms} ms"),
            None => "never expires".into(),
        };
        println!(
            "{}  {}  created at {} ms, {expires}",
            t.id, t.name, t.created_ms
        );
    }
    Ok(())
}

/// `user revoke --name N --token ID`.
async fn user_revoke(args: &Args, store: &DynStore, name: &str) -> anyhow::Result<()> {
    let id = opt(args, "token")?;
    anyhow::ensure!(
        store.revoke_token(name, id).await?,
        "no token `{id}` of user `{name}` (ids: `user tokens --name {name}`)"
    );
    audit_cli(store, "token.revoke", name, serde_json::json!({"id": id})).await?;
    println!("token {id} of {name} revoked");
    Ok(())
}

async fn real_main(args: Args) -> anyhow::Result<()> {
    match args.command() {
        None => {
            let config = load_config(&args)?;
            dcim_server::run(config, dcim_server::base::stop::shutdown_signal()).await
        }
        Some("mosquitto-acl") => {
            let config = load_config(&args)?;
            print!(
                "{}",
                dcim_server::engine::mosquitto::acl_file(
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
        Some("backup") => {
            let file = args
                .words
                .get(1)
                .context("`backup` needs a file: dcim-server backup FILE")?;
            let config = load_config(&args)?;
            let c =
                dcim_server::storage::backup::backup(&config, std::path::Path::new(file)).await?;
            println!(
                "backup written to {file}: {} bytes, schema version {}, integrity ok",
                c.bytes, c.schema_version
            );
            Ok(())
        }
        Some("restore") => {
            let file = args
                .words
                .get(1)
                .context("`restore` needs a file: dcim-server restore FILE")?;
            let config = load_config(&args)?;
            let (c, kept) =
                dcim_server::storage::backup::restore(&config, std::path::Path::new(file)).await?;
            println!(
                "restored {file} (schema version {}) into {}",
                c.schema_version,
                config.data_dir.display()
            );
            if let Some(k) = kept {
                println!("the previous database is kept as {}", k.display());
            }
            Ok(())
        }
        Some(other) => anyhow::bail!("unknown command `{other}`"),
    }
}

/// `demo` and `drill` moved to the `dcim-demo` binary (the server links no simulator and no
/// edge agent): the message that says where, instead of `unknown command`.
fn moved_command(args: &Args) -> Option<String> {
    match args.command() {
        Some("demo") => Some(
            "`demo` is no longer part of the server; run `cargo run -p dcim-demo` \
             (or the `dcim-demo` binary) with the same options"
                .into(),
        ),
        Some("drill") => Some(format!(
            "`drill` is no longer part of the server; run `cargo run -p dcim-demo -- drill {}` \
             (or `dcim-demo drill ...`) with the same options",
            args.words
                .get(1)
                .map(String::as_str)
                .unwrap_or("SCENARIO.toml")
        )),
        _ => None,
    }
}

/// `--check-config FILE`: the file and everything it names, without starting anything.
/// Exit status 0 when valid, 2 otherwise.
fn check_config(args: &Args) -> i32 {
    let Some(path) = &args.config else {
        eprintln!("dcim-server: --check-config needs a file");
        return 2;
    };
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("dcim-server: {e}");
            return 2;
        }
    };
    let mut problems = Vec::new();
    if let Some(site) = &config.site_model
        && let Err(e) = dcim_site::Site::load(site)
    {
        problems.push(format!("site model: {e}"));
    }
    if let Some(d) = &config.dc09
        && d.link.is_none()
        && let Err(e) = dc09_link::LinkConfig::from_file(&d.link_config)
    {
        problems.push(format!("dc09.link_config {}: {e}", d.link_config.display()));
    }
    for (i, c) in config.notify.channels.iter().enumerate() {
        if c.kind == dcim_server::io::notify_io::Kind::Webhook
            && config.notify.enabled
            && let Err(e) = c.webhook_format()
        {
            problems.push(format!("notify.channels[{i}] (`{}`): {e}", c.name));
        }
    }
    for (i, u) in config.users.iter().enumerate() {
        if std::env::var_os(&u.password_env).is_none() {
            eprintln!(
                "dcim-server: note: users[{i}] (`{}`): {} is not set here; it is needed when the user is first created",
                u.name, u.password_env
            );
        }
    }
    if problems.is_empty() {
        println!("{}: configuration is valid", path.display());
        0
    } else {
        for p in &problems {
            eprintln!("dcim-server: {}: {p}", path.display());
        }
        2
    }
}

fn main() {
    let usage = USAGE.replace("{version}", env!("CARGO_PKG_VERSION"));
    let args = cli::or_exit("dcim-server", &usage, parse_args());
    let version = env!("CARGO_PKG_VERSION");
    if cli::help_or_version("dcim-server", version, &usage, args.command()) {
        return;
    }
    if let Some(moved) = moved_command(&args) {
        eprintln!("dcim-server: {moved}");
        std::process::exit(2);
    }
    if args.command() == Some("check-config") {
        std::process::exit(check_config(&args));
    }
    // The log settings come from the file (the run itself loads it again, which reports any
    // error the same way).
    let log = match &args.config {
        Some(p) if args.words.is_empty() => match Config::load(p) {
            Ok(c) => c.log,
            Err(e) => {
                eprintln!("dcim-server: {e}");
                std::process::exit(2);
            }
        },
        _ => dcim_server::config::LogConfig::default(),
    };
    let format = dcim_service::log::format_from_env_or(&log.format);
    dcim_service::init_logging(format, &log.level);
    let rt = tokio::runtime::Runtime::new().expect("starting the tokio runtime");
    if let Err(e) = rt.block_on(real_main(args)) {
        eprintln!("dcim-server: {e:#}");
        std::process::exit(1);
    }
}
