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

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use regex::{Regex, RegexBuilder};

/// Upper bound on a compiled template program, so that a hostile selector
/// (say `{x:9999}` repeated) costs bounded memory and compile time.
const COMPILED_SIZE_LIMIT: usize = 4 * 1024 * 1024;

/// Longest prefix modifier whose length is enforced; longer ones match
/// values of any length.
const MAX_COUNTED_PREFIX: u16 = 255;

/// One character of a value expanded by an operator that allows only
/// unreserved characters.
const UNRESERVED_CHAR: &str = r"(?:[A-Za-z0-9._~-]|%[0-9A-Fa-f]{2}|[^\x00-\x7F])";
/// One character of a value expanded by `+` or `#`, which also let reserved
/// characters through.
const RESERVED_CHAR: &str = r"(?:[A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=-]|%[0-9A-Fa-f]{2}|[^\x00-\x7F])";
/// One prefix-counted character for unreserved operators: a non-ASCII
/// character is encoded as a multi-octet UTF-8 sequence, which counts once.
const UNRESERVED_UNIT: &str = concat!(
    r"(?:[A-Za-z0-9._~-]|[^\x00-\x7F]|",
    r"%[0-9A-Fa-f]{2}|%[C-Dc-d][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|",
    r"%[Ee][0-9A-Fa-f](?:%[89ABab][0-9A-Fa-f]){2}|%[Ff][0-7](?:%[89ABab][0-9A-Fa-f]){3})"
);
/// One prefix-counted character for `+` and `#`.
const RESERVED_UNIT: &str = concat!(
    r"(?:[A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=-]|[^\x00-\x7F]|",
    r"%[0-9A-Fa-f]{2}|%[C-Dc-d][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|",
    r"%[Ee][0-9A-Fa-f](?:%[89ABab][0-9A-Fa-f]){2}|%[Ff][0-7](?:%[89ABab][0-9A-Fa-f]){3})"
);

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

/// An RFC 6570 URI template compiled into an anchored regular expression
/// accepting the template's expansions.
#[derive(Debug, Clone)]
pub struct TemplateMatcher {
    template: String,
    regex: Regex,
}

impl TemplateMatcher {
    /// Compiles `template`. Returns `None` when it contains no expression, is
    /// not a valid RFC 6570 template, or exceeds the compile limits: such a
    /// string is an exact selector.
    pub fn compile(template: &str) -> Option<TemplateMatcher> {
        let pattern = template_pattern(template)?;
        let regex = RegexBuilder::new(&pattern)
            .size_limit(COMPILED_SIZE_LIMIT)
            .build()
            .ok()?;
        Some(TemplateMatcher {
            template: template.to_owned(),
            regex,
        })
    }

    /// Whether some expansion of the template is exactly `topic`, or `topic`
    /// is the template string itself (Mercure matches a selector identical to
    /// the topic whatever its syntax).
    pub fn matches(&self, topic: &str) -> bool {
        topic == self.template || self.regex.is_match(topic)
    }
}

/// Expansion behaviour of an RFC 6570 operator (RFC 6570 appendix A table).
#[derive(Clone, Copy)]
struct Operator {
    first: &'static str,
    sep: &'static str,
    named: bool,
    /// `ifemp` is `=`: an empty named value still gets `name=`.
    form: bool,
    reserved: bool,
}

impl Operator {
    const fn new(
        first: &'static str,
        sep: &'static str,
        named: bool,
        form: bool,
        reserved: bool,
    ) -> Operator {
        Operator {
            first,
            sep,
            named,
            form,
            reserved,
        }
    }

    const SIMPLE: Operator = Operator::new("", ",", false, false, false);

    /// The operator for an expression's first character, `Ok(None)` when that
    /// character starts a variable name, `Err` for the reserved operators.
    fn from_char(c: char) -> Result<Option<Operator>, ()> {
        Ok(Some(match c {
            '+' => Operator::new("", ",", false, false, true),
            '#' => Operator::new("#", ",", false, false, true),
            '.' => Operator::new(".", ".", false, false, false),
            '/' => Operator::new("/", "/", false, false, false),
            ';' => Operator::new(";", ";", true, false, false),
            '?' => Operator::new("?", "&", true, true, false),
            '&' => Operator::new("&", "&", true, true, false),
            '=' | ',' | '!' | '@' | '|' => return Err(()),
            _ => return Ok(None),
        }))
    }

