//! What this instance has served, with bounded label sets: Prometheus
//! metrics on the admin plane, and the traffic half of the inventory
//! (CONTRACT-03): per route volume and last-seen time, and *shadow
//! endpoints*, paths clients asked for that no route declares.
//!
//! The hot path costs two atomic additions and one clock read per request.
//! Labels come only from the config (API names, operations) and fixed sets
//! (status class, rejection reason), so a client cannot grow them; shadow
//! paths are capped at [`MAX_SHADOW`] distinct entries, the rest counted.
//!
//! Written by hand rather than with `prometheus-client`: its histogram
//! takes a lock per observation, and the text format is a few lines.

use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// Distinct shadow paths remembered; further ones are only counted.
pub const MAX_SHADOW: usize = 1000;
/// Longest shadow path kept (longer ones are cut, marked with `…`).
const MAX_SHADOW_PATH: usize = 200;
/// Latency histogram bucket bounds, in microseconds.
const BUCKETS_US: [u64; 14] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];

/// A latency histogram: a counter per bucket and the sum, lock-free.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS_US.len() + 1],
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, elapsed: std::time::Duration) {
        let us = elapsed.as_micros() as u64;
        self.buckets[BUCKETS_US.partition_point(|&b| b < us)].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
    }

    /// The `_bucket`, `_sum` and `_count` lines of `name`; `labels` are
    /// written as given (`api="a",operation="b"`) before `le`.
    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, b) in self.buckets.iter().enumerate() {
            cumulative += b.load(Relaxed);
            let le = BUCKETS_US
                .get(i)
                .map_or_else(|| "+Inf".to_owned(), |us| format!("{}", *us as f64 / 1e6));
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
            );
        }
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(
            out,
            "{name}_sum{braces} {}\n{name}_count{braces} {cumulative}",
            self.sum_us.load(Relaxed) as f64 / 1e6
        );
    }
}

#[derive(Default)]
pub struct RouteCounters {
    requests: AtomicU64,
    last_seen: AtomicU64,
    latency: Histogram,
}

/// The routes of one config and their counters. A reload builds a new set
/// that keeps the counters of the routes it still declares; requests in
/// flight count into the set of the config they started with.
pub struct RouteSet {
    /// `(api, operation)` by route index.
    names: Vec<(String, String)>,
    counters: Box<[Arc<RouteCounters>]>,
}

impl std::fmt::Debug for RouteSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteSet")
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

impl RouteSet {
    /// The counters of route index `route`.
    pub fn counters(&self, route: Option<usize>) -> Option<&RouteCounters> {
        route.and_then(|r| self.counters.get(r)).map(|c| &**c)
    }
}

/// One route as the inventory shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RouteTraffic {
    pub api: String,
    pub operation: String,
    pub requests: u64,
    /// Unix seconds; `None` when never seen since start.
    pub last_seen: Option<u64>,
}

pub struct Traffic {
    /// The routes of the config in force.
    routes: ArcSwap<RouteSet>,
    /// By status class 1xx … 5xx (index 1–5; 0 = other).
    by_class: [AtomicU64; 6],
    latency: Histogram,
    rejections: Mutex<HashMap<&'static str, u64>>,
    shadow: Mutex<HashMap<String, u64>>,
    shadow_overflow: AtomicU64,
}

