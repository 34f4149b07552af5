//! `/`: a small page saying what this hub is, its version and its URL
//! (also in the Mercure discovery `Link` header), with links to the UI and
//! the docs. Its one stylesheet is inline, allowed by its hash alone.

use std::sync::{Arc, LazyLock};

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use http::{header, StatusCode};

use super::super::error::ApiError;
use super::super::identity::hub_url;
use super::assets::hardening;
use super::UI_PATH;
use crate::hub::Hub;

const STYLE: &str = "body{font:16px/1.5 system-ui,sans-serif;margin:0;color:#1d2430;background:#f6f7f9}\
main{max-width:42rem;margin:2rem auto;padding:0 1rem}\
h1{margin:0 0 .25rem}code{background:#e8ebf0;padding:.1rem .3rem;border-radius:3px;word-break:break-all}\
dt{font-weight:600;margin-top:.75rem}dd{margin:0}a{color:#0b57d0}\
@media (prefers-color-scheme:dark){body{background:#15181d;color:#e3e6eb}code{background:#262b33}a{color:#8ab4f8}}";

/// The page's Content-Security-Policy: nothing but its own inline style.
static CSP: LazyLock<String> = LazyLock::new(|| {
    let hash = ring::digest::digest(&ring::digest::SHA256, STYLE.as_bytes());
    let hash = base64::engine::general_purpose::STANDARD.encode(hash.as_ref());
    format!("default-src 'none'; style-src 'sha256-{hash}'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
});

/// `GET /`.
pub(super) async fn page(State(hub): State<Arc<Hub>>, req: Request) -> Result<Response, ApiError> {
    let (parts, _) = req.into_parts();
    let url = hub_url(&hub, &parts)?;
    let html = render(url.as_str(), hub.config.server.ui);
    let mut res = (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8".to_string()),
            (header::CACHE_CONTROL, "no-cache".to_string()),
            (header::LINK, format!("<{url}>; rel=\"mercure\"")),
            (header::CONTENT_SECURITY_POLICY, CSP.clone()),
        ],
        html,
    )
        .into_response();
    res.headers_mut().extend(hardening());
    Ok(res)
}

/// The page for the hub at `url`.
fn render(url: &str, ui: bool) -> String {
    let url = escape(url);
    let version = env!("CARGO_PKG_VERSION");
    let ui = if ui {
        format!(
            "<li><a href=\"{UI_PATH}/\">Dashboard and debugger</a> \
             (its live data needs an admin token: <code>ssehub token --admin</code>)</li>"
        )
    } else {
        "<li>The browser UI is off on this hub (<code>--ui on</code> enables it).</li>".to_string()
    };
    let repository = env!("CARGO_PKG_REPOSITORY");
    let docs = if repository.is_empty() {
        "<li>Documentation: <code>docs/getting-started.md</code> in the source</li>".to_string()
    } else {
        format!(
            "<li><a href=\"{}/blob/main/docs/getting-started.md\">Getting started</a></li>",
            escape(repository)
        )
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>ssehub {version}</title><style>{STYLE}</style></head>\n<body><main>\
         <h1>ssehub</h1><p>A Server-Sent Events push hub speaking the Mercure protocol.</p>\
         <dl><dt>Version</dt><dd id=\"version\">{version}</dd>\
         <dt>Hub URL</dt><dd><code id=\"hub-url\">{url}</code></dd></dl>\
         <p>Subscribe with <code>GET</code> (an <code>EventSource</code>), \
         publish with <code>POST</code>, both at the hub URL.</p>\
         <ul>{ui}{docs}\
         <li><a href=\"https://mercure.rocks/spec\">The Mercure protocol</a></li></ul>\
         </main></body></html>\n"
    )
}

/// `text` safe inside HTML text and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hub_url_is_escaped() {
        let page = render("http://a/<script>\"'&", true);
        assert!(
            page.contains("http://a/&lt;script&gt;&quot;&#39;&amp;"),
            "{page}"
        );
        assert!(!page.contains("<script>"));
        assert!(page.contains(&format!("href=\"{UI_PATH}/\"")));
        assert!(render("http://a/", false).contains("--ui on"));
    }
}
