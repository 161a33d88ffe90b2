use super::*;
use proptest::prelude::*;

fn cfg(dir: &Path) -> SpoolConfig {
    let mut c = SpoolConfig::new(dir);
    c.max_bytes = 1 << 20;
    c.segment_bytes = 4096;
    c.consumers = vec!["a".into()];
    c
}

/// An empty spool with [`cfg`] in a new temporary directory.
fn fresh() -> (tempfile::TempDir, Spool) {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = Spool::open(cfg(dir.path())).unwrap();
    (dir, s)
}

fn payload(class: Class, seq: u64, n: usize) -> Vec<u8> {
    let mut p = format!("{class}:{seq}:").into_bytes();
    p.resize(p.len() + n, b'x');
    p
}

/// Appends `n` records of `class`, each counting `count` items, with payloads of `len` bytes.
fn append_n(s: &mut Spool, class: Class, n: usize, count: u32, len: usize) {
    for _ in 0..n {
        s.append(class, count, 0, |q| payload(class, q, len))
            .unwrap();
    }
}

fn all(spool: &Spool, class: Class) -> Vec<Record> {
    spool.read_after(class, 0, usize::MAX, usize::MAX).unwrap()
}

fn seqs(records: &[Record]) -> Vec<u64> {
    records.iter().map(|r| r.seq).collect()
}

#[test]
fn sequence_numbers_start_at_one_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, rec) = Spool::open(cfg(dir.path())).unwrap();
    assert_eq!(rec.records, [0, 0]);
    for i in 1..=3 {
        assert_eq!(
            s.append(Class::Event, 1, 0, |q| payload(Class::Event, q, 10))
                .unwrap(),
            i
        );
    }
    assert_eq!(
        s.append(Class::Telemetry, 5, 0, |q| payload(Class::Telemetry, q, 10))
            .unwrap(),
        1
    );
    drop(s);
    let (mut s, rec) = Spool::open(cfg(dir.path())).unwrap();
    assert_eq!(rec.records, [3, 1]);
    assert_eq!(seqs(&all(&s, Class::Event)), vec![1, 2, 3]);
    assert_eq!(
        s.append(Class::Event, 1, 0, |q| payload(Class::Event, q, 1))
            .unwrap(),
        4
    );
}

#[test]
fn a_spool_keeps_its_epoch_and_a_wiped_one_draws_a_new_one() {
    // Hazard: a wiped spool restarting its sequence numbers at 1 under the same identity, so
    // the server drops everything it sends as duplicates of the old stream.
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = Spool::open(cfg(dir.path())).unwrap();
    let epoch = s.epoch().to_owned();
    assert_eq!(epoch.len(), 16);
    assert!(epoch.chars().all(|c| c.is_ascii_hexdigit()), "{epoch}");
    drop(s);
    let (s, _) = Spool::open(cfg(dir.path())).unwrap();
    assert_eq!(s.epoch(), epoch, "kept across a reopen");
    drop(s);
    std::fs::remove_dir_all(dir.path()).unwrap();
    let (s, _) = Spool::open(cfg(dir.path())).unwrap();
    assert_ne!(s.epoch(), epoch, "a new spool is a new epoch");
    drop(s);
    // A spool written before epochs (no `epoch` in meta.json) draws one and keeps its numbers.
    let old = tempfile::tempdir().unwrap();
    std::fs::write(
        old.path().join("meta.json"),
        r#"{"format":1,"next_seq":{"event":41},"thinned_samples":0,"thinned_batches":0,"refused_batches":0,"acked":{}}"#,
    )
    .unwrap();
    let (mut s, _) = Spool::open(cfg(old.path())).unwrap();
    assert_eq!(s.epoch().len(), 16);
    assert_eq!(
        s.append(Class::Event, 1, 0, |q| payload(Class::Event, q, 1))
            .unwrap(),
        41
    );
    // Records before the epoch was drawn are still sent without one.
    assert_eq!(s.epoch_of(Class::Event, 40), "");
    assert_eq!(s.epoch_of(Class::Event, 41), s.epoch());
    assert_eq!(
        s.epoch_of(Class::Telemetry, 1),
        s.epoch(),
        "no old telemetry"
    );
    let e = s.epoch().to_owned();
    drop(s);
    let (s, _) = Spool::open(cfg(old.path())).unwrap();
    assert_eq!((s.epoch(), s.epoch_of(Class::Event, 40)), (e.as_str(), ""));
}

