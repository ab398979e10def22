//! A least-recently-used map with a capacity in entries: O(log n) get, insert and eviction,
//! ordered maps only (nothing here depends on hash iteration order).

use std::collections::BTreeMap;

/// An LRU map from key indices to values.
#[derive(Clone, Debug)]
pub struct Lru<V> {
    capacity: usize,
    map: BTreeMap<u32, (V, u64)>,
    /// Last-use tick -> key: the first entry is the least recently used.
    order: BTreeMap<u64, u32>,
    tick: u64,
}

impl<V> Lru<V> {
    /// An empty map holding at most `capacity` entries (at least one).
    pub fn new(capacity: usize) -> Lru<V> {
        Lru {
            capacity: capacity.max(1),
            map: BTreeMap::new(),
            order: BTreeMap::new(),
            tick: 0,
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn touch(&mut self, key: u32) {
        self.tick += 1;
        let t = self.tick;
        if let Some((_, old)) = self.map.get_mut(&key) {
            self.order.remove(old);
            *old = t;
            self.order.insert(t, key);
        }
    }

    /// The value of `key`, marking it most recently used.
    pub fn get(&mut self, key: u32) -> Option<&V> {
        if !self.map.contains_key(&key) {
            return None;
        }
        self.touch(key);
        self.map.get(&key).map(|(v, _)| v)
    }

    /// Inserts or replaces `key`; returns how many entries were evicted to make room.
    pub fn insert(&mut self, key: u32, value: V) -> usize {
        self.tick += 1;
        let t = self.tick;
        if let Some((_, old)) = self.map.insert(key, (value, t)) {
            self.order.remove(&old);
        }
        self.order.insert(t, key);
        let mut evicted = 0;
        while self.map.len() > self.capacity {
            let (_, victim) = self.order.pop_first().expect("order mirrors map");
            self.map.remove(&victim);
            evicted += 1;
        }
        debug_assert_eq!(self.map.len(), self.order.len());
        evicted
    }

    /// Removes `key`; true if it was there.
    pub fn remove(&mut self, key: u32) -> bool {
        match self.map.remove(&key) {
            Some((_, t)) => {
                self.order.remove(&t);
                true
            }
            None => false,
        }
    }

    /// Removes every entry whose key fails `keep`; returns how many.
    pub fn retain(&mut self, mut keep: impl FnMut(u32) -> bool) -> usize {
        let gone: Vec<u32> = self.map.keys().copied().filter(|k| !keep(*k)).collect();
        for k in &gone {
            self.remove(*k);
        }
        gone.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_entry_goes_first() {
        let mut l = Lru::new(2);
        l.insert(1, "a");
        l.insert(2, "b");
        assert_eq!(l.get(1), Some(&"a"));
        assert_eq!(l.insert(3, "c"), 1);
        assert_eq!(l.get(2), None, "2 was least recently used");
        assert_eq!(l.get(1), Some(&"a"));
        assert_eq!(l.len(), 2);
        assert!(l.remove(3));
        assert_eq!(l.retain(|k| k != 1), 1);
        assert!(l.is_empty());
    }
}
