//! Fair shares of a bounded store between tenants: the policy that decides whose entries go
//! when the documents or runs store is full (issue 15, "hostile neighbours").
//!
//! A plain LRU across tenants lets one tenant's flood evict everyone else's data. Here each
//! tenant holds its entries in its own recency list (an unbounded [`Lru`]), and the store
//! keeps per-tenant totals (entries and weight) in two ordered indexes. When the store is over
//! a bound, room is made by evicting the least recently used entry of the tenant holding the
//! largest share of that bound — entries when over the count bound, weight when over the
//! weight bound — again and again until the bounds hold. A tenant under its fair share (the
//! bound divided by the number of tenants holding entries) is never evicted: if the largest
//! evictable share is under it, eviction stops and the store stays over its bound by what
//! cannot go (see below). Within a tenant, recency decides, as before.
//!
//! Optional hard quotas bound one tenant whatever the others do: an insertion beyond its
//! entry or weight quota evicts that tenant's own least recently used entries first, and an
//! entry heavier than the whole weight quota is refused ([`FairLru::admits`]).
//!
//! Two kinds of entries are never evicted:
//! - the entry being inserted (as in [`Lru`]): an entry heavier than the whole budget is kept,
//!   and goes at a later insertion if its tenant still holds the largest share;
//! - pinned entries ([`FairLru::pin`]): a run whose intents the ledger has not yet answered.
//!   They sit outside the tenant's recency list, still counted in its share (they hold
//!   memory), and return to it as most recently used when the last pin goes. Their number is
//!   bounded elsewhere (the quarantine queue and the computes in flight), so they are what the
//!   store may exceed its bounds by.
//!
//! Cost per operation: a lookup or touch is O(1); an insertion that evicts k entries is
//! O((k + 1) · log tenants), plus the tenants skipped because nothing of theirs can go (only
//! pinned entries), which the pins bound.

use std::borrow::Borrow;
use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::sync::Arc;

use super::lru::Lru;
use crate::error::{Code, Error};

/// The bounds of a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bounds {
    /// Entries held at most, every tenant together.
    pub(crate) len_max: usize,
    /// Total weight held at most, every tenant together.
    pub(crate) weight_max: usize,
    /// Entries one tenant holds at most (a hard quota; `usize::MAX` for none).
    pub(crate) tenant_len_max: usize,
    /// Weight one tenant holds at most (a hard quota; `usize::MAX` for none).
    pub(crate) tenant_weight_max: usize,
}

impl Bounds {
    /// Bounds on the whole store only, no per-tenant quota.
    pub(crate) fn shared(len_max: usize, weight_max: usize) -> Bounds {
        Bounds { len_max, weight_max, tenant_len_max: usize::MAX, tenant_weight_max: usize::MAX }
    }
}

/// An entry refused because it alone outweighs its tenant's quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OverQuota {
    /// The entry's weight.
    pub(crate) weight: usize,
    /// The tenant's weight quota.
    pub(crate) quota: usize,
}

impl From<OverQuota> for Error {
    fn from(q: OverQuota) -> Error {
        Error::new(
            Code::QuotaExceeded,
            format!("the document weighs {} bytes, over this tenant's quota of {}", q.weight, q.quota),
        )
        .with_detail("document_bytes", q.weight as u64)
        .with_detail("quota_bytes", q.quota as u64)
    }
}

/// A pinned entry: out of its tenant's recency list until its last pin goes.
struct Pinned<V> {
    value: V,
    weight: usize,
    pins: usize,
}

/// One tenant's entries.
struct Share<K, V> {
    tenant: Arc<str>,
    /// The evictable entries, least recently used at the back. Unbounded: [`FairLru`] decides.
    lru: Lru<K, V>,
    pinned: HashMap<K, Pinned<V>>,
    pinned_weight: usize,
}

impl<K: Clone + Eq + Hash, V> Share<K, V> {
    fn new(tenant: Arc<str>) -> Self {
        Share { tenant, lru: Lru::new(usize::MAX, usize::MAX), pinned: HashMap::new(), pinned_weight: 0 }
    }

