//! A request's header fields, as HPACK decodes them, checked against the
//! rules of RFC 9113 (8.2, 8.3) and turned into an [`http::Request`].
//! A request that breaks one is malformed: a stream error
//! (`PROTOCOL_ERROR`), the connection serving on.

use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, COOKIE};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, Method, Request, Uri, Version};

/// Why a request is malformed.
pub(super) type Malformed = &'static str;

/// A request's fields, checked as they are decoded.
#[derive(Default)]
pub(super) struct Fields {
    method: Option<Method>,
    scheme: Option<Scheme>,
    authority: Option<Authority>,
    path: Option<PathAndQuery>,
    headers: HeaderMap,
    /// The `cookie` fields, joined as one (RFC 9113, 8.2.3).
    cookies: Vec<u8>,
    regular: bool,
    error: Option<Malformed>,
}

/// Fields that only HTTP/1.1 connections have (RFC 9113, 8.2.2).
pub(super) const CONNECTION_SPECIFIC: [&str; 5] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

impl Fields {
    /// Adds one decoded field; the first problem is kept for [`Fields::request`].
    pub(super) fn add(&mut self, name: &[u8], value: &[u8]) {
        if self.error.is_none() {
            if let Err(why) = self.try_add(name, value) {
                self.error = Some(why);
            }
        }
    }

    fn try_add(&mut self, name: &[u8], value: &[u8]) -> Result<(), Malformed> {
        if name.iter().any(u8::is_ascii_uppercase) {
            return Err("a field name with uppercase letters");
        }
        if value.first().is_some_and(is_space) || value.last().is_some_and(is_space) {
            return Err("a field value starting or ending with whitespace");
        }
        if let Some(pseudo) = name.strip_prefix(b":") {
            if self.regular {
                return Err("a pseudo-header field after a regular field");
            }
            return self.pseudo(pseudo, value);
        }
        self.regular = true;
        let name = HeaderName::from_bytes(name).map_err(|_| "an invalid field name")?;
        let valid = HeaderValue::from_bytes(value).map_err(|_| "an invalid field value");
        if CONNECTION_SPECIFIC.contains(&name.as_str()) {
            return Err("a connection-specific field");
        }
        if name == http::header::TE && value != b"trailers" {
            return Err("a te field other than \"trailers\"");
        }
        if name == COOKIE {
            valid?;
            if !self.cookies.is_empty() {
                self.cookies.extend_from_slice(b"; ");
            }
            self.cookies.extend_from_slice(value);
            return Ok(());
        }
        self.headers
            .try_append(name, valid?)
            .map_err(|_| "too many header fields")?;
        Ok(())
    }

    fn pseudo(&mut self, name: &[u8], value: &[u8]) -> Result<(), Malformed> {
        fn once<T>(slot: &mut Option<T>, value: Option<T>) -> Result<(), Malformed> {
            if slot.is_some() {
                return Err("a pseudo-header field given twice");
            }
            *slot = Some(value.ok_or("an invalid pseudo-header field value")?);
            Ok(())
        }
        match name {
            b"method" => once(&mut self.method, Method::from_bytes(value).ok()),
            b"scheme" => once(&mut self.scheme, Scheme::try_from(value).ok()),
            // No user information (RFC 9113, 8.3.1).
            b"authority" => once(
                &mut self.authority,
                Authority::try_from(value)
                    .ok()
                    .filter(|a| !a.as_str().contains('@')),
            ),
            b"path" => once(
                &mut self.path,
                PathAndQuery::try_from(value)
                    .ok()
                    .filter(|p| p.as_str().starts_with('/') || p.as_str() == "*"),
            ),
            _ => Err("an unknown pseudo-header field"),
        }
    }

    /// The request, with its declared length (`content-length`) if any;
    /// `ends` when the header block ended the stream.
    pub(super) fn request(self, ends: bool) -> Result<(Request<()>, Option<u64>), Malformed> {
        if let Some(why) = self.error {
            return Err(why);
        }
        let method = self.method.ok_or("no :method")?;
        let host = self.headers.get(http::header::HOST);
        if let (Some(authority), Some(host)) = (&self.authority, host) {
            if host.as_bytes() != authority.as_str().as_bytes() {
                return Err("a host field that differs from :authority");
            }
        }
        let mut uri = Uri::builder();
        if method == Method::CONNECT {
            // The authority is the whole target (RFC 9113, 8.5).
            if self.scheme.is_some() || self.path.is_some() {
                return Err("a CONNECT request with :scheme or :path");
            }
            uri = uri.authority(
                self.authority
                    .ok_or("a CONNECT request without :authority")?,
            );
        } else {
            let scheme = self.scheme.ok_or("no :scheme")?;
            let path = self.path.ok_or("no :path")?;
            if path.as_str() == "*" && method != Method::OPTIONS {
                return Err("a :path of * on a request other than OPTIONS");
            }
            if let Some(authority) = self.authority {
                uri = uri.scheme(scheme).authority(authority);
            }
            uri = uri.path_and_query(path);
        }
        let mut headers = self.headers;
        if !self.cookies.is_empty() {
            let cookies =
                HeaderValue::from_bytes(&self.cookies).map_err(|_| "an invalid cookie")?;
            headers.insert(COOKIE, cookies);
        }
        let length = content_length(&headers)?;
        if ends && length.is_some_and(|n| n > 0) {
            return Err("a content-length above 0 on a request without a body");
        }
        let mut request = Request::new(());
        *request.method_mut() = method;
        *request.uri_mut() = uri.build().map_err(|_| "an invalid request target")?;
        *request.version_mut() = Version::HTTP_2;
        *request.headers_mut() = headers;
        Ok((request, length))
    }
}

