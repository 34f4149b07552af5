//! The Mercure 1.0 `urlpattern` topic matcher: WHATWG URL Pattern
//! constructor strings, evaluated the way `new URLPattern(pattern, hubUrl)`
//! and `pattern.test(topic, hubUrl)` would, with the linear-time `regex`
//! crate as the regular expression engine.
//!
//! The lone selector `*` is not handled here: the caller maps it to "every
//! topic" before compiling (as a URL pattern, `*` alone would be a relative
//! path pattern under the hub URL's directory).
//!
//! Behaviour, where the standard or Mercure leaves room:
//!
//! * Absolute patterns (with a scheme, `https://example.com/books/:id`,
//!   `urn:*`) are used as written, without the hub URL. Relative patterns
//!   (no scheme) are resolved against the hub URL: scheme, host and port come
//!   from it, a path not starting with `/` is relative to the hub URL's
//!   directory (`books/:id` against `https://hub.example/.well-known/mercure`
//!   means `/.well-known/books/:id`), and a pattern starting with `?` or `#`
//!   keeps the hub URL's path. `//host/path` is read as a path, not as a
//!   scheme-relative authority.
//! * Components a pattern leaves out after the last one it writes are
//!   wildcards, and so are the username and password: a pattern without `?`
//!   such as `https://example.com/books/:id` matches
//!   `https://example.com/books/1?page=2` and `https://example.com/books/1#x`.
//!   Components before the last one written are fixed: the port is empty
//!   (only the scheme's default port matches), and writing a hash makes an
//!   omitted query empty, so `https://example.com/books/:id#*` refuses any
//!   query string. A `?` right after a group is its optional modifier
//!   (`/books/:id?` also matches `/books`), not the start of the query.
//!   The query is matched as one string, not as parameters: in
//!   `?page=:n`, `:n` runs over `&` to the end (`?page=2&size=10` matches,
//!   `?size=10&page=2` does not).
//! * The host (and the scheme) are case-insensitive because URL
//!   canonicalisation lowercases them (and maps internationalised hosts to
//!   punycode) in both pattern and topic; everything else, path, query,
//!   fragment, username, is compared case-sensitively (`ignoreCase` is never
//!   set).
//! * A topic is resolved against the hub URL with the WHATWG URL parser, so
//!   the usual canonicalisation applies before matching: default ports
//!   dropped, dot segments resolved (`/a/../books/1` is `/books/1`), `\`
//!   read as `/` in http(s) and the other special schemes, characters
//!   outside the URL code points percent-encoded (`é` becomes `%C3%A9`, as
//!   it does in the pattern), and existing percent escapes kept as written
//!   (`%c3%a9` differs from `%C3%A9`). A relative topic (`/books/1`) and the
//!   absolute topic of the hub's origin (`https://hub.example/books/1`)
//!   therefore match the same patterns.
//! * A topic never matches when it is empty (which would resolve to the hub
//!   URL itself), contains ASCII whitespace or control characters (RFC 3986
//!   allows none of them, and the WHATWG parser would silently drop or
//!   encode them, making distinct strings alike), or cannot be parsed
//!   against the hub URL. `urn:uuid:...` parses as a URL with an opaque
//!   path: `urn:*` matches every URN. In a pattern, `:` followed by a name
//!   character starts a named group, so a literal `urn:uuid:` prefix is
//!   written `urn:{uuid}\:*`.
//! * Regular expression groups (`(\d+)`) use the `regex` crate's syntax,
//!   which matches in linear time: look-around and backreferences are
//!   refused as invalid, and classes such as `\d` are Unicode-aware (topics
//!   are percent-encoded ASCII once parsed, so this rarely shows). Each of the
//!   regular expressions a pattern compiles to (two per component) may use at
//!   most [`REGEX_SIZE_LIMIT`] (512 KiB) compiled; a pattern exceeding it (say
//!   `((?:\w{100}){100})`) is refused, not compiled unboundedly. Patterns are
//!   at most [`MAX_PATTERN_LEN`] (1024) bytes; the empty pattern is refused.
//!   A pattern the URL pattern crate panics on is refused as invalid.

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;

