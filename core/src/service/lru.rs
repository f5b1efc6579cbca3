//! A bounded least-recently-used map: every cache of the service goes through it, so none of
//! them can grow without bound — the tenant buckets and the egress records directly, the
//! documents and runs stores as one unbounded map per tenant under [`super::fair`], which
//! decides whose entries go.
//!
//! Entries sit in a slab linked into a recency list by index (no `unsafe`, no `Rc`); the
//! key → slot map makes lookups, touches, inserts and evictions O(1). An entry carries a
//! weight (bytes, or 1 to count entries); the map evicts from the cold end until both the
//! entry count and the total weight are within their bounds. It does not know what the weight
//! means and never evicts the entry that is being inserted: an entry heavier than the whole
//! budget is kept alone until the next insertion pushes it out.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;

/// No slot (end of the recency list).
const NIL: usize = usize::MAX;

struct Slot<K, V> {
    key: K,
    value: V,
    weight: usize,
    /// Towards the most recently used end.
    prev: usize,
    /// Towards the least recently used end.
    next: usize,
}

/// A map bounded by entry count and by total weight, evicting the least recently used first.
pub(crate) struct Lru<K, V> {
    map: HashMap<K, usize>,
    slots: Vec<Option<Slot<K, V>>>,
    free: Vec<usize>,
    /// Most recently used.
    head: usize,
    /// Least recently used.
    tail: usize,
    weight: usize,
    len_max: usize,
    weight_max: usize,
}

impl<K: Clone + Eq + Hash, V> Lru<K, V> {
    /// A map of at most `len_max` entries weighing at most `weight_max` in total.
    pub(crate) fn new(len_max: usize, weight_max: usize) -> Self {
        Lru {
            map: HashMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            weight: 0,
            len_max: len_max.max(1),
            weight_max,
        }
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Total weight of the entries.
    pub(crate) fn weight(&self) -> usize {
        self.weight
    }

    /// The value of `key`, marked most recently used.
    pub(crate) fn get<Q: Hash + Eq + ?Sized>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
    {
        let i = *self.map.get(key)?;
        self.unlink(i);
        self.push_front(i);
        self.slots[i].as_mut().map(|s| &mut s.value)
    }

    /// The value of `key`, recency untouched.
    #[cfg(test)]
    pub(crate) fn peek<Q: Hash + Eq + ?Sized>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        let i = *self.map.get(key)?;
        self.slots[i].as_ref().map(|s| &s.value)
    }

