//! The RFC 6570 template compiler: a template becomes an anchored regular
//! expression accepting the set of its possible expansions, with the
//! leniencies the selector module documents.

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

    /// The template's literal text before its first expression: every topic
    /// it matches starts with it, byte for byte (literals are matched without
    /// normalisation, and the template string itself starts with it too), so
    /// the fan-out can index templates by it.
    pub fn literal_prefix(&self) -> &str {
        // A compiled template has an expression, and its first brace opens it.
        let end = self.template.find('{').unwrap_or(0);
        &self.template[..end]
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

/// A variable's modifier: none, explode (`*`) or prefix (`:n`).
#[derive(Debug, Clone, Copy)]
pub(super) enum Modifier {
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
