//! The retry executor's `tracing` events, in a test binary of their own:
//! `tracing` caches per-callsite interest globally, so a test that installs
//! a scoped subscriber races with tests that run without one in the same
//! process.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use resilience_core::deadline::Deadline;
use resilience_core::retry::Retryable;

#[derive(Debug, Clone, PartialEq, Eq)]
enum TestError {
    Transient(u32),
}

impl Retryable for TestError {
    fn is_retryable(&self) -> bool {
        true
    }
}

mod support {
    pub(crate) mod retry;
}
use support::retry::{auto_clock, fixed_backoff, policy_with, tiny_budget};

#[tokio::test]
async fn retry_decisions_emit_tracing_events() {
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let clock = auto_clock();
    let policy = policy_with(&clock, 10, fixed_backoff(100)).with_budget(tiny_budget(&clock, 0.0));
    let _ = policy
        .run(|attempt| async move { Err::<(), _>(TestError::Transient(attempt)) })
        .await;
    let deadline = Deadline::after(clock.clone(), Duration::from_millis(50));
    let _ = policy
        .run_with_deadline(&deadline, |attempt| async move {
            Err::<(), _>(TestError::Transient(attempt))
        })
        .await;

    let logs = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("retrying after backoff"), "{logs}");
    assert!(logs.contains("delay_ms=100"), "{logs}");
    assert!(logs.contains("error=Some(Transient(1))"), "{logs}");
    assert!(logs.contains("retry denied by budget"), "{logs}");
    assert!(logs.contains("retry stopped by deadline"), "{logs}");
}
