//! Unit tests of the local limiter: GCRA, keys, eviction, headers.

use super::*;

fn throttle(limits: &str) -> (Throttle, Arc<RouteLimits>) {
    throttle_with("", limits)
}

/// A throttle for one route `/x`, with `top` added at the config's top
/// level and `limits` in the API.
fn throttle_with(top: &str, limits: &str) -> (Throttle, Arc<RouteLimits>) {
    let yaml = format!(
        "mode: dev\n{top}\nlisteners: [{{ name: p, bind: '127.0.0.1:0', plaintext: dangerous_serve }}]\nupstreams: {{ u: {{ url: 'http://127.0.0.1:1', dangerous_plaintext_upstream: true }} }}\napis:\n  - name: a\n    upstream: u\n    routes: [{{ path: /x, methods: [GET], auth: public }}]\n    {limits}\n"
    );
    let config = portcullis_config::parse(&yaml, std::path::Path::new("/")).unwrap();
    let (t, table) = Throttle::build(&config, None);
    (t, table[0][0].clone())
}

fn ip(n: u8) -> IpAddr {
    IpAddr::from([10, 0, 0, n])
}

#[tokio::test]
async fn gcra_allows_the_burst_then_the_rate_per_client() {
    let (t, route) =
        throttle("rate_limits: [{ per: client, requests: 10, per_seconds: 1, burst: 3 }]");
    for _ in 0..3 {
        t.admit(&route, None, ip(1), "GET /x").await.unwrap();
    }
    let refused = t.admit(&route, None, ip(1), "GET /x").await.unwrap_err();
    let Rejection::RateLimited {
        retry_after_s,
        event,
        ..
    } = refused
    else {
        panic!("{refused:?}")
    };
    assert_eq!(retry_after_s, 1);
    assert!(event, "the first refusal of the window raises the event");
    // Only one event per key and window.
    let Rejection::RateLimited { event, .. } =
        t.admit(&route, None, ip(1), "GET /x").await.unwrap_err()
    else {
        unreachable!()
    };
    assert!(!event);
    // Another client has its own budget.
    let ok = t.admit(&route, None, ip(2), "GET /x").await.unwrap();
    let (policy, limit) = ok.headers.unwrap();
    assert_eq!(policy, "\"client\";q=10;w=1");
    assert_eq!(limit, "\"client\";r=2;t=1");
    // One interval (100 ms) later, one more request fits.
    std::thread::sleep(std::time::Duration::from_millis(110));
    t.admit(&route, None, ip(1), "GET /x").await.unwrap();
    assert!(t.admit(&route, None, ip(1), "GET /x").await.is_err());
}

#[tokio::test]
async fn a_missing_key_fails_closed_and_concurrency_is_capped() {
    let (t, route) = throttle(
        "rate_limits: [{ per: route, requests: 100, per_seconds: 1 }]\n    route_limits: { /x: { concurrency: 1 } }",
    );
    // The slot is taken once the body is read (`occupy`), not at admission.
    let mut held = t.admit(&route, None, ip(1), "GET /x").await.unwrap();
    held.occupy().unwrap();
    let mut second = t.admit(&route, None, ip(2), "GET /x").await.unwrap();
    assert!(matches!(
        second.occupy(),
        Err(Rejection::RateLimited {
            reason: "route concurrency cap reached",
            ..
        })
    ));
    drop(held);
    let mut third = t.admit(&route, None, ip(2), "GET /x").await.unwrap();
    third.occupy().unwrap();
    // A subject limit with no subject: refused, not waved through.
    let spec = Spec::new(
        &RateLimit {
            per: LimitKey::Subject,
            requests: 1,
            period: std::time::Duration::from_secs(1),
            burst: 1,
        },
        "a|/x|0",
        &t.state.hasher,
    );
    let t2 = Throttle {
        specs: vec![spec],
        state: t.state.clone(),
        client_prefix: 64,
        failures: None,
    };
    let limits = RouteLimits {
        ids: vec![0],
        concurrency: None,
        policy: Some(HeaderValue::from_static("\"subject\";q=1;w=1")),
    };
    assert!(matches!(
        t2.admit(&limits, Some(&ClaimSet::default()), ip(1), "GET /x")
            .await,
        Err(Rejection::RateLimited {
            reason: "the request lacks the key this limit counts by",
            ..
        })
    ));
}

