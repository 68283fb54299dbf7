//! [`BreakerLayer`]: a [`CircuitBreaker`] in front of a service.

use std::any::Any;
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::breaker::{BreakerOpen, BreakerPermit, CircuitBreaker, Outcome};
use crate::limit::Overloaded;

use super::BoxError;

/// Decides how the outcome of a call counts for the breaker.
///
/// Implemented by [`ErrorIsFailure`] (the default) and by closures
/// `Fn(Result<&Res, &E>) -> Outcome`, e.g. to count HTTP 5xx responses as
/// failures and 4xx errors as [`Outcome::Ignored`]:
///
/// ```
/// use resilience_core::breaker::Outcome;
///
/// let classify = |outcome: Result<&u16, &std::io::Error>| match outcome {
///     Ok(status) if *status >= 500 => Outcome::Failure,
///     Ok(status) if *status >= 400 => Outcome::Ignored,
///     Ok(_) => Outcome::Success,
///     Err(_) => Outcome::Failure,
/// };
/// # let _ = resilience_core::tower::BreakerLayer::new(
/// #     resilience_core::breaker::CircuitBreaker::new(Default::default()).unwrap(),
/// # ).classify(classify);
/// ```
pub trait BreakerClassifier<Res, E> {
    /// How the call that ended with `outcome` counts.
    fn classify(&self, outcome: Result<&Res, &E>) -> Outcome;
}

impl<Res, E, F> BreakerClassifier<Res, E> for F
where
    F: Fn(Result<&Res, &E>) -> Outcome,
{
    fn classify(&self, outcome: Result<&Res, &E>) -> Outcome {
        self(outcome)
    }
}

/// The default [`BreakerClassifier`]: a response is a success, an error a
/// failure — except a refusal by a layer of this crate below the breaker
/// ([`Overloaded`] from a [`LimitLayer`](super::LimitLayer), [`BreakerOpen`]
/// from another breaker), which is [`Outcome::Ignored`]: the call never
/// reached the dependency, so it says nothing about its health.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErrorIsFailure;

impl<Res, E: 'static> BreakerClassifier<Res, E> for ErrorIsFailure {
    fn classify(&self, outcome: Result<&Res, &E>) -> Outcome {
        match outcome {
            Ok(_) => Outcome::Success,
            Err(error) if is_local_refusal(error) => Outcome::Ignored,
            Err(_) => Outcome::Failure,
        }
    }
}

fn is_local_refusal<E: 'static>(error: &E) -> bool {
    let any: &dyn Any = error;
    if any.is::<Overloaded>() || any.is::<BreakerOpen>() {
        return true;
    }
    any.downcast_ref::<BoxError>().is_some_and(|boxed| {
        let error: &(dyn Error + 'static) = &**boxed;
        error.is::<Overloaded>() || error.is::<BreakerOpen>()
    })
}

/// Applies a [`CircuitBreaker`] to a service: [`BreakerService`].
///
/// All services built by one layer (and their clones) share the breaker.
#[derive(Clone)]
pub struct BreakerLayer<C = ErrorIsFailure> {
    breaker: CircuitBreaker,
    classifier: C,
}

impl BreakerLayer {
    /// A layer sharing `breaker`, counting errors as failures
    /// ([`ErrorIsFailure`]).
    pub fn new(breaker: CircuitBreaker) -> Self {
        BreakerLayer {
            breaker,
            classifier: ErrorIsFailure,
        }
    }
}

impl<C> BreakerLayer<C> {
    /// Uses `classifier` to decide how outcomes count.
    pub fn classify<C2>(self, classifier: C2) -> BreakerLayer<C2> {
        BreakerLayer {
            breaker: self.breaker,
            classifier,
        }
    }

    /// The shared breaker (e.g. to read its [`state`](CircuitBreaker::state)).
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }
}

impl<C> fmt::Debug for BreakerLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerLayer")
            .field("breaker", &self.breaker)
            .finish_non_exhaustive()
    }
}