#[test]
fn the_payload_builder_sees_the_assigned_sequence_number() {
    let (_dir, mut s) = fresh();
    s.append(Class::Event, 1, 0, |q| format!("seq={q}").into_bytes())
        .unwrap();
    assert_eq!(all(&s, Class::Event)[0].payload, b"seq=1");
}

#[test]
fn a_second_process_cannot_open_the_same_spool() {
    let dir = tempfile::tempdir().unwrap();
    let (_s, _) = Spool::open(cfg(dir.path())).unwrap();
    assert!(matches!(
        Spool::open(cfg(dir.path())),
        Err(SpoolError::Locked(_))
    ));
}

#[test]
fn acknowledged_segments_are_deleted_and_sequence_numbers_never_go_back() {
    let (dir, mut s) = fresh();
    append_n(&mut s, Class::Event, 100, 1, 200);
    let segs_before = s.stats().segments;
    assert!(segs_before > 3, "segments rolled: {segs_before}");
    s.ack("a", Class::Event, 100).unwrap();
    assert_eq!(s.stats().segments, 1, "only the active segment is left");
    assert_eq!(s.stats().pending, [0, 0]);
    assert!(
        s.read_after(Class::Event, 100, 10, usize::MAX)
            .unwrap()
            .is_empty()
    );
    assert!(
        all(&s, Class::Event).len() < 20,
        "acknowledged records left on disk"
    );
    drop(s);
    // Even with every old segment gone, numbering continues.
    let (mut s, _) = Spool::open(cfg(dir.path())).unwrap();
    assert_eq!(s.append(Class::Event, 1, 0, |_| vec![1]).unwrap(), 101);
    s.ack("a", Class::Event, 101).unwrap();
    // Roll a new segment so the old active one is collected too.
    append_n(&mut s, Class::Event, 30, 1, 200);
    s.ack("a", Class::Event, 131).unwrap();
    drop(s);
    let (mut s, _) = Spool::open(cfg(dir.path())).unwrap();
    assert_eq!(s.append(Class::Event, 1, 0, |_| vec![1]).unwrap(), 132);
}

/// Two consumers, `site-a` and `site-b`; 60 events (200 bytes each) of which `site-a`
/// acknowledged all. The configuration is for reopening.
fn sixty_events_site_a_acked() -> (tempfile::TempDir, SpoolConfig, Spool) {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.consumers = vec!["site-a".into(), "site-b".into()];
    let (mut s, _) = Spool::open(c.clone()).unwrap();
    append_n(&mut s, Class::Event, 60, 1, 200);
    s.ack("site-a", Class::Event, 60).unwrap();
    (dir, c, s)
}

#[test]
fn a_record_is_removed_only_when_every_consumer_acknowledged_it() {
    let (_dir, c, mut s) = sixty_events_site_a_acked();
    assert_eq!(all(&s, Class::Event).len(), 60, "site-b still needs them");
    assert_eq!(s.pending_for("site-a", Class::Event), 0);
    assert_eq!(s.pending_for("site-b", Class::Event), 60);
    s.ack("site-b", Class::Event, 30).unwrap();
    let left = seqs(&all(&s, Class::Event));
    assert!(left[0] <= 31 && *left.last().unwrap() == 60);
    assert!(matches!(
        s.ack("nobody", Class::Event, 1),
        Err(SpoolError::UnknownConsumer(_))
    ));
    s.flush().unwrap();
    drop(s);
    let (s, _) = Spool::open(c).unwrap();
    assert_eq!(s.acked("site-a", Class::Event), 60);
    assert_eq!(s.acked("site-b", Class::Event), 30);
}

