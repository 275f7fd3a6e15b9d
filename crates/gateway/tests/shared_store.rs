//! The stores behind identity (#6): the embedded SQLite store and the
//! PostgreSQL store several instances share keep one contract (bound
//! parameters, errors, a change feed that hears every commit within 1 s);
//! a pepper check; recovery after the server goes away. Real PostgreSQL.

use portcullis_gateway::store::pepper::Pepper;
use portcullis_gateway::store::postgres::PgStore;
use portcullis_gateway::store::{
    Admin, ChainMac, ChangeFeed, KeyRecord, Revocation, SqliteStore, Store, StoreError,
    pepper_fingerprint,
};
use portcullis_testkit::PostgresServer;
use std::time::{Duration, Instant};

/// Waits until the feed reports a change; how long it took.
fn next_change(feed: &mut dyn ChangeFeed, within: Duration) -> Duration {
    let start = Instant::now();
    while start.elapsed() < within {
        if feed.wait(Duration::from_millis(100)).unwrap_or(false) {
            return start.elapsed();
        }
    }
    panic!("no change announced within {within:?}");
}

/// What every store implementation promises, checked through two handles on
/// the same data (two instances): bound parameters, errors, and a change
/// feed on `b`'s side that hears each change made through `a` within 1 s.
fn store_contract(a: &dyn Store, b: &dyn Store) {
    let mut feed = b.changes().unwrap();
    let feed = feed.as_mut();
    // Settle: a new feed may report that it missed what came before it.
    feed.wait(Duration::from_millis(100)).unwrap();
    assert!(
        !feed.wait(Duration::from_millis(300)).unwrap(),
        "nothing changed yet"
    );

    // A hostile name is data, never SQL (INPUT-10).
    let name = "x'); DROP TABLE applications; --";
    let app = a.create_app(name, 1).unwrap();
    assert!(matches!(
        a.create_app(name, 2),
        Err(StoreError::AppExists(_))
    ));
    assert_eq!(b.app_by_name(name).unwrap(), app);
    next_change(feed, Duration::from_secs(1));

    a.insert_key(&KeyRecord {
        id: "k1".into(),
        app_id: app.id.clone(),
        mac: vec![1, 2],
        created_at: 1,
        expires_at: None,
        revoked_at: None,
    })
    .unwrap();
    next_change(feed, Duration::from_secs(1));
    assert_eq!(b.snapshot().unwrap().keys["k1"].mac, vec![1, 2]);
    a.revoke_key("k1", 5).unwrap();
    next_change(feed, Duration::from_secs(1));
    assert!(b.snapshot().unwrap().keys.is_empty());
    assert!(matches!(
        a.revoke_key("k1", 6),
        Err(StoreError::NoSuchKey(_))
    ));

    a.set_app_enabled(name, false).unwrap();
    next_change(feed, Duration::from_secs(1));
    assert!(!b.snapshot().unwrap().apps[&app.id].enabled);
    assert!(matches!(
        a.set_app_enabled("nobody", true),
        Err(StoreError::NoSuchApp(_))
    ));

    // Revoking the same token twice is idempotent.
    let revocation = Revocation {
        issuer: "i".into(),
        jti: Some("j".into()),
        subject: None,
        revoked_before: None,
        expires_at: 10,
    };
    for _ in 0..2 {
        a.revoke_token(&revocation, 1).unwrap();
    }
    next_change(feed, Duration::from_secs(1));
    assert_eq!(b.snapshot().unwrap().revoked_jti.len(), 1);
    assert_eq!(a.purge_revocations(11).unwrap(), 1);

    a.bind_certificate(name, "svc.clients.test", 1).unwrap();
    assert!(matches!(
        a.bind_certificate(name, "svc.clients.test", 2),
        Err(StoreError::SanBound(_))
    ));
    next_change(feed, Duration::from_secs(1));
    assert_eq!(b.certificate_bindings().unwrap()[0].1, name);
    a.unbind_certificate("svc.clients.test").unwrap();
    assert!(matches!(
        a.unbind_certificate("svc.clients.test"),
        Err(StoreError::NoSuchBinding(_))
    ));
}

