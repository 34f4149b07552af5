//! What a browser sees: the page at `/` (what this hub is, its version and
//! URL), the browser UI under [`UI_PATH`] (a dashboard and a debugger,
//! static files embedded in the binary, served when `--ui` enables it), its
//! live figures for admin tokens (`stats`), and a 404 that says where to go.

mod assets;
mod home;
mod stats;

use std::sync::Arc;

use axum::extract::Request;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use super::error::ApiError;
use super::HUB_PATH;
use crate::hub::Hub;
use crate::proto::UI_PATH;

/// Adds `/`, the UI's routes when `ui` is on, and the 404 for anything else.
pub(super) fn routes(router: Router<Arc<Hub>>, ui: bool) -> Router<Arc<Hub>> {
    let mut router = router.route("/", get(home::page)).fallback(not_found);
    if ui {
        router = router
            .route(
                UI_PATH,
                get(|| async { Redirect::permanent(&format!("{UI_PATH}/")) }),
            )
            .route(&format!("{UI_PATH}/"), get(assets::index))
            .route(&format!("{UI_PATH}/stats"), get(stats::stream))
            .route(&format!("{UI_PATH}/{{file}}"), get(assets::file));
    }
    router
}

/// Any path the hub does not serve: a 404 saying where things are.
async fn not_found(req: Request) -> Response {
    ApiError::NotFound(format!(
        "nothing at {}: the hub is at {HUB_PATH}, and / describes it",
        req.uri().path()
    ))
    .into_response()
}