use ::urlpattern::regexp::RegExp;
use ::urlpattern::{
    Error as UrlPatternError, RegexSyntax, UrlPattern, UrlPatternInit, UrlPatternMatchInput,
    UrlPatternOptions,
};
use regex::{Regex, RegexBuilder};
use url::Url;

/// Longest pattern accepted, in bytes.
pub const MAX_PATTERN_LEN: usize = 1024;

/// Upper bound on each compiled regular expression of a pattern: a plain
/// pattern of [`MAX_PATTERN_LEN`] bytes of named groups fits, a hostile
/// regular expression group does not.
const REGEX_SIZE_LIMIT: usize = 512 * 1024;

/// Why a pattern the URL pattern crate panicked on is refused. Version 0.6
/// counts the brackets of an IPv6 hostname in an unsigned integer, so a `]`
/// closing no `[` (`https://example]`, never a valid hostname) subtracts
/// past zero: a panic where overflow checks are on (debug builds, the tests,
/// the fuzz targets; release builds wrap, which is what the standard's
/// signed counter does). Found by the `urlpattern` fuzz target.
const UNPARSABLE: &str = "the URL pattern library cannot parse it (a `]` closing no `[`?)";

thread_local! {
    /// Why the last regular expression compiled on this thread was refused:
    /// the URL pattern crate reports regular expression errors without
    /// details, so [`BoundedRegex::parse`] leaves them here for
    /// [`UrlPatternMatcher::compile`].
    static REGEX_ERROR: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Why a URL pattern cannot be used (answered with 400 on subscribe, 401
/// invalid_token in a token).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// The pattern is longer than [`MAX_PATTERN_LEN`]; carries its length.
    #[error("the URL pattern is {0} bytes long, more than the {MAX_PATTERN_LEN} allowed")]
    TooLong(usize),
    /// The pattern is not a valid URL pattern; carries what is wrong.
    #[error("invalid URL pattern: {0}")]
    Invalid(String),
}

/// A compiled WHATWG URL Pattern with the hub URL relative patterns and
/// topics are resolved against.
#[derive(Clone)]
pub struct UrlPatternMatcher {
    pattern: String,
    base: Url,
    compiled: Arc<UrlPattern<BoundedRegex>>,
}

impl UrlPatternMatcher {
    /// Compiles `pattern`, resolving it against `base` (the hub URL) when it
    /// has no scheme. `*` alone is not special here (see the module
    /// documentation).
    pub fn compile(pattern: &str, base: &Url) -> Result<UrlPatternMatcher, PatternError> {
        if pattern.len() > MAX_PATTERN_LEN {
            return Err(PatternError::TooLong(pattern.len()));
        }
        if pattern.is_empty() {
            return Err(PatternError::Invalid("the pattern is empty".to_owned()));
        }
        REGEX_ERROR.with(|slot| slot.borrow_mut().take());
        let options = UrlPatternOptions {
            regex_syntax: RegexSyntax::Rust,
            ignore_case: false,
        };
        // The crate panics on some hostile patterns (see `UNPARSABLE`): a
        // pattern it cannot parse is refused like any invalid one.
        let parsed = std::panic::catch_unwind(|| {
            constructor_init(pattern, base)
                .and_then(|init| UrlPattern::<BoundedRegex>::parse(init, options))
        });
        let compiled = parsed
            .map_err(|_| PatternError::Invalid(UNPARSABLE.to_owned()))?
            .map_err(|err| PatternError::Invalid(describe_error(&err)))?;
        Ok(UrlPatternMatcher {
            pattern: pattern.to_owned(),
            base: base.clone(),
            compiled: Arc::new(compiled),
        })
    }

    /// Whether `topic` (absolute, or relative to the base) matches.
    pub fn matches(&self, topic: &str) -> bool {
        if topic.is_empty() || topic.chars().any(|c| c.is_ascii_control() || c == ' ') {
            return false;
        }
        match self.base.join(topic) {
            Ok(url) => self
                .compiled
                .test(UrlPatternMatchInput::Url(url))
                .unwrap_or(false),
            Err(_) => false,
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }
}

impl fmt::Debug for UrlPatternMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("UrlPatternMatcher")
            .field(&self.pattern)
            .finish()
    }
}

