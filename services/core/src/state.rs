//! Keyed stage state that follows the fate of the Kafka transaction it was
//! changed in.
//!
//! A stage mutates its state while it processes a batch, but the batch's output
//! only becomes real when the transaction commits. If the transaction aborts,
//! the runner rewinds the consumer and the batch is processed again, so the state
//! must be exactly what it was before the batch: [`TxState`] keeps an undo log of
//! every key's first prior value in the open transaction and restores it on
//! [`TxState::rollback`].
//!
//! Each key also remembers the input partition that owns it, so the state of
//! revoked partitions can be dropped ([`TxState::drop_partitions`]): their
//! keys now belong to another instance.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

#[derive(Debug)]
pub struct TxState<K, V> {
    map: HashMap<K, (i32, V)>,
    undo: HashMap<K, Option<(i32, V)>>,
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
        self.map.get(k).map(|(_, v)| v)
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
        self.map.get_mut(k).map(|(_, v)| v)
    }

    /// The value for `k`, inserting `default()` owned by `partition` when absent.
    pub fn entry_or_insert_with(
        &mut self,
        k: K,
        partition: i32,
        default: impl FnOnce() -> V,
    ) -> &mut V {
        self.remember(&k);
        &mut self
            .map
            .entry(k)
            .or_insert_with(|| (partition, default()))
            .1
    }

    /// Sets `k`, owned by input partition `partition`.
    pub fn insert(&mut self, k: K, partition: i32, v: V) {
        self.remember(&k);
        self.map.insert(k, (partition, v));
    }

    pub fn remove(&mut self, k: &K) -> Option<V> {
        if self.map.contains_key(k) {
            self.remember(k);
        }
        self.map.remove(k).map(|(_, v)| v)
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

    /// Drops the keys owned by the given (topic, partition)s. Called on
    /// revocation, between transactions, so there is nothing to roll back.
    pub fn drop_partitions(&mut self, partitions: &[(String, i32)]) {
        let gone: HashSet<i32> = partitions.iter().map(|(_, p)| *p).collect();
        self.map.retain(|_, (p, _)| !gone.contains(p));
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
        s.insert("a", 0, 1);
        s.insert("b", 0, 2);
        s.commit();
        s.insert("a", 0, 10);
        s.insert("a", 0, 11);
        s.remove(&"b");
        s.insert("c", 0, 3);
        *s.entry_or_insert_with("d", 0, || 0) += 5;
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
        s.insert("a", 0, 1);
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

    #[test]
    fn revoked_partitions_lose_their_keys_only() {
        let mut s = TxState::new();
        s.insert("a", 1, 1);
        s.insert("b", 2, 2);
        s.commit();
        s.drop_partitions(&[("t".into(), 1)]);
        assert_eq!(s.get(&"a"), None);
        assert_eq!(s.get(&"b"), Some(&2));
    }
}