    fn value_char(self) -> &'static str {
        if self.reserved {
            RESERVED_CHAR
        } else {
            UNRESERVED_CHAR
        }
    }

    fn prefix_unit(self) -> &'static str {
        if self.reserved {
            RESERVED_UNIT
        } else {
            UNRESERVED_UNIT
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Modifier {
    None,
    Explode,
    Prefix(u16),
}

/// Builds the anchored pattern for `template`, or `None` when it is not a
/// template with at least one expression.
fn template_pattern(template: &str) -> Option<String> {
    let mut pattern = String::from("^");
    let mut rest = template;
    let mut has_expression = false;
    while let Some(open) = rest.find(['{', '}']) {
        if rest.as_bytes()[open] == b'}' {
            return None;
        }
        pattern.push_str(&regex::escape(&rest[..open]));
        let body_and_rest = &rest[open + 1..];
        let close = body_and_rest.find(['{', '}'])?;
        if body_and_rest.as_bytes()[close] == b'{' {
            return None;
        }
        pattern.push_str(&expression_pattern(&body_and_rest[..close])?);
        has_expression = true;
        rest = &body_and_rest[close + 1..];
    }
    pattern.push_str(&regex::escape(rest));
    pattern.push('$');
    has_expression.then_some(pattern)
}

/// Pattern for one `{...}` expression body.
fn expression_pattern(body: &str) -> Option<String> {
    let first = body.chars().next()?;
    let (op, list) = match Operator::from_char(first).ok()? {
        Some(op) => (op, &body[first.len_utf8()..]),
        None => (Operator::SIMPLE, body),
    };
    let sep = regex::escape(op.sep);
    // Expanding drops undefined variables and joins the rest with `sep`, so
    // the expression yields any in-order subsequence of its variables.
    // Building that left to right (`(?:G(?:sep r)?|r)`) keeps the pattern
    // linear in the number of variables.
    let mut subsequence: Option<String> = None;
    for varspec in list.split(',') {
        let (name, modifier) = parse_varspec(varspec)?;
        let var = variable_pattern(op, name, modifier);
        subsequence = Some(match subsequence {
            None => var,
            Some(before) => format!("(?:{before}(?:{sep}{var})?|{var})"),
        });
    }
    let first = regex::escape(op.first);
    Some(format!("(?:{first}{})?", subsequence?))
}

fn parse_varspec(varspec: &str) -> Option<(&str, Modifier)> {
    let (name, modifier) = if let Some(name) = varspec.strip_suffix('*') {
        (name, Modifier::Explode)
    } else if let Some((name, length)) = varspec.split_once(':') {
        let valid = (1..=4).contains(&length.len())
            && length.bytes().all(|b| b.is_ascii_digit())
            && !length.starts_with('0');
        if !valid {
            return None;
        }
        (name, Modifier::Prefix(length.parse().ok()?))
    } else {
        (varspec, Modifier::None)
    };
    valid_varname(name).then_some((name, modifier))
}

/// `varname = varchar *( ["."] varchar )`, `varchar = ALPHA / DIGIT / "_" /
/// pct-encoded`.
fn valid_varname(name: &str) -> bool {
    let bytes = name.as_bytes();
    let mut i = 0;
    let mut after_varchar = false;
    while i < bytes.len() {
        match bytes[i] {
            b if b.is_ascii_alphanumeric() || b == b'_' => i += 1,
            b'%' if bytes.len() > i + 2
                && bytes[i + 1].is_ascii_hexdigit()
                && bytes[i + 2].is_ascii_hexdigit() =>
            {
                i += 3
            }
            b'.' if after_varchar => {
                after_varchar = false;
                i += 1;
                continue;
            }
            _ => return false,
        }
        after_varchar = true;
    }
    after_varchar
}

/// Pattern for the expansion of one defined variable (without the leading
/// `first`/`sep`).
fn variable_pattern(op: Operator, name: &str, modifier: Modifier) -> String {
    let name = regex::escape(name);
    let char = op.value_char();
    match modifier {
        Modifier::Prefix(length) => {
            let unit = op.prefix_unit();
            // Counted repetition is unrolled when compiled, so long prefixes
            // would blow the size limit; they are rare enough to accept any
            // length instead.
            let (any, some) = if length <= MAX_COUNTED_PREFIX {
                (format!("{{0,{length}}}"), format!("{{1,{length}}}"))
            } else {
                ("*".to_owned(), "+".to_owned())
            };
            match (op.named, op.form) {
                (false, _) => format!("{unit}{any}"),
                // `;` writes a bare name for an empty value.
                (true, false) => format!("{name}(?:={unit}{some})?"),
                (true, true) => format!("{name}={unit}{any}"),
            }
        }
        Modifier::None => {
            // A string, or list members / key-value pairs joined with `,`.
            let value = format!("(?:{char}|,)*");
            match (op.named, op.form) {
                (false, _) => value,
                (true, false) => format!("{name}(?:={value})?"),
                (true, true) => format!("{name}={value}"),
            }
        }
        Modifier::Explode => {
            let sep = regex::escape(op.sep);
            let item = format!("{char}*");
            if op.named {
                // List members repeat the variable name; associative
                // arrays use their keys instead, which covers that case.
                let member = if op.form {
                    format!("{item}={item}")
                } else {
                    format!("{item}(?:={item})?")
                };
                format!("{member}(?:{sep}{member})*")
            } else {
                let pair = format!("{item}={item}");
                format!("(?:{item}(?:{sep}{item})*|{pair}(?:{sep}{pair})*)")
            }
        }
    }
}

/// A bounded, thread-safe cache of compiled selectors keyed by the selector
/// string, so each template is compiled once and shared by all subscribers
/// and publishers.
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
    index: HashMap<Arc<str>, usize>,
    slots: Vec<CacheSlot>,
    hand: usize,
}