/// Text that breaks SQL built by interpolation in either dialect: quotes,
/// comment and statement ends, placeholders of both drivers, `LIKE`
/// wildcards, a backslash and a dollar quote.
const HOSTILE: [&str; 4] = [
    "v'); DROP TABLE api_keys; --",
    "y\" OR 1=1 /* $1 ?1 */",
    "z\\'; $$; SELECT pg_sleep(0); --",
    "w%_' || (SELECT name FROM applications) || '",
];

/// INPUT-10 for every method of the store that takes text: each hostile
/// value is stored and read back byte for byte, nothing else changes, and
/// the tables are still there.
fn hostile_text_round_trips(s: &dyn Store) {
    let chain: ChainMac<'_> =
        &|prev: &[u8], seq: i64, entry: &str| [prev, &seq.to_be_bytes(), entry.as_bytes()].concat();
    for (n, text) in HOSTILE.iter().enumerate() {
        let at = n as i64 + 100;
        let app = s.create_app(text, at).unwrap();
        assert_eq!(app.name, *text);
        assert_eq!(s.app_by_name(text).unwrap(), app);
        s.set_app_enabled(text, false).unwrap();
        assert!(!s.app_by_name(text).unwrap().enabled);
        s.set_app_enabled(text, true).unwrap();
        let key_id = format!("{text}#{n}");
        s.insert_key(&KeyRecord {
            id: key_id.clone(),
            app_id: app.id.clone(),
            mac: text.as_bytes().to_vec(),
            created_at: at,
            expires_at: None,
            revoked_at: None,
        })
        .unwrap();
        let keys = s.keys(Some(&app.id)).unwrap();
        assert_eq!(keys.len(), 1, "{text}");
        assert_eq!(
            (keys[0].id.as_str(), keys[0].mac.as_slice()),
            (key_id.as_str(), text.as_bytes())
        );
        s.expire_keys(&app.id, at + 50, text).unwrap();
        assert_eq!(s.keys(Some(&app.id)).unwrap()[0].expires_at, Some(at + 50));
        s.revoke_key(&key_id, at + 1).unwrap();
        assert!(!s.snapshot().unwrap().keys.contains_key(&key_id));
        s.revoke_token(
            &Revocation {
                issuer: (*text).into(),
                jti: Some((*text).into()),
                subject: None,
                revoked_before: None,
                expires_at: at,
            },
            at,
        )
        .unwrap();
        s.revoke_token(
            &Revocation {
                issuer: (*text).into(),
                jti: None,
                subject: Some((*text).into()),
                revoked_before: Some(at),
                expires_at: at,
            },
            at,
        )
        .unwrap();
        let snap = s.snapshot().unwrap();
        let pair = ((*text).to_owned(), (*text).to_owned());
        assert!(snap.revoked_jti.contains_key(&pair), "{text}");
        assert_eq!(snap.revoked_before.get(&pair), Some(&at), "{text}");
        s.bind_certificate(text, text, at).unwrap();
        assert!(
            s.certificate_bindings()
                .unwrap()
                .contains(&((*text).into(), (*text).into()))
        );
        assert_eq!(s.snapshot().unwrap().cert_apps.get(*text), Some(&app.id));
        s.unbind_certificate(text).unwrap();
        let admin = Admin {
            id: key_id.clone(),
            name: (*text).into(),
            role: (*text).into(),
            mac: text.as_bytes().to_vec(),
            created_at: at,
            disabled_at: None,
        };
        s.create_admin(&admin).unwrap();
        assert_eq!(s.admin(&key_id).unwrap(), Some(admin.clone()));
        assert!(s.admins().unwrap().contains(&admin));
        s.set_kill_switch(text, text, text, at).unwrap();
        assert_eq!(
            s.snapshot()
                .unwrap()
                .kill_switches
                .get(*text)
                .map(String::as_str),
            Some(*text)
        );
        s.clear_kill_switch(text).unwrap();
        assert!(s.snapshot().unwrap().kill_switches.is_empty());
        let seq = s.append_audit(text, chain).unwrap();
        let (rows, _) = s.audit_rows().unwrap();
        assert_eq!(
            rows.iter().find(|r| r.seq == seq).map(|r| r.entry.as_str()),
            Some(*text)
        );
    }
    assert_eq!(s.purge_revocations(i64::MAX).unwrap(), 2 * HOSTILE.len());
    let names: Vec<String> = s.apps().unwrap().into_iter().map(|a| a.name).collect();
    for text in HOSTILE {
        assert!(names.iter().any(|n| n == text), "{text} in {names:?}");
    }
}

