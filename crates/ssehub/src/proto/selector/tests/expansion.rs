//! A reference RFC 6570 expander, and proptest strategies generating
//! templates with variable values, so tests can check that a template
//! selector matches what the template expands to.

use proptest::prelude::*;

use crate::proto::selector::template::Modifier;

/// A variable value as RFC 6570 defines them.
#[derive(Debug, Clone)]
pub(super) enum Value {
    Undefined,
    Str(String),
    List(Vec<String>),
    Assoc(Vec<(String, String)>),
}

/// A variable of an expression: its name, modifier and value.
#[derive(Debug, Clone)]
pub(super) struct VarSpec {
    pub(super) name: String,
    pub(super) modifier: Modifier,
    pub(super) value: Value,
}

/// A piece of a template: a literal, or an expression (operator and variables).
#[derive(Debug, Clone)]
pub(super) enum Part {
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

/// A template made of `parts`, and its expansion.
pub(super) fn render(parts: &[Part]) -> (String, String) {
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

/// Templates of literals and expressions with one to three variables each.
pub(super) fn parts() -> impl Strategy<Value = Vec<Part>> {
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
