//! [`RetryLayer`]: a [`RetryPolicy`] (attempts, backoff, retry budget,
//! deadline, `Retry-After` hints) around a service.

use std::any::Any;
use std::error::Error;
use std::fmt;
use std::future::{Future, poll_fn};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tower_layer::Layer;
use tower_service::Service;

use crate::breaker::BreakerOpen;
use crate::deadline::Deadline;
use crate::limit::Overloaded;
use crate::retry::{ErrorClass, RetryErrorKind, RetryPolicy};

use super::{BoxError, RetryGaveUp};

/// The old name of [`ErrorClass`], the one type that says whether an
/// outcome is worth another attempt: `Done` is [`ErrorClass::Permanent`],
/// `Retry` is [`ErrorClass::Transient`], `RetryAfter(d)` is
/// [`ErrorClass::TransientAfter`]. The old variant names still work as
/// deprecated associated items of [`ErrorClass`].
#[deprecated(
    since = "0.1.0",
    note = "use `resilience_core::retry::ErrorClass` (`Done` -> `Permanent`, `Retry` -> `Transient`, `RetryAfter` -> `TransientAfter`)"
)]
pub type RetryDecision = ErrorClass;

/// The variant names of the deprecated [`RetryDecision`], so that code
/// written against it still compiles.
#[doc(hidden)]
#[allow(non_upper_case_globals, non_snake_case)]
impl ErrorClass {
    /// Deprecated: [`ErrorClass::Permanent`].
    #[deprecated(since = "0.1.0", note = "use `ErrorClass::Permanent`")]
    pub const Done: ErrorClass = ErrorClass::Permanent;

    /// Deprecated: [`ErrorClass::Transient`].
    #[deprecated(since = "0.1.0", note = "use `ErrorClass::Transient`")]
    pub const Retry: ErrorClass = ErrorClass::Transient;

    /// Deprecated: [`ErrorClass::TransientAfter`].
    #[deprecated(since = "0.1.0", note = "use `ErrorClass::TransientAfter`")]
    pub const fn RetryAfter(after: Duration) -> ErrorClass {
        ErrorClass::TransientAfter(after)
    }
}

/// Decides which responses and errors are worth another attempt.
///
/// Implemented by [`DefaultRetryClassifier`] and by closures
/// `Fn(Result<&Res, &E>) -> ErrorClass`: [`ErrorClass::Permanent`] hands the
/// outcome to the caller as it is, [`ErrorClass::Transient`] tries again
/// after the policy's backoff (if its attempts, budget and deadline allow),
/// [`ErrorClass::TransientAfter`] also waits at least the server's hint (an
/// HTTP `Retry-After`, a shed's `retry_after`; capped at the policy's
/// `max_retry_after`). A closure can retry on a response (an HTTP 503) and
/// read the server's hint from it:
///
/// ```
/// use std::time::Duration;
/// use resilience_core::retry::ErrorClass;
/// use resilience_core::tower::parse_retry_after;
///
/// struct Response { status: u16, retry_after: Option<String> }
///
/// let classify = |outcome: Result<&Response, &std::io::Error>| match outcome {
///     Ok(r) if r.status == 503 || r.status == 429 => r
///         .retry_after
///         .as_deref()
///         .and_then(parse_retry_after)
///         .map_or(ErrorClass::Transient, ErrorClass::TransientAfter),
///     Ok(_) => ErrorClass::Permanent,
///     Err(e) => resilience_core::tower::classify_error(e),
/// };
/// let busy = Response { status: 503, retry_after: Some("2".into()) };
/// assert_eq!(classify(Ok(&busy)), ErrorClass::TransientAfter(Duration::from_secs(2)));
/// ```
pub trait RetryClassifier<Res, E> {
    /// The class of one attempt's outcome.
    fn classify(&self, outcome: Result<&Res, &E>) -> ErrorClass;
}

impl<Res, E, F> RetryClassifier<Res, E> for F
where
    F: Fn(Result<&Res, &E>) -> ErrorClass,
{
    fn classify(&self, outcome: Result<&Res, &E>) -> ErrorClass {
        self(outcome)
    }
}

/// The default [`RetryClassifier`]: every response is final, every error is
/// classified by [`classify_error`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DefaultRetryClassifier;

impl<Res, E: 'static> RetryClassifier<Res, E> for DefaultRetryClassifier {
    fn classify(&self, outcome: Result<&Res, &E>) -> ErrorClass {
        match outcome {
            Ok(_) => ErrorClass::Permanent,
            Err(error) => classify_error(error),
        }
    }
}