#[test]
fn sqlite_store_keeps_the_store_contract() {
    let dir = tempfile::tempdir().unwrap();
    let a = SqliteStore::open(dir.path()).unwrap();
    let b = SqliteStore::open(dir.path()).unwrap();
    store_contract(&a, &b);
    hostile_text_round_trips(&a);
}

#[test]
fn postgres_store_keeps_the_store_contract() {
    let pg = PostgresServer::start();
    // Two instances starting at once: migrations run once, under a lock.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| PgStore::open(&pg.config()));
        let b = s.spawn(|| PgStore::open(&pg.config()));
        (a.join().unwrap().unwrap(), b.join().unwrap().unwrap())
    });
    store_contract(&a, &b);
    hostile_text_round_trips(&a);
}

#[test]
fn instances_with_another_pepper_are_refused() {
    let pg = PostgresServer::start();
    let store = PgStore::open(&pg.config()).unwrap();
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = Pepper::load_or_create(one.path()).unwrap();
    let other = Pepper::load_or_create(two.path()).unwrap();
    store.pepper_check(&pepper_fingerprint(&first)).unwrap();
    store.pepper_check(&pepper_fingerprint(&first)).unwrap();
    let refused = store.pepper_check(&pepper_fingerprint(&other)).unwrap_err();
    assert!(matches!(refused, StoreError::PepperMismatch));
    assert!(refused.to_string().contains("pepper.key"), "{refused}");
}

#[test]
fn the_feed_reports_an_outage_and_rereads_after_it() {
    let mut pg = PostgresServer::start();
    let store = PgStore::open(&pg.config()).unwrap();
    let mut feed = store.changes().unwrap();
    assert!(feed.wait(Duration::from_millis(100)).unwrap());
    pg.stop();
    let mut failed = false;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !failed && Instant::now() < deadline {
        failed = feed.wait(Duration::from_millis(100)).is_err();
    }
    assert!(
        failed,
        "a dead server must show as an error, not as `no change`"
    );
    assert!(store.apps().is_err());
    pg.start_again();
    // Reconnected: whatever changed meanwhile is unknown, so it says `changed`.
    next_change(feed.as_mut(), Duration::from_secs(5));
    store.create_app("after", 1).unwrap();
    next_change(feed.as_mut(), Duration::from_secs(1));
}

/// Through a running gateway on the shared store: a change whose notice is
/// lost (triggers bypassed) is still applied by the periodic re-read, and a
/// store outage is one `store-unavailable` event while the last snapshot
/// keeps answering, then one `store-recovered`.
#[tokio::test(flavor = "multi_thread")]
async fn missed_notices_are_caught_by_the_resync_and_outages_are_events() {
    use portcullis_testkit::{ORDERS_API, TestEnv};
    let mut pg = PostgresServer::start();
    let env = TestEnv::new().await;
    let api = ORDERS_API.replace("auth: public }", "auth: { api_key: true } }");
    let mut gw = env
        .gateway(&api)
        .with(&format!(
            "identity: {{ data_dir: {} }}\nshared_state:\n{}",
            env.identity_dir().display(),
            pg.yaml().replace(" }\n", ", resync_s: 1 }\n")
        ))
        .start()
        .await;
    let store = PgStore::open(&pg.config()).unwrap();
    let pepper = Pepper::load_or_create(&env.identity_dir()).unwrap();
    store.create_app("web", 1).unwrap();
    let key = portcullis_gateway::identity::apikeys::issue(&store, &pepper, "web", 1)
        .unwrap()
        .1;
    until(&gw, &key, 200, Duration::from_secs(1)).await;

    // Disable the application without a notice: replication role skips triggers.
    sql(
        &pg.config(),
        "SET session_replication_role = replica; UPDATE applications SET enabled = FALSE",
    );
    // No notice, so only the periodic re-read (every second here) applies it.
    let took = until(&gw, &key, 403, Duration::from_secs(3)).await;
    assert!(
        took > Duration::from_millis(100),
        "{took:?}: a notice was sent after all?"
    );
    while gw.events.try_recv().is_ok() {}

    pg.stop();
    loop {
        let e = gw.next_event().await;
        if e.status_code == "store-unavailable" {
            break;
        }
    }
    // The last snapshot keeps answering: still refused, not an error.
    assert_eq!(status(&gw, &key).await, 403);
    pg.start_again();
    loop {
        let e = gw.next_event().await;
        if e.status_code == "store-recovered" {
            break;
        }
    }
    drop(store);
}

