use std::sync::Arc;

use proptest::prelude::*;

use self::expansion::{parts, render, Part, Value, VarSpec};
use super::template::Modifier;
use super::*;

mod expansion;

fn matches(selector: &str, topic: &str) -> bool {
    Selector::parse(selector).matches(topic)
}

/// A 0.x selector through the cache.
fn get(cache: &SelectorCache, selector: &str) -> Arc<Selector> {
    cache.get(&Matcher::selector(selector), &base()).unwrap()
}

fn base() -> url::Url {
    url::Url::parse("https://hub.example/.well-known/mercure").unwrap()
}

#[test]
fn the_type_is_part_of_the_cache_key() {
    let cache = SelectorCache::new(16);
    let template = get(&cache, "https://a/{x}");
    let exact = cache
        .get(&Matcher::new(MatchType::Exact, "https://a/{x}"), &base())
        .unwrap();
    assert!(template.matches("https://a/1"));
    assert!(!exact.matches("https://a/1"));
    assert!(exact.matches("https://a/{x}"));
    let pattern = Matcher::new(MatchType::UrlPattern, "/books/:id");
    let here = cache.get(&pattern, &base()).unwrap();
    let elsewhere = url::Url::parse("https://other.example/.well-known/mercure").unwrap();
    let there = cache.get(&pattern, &elsewhere).unwrap();
    assert!(here.matches("https://hub.example/books/1"));
    assert!(!there.matches("https://hub.example/books/1"));
    assert!(there.matches("/books/1"));
    for kind in [MatchType::Selector, MatchType::Exact, MatchType::UrlPattern] {
        let any = cache.get(&Matcher::new(kind, "*"), &base()).unwrap();
        assert!(matches!(*any, Selector::Any), "{kind:?}");
    }
    let bad = Matcher::new(MatchType::UrlPattern, "https://a/(");
    assert!(cache.get(&bad, &base()).is_err());
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
fn literal_prefix_ends_at_the_first_expression() {
    for (template, prefix) in [
        ("https://a/{x}/b/{y}", "https://a/"),
        ("{+all}", ""),
        ("https://É/%41{?q}", "https://É/%41"),
    ] {
        match Selector::parse(template) {
            Selector::Template(matcher) => assert_eq!(matcher.literal_prefix(), prefix),
            other => panic!("{template} is a template, not {other:?}"),
        }
    }
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
    let a = get(&cache, "/a/{x}");
    let b = get(&cache, "/b");
    assert!(Arc::ptr_eq(&a, &get(&cache, "/a/{x}")));
    assert_eq!(cache.len(), 2);
    // `/a/{x}` was hit, so the sweep gives it a second chance and
    // evicts `/b`.
    let c = get(&cache, "/c");
    assert_eq!(cache.len(), 2);
    assert!(Arc::ptr_eq(&a, &get(&cache, "/a/{x}")));
    assert!(Arc::ptr_eq(&c, &get(&cache, "/c")));
    assert!(!Arc::ptr_eq(&b, &get(&cache, "/b")));
    assert_eq!(cache.len(), 2);
    assert!(a.matches("/a/1"));
}

#[test]
fn zero_capacity_cache_still_compiles() {
    let cache = SelectorCache::new(0);
    assert!(get(&cache, "/a/{x}").matches("/a/1"));
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
                        .map(|i| get(&cache, &format!("/t/{i}/{{x}}")))
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

    /// What the fan-out's index relies on: a template matches only topics
    /// starting with its literal prefix.
    #[test]
    fn expansions_start_with_the_literal_prefix(parts in parts(), topic in ".{0,12}") {
        let (template, expansion) = render(&parts);
        if let Selector::Template(matcher) = Selector::parse(&template) {
            let prefix = matcher.literal_prefix();
            prop_assert!(
                template.starts_with(prefix) && !prefix.contains('{'),
                "{} has no expression before {}", prefix, template
            );
            prop_assert!(expansion.starts_with(prefix), "{template}: {expansion}");
            let elsewhere = format!("{topic}{expansion}");
            if matcher.matches(&elsewhere) {
                prop_assert!(elsewhere.starts_with(prefix), "{template}: {elsewhere}");
            }
        }
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
        let first: Vec<_> = selectors.iter().map(|s| get(&cache, s)).collect();
        for (s, arc) in selectors.iter().zip(&first) {
            prop_assert!(Arc::ptr_eq(arc, &get(&cache, s)));
        }
    }
}