/// How the default classifier treats an error (typed, or boxed as a
/// [`BoxError`]):
///
/// - [`Overloaded`] (a shed by a [`LimitLayer`](super::LimitLayer)):
///   [`ErrorClass::TransientAfter`] its `retry_after`;
/// - [`BreakerOpen`]: [`ErrorClass::Permanent`] — the breaker is there to
///   fail fast, retrying into it only burns budget;
/// - [`RetryGaveUp`] (an inner retry layer gave up): permanent, retries must
///   not multiply across layers;
/// - [`std::io::Error`]: as its [`Retryable`](crate::retry::Retryable) impl
///   says (connection failures and timeouts are transient, the rest is
///   permanent);
/// - anything else: [`ErrorClass::Transient`]. Unknown errors are usually transport failures;
///   the policy's attempts, budget and deadline bound the cost. Pass your
///   own classifier to be stricter.
pub fn classify_error<E: 'static>(error: &E) -> ErrorClass {
    let any: &dyn Any = error;
    match any.downcast_ref::<BoxError>() {
        Some(boxed) => classify_known(&**boxed as &(dyn Error + 'static)),
        None => classify_known(any),
    }
}

/// The classification rules of [`classify_error`], written once for both
/// ways of looking into an error: a typed one (through `dyn Any`) and a
/// boxed one (through `dyn Error`).
fn classify_known<D: Downcast + ?Sized>(error: &D) -> ErrorClass {
    if let Some(overloaded) = error.get::<Overloaded>() {
        return ErrorClass::TransientAfter(overloaded.retry_after);
    }
    if error.get::<BreakerOpen>().is_some() || error.get::<RetryGaveUp>().is_some() {
        return ErrorClass::Permanent;
    }
    if let Some(io) = error.get::<io::Error>() {
        return ErrorClass::of(io);
    }
    ErrorClass::Transient
}

/// `downcast_ref`, which `dyn Any` and `dyn Error` both have but share no
/// trait for.
trait Downcast {
    fn get<T: Error + 'static>(&self) -> Option<&T>;
}

impl Downcast for dyn Any {
    fn get<T: Error + 'static>(&self) -> Option<&T> {
        self.downcast_ref::<T>()
    }
}

impl Downcast for dyn Error + 'static {
    fn get<T: Error + 'static>(&self) -> Option<&T> {
        self.downcast_ref::<T>()
    }
}

/// Parses an HTTP `Retry-After` value in delta-seconds form (`"120"`).
/// `None` for anything else, including the HTTP-date form, which a client
/// should treat as "no usable hint" rather than guess a clock offset.
///
/// ```
/// use std::time::Duration;
/// use resilience_core::tower::parse_retry_after;
///
/// assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
/// assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
/// assert_eq!(parse_retry_after("-1"), None);
/// ```
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse::<u64>().ok().map(Duration::from_secs)
}

/// Where the deadline of one request comes from.
///
/// Implemented by [`NoDeadline`] (the default: only the policy's
/// `overall_timeout` bounds a request) and by closures
/// `Fn(&Req) -> Option<Deadline>`, e.g. reading a [`Deadline`] a caller put
/// in an `http::Request`'s extensions:
/// `|req: &http::Request<B>| req.extensions().get::<Deadline>().cloned()`.
pub trait RequestDeadline<Req> {
    /// The deadline of `request`; `None`: unbounded (the policy's
    /// `overall_timeout` still applies).
    fn deadline(&self, request: &Req) -> Option<Deadline>;
}

impl<Req, F> RequestDeadline<Req> for F
where
    F: Fn(&Req) -> Option<Deadline>,
{
    fn deadline(&self, request: &Req) -> Option<Deadline> {
        self(request)
    }
}

/// No per-request deadline; see [`RequestDeadline`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoDeadline;

impl<Req> RequestDeadline<Req> for NoDeadline {
    fn deadline(&self, _request: &Req) -> Option<Deadline> {
        None
    }
}

/// Retries calls of a service with a [`RetryPolicy`]: [`RetryService`].
///
/// All services built by one layer share the policy: its
/// [`RetryBudget`](crate::budget::RetryBudget) (every request deposits,
/// every retry withdraws when it is decided) and its
/// [`stats`](RetryPolicy::stats).
#[derive(Clone)]
pub struct RetryLayer<C = DefaultRetryClassifier, D = NoDeadline> {
    policy: RetryPolicy,
    classifier: C,
    deadline: D,
}

