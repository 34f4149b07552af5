//! The UI's static files, embedded in the binary: no secret in them, so
//! they are served without a token; revalidated by `ETag`, and locked down
//! by a Content-Security-Policy that allows only this origin's own script,
//! styles and connections (no inline script, no other site).

use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::super::error::ApiError;

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

/// Every file of the UI; the first is its page.
const ASSETS: [Asset; 3] = [
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("web/index.html"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("web/app.css"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("web/app.js"),
    },
];

/// The UI's policy: this origin's script, styles and connections only.
pub(super) const UI_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// The headers every page of the hub carries besides its policy.
pub(super) fn hardening() -> [(HeaderName, HeaderValue); 3] {
    [
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
    ]
}

/// `UI_PATH/`: the page.
pub(super) async fn index(headers: HeaderMap) -> Response {
    serve(&ASSETS[0], &headers)
}

/// `UI_PATH/{file}`.
pub(super) async fn file(Path(name): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(asset) => serve(asset, &headers),
        None => ApiError::NotFound(format!("the UI has no file {name:?}")).into_response(),
    }
}

/// `asset`, or `304 Not Modified` when the browser holds this version.
fn serve(asset: &Asset, headers: &HeaderMap) -> Response {
    let etag = format!("\"{:08x}\"", crc32fast::hash(asset.body));
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag));
    let status = if fresh {
        StatusCode::NOT_MODIFIED
    } else {
        StatusCode::OK
    };
    let body = if fresh { &[][..] } else { asset.body };
    let mut res = (
        status,
        [
            (header::CONTENT_TYPE, asset.content_type.to_string()),
            // Always revalidated, so a new binary's files are used at once.
            (header::CACHE_CONTROL, "no-cache".to_string()),
            (header::ETAG, etag),
            (header::CONTENT_SECURITY_POLICY, UI_CSP.to_string()),
        ],
        body,
    )
        .into_response();
    res.headers_mut().extend(hardening());
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_its_own_files_without_inline_script() {
        let page = std::str::from_utf8(ASSETS[0].body).unwrap();
        assert!(page.contains("src=\"app.js\"") && page.contains("href=\"app.css\""));
        for inline in [
            "<script>",
            "onclick=",
            "onload=",
            "style=\"",
            "src=\"http",
            "href=\"http",
        ] {
            assert!(!page.contains(inline), "index.html contains {inline}");
        }
        let script = std::str::from_utf8(ASSETS[2].body).unwrap();
        assert!(!script.contains("eval(") && !script.contains("innerHTML"));
    }
}