#[test]
fn a_detached_consumer_no_longer_holds_records_and_misses_what_went_meanwhile() {
    // Hazard: site B is dead, its broker never acknowledges; without detaching, the spool
    // fills with records site A already has, and then site A's telemetry is refused.
    let (_dir, c, mut s) = sixty_events_site_a_acked();
    let lag = s.lag("site-b", 1_000);
    assert_eq!(lag.records, [60, 0]);
    assert!(lag.bytes > 60 * 200);
    assert_eq!((lag.stuck_ms, lag.missed), (0, [0, 0]));
    assert_eq!(
        s.lag("site-b", 9_000).stuck_ms,
        8_000,
        "no progress for 8 s"
    );
    assert_eq!(
        s.lag("site-a", 9_000).stuck_ms,
        0,
        "nothing pending: no lag"
    );
    assert!(s.detach("site-b", 9_000).unwrap());
    assert!(!s.detach("site-b", 9_500).unwrap(), "once");
    assert_eq!(s.detach_count("site-b"), 1);
    let left = seqs(&all(&s, Class::Event));
    assert!(left[0] > 50, "segments site A has are removed: {left:?}");
    assert_eq!(
        s.stats().pending[0],
        0,
        "pending counts the consumers that hold records"
    );
    // A reopen keeps the detachment and its count.
    s.flush().unwrap();
    drop(s);
    let (mut s, _) = Spool::open(c.clone()).unwrap();
    assert_eq!(s.detached().len(), 1);
    assert!(s.is_detached("site-b"));
    // Site B returns: it gets what is still in the spool after its cursor; the rest is missed.
    let lag = s.lag("site-b", 20_000);
    assert!(lag.missed[0] >= 50, "{lag:?}");
    assert_eq!(lag.missed[0] + lag.records[0], 60);
    let first = left[0];
    assert_eq!(
        s.read_after(Class::Event, 0, 1000, 1 << 20).unwrap()[0].seq,
        first
    );
    s.ack("site-b", Class::Event, 60).unwrap();
    assert_eq!(s.lag("site-b", 21_000).records, [0, 0]);
    assert!(s.attach("site-b").unwrap());
    assert!(!s.attach("site-b").unwrap());
    // Attached again, it holds records as before.
    s.append(Class::Event, 1, 0, |q| payload(Class::Event, q, 200))
        .unwrap();
    s.ack("site-a", Class::Event, 61).unwrap();
    assert_eq!(s.pending_for("site-b", Class::Event), 1);
    assert_eq!(s.stats().pending[0], 1);
    // Both detached: nothing is let go that nobody acknowledged.
    s.detach("site-a", 30_000).unwrap();
    s.detach("site-b", 30_000).unwrap();
    assert_eq!(
        s.stats().pending[0],
        1,
        "every consumer holds records again"
    );
    assert!(matches!(
        s.detach("nobody", 1),
        Err(SpoolError::UnknownConsumer(_))
    ));
}

#[test]
fn a_torn_tail_is_cut_and_everything_before_it_kept() {
    let (dir, mut s) = fresh();
    append_n(&mut s, Class::Event, 5, 1, 30);
    let (path, len) = s.durable_tail(Class::Event).unwrap();
    drop(s);
    // A half-written sixth record.
    let mut rec = Vec::new();
    format::encode_record(6, 1, &payload(Class::Event, 6, 30), &mut rec);
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all_at(&rec[..rec.len() / 2], len).unwrap();
    drop(f);
    let (mut s, rec) = Spool::open(cfg(dir.path())).unwrap();
    assert_eq!(rec.truncated.len(), 1);
    assert_eq!(fs::metadata(&path).unwrap().len(), len);
    assert_eq!(seqs(&all(&s, Class::Event)), vec![1, 2, 3, 4, 5]);
    assert_eq!(s.append(Class::Event, 1, 0, |_| vec![]).unwrap(), 6);
}