impl RetryLayer {
    /// A layer retrying with `policy`, classifying with
    /// [`DefaultRetryClassifier`], without per-request deadlines.
    pub fn new(policy: RetryPolicy) -> Self {
        RetryLayer {
            policy,
            classifier: DefaultRetryClassifier,
            deadline: NoDeadline,
        }
    }
}

impl<C, D> RetryLayer<C, D> {
    /// Uses `classifier` to decide which outcomes to retry.
    pub fn classify<C2>(self, classifier: C2) -> RetryLayer<C2, D> {
        RetryLayer {
            policy: self.policy,
            classifier,
            deadline: self.deadline,
        }
    }

    /// Bounds each request's retry loop by the deadline `deadline` gives for
    /// it (see [`RequestDeadline`]).
    pub fn deadline_from<D2>(self, deadline: D2) -> RetryLayer<C, D2> {
        RetryLayer {
            policy: self.policy,
            classifier: self.classifier,
            deadline,
        }
    }

    /// The shared policy (e.g. for its [`stats`](RetryPolicy::stats)).
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }
}

impl<C, D> fmt::Debug for RetryLayer<C, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryLayer")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl<S, C: Clone, D: Clone> Layer<S> for RetryLayer<C, D> {
    type Service = RetryService<S, C, D>;

    fn layer(&self, inner: S) -> Self::Service {
        RetryService {
            inner,
            policy: self.policy.clone(),
            classifier: self.classifier.clone(),
            deadline: self.deadline.clone(),
        }
    }
}

/// A service that retries failed calls of its inner service as its
/// [`RetryPolicy`] allows.
///
/// - The request must be `Clone`: each attempt sends a clone. The inner
///   service must be `Clone` too: the first attempt uses the service that
///   `poll_ready` made ready, each retry a clone of it, made ready first.
/// - Each request deposits into the policy's budget; each retry withdraws
///   from it at decision time, before its backoff sleep (on the policy's
///   clock).
/// - The loop is bounded by the policy's `max_attempts`, its
///   `overall_timeout`, and the request's [`RequestDeadline`]; an attempt
///   still in flight when the deadline passes is dropped.
/// - The classifier ([`RetryClassifier`]) decides about each response and
///   error, and may pass on a `Retry-After` hint.
///
/// When the loop ends without a final outcome, the caller gets the last
/// *retryable response* as it is (e.g. the last 503, with its headers: the
/// caller sees what the server said), or, after a retryable *error*, a boxed
/// [`RetryGaveUp`] whose source is that error. A non-retryable error is
/// returned as the inner service returned it, boxed.
///
/// The response future is boxed (`Pin<Box<dyn Future + Send>>`): one
/// allocation per request, so the service works with hyper, axum and tonic,
/// which need `Send` futures.
#[derive(Clone)]
pub struct RetryService<S, C = DefaultRetryClassifier, D = NoDeadline> {
    inner: S,
    policy: RetryPolicy,
    classifier: C,
    deadline: D,
}

impl<S> RetryService<S> {
    /// Wraps `inner` with `policy`, the default classifier and no
    /// per-request deadline.
    pub fn new(inner: S, policy: RetryPolicy) -> Self {
        RetryService {
            inner,
            policy,
            classifier: DefaultRetryClassifier,
            deadline: NoDeadline,
        }
    }
}

impl<S, C, D> RetryService<S, C, D> {
    /// The policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
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

impl<S: fmt::Debug, C, D> fmt::Debug for RetryService<S, C, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryService")
            .field("inner", &self.inner)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// The response future of [`RetryService`].
pub type RetryFuture<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send + 'static>>;

impl<S, C, D, Req> Service<Req> for RetryService<S, C, D>
where
    S: Service<Req> + Clone + Send + 'static,
    S::Response: Send + 'static,
    S::Error: Into<BoxError> + Send + fmt::Debug + 'static,
    S::Future: Send + 'static,
    C: RetryClassifier<S::Response, S::Error> + Clone + Send + 'static,
    D: RequestDeadline<Req>,
    Req: Clone + Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = RetryFuture<S::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        // Keep the service `poll_ready` made ready for the first attempt and
        // leave a fresh clone in its place (tower's usual idiom).
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        let template = self.inner.clone();
        let policy = self.policy.clone();
        let classifier = self.classifier.clone();
        let deadline = self
            .deadline
            .deadline(&request)
            .unwrap_or_else(|| Deadline::unbounded(policy.clock().clone()));
        Box::pin(run(policy, deadline, classifier, ready, template, request))
    }
}

