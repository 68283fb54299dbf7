//! [`LimitLayer`]: a [`ConcurrencyLimit`] in front of a service, shedding
//! what it cannot admit.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::limit::{ConcurrencyLimit, ConcurrencyPermit, Overloaded};

use super::BoxError;

/// Applies a [`ConcurrencyLimit`] to a service: [`LimitService`].
///
/// All services built by one layer (and their clones) share the limit, so
/// `max_concurrent` bounds the calls in flight through all of them.
#[derive(Debug, Clone)]
pub struct LimitLayer {
    limit: ConcurrencyLimit,
}

impl LimitLayer {
    /// A layer sharing `limit` among its services.
    pub fn new(limit: ConcurrencyLimit) -> Self {
        LimitLayer { limit }
    }

    /// The shared limit (e.g. to read [`ConcurrencyLimit::in_flight`]).
    pub fn limit(&self) -> &ConcurrencyLimit {
        &self.limit
    }
}

impl<S> Layer<S> for LimitLayer {
    type Service = LimitService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        LimitService {
            inner,
            limit: self.limit.clone(),
        }
    }
}

/// A service that admits a call only with a permit of its
/// [`ConcurrencyLimit`], and sheds it with [`Overloaded`] otherwise.
///
/// # Fail fast in `call`, never wait in `poll_ready`
///
/// `poll_ready` only asks the inner service. The permit is taken in `call`
/// with [`ConcurrencyLimit::try_acquire`]: when every permit is taken (or
/// callers already wait in the limit's queue, which a newcomer must not
/// overtake) the call fails at once with a boxed [`Overloaded`] carrying
/// `retry_after`, and the inner service is not called. A service that waited
/// for capacity in `poll_ready` would hold back every request behind it
/// without bound, and an error from `poll_ready` means to hyper and tower
/// that the service is broken for good; a fast, per-request refusal is what
/// load shedding is for (tower's `load_shed` makes the same choice). The
/// limit's wait queue is therefore not used by this service; callers that
/// prefer to wait use [`ConcurrencyLimit::acquire`] directly.
///
/// The permit is held by the response future until it completes (or is
/// dropped, e.g. when a client disconnects or a deadline cancels it), so the
/// limit counts work in progress, not calls made.
///
/// Errors: the inner error, boxed ([`BoxError`]), or a boxed [`Overloaded`].
#[derive(Debug, Clone)]
pub struct LimitService<S> {
    inner: S,
    limit: ConcurrencyLimit,
}

impl<S> LimitService<S> {
    /// Wraps `inner` with `limit`.
    pub fn new(inner: S, limit: ConcurrencyLimit) -> Self {
        LimitService { inner, limit }
    }

    /// The limit.
    pub fn limit(&self) -> &ConcurrencyLimit {
        &self.limit
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Consumes the wrapper, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, Req> Service<Req> for LimitService<S>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = LimitFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        match self.limit.try_acquire() {
            Ok(permit) => LimitFuture {
                inner: Some(self.inner.call(request)),
                permit: Some(permit),
                shed: None,
            },
            Err(overloaded) => {
                tracing::debug!(
                    name = %self.limit.name(),
                    in_flight = self.limit.in_flight(),
                    max_concurrent = self.limit.max_concurrent(),
                    retry_after_ms =
                        u64::try_from(overloaded.retry_after.as_millis()).unwrap_or(u64::MAX),
                    "request shed by concurrency limit"
                );
                LimitFuture {
                    inner: None,
                    permit: None,
                    shed: Some(overloaded),
                }
            }
        }
    }
}

pin_project! {
    /// The response future of [`LimitService`]: holds the permit until the
    /// inner future completes or this future is dropped.
    #[must_use = "futures do nothing unless polled"]
    pub struct LimitFuture<F> {
        #[pin]
        inner: Option<F>,
        permit: Option<ConcurrencyPermit>,
        shed: Option<Overloaded>,
    }
}

impl<F> fmt::Debug for LimitFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimitFuture")
            .field("holds_permit", &self.permit.is_some())
            .field("shed", &self.shed)
            .finish_non_exhaustive()
    }
}

impl<F, T, E> Future for LimitFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Some(inner) = this.inner.as_mut().as_pin_mut() {
            let output = std::task::ready!(inner.poll(cx));
            // Done: release the capacity now, not when the future is dropped.
            this.inner.set(None);
            drop(this.permit.take());
            return Poll::Ready(output.map_err(Into::into));
        }
        match this.shed.take() {
            Some(overloaded) => Poll::Ready(Err(Box::new(overloaded))),
            None => Poll::Ready(Err(
                "`LimitFuture` polled after it completed (a bug in the caller)".into(),
            )),
        }
    }
}