#[test]
fn telemetry_is_thinned_oldest_first_and_the_loss_is_counted_and_persisted() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.max_bytes = 16 * 1024;
    c.segment_bytes = 2048;
    c.telemetry_fsync = FsyncPolicy::Never;
    let (mut s, _) = Spool::open(c.clone()).unwrap();
    append_n(&mut s, Class::Telemetry, 200, 10, 180);
    let st = s.stats();
    assert!(st.bytes <= c.max_bytes, "{st:?}");
    assert!(st.thinned_batches > 0);
    assert_eq!(st.thinned_samples, st.thinned_batches * 10);
    let left = seqs(&all(&s, Class::Telemetry));
    // The newest survive, contiguous up to the last one: loss is oldest-first.
    assert_eq!(*left.last().unwrap(), 200);
    assert!(left.windows(2).all(|w| w[1] == w[0] + 1));
    assert_eq!(left.len() as u64 + st.thinned_batches, 200);
    drop(s);
    let (s, _) = Spool::open(c).unwrap();
    assert_eq!(s.stats().thinned_samples, st.thinned_samples);
}

#[test]
fn events_are_never_thinned_and_telemetry_is_refused_when_events_fill_the_spool() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.max_bytes = 8 * 1024;
    c.segment_bytes = 1024;
    c.event_fsync = FsyncPolicy::Never;
    c.telemetry_fsync = FsyncPolicy::Never;
    let (mut s, _) = Spool::open(c.clone()).unwrap();
    append_n(&mut s, Class::Telemetry, 10, 4, 100);
    append_n(&mut s, Class::Event, 100, 1, 100);
    let st = s.stats();
    assert!(st.events_over_budget);
    assert_eq!(st.thinned_batches, 10, "all telemetry went to make room");
    assert_eq!(seqs(&all(&s, Class::Event)), (1..=100).collect::<Vec<_>>());
    let err = s
        .append(Class::Telemetry, 7, 0, |q| payload(Class::Telemetry, q, 10))
        .unwrap_err();
    assert!(
        matches!(err, SpoolError::FullOfEvents { count: 7, .. }),
        "{err}"
    );
    let st = s.stats();
    assert_eq!(st.refused_batches, 1);
    assert_eq!(st.thinned_samples, 10 * 4 + 7);
    // Once the events are delivered, telemetry is accepted again.
    s.ack("a", Class::Event, 100).unwrap();
    s.append(Class::Telemetry, 1, 0, |q| payload(Class::Telemetry, q, 10))
        .unwrap();
    assert!(!s.stats().events_over_budget);
}

#[test]
fn disk_full_is_reported_and_leaves_the_spool_valid() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.reserve_bytes = 0; // nothing to free: the event cannot be written
    let (mut s, _) = Spool::open(c.clone()).unwrap();
    s.append(Class::Event, 1, 0, |q| payload(Class::Event, q, 50))
        .unwrap();
    s.fail_writes_after(Some(30));
    let err = s
        .append(Class::Event, 1, 0, |q| payload(Class::Event, q, 50))
        .unwrap_err();
    assert!(matches!(err, SpoolError::DiskFull { .. }), "{err}");
    assert!(err.to_string().contains("disk full"));
    s.fail_writes_after(None);
    // The failed record did not take a sequence number and left no bytes behind.
    assert_eq!(
        s.append(Class::Event, 1, 0, |q| payload(Class::Event, q, 50))
            .unwrap(),
        2
    );
    drop(s);
    let (s, rec) = Spool::open(c).unwrap();
    assert!(rec.truncated.is_empty(), "{rec:?}");
    assert_eq!(seqs(&all(&s, Class::Event)), vec![1, 2]);
}

