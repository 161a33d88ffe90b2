//! A broker per site, and one site dead: the lag limit (pure decision, plus its small shell).
//!
//! A record leaves the spool only when every broker has it. With one site gone, its broker
//! never acknowledges again, records pile up and, once they fill the spool, telemetry for the
//! *surviving* site is refused. So each broker has a lag limit (`max_lag_bytes`, `max_lag_s`
//! in `[[broker]]`): past it the lagging broker is **detached** while another broker is
//! healthy: it no longer holds records in the spool (`dcim_spool::Spool::detach`), which flow
//! on through the live broker and leave the spool once it has them. Every detachment is
//! counted in the spool, logged as an error, and reported in the retained `AgentState`
//! (`detached`), from which the center raises an alarm for the uplink.
//!
//! What a detached broker gets when it returns: the uplink to it keeps reconnecting and, once
//! connected, sends from its own acknowledgement cursor as before, events first, so it gets
//! everything still in the spool; what was removed while it was detached (because the live
//! broker had it) it never gets from this agent: `Lag::missed` counts it, per class, in the
//! health log. With the servers of both sites sharing one store, the events it missed are
//! already stored through the live site; the telemetry it missed is a gap in the returning
//! site's in-memory history only. When its lag is back under half of both limits it is
//! attached again and holds records as before.
//!
//! Never detached: the last broker that is connected and within its limits would be left, or
//! the only broker (a single-broker agent keeps everything, as before).

use crate::config::BrokerConfig;
use crate::ingest::Shared;
use crate::uplink::LinkStatus;
use dcim_spool::Lag;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// A broker's lag limits (defined with the configuration, `[[broker]]`).
pub use crate::config::Limits;

/// One broker as the decision needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Broker<'a> {
    pub name: &'a str,
    pub lag: Lag,
    pub limits: Limits,
    pub connected: bool,
    pub detached: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Detach { broker: String, reason: String },
    Attach { broker: String },
}

/// Why a broker is past its limit, if it is.
fn over(b: &Broker<'_>) -> Option<String> {
    if b.lag.bytes > b.limits.max_bytes {
        return Some(format!(
            "{} bytes ({} events, {} telemetry batches) not acknowledged, limit {}",
            b.lag.bytes, b.lag.records[0], b.lag.records[1], b.limits.max_bytes
        ));
    }
    if b.lag.stuck_ms > b.limits.max_stuck_ms {
        return Some(format!(
            "nothing acknowledged for {} s with {} records waiting, limit {} s",
            b.lag.stuck_ms / 1000,
            b.lag.records.iter().sum::<u64>(),
            b.limits.max_stuck_ms / 1000
        ));
    }
    None
}

