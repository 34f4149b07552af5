//! `GET /.well-known/acme-challenge/{token}` on the plain port: the key
//! authorization of an HTTP-01 challenge the CA is validating, else 404.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::{header, StatusCode};

use crate::hub::Hub;

/// The route's path.
pub(super) const PATH: &str = "/.well-known/acme-challenge/{token}";

/// Answers the CA's HTTP-01 validation request.
pub(super) async fn respond(State(hub): State<Arc<Hub>>, Path(token): Path<String>) -> Response {
    let answer = hub
        .acme
        .as_ref()
        .and_then(|acme| acme.challenges.http01(&token));
    match answer {
        Some(key_authorization) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/octet-stream")],
            key_authorization,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such challenge\n").into_response(),
    }
}
