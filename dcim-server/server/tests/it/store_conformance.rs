//! The store contract, run against both backends: SQLite (a temporary directory) and
//! PostgreSQL (a throwaway server this test starts in a temporary directory, run as the
//! `postgres` user when the tests run as root; skipped with a message when PostgreSQL is not
//! installed, unless `DCIM_REQUIRE_PEERS=1`).
//!
//! Every case says what would go wrong without the property it checks. A case gets a fresh
//! database and can open more handles on it (a restart, or a second replica).

use crate::common;

use common::pg::{PgServer, skip_or_fail};
use dcim_server::storage::store::{
    self, Batch, DocRecord, EventQuery, EventRecord, Fence, PgStore, SessionRecord, SqliteStore,
    Store, StoreBackend, StoreConfig, UserRecord,
};
use futures_util::future::LocalBoxFuture;
use std::sync::Arc;

/// Opens a new handle on the case's database.
/// (Local futures: the backends' `open` futures are not `Send`; concurrency in the cases comes
/// from polling several operations at once.)
type Open = Arc<dyn Fn() -> LocalBoxFuture<'static, Arc<dyn Store>>>;

fn ev(agent: &str, seq: i64, ts: i64, device: &str) -> EventRecord {
    EventRecord {
        site: "s".into(),
        agent: agent.into(),
        epoch: String::new(),
        seq,
        id: format!("{agent}:{seq}"),
        ts_ms: ts,
        device: device.into(),
        kind: "fire.stage".into(),
        severity: "alarm".into(),
        message: "m".into(),
        data: serde_json::json!({"stage": seq}),
        test: seq % 2 == 0,
        received_ms: 5,
    }
}

fn doc(id: &str, body: serde_json::Value) -> DocRecord {
    DocRecord {
        id: id.into(),
        updated_ms: 7,
        body,
    }
}

/// Hazard: the same event delivered through both sites' brokers is stored twice, or a restart
/// loses what was committed.
async fn events_are_unique_ordered_and_durable(open: Open) {
    let s = open().await;
    assert_eq!(
        s.insert_events(&[ev("a", 1, 10, "r1"), ev("a", 2, 20, "r2")])
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        s.insert_events(&[ev("a", 2, 20, "r2"), ev("a", 3, 30, "r1")])
            .await
            .unwrap(),
        1,
        "a duplicate (agent, seq) is not stored again"
    );
    assert_eq!(s.insert_events(&[ev("b", 1, 15, "r1")]).await.unwrap(), 1);
    // An agent whose spool was recreated (a new epoch) starts its sequence again: its events
    // are new, not duplicates of the old epoch's (else they would be dropped unseen).
    let reborn = EventRecord {
        epoch: "e2".into(),
        id: "a:e2:1".into(),
        ts_ms: 5,
        ..ev("a", 1, 5, "r3")
    };
    assert_eq!(
        s.insert_events(std::slice::from_ref(&reborn))
            .await
            .unwrap(),
        1
    );
    assert_eq!(s.insert_events(&[reborn]).await.unwrap(), 0);
    s.close().await;
    let s = open().await;
    let all = s
        .list_events(&EventQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let ids: Vec<&str> = all.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["a:3", "a:2", "b:1", "a:1", "a:e2:1"], "newest first");
    assert_eq!(all[4].epoch, "e2", "the epoch survives");
    assert_eq!(all[0].data, serde_json::json!({"stage": 3}));
    assert!(all[1].test && !all[0].test, "flags survive");
    let r1 = s
        .list_events(&EventQuery {
            device: Some("r1".into()),
            agent: Some("a".into()),
            since_ms: Some(5),
            limit: 100,
        })
        .await
        .unwrap();
    assert_eq!(r1.len(), 2);
    let mut hw = s.event_high_water().await.unwrap();
    hw.sort();
    assert_eq!(
        hw,
        vec![
            ("a".into(), "".into(), 3),
            ("a".into(), "e2".into(), 1),
            ("b".into(), "".into(), 1)
        ],
        "per agent and epoch"
    );
}