/// An attempt that did not produce the final outcome, with the classifier's
/// class of it.
enum Failed<Res, E> {
    Response(Res, ErrorClass),
    Error(E, ErrorClass),
}

impl<Res, E> Failed<Res, E> {
    fn class(&self) -> ErrorClass {
        match self {
            Failed::Response(_, class) | Failed::Error(_, class) => *class,
        }
    }
}

impl<Res, E: fmt::Debug> fmt::Debug for Failed<Res, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failed::Response(_, class) => f.debug_tuple("RetryableResponse").field(class).finish(),
            Failed::Error(error, class) => {
                f.debug_tuple("Error").field(error).field(class).finish()
            }
        }
    }
}

async fn run<S, C, Req>(
    policy: RetryPolicy,
    deadline: Deadline,
    classifier: C,
    ready: S,
    template: S,
    request: Req,
) -> Result<S::Response, BoxError>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError> + fmt::Debug,
    C: RetryClassifier<S::Response, S::Error> + Clone,
    Req: Clone,
{
    let mut first = Some(ready);
    let policy_name = policy.name().clone();
    let outcome = policy
        .run_classified_with_deadline(&deadline, Failed::class, move |_attempt| {
            let (service, is_ready) = match first.take() {
                Some(service) => (service, true),
                None => (template.clone(), false),
            };
            let request = request.clone();
            let classifier = classifier.clone();
            attempt(service, is_ready, classifier, request)
        })
        .await;
    let error = match outcome {
        Ok(response) => return Ok(response),
        Err(error) => error,
    };
    let reason = error.kind();
    let attempts = error.attempts();
    match error.into_last_error() {
        Some(Failed::Response(response, _)) => {
            tracing::debug!(
                name = %policy_name,
                attempts,
                reason = reason.as_str(),
                "retries ended, returning the last retryable response"
            );
            Ok(response)
        }
        Some(Failed::Error(error, _)) if reason == RetryErrorKind::NotRetryable => {
            Err(error.into())
        }
        Some(Failed::Error(error, _)) => Err(Box::new(RetryGaveUp::new(
            reason,
            attempts,
            Some(error.into()),
        ))),
        None => Err(Box::new(RetryGaveUp::new(reason, attempts, None))),
    }
}

async fn attempt<S, C, Req>(
    mut service: S,
    is_ready: bool,
    classifier: C,
    request: Req,
) -> Result<S::Response, Failed<S::Response, S::Error>>
where
    S: Service<Req>,
    C: RetryClassifier<S::Response, S::Error>,
{
    if !is_ready && let Err(error) = poll_fn(|cx| service.poll_ready(cx)).await {
        let class = classifier.classify(Err(&error));
        return Err(Failed::Error(error, class));
    }
    match service.call(request).await {
        Ok(response) => match classifier.classify(Ok(&response)) {
            ErrorClass::Permanent => Ok(response),
            class => Err(Failed::Response(response, class)),
        },
        Err(error) => {
            let class = classifier.classify(Err(&error));
            Err(Failed::Error(error, class))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_classification_of_known_errors() {
        let shed = Overloaded {
            retry_after: Duration::from_millis(7),
        };
        let boxed: BoxError = Box::new(shed.clone());
        assert_eq!(
            classify_error(&shed),
            ErrorClass::TransientAfter(Duration::from_millis(7))
        );
        assert_eq!(
            classify_error(&boxed),
            ErrorClass::TransientAfter(Duration::from_millis(7))
        );
        let open: BoxError = Box::new(BreakerOpen {
            retry_after: Duration::from_secs(1),
        });
        assert_eq!(classify_error(&open), ErrorClass::Permanent);
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(classify_error(&refused), ErrorClass::Transient);
        let denied: BoxError = Box::new(io::Error::from(io::ErrorKind::PermissionDenied));
        assert_eq!(classify_error(&denied), ErrorClass::Permanent);
        assert_eq!(classify_error(&"unknown"), ErrorClass::Transient);
    }

    #[test]
    fn retry_after_accepts_delta_seconds_only() {
        assert_eq!(parse_retry_after("0"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(""), None);
        assert_eq!(parse_retry_after("1.5"), None);
        assert_eq!(parse_retry_after("+3"), None);
        assert_eq!(parse_retry_after("99999999999999999999999"), None);
    }
}