async fn status(gw: &portcullis_testkit::TestGateway, key: &str) -> u16 {
    let req = gw
        .request("GET", "/v1/orders")
        .header("x-api-key", key)
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    gw.send(portcullis_testkit::Proto::Http1, req)
        .await
        .status
        .as_u16()
}

/// Polls until the gateway answers `want`; how long that took.
async fn until(
    gw: &portcullis_testkit::TestGateway,
    key: &str,
    want: u16,
    within: Duration,
) -> Duration {
    let start = Instant::now();
    while status(gw, key).await != want {
        assert!(start.elapsed() < within, "not {want} within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    start.elapsed()
}

/// Runs SQL as the cluster's superuser over plaintext loopback (off the
/// runtime: the `postgres` client blocks); the first column of each row.
fn sql(cfg: &portcullis_config::Postgres, statements: &str) -> Vec<String> {
    let (cfg, statements) = (cfg.clone(), statements.to_owned());
    std::thread::spawn(move || {
        let mut c = postgres::Config::new()
            .host(&cfg.host)
            .port(cfg.port)
            .user(&cfg.user)
            .dbname(&cfg.dbname)
            .password(std::fs::read_to_string(cfg.password_file.unwrap()).unwrap())
            .connect(postgres::NoTls)
            .unwrap();
        c.simple_query(&statements)
            .unwrap()
            .into_iter()
            .filter_map(|m| match m {
                postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                _ => None,
            })
            .collect()
    })
    .join()
    .unwrap()
}

#[test]
fn postgres_over_tls_trusts_only_the_configured_anchors_and_never_downgrades() {
    use portcullis_gateway::dev::pki::DevCa;
    let dir = tempfile::tempdir().unwrap();
    let write_ca = |name: &str| {
        let ca = DevCa::new(name).unwrap();
        let path = dir.path().join(format!("{name}.pem"));
        std::fs::write(&path, ca.cert_pem()).unwrap();
        (ca, path)
    };
    let (ca, ca_path) = write_ca("pg-ca");
    let pg = PostgresServer::start_with_tls(&ca);
    let with_ca = |path: &std::path::Path, server: &PostgresServer| portcullis_config::Postgres {
        ca: Some(path.to_owned()),
        ..server.config()
    };
    let store = PgStore::open(&with_ca(&ca_path, &pg)).unwrap();
    store.apps().unwrap();
    // The server sees the gateway's session as TLS.
    let tls_sessions = sql(
        &pg.config(),
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE s.ssl AND a.application_name = 'portcullis'",
    );
    assert_eq!(tls_sessions, vec!["1".to_owned()]);
    // A server certificate from another CA is refused.
    let (_, other) = write_ca("other-ca");
    let err = PgStore::open(&with_ca(&other, &pg)).unwrap_err();
    assert!(err.to_string().contains("shared store"), "{err}");
    // A server that offers no TLS is refused, not used in plaintext.
    let plain = PostgresServer::start();
    assert!(PgStore::open(&with_ca(&ca_path, &plain)).is_err());
    assert!(PgStore::open(&plain.config()).is_ok());
}