struct CacheSlot {
    key: Arc<str>,
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

    /// Returns the compiled selector, compiling and caching it on first use.
    pub fn get(&self, selector: &str) -> Arc<Selector> {
        {
            let inner = self.inner.read();
            if let Some(&slot) = inner.index.get(selector) {
                let slot = &inner.slots[slot];
                // Checking first avoids bouncing the cache line between
                // cores when a popular entry is already marked.
                if !slot.referenced.load(Ordering::Relaxed) {
                    slot.referenced.store(true, Ordering::Relaxed);
                }
                return Arc::clone(&slot.selector);
            }
        }
        // Compiling outside the lock keeps a slow template from stalling
        // every other lookup.
        let compiled = Arc::new(Selector::parse(selector));
        if self.capacity == 0 {
            return compiled;
        }
        let mut guard = self.inner.write();
        let inner = &mut *guard;
        // Another thread may have inserted it meanwhile; returning its copy
        // keeps one shared instance per selector string.
        if let Some(&slot) = inner.index.get(selector) {
            return Arc::clone(&inner.slots[slot].selector);
        }
        let key: Arc<str> = Arc::from(selector);
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
        compiled
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn matches(selector: &str, topic: &str) -> bool {
        Selector::parse(selector).matches(topic)
    }

    fn is_template(selector: &str) -> bool {
        matches!(Selector::parse(selector), Selector::Template(_))
    }

    #[test]
    fn any_matches_everything() {
        let any = Selector::parse("*");
        assert!(matches!(any, Selector::Any));
        assert!(any.matches(""));
        assert!(any.matches("https://example.com/books/1"));
        assert_eq!(any.as_exact(), None);
    }

    #[test]
    fn exact_is_byte_for_byte() {
        let exact = Selector::parse("https://example.com/books/1");
        assert_eq!(exact.as_exact(), Some("https://example.com/books/1"));
        assert!(exact.matches("https://example.com/books/1"));
        assert!(!exact.matches("https://example.com/books/1/"));
        assert!(!exact.matches("HTTPS://example.com/books/1"));
        assert!(!exact.matches("https://example.com/books/%31"));
        assert!(!Selector::parse("**").matches("anything"));
    }

    #[test]
    fn mercure_spec_examples() {
        assert!(matches(
            "https://example.com/books/{id}",
            "https://example.com/books/1"
        ));
        assert!(!matches(
            "https://example.com/books/{id}",
            "https://example.com/books/1/reviews"
        ));
        assert!(!matches(
            "https://example.com/{path}",
            "https://example.com/a/b"
        ));
        assert!(matches(
            "https://example.com/{+path}",
            "https://example.com/a/b"
        ));
    }

    #[test]
    fn template_matches_its_own_string() {
        let selector = "https://example.com/books/{id}";
        assert!(matches(selector, selector));
        assert_eq!(Selector::parse(selector).as_exact(), None);
    }

    #[test]
    fn simple_expansion() {
        let t = "https://example.com/books/{id}";
        assert!(matches(t, "https://example.com/books/a-b.c_d~e"));
        assert!(matches(t, "https://example.com/books/hello%20world"));
        assert!(matches(t, "https://example.com/books/red,green"));
        // Empty and undefined values are valid expansions.
        assert!(matches(t, "https://example.com/books/"));
        assert!(!matches(t, "https://example.com/books"));
        for bad in ["1?x", "1#f", "1/", "a b", "100%", "%zz", "a=b", "a:b"] {
            assert!(
                !matches(t, &format!("https://example.com/books/{bad}")),
                "{bad}"
            );
        }
    }

    #[test]
    fn non_ascii_values_match_like_their_encoding() {
        assert!(matches("/livres/{id}", "/livres/été"));
        assert!(matches("/livres/{id}", "/livres/%C3%A9t%c3%a9"));
        assert!(matches("/livres/{id:3}", "/livres/été"));
        assert!(!matches("/livres/{id:2}", "/livres/été"));
    }

    #[test]
    fn reserved_expansion() {
        let t = "https://example.com/{+path}";
        assert!(matches(t, "https://example.com/a/b?c=d&e#f"));
        assert!(matches(t, "https://example.com/"));
        assert!(matches(t, "https://example.com/%2F:@!$'()*+,;="));
        assert!(!matches(t, "https://example.com/a b"));
        assert!(!matches(t, "https://example.com/100%"));
        assert!(matches("{+x,y}/end", "a/b,c/d/end"));
    }

    #[test]
    fn fragment_expansion() {
        let t = "/page{#section}";
        assert!(matches(t, "/page"));
        assert!(matches(t, "/page#"));
        assert!(matches(t, "/page#intro/part?x"));
        assert!(!matches(t, "/pagex"));
        assert!(!matches(t, "/page/intro"));
        assert!(matches("/page{#a,b}", "/page#x,y"));
    }

    #[test]
    fn label_expansion() {
        let t = "/file{.ext}";
        assert!(matches(t, "/file"));
        assert!(matches(t, "/file.json"));
        assert!(matches(t, "/file.tar.gz"));
        assert!(!matches(t, "/file/json"));
        assert!(!matches(t, "/filejson"));
        assert!(matches("www{.dom*}", "www.example.com"));
        assert!(matches("X{.x,y}", "X.1024.768"));
    }

    #[test]
    fn path_segment_expansion() {
        let t = "https://example.com{/path*}";
        for ok in ["", "/a", "/a/b/c", "/a//b", "/k=v/l=w"] {
            assert!(matches(t, &format!("https://example.com{ok}")), "{ok}");
        }
        assert!(!matches(t, "https://example.coma"));
        assert!(!matches(t, "https://example.com/a?b"));
        let t = "https://example.com/{/path*}";
        assert!(matches(t, "https://example.com//a"));
        assert!(matches("{/x}", "/a"));
        assert!(!matches("{/x}", "/a/b"));
        assert!(matches("{/x,y}", "/a/b"));
        assert!(!matches("{/x,y}", "/a/b/c"));
    }

    #[test]
    fn path_style_parameters() {
        let t = "/map{;x,y}";
        for ok in ["", ";x=1;y=2", ";x", ";y", ";x=1", ";x=1,2;y"] {
            assert!(matches(t, &format!("/map{ok}")), "{ok}");
        }
        for bad in [";y=2;x=1", ";z=1", ";x=1;x=2", "x=1", ";x=1/"] {
            assert!(!matches(t, &format!("/map{bad}")), "{bad}");
        }
        assert!(matches("/m{;keys*}", "/m;a=1;b;c=2"));
    }

    #[test]
    fn form_query_expansion() {
        let t = "https://example.com/search{?q,lang}";
        for ok in ["", "?q=1", "?lang=en", "?q=1&lang=en", "?q=", "?q=a,b"] {
            assert!(
                matches(t, &format!("https://example.com/search{ok}")),
                "{ok}"
            );
        }
        for bad in [
            "?lang=en&q=1",
            "?q",
            "?x=1",
            "?q=1&lang=en&x=2",
            "?",
            "&q=1",
            "?q=1?",
        ] {
            assert!(
                !matches(t, &format!("https://example.com/search{bad}")),
                "{bad}"
            );
        }
    }

    #[test]
    fn form_query_continuation() {
        let t = "/search?fixed=yes{&x,y}";
        assert!(matches(t, "/search?fixed=yes"));
        assert!(matches(t, "/search?fixed=yes&x=1&y=2"));
        assert!(matches(t, "/search?fixed=yes&y=2"));
        assert!(!matches(t, "/search?fixed=yes?x=1"));
        assert!(!matches(t, "/search?fixed=yes&z=1"));
    }

    #[test]
    fn explode_modifier() {
        assert!(matches("{?list*}", "?list=red&list=green"));
        assert!(matches("{?keys*}", "?semi=%3B&dot=.&comma=%2C"));
        assert!(!matches("{?keys*}", "?semi"));
        assert!(matches("{&keys*}", "&a=&b=2"));
        assert!(matches("{keys*}", "semi=%3B,dot=.,comma=%2C"));
        assert!(matches("{list*}", "red,green,blue"));
        assert!(!matches("{keys*}", "a=b=c"));
        assert!(!matches("{list}", "a=b"));
        assert!(matches("{+keys*}", "semi=;,dot=."));
        assert!(matches("{#list*}", "#red,green"));
    }

    #[test]
    fn prefix_modifier() {
        let t = "/{id:3}";
        for ok in ["/", "/a", "/abc", "/%20bc", "/%E2%82%AC12"] {
            assert!(matches(t, ok), "{ok}");
        }
        for bad in ["/abcd", "/ab/", "/%20%20%20%20%20"] {
            assert!(!matches(t, bad), "{bad}");
        }
        assert!(matches("{;id:2}", ";id=ab"));
        assert!(matches("{;id:2}", ";id"));
        assert!(!matches("{;id:2}", ";id="));
        assert!(!matches("{;id:2}", ";id=abc"));
        assert!(matches("{?id:2}", "?id="));
        assert!(!matches("{?id:2}", "?id=abc"));
        assert!(matches("{+path:6}/here", "/foo/b/here"));
        assert!(!matches("{+path:6}/here", "/foo/ba/here"));
        assert!(matches("{x:255}", &"a".repeat(255)));
        assert!(!matches("{x:255}", &"a".repeat(256)));
        assert!(matches("{x:9999}", &"a".repeat(10_000)));
    }

    #[test]
    fn multiple_variables() {
        let t = "map?{x,y}";
        assert!(matches(t, "map?1024,768"));
        assert!(matches(t, "map?1024"));
        assert!(matches(t, "map?"));
        assert!(!matches(t, "map?1024/768"));
        assert!(matches("{x}{y}", "ab"));
        assert!(matches("{/a:1,b,c*}", "/x/yy/z/z"));
        assert!(!matches("{/a:1,b}", "/xx/yy/z"));
    }

    #[test]
    fn literal_metacharacters_are_literal() {
        let t = "https://example.com/a.b?c+(d)|[e]^$\\{id}";
        assert!(matches(t, "https://example.com/a.b?c+(d)|[e]^$\\1"));
        for bad in [
            "https://example.com/aXb?c+(d)|[e]^$\\1",
            "https://example.com/a.c+(d)|[e]^$\\1",
            "https://example.com/a.b?cc(d)|[e]^$\\1",
            "https://example.com/a.b?c+d|[e]^$\\1",
        ] {
            assert!(!matches(t, bad), "{bad}");
        }
        assert!(matches("/{x.y}", "/v"));
        assert!(matches("{?x.y}", "?x.y=1"));
        assert!(!matches("{?x.y}", "?xzy=1"));
    }

    #[test]
    fn invalid_templates_are_exact() {
        for invalid in [
            "https://example.com/{id",
            "https://example.com/id}",
            "https://example.com/{}",
            "{a{b}}",
            "{=x}",
            "{!x}",
            "{a b}",
            "{x:0}",
            "{x:10000}",
            "{x:}",
            "{x:3*}",
            "{x*:3}",
            "{.}",
            "{x,}",
            "{,x}",
            "{x..y}",
            "{.x.}",
            "{%4}",
            "{é}",
        ] {
            let selector = Selector::parse(invalid);
            assert_eq!(selector.as_exact(), Some(invalid), "{invalid}");
            assert!(selector.matches(invalid));
        }
        assert!(!matches("https://example.com/{id", "https://example.com/1"));
        assert!(is_template("{%41b_c.d}"));
    }

    #[test]
    fn oversized_template_is_exact() {
        let vars: Vec<String> = (0..400).map(|i| format!("v{i}")).collect();
        let template = format!("{{?{}}}", vars.join(","));
        assert_eq!(
            Selector::parse(&template).as_exact(),
            Some(template.as_str())
        );
    }

    #[test]
    fn cache_shares_and_evicts_with_clock() {
        let cache = SelectorCache::new(2);
        assert!(cache.is_empty());
        let a = cache.get("/a/{x}");
        let b = cache.get("/b");
        assert!(Arc::ptr_eq(&a, &cache.get("/a/{x}")));
        assert_eq!(cache.len(), 2);
        // `/a/{x}` was hit, so the sweep gives it a second chance and
        // evicts `/b`.
        let c = cache.get("/c");
        assert_eq!(cache.len(), 2);
        assert!(Arc::ptr_eq(&a, &cache.get("/a/{x}")));
        assert!(Arc::ptr_eq(&c, &cache.get("/c")));
        assert!(!Arc::ptr_eq(&b, &cache.get("/b")));
        assert_eq!(cache.len(), 2);
        assert!(a.matches("/a/1"));
    }

    #[test]
    fn zero_capacity_cache_still_compiles() {
        let cache = SelectorCache::new(0);
        assert!(cache.get("/a/{x}").matches("/a/1"));
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn concurrent_gets_share_one_instance() {
        let cache = SelectorCache::new(64);
        let results: Vec<Vec<Arc<Selector>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    scope.spawn(|| {
                        (0..32)
                            .map(|i| cache.get(&format!("/t/{i}/{{x}}")))
                            .collect()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (x, y) in results[0].iter().zip(&results[1]) {
            assert!(Arc::ptr_eq(x, y));
        }
        assert_eq!(cache.len(), 32);
    }

    /// A variable value as RFC 6570 defines them.
    #[derive(Debug, Clone)]
    enum Value {
        Undefined,
        Str(String),
        List(Vec<String>),
        Assoc(Vec<(String, String)>),
    }

    #[derive(Debug, Clone)]
    struct VarSpec {
        name: String,
        modifier: Modifier,
        value: Value,
    }

    #[derive(Debug, Clone)]
    enum Part {
        Literal(String),
        Expression(&'static str, Vec<VarSpec>),
    }

    fn modifier_suffix(modifier: Modifier) -> String {
        match modifier {
            Modifier::None => String::new(),
            Modifier::Explode => "*".to_owned(),
            Modifier::Prefix(n) => format!(":{n}"),
        }
    }

    /// RFC 6570 section 3.2.1 encoding: unreserved always passes, `+`/`#`
    /// also pass reserved characters and existing pct-encoded triplets.
    fn encode(value: &str, allow_reserved: bool) -> String {
        const RESERVED: &str = ":/?#[]@!$&'()*+,;=";
        let mut out = String::new();
        let chars: Vec<char> = value.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            let unreserved = c.is_ascii_alphanumeric() || "-._~".contains(c);
            if unreserved || (allow_reserved && RESERVED.contains(c)) {
                out.push(c);
            } else if allow_reserved
                && c == '%'
                && chars.len() > i + 2
                && chars[i + 1].is_ascii_hexdigit()
                && chars[i + 2].is_ascii_hexdigit()
            {
                out.extend(&chars[i..i + 3]);
                i += 2;
            } else {
                let mut buf = [0; 4];
                for byte in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("%{byte:02X}"));
                }
            }
            i += 1;
        }
        out
    }

    /// RFC 6570 appendix A expansion of one expression.
    fn expand_expression(op: &str, vars: &[VarSpec]) -> String {
        let (first, sep, named, ifemp, reserved) = match op {
            "" => ("", ",", false, "", false),
            "+" => ("", ",", false, "", true),
            "#" => ("#", ",", false, "", true),
            "." => (".", ".", false, "", false),
            "/" => ("/", "/", false, "", false),
            ";" => (";", ";", true, "", false),
            "?" => ("?", "&", true, "=", false),
            "&" => ("&", "&", true, "=", false),
            _ => unreachable!("generated operators only"),
        };
        let enc = |s: &str| encode(s, reserved);
        let mut out = String::new();
        let mut any_defined = false;
        for var in vars {
            let defined = match &var.value {
                Value::Undefined => false,
                Value::Str(_) => true,
                Value::List(l) => !l.is_empty(),
                Value::Assoc(a) => !a.is_empty(),
            };
            if !defined {
                continue;
            }
            out.push_str(if any_defined { sep } else { first });
            any_defined = true;
            let name = &var.name;
            match (&var.value, var.modifier) {
                (Value::Str(s), modifier) => {
                    if named {
                        out.push_str(name);
                        if s.is_empty() {
                            out.push_str(ifemp);
                            continue;
                        }
                        out.push('=');
                    }
                    let s: String = match modifier {
                        Modifier::Prefix(n) => s.chars().take(n.into()).collect(),
                        _ => s.clone(),
                    };
                    out.push_str(&enc(&s));
                }
                (Value::List(list), Modifier::Explode) => {
                    let members: Vec<String> = list
                        .iter()
                        .map(|m| match (named, m.is_empty()) {
                            (false, _) => enc(m),
                            (true, true) => format!("{name}{ifemp}"),
                            (true, false) => format!("{name}={}", enc(m)),
                        })
                        .collect();
                    out.push_str(&members.join(sep));
                }
                (Value::Assoc(pairs), Modifier::Explode) => {
                    let members: Vec<String> = pairs
                        .iter()
                        .map(|(k, v)| match (named, v.is_empty()) {
                            (true, true) => format!("{}{ifemp}", enc(k)),
                            _ => format!("{}={}", enc(k), enc(v)),
                        })
                        .collect();
                    out.push_str(&members.join(sep));
                }
                (composite, _) => {
                    if named {
                        out.push_str(name);
                        out.push('=');
                    }
                    let members: Vec<String> = match composite {
                        Value::List(list) => list.iter().map(|m| enc(m)).collect(),
                        Value::Assoc(pairs) => {
                            pairs.iter().flat_map(|(k, v)| [enc(k), enc(v)]).collect()
                        }
                        _ => unreachable!("strings handled above"),
                    };
                    out.push_str(&members.join(","));
                }
            }
        }
        out
    }

    fn render(parts: &[Part]) -> (String, String) {
        let mut template = String::new();
        let mut expansion = String::new();
        for part in parts {
            match part {
                Part::Literal(literal) => {
                    template.push_str(literal);
                    expansion.push_str(literal);
                }
                Part::Expression(op, vars) => {
                    let specs: Vec<String> = vars
                        .iter()
                        .map(|v| format!("{}{}", v.name, modifier_suffix(v.modifier)))
                        .collect();
                    template.push_str(&format!("{{{op}{}}}", specs.join(",")));
                    expansion.push_str(&expand_expression(op, vars));
                }
            }
        }
        (template, expansion)
    }

    #[test]
    fn rfc_examples_expand_and_match() {
        let s = |v: &str| Value::Str(v.to_owned());
        let list = Value::List(vec!["red".into(), "green".into(), "blue".into()]);
        let keys = Value::Assoc(vec![
            ("semi".into(), ";".into()),
            ("dot".into(), ".".into()),
            ("comma".into(), ",".into()),
        ]);
        let var = |name: &str, modifier, value: &Value| VarSpec {
            name: name.to_owned(),
            modifier,
            value: value.clone(),
        };
        let none = Modifier::None;
        let cases = [
            (
                "",
                vec![
                    var("x", none, &s("1024")),
                    var("hello", none, &s("Hello World!")),
                    var("y", none, &s("768")),
                ],
                "1024,Hello%20World%21,768",
            ),
            (
                "+",
                vec![var("path", Modifier::Prefix(6), &s("/foo/bar"))],
                "/foo/b",
            ),
            ("#", vec![var("keys", none, &keys)], "#semi,;,dot,.,comma,,"),
            (
                "/",
                vec![var("list", Modifier::Explode, &list)],
                "/red/green/blue",
            ),
            (
                ";",
                vec![
                    var("x", none, &s("1024")),
                    var("empty", none, &s("")),
                    var("undef", none, &Value::Undefined),
                ],
                ";x=1024;empty",
            ),
            (
                ";",
                vec![var("keys", Modifier::Explode, &keys)],
                ";semi=%3B;dot=.;comma=%2C",
            ),
            (
                "?",
                vec![var("x", none, &s("1024")), var("empty", none, &s(""))],
                "?x=1024&empty=",
            ),
            (
                "?",
                vec![var("list", Modifier::Explode, &list)],
                "?list=red&list=green&list=blue",
            ),
            ("&", vec![var("list", none, &list)], "&list=red,green,blue"),
            (
                ".",
                vec![var("keys", Modifier::Explode, &keys)],
                ".semi=%3B.dot=..comma=%2C",
            ),
        ];
        for (op, vars, expected) in cases {
            let parts = [Part::Expression(op, vars)];
            let (template, expansion) = render(&parts);
            assert_eq!(expansion, expected, "{template}");
            assert!(matches(&template, &expansion), "{template}");
        }
    }

    fn string_value() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => "[A-Za-z0-9._~-]{0,6}",
            1 => ".{0,4}",
            1 => "[%:/?#=,&;A-F0-9]{0,6}",
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Undefined),
            string_value().prop_map(Value::Str),
            prop::collection::vec(string_value(), 0..4).prop_map(Value::List),
            prop::collection::vec((string_value(), string_value()), 0..4).prop_map(Value::Assoc),
        ]
    }

    fn var_spec() -> impl Strategy<Value = (Modifier, Value)> {
        prop_oneof![
            (
                prop_oneof![Just(Modifier::None), Just(Modifier::Explode)],
                value()
            ),
            (
                (1u16..6).prop_map(Modifier::Prefix),
                prop_oneof![Just(Value::Undefined), string_value().prop_map(Value::Str)]
            ),
        ]
    }

    fn parts() -> impl Strategy<Value = Vec<Part>> {
        let literal = r"[-a-zA-Z0-9:/?#.&=+;,*%()\[\]|^$\\ ]{0,5}".prop_map(Part::Literal);
        let expression = (
            prop::sample::select(vec!["", "+", "#", ".", "/", ";", "?", "&"]),
            prop::collection::vec(
                (
                    prop::sample::select(vec!["v", "x.y", "id_", "%41a"]),
                    var_spec(),
                ),
                1..4,
            ),
        )
            .prop_map(|(op, specs)| {
                let vars = specs
                    .into_iter()
                    .enumerate()
                    .map(|(i, (base, (modifier, value)))| VarSpec {
                        name: format!("{base}{i}"),
                        modifier,
                        value,
                    })
                    .collect();
                Part::Expression(op, vars)
            });
        prop::collection::vec(prop_oneof![literal, expression], 1..5)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn template_matches_its_expansions(parts in parts()) {
            let (template, expansion) = render(&parts);
            let selector = Selector::parse(&template);
            if parts.iter().any(|p| matches!(p, Part::Expression(..))) {
                prop_assert!(matches!(selector, Selector::Template(_)), "{template}");
            }
            prop_assert!(
                selector.matches(&expansion),
                "{template} should match {expansion}"
            );
        }

        #[test]
        fn exact_selector_matches_only_itself(
            selector in "[^{]{0,12}",
            other in "[^{]{0,12}",
        ) {
            prop_assume!(selector != "*");
            let parsed = Selector::parse(&selector);
            prop_assert_eq!(parsed.as_exact(), Some(selector.as_str()));
            prop_assert!(parsed.matches(&selector));
            prop_assert_eq!(parsed.matches(&other), selector == other);
        }

        #[test]
        fn cache_returns_the_same_arc(
            selectors in prop::collection::vec(".{0,8}", 1..20),
        ) {
            let cache = SelectorCache::new(64);
            let first: Vec<_> = selectors.iter().map(|s| cache.get(s)).collect();
            for (s, arc) in selectors.iter().zip(&first) {
                prop_assert!(Arc::ptr_eq(arc, &cache.get(s)));
            }
        }
    }
}
