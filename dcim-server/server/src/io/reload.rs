//! Configuration reload on SIGHUP (`systemctl reload dcim-server`).
//!
//! The file is read and checked whole first; a file with any error changes nothing (the error
//! is logged with file, line and field, and the systemd status line says the reload failed).
//! Then what is safe to change while running is applied:
//!
//! - `[notify]`: channels, grades, fire channel and escalation steps. The notifier task
//!   rebuilds its senders and keeps its state (escalation steps already sent, the breakers of
//!   channels that keep their name); a notifier is started if `[notify]` was off.
//! - `[[users]]`: users listed and not yet in the database are created (their password from
//!   their environment variable, as at start). Existing users are never changed or removed by
//!   a reload (that is `dcim-server user` and the API, audited per action).
//!
//! Everything else needs a restart, and a reload that changes it says so in the log: the
//! listeners and TLS (sockets are bound and certificates loaded once), the broker and the
//! agents (their ACLs live in the broker gate and the ingest, which hold per-connection state),
//! the site model and alarm rules (the engines' state refers to them), `[dc09]` (its outbox
//! and sequence numbers), `[influx]` (its buffer), `[history]`, `data_dir`, `[auth]`, `[log]`
//! and `[metrics]`.

use crate::app::App;
use crate::config::Config;

/// Top-level sections that differ between two configurations, other than `notify` and
/// `users` (what a reload cannot apply).
pub fn needs_restart(old: &Config, new: &Config) -> Vec<String> {
    let a = serde_json::to_value(old).unwrap_or_default();
    let b = serde_json::to_value(new).unwrap_or_default();
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return Vec::new();
    };
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| !matches!(k.as_str(), "notify" | "users"))
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}

/// What a reload did.
#[derive(Debug, Default, PartialEq)]
pub struct Outcome {
    pub notify_changed: bool,
    pub users_created: usize,
    pub needs_restart: Vec<String>,
}

/// Reloads the configuration file the server was started with.
pub async fn reload(app: &std::sync::Arc<App>) -> anyhow::Result<Outcome> {
    let path = app.config.source.clone();
    anyhow::ensure!(
        !path.as_os_str().is_empty(),
        "the server was started without a configuration file: nothing to reload"
    );
    let new = Config::load(&path)?;
    let old = app.reloadable.current.lock().expect("config lock").clone();
    let mut out = Outcome {
        needs_restart: needs_restart(&old, &new),
        ..Default::default()
    };
    let before = app.store.count_users().await?;
    crate::bootstrap_users(&new, app.store.as_ref(), app.now_ms()).await?;
    out.users_created = (app.store.count_users().await? - before).max(0) as usize;
    let old_notify = serde_json::to_value(&old.notify).unwrap_or_default();
    let new_notify = serde_json::to_value(&new.notify).unwrap_or_default();
    if old_notify != new_notify {
        out.notify_changed = true;
        match app.reloadable.notify_tx.get() {
            Some(tx) => {
                tx.send(new.notify.clone())
                    .map_err(|_| anyhow::anyhow!("the notifier has stopped"))?;
            }
            None if new.notify.enabled => crate::io::notify_io::attach(app, &new.notify).await?,
            None => {}
        }
    }
    *app.reloadable.current.lock().expect("config lock") = new;
    let _ = app
        .audit(
            "system",
            "config.reload",
            &path.display().to_string(),
            serde_json::json!({"notify_changed": out.notify_changed, "users_created": out.users_created, "needs_restart": out.needs_restart}),
        )
        .await;
    Ok(out)
}

/// Runs a reload and reports it: the log, and systemd's `RELOADING=1` / `READY=1` and status.
pub async fn on_sighup(app: &std::sync::Arc<App>, notifier: &dcim_service::Notifier) {
    notifier.reloading();
    match reload(app).await {
        Ok(o) => {
            if !o.needs_restart.is_empty() {
                tracing::warn!(
                    sections = ?o.needs_restart,
                    "configuration reloaded, but these sections changed and need a restart to apply"
                );
            }
            tracing::info!(
                notify_changed = o.notify_changed,
                users_created = o.users_created,
                "configuration reloaded"
            );
            notifier.ready("configuration reloaded");
        }
        Err(e) => {
            tracing::error!("configuration reload failed, nothing changed: {e:#}");
            notifier.ready(&format!(
                "reload failed, running with the previous configuration: {e}"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> Config {
        Config::parse(t, std::path::Path::new("server.toml")).unwrap()
    }

    #[test]
    fn only_notify_and_users_are_applied_and_the_rest_is_named() {
        // Hazard: an operator reloads a changed listener or agent list and believes it took
        // effect; the log must say it did not.
        let a = parse("[http]\nlisten = '127.0.0.1:8080'\n");
        let b = parse(
            "[http]\nlisten = '127.0.0.1:9090'\n[notify]\ntick_ms = 500\n[[users]]\nname='x'\nrole='viewer'\npassword_env='X'\n",
        );
        assert_eq!(needs_restart(&a, &b), vec!["http".to_string()]);
        assert!(needs_restart(&a, &a).is_empty());
    }
}
