//! Mercure 0.x topic selectors (`proto::selector`): `*`, RFC 6570 URI
//! templates, exact strings; and the 1.0 `exact` matcher.
//!
//! Input: a selector on the first line, topics to match on the next ones.
//! Properties:
//!
//! * compiling (through the shared `SelectorCache`, as the hub does) never
//!   fails nor panics; it gives "every topic" exactly for `*`, and an exact
//!   selector matches its text and nothing else;
//! * a selector matches its own text (Mercure matches a selector identical
//!   to the topic, whatever its syntax);
//! * a 1.0 `exact` matcher matches its text and nothing else (`*` aside);
//! * a URI template matches its expansion with every variable undefined
//!   (its literal parts alone) and the one with the first variable of every
//!   expression set to `x` (`/books/{id}{?page,size}` matches `/books/` and
//!   `/books/x?page=x`): templates are read as the selector module says.

use ssehub::proto::selector::{MatchType, Matcher, Selector, SelectorCache};

use super::input::lines;

/// Most topics tried on one selector.
const TOPICS: usize = 16;

/// Checks one input; see the module documentation.
pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (selector, topics) = lines(&text, TOPICS);
    let base = super::hub_url();
    let cache = SelectorCache::new(4);
    let compiled = cache
        .get(&Matcher::selector(selector), &base)
        .expect("a 0.x selector always compiles");
    let exact = Selector::compile(&Matcher::new(MatchType::Exact, selector), &base)
        .expect("an exact matcher always compiles");
    assert_eq!(matches!(*compiled, Selector::Any), selector == "*");
    if let Selector::Exact(text) = &*compiled {
        assert_eq!(text, selector);
    }
    assert!(compiled.matches(selector), "{selector:?} misses itself");
    let expansions = expansions(&compiled, selector);
    for expansion in &expansions {
        assert!(
            compiled.matches(expansion),
            "template {selector:?} misses its expansion {expansion:?}"
        );
    }
    let tried = topics
        .iter()
        .copied()
        .chain(expansions.iter().map(String::as_str));
    for topic in tried {
        let matches = compiled.matches(topic);
        if compiled.as_exact().is_some() {
            assert_eq!(matches, topic == selector, "{selector:?} on {topic:?}");
        }
        assert_eq!(
            exact.matches(topic),
            selector == "*" || topic == selector,
            "exact {selector:?} on {topic:?}"
        );
    }
}

/// Two expansions of `template` when it compiled as a template (none
/// otherwise): every variable undefined, and the first variable of each
/// expression set to `x`.
fn expansions(selector: &Selector, template: &str) -> Vec<String> {
    match selector {
        Selector::Template(_) => vec![expand(template, false), expand(template, true)],
        _ => Vec::new(),
    }
}

/// Expands a valid template (every `{` closed by a `}` before the next `{`).
fn expand(template: &str, defined: bool) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = open + rest[open..].find('}').expect("a valid template");
        if defined {
            out.push_str(&expand_first(&rest[open + 1..close]));
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// An expression's expansion with its first variable `x` and the others
/// undefined (RFC 6570 section 3.2: a one-character string is the same
/// whatever its modifier).
fn expand_first(expression: &str) -> String {
    let (op, list) = match expression.chars().next() {
        Some(op @ ('+' | '#' | '.' | '/' | ';' | '?' | '&')) => (op, &expression[1..]),
        _ => (' ', expression),
    };
    let varspec = list.split(',').next().unwrap_or_default();
    let name = varspec.trim_end_matches('*');
    let name = name.split_once(':').map_or(name, |(name, _)| name);
    match op {
        ' ' | '+' => "x".to_owned(),
        '#' | '.' | '/' => format!("{op}x"),
        _ => format!("{op}{name}=x"),
    }
}