#[test]
fn ratelimit_fields_are_written_like_format_would() {
    for (per, r, t) in [
        ("client", 0, 0),
        ("application", 599, 60),
        ("route", u64::MAX, 7),
    ] {
        let v = rate_limit_item(per, r, t).unwrap();
        assert_eq!(v.to_str().unwrap(), format!("\"{per}\";r={r};t={t}"));
    }
    assert!(SHARDS.is_power_of_two());
}

/// The window text of a `RateLimit-Policy` item is bounded at exactly
/// 30 characters (the fixed buffer holds it with two 20-digit numbers).
#[test]
fn a_policy_item_takes_a_window_of_at_most_thirty_characters() {
    let thirty = "w".repeat(30);
    let v = rate_limit_item(&thirty, 1, 2).expect("30 characters fit");
    assert_eq!(v.to_str().unwrap(), format!("\"{thirty}\";r=1;t=2"));
    assert!(rate_limit_item(&"w".repeat(31), 1, 2).is_none());
    let longest = rate_limit_item(&thirty, u64::MAX, u64::MAX).unwrap();
    assert_eq!(longest.len(), 30 + 2 + 3 + 20 + 3 + 20);
}

/// `make_room` first drops the idle keys: those whose budget is full
/// again (`tat` not after now) and whose event window has passed
/// (`quiet_until` not after now), to the nanosecond. While that leaves
/// the map below its cap, no busy key is forgotten.
#[test]
fn idle_keys_go_first_and_busy_keys_stay_while_there_is_room() {
    let now = 1_000;
    let entry = |tat, quiet_until, seen| Entry {
        tat,
        quiet_until,
        seen,
    };
    let mut map: HashMap<&str, Entry> = HashMap::from([
        ("budget refills now", entry(now, 0, 1)),
        ("budget refills later", entry(now + 1, 0, 2)),
        ("quiet until now", entry(0, now, 3)),
        ("quiet until later", entry(0, now + 1, 4)),
        ("quiet until earlier", entry(0, now - 1, 5)),
        ("both later", entry(now + 5, now + 5, 6)),
    ]);
    make_room(&mut map, now, 100);
    let mut kept: Vec<&str> = map.keys().copied().collect();
    kept.sort_unstable();
    assert_eq!(
        kept,
        ["both later", "budget refills later", "quiet until later"],
        "idle keys dropped, every busy key kept while below the cap"
    );
    // At the cap, the least recently seen eighth goes too.
    let mut full: HashMap<u64, Entry> = (0..16).map(|k| (k, entry(now + 1, 0, k))).collect();
    make_room(&mut full, now, 16);
    assert_eq!(full.len(), 13);
    assert!((0..3).all(|k| !full.contains_key(&k)));
    // One below the cap: nothing busy is dropped.
    let mut roomy: HashMap<u64, Entry> = (0..15).map(|k| (k, entry(now + 1, 0, k))).collect();
    make_room(&mut roomy, now, 16);
    assert_eq!(roomy.len(), 15);
}

/// A flood of new keys no longer locks new clients out (it used to
/// answer 429 to every new key once a shard was full): the least
/// recently seen keys are forgotten, the recently seen keep their state.
#[tokio::test]
async fn a_full_key_space_forgets_the_least_recently_seen_keys() {
    let (t, route) =
        throttle("rate_limits: [{ per: client, requests: 1000000, per_seconds: 1, burst: 1 }]");
    // Fill every shard with keys that stay busy for a long time; within a
    // shard, key k was last seen at time k.
    let now = t.state.epoch.elapsed().as_nanos() as u64;
    for shard in &t.state.shards {
        let mut s = shard.lock().unwrap();
        for k in 0..KEYS_PER_SHARD as u64 {
            s.insert(
                k * SHARDS as u64 + 7_000_000_000,
                Entry {
                    tat: now + 60_000_000_000,
                    quiet_until: 0,
                    seen: k,
                },
            );
        }
    }
    t.admit(&route, None, ip(9), "GET /x").await.unwrap();
    let shard = t
        .state
        .shards
        .iter()
        .find(|s| s.lock().unwrap().len() < KEYS_PER_SHARD)
        .expect("one shard made room");
    let s = shard.lock().unwrap();
    let oldest_kept = s
        .values()
        .filter(|e| e.seen < now)
        .map(|e| e.seen)
        .min()
        .unwrap();
    assert!(oldest_kept > 0, "the least recently seen key was forgotten");
    assert!(
        s.values().any(|e| e.seen == KEYS_PER_SHARD as u64 - 1),
        "the most recently seen key kept its state"
    );
}