impl<S, C: Clone> Layer<S> for BreakerLayer<C> {
    type Service = BreakerService<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        BreakerService {
            inner,
            breaker: self.breaker.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

/// A service whose calls pass through a [`CircuitBreaker`].
///
/// `poll_ready` only asks the inner service (an open breaker does not make
/// the service "not ready": it rejects each call at once, so callers get a
/// fast error instead of waiting). `call` asks the breaker for a permit: when
/// it is open (or half-open with every probe slot taken) the call fails at
/// once with a boxed [`BreakerOpen`] carrying `retry_after`, and the inner
/// service is not called. Otherwise the inner call runs and, when its future
/// completes, the classifier's [`Outcome`] is recorded. A response future
/// dropped before it completes records nothing: the permit is cancelled (its
/// half-open probe slot is freed), as a cancelled call says nothing about the
/// dependency.
///
/// Errors: the inner error, boxed ([`BoxError`]), or a boxed [`BreakerOpen`].
#[derive(Clone)]
pub struct BreakerService<S, C = ErrorIsFailure> {
    inner: S,
    breaker: CircuitBreaker,
    classifier: C,
}

impl<S> BreakerService<S> {
    /// Wraps `inner` with `breaker`, counting errors as failures.
    pub fn new(inner: S, breaker: CircuitBreaker) -> Self {
        BreakerService {
            inner,
            breaker,
            classifier: ErrorIsFailure,
        }
    }
}

impl<S, C> BreakerService<S, C> {
    /// The breaker.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
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

impl<S: fmt::Debug, C> fmt::Debug for BreakerService<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerService")
            .field("inner", &self.inner)
            .field("breaker", &self.breaker)
            .finish_non_exhaustive()
    }
}

impl<S, C, Req> Service<Req> for BreakerService<S, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: BreakerClassifier<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BreakerFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        match self.breaker.try_acquire() {
            Ok(permit) => BreakerFuture {
                inner: Some(self.inner.call(request)),
                permit: Some(permit),
                classifier: Some(self.classifier.clone()),
                rejected: None,
            },
            Err(open) => {
                tracing::debug!(
                    name = %self.breaker.name(),
                    state = %self.breaker.state(),
                    retry_after_ms = u64::try_from(open.retry_after.as_millis()).unwrap_or(u64::MAX),
                    "request rejected by circuit breaker"
                );
                BreakerFuture {
                    inner: None,
                    permit: None,
                    classifier: None,
                    rejected: Some(open),
                }
            }
        }
    }
}

pin_project! {
    /// The response future of [`BreakerService`]: records the outcome when
    /// the inner future completes; dropped early, it records nothing.
    #[must_use = "futures do nothing unless polled"]
    pub struct BreakerFuture<F, C> {
        #[pin]
        inner: Option<F>,
        permit: Option<BreakerPermit>,
        classifier: Option<C>,
        rejected: Option<BreakerOpen>,
    }
}

impl<F, C> fmt::Debug for BreakerFuture<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerFuture")
            .field("permit", &self.permit)
            .field("rejected", &self.rejected)
            .finish_non_exhaustive()
    }
}

impl<F, C, T, E> Future for BreakerFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    C: BreakerClassifier<T, E>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Some(inner) = this.inner.as_mut().as_pin_mut() {
            let output = std::task::ready!(inner.poll(cx));
            this.inner.set(None);
            if let (Some(permit), Some(classifier)) = (this.permit.take(), this.classifier.take()) {
                permit.record(classifier.classify(output.as_ref()));
            }
            return Poll::Ready(output.map_err(Into::into));
        }
        match this.rejected.take() {
            Some(open) => Poll::Ready(Err(Box::new(open))),
            None => Poll::Ready(Err(
                "`BreakerFuture` polled after it completed (a bug in the caller)".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn default_classifier_ignores_local_refusals() {
        let shed: BoxError = Box::new(Overloaded {
            retry_after: Duration::from_millis(1),
        });
        let other: BoxError = "boom".into();
        let c = ErrorIsFailure;
        assert_eq!(
            BreakerClassifier::<(), BoxError>::classify(&c, Err(&shed)),
            Outcome::Ignored
        );
        assert_eq!(
            BreakerClassifier::<(), BoxError>::classify(&c, Err(&other)),
            Outcome::Failure
        );
        assert_eq!(
            BreakerClassifier::<(), BoxError>::classify(&c, Ok(&())),
            Outcome::Success
        );
        let open = BreakerOpen {
            retry_after: Duration::from_secs(1),
        };
        assert_eq!(
            BreakerClassifier::<(), BreakerOpen>::classify(&c, Err(&open)),
            Outcome::Ignored
        );
    }
}