/// Hazard: a stream mark going back makes the server accept an old batch as new.
/// And a new spool epoch has marks of its own (its sequence starts again).
async fn stream_marks_never_go_back(open: Open) {
    let s = open().await;
    let mark = |epoch: &str, seq| {
        (
            "a".to_string(),
            epoch.to_string(),
            "telemetry".to_string(),
            seq,
        )
    };
    s.save_stream_seq(&[mark("", 10)]).await.unwrap();
    s.save_stream_seq(&[mark("", 4)]).await.unwrap();
    assert_eq!(s.stream_seqs().await.unwrap(), vec![mark("", 10)]);
    s.save_stream_seq(&[mark("e2", 2)]).await.unwrap();
    let mut marks = s.stream_seqs().await.unwrap();
    marks.sort();
    assert_eq!(marks, vec![mark("", 10), mark("e2", 2)]);
}

async fn agents_users_sessions_and_tokens(open: Open) {
    let s = open().await;
    let a = store::AgentRecord {
        agent: "edge-1".into(),
        site: "s".into(),
        online: true,
        ts_ms: 1,
        version: "1".into(),
        spool_pending: 3,
        thinned_samples: 0,
        last_seen_ms: 2,
    };
    s.upsert_agent(&a).await.unwrap();
    s.upsert_agent(&store::AgentRecord {
        online: false,
        ..a.clone()
    })
    .await
    .unwrap();
    let agents = s.list_agents().await.unwrap();
    assert_eq!(agents.len(), 1);
    assert!(!agents[0].online, "the last state wins");
    assert_eq!(s.count_users().await.unwrap(), 0);
    let u = UserRecord {
        name: "op".into(),
        role: "operator".into(),
        password_hash: "h1".into(),
        created_ms: 1,
        disabled: false,
    };
    assert!(s.create_user(&u).await.unwrap());
    assert!(!s.create_user(&u).await.unwrap(), "a taken name is refused");
    assert!(
        s.create_user(&UserRecord {
            name: "Admin".into(),
            ..u.clone()
        })
        .await
        .unwrap()
    );
    assert!(s.set_password("op", "h2").await.unwrap());
    assert!(!s.set_password("nobody", "h2").await.unwrap());
    assert_eq!(s.get_user("op").await.unwrap().unwrap().password_hash, "h2");
    let names: Vec<String> = s
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(names, ["Admin", "op"], "byte order, as SQLite sorts");
    // Sessions: an expired one is removed when a new one is created.
    let sess = |h: &str, exp: i64| SessionRecord {
        token_hash: h.into(),
        user: "op".into(),
        csrf: "c".into(),
        created_ms: 100,
        expires_ms: exp,
    };
    s.create_session(&SessionRecord {
        created_ms: 1,
        ..sess("old", 50)
    })
    .await
    .unwrap();
    s.create_session(&sess("new", 1000)).await.unwrap();
    assert!(s.get_session("old").await.unwrap().is_none());
    assert_eq!(s.get_session("new").await.unwrap().unwrap().user, "op");
    s.delete_session("new").await.unwrap();
    assert!(s.get_session("new").await.unwrap().is_none());
    s.create_token("th", "op", "ci", 5).await.unwrap();
    assert_eq!(s.token_user("th").await.unwrap().as_deref(), Some("op"));
    assert_eq!(s.token_user("nope").await.unwrap(), None);
}

