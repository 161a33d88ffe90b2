//! `[spool]` and `[batch]`: where and how events and samples are kept on disk, and how
//! telemetry is batched into the spool.

use super::{ConfigError, Ctx};
use dcim_spool::FsyncPolicy;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;
use toml::Spanned;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolSettings {
    pub dir: PathBuf,
    pub max_bytes: u64,
    pub segment_bytes: u64,
    pub event_fsync: FsyncPolicy,
    pub telemetry_fsync: FsyncPolicy,
    /// Disk space the spool keeps in its `RESERVE` file for events on a full disk.
    pub reserve_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchSettings {
    pub max_samples: usize,
    pub max_delay: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSpool {
    dir: Spanned<String>,
    #[serde(default = "d_max_mb")]
    max_mb: Spanned<u64>,
    #[serde(default = "d_segment_kb")]
    segment_kb: Spanned<u64>,
    #[serde(default = "d_always")]
    event_fsync: Spanned<String>,
    #[serde(default = "d_interval")]
    telemetry_fsync: Spanned<String>,
    #[serde(default = "d_fsync_ms")]
    fsync_interval_ms: u64,
    #[serde(default = "d_reserve_kb")]
    reserve_kb: u64,
}

fn d_reserve_kb() -> u64 {
    1024
}

fn d_max_mb() -> Spanned<u64> {
    Spanned::new(0..0, 256)
}
fn d_segment_kb() -> Spanned<u64> {
    Spanned::new(0..0, 4096)
}
fn d_always() -> Spanned<String> {
    Spanned::new(0..0, "always".into())
}
fn d_interval() -> Spanned<String> {
    Spanned::new(0..0, "interval".into())
}
fn d_fsync_ms() -> u64 {
    1000
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBatch {
    #[serde(default = "d_batch_samples")]
    max_samples: Spanned<usize>,
    #[serde(default = "d_batch_ms")]
    max_delay_ms: u64,
}

fn d_batch_samples() -> Spanned<usize> {
    Spanned::new(0..0, 500)
}
fn d_batch_ms() -> u64 {
    1000
}

/// The `[spool]` section: a directory, a byte budget of at least four segments, fsync policies.
pub(super) fn spool(ctx: &Ctx, sp: &Spanned<RawSpool>) -> Result<SpoolSettings, ConfigError> {
    let sp = sp.get_ref();
    if sp.dir.get_ref().is_empty() {
        return Err(ctx.err(sp.dir.span(), "spool.dir", "must not be empty"));
    }
    if *sp.max_mb.get_ref() == 0 {
        return Err(ctx.err(sp.max_mb.span(), "spool.max_mb", "must be at least 1"));
    }
    let segment_bytes = sp.segment_kb.get_ref() * 1024;
    let max_bytes = sp.max_mb.get_ref() * 1024 * 1024;
    if *sp.segment_kb.get_ref() < 64 || segment_bytes * 4 > max_bytes {
        return Err(ctx.err(
            sp.segment_kb.span(),
            "spool.segment_kb",
            format!(
                "must be at least 64 and at most a quarter of spool.max_mb ({} KiB)",
                max_bytes / 4096
            ),
        ));
    }
    let spool = SpoolSettings {
        dir: ctx.path(sp.dir.get_ref()),
        max_bytes,
        segment_bytes,
        event_fsync: fsync(
            ctx,
            "spool.event_fsync",
            &sp.event_fsync,
            sp.fsync_interval_ms,
        )?,
        telemetry_fsync: fsync(
            ctx,
            "spool.telemetry_fsync",
            &sp.telemetry_fsync,
            sp.fsync_interval_ms,
        )?,
        reserve_bytes: sp.reserve_kb.saturating_mul(1024),
    };
    Ok(spool)
}

/// The `[batch]` section (defaults: 500 samples, 1 s).
pub(super) fn batch(ctx: &Ctx, raw: Option<RawBatch>) -> Result<BatchSettings, ConfigError> {
    Ok(match raw {
        None => BatchSettings {
            max_samples: 500,
            max_delay: Duration::from_millis(1000),
        },
        Some(b) => {
            if *b.max_samples.get_ref() == 0 {
                return Err(ctx.err(
                    b.max_samples.span(),
                    "batch.max_samples",
                    "must be at least 1",
                ));
            }
            BatchSettings {
                max_samples: *b.max_samples.get_ref(),
                max_delay: Duration::from_millis(b.max_delay_ms.max(1)),
            }
        }
    })
}

fn fsync(
    ctx: &Ctx,
    field: &str,
    v: &Spanned<String>,
    interval_ms: u64,
) -> Result<FsyncPolicy, ConfigError> {
    match v.get_ref().as_str() {
        "always" => Ok(FsyncPolicy::Always),
        "never" => Ok(FsyncPolicy::Never),
        "interval" if interval_ms > 0 => {
            Ok(FsyncPolicy::Interval(Duration::from_millis(interval_ms)))
        }
        "interval" => Err(ctx.err(
            v.span(),
            "spool.fsync_interval_ms",
            "must be greater than 0 for the `interval` policy",
        )),
        other => Err(ctx.err(
            v.span(),
            field,
            format!("`{other}` is not an fsync policy: expected always, interval or never"),
        )),
    }
}
