//! Mercure topic selectors: `*`, RFC 6570 URI templates and exact strings.
//!
//! A selector is `*` (every topic), a URI template (a topic matches when
//! some assignment of the template's variables expands to exactly that
//! topic), or an exact string compared byte for byte. A string is an exact
//! selector when it has no `{...}` expression or is not a valid RFC 6570
//! template (unterminated `{`, stray `}`, empty or malformed expression,
//! reserved operator such as `{=x}`, prefix outside `1..=9999`, ...).
//!
//! Templates are compiled once into an anchored regular expression that
//! accepts the set of possible expansions. Where inverting RFC 6570 is
//! ambiguous, matching is lenient in these documented ways:
//!
//! * A variable may be undefined, an empty string, a list or an associative
//!   array, so `https://example.com/books/{id}` matches
//!   `https://example.com/books/` (empty or undefined `id`), and simple
//!   values may contain `,` (list members joined by the expansion).
//! * Variables of one expression must appear in template order, each at
//!   most once, any of them may be missing: `/search{?q,lang}` matches
//!   `/search`, `/search?q=1`, `/search?lang=en` and `/search?q=1&lang=en`,
//!   but not `/search?lang=en&q=1` nor `/search?x=1`.
//!   Exploded named variables (`{?vars*}`, `{;vars*}`) may be associative
//!   arrays, so their keys are arbitrary.
//! * A prefix modifier (`{id:3}`) applies to strings only; its length counts
//!   characters, where a raw non-ASCII character or the percent-encoded
//!   UTF-8 sequence of one character (`%C3%A9`) counts as one, and so does
//!   any single triplet (`+` and `#` pass a value's own `%41` through, which
//!   the RFC would count as three). Prefixes longer than 255 are not
//!   enforced (any length matches) to keep compiled templates small.
//! * Non-ASCII characters are accepted unencoded in values, because Mercure
//!   topics are IRIs and an IRI carries them raw where the URI form would
//!   percent-encode them. Percent-encoding hex digits may be of either case;
//!   a `%` not followed by two hex digits never matches inside a value.
//! * Literal parts of a template are matched byte for byte, without URI
//!   normalisation, and their characters are not validated against the RFC
//!   literal grammar.
//! * As in Mercure, a template selector also matches a topic identical to the
//!   template string itself.
//! * A template whose regular expression would exceed the compile limits
//!   (for example hundreds of variables in one expression) becomes an exact
//!   selector rather than an unbounded compile.

mod cache;
mod template;
#[cfg(test)]
mod tests;
mod urlpattern;

pub use cache::SelectorCache;
pub use template::TemplateMatcher;
pub use urlpattern::{PatternError, UrlPatternMatcher, MAX_PATTERN_LEN};

/// A compiled topic selector.
#[derive(Debug, Clone)]
pub enum Selector {
    /// `*`: matches every topic.
    Any,
    /// An exact string, compared byte for byte.
    Exact(String),
    /// A compiled URI template.
    Template(TemplateMatcher),
}

impl Selector {
    /// Compiles a selector string (never fails: invalid templates become
    /// exact matches).
    pub fn parse(selector: &str) -> Selector {
        if selector == "*" {
            return Selector::Any;
        }
        match TemplateMatcher::compile(selector) {
            Some(matcher) => Selector::Template(matcher),
            None => Selector::Exact(selector.to_owned()),
        }
    }

    /// Whether `topic` matches.
    pub fn matches(&self, topic: &str) -> bool {
        match self {
            Selector::Any => true,
            Selector::Exact(exact) => exact == topic,
            Selector::Template(matcher) => matcher.matches(topic),
        }
    }

    /// Whether this is an exact-string selector; returns the string (the
    /// fan-out indexes those by topic).
    pub fn as_exact(&self) -> Option<&str> {
        match self {
            Selector::Exact(exact) => Some(exact),
            Selector::Any | Selector::Template(_) => None,
        }
    }
}
