//! [`RetryBudget`] as a tower [`Budget`](tower::retry::budget::Budget), so a
//! tower retry [`Policy`](tower::retry::Policy) can share it with this
//! crate's retry loops (feature `tower`).

use super::retry_budget::RetryBudget;

/// `deposit` is [`RetryBudget::deposit`] (call it for every original
/// request), `withdraw` is [`RetryBudget::try_withdraw`] (call it when a
/// retry is decided, before any backoff).
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
impl tower::retry::budget::Budget for RetryBudget {
    fn deposit(&self) {
        RetryBudget::deposit(self);
    }

    fn withdraw(&self) -> bool {
        self.try_withdraw()
    }
}
