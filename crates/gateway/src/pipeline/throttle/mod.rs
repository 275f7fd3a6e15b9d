//! Stage 8, throttle (INPUT-08): GCRA rate limits keyed by application,
//! subject, route or client address, per API (one budget across its
//! routes) and per route, and a concurrency cap per route.
//!
//! GCRA keeps one number per key, the theoretical arrival time (TAT): a
//! request at `now` is allowed when `TAT - tolerance <= now`, and then moves
//! TAT one emission interval (`period / requests`) on; `tolerance` is
//! `(burst - 1)` intervals. Keys live in sharded maps, hashed with a
//! per-process random key (no attacker-chosen collisions); idle keys (TAT in
//! the past) are evicted when a shard fills, and when a shard is still full
//! its least recently seen eighth is forgotten: a flood of new keys (say one
//! per IPv6 address) cannot lock every new client out. The accuracy this
//! trades: with more than 262,144 keys active at once, a key not seen for a
//! while may be forgotten and start again with a full burst. Client keys
//! group IPv6 addresses by `limits.client_ipv6_prefix` (a /64 by default),
//! so one host does not get a budget per address. A limit whose key is
//! missing (a subject limit without a `sub`) refuses the request.
//!
//! A refusal is 429 with `Retry-After` and the IETF `RateLimit` /
//! `RateLimit-Policy` fields; the security event is raised once per key and
//! window, not for every refused request.
//!
//! With `shared_state.redis`, the same GCRA runs in Redis for every
//! instance (see [`crate::pipeline::throttle::redis`]); the local maps then only remember when
//! each key last raised an event, or take over while Redis is unreachable
//! if the policy says so.

pub mod redis;
pub mod stage;

use crate::identity::ClaimSet;
use crate::pipeline::throttle::redis::{Check, SharedLimits, redis_key};
use crate::rejection::Rejection;
use http::HeaderValue;
use portcullis_config::{Config, LimitKey, RateLimit};
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The key one client's connections (and rate limits) are counted under:
/// IPv4 addresses whole, IPv4-mapped IPv6 as IPv4, other IPv6 addresses
/// cut to their first `prefix` bits (one host usually holds a whole /64).
pub fn client_key(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u32::from(prefix.min(128));
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                IpAddr::V6((u128::from(v6) & mask).into())
            }
        },
    }
}

const SHARDS: usize = 64;

/// Keys are already keyed hashes (SipHash under a per-process random key):
/// the shard maps use them as they are instead of hashing them again.
#[derive(Default, Clone, Copy)]
struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Shard = HashMap<u64, Entry, std::hash::BuildHasherDefault<PreHashed>>;

/// `"<per>";r=<remaining>;t=<seconds>`, written without the formatting
/// machinery: one allocation, for the header's own bytes.
fn rate_limit_item(per: &str, remaining: u64, reset_s: u64) -> Option<HeaderValue> {
    fn push(buf: &mut [u8; 80], len: &mut usize, bytes: &[u8]) {
        buf[*len..*len + bytes.len()].copy_from_slice(bytes);
        *len += bytes.len();
    }
    fn push_u64(buf: &mut [u8; 80], len: &mut usize, mut n: u64) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        push(buf, len, &digits[i..]);
    }
    if per.len() > 30 {
        return None;
    }
    let (mut buf, mut len) = ([0u8; 80], 0);
    push(&mut buf, &mut len, b"\"");
    push(&mut buf, &mut len, per.as_bytes());
    push(&mut buf, &mut len, b"\";r=");
    push_u64(&mut buf, &mut len, remaining);
    push(&mut buf, &mut len, b";t=");
    push_u64(&mut buf, &mut len, reset_s);
    HeaderValue::from_maybe_shared(bytes::Bytes::copy_from_slice(&buf[..len])).ok()
}
/// Keys remembered per shard (262,144 in all, a few MiB).
const KEYS_PER_SHARD: usize = 4096;

