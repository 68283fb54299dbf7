//! `RetryBudget` as tower's retry `Budget`: a tower `Retry` middleware whose
//! policy asks the crate's budget, with the same ratio as the crate's own
//! retry loops.
#![cfg(feature = "tower")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::future::{Ready, ready};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use resilience_core::budget::{RetryBudget, RetryBudgetConfig};
use resilience_core::clock::ManualClock;
use tower::retry::budget::Budget;
use tower::retry::{Policy, Retry};
use tower::{Service, ServiceExt, service_fn};

/// A tower retry policy spending a shared budget: deposit on every original
/// request, withdraw for every retry, at most `attempts` attempts.
struct BudgetedPolicy<B> {
    budget: Arc<B>,
    attempts_left: u32,
}

// Not derived: that would require `B: Clone`; the budget is shared.
impl<B> Clone for BudgetedPolicy<B> {
    fn clone(&self) -> Self {
        BudgetedPolicy {
            budget: self.budget.clone(),
            attempts_left: self.attempts_left,
        }
    }
}

impl<B: Budget, Req: Clone, Res, E> Policy<Req, Res, E> for BudgetedPolicy<B> {
    type Future = Ready<()>;

    fn retry(&mut self, _req: &mut Req, result: &mut Result<Res, E>) -> Option<Self::Future> {
        if result.is_ok() || self.attempts_left <= 1 {
            return None;
        }
        if !self.budget.withdraw() {
            return None;
        }
        self.attempts_left -= 1;
        Some(ready(()))
    }

    fn clone_request(&mut self, req: &Req) -> Option<Req> {
        Some(req.clone())
    }
}

fn budget(ratio: f64) -> Arc<RetryBudget> {
    Arc::new(
        RetryBudget::with_clock(
            RetryBudgetConfig {
                ttl: Duration::from_secs(10),
                min_retries_per_sec: 0,
                retry_ratio: ratio,
            },
            ManualClock::new(),
        )
        .unwrap(),
    )
}

#[tokio::test]
async fn a_tower_retry_policy_spends_a_retry_budget_like_the_crates_own_loops() {
    let budget = budget(0.2);
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    // A dependency in a full outage: every call fails.
    let failing = service_fn(move |_req: u32| {
        counter.fetch_add(1, Ordering::SeqCst);
        ready(Err::<u32, &'static str>("unavailable"))
    });
    let policy = BudgetedPolicy {
        budget: budget.clone(),
        attempts_left: 5,
    };
    let mut service = Retry::new(policy, failing);

    for request in 0..100 {
        // Every original request deposits, as `RetryPolicy` does.
        Budget::deposit(&*budget);
        let result = service.ready().await.unwrap().call(request).await;
        assert_eq!(result, Err("unavailable"));
    }

    // 100 requests at ratio 0.2: 20 retries in all, not 4 per request.
    let stats = budget.stats();
    assert_eq!(stats.deposits, 100);
    assert_eq!(stats.granted, 20);
    assert_eq!(calls.load(Ordering::SeqCst), 120);
}

#[test]
fn budget_trait_methods_are_deposit_and_try_withdraw() {
    let budget = budget(1.0);
    assert!(!Budget::withdraw(&*budget), "empty: no token");
    Budget::deposit(&*budget);
    assert!(
        Budget::withdraw(&*budget),
        "one deposit at ratio 1: one retry"
    );
    assert!(!Budget::withdraw(&*budget));
    let stats = budget.stats();
    assert_eq!((stats.deposits, stats.granted, stats.denied), (1, 1, 2));
}