/// IPv6 clients are counted by their /64 (configurable): one host's
/// many addresses share one budget; another /64 has its own.
#[tokio::test]
async fn ipv6_clients_share_a_budget_per_prefix() {
    let (t, route) =
        throttle("rate_limits: [{ per: client, requests: 1, per_seconds: 60, burst: 1 }]");
    let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
    t.admit(&route, None, v6("2001:db8:1:2::1"), "GET /x")
        .await
        .unwrap();
    assert!(
        t.admit(&route, None, v6("2001:db8:1:2:ffff::9"), "GET /x")
            .await
            .is_err(),
        "another address of the same /64 shares the budget"
    );
    t.admit(&route, None, v6("2001:db8:1:3::1"), "GET /x")
        .await
        .unwrap();
}

/// Refused credentials: a budget of 2 a minute lets the second failure
/// through to verification and stops the third for 30 s (one interval);
/// another client has its own budget; 0 turns the limiter off.
#[test]
fn the_refused_credentials_budget_is_exact_and_zero_turns_it_off() {
    let (t, _) = throttle_with("limits: { auth_failures_per_minute: 2 }", "");
    let c = ip(7);
    t.authentication_failed(c);
    t.before_authentication(c)
        .expect("one refused credential of two: still verified");
    t.authentication_failed(c);
    let Err(Rejection::RateLimited {
        retry_after_s,
        event,
        ..
    }) = t.before_authentication(c)
    else {
        panic!("the budget of two is spent")
    };
    assert_eq!(retry_after_s, 30, "one interval of a 2-a-minute budget");
    assert!(event);
    t.before_authentication(ip(8)).unwrap();

    let (off, _) = throttle_with("limits: { auth_failures_per_minute: 0 }", "");
    for _ in 0..1000 {
        off.authentication_failed(c);
    }
    off.before_authentication(c).unwrap();
}

/// The refused-credentials map is bounded: at its cap a new client makes
/// room (the least recently seen go), and a client already in it does not
/// make anyone else forgotten.
#[test]
fn the_refused_credentials_map_forgets_only_when_a_new_client_meets_the_cap() {
    let (t, _) = throttle("");
    let addr = |k: u32| IpAddr::from((0x0a00_0000_u32 + k).to_be_bytes());
    let now = t.state.epoch.elapsed().as_nanos() as u64;
    {
        let mut f = t.state.failures.lock().unwrap();
        for k in 0..MAX_FAILING_CLIENTS as u32 {
            f.insert(
                addr(k),
                Entry {
                    tat: now + 600_000_000_000,
                    quiet_until: 0,
                    seen: u64::from(k),
                },
            );
        }
    }
    t.authentication_failed(addr(5));
    assert_eq!(
        t.state.failures.lock().unwrap().len(),
        MAX_FAILING_CLIENTS,
        "a known client at the cap makes nobody forgotten"
    );
    let newcomer = IpAddr::from([192, 0, 2, 1]);
    t.authentication_failed(newcomer);
    let f = t.state.failures.lock().unwrap();
    assert!(f.len() <= MAX_FAILING_CLIENTS, "{} keys", f.len());
    assert!(f.contains_key(&newcomer));
    assert!(!f.contains_key(&addr(0)), "the least recently seen went");
    assert!(f.contains_key(&addr(5)));
}

/// With several limits on a route, the one with the fewest requests left
/// speaks in `RateLimit`; on a tie, the first listed.
#[tokio::test]
async fn the_tightest_limit_speaks_and_the_first_listed_on_a_tie() {
    for (bursts, speaks) in [
        ((5, 3), "\"route\";r=2;t=1"),
        ((3, 3), "\"client\";r=2;t=1"),
    ] {
        let (t, route) = throttle(&format!(
            "rate_limits: [{{ per: client, requests: 10, per_seconds: 1, burst: {} }}, {{ per: route, requests: 10, per_seconds: 1, burst: {} }}]",
            bursts.0, bursts.1
        ));
        let admitted = t.admit(&route, None, ip(1), "GET /x").await.unwrap();
        assert_eq!(admitted.headers.unwrap().1, speaks, "bursts {bursts:?}");
    }
}