/// Parses a constructor string, with `base` only when the pattern has no
/// scheme: an absolute pattern is used as written (the standard would still
/// prefix a scheme-only pattern's path, `urn:*`, with the base directory).
fn constructor_init(pattern: &str, base: &Url) -> Result<UrlPatternInit, UrlPatternError> {
    match UrlPatternInit::parse_constructor_string::<BoundedRegex>(pattern, None) {
        Err(UrlPatternError::BaseUrlRequired) => {
            UrlPatternInit::parse_constructor_string::<BoundedRegex>(pattern, Some(base.clone()))
        }
        parsed => parsed,
    }
}

/// A human-readable reason, with the details of a refused regular
/// expression the URL pattern crate drops.
fn describe_error(err: &UrlPatternError) -> String {
    match err {
        UrlPatternError::RegExp(()) => REGEX_ERROR
            .with(|slot| slot.borrow_mut().take())
            .unwrap_or_else(|| "a regular expression cannot be compiled".to_owned()),
        other => other.to_string(),
    }
}

/// Why `regex` refused a generated regular expression, in one line.
fn describe_regex_error(err: &regex::Error) -> String {
    match err {
        regex::Error::CompiledTooBig(limit) => {
            format!("the pattern compiles to a regular expression larger than {limit} bytes")
        }
        other => {
            let text = other.to_string();
            let reason = text
                .lines()
                .rev()
                .find_map(|line| line.strip_prefix("error: "))
                .unwrap_or(&text);
            format!("unsupported regular expression: {reason}")
        }
    }
}

/// A `regex::Regex` built with [`REGEX_SIZE_LIMIT`], for the URL pattern
/// crate to compile components with.
#[derive(Debug)]
struct BoundedRegex(Regex);

impl RegExp for BoundedRegex {
    fn syntax() -> RegexSyntax {
        RegexSyntax::Rust
    }

    /// Flags are ignored: the crate asks for Unicode (the `regex` default)
    /// and case-insensitivity only with `ignoreCase`, which is never set.
    fn parse(pattern: &str, _flags: &str, _force_eval: bool) -> Result<Self, ()> {
        match RegexBuilder::new(pattern)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
        {
            Ok(regex) => Ok(BoundedRegex(regex)),
            Err(err) => {
                REGEX_ERROR.with(|slot| *slot.borrow_mut() = Some(describe_regex_error(&err)));
                Err(())
            }
        }
    }

