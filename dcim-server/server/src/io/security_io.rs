//! What [`Security`] does with the running server: the device-cookie key kept in the store,
//! the coalesced audit of failed sign-ins and lockouts, and the task that flushes it.

use crate::app::App;
use crate::base::metrics::inc;
use crate::state::auth::limits::{Locked, Subject};
use crate::state::security::*;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

impl Security {
    /// The key of the device cookies, created on first use and kept in the store (so every
    /// replica and restart accepts the same cookies).
    pub async fn device_key(&self, app: &App) -> anyhow::Result<&[u8]> {
        let key = self
            .device_key
            .get_or_try_init(|| async {
                let docs = app.store.list_docs(KEY_DOC.0).await?;
                if let Some(k) = docs
                    .iter()
                    .find(|d| d.id == KEY_DOC.1)
                    .and_then(|d| d.body["key"].as_str())
                    .and_then(|h| hex::decode(h).ok())
                    .filter(|k| k.len() == 32)
                {
                    return Ok::<_, anyhow::Error>(k);
                }
                let key = crate::state::auth::new_token("");
                app.store
                    .put_doc(
                        KEY_DOC.0,
                        &crate::storage::store::DocRecord {
                            id: KEY_DOC.1.into(),
                            updated_ms: app.now_ms(),
                            body: serde_json::json!({"key": key}),
                        },
                        None,
                    )
                    .await?;
                Ok(hex::decode(key)?)
            })
            .await?;
        Ok(key.as_slice())
    }

    /// Audits a failure anyone can cause (failed sign-in, refusal) through the coalescer: a
    /// row now, or a count in the window's summary row.
    pub async fn audit_failure(
        &self,
        app: &App,
        action: &str,
        actor: &str,
        target: &str,
        peer: &str,
        detail: serde_json::Value,
    ) {
        let row = self.failures.lock().expect("failures lock").failure(
            app.now_ms(),
            action,
            actor,
            target,
            peer,
            detail,
        );
        match row {
            Some((actor, action, target, detail)) => {
                if let Err(e) = app.audit(&actor, &action, &target, detail).await {
                    tracing::warn!("audit of {action}: {e:#}");
                }
            }
            None => inc(&app.metrics.audit_failures_coalesced_total, 1),
        }
    }

    /// Audits the locks a failure started (coalesced like failures).
    pub async fn audit_locks(&self, app: &App, channel: &str, peer: &str, locks: &[Locked]) {
        for l in locks {
            inc(&app.metrics.login_locks_total, 1);
            let (kind, name) = match &l.subject {
                Subject::Address(a) => ("address", a.as_str()),
                Subject::User(u) => ("user", u.as_str()),
                Subject::Device(d) => ("device", d.as_str()),
            };
            tracing::warn!(
                channel,
                kind,
                name,
                until_ms = l.until_ms,
                failures = l.failures,
                "sign-ins locked after repeated failures"
            );
            self.audit_failure(
                app,
                "login.locked",
                name,
                channel,
                peer,
                serde_json::json!({"kind": kind, "until_ms": l.until_ms, "failures": l.failures, "locks": l.locks}),
            )
            .await;
        }
    }

    /// Writes the summary row of the last window's coalesced failures, if due.
    pub async fn flush(&self, app: &App) {
        let row = self
            .failures
            .lock()
            .expect("failures lock")
            .flush(app.now_ms());
        if let Some((actor, action, target, detail)) = row
            && let Err(e) = app.audit(&actor, &action, &target, detail).await
        {
            tracing::warn!("audit of coalesced failures: {e:#}");
        }
    }
}

/// Flushes the coalesced failure audit once a second until `stop`.
pub fn spawn(app: Arc<App>, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        // The dummy hash is ready before the first sign-in of an unknown name (which would
        // otherwise take twice as long once: a timing difference).
        let a = app.clone();
        let (m, t) = (
            app.config.auth.argon2_memory_kib,
            app.config.auth.argon2_iterations,
        );
        let _ = tokio::task::spawn_blocking(move || a.security.dummy_hash(m, t)).await;
        let mut iv = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = crate::base::stop::stopped(&mut stop) => break,
                _ = iv.tick() => app.security.flush(&app).await,
            }
        }
    })
}
