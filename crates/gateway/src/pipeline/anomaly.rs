//! Usage anomaly detection (OPS-02): per application × route baselines of
//! request rate, error ratio and distinct clients, as exponentially
//! weighted means and variances over fixed intervals. An interval far above
//! its baseline (at least `factor` times the mean and four standard
//! deviations above it) starts an anomaly: one security event, not one per
//! interval. Anomalous intervals do not feed the baseline, so a sustained
//! attack does not become normal; the anomaly ends after two normal
//! intervals. For APIs with `tighten_on_anomaly`, requests of an anomalous
//! application × route beyond twice its baseline rate per interval are
//! refused (429) while the anomaly lasts.
//!
//! Memory is bounded: at most `MAX_SERIES` series, idle ones evicted, and
//! distinct clients are counted in a fixed 1024-bit sketch (linear
//! counting), not a set.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const MAX_SERIES: usize = 65_536;
const ALPHA: f64 = 0.2;
const SKETCH_BITS: usize = 1024;

/// Settings (from `anomalies` in the config).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub interval: Duration,
    /// Intervals of history before anything is judged.
    pub warmup: u32,
    /// How many times the baseline mean an interval must reach.
    pub factor: f64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Ewma {
    mean: f64,
    var: f64,
}

impl Ewma {
    fn update(&mut self, x: f64, first: bool) {
        if first {
            self.mean = x;
            self.var = 0.0;
            return;
        }
        let diff = x - self.mean;
        let incr = ALPHA * diff;
        self.mean += incr;
        self.var = (1.0 - ALPHA) * (self.var + diff * incr);
    }

    /// Whether `x` is far above this baseline.
    fn spike(&self, x: f64, factor: f64) -> bool {
        let floor = self.mean.max(1.0);
        x >= factor * floor && x > self.mean + 4.0 * self.var.sqrt()
    }
}

#[derive(Debug, Clone)]
struct Series {
    /// Start of the current interval.
    started: Instant,
    count: u64,
    errors: u64,
    clients: [u64; SKETCH_BITS / 64],
    rate: Ewma,
    error_ratio: Ewma,
    distinct: Ewma,
    history: u32,
    anomalous: bool,
    normal_streak: u32,
    /// Requests allowed per interval while tightened.
    cap: Option<u64>,
}

/// What the detector says about one request.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Normal,
    /// A new anomaly started: raise the event (once).
    Started(String),
    /// Tightened while anomalous: refuse this request.
    Refuse,
}

#[derive(Debug)]
pub struct Detector {
    settings: Settings,
    series: Mutex<HashMap<u64, Series>>,
    hasher: std::collections::hash_map::RandomState,
}

fn estimate(bits: &[u64; SKETCH_BITS / 64]) -> f64 {
    // Linear counting: n ≈ -m ln(zero fraction).
    let ones: u32 = bits.iter().map(|w| w.count_ones()).sum();
    let zeros = (SKETCH_BITS as u32 - ones).max(1);
    -(SKETCH_BITS as f64) * (f64::from(zeros) / SKETCH_BITS as f64).ln()
}

