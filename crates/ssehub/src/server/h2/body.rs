//! A request's body as the connection receives it: DATA frames handed to
//! the handler, and the bytes it has read given back to the client as flow
//! control credit (WINDOW_UPDATE) once the connection's task runs again.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use parking_lot::Mutex;

/// The body of a request received over HTTP/2.
pub(crate) struct RequestBody {
    shared: Option<Arc<Shared>>,
}

/// What the connection and the handler share.
pub(super) struct Shared {
    inner: Mutex<Inner>,
    /// The stream's waker: the connection sends credit for what was read.
    stream: Waker,
}

#[derive(Default)]
struct Inner {
    chunks: VecDeque<Bytes>,
    /// Bytes read by the handler, not yet given back as credit.
    read: usize,
    end: bool,
    /// The stream was reset before its body ended.
    reset: bool,
    reader: Option<Waker>,
}

impl RequestBody {
    /// A body with nothing in it (the request ended with its headers).
    pub(super) fn empty() -> RequestBody {
        RequestBody { shared: None }
    }

    /// A body fed by the connection through the returned handle; reading
    /// from it wakes `stream`.
    pub(super) fn channel(stream: Waker) -> (RequestBody, Arc<Shared>) {
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner::default()),
            stream,
        });
        (
            RequestBody {
                shared: Some(shared.clone()),
            },
            shared,
        )
    }
}

impl Shared {
    /// Hands a DATA frame's bytes to the handler.
    pub(super) fn push(&self, data: Bytes) {
        let mut inner = self.inner.lock();
        inner.chunks.push_back(data);
        wake(&mut inner);
    }

    /// The body ended (END_STREAM), or the stream was reset before it did.
    pub(super) fn finish(&self, reset: bool) {
        let mut inner = self.inner.lock();
        inner.end = true;
        inner.reset = reset;
        wake(&mut inner);
    }

    /// Bytes the handler read since the last call.
    pub(super) fn take_read(&self) -> usize {
        std::mem::take(&mut self.inner.lock().read)
    }

    /// Bytes received and not given back: those read since
    /// [`Shared::take_read`] and those never read, which are dropped.
    pub(super) fn discard(&self) -> usize {
        let mut inner = self.inner.lock();
        let unread: usize = inner.chunks.drain(..).map(|c| c.len()).sum();
        std::mem::take(&mut inner.read) + unread
    }

    /// Whether the handler dropped the body (nothing will read it).
    pub(super) fn abandoned(self: &Arc<Self>) -> bool {
        Arc::strong_count(self) == 1
    }
}

fn wake(inner: &mut Inner) {
    if let Some(reader) = inner.reader.take() {
        reader.wake();
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        // The connection gives back what the handler will not read.
        if let Some(shared) = &self.shared {
            shared.stream.wake_by_ref();
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let Some(shared) = &self.shared else {
            return Poll::Ready(None);
        };
        let mut inner = shared.inner.lock();
        if let Some(chunk) = inner.chunks.pop_front() {
            inner.read += chunk.len();
            drop(inner);
            shared.stream.wake_by_ref();
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        if inner.reset {
            return Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "the client reset the stream before the end of its body",
            ))));
        }
        if inner.end {
            return Poll::Ready(None);
        }
        inner.reader = Some(cx.waker().clone());
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.shared.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match self.shared {
            None => SizeHint::with_exact(0),
            Some(_) => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn chunks_arrive_in_order_and_reading_them_is_counted() {
        let (body, shared) = RequestBody::channel(Waker::noop().clone());
        shared.push(Bytes::from_static(b"ab"));
        shared.push(Bytes::from_static(b"cde"));
        shared.finish(false);
        let read = body.collect().await.unwrap().to_bytes();
        assert_eq!(read, "abcde");
        assert_eq!(shared.take_read(), 5);
        assert_eq!(shared.take_read(), 0);
        assert!(shared.abandoned());
    }

    #[test]
    fn what_is_not_given_back_is_discarded_whole() {
        let (body, shared) = RequestBody::channel(Waker::noop().clone());
        shared.push(Bytes::from_static(b"ab"));
        shared.push(Bytes::from_static(b"cde"));
        shared.push(Bytes::from_static(b"f"));
        let mut body = std::pin::pin!(body);
        let mut cx = Context::from_waker(Waker::noop());
        assert!(body.as_mut().poll_frame(&mut cx).is_ready());
        assert_eq!(shared.discard(), 6, "2 read, 4 never read");
        assert_eq!(shared.discard(), 0);
    }

    #[tokio::test]
    async fn a_reset_before_the_end_is_an_error() {
        let (body, shared) = RequestBody::channel(Waker::noop().clone());
        shared.push(Bytes::from_static(b"ab"));
        shared.finish(true);
        let Err(err) = body.collect().await else {
            panic!("an error expected");
        };
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
    }
}
