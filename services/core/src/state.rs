//! Keyed stage state that follows the fate of the Kafka transaction it was
//! changed in.
//!
//! A stage mutates its state while it processes a batch, but the batch's output
//! only becomes real when the transaction commits. If the transaction aborts,
//! the runner rewinds the consumer and the batch is processed again, so the state
//! must be exactly what it was before the batch: [`TxState`] keeps an undo log of
//! every key's first prior value in the open transaction and restores it on
//! [`TxState::rollback`].

use std::collections::HashMap;
use std::hash::Hash;

#[derive(Debug)]
pub struct TxState<K, V> {
    map: HashMap<K, V>,
    undo: HashMap<K, Option<V>>,
}

impl<K, V> Default for TxState<K, V> {
    fn default() -> Self {
        TxState {
            map: HashMap::new(),
            undo: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> TxState<K, V> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, k: &K) -> Option<&V> {
        self.map.get(k)
    }

    fn remember(&mut self, k: &K) {
        if !self.undo.contains_key(k) {
            self.undo.insert(k.clone(), self.map.get(k).cloned());
        }
    }

    /// Mutable access; the prior value is remembered for rollback.
    pub fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        if self.map.contains_key(k) {
            self.remember(k);
        }
        self.map.get_mut(k)
    }

    /// The value for `k`, inserting `default()` first when absent.
    pub fn entry_or_insert_with(&mut self, k: K, default: impl FnOnce() -> V) -> &mut V {
        self.remember(&k);
        self.map.entry(k).or_insert_with(default)
    }

    pub fn insert(&mut self, k: K, v: V) {
        self.remember(&k);
        self.map.insert(k, v);
    }

    pub fn remove(&mut self, k: &K) -> Option<V> {
        if self.map.contains_key(k) {
            self.remember(k);
        }
        self.map.remove(k)
    }

    /// The transaction committed: the current values are final.
    pub fn commit(&mut self) {
        self.undo.clear();
    }

    /// The transaction aborted: restore every key touched since the last commit.
    pub fn rollback(&mut self) {
        for (k, prior) in self.undo.drain() {
            match prior {
                Some(v) => {
                    self.map.insert(k, v);
                }
                None => {
                    self.map.remove(&k);
                }
            }
        }
    }

    /// Drops every key for which `keep` is false (e.g. keys of revoked partitions).
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &V) -> bool) {
        self.map.retain(|k, v| keep(k, v));
        self.undo.clear();
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollback_restores_state_before_the_transaction() {
        let mut s = TxState::new();
        s.insert("a", 1);
        s.insert("b", 2);
        s.commit();
        s.insert("a", 10);
        s.insert("a", 11);
        s.remove(&"b");
        s.insert("c", 3);
        *s.entry_or_insert_with("d", || 0) += 5;
        s.rollback();
        assert_eq!(s.get(&"a"), Some(&1));
        assert_eq!(s.get(&"b"), Some(&2));
        assert_eq!(s.get(&"c"), None);
        assert_eq!(s.get(&"d"), None);
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn commit_makes_changes_final() {
        let mut s = TxState::new();
        s.insert("a", 1);
        s.commit();
        s.rollback();
        assert_eq!(s.get(&"a"), Some(&1));
        if let Some(v) = s.get_mut(&"a") {
            *v = 2;
        }
        s.commit();
        s.rollback();
        assert_eq!(s.get(&"a"), Some(&2));
    }
}
