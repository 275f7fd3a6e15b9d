//! The verified-token cache (AUTHN-02, AUTHZ-05): what one signature check
//! proved about a token's exact bytes, so that the same token presented
//! again costs a digest and a lookup instead of signature verification and
//! claim parsing.
//!
//! Only successes are kept, keyed by SHA-256 of the whole token, with the
//! issuer and the very key set that verified it. An entry stops counting
//! when the token's `exp` passes (with the allowed skew, the same rule as
//! the first check), as soon as the issuer's key set is replaced (a key
//! removed from the JWKS ends every token it verified), and when the cache
//! is full and it is the one evicted. Every other claim check either
//! depends on the token's bytes alone or cannot change its verdict as time
//! moves forward (`nbf`, `iat`, the maximum lifetime). Revocation,
//! certificate binding, scopes, applications and kill switches are not
//! cached: the callers decide them on every request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::keyset::KeySet;
use super::tokens::VerifiedToken;

/// Shards, so that workers on several cores rarely wait for one lock.
const SHARDS: usize = 16;

/// SHA-256 of a token: the cache key.
pub type Digest = [u8; 32];

struct Entry {
    issuer: usize,
    keys: Arc<KeySet>,
    token: VerifiedToken,
}

pub struct VerifiedCache {
    per_shard: usize,
    shards: [Mutex<HashMap<Digest, Entry>>; SHARDS],
}

impl VerifiedCache {
    /// A cache of at most `capacity` tokens (rounded up to a multiple of
    /// the shard count); `None` for 0, which turns it off.
    pub fn new(capacity: usize) -> Option<Self> {
        (capacity > 0).then(|| Self {
            per_shard: capacity.div_ceil(SHARDS),
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
        })
    }

    pub fn digest(token: &str) -> Digest {
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
        let mut out = [0; 32];
        out.copy_from_slice(d.as_ref());
        out
    }

    fn shard(&self, digest: &Digest) -> std::sync::MutexGuard<'_, HashMap<Digest, Entry>> {
        self.shards[usize::from(digest[0]) % SHARDS]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The verified claims of the token with this digest, if it was
    /// verified by `current_keys(issuer)` and has not expired at `now`.
    pub fn get(
        &self,
        digest: &Digest,
        now: i64,
        skew_s: i64,
        current_keys: impl Fn(usize) -> Arc<KeySet>,
    ) -> Option<VerifiedToken> {
        let mut shard = self.shard(digest);
        let entry = shard.get(digest)?;
        if entry.token.expires_at.saturating_add(skew_s) < now
            || !Arc::ptr_eq(&entry.keys, &current_keys(entry.issuer))
        {
            shard.remove(digest);
            return None;
        }
        Some(entry.token.clone())
    }

    /// Remembers a token that `keys` of `issuer` verified. A full shard
    /// first drops its expired entries, then any one entry.
    pub fn insert(
        &self,
        digest: Digest,
        (issuer, keys): (usize, Arc<KeySet>),
        token: VerifiedToken,
        now: i64,
        skew_s: i64,
    ) {
        let mut shard = self.shard(&digest);
        if shard.len() >= self.per_shard && !shard.contains_key(&digest) {
            shard.retain(|_, e| e.token.expires_at.saturating_add(skew_s) >= now);
            if shard.len() >= self.per_shard
                && let Some(victim) = shard.keys().next().copied()
            {
                shard.remove(&victim);
            }
        }
        shard.insert(
            digest,
            Entry {
                issuer,
                keys,
                token,
            },
        );
    }