/// Hazard: on a full disk old telemetry was not thinned to make room for events (613 events
/// waited in memory, 13 were lost at shutdown).
#[test]
fn on_a_full_disk_events_take_the_room_of_old_telemetry_then_the_reserve() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.reserve_bytes = 8 * 1024;
    let (mut s, _) = Spool::open(c.clone()).unwrap();
    assert_eq!(s.stats().reserve_bytes, 8 * 1024);
    // Several closed telemetry segments, then the disk is full.
    append_n(&mut s, Class::Telemetry, 20, 10, 1000);
    let segments = s.stats().segments;
    assert!(segments > 3, "{segments}");
    s.fail_writes_after(Some(0));
    // Telemetry is refused (the caller counts it) ...
    assert!(matches!(
        s.append(Class::Telemetry, 10, 0, |q| payload(
            Class::Telemetry,
            q,
            1000
        )),
        Err(SpoolError::DiskFull { .. })
    ));
    // ... events are written in the room of the oldest telemetry.
    let mut events = 0;
    while s.stats().disk_full_thinned_batches < 3 {
        s.append(Class::Event, 1, 0, |q| payload(Class::Event, q, 500))
            .unwrap();
        events += 1;
    }
    let st = s.stats();
    assert!(st.thinned_batches >= 3, "{st:?}");
    assert_eq!(
        st.reserve_bytes,
        8 * 1024,
        "telemetry goes before the reserve"
    );
    // With only the newest telemetry segment left, the reserve is used.
    while s.stats().reserve_bytes > 0 {
        s.append(Class::Event, 1, 0, |q| payload(Class::Event, q, 500))
            .unwrap();
        events += 1;
    }
    for _ in 0..10 {
        s.append(Class::Event, 1, 0, |q| payload(Class::Event, q, 500))
            .unwrap();
        events += 1;
    }
    assert!(
        s.stats().pending[1] > 0,
        "the newest telemetry segment is kept"
    );
    assert_eq!(
        seqs(&all(&s, Class::Event)),
        (1..=events).collect::<Vec<_>>()
    );
    // Space comes back: the reserve is written again (not before 10 s after the last try).
    s.fail_writes_after(None);
    s.tick(5_000).unwrap();
    s.tick(20_000).unwrap();
    assert_eq!(s.stats().reserve_bytes, 8 * 1024);
    let thinned = s.stats().thinned_samples;
    drop(s);
    let (s, rec) = Spool::open(c).unwrap();
    assert!(rec.truncated.is_empty(), "{rec:?}");
    assert_eq!(s.stats().thinned_samples, thinned, "the loss is persisted");
    assert_eq!(all(&s, Class::Event).len() as u64, events);
}

#[test]
fn interval_policy_hides_records_until_they_are_synced() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.telemetry_fsync = FsyncPolicy::Interval(Duration::from_millis(100));
    let (mut s, _) = Spool::open(c).unwrap();
    s.append(Class::Telemetry, 1, 1000, |_| b"a".to_vec())
        .unwrap();
    s.append(Class::Telemetry, 1, 1050, |_| b"b".to_vec())
        .unwrap();
    assert!(all(&s, Class::Telemetry).is_empty());
    s.tick(1099).unwrap();
    assert!(all(&s, Class::Telemetry).is_empty());
    s.tick(1100).unwrap();
    assert_eq!(seqs(&all(&s, Class::Telemetry)), vec![1, 2]);
    let (_, synced) = s.durable_tail(Class::Telemetry).unwrap();
    assert_eq!(synced, s.classes[1].segments[0].len);
}