    fn len(&self) -> usize {
        self.lru.len() + self.pinned.len()
    }

    fn weight(&self) -> usize {
        self.lru.weight().saturating_add(self.pinned_weight)
    }

    /// Whether one of its entries may go; `fresh` means its most recently used entry is the
    /// one being inserted, which never goes.
    fn evictable(&self, fresh: bool) -> bool {
        self.lru.len() > usize::from(fresh)
    }
}

/// A map of every tenant's entries, bounded by entry count and total weight, evicting from
/// the largest share first (see the module docs).
pub(crate) struct FairLru<K, V> {
    shares: HashMap<Arc<str>, Share<K, V>>,
    /// `(entries, tenant)` of every tenant holding entries.
    by_len: BTreeSet<(usize, Arc<str>)>,
    /// `(weight, tenant)` of every tenant holding entries.
    by_weight: BTreeSet<(usize, Arc<str>)>,
    len: usize,
    weight: usize,
    bounds: Bounds,
}

impl<K: Clone + Eq + Hash, V> FairLru<K, V> {
    /// An empty map under `bounds`.
    pub(crate) fn new(bounds: Bounds) -> Self {
        FairLru {
            shares: HashMap::new(),
            by_len: BTreeSet::new(),
            by_weight: BTreeSet::new(),
            len: 0,
            weight: 0,
            bounds,
        }
    }

    /// Number of entries, every tenant together.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Total weight, every tenant together.
    #[cfg(test)]
    pub(crate) fn weight(&self) -> usize {
        self.weight
    }

    /// `(entries, weight)` the tenant holds.
    #[cfg(test)]
    pub(crate) fn share(&self, tenant: &str) -> (usize, usize) {
        self.shares.get(tenant).map_or((0, 0), |s| (s.len(), s.weight()))
    }

