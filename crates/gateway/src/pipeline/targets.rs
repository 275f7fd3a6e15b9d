//! An upstream's targets (TLS-09: every target is reached with the
//! upstream's one TLS identity policy, its server name checked on every
//! new connection): which target a request goes to, and which get none.
//!
//! A target gets requests while it is *available*: not marked down by the
//! active health checks (`health_check`) and not ejected. A target is
//! ejected after `outlier_detection.consecutive_failures` failures in a
//! row (no answer, or a 502, 503 or 504), for `ejection_ms` doubled at
//! each ejection in a row up to `max_ejection_ms`, and never when that
//! would eject more than `max_ejected_percent` of the pool; with active
//! health checks, passing `healthy_threshold` of them after the ejection
//! ends it early. Ejections, health changes and recoveries are events. With no target available the
//! caller answers 503 without trying anything.
//!
//! With `balance: consistent_hash`, requests carrying the same value of
//! `hash_header` go to the same available target (rendezvous hashing: a
//! target leaving the pool moves only its own values); without the header,
//! round robin.
//!
//! Circuit breaking: a target with `max_requests_per_target` requests
//! awaiting its answer gets no more; with every available target at its
//! cap the caller answers 503 (`overloaded`) instead of queueing.

use crate::clock::now_ms;
use crate::events::{EventSink, SecurityEvent};
use crate::rejection::Severity;
use portcullis_config::{Balance, OutlierDetection, Upstream};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize};

/// One target of an upstream and what the gateway knows of it.
#[derive(Debug)]
pub struct Target {
    pub authority: http::uri::Authority,
    /// Requests sent and not yet answered (or failed).
    outstanding: AtomicUsize,
    failures_in_a_row: AtomicU32,
    /// Until when (unix ms) it is ejected; 0 when it is not.
    ejected_until_ms: AtomicU64,
    /// Ejections in a row, for the back-off; and when the last began.
    ejections: AtomicU32,
    last_ejected_ms: AtomicU64,
    /// Ejected and not yet seen answering again.
    awaiting_recovery: AtomicBool,
    /// Marked down by the active health checks.
    down: AtomicBool,
    /// Active check results in a row: successes (> 0) or failures (< 0).
    check_streak: std::sync::atomic::AtomicI64,
    pub requests: AtomicU64,
    pub failures: AtomicU64,
    pub ejected_total: AtomicU64,
}

impl Target {
    fn new(authority: http::uri::Authority) -> Self {
        Self {
            authority,
            outstanding: AtomicUsize::new(0),
            failures_in_a_row: AtomicU32::new(0),
            ejected_until_ms: AtomicU64::new(0),
            ejections: AtomicU32::new(0),
            last_ejected_ms: AtomicU64::new(0),
            awaiting_recovery: AtomicBool::new(false),
            down: AtomicBool::new(false),
            check_streak: std::sync::atomic::AtomicI64::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            ejected_total: AtomicU64::new(0),
        }
    }

    fn ejected(&self, now_ms: u64) -> bool {
        self.ejected_until_ms.load(Relaxed) > now_ms
    }

    /// Whether it may get requests now.
    pub fn available(&self, now_ms: u64) -> bool {
        !self.down.load(Relaxed) && !self.ejected(now_ms)
    }
}

/// A request's hold on a target: counted outstanding until dropped.
#[derive(Debug)]
pub struct Outstanding<'a>(&'a Target);

impl Drop for Outstanding<'_> {
    fn drop(&mut self) {
        self.0.outstanding.fetch_sub(1, Relaxed);
    }
}

/// Why no target was picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoTarget {
    /// None is available (ejected, or failing its health checks).
    Unavailable,
    /// Every available one is at `max_requests_per_target`.
    Full,
}

/// A target's score for a value (highest wins): stable across requests
/// and processes of one build, independent of the other targets.
fn rendezvous(key: u64, target: &http::uri::Authority) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    key.hash(&mut h);
    target.as_str().hash(&mut h);
    h.finish()
}

