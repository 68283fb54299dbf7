//! A request's deadline flows into its sub-calls and cuts them off.

use std::time::Duration;

use resilience_core::clock::{Clock, ManualClock, SystemClock};
use resilience_core::deadline::{Deadline, DeadlineExceeded};

/// A downstream call that takes `took` and gives itself at most 1 s of the
/// caller's deadline.
async fn downstream(deadline: &Deadline, took: Duration) -> Result<&'static str, DeadlineExceeded> {
    let clock = deadline.clock().clone();
    let own = deadline.child(Duration::from_secs(1));
    own.timeout(async move {
        clock.sleep(took).await;
        "row"
    })
    .await
}

#[tokio::test]
async fn sub_calls_share_the_request_deadline() {
    let clock = ManualClock::new();
    let request = Deadline::after(clock.clone(), Duration::from_millis(2_500));
    let handler = {
        let request = request.clone();
        tokio::spawn(async move {
            let first = downstream(&request, Duration::from_millis(800)).await;
            let after_first = request.remaining();
            // This one would take 1.2 s: its own 1 s limit cuts it off.
            let second = downstream(&request, Duration::from_millis(1_200)).await;
            let after_second = request.remaining();
            // Only 700 ms are left for the third call, not its own 1 s.
            let third = downstream(&request, Duration::from_millis(900)).await;
            // Nothing starts after the deadline.
            let fourth = downstream(&request, Duration::ZERO).await;
            (first, after_first, second, after_second, third, fourth)
        })
    };
    while !handler.is_finished() {
        tokio::task::yield_now().await;
        clock.advance_to_next_deadline();
    }
    let (first, after_first, second, after_second, third, fourth) = handler.await.unwrap();
    assert_eq!(first, Ok("row"));
    assert_eq!(after_first, Duration::from_millis(1_700));
    assert_eq!(second, Err(DeadlineExceeded));
    assert_eq!(after_second, Duration::from_millis(700));
    assert_eq!(third, Err(DeadlineExceeded));
    assert_eq!(fourth, Err(DeadlineExceeded));
    assert!(request.is_expired());
    assert_eq!(clock.elapsed(), Duration::from_millis(2_500));
}

#[tokio::test]
async fn clones_see_the_same_deadline_across_tasks() {
    let clock = ManualClock::new();
    let deadline = Deadline::after(clock.clone(), Duration::from_secs(3));
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let deadline = deadline.clone();
            tokio::spawn(async move { deadline.timeout(futures::future::pending::<()>()).await })
        })
        .collect();
    while clock.sleepers() < 4 {
        tokio::task::yield_now().await;
    }
    assert_eq!(clock.next_deadline(), deadline.instant());
    clock.advance(Duration::from_secs(3));
    for task in tasks {
        assert_eq!(task.await.unwrap(), Err(DeadlineExceeded));
    }
}

/// The system clock uses tokio's timer; paused tokio time makes this exact.
#[tokio::test(start_paused = true)]
async fn system_clock_deadlines_fire_on_tokio_time() {
    let start = tokio::time::Instant::now();
    let deadline = Deadline::after(SystemClock, Duration::from_secs(5));
    let out = deadline.timeout(futures::future::pending::<()>()).await;
    assert_eq!(out, Err(DeadlineExceeded));
    assert!(start.elapsed() >= Duration::from_secs(5));
}

#[test]
fn error_message_is_actionable() {
    assert!(
        DeadlineExceeded
            .to_string()
            .starts_with("deadline exceeded")
    );
}
