//! Mercure 1.0 `urlpattern` matchers (`proto::selector::UrlPatternMatcher`).
//!
//! Input: a pattern on the first line, topics to match on the next ones.
//! Properties:
//!
//! * compiling never panics: a pattern is compiled, or refused as too long
//!   (exactly when it is over `MAX_PATTERN_LEN` bytes) or invalid;
//! * compiled through the shared `SelectorCache`, as the hub does: `*` is
//!   every topic, anything else a URL pattern;
//! * matching never panics; an empty topic, or one with ASCII whitespace or
//!   a control character, never matches;
//! * a relative topic matches as its absolute URL against the hub URL does
//!   (when that URL reads back as itself).

use ssehub::proto::selector::{
    MatchType, Matcher, PatternError, Selector, SelectorCache, MAX_PATTERN_LEN,
};

use super::input::lines;

/// Most topics tried on one pattern.
const TOPICS: usize = 16;

/// Checks one input; see the module documentation.
pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (pattern, topics) = lines(&text, TOPICS);
    let base = super::hub_url();
    // Through the shared cache, as the hub compiles them.
    let cache = SelectorCache::new(4);
    let compiled = match cache.get(&Matcher::new(MatchType::UrlPattern, pattern), &base) {
        Ok(compiled) => compiled,
        Err(PatternError::TooLong(len)) => {
            assert!(len > MAX_PATTERN_LEN && len == pattern.len(), "{pattern:?}");
            return;
        }
        Err(PatternError::Invalid(_)) => {
            assert!(pattern.len() <= MAX_PATTERN_LEN, "{pattern:?}");
            return;
        }
    };
    assert!(
        pattern.len() <= MAX_PATTERN_LEN,
        "{pattern:?} over the limit"
    );
    match &*compiled {
        Selector::Any => assert_eq!(pattern, "*"),
        Selector::UrlPattern(matcher) => assert_eq!(matcher.as_str(), pattern),
        other => panic!("{pattern:?} compiled as {other:?}"),
    }
    for topic in topics {
        let matches = compiled.matches(topic);
        if pattern == "*" {
            assert!(matches, "* misses {topic:?}");
            continue;
        }
        if topic.is_empty() || topic.chars().any(|c| c.is_ascii_control() || c == ' ') {
            assert!(!matches, "{pattern:?} matches the unusable topic {topic:?}");
            continue;
        }
        if let Ok(absolute) = base.join(topic) {
            if base.join(absolute.as_str()).as_ref() == Ok(&absolute) {
                assert_eq!(
                    compiled.matches(absolute.as_str()),
                    matches,
                    "{pattern:?} on {topic:?} and on {absolute}"
                );
            }
        }
    }
}
