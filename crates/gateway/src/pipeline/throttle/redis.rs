//! Rate limits shared by several gateway instances through Redis (INPUT-08).
//!
//! The GCRA step runs inside Redis as one Lua script per limit, with
//! Redis's own clock (`TIME`), so every instance sees the same budget and
//! the same time; the limits of one request go in one pipelined round trip.
//! Keys are `pc:rl:` + the hex SHA-256 of the limit's identity and the key
//! value: no application name, subject or address is stored in clear.
//!
//! When Redis cannot be reached within `timeout_ms`, the declared policy
//! applies: refuse (default, fail closed) or fall back to this instance's
//! own limits. The outage and the recovery are each one security event;
//! reconnection is attempted at most twice a second.

use crate::events::{EventSink, SecurityEvent};
use crate::rejection::Severity;
use arc_swap::ArcSwapOption;
use portcullis_config::Redis;
use redis::aio::MultiplexedConnection;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// GCRA with Redis's clock. KEYS[1]: the key; ARGV: interval and tolerance
/// in microseconds. Returns {allowed, wait or reset in µs, remaining}.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allowed_at = tat - tolerance
if now < allowed_at then
  return {0, allowed_at - now, 0}
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return {1, new_tat - now, math.floor((now + tolerance + interval - new_tat) / interval)}
";

/// The outcome of one limit in Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub allowed: bool,
    /// Until allowed (refused) or until fully replenished (allowed), µs.
    pub wait_us: u64,
    pub remaining: u64,
}

/// One limit to apply: its Redis key and GCRA parameters.
#[derive(Debug)]
pub struct Check {
    pub key: String,
    pub interval_us: u64,
    pub tolerance_us: u64,
}

pub struct SharedLimits {
    client: redis::Client,
    conn: ArcSwapOption<MultiplexedConnection>,
    script: redis::Script,
    timeout: Duration,
    pub fall_back_to_local: bool,
    healthy: AtomicBool,
    last_attempt: Mutex<Option<Instant>>,
    events: EventSink,
}

impl std::fmt::Debug for SharedLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedLimits").finish_non_exhaustive()
    }
}

/// The Redis key of one limit and key value.
pub fn redis_key(limit_id: &str, value: &[u8]) -> String {
    use std::fmt::Write;
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(limit_id.as_bytes());
    ctx.update(&[0]);
    ctx.update(value);
    let digest = ctx.finish();
    let mut key = String::with_capacity(6 + 32);
    key.push_str("pc:rl:");
    for b in &digest.as_ref()[..16] {
        let _ = write!(key, "{b:02x}");
    }
    key
}

impl SharedLimits {
    pub fn new(config: &Redis, events: EventSink) -> Result<Self, String> {
        let client = match &config.ca {
            Some(ca) => {
                let pem = std::fs::read(ca).map_err(|e| {
                    format!("shared_state.redis.ca: {}: {}", ca.display(), e.kind())
                })?;
                redis::Client::build_with_tls(
                    config.url.as_str(),
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(pem),
                    },
                )
            }
            None => redis::Client::open(config.url.as_str()),
        }
        .map_err(|e| format!("shared_state.redis.url: {e}"))?;
        Ok(Self {
            client,
            conn: ArcSwapOption::empty(),
            script: redis::Script::new(GCRA),
            timeout: config.timeout,
            fall_back_to_local: config.fall_back_to_local,
            healthy: AtomicBool::new(true),
            last_attempt: Mutex::new(None),
            events,
        })
    }

    async fn connection(&self) -> Result<MultiplexedConnection, String> {
        if let Some(c) = self.conn.load_full() {
            return Ok((*c).clone());
        }
        {
            let mut last = self
                .last_attempt
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if last.is_some_and(|t| t.elapsed() < Duration::from_millis(500)) {
                return Err("Redis unreachable (reconnecting)".into());
            }
            *last = Some(Instant::now());
        }
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        let mut conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| format!("Redis connect: {e}"))?;
        // Pipelined calls use EVALSHA: the script is loaded on every new
        // connection (a restarted Redis has forgotten it).
        redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(GCRA)
            .query_async::<String>(&mut conn)
            .await
            .map_err(|e| format!("Redis SCRIPT LOAD: {e}"))?;
        self.conn.store(Some(std::sync::Arc::new(conn.clone())));
        Ok(conn)
    }

    /// Applies every check in one round trip. `Err` when Redis could not
    /// answer in time: the caller applies the failure policy.
    pub async fn take(&self, checks: &[Check]) -> Result<Vec<Step>, ()> {
        let result = tokio::time::timeout(self.timeout, async {
            let mut conn = self.connection().await?;
            let mut pipe = redis::pipe();
            for c in checks {
                let mut invocation = self.script.key(&c.key);
                invocation.arg(c.interval_us).arg(c.tolerance_us);
                pipe.invoke_script(&invocation);
            }
            let rows: Vec<(i64, i64, i64)> = pipe
                .query_async(&mut conn)
                .await
                .map_err(|e| format!("Redis: {e}"))?;
            Ok::<_, String>(rows)
        })
        .await
        .unwrap_or_else(|_| Err("Redis did not answer in time".into()));
        match result {
            Ok(rows) => {
                if !self.healthy.swap(true, Ordering::AcqRel) {
                    self.events.emit(SecurityEvent::operational(
                        "shared-state-recovered",
                        Severity::Informational,
                        "Redis answers again: shared rate limits are enforced",
                    ));
                }
                Ok(rows
                    .into_iter()
                    .map(|(a, w, r)| Step {
                        allowed: a == 1,
                        wait_us: w.max(0) as u64,
                        remaining: r.max(0) as u64,
                    })
                    .collect())
            }
            Err(e) => {
                // A broken connection is dropped; the next request reconnects.
                self.conn.store(None);
                if self.healthy.swap(false, Ordering::AcqRel) {
                    self.events.emit(SecurityEvent::operational(
                        "shared-state-unavailable",
                        Severity::High,
                        &format!(
                            "{e}; shared rate limits {}",
                            if self.fall_back_to_local {
                                "fall back to per-instance limits"
                            } else {
                                "refuse requests until it is back"
                            }
                        ),
                    ));
                }
                tracing::warn!(error = %e, "shared rate limit check failed");
                Err(())
            }
        }
    }
}