/// A refusal raises its event once per window, and again from the very
/// nanosecond the window ends; a full shard makes room for a refused key it
/// did not hold (shared limits refuse keys the local map never saw), and a
/// key it holds makes no one forgotten.
#[test]
fn refusals_raise_one_event_per_window_and_keep_shards_bounded() {
    let (t, _) = throttle("rate_limits: [{ per: client, requests: 1, per_seconds: 60, burst: 1 }]");
    let spec = &t.specs[0];
    let policy = HeaderValue::from_static("\"client\";q=1;w=60");
    let event = |r: Rejection| match r {
        Rejection::RateLimited { event, .. } => event,
        other => panic!("{other:?}"),
    };
    let key = 0x0123_4567_89ab_cdef;
    let start = 1_000_000_000_000;
    let window = 60_000_000_000;
    assert!(event(t.refused(spec, key, start, 1, &policy)));
    assert!(!event(t.refused(spec, key, start + window - 1, 1, &policy)));
    assert!(event(t.refused(spec, key, start + window, 1, &policy)));

    let full_key = 0xfedc_ba98_7654_3210_u64;
    fill_shard_of(&t, full_key & !0xffff, |k| Entry {
        tat: start + 10 * window,
        quiet_until: 0,
        seen: k,
    });
    let known = (full_key & !0xffff) | 5;
    t.refused(spec, known, start, 1, &policy);
    assert_eq!(
        t.shard(full_key).len(),
        KEYS_PER_SHARD,
        "a known key at the cap makes nobody forgotten"
    );
    let newcomer = (full_key & !0xffff) | 0xffff;
    t.refused(spec, newcomer, start, 1, &policy);
    let s = t.shard(full_key);
    assert!(s.len() <= KEYS_PER_SHARD, "{} keys", s.len());
    assert!(s.contains_key(&newcomer) && s.contains_key(&known));
    assert!(
        !s.contains_key(&(full_key & !0xffff)),
        "the least recently seen went"
    );
}

/// A local budget of one request a minute: the answer says `t=60`, the
/// refusal `Retry-After: 60`; and a key the full shard already holds takes
/// its step without making anyone forgotten.
#[tokio::test]
async fn a_slow_budget_reports_its_wait_in_seconds_and_known_keys_evict_nobody() {
    let (t, route) =
        throttle("rate_limits: [{ per: client, requests: 1, per_seconds: 60, burst: 1 }]");
    let (_, limit) = t
        .admit(&route, None, ip(3), "GET /x")
        .await
        .unwrap()
        .headers
        .unwrap();
    assert_eq!(limit, "\"client\";r=0;t=60");
    let Err(Rejection::RateLimited { retry_after_s, .. }) =
        t.admit(&route, None, ip(3), "GET /x").await
    else {
        panic!("one request a minute")
    };
    assert_eq!(retry_after_s, 60);

    let spec = &t.specs[0];
    let policy = HeaderValue::from_static("\"client\";q=1;w=60");
    let key = 0x0f0f_0000_0000_0000_u64;
    let now = 1_000_000_000_000;
    fill_shard_of(&t, key, |k| Entry {
        tat: 0,
        quiet_until: now + 1,
        seen: k,
    });
    t.take(spec, key | 7, now, &policy).unwrap();
    assert_eq!(t.shard(key).len(), KEYS_PER_SHARD);
}

/// Fills the shard holding `base` with `KEYS_PER_SHARD` keys `base | k`
/// (all in that shard: the shard is chosen by a key's top bits), each with
/// `entry(k)`.
fn fill_shard_of(t: &Throttle, base: u64, entry: impl Fn(u64) -> Entry) {
    let mut s = t.shard(base);
    s.clear();
    for k in 0..KEYS_PER_SHARD as u64 {
        s.insert(base | k, entry(k));
    }
}