/// Hazard: publishing telemetry before its fsync, a power cut loses records the center already
/// has; if the spool then gave their sequence numbers to new records, the center would drop the
/// new ones as duplicates, silently. The durable reservation must make the numbers move on.
#[test]
fn telemetry_visible_before_sync_never_reuses_a_published_number_after_a_power_cut() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.segment_bytes = 1 << 20;
    c.telemetry_fsync = FsyncPolicy::Interval(Duration::from_secs(10));
    c.telemetry_visible_before_sync = true;
    let (mut s, _) = Spool::open(c.clone()).unwrap();
    for (i, t) in [1000, 1010, 1020].into_iter().enumerate() {
        s.append(Class::Telemetry, 1, t, |seq| {
            payload(Class::Telemetry, seq, i)
        })
        .unwrap();
    }
    // Readable at once, long before the 10 s fsync interval.
    assert_eq!(seqs(&all(&s, Class::Telemetry)), vec![1, 2, 3]);
    // Events still wait for their fsync (Always) before they are visible: unchanged.
    s.append(Class::Event, 1, 1030, |seq| payload(Class::Event, seq, 1))
        .unwrap();
    assert_eq!(seqs(&all(&s, Class::Event)), vec![1]);
    // Power cut: everything after the last fsync is lost.
    cut_past_durable(&s, Class::Telemetry, 0, &[]);
    drop(s);
    let (mut s, _) = Spool::open(c).unwrap();
    assert!(
        all(&s, Class::Telemetry).is_empty(),
        "the unsynced records are gone"
    );
    let next = s
        .append(Class::Telemetry, 1, 2000, |seq| {
            payload(Class::Telemetry, seq, 0)
        })
        .unwrap();
    assert!(
        next > 3,
        "published numbers 1..=3 handed out again as {next}"
    );
    assert_eq!(seqs(&all(&s, Class::Telemetry)), vec![next]);
    assert_eq!(seqs(&all(&s, Class::Event)), vec![1]);
    // A clean shutdown makes everything durable: the reservation is given back, and the next
    // start continues right after the last record.
    s.flush().unwrap();
    let cfg2 = s.config().clone();
    drop(s);
    let (mut s, _) = Spool::open(cfg2).unwrap();
    let after = s
        .append(Class::Telemetry, 1, 3000, |seq| {
            payload(Class::Telemetry, seq, 0)
        })
        .unwrap();
    assert_eq!(after, next + 1);
}

#[test]
fn read_after_respects_limits_and_order() {
    let (_dir, mut s) = fresh();
    append_n(&mut s, Class::Event, 50, 1, 100);
    assert_eq!(
        seqs(&s.read_after(Class::Event, 10, 3, usize::MAX).unwrap()),
        vec![11, 12, 13]
    );
    let by_bytes = s.read_after(Class::Event, 0, 100, 250).unwrap();
    assert_eq!(by_bytes.len(), 2);
    assert_eq!(s.read_after(Class::Event, 0, 100, 1).unwrap().len(), 1);
    assert!(s.read_after(Class::Event, 50, 10, 1000).unwrap().is_empty());
}

#[test]
fn a_record_damaged_after_it_was_written_is_skipped_and_counted() {
    let (_dir, mut s) = fresh();
    append_n(&mut s, Class::Event, 3, 1, 30);
    let (path, _) = s.durable_tail(Class::Event).unwrap();
    let second = s.classes[0].segments[0].records[1];
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all_at(b"X", second.offset + 25).unwrap();
    assert_eq!(seqs(&all(&s, Class::Event)), vec![1, 3]);
    assert_eq!(s.stats().corrupt_skipped, 1);
}

// ---- property test: append / ack / crash / reopen ----

#[derive(Debug, Clone)]
enum Op {
    Append(Class, usize),
    /// Acknowledge the next n readable records of a class.
    Ack(Class, usize),
    Tick(u64),
    /// Power cut: cut the newest segment of each class at a random point past its durable
    /// length (fraction in 0..=1000), then maybe leave garbage behind.
    Crash(u16, u16, Vec<u8>),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    let class = prop_oneof![Just(Class::Event), Just(Class::Telemetry)];
    prop_oneof![
        6 => (class.clone(), 0usize..300).prop_map(|(c, n)| Op::Append(c, n)),
        2 => (class, 1usize..8).prop_map(|(c, n)| Op::Ack(c, n)),
        2 => (1u64..400).prop_map(Op::Tick),
        1 => (0u16..=1000, 0u16..=1000, proptest::collection::vec(any::<u8>(), 0..40))
            .prop_map(|(a, b, g)| Op::Crash(a, b, g)),
        1 => Just(Op::Reopen),
    ]
}

