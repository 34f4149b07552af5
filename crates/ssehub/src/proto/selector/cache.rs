//! A bounded cache of compiled selectors, evicting with CLOCK.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use super::{MatchType, Matcher, PatternError, Selector};

/// A bounded, thread-safe cache of compiled selectors keyed by the matcher
/// (its type and text, and for URL patterns the base URL), so each template
/// or pattern is compiled once and shared by all subscribers and publishers.
/// The type is part of the key: the 0.x selector `https://a/{x}` (a
/// template) and the 1.0 exact matcher `https://a/{x}` never share an entry.
///
/// Eviction is CLOCK (second chance): a hit sets the entry's referenced bit
/// under the read lock; when the cache is full, the hand sweeps the entries,
/// clearing set bits, and replaces the first entry whose bit was already
/// clear. Entries looked up once are thus evicted before entries in use. A
/// capacity of zero disables caching (every call compiles).
pub struct SelectorCache {
    capacity: usize,
    inner: RwLock<CacheInner>,
}

struct CacheInner {
    index: HashMap<Arc<Key>, usize>,
    slots: Vec<CacheSlot>,
    hand: usize,
}

/// What a compiled selector depends on.
#[derive(PartialEq, Eq, Hash)]
struct Key {
    kind: MatchType,
    text: String,
    /// The base URL, for URL patterns only (empty otherwise).
    base: String,
}

struct CacheSlot {
    key: Arc<Key>,
    selector: Arc<Selector>,
    referenced: AtomicBool,
}

impl SelectorCache {
    /// Creates a cache holding at most `capacity` compiled selectors.
    pub fn new(capacity: usize) -> Self {
        SelectorCache {
            capacity,
            inner: RwLock::new(CacheInner {
                index: HashMap::new(),
                slots: Vec::new(),
                hand: 0,
            }),
        }
    }

    /// Returns the compiled selector, compiling and caching it on first use;
    /// `base` is the hub URL relative URL patterns resolve against. A URL
    /// pattern that does not compile is an error (and is not cached).
    pub fn get(&self, matcher: &Matcher, base: &url::Url) -> Result<Arc<Selector>, PatternError> {
        let key = Key {
            kind: matcher.kind,
            text: matcher.text.clone(),
            base: match matcher.kind {
                MatchType::UrlPattern => base.as_str().to_string(),
                MatchType::Selector | MatchType::Exact => String::new(),
            },
        };
        {
            let inner = self.inner.read();
            if let Some(&slot) = inner.index.get(&key) {
                let slot = &inner.slots[slot];
                // Checking first avoids bouncing the cache line between
                // cores when a popular entry is already marked.
                if !slot.referenced.load(Ordering::Relaxed) {
                    slot.referenced.store(true, Ordering::Relaxed);
                }
                return Ok(Arc::clone(&slot.selector));
            }
        }
        // Compiling outside the lock keeps a slow template from stalling
        // every other lookup.
        let compiled = Arc::new(Selector::compile(matcher, base)?);
        if self.capacity == 0 {
            return Ok(compiled);
        }
        let mut guard = self.inner.write();
        let inner = &mut *guard;
        // Another thread may have inserted it meanwhile; returning its copy
        // keeps one shared instance per selector string.
        if let Some(&slot) = inner.index.get(&key) {
            return Ok(Arc::clone(&inner.slots[slot].selector));
        }
        let key = Arc::new(key);
        let slot = CacheSlot {
            key: Arc::clone(&key),
            selector: Arc::clone(&compiled),
            referenced: AtomicBool::new(false),
        };
        let position = if inner.slots.len() < self.capacity {
            inner.slots.push(slot);
            inner.slots.len() - 1
        } else {
            while *inner.slots[inner.hand].referenced.get_mut() {
                *inner.slots[inner.hand].referenced.get_mut() = false;
                inner.hand = (inner.hand + 1) % self.capacity;
            }
            let victim = inner.hand;
            inner.hand = (inner.hand + 1) % self.capacity;
            let old = std::mem::replace(&mut inner.slots[victim], slot);
            inner.index.remove(&old.key);
            victim
        };
        inner.index.insert(key, position);
        Ok(compiled)
    }

    /// Number of cached entries.
    pub fn len(&self) -> usize {
        self.inner.read().slots.len()
    }

    /// Whether the cache holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