/// What to detach and attach now.
pub fn decide(brokers: &[Broker<'_>]) -> Vec<Decision> {
    let healthy = |b: &Broker<'_>| !b.detached && b.connected && over(b).is_none();
    let mut out = Vec::new();
    for (i, b) in brokers.iter().enumerate() {
        if b.detached {
            let back = b.connected
                && b.lag.bytes <= b.limits.max_bytes / 2
                && b.lag.stuck_ms <= b.limits.max_stuck_ms / 2;
            if back {
                out.push(Decision::Attach {
                    broker: b.name.to_owned(),
                });
            }
            continue;
        }
        let Some(reason) = over(b) else { continue };
        let another_flows = brokers
            .iter()
            .enumerate()
            .any(|(j, o)| j != i && healthy(o));
        if another_flows {
            out.push(Decision::Detach {
                broker: b.name.to_owned(),
                reason,
            });
        }
    }
    out
}

/// One check of every broker (once a second from the agent's main loop). Returns whether
/// something was detached or attached (the retained state is then published again).
pub fn supervise(
    shared: &Shared,
    brokers: &[BrokerConfig],
    links: &[Arc<LinkStatus>],
    now_ms: i64,
) -> bool {
    if brokers.len() < 2 {
        return false;
    }
    let decisions = shared.with_spool(|s| {
        let lags: Vec<(Lag, bool)> = brokers
            .iter()
            .map(|b| (s.lag(&b.name, now_ms), s.is_detached(&b.name)))
            .collect();
        let view: Vec<Broker<'_>> = brokers
            .iter()
            .zip(&lags)
            .zip(links)
            .map(|((b, (lag, detached)), l)| Broker {
                name: &b.name,
                lag: *lag,
                limits: b.lag_limits,
                connected: l.connected.load(Ordering::Relaxed),
                detached: *detached,
            })
            .collect();
        let decisions = decide(&view);
        for d in &decisions {
            match d {
                Decision::Detach { broker, reason } => match s.detach(broker, now_ms) {
                    Ok(_) => tracing::error!(
                        broker = %broker,
                        detaches = s.detach_count(broker),
                        %reason,
                        "BROKER DETACHED: it lags past its limit; records no longer wait for it and flow on through the other broker"
                    ),
                    Err(e) => tracing::error!(broker = %broker, error = %e, "could not detach the lagging broker"),
                },
                Decision::Attach { broker } => match s.attach(broker) {
                    Ok(_) => {
                        let lag = s.lag(broker, now_ms);
                        tracing::warn!(
                            broker = %broker,
                            missed_events = lag.missed[0],
                            missed_batches = lag.missed[1],
                            "broker attached again: it caught up; records wait for it again"
                        )
                    }
                    Err(e) => tracing::error!(broker = %broker, error = %e, "could not attach the broker"),
                },
            }
        }
        decisions
    });
    !decisions.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lim() -> Limits {
        Limits {
            max_bytes: 1000,
            max_stuck_ms: 10_000,
        }
    }

    fn b(name: &str, bytes: u64, stuck: i64, connected: bool, detached: bool) -> Broker<'_> {
        Broker {
            name,
            lag: Lag {
                records: [1, 1],
                bytes,
                stuck_ms: stuck,
                missed: [0, 0],
            },
            limits: lim(),
            connected,
            detached,
        }
    }

    #[test]
    fn a_dead_site_is_detached_by_size_or_age_while_the_other_flows() {
        let d = decide(&[b("a", 10, 0, true, false), b("b", 2000, 0, false, false)]);
        assert!(
            matches!(&d[..], [Decision::Detach { broker, reason }] if broker == "b" && reason.contains("bytes"))
        );
        let d = decide(&[b("a", 10, 0, true, false), b("b", 10, 11_000, false, false)]);
        assert!(
            matches!(&d[..], [Decision::Detach { broker, reason }] if broker == "b" && reason.contains("nothing acknowledged"))
        );
        assert!(decide(&[b("a", 10, 0, true, false), b("b", 900, 9_000, false, false)]).is_empty());
    }

    #[test]
    fn the_last_flowing_broker_is_never_detached() {
        // Hazard: both sites unreachable; detaching both would let records go that nobody has.
        assert!(decide(&[b("a", 2000, 0, false, false), b("b", 2000, 0, false, false)]).is_empty());
        // The other is connected but itself over its limit: no detaching either.
        assert!(decide(&[b("a", 2000, 0, true, false), b("b", 5000, 0, true, false)]).is_empty());
        // The other is detached (and may be attached again now): this one stays.
        let d = decide(&[b("a", 10, 0, true, true), b("b", 2000, 0, false, false)]);
        assert!(
            !d.iter().any(|d| matches!(d, Decision::Detach { .. })),
            "{d:?}"
        );
        // One broker only: kept whatever its lag.
        assert!(decide(&[b("a", 9999, 99_999, false, false)]).is_empty());
    }

    #[test]
    fn a_returning_broker_is_attached_once_it_caught_up_to_half_its_limits() {
        assert!(decide(&[b("a", 10, 0, true, false), b("b", 600, 0, true, true)]).is_empty());
        assert!(decide(&[b("a", 10, 0, true, false), b("b", 400, 6_000, true, true)]).is_empty());
        assert_eq!(
            decide(&[b("a", 10, 0, true, false), b("b", 400, 0, true, true)]),
            [Decision::Attach { broker: "b".into() }]
        );
        assert!(
            decide(&[b("a", 10, 0, true, false), b("b", 0, 0, false, true)]).is_empty(),
            "not while it is still unreachable"
        );
    }
}