struct Spec {
    /// The same on every instance with the same config (Redis keys).
    stable_id: String,
    /// `stable_id` hashed: local state is keyed by it, so a reload keeps
    /// the state of every limit it leaves unchanged.
    seed: u64,
    per: LimitKey,
    interval_ns: u64,
    tolerance_ns: u64,
    period_s: u64,
    /// This limit's item in `RateLimit-Policy`.
    policy: String,
}

#[derive(Clone, Copy)]
struct Entry {
    tat: u64,
    /// No event for this key before this time (one per window).
    quiet_until: u64,
    /// When this key was last looked at (least recently seen go first).
    seen: u64,
}

/// Makes room in a full map (a limiter shard, the refused-credentials
/// map): idle keys first, then the least recently seen eighth (one O(n)
/// pass per eighth of `cap`, so amortised O(1)).
fn make_room<K, S>(map: &mut HashMap<K, Entry, S>, now: u64, cap: usize) {
    map.retain(|_, e| e.tat > now || e.quiet_until > now);
    if map.len() < cap {
        return;
    }
    let mut seen: Vec<u64> = map.values().map(|e| e.seen).collect();
    let cut = seen.len() / 8;
    let threshold = *seen.select_nth_unstable(cut).1;
    map.retain(|_, e| e.seen > threshold);
}

/// The limits that apply to one route.
#[derive(Debug, Default)]
pub struct RouteLimits {
    ids: Vec<usize>,
    concurrency: Option<Arc<Semaphore>>,
    /// `RateLimit-Policy` for the route's limits, precomputed.
    policy: Option<HeaderValue>,
}

/// What a request that passed stage 8 carries on: the route's concurrency
/// cap (a slot is taken only once the body has been read, so a slow body
/// holds none) and the `RateLimit` fields.
#[derive(Debug, Default)]
pub struct Admitted {
    cap: Option<Arc<Semaphore>>,
    /// Held, never read: dropping it frees the concurrency slot.
    #[allow(dead_code)]
    permit: Option<OwnedSemaphorePermit>,
    pub headers: Option<(HeaderValue, HeaderValue)>,
}

impl Admitted {
    /// Takes the route's concurrency slot (held until the request is done).
    pub fn occupy(&mut self) -> Result<(), Rejection> {
        if let Some(cap) = self.cap.take() {
            self.permit = Some(
                cap.try_acquire_owned()
                    .map_err(|_| Rejection::RateLimited {
                        retry_after_s: 1,
                        policy: None,
                        limit: None,
                        reason: "route concurrency cap reached",
                        event: true,
                    })?,
            );
        }
        Ok(())
    }
}

/// Every limiter of the gateway.
pub struct Throttle {
    specs: Vec<Spec>,
    state: Arc<LimiterState>,
    /// Leading IPv6 bits that identify one client.
    client_prefix: u8,
    /// GCRA `(interval, tolerance)` in ns for refused credentials per
    /// client; `None`: no such budget.
    failures: Option<(u64, u64)>,
}

/// What a config reload keeps: the limiters' state, the shared store, and
/// the concurrency semaphores by route.
struct LimiterState {
    shards: Box<[Mutex<Shard>]>,
    hasher: std::collections::hash_map::RandomState,
    epoch: Instant,
    shared: Option<SharedLimits>,
    /// `api|route|cap` → semaphore, so in-flight requests still count
    /// across reloads (bounded by the caps ever configured).
    concurrency: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Refused credentials per client address (see [`Throttle::before_authentication`]).
    failures: Mutex<HashMap<IpAddr, Entry>>,
}

/// Client addresses whose refused credentials are remembered at once.
const MAX_FAILING_CLIENTS: usize = 65_536;

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle")
            .field("limits", &self.specs.len())
            .finish_non_exhaustive()
    }
}