    fn matches<'a>(&self, text: &'a str) -> Option<Vec<Option<&'a str>>> {
        let captures = self.0.captures(text)?;
        Some(
            captures
                .iter()
                .skip(1)
                .map(|group| group.map(|found| found.as_str()))
                .collect(),
        )
    }

    fn pattern_string(&self) -> &str {
        self.0.as_str()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::LazyLock;

    use proptest::prelude::*;

    use super::*;

    const HUB: &str = "https://hub.example/.well-known/mercure";

    fn hub() -> Url {
        Url::parse(HUB).expect("hub URL")
    }

    fn compile(pattern: &str) -> UrlPatternMatcher {
        UrlPatternMatcher::compile(pattern, &hub())
            .unwrap_or_else(|err| panic!("{pattern:?} should compile: {err}"))
    }

    fn invalid(pattern: &str) -> String {
        match UrlPatternMatcher::compile(pattern, &hub()) {
            Err(PatternError::Invalid(reason)) => reason,
            other => panic!("{pattern:?} should be invalid, got {other:?}"),
        }
    }

    /// Asserts which of `topics` match `pattern` (`true`) and which do not.
    fn check(pattern: &str, topics: &[(&str, bool)]) {
        let matcher = compile(pattern);
        for (topic, expected) in topics {
            assert_eq!(
                matcher.matches(topic),
                *expected,
                "pattern {pattern:?} against topic {topic:?}"
            );
        }
    }

    #[test]
    fn absolute_pattern_with_named_group() {
        check(
            "https://example.com/books/:id",
            &[
                ("https://example.com/books/1", true),
                ("https://example.com/books/war-and-peace", true),
                ("https://example.com/books/", false),
                ("https://example.com/books/1/chapters", false),
                ("https://example.com:443/books/1", true),
                ("https://example.com:8443/books/1", false),
                ("http://example.com/books/1", false),
                ("https://example.org/books/1", false),
                ("/books/1", false),
            ],
        );
    }

    #[test]
    fn relative_pattern_resolves_against_the_hub() {
        let pattern = "/.well-known/mercure/subscriptions/exact/:topic/:subscriber";
        check(
            pattern,
            &[
                (
                    "/.well-known/mercure/subscriptions/exact/https%3A%2F%2Fexample.com%2Fbooks%2F1/urn%3Auuid%3A42",
                    true,
                ),
                (
                    "https://hub.example/.well-known/mercure/subscriptions/exact/t/s",
                    true,
                ),
                (
                    "https://other.example/.well-known/mercure/subscriptions/exact/t/s",
                    false,
                ),
                ("/.well-known/mercure/subscriptions/exact/t", false),
            ],
        );
        check(
            "books/:id",
            &[
                ("/.well-known/books/1", true),
                ("books/1", true),
                ("/books/1", false),
            ],
        );
        check(
            "?page=:n",
            &[
                ("?page=2", true),
                ("https://hub.example/.well-known/mercure?page=2", true),
                ("/elsewhere?page=2", false),
            ],
        );
    }

    #[test]
    fn relative_and_absolute_topics_of_the_hub_match_alike() {
        for pattern in ["/books/:id", "https://hub.example/books/:id"] {
            check(
                pattern,
                &[
                    ("/books/1", true),
                    ("https://hub.example/books/1", true),
                    ("https://hub.example:443/books/1", true),
                    ("https://HUB.example/books/1", true),
                    ("//hub.example/books/1", true),
                    ("//other.example/books/1", false),
                ],
            );
        }
    }

    #[test]
    fn wildcards_regexp_groups_and_optional_groups() {
        check(
            "https://example.com/books/*",
            &[
                ("https://example.com/books/", true),
                ("https://example.com/books/1/chapters/2", true),
                ("https://example.com/books", false),
            ],
        );
        check(
            "https://*.example.com/*",
            &[
                ("https://a.example.com/x", true),
                ("https://a.b.example.com/", true),
                ("https://example.com/x", false),
            ],
        );
        check(
            "https://example.com/books/(\\d+)",
            &[
                ("https://example.com/books/12", true),
                ("https://example.com/books/x", false),
                ("https://example.com/books/\u{661}\u{662}", false),
            ],
        );
        check(
            "https://example.com/books/:id(\\d+)/:section?",
            &[
                ("https://example.com/books/12", true),
                ("https://example.com/books/12/notes", true),
                ("https://example.com/books/12/", false),
                ("https://example.com/books/x/notes", false),
            ],
        );
        check(
            "https://example.com/books/:id?",
            &[
                ("https://example.com/books", true),
                ("https://example.com/books/1", true),
            ],
        );
    }

    #[test]
    fn only_the_host_and_scheme_are_case_insensitive() {
        check(
            "https://Example.COM/Books/:id",
            &[
                ("https://example.com/Books/1", true),
                ("HTTPS://EXAMPLE.com/Books/1", true),
                ("https://example.com/books/1", false),
                ("https://example.com/BOOKS/1", false),
            ],
        );
        check(
            "https://example.com/books?q=Rust",
            &[
                ("https://example.com/books?q=Rust", true),
                ("https://example.com/books?q=rust", false),
            ],
        );
        check(
            "https://bücher.example/*",
            &[
                ("https://BÜCHER.example/x", true),
                ("https://xn--bcher-kva.example/x", true),
            ],
        );
    }

    #[test]
    fn topics_are_canonicalised_as_urls() {
        check(
            "https://example.com/bé/:id",
            &[
                ("https://example.com/bé/1", true),
                ("https://example.com/b%C3%A9/1", true),
                ("https://example.com/b%c3%a9/1", false),
                ("https://example.com/x/../bé/1", true),
                ("https:\\\\example.com\\bé\\1", true),
            ],
        );
    }

    #[test]
    fn omitted_query_and_hash_are_wildcards() {
        check(
            "https://example.com/books/:id",
            &[
                ("https://example.com/books/1?page=2", true),
                ("https://example.com/books/1#chapter-3", true),
                ("https://example.com/books/1?page=2#chapter-3", true),
                ("https://user:secret@example.com/books/1", true),
            ],
        );
        check(
            "https://example.com/books/:id#*",
            &[
                ("https://example.com/books/1", true),
                ("https://example.com/books/1#chapter-3", true),
                ("https://example.com/books/1?page=2", false),
            ],
        );
        check(
            "https://example.com/books?page=:n",
            &[
                ("https://example.com/books?page=2", true),
                ("https://example.com/books?page=2#top", true),
                ("https://example.com/books", false),
                // The query is one string: `:n` runs to its end, over `&`.
                ("https://example.com/books?page=2&size=10", true),
                ("https://example.com/books?size=10&page=2", false),
            ],
        );
        check(
            "https://example.com/books#:anchor",
            &[
                ("https://example.com/books#top", true),
                ("https://example.com/books", false),
                ("https://example.com/books?page=2#top", false),
            ],
        );
    }

    #[test]
    fn topics_that_are_not_urls_do_not_match() {
        let matcher = compile("https://example.com/*");
        for topic in [
            "",
            " ",
            "not a url",
            "urn:uuid:6ba7b810-9dad-11d1-80b4-00c04fd430c8",
            " https://example.com/x",
            "https://example.com/x\n",
            "https://example.com/\tx",
            "https://exa mple.com/x",
            "https://[::1/x",
            "http://example.com:99999/x",
        ] {
            assert!(!matcher.matches(topic), "{topic:?}");
        }
        // A relative pattern covering the hub's whole origin still does not
        // match the empty topic (the hub URL itself) nor strings with spaces.
        let anything_on_hub = compile("/*");
        assert!(anything_on_hub.matches("/.well-known/mercure"));
        assert!(!anything_on_hub.matches(""));
        assert!(!anything_on_hub.matches("not a url"));
    }

    #[test]
    fn non_special_schemes() {
        let uuid = "urn:uuid:6ba7b810-9dad-11d1-80b4-00c04fd430c8";
        check(
            "urn:*",
            &[
                (uuid, true),
                ("urn:isbn:0451450523", true),
                ("https://example.com/", false),
            ],
        );
        check(
            "urn:{uuid}\\:*",
            &[(uuid, true), ("urn:isbn:0451450523", false)],
        );
        check(
            "mailto:*@example.com",
            &[
                ("mailto:alice@example.com", true),
                ("mailto:alice@example.org", false),
            ],
        );
    }

    #[test]
    fn invalid_patterns_say_why() {
        assert!(invalid("").contains("empty"));
        assert!(invalid("https://example.com/(").contains("missing closing )"));
        assert!(invalid("https://example.com/:id/:id").contains("duplicate name id"));
        assert!(invalid("https://example.com/((a)b)").contains("nested groups"));
        assert!(invalid("https://exa mple.com/*").contains("domain"));
        assert!(!invalid("https://example]/").is_empty());
        assert!(!invalid("httpq://{*.}?example]:8080/*").is_empty());
        let lookahead = invalid("https://example.com/((?=a)a)");
        assert!(lookahead.contains("look-around"), "{lookahead}");
        assert!(!lookahead.contains('\n'), "{lookahead}");
        let backreference = invalid("https://example.com/(a\\1)");
        assert!(
            backreference.contains("unsupported regular expression"),
            "{backreference}"
        );
    }

    #[test]
    fn too_long_patterns_are_refused() {
        let longest = format!("/{}", "a".repeat(MAX_PATTERN_LEN - 1));
        assert!(UrlPatternMatcher::compile(&longest, &hub()).is_ok());
        let too_long = format!("{longest}a");
        assert_eq!(
            UrlPatternMatcher::compile(&too_long, &hub()).unwrap_err(),
            PatternError::TooLong(MAX_PATTERN_LEN + 1)
        );
    }

    #[test]
    fn longest_plain_patterns_compile() {
        let mut segments = String::new();
        let mut n = 0;
        while segments.len() + 8 <= MAX_PATTERN_LEN {
            segments.push_str(&format!("/:g{n}"));
            n += 1;
        }
        let named = compile(&segments);
        let topic: String = (0..n).map(|i| format!("/{i}")).collect();
        assert!(named.matches(&topic));
        assert!(!named.matches(&format!("{topic}/extra")));

        let optional = compile(&"/*?".repeat(MAX_PATTERN_LEN / 3));
        assert!(optional.matches("/a/b/c"));
    }

    #[test]
    fn huge_regular_expressions_are_refused() {
        for pattern in [
            "https://example.com/((?:(?:a{1000}){1000}){1000})",
            "https://example.com/((?:\\w{100}){100})",
            "https://example.com/:a(\\w{500})/:b(\\w{500})",
        ] {
            let reason = invalid(pattern);
            assert!(reason.contains("larger than"), "{pattern}: {reason}");
        }
    }

    #[test]
    fn pathological_patterns_answer_on_adversarial_topics() {
        // Catastrophic for a backtracking engine; the regex crate is linear.
        let nested: String = ('a'..='p').map(|c| format!("({c}+)+")).collect();
        let matcher = compile(&format!("https://example.com/{nested}"));
        let letters: String = ('a'..='p').map(|c| c.to_string().repeat(200)).collect();
        assert!(matcher.matches(&format!("https://example.com/{letters}")));
        assert!(!matcher.matches(&format!("https://example.com/{letters}!")));

        let repeated = compile("https://example.com/{a}{0,}((?:a|aa)+)*:x((?:a*)*b)");
        let many = "a".repeat(20_000);
        assert!(repeated.matches(&format!("https://example.com/a0,{many}b")));
        assert!(!repeated.matches(&format!("https://example.com/a0,{many}")));
    }

    #[test]
    fn accessors_and_debug() {
        let matcher = compile("/books/:id");
        assert_eq!(matcher.as_str(), "/books/:id");
        assert_eq!(format!("{matcher:?}"), "UrlPatternMatcher(\"/books/:id\")");
        let copy = matcher.clone();
        assert!(copy.matches("/books/1"));
    }

    /// Patterns compiled once for the proptests.
    static FIXED: LazyLock<Vec<UrlPatternMatcher>> = LazyLock::new(|| {
        [
            "https://example.com/books/:id",
            "/.well-known/mercure/subscriptions/*",
            "urn:*",
            "https://*.example.com/:id(\\d+)?#*",
            "http{s}?://:host/*",
        ]
        .into_iter()
        .map(compile)
        .collect()
    });

    proptest! {
        #[test]
        fn matching_never_panics(
            topic in prop_oneof![
                any::<String>(),
                "[a-z:/?#@%.\\[\\]\\\\ 0-9\u{e9}]{0,40}",
                "(https?|urn|mailto|file)://?[a-z.:@\\[\\]0-9]{0,12}/[a-z/%?#.0-9]{0,20}",
            ],
        ) {
            for matcher in FIXED.iter() {
                let _ = matcher.matches(&topic);
            }
        }

        #[test]
        fn compiling_never_panics(pattern in "[a-z:/?#*(){}\\\\+@\\[\\].%! 0-9\u{e9}-]{0,30}") {
            if let Ok(matcher) = UrlPatternMatcher::compile(&pattern, &hub()) {
                let _ = matcher.matches("https://hub.example/a/b?c#d");
            }
        }
    }
}
