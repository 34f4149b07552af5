//! The fan-out's index of selectors that are not exact topics.
//!
//! Each distinct compiled selector is held once, with the keys of the
//! subscribers holding it, so an update matches it once whatever the number
//! of subscribers. Selectors are distinct by identity: the selector cache
//! hands every subscriber the same [`Arc`] for the same matcher (type, text,
//! base URL), so `Arc` identity is text identity while the cache keeps the
//! entry; a matcher compiled again after its eviction makes a second entry,
//! which costs a second match and never changes a result.
//!
//! URI templates are indexed by their literal prefix (the text before the
//! first expression, see [`TemplateMatcher::literal_prefix`]): a template
//! can only match a topic starting with that prefix byte for byte, so a
//! topic visits only the templates whose prefix is one of its own prefixes,
//! found by probing the topic's prefixes of each length some indexed prefix
//! has. `*` and URL patterns (whose matching resolves and normalises the
//! topic as a URL, so no byte prefix of the text is safe) are visited for
//! every topic.
//!
//! [`TemplateMatcher::literal_prefix`]: crate::proto::selector::TemplateMatcher::literal_prefix

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use crate::proto::selector::Selector;

/// A selector's identity: the address of its shared compiled form.
type SelectorId = usize;

/// Non-exact selectors, each once, indexed as the module describes.
#[derive(Default)]
pub(super) struct SelectorIndex {
    /// Each distinct selector with its subscribers.
    shared: HashMap<SelectorId, Shared>,
    /// Templates by literal prefix.
    by_prefix: HashMap<Box<str>, Vec<SelectorId>>,
    /// The lengths of the prefixes in `by_prefix`, with how many have each.
    prefix_lengths: BTreeMap<usize, usize>,
    /// `*` and URL patterns: visited for every topic.
    unindexed: Vec<SelectorId>,
}

/// One distinct selector and the keys of the subscribers holding it.
struct Shared {
    selector: Arc<Selector>,
    subscribers: HashSet<u64>,
}

/// Where a selector sits in the index.
enum Place<'a> {
    Prefix(&'a str),
    Unindexed,
}

fn identity(selector: &Arc<Selector>) -> SelectorId {
    Arc::as_ptr(selector) as SelectorId
}

/// Exact selectors are indexed by topic in the registry and never come here.
fn place(selector: &Selector) -> Place<'_> {
    match selector {
        Selector::Template(template) => Place::Prefix(template.literal_prefix()),
        Selector::Any | Selector::Exact(_) | Selector::UrlPattern(_) => Place::Unindexed,
    }
}

impl SelectorIndex {
    /// Records that subscriber `key` holds `selector` (again is harmless).
    pub(super) fn insert(&mut self, selector: &Arc<Selector>, key: u64) {
        let id = identity(selector);
        if let Some(shared) = self.shared.get_mut(&id) {
            shared.subscribers.insert(key);
            return;
        }
        self.shared.insert(
            id,
            Shared {
                selector: Arc::clone(selector),
                subscribers: HashSet::from([key]),
            },
        );
        match place(selector) {
            Place::Prefix(prefix) => {
                let ids = self.by_prefix.entry(prefix.into()).or_default();
                if ids.is_empty() {
                    *self.prefix_lengths.entry(prefix.len()).or_default() += 1;
                }
                ids.push(id);
            }
            Place::Unindexed => self.unindexed.push(id),
        }
    }

    /// Records that subscriber `key` no longer holds `selector`; a selector
    /// no subscriber holds leaves the index.
    pub(super) fn remove(&mut self, selector: &Arc<Selector>, key: u64) {
        let id = identity(selector);
        let Some(shared) = self.shared.get_mut(&id) else {
            return;
        };
        shared.subscribers.remove(&key);
        if !shared.subscribers.is_empty() {
            return;
        }
        self.shared.remove(&id);
        match place(selector) {
            Place::Prefix(prefix) => {
                let Some(ids) = self.by_prefix.get_mut(prefix) else {
                    return;
                };
                ids.retain(|i| *i != id);
                if ids.is_empty() {
                    self.by_prefix.remove(prefix);
                    if let Some(n) = self.prefix_lengths.get_mut(&prefix.len()) {
                        *n -= 1;
                        if *n == 0 {
                            self.prefix_lengths.remove(&prefix.len());
                        }
                    }
                }
            }
            Place::Unindexed => self.unindexed.retain(|i| *i != id),
        }
    }

    /// Forgets every selector.
    pub(super) fn clear(&mut self) {
        *self = SelectorIndex::default();
    }

    /// The selectors that could match `topic`: every unindexed one, and the
    /// templates whose literal prefix starts `topic`.
    fn candidates<'a>(&'a self, topic: &'a str) -> impl Iterator<Item = SelectorId> + 'a {
        let indexed = self
            .prefix_lengths
            .range(..=topic.len())
            .filter(|(len, _)| topic.is_char_boundary(**len))
            .filter_map(|(len, _)| self.by_prefix.get(&topic[..*len]))
            .flatten();
        self.unindexed.iter().chain(indexed).copied()
    }

    /// Calls `visit` with the key of every subscriber holding a selector
    /// that matches one of `topics`. Each selector is matched at most once
    /// per topic and its subscribers are visited once; a subscriber holding
    /// several matching selectors is visited once for each.
    pub(super) fn matching(&self, topics: &[String], mut visit: impl FnMut(u64)) {
        // A selector is a candidate at most once per topic; only an update
        // with several topics can meet it again.
        let mut seen = HashSet::new();
        for topic in topics {
            for id in self.candidates(topic) {
                if topics.len() > 1 && seen.contains(&id) {
                    continue;
                }
                let Some(shared) = self.shared.get(&id) else {
                    continue;
                };
                if shared.selector.matches(topic) {
                    if topics.len() > 1 {
                        seen.insert(id);
                    }
                    shared.subscribers.iter().copied().for_each(&mut visit);
                }
            }
        }
    }

    /// Number of distinct selectors held.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.shared.len()
    }
}