impl Spec {
    fn new(l: &RateLimit, stable_id: &str, hasher: &impl BuildHasher) -> Self {
        let period_ns = l.period.as_nanos() as u64;
        let interval_ns = (period_ns / u64::from(l.requests)).max(1);
        let stable_id = format!(
            "{stable_id}|{}|{}/{}|{}",
            l.per.as_str(),
            l.requests,
            l.period.as_secs(),
            l.burst
        );
        Self {
            seed: hasher.hash_one(&stable_id),
            stable_id,
            per: l.per,
            interval_ns,
            tolerance_ns: interval_ns * u64::from(l.burst - 1),
            period_s: l.period.as_secs(),
            policy: format!(
                "\"{}\";q={};w={}",
                l.per.as_str(),
                l.requests,
                l.period.as_secs()
            ),
        }
    }
}

impl Throttle {
    /// The limiters, and the limits of each route (`[api][route]`).
    /// With `shared`, rate limits are kept in Redis for every instance.
    pub fn build(
        config: &Config,
        shared: Option<SharedLimits>,
    ) -> (Self, Vec<Vec<Arc<RouteLimits>>>) {
        let state = Arc::new(LimiterState {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
            epoch: Instant::now(),
            shared,
            concurrency: Mutex::default(),
            failures: Mutex::default(),
        });
        Self::with_state(config, state)
    }

    /// The limits of a reloaded config on this throttle's state: a limit
    /// whose definition is unchanged keeps its buckets (a reload is no way
    /// around a limit), a changed one starts afresh.
    pub fn rebuild(&self, config: &Config) -> (Self, Vec<Vec<Arc<RouteLimits>>>) {
        Self::with_state(config, self.state.clone())
    }