/// Hazard: an account an admin disabled keeps its sessions, an expired or revoked API token
/// still signs requests in, or a revocation by a short or foreign id removes someone else's
/// token (on either backend, i.e. on either kind of deployment).
async fn accounts_disable_expire_and_revoke(open: Open) {
    let s = open().await;
    let u = |name: &str| UserRecord {
        name: name.into(),
        role: "operator".into(),
        password_hash: "h".into(),
        created_ms: 1,
        disabled: false,
    };
    s.create_user(&u("op")).await.unwrap();
    s.create_user(&u("other")).await.unwrap();
    assert!(s.set_user_disabled("op", true).await.unwrap());
    assert!(s.get_user("op").await.unwrap().unwrap().disabled);
    assert!(!s.set_user_disabled("nobody", true).await.unwrap());
    assert!(s.set_user_disabled("op", false).await.unwrap());
    assert!(!s.get_user("op").await.unwrap().unwrap().disabled);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    for (h, user) in [("s1", "op"), ("s2", "op"), ("s3", "other")] {
        s.create_session(&SessionRecord {
            token_hash: h.into(),
            user: user.into(),
            csrf: "c".into(),
            created_ms: now,
            expires_ms: now + 60_000,
        })
        .await
        .unwrap();
    }
    assert_eq!(s.delete_sessions_of("op", Some("s1")).await.unwrap(), 1);
    assert!(s.get_session("s1").await.unwrap().is_some(), "the kept one");
    assert!(s.get_session("s2").await.unwrap().is_none());
    assert!(
        s.get_session("s3").await.unwrap().is_some(),
        "another user's"
    );
    assert_eq!(s.delete_sessions_of("op", None).await.unwrap(), 1);
    assert!(s.get_session("s1").await.unwrap().is_none());
    // Tokens: ids are the first hex digits of the hash.
    let live = "a".repeat(64);
    let expired = "b".repeat(64);
    let theirs = "c".repeat(64);
    s.create_token_until(&live, "op", "ci", now, Some(now + 3_600_000))
        .await
        .unwrap();
    s.create_token_until(&expired, "op", "old", now - 10, Some(now - 1))
        .await
        .unwrap();
    s.create_token(&theirs, "other", "x", now + 1)
        .await
        .unwrap();
    assert_eq!(s.token_user(&live).await.unwrap().as_deref(), Some("op"));
    assert_eq!(s.token_user(&expired).await.unwrap(), None, "expired");
    let mine = s.list_tokens(Some("op")).await.unwrap();
    assert_eq!(
        mine.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        ["old", "ci"],
        "oldest first"
    );
    assert_eq!(mine[1].id, "a".repeat(store::TOKEN_ID_LEN));
    assert_eq!(mine[1].expires_ms, Some(now + 3_600_000));
    let all = s.list_tokens(None).await.unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[2].expires_ms, None, "never expires");
    assert!(
        !s.revoke_token("op", &"c".repeat(store::TOKEN_ID_LEN))
            .await
            .unwrap(),
        "another user's token is not revoked by its id"
    );
    assert!(!s.revoke_token("op", "a").await.unwrap(), "a short id");
    assert!(
        s.revoke_token("op", &"A".repeat(store::TOKEN_ID_LEN))
            .await
            .unwrap()
    );
    assert_eq!(s.token_user(&live).await.unwrap(), None, "revoked");
    assert_eq!(
        s.token_user(&theirs).await.unwrap().as_deref(),
        Some("other")
    );
}

/// Hazard: incidents stored one document each come back incomplete on the other backend (a
/// takeover on PostgreSQL would restore incidents without their alarms or notes).
async fn incidents_round_trip_one_document_each(open: Open) {
    use dcim_alarms::{IncidentConfig, Incidents};
    let s = open().await;
    assert!(
        dcim_server::storage::incident_store::load(s.as_ref())
            .await
            .unwrap()
            .is_none()
    );
    let mut inc = Incidents::new(IncidentConfig::default());
    let a = inc.open("smoke in hall 2", 2, "op", 1_000).unwrap();
    let b = inc.open("breaker trip", 3, "op", 2_000).unwrap();
    let batch = Batch {
        docs: dcim_server::storage::incident_store::docs(&inc, [a, b], 3_000).unwrap(),
        ..Default::default()
    };
    s.commit_batch(&batch).await.unwrap();
    let other = open().await;
    let back = dcim_server::storage::incident_store::load(other.as_ref())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        serde_json::to_value(&back).unwrap(),
        serde_json::to_value(&inc).unwrap()
    );
}

/// Hazard: a change stored without who made it, or an audit reader skipping a row.
async fn docs_carry_their_audit_and_ids_increase(open: Open) {
    let s = open().await;
    let d = doc("a1", serde_json::json!({"state": "acked"}));
    s.put_doc(
        "alarm",
        &d,
        Some(("op", "alarm.ack", &serde_json::json!({}))),
    )
    .await
    .unwrap();
    s.put_doc("alarm", &doc("a0", serde_json::json!(1)), None)
        .await
        .unwrap();
    let docs = s.list_docs("alarm").await.unwrap();
    assert_eq!(
        docs.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        ["a0", "a1"]
    );
    assert_eq!(docs[1], d);
    let id2 = s
        .audit(9, "op", "login", "session", &serde_json::json!({"x": 1}))
        .await
        .unwrap();
    let audit = s.list_audit(0, 10).await.unwrap();
    assert_eq!(audit.len(), 2);
    assert_eq!(audit[0].target, "alarm/a1");
    assert_eq!(audit[1].id, id2);
    assert!(audit[1].id > audit[0].id);
    assert_eq!(audit[1].detail, serde_json::json!({"x": 1}));
    assert_eq!(s.list_audit(audit[0].id, 10).await.unwrap().len(), 1);
}

