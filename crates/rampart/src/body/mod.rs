//! The client's request body as the pipeline holds it.
//!
//! A refused request (401, 403, 429, …) is answered before its body is
//! read. Dropping an unread HTTP/2 request body resets the stream, and
//! that reset can overtake the refusal on the wire: the client then sees a
//! stream error instead of the problem document. [`RequestBody`] therefore
//! drains what is left of an unread body in the background when it is
//! dropped, bounded in bytes and time, so the refusal arrives first and
//! intact.
//!
//! Threat answered: none by itself (clients get their answers). How it
//! fails: a body larger than [`DRAIN_LIMIT`] or slower than [`DRAIN_TIME`]
//! is dropped anyway (the reset then protects the gateway), so a refused
//! client cannot make the gateway read an unbounded upload.

pub mod json;

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

/// Most bytes read from a refused request's body.
pub const DRAIN_LIMIT: usize = 256 * 1024;

/// Longest time spent reading a refused request's body.
pub const DRAIN_TIME: Duration = Duration::from_secs(2);

/// A request body that drains itself (bounded) if dropped unread.
#[derive(Debug)]
pub struct RequestBody {
    inner: Option<Incoming>,
    ended: bool,
}

impl RequestBody {
    /// Wraps the body hyper handed over.
    pub fn new(inner: Incoming) -> Self {
        Self {
            inner: Some(inner),
            ended: false,
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(inner).poll_frame(cx);
        if let Poll::Ready(None | Some(Err(_))) = &polled {
            self.ended = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.as_ref().map(|b| b.size_hint()).unwrap_or_default()
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        let Some(body) = self.inner.take().filter(|b| !b.is_end_stream()) else {
            return;
        };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(drain(body));
        }
    }
}

async fn drain(mut body: Incoming) {
    use http_body_util::BodyExt as _;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        let mut read = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            read += frame.data_ref().map_or(0, |d| d.len());
            if read > DRAIN_LIMIT {
                break;
            }
        }
    })
    .await;
}