/// The hash of a `hash_header` value, for [`Targets::pick`].
pub fn affinity(value: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

/// The targets of one upstream.
#[derive(Debug)]
pub struct Targets {
    upstream: String,
    pub targets: Vec<Target>,
    balance: Balance,
    outlier: OutlierDetection,
    max_requests: usize,
    next: AtomicUsize,
    events: EventSink,
}

impl Targets {
    pub fn new(u: &Upstream, events: EventSink) -> Self {
        Self {
            upstream: u.name.clone(),
            targets: u.targets.iter().cloned().map(Target::new).collect(),
            balance: u.balance,
            outlier: u.outlier,
            max_requests: u.max_requests_per_target,
            next: AtomicUsize::new(0),
            events,
        }
    }

    /// Whether any target may get requests now (readiness).
    pub fn any_available(&self) -> bool {
        let now = now_ms();
        self.targets.iter().any(|t| t.available(now))
    }

    /// The target for the next try: an available one under its cap not in
    /// `tried` when there is one, else one already tried; why none otherwise.
    /// `affinity` is the hash of the request's `hash_header` value.
    pub fn pick(
        &self,
        tried: &[usize],
        affinity: Option<u64>,
    ) -> Result<(usize, Outstanding<'_>), NoTarget> {
        let now = now_ms();
        let n = self.targets.len();
        let start = if n == 1 {
            0
        } else {
            self.next.fetch_add(1, Relaxed) % n
        };
        let order = (0..n).map(move |k| (start + k) % n);
        let available = |i: &usize| self.targets[*i].available(now);
        let open = |i: &usize| self.targets[*i].outstanding.load(Relaxed) < self.max_requests;
        let usable = |i: &usize| available(i) && open(i);
        let fresh = |i: &usize| !tried.contains(i);
        let choose = |candidates: &mut dyn Iterator<Item = usize>| match (self.balance, affinity) {
            (Balance::ConsistentHash, Some(key)) => {
                candidates.max_by_key(|i| rendezvous(key, &self.targets[*i].authority))
            }
            (Balance::RoundRobin | Balance::ConsistentHash, _) => candidates.next(),
            (Balance::LeastOutstanding, _) => {
                candidates.min_by_key(|i| self.targets[*i].outstanding.load(Relaxed))
            }
        };
        let Some(i) = choose(&mut order.clone().filter(usable).filter(fresh))
            .or_else(|| choose(&mut order.clone().filter(usable)))
        else {
            return Err(if order.clone().any(|i| available(&i)) {
                NoTarget::Full
            } else {
                NoTarget::Unavailable
            });
        };
        let t = &self.targets[i];
        // Two requests may both have seen the last free place: one gets it.
        if t.outstanding.fetch_add(1, Relaxed) >= self.max_requests {
            t.outstanding.fetch_sub(1, Relaxed);
            return Err(NoTarget::Full);
        }
        t.requests.fetch_add(1, Relaxed);
        Ok((i, Outstanding(t)))
    }

    /// The target answered (any status but 502, 503, 504).
    pub fn succeeded(&self, i: usize) {
        let t = &self.targets[i];
        t.failures_in_a_row.store(0, Relaxed);
        let now = now_ms();
        // Long past its last ejection (twice the longest): the back-off starts over.
        if t.ejections.load(Relaxed) > 0
            && now.saturating_sub(t.last_ejected_ms.load(Relaxed))
                > u64::try_from(self.outlier.max_ejection.as_millis()).unwrap_or(u64::MAX) * 2
        {
            t.ejections.store(0, Relaxed);
        }
        if t.awaiting_recovery.swap(false, Relaxed) {
            self.event(
                "upstream-target-recovered",
                Severity::Informational,
                i,
                "answers again after its ejection",
            );
        }
    }

    /// The target gave no answer, or a 502, 503 or 504.
    pub fn failed(&self, i: usize) {
        let t = &self.targets[i];
        t.failures.fetch_add(1, Relaxed);
        let in_a_row = t.failures_in_a_row.fetch_add(1, Relaxed) + 1;
        let o = &self.outlier;
        let now = now_ms();
        if o.consecutive_failures == 0 || in_a_row < o.consecutive_failures || t.ejected(now) {
            return;
        }
        let ejected = self.targets.iter().filter(|t| t.ejected(now)).count();
        if (ejected + 1) * 100 > usize::from(o.max_ejected_percent) * self.targets.len() {
            return;
        }
        let times = t.ejections.fetch_add(1, Relaxed).min(16);
        let base = u64::try_from(o.ejection.as_millis()).unwrap_or(u64::MAX);
        let max = u64::try_from(o.max_ejection.as_millis()).unwrap_or(u64::MAX);
        let for_ms = base.saturating_mul(1 << times).min(max);
        t.ejected_until_ms
            .store(now.saturating_add(for_ms), Relaxed);
        t.last_ejected_ms.store(now, Relaxed);
        t.failures_in_a_row.store(0, Relaxed);
        t.awaiting_recovery.store(true, Relaxed);
        // Only checks passed after the ejection can end it early.
        t.check_streak.store(0, Relaxed);
        t.ejected_total.fetch_add(1, Relaxed);
        self.event(
            "upstream-target-ejected",
            Severity::Medium,
            i,
            &format!("{in_a_row} failures in a row: no requests for {for_ms} ms"),
        );
    }

    /// One active health check's result for target `i`.
    pub fn checked(&self, i: usize, healthy: bool, thresholds: (u32, u32)) {
        let t = &self.targets[i];
        let streak = t.check_streak.load(Relaxed);
        let streak = match (healthy, streak) {
            (true, s) if s > 0 => s + 1,
            (true, _) => 1,
            (false, s) if s < 0 => s - 1,
            (false, _) => -1,
        };
        t.check_streak.store(streak, Relaxed);
        let (healthy_after, unhealthy_after) = (i64::from(thresholds.0), i64::from(thresholds.1));
        let down = t.down.load(Relaxed);
        let ejected = t.awaiting_recovery.load(Relaxed);
        if (down || ejected) && streak >= healthy_after {
            // Passing the checks since it was marked down or ejected ends
            // both (as Envoy's `successful_active_health_check_uneject_host`).
            t.down.store(false, Relaxed);
            t.ejected_until_ms.store(0, Relaxed);
            t.awaiting_recovery.store(false, Relaxed);
            self.event(
                "upstream-target-recovered",
                Severity::Informational,
                i,
                "passes its health checks again",
            );
        } else if !down && streak <= -unhealthy_after {
            t.down.store(true, Relaxed);
            self.event(
                "upstream-target-unhealthy",
                Severity::Medium,
                i,
                "fails its health checks: no requests until it passes them",
            );
        }
    }

    fn event(&self, code: &str, severity: Severity, i: usize, what: &str) {
        self.events.emit(SecurityEvent::operational(
            code,
            severity,
            &format!(
                "upstream {} target {}: {what}",
                self.upstream, self.targets[i].authority
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn targets(n: usize, balance: Balance, failures: u32, max_percent: u8) -> Targets {
        Targets {
            upstream: "orders".into(),
            targets: (0..n)
                .map(|i| Target::new(format!("10.0.0.{i}:443").parse().unwrap()))
                .collect(),
            balance,
            outlier: OutlierDetection {
                consecutive_failures: failures,
                ejection: Duration::from_secs(30),
                max_ejection: Duration::from_secs(300),
                max_ejected_percent: max_percent,
            },
            max_requests: 1024,
            next: AtomicUsize::new(0),
            events: EventSink::start(&portcullis_config::Events {
                stdout: false,
                file: None,
                file_max_bytes: 1 << 20,
                file_keep: 1,
                spool: None,
                syslog: None,
                http: None,
                access_log: None,
            })
            .unwrap(),
        }
    }

    fn codes(rx: &mut tokio::sync::broadcast::Receiver<SecurityEvent>) -> Vec<String> {
        std::iter::from_fn(|| rx.try_recv().ok())
            .map(|e| e.status_code)
            .collect()
    }

    #[test]
    fn round_robin_visits_every_available_target_and_skips_the_tried() {
        let t = targets(3, Balance::RoundRobin, 0, 50);
        let picks: Vec<usize> = (0..6).map(|_| t.pick(&[], None).unwrap().0).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        // A retry goes elsewhere while there is elsewhere to go.
        for _ in 0..3 {
            assert_ne!(t.pick(&[0], None).unwrap().0, 0);
        }
        assert!(
            t.pick(&[0, 1, 2], None).is_ok(),
            "all tried: any available one"
        );
        t.targets[1].down.store(true, Relaxed);
        let picks: Vec<usize> = (0..4).map(|_| t.pick(&[], None).unwrap().0).collect();
        assert!(!picks.contains(&1), "{picks:?}");
    }

    #[test]
    fn least_outstanding_prefers_the_least_busy_target() {
        let t = targets(3, Balance::LeastOutstanding, 0, 50);
        let (a, hold_a) = t.pick(&[], None).unwrap();
        let (b, hold_b) = t.pick(&[], None).unwrap();
        let (c, _hold_c) = t.pick(&[], None).unwrap();
        let mut all = vec![a, b, c];
        all.sort_unstable();
        assert_eq!(all, [0, 1, 2], "one request each");
        drop(hold_b);
        assert_eq!(
            t.pick(&[], None).unwrap().0,
            b,
            "the one whose request ended"
        );
        drop(hold_a);
    }

    #[test]
    fn failures_in_a_row_eject_within_the_share_and_back_off() {
        let t = targets(3, Balance::RoundRobin, 2, 50);
        let mut events = t.events.subscribe();
        t.failed(0);
        t.succeeded(0);
        t.failed(0);
        assert!(t.targets[0].available(now_ms()), "a success breaks the row");
        t.failed(0);
        assert!(
            !t.targets[0].available(now_ms()),
            "ejected after 2 in a row"
        );
        let until = t.targets[0].ejected_until_ms.load(Relaxed) - now_ms();
        assert!((29_000..=30_000).contains(&until), "{until}");
        // A second target would make 2 of 3 ejected, over 50 %.
        t.failed(1);
        t.failed(1);
        assert!(t.targets[1].available(now_ms()));
        assert_eq!(t.pick(&[], None).map(|p| p.0 != 0), Ok(true));
        // Back from its ejection and failing again: twice as long.
        t.targets[0].ejected_until_ms.store(1, Relaxed);
        t.failed(0);
        t.failed(0);
        let until = t.targets[0].ejected_until_ms.load(Relaxed) - now_ms();
        assert!((59_000..=60_000).contains(&until), "{until}");
        assert_eq!(t.targets[0].ejected_total.load(Relaxed), 2);
        assert_eq!(codes(&mut events), ["upstream-target-ejected"; 2]);
        t.targets[0].ejected_until_ms.store(1, Relaxed);
        t.succeeded(0);
        t.succeeded(0);
        assert_eq!(codes(&mut events), ["upstream-target-recovered"], "once");
    }

    #[test]
    fn health_checks_mark_down_and_up_at_their_thresholds() {
        let t = targets(2, Balance::RoundRobin, 0, 50);
        let mut events = t.events.subscribe();
        let th = (2, 3);
        t.checked(0, false, th);
        t.checked(0, false, th);
        assert!(t.targets[0].available(now_ms()));
        t.checked(0, false, th);
        assert!(!t.targets[0].available(now_ms()), "down after 3 failures");
        t.checked(0, true, th);
        assert!(!t.targets[0].available(now_ms()));
        t.checked(0, true, th);
        assert!(t.targets[0].available(now_ms()), "up after 2 successes");
        assert_eq!(
            codes(&mut events),
            ["upstream-target-unhealthy", "upstream-target-recovered"]
        );
        // An ejected target that passes the checks after its ejection is back.
        let o = targets(2, Balance::RoundRobin, 1, 50);
        o.checked(0, true, th);
        o.checked(0, true, th);
        o.failed(0);
        assert!(!o.targets[0].available(now_ms()));
        o.checked(0, true, th);
        assert!(
            !o.targets[0].available(now_ms()),
            "one check since the ejection"
        );
        o.checked(0, true, th);
        assert!(
            o.targets[0].available(now_ms()),
            "two checks since the ejection"
        );
        t.checked(1, false, (1, 1));
        t.checked(0, false, (1, 1));
        assert!(!t.any_available());
        assert_eq!(
            t.pick(&[], None).map(|p| p.0),
            Err(NoTarget::Unavailable),
            "nothing available: nothing tried"
        );
    }

    /// A target with `max_requests` answers awaited gets no more; with
    /// every available target full, the pick says so (503 `overloaded`).
    #[test]
    fn a_full_target_is_skipped_and_a_full_pool_refused() {
        let mut t = targets(2, Balance::RoundRobin, 0, 50);
        t.max_requests = 2;
        let held: Vec<_> = (0..4).map(|_| t.pick(&[], None).unwrap()).collect();
        assert_eq!(
            held.iter().filter(|(i, _)| *i == 0).count(),
            2,
            "two each, whatever the order"
        );
        assert_eq!(t.pick(&[], None).map(|p| p.0), Err(NoTarget::Full));
        drop(held);
        assert!(t.pick(&[], None).is_ok(), "free again once answered");
        let mut one = targets(2, Balance::RoundRobin, 0, 50);
        one.max_requests = 1;
        let first = one.pick(&[], None).unwrap();
        assert_ne!(
            one.pick(&[], None).unwrap().0,
            first.0,
            "the full one is skipped"
        );
    }

    /// The same value goes to the same target; a target leaving moves only
    /// its own values; without a value, round robin.
    #[test]
    fn consistent_hashing_keeps_a_value_on_its_target() {
        let t = targets(3, Balance::ConsistentHash, 1, 50);
        let keys: Vec<u64> = (0..60u32).map(|n| affinity(&n.to_be_bytes())).collect();
        let first: Vec<usize> = keys
            .iter()
            .map(|k| t.pick(&[], Some(*k)).unwrap().0)
            .collect();
        let again: Vec<usize> = keys
            .iter()
            .map(|k| t.pick(&[], Some(*k)).unwrap().0)
            .collect();
        assert_eq!(first, again);
        for target in 0..3 {
            assert!(first.contains(&target), "values spread over every target");
        }
        t.failed(1);
        assert!(!t.targets[1].available(now_ms()));
        for (k, before) in keys.iter().zip(&first) {
            let now = t.pick(&[], Some(*k)).unwrap().0;
            if *before == 1 {
                assert_ne!(now, 1);
            } else {
                assert_eq!(now, *before, "values of the other targets stay");
            }
        }
        let without: Vec<usize> = (0..4).map(|_| t.pick(&[], None).unwrap().0).collect();
        assert!(without.contains(&0) && without.contains(&2), "{without:?}");
    }
}
