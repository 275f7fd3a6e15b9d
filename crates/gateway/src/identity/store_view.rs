//! The store as the request path sees it (AUTHZ-05): an in-memory
//! snapshot, opened once per process and kept across reloads, refreshed by
//! one supervised thread whenever any instance or the CLI changes the store,
//! and its staleness for `max_staleness`.

use crate::clock::now;
use crate::events::{EventSink, SecurityEvent};
use crate::rejection::Severity;
use crate::store::pepper::Pepper;
use crate::store::{ChangeFeed, Snapshot, Store, StoreError};
use arc_swap::ArcSwap;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// The store, the pepper and the current snapshot: opened once per
/// process and kept across config reloads, with the one refresher thread
/// that follows the store's changes.
pub struct StoreView {
    pub(super) pepper: Pepper,
    pub(super) store: Arc<dyn Store>,
    pub(super) snapshot: ArcSwap<Snapshot>,
    /// Unix milliseconds when the store last answered (the snapshot read,
    /// or its change feed saying nothing changed): the snapshot was current.
    pub(super) confirmed_ms: std::sync::atomic::AtomicU64,
    /// Where operational events of identity go (they outlive reloads too).
    pub(super) events: EventSink,
}

impl StoreView {
    /// Re-reads the store into the snapshot now.
    pub fn refresh(&self) -> Result<(), StoreError> {
        self.snapshot.store(Arc::new(self.store.snapshot()?));
        self.confirm();
        Ok(())
    }

    /// Notes that the store answered and the snapshot is current.
    fn confirm(&self) {
        self.confirmed_ms
            .store(crate::clock::now_ms(), std::sync::atomic::Ordering::Release);
    }

    /// How long since the snapshot was last known to be current.
    pub fn staleness(&self) -> Duration {
        let confirmed = self.confirmed_ms.load(std::sync::atomic::Ordering::Acquire);
        Duration::from_millis(crate::clock::now_ms().saturating_sub(confirmed))
    }

    /// The current snapshot of the store.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The pepper (API keys, admin tokens, the audit chain).
    pub fn pepper(&self) -> &Pepper {
        &self.pepper
    }
}

/// Keeps the snapshot current: re-reads the store when its change feed
/// reports a change made anywhere (this process, the CLI, another instance),
/// and every `resync` regardless, so a missed notice cannot leave this
/// instance stale. Also re-reads changed JWKS files and purges expired
/// revocations. An unreachable store raises one `store-unavailable` event
/// (the last snapshot keeps answering) and one `store-recovered` when it
/// answers again. Stops with the state.
/// The refresher is supervised: a panic in it raises a High event and it
/// starts again, so the snapshot can never silently stop following the store
/// (and `max_staleness` refuses protected requests while it is down).
pub(super) fn spawn_refresher(state: Weak<StoreView>, events: EventSink, resync: Duration) {
    let _ = std::thread::Builder::new()
        .name("portcullis-identity".into())
        .spawn(move || {
            loop {
                let run = std::panic::AssertUnwindSafe(|| follow_store(&state, &events, resync));
                if std::panic::catch_unwind(run).is_ok() {
                    return;
                }
                tracing::error!("identity refresher panicked; restarting it");
                events.emit(SecurityEvent::operational(
                    "identity-refresher-restarted",
                    Severity::High,
                    "the thread that keeps the identity snapshot current failed and was restarted",
                ));
                std::thread::sleep(REFRESH_TICK);
            }
        });
}

const REFRESH_TICK: Duration = Duration::from_millis(200);

/// Follows the store until the state is dropped (see [`spawn_refresher`]).
fn follow_store(state: &Weak<StoreView>, events: &EventSink, resync: Duration) {
    const TICK: Duration = REFRESH_TICK;
    {
        let mut feed: Option<Box<dyn ChangeFeed>> = None;
        let mut last_read = std::time::Instant::now();
        let mut last_purge = std::time::Instant::now();
        let mut down = false;
        loop {
            let waited = match feed.as_mut() {
                Some(f) => f.wait(TICK),
                None => {
                    let Some(s) = state.upgrade() else { return };
                    let opened = s.store.changes();
                    drop(s);
                    opened.map(|f| {
                        feed = Some(f);
                        // Changes made before the feed existed are unknown.
                        true
                    })
                }
            };
            let Some(s) = state.upgrade() else { return };
            let outcome = match waited {
                Ok(changed) if changed || last_read.elapsed() >= resync => s.refresh().map(|()| {
                    last_read = std::time::Instant::now();
                }),
                Ok(_) => {
                    s.confirm();
                    Ok(())
                }
                Err(e) => Err(e),
            };
            match outcome {
                Ok(()) if down => {
                    down = false;
                    tracing::info!("store reachable again; snapshot re-read");
                    events.emit(SecurityEvent::operational(
                        "store-recovered",
                        Severity::Informational,
                        "the identity store answers again; changes made meanwhile are applied",
                    ));
                }
                Ok(()) => {}
                Err(e) => {
                    if !down {
                        down = true;
                        tracing::error!(error = %e, "store unreachable; keeping the last snapshot");
                        events.emit(SecurityEvent::operational(
                            "store-unavailable",
                            Severity::High,
                            "the identity store does not answer: changes made elsewhere (revocations, disabled applications) are not applied here until it does",
                        ));
                    }
                    drop(s);
                    std::thread::sleep(TICK);
                    continue;
                }
            }
            if last_purge.elapsed() >= Duration::from_secs(60) {
                last_purge = std::time::Instant::now();
                let _ = s.store.purge_revocations(now());
            }
        }
    }
}