fn cut_past_durable(spool: &Spool, class: Class, frac: u16, garbage: &[u8]) {
    let Some((path, durable)) = spool.durable_tail(class) else {
        return;
    };
    let len = fs::metadata(&path).unwrap().len();
    let cut = durable + (len - durable) * u64::from(frac) / 1000;
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(cut).unwrap();
    if cut < len || !garbage.is_empty() {
        f.write_all_at(garbage, cut).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn nothing_spooled_is_lost_or_reordered(ops in proptest::collection::vec(op(), 1..80)) {
        let dir = tempfile::tempdir().unwrap();
        let mut c = cfg(dir.path());
        c.segment_bytes = 1024;
        c.telemetry_fsync = FsyncPolicy::Interval(Duration::from_millis(200));
        c.meta_interval = Duration::from_millis(300);
        let (mut spool, _) = Spool::open(c.clone()).unwrap();
        let mut now = 0u64;
        // Model: every event appended (all durable under `Always`), and every telemetry record
        // that became visible (durable); both as (seq, payload).
        let mut events: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut telemetry: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
        let mut acked = [0u64; 2];
        let mut max_visible_tel = 0u64;
        for op in ops {
            match op {
                Op::Append(class, n) => {
                    let seq = spool.append(class, 1, now, |q| payload(class, q, n)).unwrap();
                    match class {
                        Class::Event => {
                            if let Some((last, _)) = events.last() {
                                prop_assert_eq!(seq, last + 1, "events have no gaps");
                            }
                            events.push((seq, payload(class, seq, n)));
                        }
                        Class::Telemetry => {
                            prop_assert!(seq > max_visible_tel);
                            telemetry.insert(seq, payload(class, seq, n));
                        }
                    }
                }
                Op::Ack(class, n) => {
                    let recs = spool.read_after(class, acked[class.index()], n, usize::MAX).unwrap();
                    if let Some(last) = recs.last() {
                        spool.ack("a", class, last.seq).unwrap();
                        acked[class.index()] = last.seq;
                    }
                }
                Op::Tick(dt) => {
                    now += dt;
                    spool.tick(now).unwrap();
                }
                Op::Crash(a, b, garbage) => {
                    cut_past_durable(&spool, Class::Event, a, &garbage);
                    cut_past_durable(&spool, Class::Telemetry, b, &garbage);
                    drop(spool);
                    spool = Spool::open(c.clone()).unwrap().0;
                    // Unsynced telemetry may be gone; it was never visible.
                    let present: Vec<u64> = seqs(&all(&spool, Class::Telemetry));
                    telemetry.retain(|s, _| *s <= max_visible_tel || present.contains(s));
                    acked = Class::ALL.map(|cl| spool.acked("a", cl));
                }
                Op::Reopen => {
                    drop(spool);
                    spool = Spool::open(c.clone()).unwrap().0;
                    acked = Class::ALL.map(|cl| spool.acked("a", cl));
                }
            }
            // Invariants after every step.
            let ev = all(&spool, Class::Event);
            prop_assert!(ev.windows(2).all(|w| w[1].seq == w[0].seq + 1), "events in order, no gaps");
            for (seq, p) in &events {
                if *seq > spool.acked("a", Class::Event) {
                    let found = ev.iter().find(|r| r.seq == *seq);
                    prop_assert!(found.is_some(), "event {} lost", seq);
                    prop_assert_eq!(&found.unwrap().payload, p);
                }
            }
            let tel = all(&spool, Class::Telemetry);
            prop_assert!(tel.windows(2).all(|w| w[1].seq > w[0].seq), "telemetry in order");
            for r in &tel {
                max_visible_tel = max_visible_tel.max(r.seq);
                prop_assert_eq!(Some(&r.payload), telemetry.get(&r.seq));
            }
            let from = spool.acked("a", Class::Telemetry) + 1;
            for (seq, _) in telemetry.range(from..).take_while(|(s, _)| **s <= max_visible_tel) {
                prop_assert!(tel.iter().any(|r| r.seq == *seq), "visible telemetry {} lost", seq);
            }
        }
    }
}
