//! A service whose futures are boxed, for HTTP/2 connections.
//!
//! hyper runs each HTTP/2 stream as its own task, which holds the service's
//! future until the response head is sent and the body after it; a task is
//! sized for the larger of the two, for the whole life of the stream. The
//! router's future holds the request and the route's state (a few hundred
//! bytes), the body a pointer: boxing the future makes an idle stream's
//! task hundreds of bytes smaller, for one short-lived allocation per
//! request. HTTP/1.1 needs no such wrapper: hyper boxes that future itself.

use std::future::Future;
use std::pin::Pin;

use hyper::service::Service;

/// `S`, with each of its futures boxed.
#[derive(Debug, Clone)]
pub(super) struct BoxedFutures<S>(pub(super) S);

impl<S, R> Service<R> for BoxedFutures<S>
where
    S: Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn call(&self, request: R) -> Self::Future {
        Box::pin(self.0.call(request))
    }
}
