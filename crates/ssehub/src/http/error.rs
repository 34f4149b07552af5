//! Errors of the HTTP API and the one place they become responses.

use axum::response::{IntoResponse, Response};
use http::{header, StatusCode};

use crate::auth::TokenError;
use crate::fanout::Closed;
use crate::history::LogError;
use crate::proto::claims::ClaimsError;
use crate::proto::update::UpdateError;

/// An API error: a status and a message saying what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed request (400).
    #[error("{0}")]
    BadRequest(String),
    /// Missing or invalid token (401).
    #[error("{0}")]
    Unauthorized(String),
    /// Valid token that does not allow this, or a forbidden origin or topic (403).
    #[error("{0}")]
    Forbidden(String),
    /// Nothing here (404).
    #[error("{0}")]
    NotFound(String),
    /// Body above the configured limit (413).
    #[error("request body larger than the {0}-byte limit (--max-body)")]
    TooLarge(usize),
    /// A body type other than form or JSON (415).
    #[error(
        "unsupported Content-Type {0:?}: use application/x-www-form-urlencoded or application/json"
    )]
    UnsupportedMediaType(String),
    /// The store cannot accept writes (503).
    #[error(transparent)]
    Unavailable(#[from] LogError),
    /// The hub is shutting down and takes no new subscriptions (503).
    #[error("the hub is shutting down")]
    ShuttingDown,
}

impl From<Closed> for ApiError {
    fn from(_: Closed) -> Self {
        ApiError::ShuttingDown
    }
}

impl From<UpdateError> for ApiError {
    fn from(e: UpdateError) -> Self {
        ApiError::BadRequest(e.to_string())
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        ApiError::Unauthorized(e.to_string())
    }
}

impl From<ClaimsError> for ApiError {
    fn from(e: ClaimsError) -> Self {
        TokenError::from(e).into()
    }
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable(_) | ApiError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!("{self}");
        }
        let mut res = (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{self}\n"),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer realm=\"ssehub\""),
            );
        }
        res
    }
}
