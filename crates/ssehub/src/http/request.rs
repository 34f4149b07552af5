//! Reading what a request carries: its query pairs (and a form body's).

use percent_encoding::percent_decode;

/// Decoded `application/x-www-form-urlencoded` pairs, in order, repeated
/// keys kept.
#[derive(Debug, Default)]
pub(super) struct Query(pub Vec<(String, String)>);

impl Query {
    /// Parses a raw query string; invalid UTF-8 becomes U+FFFD.
    pub(super) fn parse(raw: Option<&str>) -> Query {
        Query(
            form_urlencoded::parse(raw.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// Parses form-encoded bytes (a query string or a body) strictly: a
    /// name or value that is not UTF-8 once decoded is an error naming it.
    pub(super) fn parse_strict(raw: &[u8]) -> Result<Query, String> {
        let decode = |part: &[u8]| -> Result<String, String> {
            let spaced: Vec<u8> = part
                .iter()
                .map(|&b| if b == b'+' { b' ' } else { b })
                .collect();
            let bytes: Vec<u8> = percent_decode(&spaced).collect();
            String::from_utf8(bytes).map_err(|_| {
                format!(
                    "{:?} is not UTF-8 once percent-decoded",
                    String::from_utf8_lossy(part)
                )
            })
        };
        raw.split(|&b| b == b'&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (name, value) = match pair.iter().position(|&b| b == b'=') {
                    Some(i) => (&pair[..i], &pair[i + 1..]),
                    None => (pair, &b""[..]),
                };
                Ok((decode(name)?, decode(value)?))
            })
            .collect::<Result<_, _>>()
            .map(Query)
    }

    /// Adds the pairs of `other` after these.
    pub(super) fn extend(&mut self, other: Query) {
        self.0.extend(other.0);
    }

    /// The first value of `key`.
    pub(super) fn first(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_and_strict_parsing() {
        let q = Query::parse(Some("authorization=q&topic=a&topic=b"));
        assert_eq!(q.first("topic"), Some("a"));
        let q = Query::parse_strict(b"match=a%2Fb+c&flag&&x=%C3%A9").unwrap();
        assert_eq!(q.first("match"), Some("a/b c"));
        assert_eq!(q.first("flag"), Some(""));
        assert_eq!(q.first("x"), Some("é"));
        let err = Query::parse_strict(b"match=%FF").unwrap_err();
        assert!(err.contains("%FF"), "{err}");
        let mut q = Query::parse_strict(b"a=1").unwrap();
        q.extend(Query::parse_strict(b"a=2").unwrap());
        assert_eq!(q.0.len(), 2);
        assert_eq!(q.0[1], ("a".to_string(), "2".to_string()));
    }
}
