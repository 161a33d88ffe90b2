//! Essential tasks under watch.
//!
//! Every task the agent spawns (a driver, a rack's fire logic, a broker link, the trap receiver)
//! runs until the agent stops. One that ends before that — a panic, or an error it cannot get
//! past — leaves part of the plant unwatched (a rack without its fire logic) while the process
//! still looks alive. [`Supervisor::ended`] reports such a task the moment it ends, with its
//! name and its panic message; the agent then stops with a failure status so that the service
//! manager restarts it (and the center sees the agent go, rather than a quiet agent that
//! protects nothing).
//!
//! Release builds use `panic = "abort"` (workspace `Cargo.toml`): a panic ends the daemon at once
//! and systemd (`Restart=on-failure`) restarts it. `Agent::run` returns `Stopped::TaskEnded`, and
//! `dcim-edge-agent` exits with a failure status.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use tokio::task::{Id, JoinError, JoinSet};

/// A set of named tasks that must not end on their own.
#[derive(Default)]
pub struct Supervisor {
    set: JoinSet<()>,
    names: HashMap<Id, String>,
}

/// A task that ended: its name, and its panic message if it panicked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndedTask {
    pub name: String,
    pub panic: Option<String>,
}

impl fmt::Display for EndedTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.panic {
            Some(p) => write!(f, "{} panicked: {p}", self.name),
            None => write!(f, "{} returned", self.name),
        }
    }
}

impl Supervisor {
    /// Spawns `task` under `name` (e.g. `fire logic of rack r12`).
    pub fn spawn(
        &mut self,
        name: impl Into<String>,
        task: impl Future<Output = ()> + Send + 'static,
    ) {
        let h = self.set.spawn(task);
        self.names.insert(h.id(), name.into());
    }

    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// The next task to end. Never resolves while every task runs (or when there are none), so
    /// it can sit in a `select!` beside the agent's other work.
    pub async fn ended(&mut self) -> EndedTask {
        match self.set.join_next_with_id().await {
            Some(r) => self.describe(r),
            None => std::future::pending().await,
        }
    }

    /// Waits for every task (at shutdown, after the stop signal) and returns those that
    /// panicked: a clean stop is every task returning.
    pub async fn join_all(&mut self) -> Vec<EndedTask> {
        let mut panicked = Vec::new();
        while let Some(r) = self.set.join_next_with_id().await {
            let t = self.describe(r);
            if t.panic.is_some() {
                panicked.push(t);
            }
        }
        panicked
    }

    fn describe(&mut self, r: Result<(Id, ()), JoinError>) -> EndedTask {
        let (id, panic) = match r {
            Ok((id, ())) => (id, None),
            Err(e) => {
                let id = e.id();
                let why = if e.is_panic() {
                    let p = e.into_panic();
                    p.downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| p.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic without a message".into())
                } else {
                    "cancelled".into()
                };
                (id, Some(why))
            }
        };
        EndedTask {
            name: self.names.remove(&id).unwrap_or_else(|| "a task".into()),
            panic,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Hazard: a rack's fire-logic task that panics leaves the rack unprotected while the
    /// agent keeps publishing and looks healthy.
    #[tokio::test(start_paused = true)]
    async fn a_panicking_task_is_reported_by_name_with_its_message() {
        let mut s = Supervisor::default();
        s.spawn("driver ups-1", std::future::pending());
        s.spawn("fire logic of rack r12", async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            panic!("index out of bounds");
        });
        let ended = tokio::time::timeout(Duration::from_secs(5), s.ended())
            .await
            .expect("the end of a task is noticed");
        assert_eq!(ended.name, "fire logic of rack r12");
        assert_eq!(ended.panic.as_deref(), Some("index out of bounds"));
        assert!(ended.to_string().contains("panicked"));
        assert_eq!(s.len(), 1, "the other task still runs");
    }

    /// Hazard: a task that gives up and returns (an error it cannot get past) is as silent as
    /// a panic.
    #[tokio::test(start_paused = true)]
    async fn a_task_that_returns_early_is_reported() {
        let mut s = Supervisor::default();
        s.spawn("broker link site-a", async {});
        let ended = tokio::time::timeout(Duration::from_secs(5), s.ended())
            .await
            .expect("the end of a task is noticed");
        assert_eq!(
            ended,
            EndedTask {
                name: "broker link site-a".into(),
                panic: None
            }
        );
    }

    /// Hazard: a supervisor that reports a healthy task as ended restarts the agent for
    /// nothing, over and over. (Paused time: the 300 ms waits take no real time.)
    #[tokio::test(start_paused = true)]
    async fn running_tasks_and_an_empty_set_report_nothing() {
        let mut s = Supervisor::default();
        assert!(
            tokio::time::timeout(Duration::from_millis(300), s.ended())
                .await
                .is_err(),
            "an empty set never reports"
        );
        s.spawn("driver", std::future::pending());
        assert!(
            tokio::time::timeout(Duration::from_millis(300), s.ended())
                .await
                .is_err(),
            "a running task is not reported"
        );
    }

    #[tokio::test]
    async fn join_all_returns_the_tasks_that_panicked() {
        let mut s = Supervisor::default();
        s.spawn("clean", async {});
        s.spawn("broken", async { panic!("{}", String::from("boom")) });
        let panicked = s.join_all().await;
        assert_eq!(panicked.len(), 1);
        assert_eq!(panicked[0].name, "broken");
        assert_eq!(panicked[0].panic.as_deref(), Some("boom"));
        assert!(s.is_empty());
    }
}