    fn with_state(config: &Config, state: Arc<LimiterState>) -> (Self, Vec<Vec<Arc<RouteLimits>>>) {
        // Entries are only added: a reload refused after this point (a
        // route that does not compile) leaves the caps in force untouched.
        let mut caps = state
            .concurrency
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut specs = Vec::new();
        let mut table = Vec::new();
        for api in &config.apis {
            let api_ids: Vec<usize> = api
                .rate_limits
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    specs.push(Spec::new(l, &format!("{}|*|{i}", api.name), &state.hasher));
                    specs.len() - 1
                })
                .collect();
            let mut routes = Vec::new();
            for route in &api.routes {
                let mut ids = api_ids.clone();
                let name = route
                    .operation
                    .as_ref()
                    .map_or(route.path.as_str(), |op| op.id.as_str());
                for (i, l) in route.rate_limits.iter().enumerate() {
                    specs.push(Spec::new(
                        l,
                        &format!("{}|{name}|{i}", api.name),
                        &state.hasher,
                    ));
                    ids.push(specs.len() - 1);
                }
                let policy = (!ids.is_empty()).then(|| {
                    let text: Vec<&str> = ids.iter().map(|i| specs[*i].policy.as_str()).collect();
                    HeaderValue::from_str(&text.join(", ")).expect("policy items are ASCII")
                });
                let concurrency = route.concurrency.map(|n| {
                    let key = format!("{}|{name}|{n}", api.name);
                    caps.entry(key)
                        .or_insert_with(|| Arc::new(Semaphore::new(n as usize)))
                        .clone()
                });
                routes.push(Arc::new(RouteLimits {
                    ids,
                    concurrency,
                    policy,
                }));
            }
            table.push(routes);
        }
        drop(caps);
        let client_prefix = config.limits.client_ipv6_prefix;
        let failures = (config.limits.auth_failures_per_minute > 0).then(|| {
            let n = u64::from(config.limits.auth_failures_per_minute);
            let interval = 60_000_000_000 / n;
            (interval, interval * (n - 1))
        });
        (
            Self {
                specs,
                state,
                client_prefix,
                failures,
            },
            table,
        )
    }

    /// Stage 8 for one request on a route with `limits`.
    pub async fn admit(
        &self,
        limits: &RouteLimits,
        claims: Option<&ClaimSet>,
        client: IpAddr,
        operation: &str,
    ) -> Result<Admitted, Rejection> {
        let mut admitted = Admitted {
            cap: limits.concurrency.clone(),
            ..Admitted::default()
        };
        let Some(policy) = &limits.policy else {
            return Ok(admitted);
        };
        let ip = match client_key(client, self.client_prefix) {
            IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
            IpAddr::V6(a) => a.octets(),
        };
        // The key value of limit `id`, borrowed from the request (no allocation).
        let value = |id: usize| -> Result<&[u8], Rejection> {
            Ok(match self.specs[id].per {
                LimitKey::Application => claims
                    .and_then(|c| c.application.as_deref())
                    .ok_or_else(|| missing_key(policy))?
                    .as_bytes(),
                LimitKey::Subject => claims
                    .and_then(|c| c.token.as_ref())
                    .and_then(|t| t.subject.as_deref())
                    .ok_or_else(|| missing_key(policy))?
                    .as_bytes(),
                LimitKey::Route => operation.as_bytes(),
                LimitKey::Client => &ip,
            })
        };
        let now = self.state.epoch.elapsed().as_nanos() as u64;
        let steps = match &self.state.shared {
            Some(shared) => {
                let checks = limits
                    .ids
                    .iter()
                    .map(|&id| {
                        Ok(Check {
                            key: redis_key(&self.specs[id].stable_id, value(id)?),
                            interval_us: (self.specs[id].interval_ns / 1000).max(1),
                            tolerance_us: self.specs[id].tolerance_ns / 1000,
                        })
                    })
                    .collect::<Result<Vec<Check>, Rejection>>()?;
                match shared.take(&checks).await {
                    Ok(steps) => Some(steps),
                    Err(()) if shared.fall_back_to_local => None,
                    // Fail closed; the outage itself is one event.
                    Err(()) => {
                        return Err(Rejection::RateLimited {
                            retry_after_s: 1,
                            policy: Some(policy.clone()),
                            limit: None,
                            reason: "shared rate limit state unavailable",
                            event: false,
                        });
                    }
                }
            }
            None => None,
        };
        // The most constraining limit speaks for the request.
        let mut tightest: Option<(u64, u64, usize)> = None;
        for (i, &id) in limits.ids.iter().enumerate() {
            let spec = &self.specs[id];
            let key = self.local_key(id, value(id)?);
            let (remaining, reset_ns) = match &steps {
                None => self.take(spec, key, now, policy)?,
                Some(steps) => {
                    let step = steps[i];
                    if !step.allowed {
                        return Err(self.refused(spec, key, now, step.wait_us * 1000, policy));
                    }
                    (step.remaining, step.wait_us * 1000)
                }
            };
            if tightest.is_none_or(|(r, _, _)| remaining < r) {
                tightest = Some((remaining, reset_ns, id));
            }
        }
        if let Some((remaining, reset_ns, id)) = tightest {
            admitted.headers = rate_limit_item(
                self.specs[id].per.as_str(),
                remaining,
                reset_ns.div_ceil(1_000_000_000),
            )
            .map(|v| (policy.clone(), v));
        }
        Ok(admitted)
    }

    /// Before any verification work on a protected route: a client address
    /// that has sent `auth_failures_per_minute` refused credentials is
    /// answered 429 at once, so guessing keys, flooding forged tokens or
    /// unknown opaque tokens (each an introspection call) costs it, not the
    /// gateway or the authorization server. One event per client and minute.
    pub fn before_authentication(&self, client: IpAddr) -> Result<(), Rejection> {
        let Some((_, tolerance)) = self.failures else {
            return Ok(());
        };
        let (key, now, mut failures) = self.failures_of(client);
        let Some(entry) = failures.get_mut(&key) else {
            return Ok(());
        };
        let allowed_at = entry.tat.saturating_sub(tolerance);
        if now >= allowed_at {
            return Ok(());
        }
        let event = now >= entry.quiet_until;
        if event {
            entry.quiet_until = now + 60_000_000_000;
        }
        Err(Rejection::RateLimited {
            retry_after_s: (allowed_at - now).div_ceil(1_000_000_000).max(1),
            policy: None,
            limit: None,
            reason: "too many refused credentials from this client address",
            event,
        })
    }

    /// `client`'s key, the limiter clock, and the refused-credentials map.
    fn failures_of(
        &self,
        client: IpAddr,
    ) -> (
        IpAddr,
        u64,
        std::sync::MutexGuard<'_, HashMap<IpAddr, Entry>>,
    ) {
        let key = client_key(client, self.client_prefix);
        let now = self.state.epoch.elapsed().as_nanos() as u64;
        let failures = self
            .state
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (key, now, failures)
    }

    /// Counts one refused credential against `client`'s budget.
    pub fn authentication_failed(&self, client: IpAddr) {
        let Some((interval, _)) = self.failures else {
            return;
        };
        let (key, now, mut failures) = self.failures_of(client);
        if failures.len() >= MAX_FAILING_CLIENTS && !failures.contains_key(&key) {
            make_room(&mut failures, now, MAX_FAILING_CLIENTS);
        }
        let entry = failures.entry(key).or_insert(Entry {
            tat: now,
            quiet_until: 0,
            seen: now,
        });
        entry.tat = entry.tat.max(now) + interval;
        entry.seen = now;
    }

    /// The shard of `key`, by its top bits (the low bits index its map).
    fn shard(&self, key: u64) -> std::sync::MutexGuard<'_, Shard> {
        self.state.shards[(key >> (64 - SHARDS.trailing_zeros())) as usize]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn local_key(&self, id: usize, value: &[u8]) -> u64 {
        let mut h = self.state.hasher.build_hasher();
        self.specs[id].seed.hash(&mut h);
        value.hash(&mut h);
        h.finish()
    }

    /// The 429 for `key`, raising the event once per window.
    fn refused(
        &self,
        spec: &Spec,
        key: u64,
        now: u64,
        wait_ns: u64,
        policy: &HeaderValue,
    ) -> Rejection {
        let mut shard = self.shard(key);
        let quiet_until = now + spec.period_s * 1_000_000_000;
        if shard.len() >= KEYS_PER_SHARD && !shard.contains_key(&key) {
            make_room(&mut shard, now, KEYS_PER_SHARD);
        }
        let event = match shard.get_mut(&key) {
            Some(e) if now < e.quiet_until => {
                e.seen = now;
                false
            }
            Some(e) => {
                e.quiet_until = quiet_until;
                e.seen = now;
                true
            }
            None => {
                shard.insert(
                    key,
                    Entry {
                        tat: 0,
                        quiet_until,
                        seen: now,
                    },
                );
                true
            }
        };
        Rejection::RateLimited {
            retry_after_s: wait_ns.div_ceil(1_000_000_000).max(1),
            policy: Some(policy.clone()),
            limit: rate_limit_item(spec.per.as_str(), 0, wait_ns.div_ceil(1_000_000_000)),
            reason: "rate limit exceeded",
            event,
        }
    }

    /// One GCRA step for `key`: `(remaining, ns until fully replenished)`.
    fn take(
        &self,
        spec: &Spec,
        key: u64,
        now: u64,
        policy: &HeaderValue,
    ) -> Result<(u64, u64), Rejection> {
        let mut shard = self.shard(key);
        if shard.len() >= KEYS_PER_SHARD && !shard.contains_key(&key) {
            make_room(&mut shard, now, KEYS_PER_SHARD);
        }
        let entry = shard.entry(key).or_insert(Entry {
            tat: now,
            quiet_until: 0,
            seen: now,
        });
        entry.seen = now;
        let tat = entry.tat.max(now);
        let allowed_at = tat.saturating_sub(spec.tolerance_ns);
        if now < allowed_at {
            drop(shard);
            return Err(self.refused(spec, key, now, allowed_at - now, policy));
        }
        let new_tat = tat + spec.interval_ns;
        entry.tat = new_tat;
        let remaining =
            (now + spec.tolerance_ns + spec.interval_ns).saturating_sub(new_tat) / spec.interval_ns;
        Ok((remaining, new_tat - now))
    }
}

fn missing_key(policy: &HeaderValue) -> Rejection {
    Rejection::RateLimited {
        retry_after_s: 1,
        policy: Some(policy.clone()),
        limit: None,
        reason: "the request lacks the key this limit counts by",
        event: true,
    }
}

#[cfg(test)]
mod tests;