    /// Tokens held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(expires_at: i64) -> VerifiedToken {
        VerifiedToken {
            issuer: "https://issuer.test".into(),
            subject: Some("alice".into()),
            audience: vec!["orders-api".into()],
            scopes: vec!["orders:read".into()],
            expires_at,
            issued_at: Some(expires_at - 600),
            token_id: "t-1".into(),
            client_id: None,
            cert_thumbprint: None,
        }
    }

    fn keys() -> Arc<KeySet> {
        Arc::new(KeySet::default())
    }

    #[test]
    fn a_verified_token_is_found_by_its_exact_bytes_only() {
        let cache = VerifiedCache::new(64).unwrap();
        let k = keys();
        let d = VerifiedCache::digest("a.b.c");
        cache.insert(d, (0, k.clone()), token(1_000), 500, 60);
        assert_eq!(cache.get(&d, 500, 60, |_| k.clone()), Some(token(1_000)));
        assert_eq!(
            cache.get(&VerifiedCache::digest("a.b.d"), 500, 60, |_| k.clone()),
            None
        );
        assert!(VerifiedCache::new(0).is_none(), "0 turns the cache off");
    }

    #[test]
    fn an_entry_ends_with_the_tokens_expiry_plus_the_skew() {
        let cache = VerifiedCache::new(64).unwrap();
        let k = keys();
        let d = VerifiedCache::digest("a.b.c");
        cache.insert(d, (0, k.clone()), token(1_000), 500, 60);
        // The first check accepts up to exp + skew: so does the cache.
        assert!(cache.get(&d, 1_060, 60, |_| k.clone()).is_some());
        assert_eq!(cache.get(&d, 1_061, 60, |_| k.clone()), None);
        assert_eq!(cache.len(), 0, "an expired entry is dropped when met");
    }

    #[test]
    fn a_replaced_key_set_ends_every_token_it_verified() {
        let cache = VerifiedCache::new(64).unwrap();
        let (old, new) = (keys(), keys());
        let d = VerifiedCache::digest("a.b.c");
        cache.insert(d, (1, old.clone()), token(1_000), 500, 60);
        assert!(
            cache
                .get(&d, 500, 60, |i| if i == 1 {
                    old.clone()
                } else {
                    new.clone()
                })
                .is_some()
        );
        assert_eq!(cache.get(&d, 500, 60, |_| new.clone()), None);
        assert_eq!(
            cache.get(&d, 500, 60, |_| old.clone()),
            None,
            "gone, not hidden"
        );
    }

    #[test]
    fn the_cache_stays_within_its_capacity_and_drops_expired_entries_first() {
        let cache = VerifiedCache::new(SHARDS).unwrap(); // one entry per shard
        let k = keys();
        // Two digests of one shard: the expired one makes room.
        let mut same_shard = (0..).map(|i| VerifiedCache::digest(&format!("t{i}")));
        let first = same_shard.next().unwrap();
        let second = same_shard
            .find(|d| d[0] % SHARDS as u8 == first[0] % SHARDS as u8)
            .unwrap();
        cache.insert(first, (0, k.clone()), token(100), 50, 0);
        cache.insert(second, (0, k.clone()), token(1_000), 500, 0);
        assert_eq!(cache.len(), 1);
        assert!(cache.get(&second, 500, 0, |_| k.clone()).is_some());
        // Full of live entries: one is evicted, the bound holds.
        for i in 0..10 * SHARDS {
            cache.insert(
                VerifiedCache::digest(&format!("x{i}")),
                (0, k.clone()),
                token(1_000),
                500,
                0,
            );
        }
        assert!(cache.len() <= SHARDS, "{} entries", cache.len());
    }

    /// `n` digests that land in one shard.
    fn one_shard(n: usize) -> Vec<Digest> {
        let first = VerifiedCache::digest("s0");
        let mut out = vec![first];
        out.extend(
            (1..)
                .map(|i| VerifiedCache::digest(&format!("s{i}")))
                .filter(|d| d[0] % SHARDS as u8 == first[0] % SHARDS as u8)
                .take(n - 1),
        );
        out
    }

    #[test]
    fn a_full_shard_drops_expired_entries_and_keeps_live_ones() {
        let cache = VerifiedCache::new(2 * SHARDS).unwrap(); // two per shard
        let k = keys();
        let [live, expired, new] = one_shard(3)[..] else {
            unreachable!()
        };
        cache.insert(live, (0, k.clone()), token(1_000), 50, 0);
        cache.insert(expired, (0, k.clone()), token(100), 50, 0);
        cache.insert(new, (0, k.clone()), token(1_000), 500, 0);
        assert!(cache.get(&live, 500, 0, |_| k.clone()).is_some());
        assert!(cache.get(&new, 500, 0, |_| k.clone()).is_some());
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn remembering_a_known_token_again_evicts_nobody() {
        // The victim of a full shard is any entry: try enough fresh caches
        // that a wrongful eviction cannot go unseen.
        for _ in 0..32 {
            let cache = VerifiedCache::new(2 * SHARDS).unwrap();
            let k = keys();
            let [a, b] = one_shard(2)[..] else {
                unreachable!()
            };
            cache.insert(a, (0, k.clone()), token(1_000), 50, 0);
            cache.insert(b, (0, k.clone()), token(1_000), 50, 0);
            cache.insert(a, (0, k.clone()), token(1_000), 60, 0);
            assert!(cache.get(&a, 60, 0, |_| k.clone()).is_some());
            assert!(cache.get(&b, 60, 0, |_| k.clone()).is_some());
        }
    }
}
