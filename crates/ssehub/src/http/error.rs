//! Errors of the HTTP API and the one place they become responses.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::response::{IntoResponse, Response};
use http::{header, StatusCode};

use crate::auth::TokenError;
use crate::fanout::Closed;
use crate::history::LogError;
use crate::metrics::{AuthFailure, Label};
use crate::proto::claims::ClaimsError;
use crate::proto::update::UpdateError;

/// An API error: a status and a message saying what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed request (400).
    #[error("{0}")]
    BadRequest(String),
    /// No token where one is needed (401, a bare Bearer challenge).
    #[error("{0}")]
    MissingToken(String),
    /// A token that fails verification or whose claims are unusable (401,
    /// `invalid_token`).
    #[error("{0}")]
    InvalidToken(String),
    /// A valid token that does not grant this (403, `insufficient_scope`).
    #[error("{0}")]
    InsufficientScope(String),
    /// A token presented in a way that is not accepted (400,
    /// `invalid_request`).
    #[error("{0}")]
    InvalidRequest(String),
    /// A forbidden origin (403, no challenge: the token is not at fault).
    #[error("{0}")]
    Forbidden(String),
    /// Nothing here (404).
    #[error("{0}")]
    NotFound(String),
    /// Body above the configured limit (413).
    #[error("request body larger than the {0}-byte limit (--max-body)")]
    TooLarge(usize),
    /// Body not received within `--body-timeout` (408).
    #[error("request body not received within {0:?} (--body-timeout)")]
    BodyTimeout(std::time::Duration),
    /// More topics than an update may carry (413).
    #[error("{0}")]
    TooManyTopics(String),
    /// A body type other than form or JSON (415).
    #[error(
        "unsupported Content-Type {0:?}: use application/x-www-form-urlencoded or application/json"
    )]
    UnsupportedMediaType(String),
    /// Over a limit for now (429, with `Retry-After`).
    #[error("{message}")]
    TooManyRequests {
        /// Which limit, and what to do.
        message: String,
        /// Seconds after which trying again may succeed.
        retry_after: u64,
    },
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
        match e {
            UpdateError::TooManyTopics => ApiError::TooManyTopics(e.to_string()),
            e => ApiError::BadRequest(e.to_string()),
        }
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        ApiError::InvalidToken(e.to_string())
    }
}

impl From<ClaimsError> for ApiError {
    fn from(e: ClaimsError) -> Self {
        ApiError::InvalidToken(format!("invalid token: {e}"))
    }
}

/// An RFC 6750 `WWW-Authenticate: Bearer` challenge.
enum Challenge {
    /// No token was presented: no error code.
    Bare,
    /// A token failure, with its error code.
    Error(&'static str),
}

impl ApiError {
    /// The RFC 6750 challenge of a token failure, if this is one.
    fn challenge(&self) -> Option<Challenge> {
        match self.auth_failure()? {
            AuthFailure::Missing => Some(Challenge::Bare),
            // The metric's label values are RFC 6750's error codes.
            failure => Some(Challenge::Error(failure.value())),
        }
    }

    /// The token failure this is, if it is one.
    fn auth_failure(&self) -> Option<AuthFailure> {
        match self {
            ApiError::MissingToken(_) => Some(AuthFailure::Missing),
            ApiError::InvalidToken(_) => Some(AuthFailure::InvalidToken),
            ApiError::InsufficientScope(_) => Some(AuthFailure::InsufficientScope),
            ApiError::InvalidRequest(_) => Some(AuthFailure::InvalidRequest),
            _ => None,
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) | ApiError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::MissingToken(_) | ApiError::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            ApiError::InsufficientScope(_) | ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::TooLarge(_) | ApiError::TooManyTopics(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) | ApiError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// Server errors (503: the store down, the hub stopping) come in runs, one
/// per refused request: the first of a run is logged, and the next one
/// logged at most this long after the last says how many were held back.
const QUIET: Duration = Duration::from_secs(10);

/// The server errors of the whole process, logged through [`Throttle`].
static SERVER_ERRORS: Throttle = Throttle::new(QUIET);

/// Logs a repeated warning at most once per period.
struct Throttle {
    period: Duration,
    /// When the last one was logged, and how many came since.
    last: Mutex<Option<(Instant, u64)>>,
}

impl Throttle {
    const fn new(period: Duration) -> Throttle {
        Throttle {
            period,
            last: Mutex::new(None),
        }
    }

    /// Whether a warning at `now` is logged: `Some(held)`, the number held
    /// back since the last one logged, or `None` to hold it back.
    fn admit(&self, now: Instant) -> Option<u64> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        match &mut *last {
            Some((at, held)) if now.saturating_duration_since(*at) < self.period => {
                *held += 1;
                None
            }
            _ => {
                let held = last.map_or(0, |(_, held)| held);
                *last = Some((now, 0));
                Some(held)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            match SERVER_ERRORS.admit(Instant::now()) {
                Some(0) => tracing::warn!("{self}"),
                Some(held) => tracing::warn!(
                    "{self} ({held} more like it since the last one logged, within {}s each)",
                    QUIET.as_secs()
                ),
                None => {}
            }
        }
        let mut res = (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{self}\n"),
        )
            .into_response();
        if let ApiError::TooManyRequests { retry_after, .. } = &self {
            res.headers_mut()
                .insert(header::RETRY_AFTER, http::HeaderValue::from(*retry_after));
        }
        if let Some(kind) = self.challenge() {
            let mut challenge = String::from("Bearer realm=\"ssehub\"");
            if let Challenge::Error(error) = kind {
                let description: String = self
                    .to_string()
                    .chars()
                    .filter(|c| c.is_ascii() && !c.is_ascii_control() && !matches!(c, '"' | '\\'))
                    .collect();
                challenge.push_str(&format!(
                    ", error=\"{error}\", error_description=\"{description}\""
                ));
            }
            if let Ok(value) = http::HeaderValue::from_str(&challenge) {
                res.headers_mut().insert(header::WWW_AUTHENTICATE, value);
            }
        }
        // Counted by the router's `count_auth_failures` layer, which has the hub.
        if let Some(failure) = self.auth_failure() {
            res.extensions_mut().insert(failure);
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_of_warnings_is_logged_once_per_period_with_the_count_held_back() {
        let throttle = Throttle::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(throttle.admit(at(0)), Some(0), "the first is logged");
        assert_eq!(throttle.admit(at(1)), None);
        assert_eq!(throttle.admit(at(9)), None);
        assert_eq!(throttle.admit(at(10)), Some(2), "the next says how many");
        assert_eq!(throttle.admit(at(30)), Some(0), "a new run");
        assert_eq!(throttle.admit(at(30)), None);
    }
}