impl std::fmt::Debug for Traffic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Traffic")
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Traffic {
    /// `routes`: `(api, operation)` for each route index the pipeline reports.
    pub fn new(routes: Vec<(String, String)>) -> Self {
        Self {
            routes: ArcSwap::from_pointee(RouteSet {
                counters: routes.iter().map(|_| Arc::default()).collect(),
                names: routes,
            }),
            by_class: Default::default(),
            latency: Histogram::default(),
            rejections: Mutex::default(),
            shadow: Mutex::default(),
            shadow_overflow: AtomicU64::new(0),
        }
    }

    /// The routes of a reloaded config: the counters of routes that stay
    /// are kept, new ones start at zero. Returns the set for its state.
    pub fn retarget(&self, routes: Vec<(String, String)>) -> Arc<RouteSet> {
        let old = self.routes.load_full();
        let set = Arc::new(RouteSet {
            counters: routes
                .iter()
                .map(|name| {
                    old.names
                        .iter()
                        .position(|n| n == name)
                        .map_or_else(Arc::default, |i| old.counters[i].clone())
                })
                .collect(),
            names: routes,
        });
        self.routes.store(set.clone());
        set
    }

    /// The routes of the config in force.
    pub fn route_set(&self) -> Arc<RouteSet> {
        self.routes.load_full()
    }

    /// One answered request: its route's counters (when one matched),
    /// status and time to the response head.
    pub fn record(&self, route: Option<&RouteCounters>, status: u16, elapsed: std::time::Duration) {
        if let Some(c) = route {
            c.requests.fetch_add(1, Relaxed);
            c.last_seen.store(unix_now(), Relaxed);
            c.latency.observe(elapsed);
        }
        let class = usize::from(status / 100).min(5);
        self.by_class[class].fetch_add(1, Relaxed);
        self.latency.observe(elapsed);
    }

    pub fn rejected(&self, code: &'static str) {
        *self
            .rejections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(code)
            .or_default() += 1;
    }

    /// A normalised path that no route declares.
    pub fn shadow(&self, path: &str) {
        let mut map = self
            .shadow
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = map.get_mut(path) {
            *n += 1;
        } else if map.len() < MAX_SHADOW {
            let mut kept: String = path.chars().take(MAX_SHADOW_PATH).collect();
            if kept.len() < path.len() {
                kept.push('…');
            }
            *map.entry(kept).or_default() += 1;
        } else {
            self.shadow_overflow.fetch_add(1, Relaxed);
        }
    }

    /// Every route with its volume and last-seen time.
    pub fn routes(&self) -> Vec<RouteTraffic> {
        let set = self.routes.load();
        set.names
            .iter()
            .zip(set.counters.iter())
            .map(|((api, operation), c)| RouteTraffic {
                api: api.clone(),
                operation: operation.clone(),
                requests: c.requests.load(Relaxed),
                last_seen: Some(c.last_seen.load(Relaxed)).filter(|&t| t > 0),
            })
            .collect()
    }

    /// Shadow paths by count (most asked first), and how many were not kept.
    pub fn shadow_endpoints(&self) -> (Vec<(String, u64)>, u64) {
        let mut v: Vec<(String, u64)> = self
            .shadow
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(p, n)| (p.clone(), *n))
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        (v, self.shadow_overflow.load(Relaxed))
    }

    /// The Prometheus text exposition (version 0.0.4).
    pub fn prometheus(&self, extra: &[(&str, &str, f64)]) -> String {
        let mut out = String::new();
        let label = |s: &str| {
            s.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n")
        };
        out.push_str("# HELP portcullis_requests_total Requests answered, by status class.\n# TYPE portcullis_requests_total counter\n");
        for (i, c) in self.by_class.iter().enumerate().skip(1) {
            let _ = writeln!(
                out,
                "portcullis_requests_total{{class=\"{i}xx\"}} {}",
                c.load(Relaxed)
            );
        }
        out.push_str("# HELP portcullis_rejections_total Requests the gateway refused, by reason.\n# TYPE portcullis_rejections_total counter\n");
        let mut rejections: Vec<(&str, u64)> = self
            .rejections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect();
        rejections.sort_unstable();
        for (reason, n) in rejections {
            let _ = writeln!(
                out,
                "portcullis_rejections_total{{reason=\"{reason}\"}} {n}"
            );
        }
        out.push_str("# HELP portcullis_request_duration_seconds Time to the response head.\n# TYPE portcullis_request_duration_seconds histogram\n");
        self.latency
            .render(&mut out, "portcullis_request_duration_seconds", "");
        out.push_str("# HELP portcullis_route_requests_total Requests per declared route.\n# TYPE portcullis_route_requests_total counter\n");
        for r in self.routes() {
            let _ = writeln!(
                out,
                "portcullis_route_requests_total{{api=\"{}\",operation=\"{}\"}} {}",
                label(&r.api),
                label(&r.operation),
                r.requests
            );
        }
        out.push_str("# HELP portcullis_route_request_duration_seconds Time to the response head, per declared route.\n# TYPE portcullis_route_request_duration_seconds histogram\n");
        let set = self.routes.load();
        for ((api, operation), c) in set.names.iter().zip(set.counters.iter()) {
            let labels = format!("api=\"{}\",operation=\"{}\"", label(api), label(operation));
            c.latency.render(
                &mut out,
                "portcullis_route_request_duration_seconds",
                &labels,
            );
        }
        let (shadow, overflow) = self.shadow_endpoints();
        let _ = writeln!(
            out,
            "# HELP portcullis_shadow_requests_total Requests for paths no route declares.\n# TYPE portcullis_shadow_requests_total counter\nportcullis_shadow_requests_total {}",
            shadow.iter().map(|(_, n)| n).sum::<u64>() + overflow
        );
        for (name, help, value) in extra {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn counts_are_bounded_and_exposed() {
        let t = Traffic::new(vec![("orders".into(), "GET /v1/orders".into())]);
        t.record(
            t.route_set().counters(Some(0)),
            200,
            Duration::from_micros(700),
        );
        t.record(None, 404, Duration::from_micros(100));
        t.rejected("unknown-route");
        for n in 0..(MAX_SHADOW + 5) {
            t.shadow(&format!("/probe/{n}"));
        }
        t.shadow("/probe/1");
        let (shadow, overflow) = t.shadow_endpoints();
        assert_eq!(shadow.len(), MAX_SHADOW);
        assert_eq!(overflow, 5);
        assert_eq!(shadow[0], ("/probe/1".to_owned(), 2));
        let text = t.prometheus(&[("portcullis_up", "Always 1.", 1.0)]);
        for line in [
            "portcullis_requests_total{class=\"2xx\"} 1",
            "portcullis_requests_total{class=\"4xx\"} 1",
            "portcullis_rejections_total{reason=\"unknown-route\"} 1",
            "portcullis_request_duration_seconds_bucket{le=\"0.0005\"} 1",
            "portcullis_request_duration_seconds_bucket{le=\"0.001\"} 2",
            "portcullis_request_duration_seconds_count 2",
            "portcullis_route_requests_total{api=\"orders\",operation=\"GET /v1/orders\"} 1",
            "portcullis_shadow_requests_total 1006",
            "portcullis_up 1",
        ] {
            assert!(text.contains(line), "{line} missing:\n{text}");
        }
        assert!(t.routes()[0].last_seen.is_some());
        // A reload keeps the counters of the routes that stay.
        let set = t.retarget(vec![
            ("orders".into(), "POST /v1/orders".into()),
            ("orders".into(), "GET /v1/orders".into()),
        ]);
        t.record(set.counters(Some(1)), 200, Duration::from_micros(700));
        let routes = t.routes();
        assert_eq!((routes[0].requests, routes[1].requests), (0, 2));
    }
}
