//! [`supervise`]: restart a task with a [`RestartBackoff`] until it completes
//! or a shutdown signal arrives.

use std::fmt;
use std::future::Future;
use std::pin::pin;

use futures::future::{Either, select};

use super::RestartBackoff;
use crate::clock::Clock;

/// Why [`supervise`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SupervisorExit {
    /// The task returned `Ok(())`: it finished its work, nothing to restart.
    Completed,
    /// The shutdown signal completed; a running task was dropped (cancelled)
    /// or a pending restart abandoned.
    Shutdown,
}

/// What [`supervise`] returns.
#[derive(Debug, Clone)]
pub struct SupervisorReport {
    /// Why supervision ended.
    pub exit: SupervisorExit,
    /// Times the task was restarted after a crash.
    pub restarts: u64,
    /// The backoff, with its crash series, for inspection or reuse.
    pub backoff: RestartBackoff,
}

/// Runs `factory()` and restarts it after each crash (an `Err` result),
/// waiting [`RestartBackoff::on_crash`]'s delay on the backoff's clock, until
/// the task returns `Ok(())` or `shutdown` completes.
///
/// The task is a future, run inside this one; a panic in it is not caught.
/// To treat panics as crashes, spawn the work in the factory and map the
/// `JoinError` to an `Err`.
///
/// Emits a `warn` event per crash (with the error and the delay) and an
/// `info` event per restart.
///
/// ```
/// use std::time::Duration;
/// use resilience_core::clock::ManualClock;
/// use resilience_core::restart::{supervise, RestartBackoff, RestartBackoffConfig, SupervisorExit};
///
/// use futures::FutureExt;
///
/// let clock = ManualClock::new();
/// clock.set_auto_advance(true); // sleeps complete at once, time is recorded
/// let backoff = RestartBackoff::with_clock(RestartBackoffConfig::default(), clock.clone())?;
/// let mut runs = 0;
/// let report = supervise(
///     || {
///         runs += 1;
///         let run = runs;
///         async move { if run < 4 { Err("database timeout") } else { Ok(()) } }
///     },
///     backoff,
///     std::future::pending::<()>(),
/// )
/// .now_or_never() // every sleep is instant on this clock: no runtime needed
/// .expect("completes without waiting");
/// assert_eq!(report.exit, SupervisorExit::Completed);
/// assert_eq!(report.restarts, 3);
/// assert_eq!(clock.elapsed(), Duration::from_secs(10 + 20 + 40));
/// # Ok::<(), resilience_core::ConfigError>(())
/// ```
pub async fn supervise<F, Fut, E>(
    mut factory: F,
    mut backoff: RestartBackoff,
    shutdown: impl Future<Output = ()>,
) -> SupervisorReport
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: fmt::Display,
{
    let mut shutdown = pin!(shutdown);
    let mut restarts: u64 = 0;
    loop {
        backoff.on_started();
        let task = pin!(factory());
        let error = match select(task, shutdown.as_mut()).await {
            Either::Left((Ok(()), _)) => {
                tracing::info!(name = %backoff.name(), restarts, "supervised task completed");
                return SupervisorReport {
                    exit: SupervisorExit::Completed,
                    restarts,
                    backoff,
                };
            }
            Either::Left((Err(error), _)) => error,
            Either::Right(((), _)) => {
                tracing::info!(name = %backoff.name(), restarts, "supervisor shut down; running task cancelled");
                return SupervisorReport {
                    exit: SupervisorExit::Shutdown,
                    restarts,
                    backoff,
                };
            }
        };
        let delay = backoff.on_crash();
        tracing::warn!(
            name = %backoff.name(),
            %error,
            ?delay,
            crashes = backoff.crashes(),
            "supervised task crashed"
        );
        let wait = backoff.clock().sleep(delay);
        if let Either::Right(((), _)) = select(wait, shutdown.as_mut()).await {
            tracing::info!(name = %backoff.name(), restarts, "supervisor shut down while waiting to restart");
            return SupervisorReport {
                exit: SupervisorExit::Shutdown,
                restarts,
                backoff,
            };
        }
        restarts = restarts.saturating_add(1);
        tracing::info!(
            name = %backoff.name(),
            restarts,
            crashes = backoff.crashes(),
            "restarting supervised task"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::restart::RestartBackoffConfig;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    fn backoff(clock: &ManualClock) -> RestartBackoff {
        RestartBackoff::with_clock(RestartBackoffConfig::default(), clock.clone()).unwrap()
    }

    #[tokio::test]
    async fn restarts_crashing_task_with_growing_delays_until_it_completes() {
        let clock = ManualClock::new();
        clock.set_auto_advance(true);
        let starts = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = starts.clone();
        let c = clock.clone();
        let report = supervise(
            move || {
                log.lock().unwrap().push(c.elapsed().as_secs());
                let n = log.lock().unwrap().len();
                async move { if n <= 5 { Err("crash") } else { Ok(()) } }
            },
            backoff(&clock),
            std::future::pending(),
        )
        .await;
        assert_eq!(report.exit, SupervisorExit::Completed);
        assert_eq!(report.restarts, 5);
        assert_eq!(report.backoff.crashes(), 5);
        assert_eq!(*starts.lock().unwrap(), [0, 10, 30, 70, 150, 310]);
    }

    #[tokio::test]
    async fn a_long_healthy_run_resets_the_delay() {
        let clock = ManualClock::new();
        clock.set_auto_advance(true);
        let runs = Arc::new(AtomicU32::new(0));
        let r = runs.clone();
        let c = clock.clone();
        let report = supervise(
            move || {
                let run = r.fetch_add(1, Ordering::SeqCst);
                let c = c.clone();
                async move {
                    match run {
                        // Crash loop, then one run of 11 minutes, then a crash.
                        0..=2 => Err("crash"),
                        3 => {
                            c.sleep(Duration::from_secs(660)).await;
                            Err("crash after a long run")
                        }
                        _ => Ok(()),
                    }
                }
            },
            backoff(&clock),
            std::future::pending(),
        )
        .await;
        assert_eq!(report.restarts, 4);
        // 10 + 20 + 40 of backoff, 660 running, then 10 again (reset).
        assert_eq!(
            clock.elapsed(),
            Duration::from_secs(10 + 20 + 40 + 660 + 10)
        );
    }

    #[tokio::test]
    async fn shutdown_while_waiting_abandons_the_restart() {
        let clock = ManualClock::new();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let runs = Arc::new(AtomicU32::new(0));
        let r = runs.clone();
        let supervisor = tokio::spawn(supervise(
            move || {
                r.fetch_add(1, Ordering::SeqCst);
                async { Err::<(), _>("crash") }
            },
            backoff(&clock),
            async {
                let _ = rx.await;
            },
        ));
        while clock.sleepers() == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            clock.next_deadline(),
            Some(clock.now() + Duration::from_secs(10))
        );
        tx.send(()).unwrap();
        let report = supervisor.await.unwrap();
        assert_eq!(report.exit, SupervisorExit::Shutdown);
        assert_eq!(report.restarts, 0);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn shutdown_cancels_a_running_task() {
        let clock = ManualClock::new();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let c = clock.clone();
        let supervisor = tokio::spawn(supervise(
            move || {
                let c = c.clone();
                async move {
                    c.sleep(Duration::from_secs(3600)).await;
                    Ok::<(), &str>(())
                }
            },
            backoff(&clock),
            async {
                let _ = rx.await;
            },
        ));
        while clock.sleepers() == 0 {
            tokio::task::yield_now().await;
        }
        tx.send(()).unwrap();
        let report = supervisor.await.unwrap();
        assert_eq!(report.exit, SupervisorExit::Shutdown);
        assert_eq!(clock.sleepers(), 0, "the task's sleep was dropped");
    }
}