impl Detector {
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn new(settings: Settings) -> Self {
        Self {
            settings,
            series: Mutex::new(HashMap::new()),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    fn key(&self, app: &str, route: &str) -> u64 {
        let mut h = self.hasher.build_hasher();
        app.hash(&mut h);
        route.hash(&mut h);
        h.finish()
    }

    /// Counts an error answer (4xx or 5xx) of `app` on `route` in the
    /// current interval, for the error-ratio baseline.
    pub fn error(&self, app: &str, route: &str) {
        let key = self.key(app, route);
        let mut map = self
            .series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(s) = map.get_mut(&key) {
            s.errors = (s.errors + 1).min(s.count);
        }
    }

    /// Stage 8's use of the baselines: counts the request, and answers
    /// what the pipeline does with the verdict: `Ok(Some(what))` when an
    /// anomaly starts (one event says what), a 429 when the API caps an
    /// anomalous application.
    pub fn stage(
        &self,
        app: &str,
        route: &str,
        client: IpAddr,
        tighten: bool,
    ) -> Result<Option<String>, crate::rejection::Rejection> {
        match self.observe(app, route, client, tighten, Instant::now()) {
            Verdict::Normal => Ok(None),
            Verdict::Started(what) => Ok(Some(what)),
            Verdict::Refuse => Err(crate::rejection::Rejection::RateLimited {
                retry_after_s: 1,
                policy: None,
                limit: None,
                reason: "usage anomaly: this application is capped at its usual rate",
                event: false,
            }),
        }
    }

    /// Counts one request of `app` on `route` (stage 8), first closing any
    /// finished intervals. `tighten`: the API caps anomalous callers.
    pub fn observe(
        &self,
        app: &str,
        route: &str,
        client: IpAddr,
        tighten: bool,
        now: Instant,
    ) -> Verdict {
        let key = self.key(app, route);
        let client_bit = (self.hasher.hash_one(client) as usize) % SKETCH_BITS;
        let mut map = self
            .series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= MAX_SERIES && !map.contains_key(&key) {
            let idle = self.settings.interval * 10;
            map.retain(|_, s| now.duration_since(s.started) < idle);
            if map.len() >= MAX_SERIES {
                return Verdict::Normal;
            }
        }
        let s = map.entry(key).or_insert_with(|| Series {
            started: now,
            count: 0,
            errors: 0,
            clients: [0; SKETCH_BITS / 64],
            rate: Ewma::default(),
            error_ratio: Ewma::default(),
            distinct: Ewma::default(),
            history: 0,
            anomalous: false,
            normal_streak: 0,
            cap: None,
        });
        let mut started = None;
        let elapsed = now.duration_since(s.started).as_nanos() / self.settings.interval.as_nanos();
        if elapsed > 0 {
            started = self.close_interval(s, tighten);
            // Quiet intervals since count as zero, up to a bounded number.
            for _ in 1..elapsed.min(64) {
                if let Some(reason) = self.close_interval(s, tighten) {
                    started = Some(reason);
                }
            }
            s.started += self.settings.interval * u32::try_from(elapsed).unwrap_or(u32::MAX);
        }
        s.count += 1;
        s.clients[client_bit / 64] |= 1 << (client_bit % 64);
        // A spike is judged as it happens, not only when its interval ends.
        if started.is_none() && !s.anomalous && s.history >= self.settings.warmup {
            if let Some(reason) = self.judge(s, false) {
                s.anomalous = true;
                s.normal_streak = 0;
                s.cap = tighten.then(|| (2.0 * s.rate.mean.max(1.0)).ceil() as u64);
                started = Some(reason);
            }
        }
        if let Some(reason) = started {
            return Verdict::Started(format!("application `{app}` on `{route}`: {reason}"));
        }
        match s.cap {
            Some(cap) if s.anomalous && s.count > cap => Verdict::Refuse,
            _ => Verdict::Normal,
        }
    }

    /// What is anomalous about the current interval, if anything.
    fn judge(&self, s: &Series, closing: bool) -> Option<String> {
        let count = s.count as f64;
        let factor = self.settings.factor;
        if s.rate.spike(count, factor) {
            return Some(format!(
                "{} requests in an interval against a baseline of {:.1}",
                s.count, s.rate.mean
            ));
        }
        // Ratios and distinct clients are only judged on a whole interval
        // with enough requests to mean something.
        if closing && s.count >= 20 {
            let ratio = s.errors as f64 / count;
            if ratio >= 0.5 && ratio > s.error_ratio.mean * factor {
                return Some(format!(
                    "error ratio {:.0}% against a baseline of {:.0}%",
                    ratio * 100.0,
                    s.error_ratio.mean * 100.0
                ));
            }
            let distinct = estimate(&s.clients);
            if s.distinct.spike(distinct, factor) {
                return Some(format!(
                    "about {distinct:.0} distinct clients against a baseline of {:.1}",
                    s.distinct.mean
                ));
            }
        }
        None
    }

    /// Ends the current interval: judge it, then feed the baseline with it
    /// unless it was anomalous.
    fn close_interval(&self, s: &mut Series, tighten: bool) -> Option<String> {
        let mut started = None;
        let judged = (s.history >= self.settings.warmup)
            .then(|| self.judge(s, true))
            .flatten();
        match (judged, s.anomalous) {
            (Some(reason), false) => {
                s.anomalous = true;
                s.normal_streak = 0;
                s.cap = tighten.then(|| (2.0 * s.rate.mean.max(1.0)).ceil() as u64);
                started = Some(reason);
            }
            (Some(_), true) => s.normal_streak = 0,
            (None, true) => {
                s.normal_streak += 1;
                if s.normal_streak >= 2 {
                    s.anomalous = false;
                    s.cap = None;
                }
            }
            (None, false) => {
                let first = s.history == 0;
                s.rate.update(s.count as f64, first);
                let ratio = if s.count == 0 {
                    0.0
                } else {
                    s.errors as f64 / s.count as f64
                };
                s.error_ratio.update(ratio, first);
                s.distinct.update(estimate(&s.clients), first);
                s.history += 1;
            }
        }
        s.count = 0;
        s.errors = 0;
        s.clients = [0; SKETCH_BITS / 64];
        started
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detector() -> Detector {
        Detector::new(Settings {
            interval: Duration::from_secs(10),
            warmup: 6,
            factor: 5.0,
        })
    }

    /// Replays `counts[i]` requests in interval `i`; returns the events.
    fn replay(d: &Detector, app: &str, counts: &[u32], t0: Instant) -> Vec<String> {
        replay_with(d, app, counts, t0, false)
    }

    fn replay_with(
        d: &Detector,
        app: &str,
        counts: &[u32],
        t0: Instant,
        tighten: bool,
    ) -> Vec<String> {
        let mut events = Vec::new();
        for (i, &n) in counts.iter().enumerate() {
            for k in 0..n {
                let at = t0
                    + Duration::from_secs(10 * i as u64)
                    + Duration::from_millis(u64::from(k) * 9000 / u64::from(n.max(1)));
                let client = IpAddr::from([10, 0, (k % 4) as u8, 1]);
                if let Verdict::Started(e) = d.observe(app, "GET /v1/orders", client, tighten, at) {
                    events.push(e);
                }
            }
        }
        events
    }

    /// A plausible baseline: 40 intervals around 20 requests (±30%).
    fn baseline() -> Vec<u32> {
        (0..40u32).map(|i| 20 + (i * 7919 % 13) - 6).collect()
    }

    #[test]
    fn normal_traffic_raises_nothing_and_a_20x_spike_raises_exactly_one_event() {
        let d = detector();
        let t0 = Instant::now();
        assert!(replay(&d, "web", &baseline(), t0).is_empty());
        // Three intervals at 20× the baseline, then back to normal.
        let mut counts = baseline();
        counts.extend([400, 400, 400, 20, 21, 19, 20]);
        let d = detector();
        let events = replay(&d, "web", &counts, t0);
        assert_eq!(events.len(), 1, "{events:?}");
        assert!(events[0].contains("application `web`"), "{}", events[0]);
        // Another application on the same route has its own baseline.
        assert!(replay(&d, "batch", &baseline(), t0).is_empty());
    }

    #[test]
    fn a_tightened_application_is_capped_while_the_anomaly_lasts() {
        let d = detector();
        let t0 = Instant::now();
        let mut counts = baseline();
        counts.push(400);
        assert_eq!(replay_with(&d, "web", &counts, t0, true).len(), 1);
        // Still inside the spike's interval: beyond twice the baseline, refused.
        let at = t0 + Duration::from_secs(10 * 40) + Duration::from_millis(9500);
        assert_eq!(
            d.observe(
                "web",
                "GET /v1/orders",
                IpAddr::from([10, 0, 0, 1]),
                true,
                at
            ),
            Verdict::Refuse
        );
    }

    /// Replays intervals of `(requests, errors, distinct clients)`; the
    /// first `errors` requests of an interval are answered with an error.
    fn replay_mix(d: &Detector, intervals: &[(u32, u32, u8)], t0: Instant) -> Vec<String> {
        let mut events = Vec::new();
        for (i, &(n, errors, clients)) in intervals.iter().enumerate() {
            for k in 0..n {
                let at = t0
                    + Duration::from_secs(10 * i as u64)
                    + Duration::from_millis(u64::from(k) * 9000 / u64::from(n.max(1)));
                let client = IpAddr::from([10, 1, (k % u32::from(clients)) as u8, 1]);
                if let Verdict::Started(e) = d.observe("web", "GET /v1/orders", client, false, at) {
                    events.push(e);
                }
                if k < errors {
                    d.error("web", "GET /v1/orders");
                }
            }
        }
        events
    }

    /// 40 intervals of about 20 requests, one error each, from 4 clients.
    fn mixed_baseline() -> Vec<(u32, u32, u8)> {
        baseline().into_iter().map(|n| (n, 1, 4)).collect()
    }

    #[test]
    fn an_error_ratio_far_above_its_baseline_raises_one_event() {
        let t0 = Instant::now();
        // 20% errors: four times the baseline's 5%, under half: normal.
        let mut counts = mixed_baseline();
        counts.extend([(20, 4, 4), (20, 1, 4)]);
        assert!(replay_mix(&detector(), &counts, t0).is_empty());
        // 60% errors at the usual rate, then two normal intervals.
        let mut counts = mixed_baseline();
        counts.extend([(20, 12, 4), (20, 1, 4), (20, 1, 4)]);
        let events = replay_mix(&detector(), &counts, t0);
        assert_eq!(events.len(), 1, "{events:?}");
        assert!(events[0].contains("error ratio 60%"), "{}", events[0]);
    }

    #[test]
    fn many_more_distinct_clients_than_usual_raise_one_event() {
        let t0 = Instant::now();
        // Twice the usual clients at the usual rate: normal.
        let mut counts = mixed_baseline();
        counts.extend([(24, 1, 8), (20, 1, 4)]);
        assert!(replay_mix(&detector(), &counts, t0).is_empty());
        // The same rate spread over 24 clients (credential stuffing shape).
        let mut counts = mixed_baseline();
        counts.extend([(24, 1, 24), (20, 1, 4), (20, 1, 4)]);
        let events = replay_mix(&detector(), &counts, t0);
        assert_eq!(events.len(), 1, "{events:?}");
        assert!(events[0].contains("distinct clients"), "{}", events[0]);
    }
}