/// The `content-length` of a request: one number, or several equal ones.
fn content_length(headers: &HeaderMap) -> Result<Option<u64>, Malformed> {
    let mut length = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        let digits = value.as_bytes();
        let n = (!digits.is_empty() && digits.iter().all(u8::is_ascii_digit))
            .then(|| value.to_str().ok()?.parse::<u64>().ok())
            .flatten()
            .ok_or("an invalid content-length")?;
        if length.is_some_and(|l| l != n) {
            return Err("content-length fields that differ");
        }
        length = Some(n);
    }
    Ok(length)
}

fn is_space(b: &u8) -> bool {
    matches!(b, b' ' | b'\t')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(
        fields: &[(&str, &str)],
        ends: bool,
    ) -> Result<(Request<()>, Option<u64>), Malformed> {
        let mut f = Fields::default();
        for (name, value) in fields {
            f.add(name.as_bytes(), value.as_bytes());
        }
        f.request(ends)
    }

    const GET: [(&str, &str); 4] = [
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", "hub.example"),
        (":path", "/.well-known/mercure?topic=a"),
    ];

    #[test]
    fn a_request_has_its_target_headers_and_joined_cookies() {
        let mut fields = GET.to_vec();
        fields.extend([
            ("cookie", "a=1"),
            ("accept", "text/event-stream"),
            ("cookie", "b=2"),
        ]);
        let (req, length) = request(&fields, true).unwrap();
        assert_eq!(req.method(), Method::GET);
        assert_eq!(req.uri(), "https://hub.example/.well-known/mercure?topic=a");
        assert_eq!(req.version(), Version::HTTP_2);
        assert_eq!(req.headers()[COOKIE], "a=1; b=2");
        assert_eq!(req.headers()["accept"], "text/event-stream");
        assert_eq!(length, None);
    }

    #[test]
    fn malformed_requests_are_refused() {
        let with = |extra: (&'static str, &'static str)| {
            let mut fields = GET.to_vec();
            fields.push(extra);
            fields
        };
        for (fields, why) in [
            (with(("Accept", "x")), "uppercase"),
            (with(("connection", "keep-alive")), "connection-specific"),
            (with(("te", "gzip")), "te"),
            (with((":path", "/again")), "twice"),
            (with(("x", " padded")), "whitespace"),
            (with(("x", "a\nb")), "invalid field value"),
            (with(("content-length", "3")), "content-length above 0"),
            (GET[1..].to_vec(), "no :method"),
            (GET[..3].to_vec(), "no :path"),
            (vec![("accept", "x"), (":method", "GET")], "after a regular"),
            (with((":status", "200")), "unknown pseudo"),
            (with(("content-length", "+5")), "invalid content-length"),
            (with(("host", "other.example")), "differs from :authority"),
        ] {
            let err = request(&fields, true).expect_err(why);
            assert!(err.contains(why), "{why}: {err}");
        }
        let mut fields = GET.to_vec();
        fields[2].1 = "user@hub.example";
        assert!(request(&fields, true)
            .unwrap_err()
            .contains("invalid pseudo-header"));
        fields = GET.to_vec();
        fields[3].1 = "*";
        assert!(request(&fields, true).unwrap_err().contains("OPTIONS"));
        fields[0].1 = "OPTIONS";
        assert_eq!(
            request(&fields, true).unwrap().0.uri(),
            "https://hub.example*"
        );
        let mut fields = GET.to_vec();
        fields.extend([("content-length", "3"), ("content-length", "4")]);
        assert!(request(&fields, false).unwrap_err().contains("differ"));
    }

    #[test]
    fn a_declared_length_is_returned() {
        let mut fields = GET.to_vec();
        fields[0].1 = "POST";
        fields.push(("content-length", "12"));
        assert_eq!(request(&fields, false).unwrap().1, Some(12));
    }
}