/// Hazard: an alarm's journal rows committed without its state (or the other way round).
async fn batches_commit_together_and_the_journal_reads_by_cursor(open: Open) {
    let s = open().await;
    assert_eq!(s.journal_high_water().await.unwrap(), 0);
    let batch = Batch {
        docs: vec![("alarm".into(), doc("x", serde_json::json!({"v": 1})))],
        journal: vec![
            (1, "x".into(), serde_json::json!({"n": 1})),
            (2, "y".into(), serde_json::json!({"n": 2})),
            (3, "x".into(), serde_json::json!({"n": 3})),
        ],
        audit: vec![(
            "op".into(),
            "alarm.ack".into(),
            "alarm/x".into(),
            serde_json::json!({}),
        )],
        fence: None,
    };
    let ids = s.commit_batch(&batch).await.unwrap();
    assert_eq!(ids.len(), 1);
    let all = s.list_journal(None, 0, 100).await.unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(s.journal_high_water().await.unwrap(), all[2].id);
    let x = s.list_journal(Some("x"), 0, 100).await.unwrap();
    assert_eq!(
        x.iter()
            .map(|r| r.record["n"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [1, 3]
    );
    assert_eq!(
        s.list_journal(None, all[0].id, 1).await.unwrap()[0].id,
        all[1].id
    );
}

/// Hazard: a journal reader (the notifier, a follower) steps over a row that commits after a
/// higher id was already visible, and that alarm is never notified.
async fn concurrent_journal_writers_commit_in_id_order(open: Open) {
    let mut stores = Vec::new();
    for _ in 0..3 {
        stores.push(open().await);
    }
    let writers = stores.into_iter().enumerate().map(|(w, s)| async move {
        for i in 0..40 {
            s.commit_batch(&Batch {
                journal: vec![(i, format!("w{w}"), serde_json::json!({"i": i}))],
                ..Default::default()
            })
            .await
            .unwrap();
        }
    });
    let writers = futures_util::future::join_all(writers);
    let reader = open().await;
    let read = async {
        let mut cursor = 0;
        let mut seen = 0;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while seen < 120 {
            assert!(
                std::time::Instant::now() < deadline,
                "reader saw only {seen} rows"
            );
            let rows = reader.list_journal(None, cursor, 1000).await.unwrap();
            seen += rows.len();
            if let Some(r) = rows.last() {
                cursor = r.id;
            }
        }
        (seen, cursor)
    };
    let ((), (seen, cursor)) = futures_util::future::join(
        async {
            writers.await;
        },
        read,
    )
    .await;
    assert_eq!(seen, 120, "a reader by cursor saw every row exactly once");
    assert!(
        reader
            .list_journal(None, cursor, 1000)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Hazard: two replicas both believe they lead, or a deposed leader's late write lands after
/// the new leader restored the state.
async fn the_lease_has_one_holder_and_fences_a_deposed_one(open: Open) {
    let a = open().await;
    let b = open().await;
    let info = serde_json::json!({"site": "A"});
    let l = a.try_lease("L", "a", &info, 60_000).await.unwrap();
    assert!(l.held_by("a"));
    assert_eq!(l.epoch, 1);
    assert_eq!(l.info, info);
    let renewed = a.try_lease("L", "a", &info, 60_000).await.unwrap();
    assert_eq!(renewed.epoch, 1, "a renewal keeps the epoch");
    assert!(renewed.expires_ms >= l.expires_ms);
    let other = b
        .try_lease("L", "b", &serde_json::json!({}), 60_000)
        .await
        .unwrap();
    assert_eq!(other.holder, "a", "a valid lease is not taken");
    assert!(!other.held_by("b"));
    let fence_a = l.fence();
    let write = |fence: Fence, v: i64| Batch {
        docs: vec![("t".into(), doc("d", serde_json::json!(v)))],
        journal: vec![(v, "x".into(), serde_json::json!(v))],
        audit: vec![("a".into(), "t".into(), "t".into(), serde_json::json!(v))],
        fence: Some(fence),
    };
    a.commit_batch(&write(fence_a.clone(), 1)).await.unwrap();
    // a's lease ends (here: released; expiry is the same row state) and b takes it.
    a.release_lease("L", "a").await.unwrap();
    b.release_lease("L", "a").await.unwrap();
    let lb = b.try_lease("L", "b", &info, 60_000).await.unwrap();
    assert!(lb.held_by("b"));
    assert_eq!(lb.epoch, 2, "a new holder is a new epoch");
    let err = a
        .commit_batch(&write(fence_a.clone(), 2))
        .await
        .unwrap_err();
    let f = store::fenced(&err).expect("a Fenced error");
    assert_eq!(f.current, Some(("b".into(), 2)));
    assert!(err.to_string().contains("fenced"), "{err}");
    b.commit_batch(&write(lb.fence(), 3)).await.unwrap();
    let docs = b.list_docs("t").await.unwrap();
    assert_eq!(docs[0].body, serde_json::json!(3));
    let j: Vec<i64> = b
        .list_journal(None, 0, 10)
        .await
        .unwrap()
        .iter()
        .map(|r| r.record.as_i64().unwrap())
        .collect();
    assert_eq!(j, [1, 3], "the fenced batch wrote nothing at all");
    assert_eq!(b.list_audit(0, 10).await.unwrap().len(), 2);
    // Releasing someone else's lease does nothing.
    a.release_lease("L", "a").await.unwrap();
    assert!(
        b.try_lease("L", "b", &info, 60_000)
            .await
            .unwrap()
            .held_by("b")
    );
    // An expired lease is taken by the next caller, with the next epoch.
    let short = b.try_lease("S", "b", &info, 1).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let taken = a.try_lease("S", "a", &info, 60_000).await.unwrap();
    assert!(taken.held_by("a"));
    assert_eq!(taken.epoch, short.epoch + 1);
}

/// Hazard: two replicas starting together both take the lease.
async fn racing_contenders_get_one_holder(open: Open) {
    for round in 0..10 {
        let name = format!("race-{round}");
        let mut stores = Vec::new();
        for _ in 0..3 {
            stores.push(open().await);
        }
        let holders =
            futures_util::future::join_all(stores.iter().zip(["a", "b", "c"]).map(|(s, who)| {
                let name = name.clone();
                async move {
                    s.try_lease(&name, who, &serde_json::json!({}), 60_000)
                        .await
                        .unwrap()
                }
            }))
            .await;
        let first = &holders[0].holder;
        assert!(
            holders.iter().all(|l| &l.holder == first && l.epoch == 1),
            "{holders:?}"
        );
    }
}

async fn replica_heartbeats_use_one_clock(open: Open) {
    let s = open().await;
    let t = s
        .put_replica("a", &serde_json::json!({"agents": {}}))
        .await
        .unwrap();
    s.put_replica("b", &serde_json::json!({"site": "B"}))
        .await
        .unwrap();
    let (list, now) = s.list_replicas().await.unwrap();
    assert_eq!(
        list.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert_eq!(list[0].seen_ms, t);
    assert!(now >= t, "the database's clock goes forward");
    assert_eq!(list[1].body["site"], "B");
}

/// Hazard: a replica that takes over restores a different alarm state than was committed
/// (acknowledged alarms shown unacknowledged, shelves lost).
async fn the_alarm_engine_snapshot_round_trips(open: Open) {
    use dcim_alarms::{Action, Engine, EngineConfig, Rule};
    let s = open().await;
    assert!(
        store::load_alarm_snapshot(s.as_ref())
            .await
            .unwrap()
            .is_none()
    );
    let mut e = Engine::new(Rule::defaults(), EngineConfig::default()).unwrap();
    let t = 1_800_000_000_000;
    let sample = |device: &str, on: bool, ts: i64| dcim_points::Sample {
        device: device.into(),
        point: "on_battery".into(),
        role: dcim_points::Role::new("ups.on_battery").unwrap(),
        labels: Default::default(),
        value: Some(dcim_points::Value::Bool(on)),
        unit: String::new(),
        quality: dcim_points::Quality::Good,
        ts_ms: ts,
    };
    e.on_sample(&sample("ups-1", true, t), t);
    e.on_sample(&sample("ups-2", true, t), t);
    e.act("ups-on-battery:ups-1", Action::Ack, "op", t + 1)
        .unwrap();
    e.act(
        "ups-on-battery:ups-2",
        Action::Shelve {
            until_ms: t + 60_000,
            reason: "sensor replaced".into(),
        },
        "op",
        t + 2,
    )
    .unwrap();
    let mut batch = Batch::default();
    for a in e.alarms() {
        batch.docs.push((
            store::ALARM_DOC.into(),
            DocRecord {
                id: a.id.clone(),
                updated_ms: t,
                body: serde_json::to_value(a).unwrap(),
            },
        ));
    }
    batch.docs.push(store::alarm_engine_doc(&e, t).unwrap());
    s.commit_batch(&batch).await.unwrap();
    let other = open().await;
    let snap = store::load_alarm_snapshot(other.as_ref())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(snap, e.snapshot());
}

type Case = (&'static str, fn(Open) -> LocalBoxFuture<'static, ()>);

fn cases() -> Vec<Case> {
    vec![
        ("events_are_unique_ordered_and_durable", |o| {
            Box::pin(events_are_unique_ordered_and_durable(o))
        }),
        ("stream_marks_never_go_back", |o| {
            Box::pin(stream_marks_never_go_back(o))
        }),
        ("agents_users_sessions_and_tokens", |o| {
            Box::pin(agents_users_sessions_and_tokens(o))
        }),
        ("accounts_disable_expire_and_revoke", |o| {
            Box::pin(accounts_disable_expire_and_revoke(o))
        }),
        ("incidents_round_trip_one_document_each", |o| {
            Box::pin(incidents_round_trip_one_document_each(o))
        }),
        ("docs_carry_their_audit_and_ids_increase", |o| {
            Box::pin(docs_carry_their_audit_and_ids_increase(o))
        }),
        (
            "batches_commit_together_and_the_journal_reads_by_cursor",
            |o| Box::pin(batches_commit_together_and_the_journal_reads_by_cursor(o)),
        ),
        ("concurrent_journal_writers_commit_in_id_order", |o| {
            Box::pin(concurrent_journal_writers_commit_in_id_order(o))
        }),
        ("the_lease_has_one_holder_and_fences_a_deposed_one", |o| {
            Box::pin(the_lease_has_one_holder_and_fences_a_deposed_one(o))
        }),
        ("racing_contenders_get_one_holder", |o| {
            Box::pin(racing_contenders_get_one_holder(o))
        }),
        ("replica_heartbeats_use_one_clock", |o| {
            Box::pin(replica_heartbeats_use_one_clock(o))
        }),
        ("the_alarm_engine_snapshot_round_trips", |o| {
            Box::pin(the_alarm_engine_snapshot_round_trips(o))
        }),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_conformance() {
    for (name, case) in cases() {
        eprintln!("sqlite: {name}");
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let open: Open = Arc::new(move || {
            let dir = dir.clone();
            Box::pin(async move {
                Arc::new(SqliteStore::open(dir.path()).await.unwrap()) as Arc<dyn Store>
            })
        });
        case(open).await;
    }
}

fn pg_config(url: String) -> StoreConfig {
    StoreConfig {
        backend: StoreBackend::Postgres,
        urls: vec![url],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_conformance() {
    let pg = match PgServer::start(&[("fsync", "off")]) {
        Ok(p) => p,
        Err(why) => return skip_or_fail(&format!("PostgreSQL: {why}")),
    };
    for (i, (name, case)) in cases().into_iter().enumerate() {
        eprintln!("postgres: {name}");
        let url = pg.create_db(&format!("case{i}")).await;
        let open: Open = Arc::new(move || {
            let cfg = pg_config(url.clone());
            Box::pin(async move { Arc::new(PgStore::open(&cfg).await.unwrap()) as Arc<dyn Store> })
        });
        case(open).await;
    }
}

/// Hazard: after a failover the server keeps writing to the node that is now a standby (every
/// write fails) or to one that is down, instead of the new primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_store_uses_the_primary_among_its_nodes() {
    let primary = match PgServer::start(&[("fsync", "off")]) {
        Ok(p) => p,
        Err(why) => return skip_or_fail(&format!("PostgreSQL: {why}")),
    };
    let standby = PgServer::start(&[("fsync", "off")]).unwrap();
    // A server started with standby.signal stays in recovery: a standby without a primary.
    let mut standby = standby;
    standby.stop();
    let data = standby.dir.path().join("data");
    std::fs::write(data.join("standby.signal"), "").unwrap();
    common::pg::hand_over(&data, common::pg::run_as().unwrap()).unwrap();
    let standby = restart(standby);
    let down = common::pg::free_port();
    let url = primary.create_db("dcim").await;
    let cfg = StoreConfig {
        backend: StoreBackend::Postgres,
        urls: vec![
            format!("postgres://dcim@127.0.0.1:{down}/dcim"),
            standby.url("postgres"),
            url,
        ],
        connect_timeout_ms: 1000,
        ..Default::default()
    };
    let s = PgStore::open(&cfg).await.unwrap();
    assert_eq!(s.node(), format!("127.0.0.1:{}", primary.port));
    s.insert_events(&[ev("a", 1, 1, "d")]).await.unwrap();
    assert_eq!(
        s.event_high_water().await.unwrap(),
        vec![("a".into(), "".into(), 1)]
    );
}

fn restart(mut pg: PgServer) -> PgServer {
    let bin = common::pg::bin_dir().unwrap();
    let ids = common::pg::run_as().unwrap();
    let data = pg.dir.path().join("data");
    let log = std::fs::OpenOptions::new()
        .append(true)
        .open(pg.dir.path().join("postgres.log"))
        .unwrap();
    let child = common::pg::command(bin.join("postgres"), ids)
        .arg("-D")
        .arg(&data)
        .args(["-p", &pg.port.to_string(), "-k"])
        .arg(pg.dir.path())
        .args(["-c", "listen_addresses=127.0.0.1"])
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    pg.adopt(child);
    pg
}

/// Hazard: the two backends at different schema versions (a PostgreSQL replica missing the
/// spool epoch in the event key would drop a recreated spool's events as duplicates), or an
/// older binary opening a database a newer one wrote and damaging it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_backends_have_one_schema_version_and_refuse_a_newer_one() {
    use sqlx::Connection;
    let newer = store::SCHEMA_VERSION + 1;
    // SQLite.
    let dir = tempfile::tempdir().unwrap();
    SqliteStore::open(dir.path()).await.unwrap().close().await;
    let url = format!("sqlite://{}", store::db_path(dir.path()).display());
    let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let v: i64 = sqlx::query_scalar("SELECT MAX(version) FROM schema_migrations")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(v, store::SCHEMA_VERSION);
    sqlx::query("INSERT INTO schema_migrations (version, applied_ms) VALUES (?, 0)")
        .bind(newer)
        .execute(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();
    let err = SqliteStore::open(dir.path()).await.err().expect("refused");
    assert!(err.to_string().contains("newer"), "{err}");
    // PostgreSQL.
    let pg = match PgServer::start(&[("fsync", "off")]) {
        Ok(p) => p,
        Err(why) => return skip_or_fail(&format!("PostgreSQL: {why}")),
    };
    let url = pg.create_db("schema").await;
    let cfg = pg_config(url.clone());
    PgStore::open(&cfg).await.unwrap().close().await;
    let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
    let v: i64 = sqlx::query_scalar("SELECT MAX(version) FROM schema_migrations")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(v, store::SCHEMA_VERSION, "the same version as SQLite");
    let epoch_in_key: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.key_column_usage WHERE table_name = 'events' AND constraint_name = 'events_pkey' AND column_name = 'epoch'",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!(epoch_in_key, 1, "the spool epoch is in the events key");
    sqlx::query("INSERT INTO schema_migrations (version, applied_ms) VALUES ($1, 0)")
        .bind(newer)
        .execute(&mut c)
        .await
        .unwrap();
    let err = PgStore::open(&cfg).await.err().expect("refused");
    assert!(err.to_string().contains("newer"), "{err}");
    // A full disk on PostgreSQL is SQLSTATE 53100: recognised as SQLite's SQLITE_FULL is, so
    // events wait in the spools and alarm commits are retried rather than counted as lost.
    let e = sqlx::query(
        "DO $$ BEGIN RAISE EXCEPTION 'could not extend file' USING ERRCODE = 'disk_full'; END $$",
    )
    .execute(&mut c)
    .await
    .unwrap_err();
    assert!(store::is_disk_full(&e), "{e}");
    let other = sqlx::query("SELECT 1/0").execute(&mut c).await.unwrap_err();
    assert!(!store::is_disk_full(&other), "{other}");
}
