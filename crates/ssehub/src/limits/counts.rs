//! What is held at once: in total ([`Gate`]) and per key ([`Counts`]),
//! each unit released by dropping the guard that took it, so every way a
//! connection or a stream can end gives its place back.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

/// A number of places, taken by [`Gate::enter`] and given back when the
/// [`Pass`] is dropped.
#[derive(Debug)]
pub struct Gate {
    inside: AtomicUsize,
    max: usize,
}

/// One place of a [`Gate`], given back on drop.
#[derive(Debug)]
pub struct Pass(Arc<Gate>);

impl Gate {
    /// A gate of `max` places.
    pub fn new(max: usize) -> Arc<Gate> {
        Arc::new(Gate {
            inside: AtomicUsize::new(0),
            max,
        })
    }

    /// Takes a place, unless all are taken.
    pub fn enter(self: &Arc<Self>) -> Option<Pass> {
        self.inside
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| Pass(self.clone()))
    }

    /// Places taken.
    pub fn inside(&self) -> usize {
        self.inside.load(Ordering::Acquire)
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        self.0.inside.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Units held per key. A key is in the map only while it holds at least
/// one, so the map is never larger than what is held.
#[derive(Debug)]
pub struct Counts<K: Hash + Eq> {
    held: Mutex<HashMap<K, usize>>,
}

/// One unit held by a key of [`Counts`], given back on drop.
#[derive(Debug)]
pub struct Held<K: Hash + Eq> {
    counts: Arc<Counts<K>>,
    key: K,
}

impl<K: Hash + Eq + Clone> Counts<K> {
    /// Nothing held.
    pub fn new() -> Arc<Counts<K>> {
        Arc::new(Counts {
            held: Mutex::new(HashMap::new()),
        })
    }

    /// Takes one unit for `key`, unless it holds `max` already.
    pub fn acquire(self: &Arc<Self>, key: K, max: usize) -> Option<Held<K>> {
        let mut held = self.held.lock();
        match held.get_mut(&key) {
            Some(n) if *n >= max => return None,
            Some(n) => *n += 1,
            None if max == 0 => return None,
            None => {
                held.insert(key.clone(), 1);
            }
        }
        Some(Held {
            counts: self.clone(),
            key,
        })
    }

    /// Units `key` holds.
    pub fn of(&self, key: &K) -> usize {
        self.held.lock().get(key).copied().unwrap_or(0)
    }

    /// Keys holding at least one unit.
    pub fn keys(&self) -> usize {
        self.held.lock().len()
    }
}

impl<K: Hash + Eq> Drop for Held<K> {
    fn drop(&mut self) {
        let mut held = self.counts.held.lock();
        if let Some(n) = held.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gate_gives_places_back() {
        let gate = Gate::new(2);
        let a = gate.enter().unwrap();
        let _b = gate.enter().unwrap();
        assert!(gate.enter().is_none());
        drop(a);
        assert_eq!(gate.inside(), 1);
        assert!(gate.enter().is_some());
    }

    #[test]
    fn keys_leave_the_map_at_zero() {
        let counts = Counts::new();
        let a1 = counts.acquire("a", 2).unwrap();
        let a2 = counts.acquire("a", 2).unwrap();
        assert!(counts.acquire("a", 2).is_none());
        let b = counts.acquire("b", 2).unwrap();
        assert_eq!((counts.of(&"a"), counts.keys()), (2, 2));
        drop(a1);
        assert!(counts.acquire("a", 2).is_some(), "a place was given back");
        drop((a2, b));
        assert_eq!(counts.keys(), 0, "no key is kept once it holds nothing");
        assert!(counts.acquire("c", 0).is_none());
        assert_eq!(counts.keys(), 0);
    }
}