    /// Inserts or replaces `key` as the most recently used entry, then evicts from the cold
    /// end until the bounds hold again. Returns the evicted entries (never `key` itself).
    pub(crate) fn insert(&mut self, key: K, value: V, weight: usize) -> Vec<(K, V)> {
        if let Some(old) = self.remove(&key) {
            drop(old);
        }
        let slot = Slot { key: key.clone(), value, weight, prev: NIL, next: NIL };
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(slot);
                i
            }
            None => {
                self.slots.push(Some(slot));
                self.slots.len() - 1
            }
        };
        self.map.insert(key, i);
        self.weight = self.weight.saturating_add(weight);
        self.push_front(i);
        let mut evicted = Vec::new();
        while (self.map.len() > self.len_max || self.weight > self.weight_max) && self.tail != i {
            match self.pop_back() {
                Some(kv) => evicted.push(kv),
                None => break,
            }
        }
        evicted
    }

    /// Removes `key`, returning its value.
    pub(crate) fn remove<Q: Hash + Eq + ?Sized>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        self.take(key).map(|(_, value, _)| value)
    }

    /// Removes `key`, returning the stored key, its value and its weight.
    pub(crate) fn take<Q: Hash + Eq + ?Sized>(&mut self, key: &Q) -> Option<(K, V, usize)>
    where
        K: Borrow<Q>,
    {
        let i = self.map.remove(key)?;
        self.unlink(i);
        let slot = self.slots[i].take()?;
        self.free.push(i);
        self.weight = self.weight.saturating_sub(slot.weight);
        Some((slot.key, slot.value, slot.weight))
    }

    /// Removes and returns the least recently used entry.
    pub(crate) fn pop_back(&mut self) -> Option<(K, V)> {
        if self.tail == NIL {
            return None;
        }
        let i = self.tail;
        self.unlink(i);
        let slot = self.slots[i].take()?;
        self.map.remove(&slot.key);
        self.free.push(i);
        self.weight = self.weight.saturating_sub(slot.weight);
        Some((slot.key, slot.value))
    }

    /// The least recently used entry, without touching it.
    #[cfg(test)]
    pub(crate) fn peek_back(&self) -> Option<(&K, &V)> {
        self.slots.get(self.tail)?.as_ref().map(|s| (&s.key, &s.value))
    }

    fn unlink(&mut self, i: usize) {
        let (prev, next) = match &self.slots[i] {
            Some(s) => (s.prev, s.next),
            None => return,
        };
        match self.slots.get_mut(prev).and_then(Option::as_mut) {
            Some(p) => p.next = next,
            None => self.head = next,
        }
        match self.slots.get_mut(next).and_then(Option::as_mut) {
            Some(n) => n.prev = prev,
            None => self.tail = prev,
        }
        if let Some(s) = self.slots[i].as_mut() {
            s.prev = NIL;
            s.next = NIL;
        }
    }

    fn push_front(&mut self, i: usize) {
        let old_head = self.head;
        if let Some(s) = self.slots[i].as_mut() {
            s.prev = NIL;
            s.next = old_head;
        }
        match self.slots.get_mut(old_head).and_then(Option::as_mut) {
            Some(h) => h.prev = i,
            None => self.tail = i,
        }
        self.head = i;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_by_count() {
        let mut lru = Lru::new(2, usize::MAX);
        assert!(lru.insert("a", 1, 1).is_empty());
        assert!(lru.insert("b", 2, 1).is_empty());
        assert_eq!(lru.get(&"a"), Some(&mut 1));
        assert_eq!(lru.insert("c", 3, 1), vec![("b", 2)]);
        assert_eq!(lru.peek(&"a"), Some(&1));
        assert_eq!(lru.peek(&"b"), None);
        assert_eq!(lru.len(), 2);
    }

    #[test]
    fn evicts_by_weight_but_never_the_entry_being_inserted() {
        let mut lru = Lru::new(100, 10);
        lru.insert(1, (), 4);
        lru.insert(2, (), 4);
        assert_eq!(lru.insert(3, (), 4), vec![(1, ())]);
        assert_eq!(lru.weight(), 8);
        let evicted = lru.insert(4, (), 50);
        assert_eq!(evicted, vec![(2, ()), (3, ())]);
        assert_eq!(lru.len(), 1);
        assert_eq!(lru.weight(), 50);
        assert_eq!(lru.insert(5, (), 1), vec![(4, ())]);
    }

    #[test]
    fn replacing_a_key_updates_weight_and_recency() {
        let mut lru = Lru::new(2, 100);
        lru.insert("a", 1, 10);
        lru.insert("b", 2, 10);
        lru.insert("a", 3, 30);
        assert_eq!(lru.weight(), 40);
        assert_eq!(lru.peek_back(), Some((&"b", &2)));
        assert_eq!(lru.remove(&"b"), Some(2));
        assert_eq!(lru.remove(&"b"), None);
        assert_eq!(lru.pop_back(), Some(("a", 3)));
        assert_eq!(lru.pop_back(), None);
        assert_eq!(lru.weight(), 0);
    }

    #[test]
    fn slots_are_reused_after_many_churns() {
        let mut lru = Lru::new(3, usize::MAX);
        for i in 0..1000 {
            lru.insert(i, i, 1);
        }
        assert_eq!(lru.len(), 3);
        assert!(lru.slots.len() <= 4, "slab grew to {}", lru.slots.len());
        assert_eq!(lru.peek(&999), Some(&999));
        assert_eq!(lru.peek(&996), None);
    }
}