    /// The tenant's value of `key`, marked most recently used (a pinned entry stays pinned).
    pub(crate) fn get<Q: Hash + Eq + ?Sized>(&mut self, tenant: &str, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
    {
        let share = self.shares.get_mut(tenant)?;
        if share.pinned.contains_key(key) {
            return share.pinned.get_mut(key).map(|p| &mut p.value);
        }
        share.lru.get(key)
    }

    /// Whether an entry of `weight` fits in its tenant's weight quota at all: `Err` when it
    /// alone is heavier (the caller refuses it; nothing changed).
    pub(crate) fn admits(&self, weight: usize) -> Result<(), OverQuota> {
        let quota = self.bounds.tenant_weight_max;
        if weight > quota { Err(OverQuota { weight, quota }) } else { Ok(()) }
    }

    /// Inserts or replaces the tenant's `key` as its most recently used entry (a pinned entry
    /// replaced stays pinned), then evicts until the tenant's quotas and the store's bounds
    /// hold again, or nothing more may go. Returns the evicted entries (never `key`).
    pub(crate) fn insert(&mut self, tenant: &str, key: K, value: V, weight: usize) -> Vec<(K, V)> {
        if !self.shares.contains_key(tenant) {
            let name: Arc<str> = Arc::from(tenant);
            self.shares.insert(Arc::clone(&name), Share::new(name));
        }
        let fresh = self.update(tenant, |share| match share.pinned.get_mut(&key) {
            Some(p) => {
                share.pinned_weight = share.pinned_weight - p.weight + weight;
                (p.value, p.weight) = (value, weight);
                false
            }
            None => {
                // Unbounded: replaces an older value of `key`, never evicts.
                share.lru.insert(key, value, weight);
                true
            }
        });
        let fresh = fresh.unwrap_or(false);
        let mut evicted = Vec::new();
        // The tenant's own quotas: its own least recently used entries make room.
        while self.over_quota(tenant, fresh) {
            evicted.extend(self.evict_from(tenant));
        }
        // The store's bounds: the largest share pays.
        while self.len > self.bounds.len_max || self.weight > self.bounds.weight_max {
            let Some(victim) = self.largest_evictable(self.len > self.bounds.len_max, tenant, fresh) else {
                break;
            };
            evicted.extend(self.evict_from(&victim));
        }
        evicted
    }

    /// Holds the tenant's `key` out of eviction until as many [`FairLru::unpin`]s. `false`
    /// when the tenant holds no such entry.
    pub(crate) fn pin<Q: Hash + Eq + ?Sized>(&mut self, tenant: &str, key: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        let pinned = self.update(tenant, |share| {
            if let Some(p) = share.pinned.get_mut(key) {
                p.pins += 1;
                return true;
            }
            let Some((key, value, weight)) = share.lru.take(key) else { return false };
            share.pinned_weight = share.pinned_weight.saturating_add(weight);
            share.pinned.insert(key, Pinned { value, weight, pins: 1 });
            true
        });
        pinned.unwrap_or(false)
    }

    /// Drops one pin of the tenant's `key`; after the last, the entry is evictable again, as
    /// its tenant's most recently used (the bounds are enforced at the next insertion).
    pub(crate) fn unpin<Q: Hash + Eq + ?Sized>(&mut self, tenant: &str, key: &Q)
    where
        K: Borrow<Q>,
    {
        self.update(tenant, |share| {
            let Some(p) = share.pinned.get_mut(key) else { return };
            p.pins = p.pins.saturating_sub(1);
            if p.pins > 0 {
                return;
            }
            if let Some((key, p)) = share.pinned.remove_entry(key) {
                share.pinned_weight = share.pinned_weight.saturating_sub(p.weight);
                share.lru.insert(key, p.value, p.weight);
            }
        });
    }

    /// Whether the tenant holds more than a quota allows and has an entry to give.
    fn over_quota(&self, tenant: &str, fresh: bool) -> bool {
        self.shares.get(tenant).is_some_and(|share| {
            let over =
                share.len() > self.bounds.tenant_len_max || share.weight() > self.bounds.tenant_weight_max;
            over && share.evictable(fresh)
        })
    }

    /// The tenant holding the largest share of the bound (entries if `by_len`, else weight)
    /// that has an entry to give, unless that share is under its fair share — then every
    /// other is too, and nobody pays. `fresh` protects `inserting`'s newest entry.
    fn largest_evictable(&self, by_len: bool, inserting: &str, fresh: bool) -> Option<Arc<str>> {
        let (index, bound) = if by_len {
            (&self.by_len, self.bounds.len_max)
        } else {
            (&self.by_weight, self.bounds.weight_max)
        };
        let tenants = self.shares.len();
        for (usage, tenant) in index.iter().rev() {
            // usage < bound / tenants, without rounding.
            if usage.saturating_mul(tenants) < bound {
                return None;
            }
            let share = self.shares.get(tenant)?;
            if share.evictable(fresh && &**tenant == inserting) {
                return Some(Arc::clone(tenant));
            }
        }
        None
    }

    /// Evicts the tenant's least recently used entry (not a pinned one).
    fn evict_from(&mut self, tenant: &str) -> Option<(K, V)> {
        self.update(tenant, |share| share.lru.pop_back()).flatten()
    }

    /// Runs `change` on the tenant's share, then brings the totals and indexes up to date (and
    /// forgets a tenant left with nothing): the one place that bookkeeping happens.
    fn update<R>(&mut self, tenant: &str, change: impl FnOnce(&mut Share<K, V>) -> R) -> Option<R> {
        let share = self.shares.get_mut(tenant)?;
        let (len_before, weight_before) = (share.len(), share.weight());
        let result = change(share);
        let (len_after, weight_after) = (share.len(), share.weight());
        if (len_before, weight_before) == (len_after, weight_after) && len_after > 0 {
            return Some(result);
        }
        let name = Arc::clone(&share.tenant);
        self.by_len.remove(&(len_before, Arc::clone(&name)));
        self.by_weight.remove(&(weight_before, Arc::clone(&name)));
        self.len = self.len - len_before + len_after;
        self.weight = self.weight.saturating_sub(weight_before).saturating_add(weight_after);
        if len_after == 0 {
            self.shares.remove(tenant);
        } else {
            self.by_len.insert((len_after, Arc::clone(&name)));
            self.by_weight.insert((weight_after, name));
        }
        Some(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Which of `candidates` the tenant holds (in the order given).
    fn keys(map: &FairLru<String, ()>, tenant: &str, candidates: &[&str]) -> Vec<String> {
        let Some(share) = map.shares.get(tenant) else { return Vec::new() };
        let held = |k: &str| share.lru.peek(k).is_some() || share.pinned.contains_key(k);
        candidates.iter().filter(|k| held(k)).map(|k| (*k).to_owned()).collect()
    }

    fn put(map: &mut FairLru<String, ()>, tenant: &str, key: &str, weight: usize) -> Vec<String> {
        map.insert(tenant, key.to_owned(), (), weight).into_iter().map(|(k, ())| k).collect()
    }

    #[test]
    fn a_tenant_under_its_fair_share_is_never_evicted() {
        // Five entries: tenant a holds one, tenant b floods.
        let mut map = FairLru::new(Bounds::shared(5, usize::MAX));
        put(&mut map, "a", "a1", 1);
        for i in 0..100 {
            let evicted = put(&mut map, "b", &format!("b{i}"), 1);
            assert!(evicted.iter().all(|k| k.starts_with('b')), "{evicted:?}");
        }
        assert_eq!(map.share("a"), (1, 1));
        assert_eq!(map.share("b"), (4, 4));
        assert_eq!(keys(&map, "b", &["b96", "b97", "b98", "b99", "b95"]), ["b96", "b97", "b98", "b99"]);
        // By weight too: a's 10 bytes are under half of 100.
        let mut map = FairLru::new(Bounds::shared(usize::MAX, 100));
        put(&mut map, "a", "a1", 10);
        for i in 0..8 {
            assert!(put(&mut map, "b", &format!("b{i}"), 30).iter().all(|k| k.starts_with('b')));
        }
        assert_eq!(map.share("a"), (1, 10));
        assert_eq!(map.share("b"), (3, 90));
    }

    #[test]
    fn the_largest_share_pays_least_recently_used_first() {
        let mut map = FairLru::new(Bounds::shared(6, usize::MAX));
        for k in ["a1", "a2", "a3"] {
            put(&mut map, "a", k, 1);
        }
        put(&mut map, "b", "b1", 1);
        put(&mut map, "b", "b2", 1);
        put(&mut map, "c", "c1", 1);
        // a is touched: its least recently used is now a2.
        assert!(map.get("a", "a1").is_some());
        // c is inserting, but a (3 of 6, over the fair 2) pays.
        assert_eq!(put(&mut map, "c", "c2", 1), ["a2"]);
        // Now c holds the most: it pays with its own oldest.
        assert_eq!(put(&mut map, "c", "c3", 1), ["c1"]);
        assert_eq!(keys(&map, "a", &["a1", "a2", "a3"]), ["a1", "a3"]);
    }

    #[test]
    fn the_entry_being_inserted_stays_and_goes_at_the_next_insertion() {
        let mut map = FairLru::new(Bounds::shared(usize::MAX, 10));
        put(&mut map, "a", "a1", 4);
        // Heavier than the whole budget: b's own older entries could go, a is under its
        // fair share (4 < 10 / 2), so the store stays over by the new entry.
        assert!(put(&mut map, "b", "huge", 50).is_empty());
        assert_eq!(map.weight(), 54);
        // The next insertion: b holds the largest share and huge is no longer the newest.
        assert_eq!(put(&mut map, "b", "b2", 1), ["huge"]);
        assert_eq!(map.weight(), 5);
    }

    #[test]
    fn quotas_evict_the_tenants_own_entries_and_refuse_an_entry_over_them() {
        let bounds = Bounds { tenant_len_max: 2, tenant_weight_max: 10, ..Bounds::shared(100, 1000) };
        let mut map = FairLru::new(bounds);
        put(&mut map, "a", "a1", 1);
        put(&mut map, "b", "b1", 1);
        put(&mut map, "b", "b2", 1);
        // b at its count quota: its own oldest makes room, never a's.
        assert_eq!(put(&mut map, "b", "b3", 1), ["b1"]);
        // By weight: 6 + 4 fits, 6 + 4 + 6 does not.
        put(&mut map, "c", "c1", 6);
        put(&mut map, "c", "c2", 4);
        assert_eq!(put(&mut map, "c", "c3", 6), ["c1"]);
        assert_eq!(map.share("c"), (2, 10));
        assert_eq!(map.admits(10), Ok(()));
        assert_eq!(map.admits(11), Err(OverQuota { weight: 11, quota: 10 }));
        assert_eq!(map.share("a"), (1, 1));
        let error = Error::from(OverQuota { weight: 11, quota: 10 });
        assert_eq!((error.status(), error.code().as_str()), (413, "quota_exceeded"));
        assert_eq!(error.details()["quota_bytes"], 10);
    }

    #[test]
    fn pinned_entries_are_never_evicted_and_return_to_recency_when_unpinned() {
        let mut map = FairLru::new(Bounds::shared(4, usize::MAX));
        for k in ["a1", "a2", "a3"] {
            put(&mut map, "a", k, 1);
            assert!(map.pin("a", k));
        }
        assert!(map.pin("a", "a1"), "pins count");
        assert!(!map.pin("a", "nothing") && !map.pin("b", "a1"));
        assert!(map.get("a", "a1").is_some(), "a pinned entry answers");
        assert!(put(&mut map, "b", "b1", 1).is_empty());
        // a holds the largest share, all pinned: b, at its fair share (2 of 4), pays.
        assert_eq!(put(&mut map, "b", "b2", 1), ["b1"]);
        map.unpin("a", "a2");
        assert_eq!(put(&mut map, "b", "b3", 1), ["a2"], "unpinned, a2 may go");
        map.unpin("a", "a1");
        assert_eq!(put(&mut map, "b", "b4", 1), ["b2"], "a1 is still pinned once");
        map.unpin("a", "a1");
        assert_eq!(put(&mut map, "a", "a4", 1), ["a1"], "a1's last pin went");
        // Replacing a pinned entry keeps it pinned.
        put(&mut map, "a", "a3", 2);
        assert_eq!(map.share("a"), (2, 3));
        assert_eq!(put(&mut map, "a", "a5", 1), ["a4"]);
        assert!(map.get("a", "a3").is_some());
    }

    #[test]
    fn every_entry_can_be_pinned_and_the_store_exceeds_its_bound_only_by_them() {
        let mut map = FairLru::new(Bounds::shared(2, usize::MAX));
        for k in ["a1", "a2", "a3"] {
            put(&mut map, "a", k, 1);
            assert!(map.pin("a", k));
        }
        assert_eq!(map.len(), 3);
        assert!(put(&mut map, "b", "b1", 1).is_empty(), "nothing of a's may go, b's only entry is new");
        assert_eq!(put(&mut map, "b", "b2", 1), ["b1"]);
        for k in ["a1", "a2", "a3"] {
            map.unpin("a", k);
        }
        // a (3) pays first; then a tie at 2 each goes to the greater tenant name, b.
        assert_eq!(put(&mut map, "b", "b3", 1), ["a1", "b2", "a2"]);
        assert_eq!((map.len(), map.share("a"), map.share("b")), (2, (1, 1), (1, 1)));
        assert_eq!((map.by_len.len(), map.by_weight.len()), (2, 2));
    }

    #[test]
    fn tenants_left_with_nothing_are_forgotten() {
        let mut map = FairLru::new(Bounds::shared(1, usize::MAX));
        for i in 0..50 {
            put(&mut map, &format!("t{i}"), "k", 1);
        }
        assert_eq!((map.shares.len(), map.by_len.len(), map.by_weight.len(), map.len()), (1, 1, 1, 1));
        assert!(map.get("t49", "k").is_some() && map.get("t48", "k").is_none());
    }
}
