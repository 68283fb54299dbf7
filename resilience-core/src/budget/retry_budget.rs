//! [`RetryBudget`]: the lock-free token budget (the concept and its
//! guarantees are in the [module docs](super)).

use std::collections::VecDeque;
use std::fmt;
use std::sync::PoisonError;
use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};

use crate::clock::{Clock, SharedClock};
use crate::error::ConfigError;
use crate::name::{InstanceName, Named};
use crate::obs::Counter;
use crate::stripe::{self, Padded};
use crate::sync::{AtomicI64, AtomicU64, Mutex};

use super::config::RetryBudgetConfig;

/// Fixed-point scale: one token is `SCALE` units. Decimal, so that ratios
/// written with up to six decimals (0.2, 0.05, 0.6) are represented exactly.
const SCALE: i64 = 1_000_000;
/// Target number of slots per TTL (the slot width is the largest power of
/// two of nanoseconds not above `ttl / TARGET_SLOTS`).
const TARGET_SLOTS: u64 = 256;
/// Bit layout of the packed words: `frozen (1) | tag (31) | count (32)`.
const FROZEN: u64 = 1 << 63;
const TAG_SHIFT: u32 = 32;
const TAG_MASK: u64 = (1 << 31) - 1;
const COUNT_MASK: u64 = (1 << 32) - 1;
/// Counts are flushed to the committed balance before they reach this, so
/// that concurrent increments can never carry into the tag.
const FLUSH_AT: u64 = 1 << 31;
/// Most deposit stripes (per-thread counters).
/// The "budget exhausted" debug event is emitted at most this often.
const LOG_INTERVAL_NANOS: u64 = 1_000_000_000;
const NEVER: u64 = u64::MAX;

fn pack(slot: u64, count: u64) -> u64 {
    ((slot & TAG_MASK) << TAG_SHIFT) | (count & COUNT_MASK)
}

fn tag_matches(word: u64, slot: u64) -> bool {
    word & !COUNT_MASK == (slot & TAG_MASK) << TAG_SHIFT
}

fn count(word: u64) -> u64 {
    word & COUNT_MASK
}

#[derive(Debug)]
struct Stripe {
    /// `frozen | tag | deposits in the current slot`.
    word: AtomicU64,
    /// Denied withdrawals by threads using this stripe (statistics only).
    denied: AtomicU64,
}

#[derive(Debug)]
struct WithdrawHead {
    /// `frozen | tag | withdrawals in the current slot`.
    word: AtomicU64,
    /// Clock time (nanoseconds since the budget's epoch) of the latest
    /// withdrawal; written before the withdrawal's exchange.
    last_at: AtomicU64,
}

#[derive(Debug)]
struct ReadMostly {
    /// Committed balance in units, `SCALE` per token; changes only while the
    /// withdrawal word is frozen.
    base: AtomicI64,
    /// When the oldest committed withdrawal expires (nanoseconds).
    next_refund_at: AtomicU64,
    /// When the last "exhausted" debug event was emitted.
    last_log_at: AtomicU64,
}

/// State owned by the slow path.
#[derive(Debug)]
struct Ring {
    /// The slot the packed words are tagged with.
    slot: u64,
    /// Authoritative committed balance in units.
    base: i128,
    /// Committed, unexpired deposits: `(slot, count)`, oldest first.
    deposits: VecDeque<(u64, u64)>,
    /// Committed, unexpired withdrawals: `(time of the latest one, count)`,
    /// oldest first.
    withdrawals: VecDeque<(u64, u64)>,
    /// Every committed deposit and withdrawal since creation.
    total_deposits: u64,
    total_granted: u64,
}

/// The metric handles of a budget (no-ops without the `metrics` feature).
#[derive(Debug, Clone)]
pub(crate) struct BudgetMetrics {
    deposits: Counter,
    granted: Counter,
    denied: Counter,
}

impl BudgetMetrics {
    pub(crate) fn register(name: &InstanceName) -> Self {
        const WITHDRAWALS: &str = "breakwater_retry_budget_withdrawals_total";
        BudgetMetrics {
            deposits: Counter::register("breakwater_retry_budget_deposits_total", name, &[]),
            granted: Counter::register(WITHDRAWALS, name, &[("decision", "granted")]),
            denied: Counter::register(WITHDRAWALS, name, &[("decision", "denied")]),
        }
    }
}

/// Counters of a [`RetryBudget`] since its creation, for dashboards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RetryBudgetStats {
    /// Calls to [`RetryBudget::deposit`] (original requests).
    pub deposits: u64,
    /// Retries allowed by [`RetryBudget::try_withdraw`].
    pub granted: u64,
    /// Retries refused by [`RetryBudget::try_withdraw`].
    pub denied: u64,
}

// # Memory ordering
//
// The hot paths are lock-free; a mutex is taken only when the time slot
// changes (at most once per slot, i.e. a few hundred times per `ttl`), when
// a withdrawal expires, and by [`RetryBudget::stats`].
//
// - Deposits increment, with a `compare_exchange` (`AcqRel`), a
//   per-thread-striped, cache-padded word that packs `(frozen bit, slot tag,
//   count)`, so threads that only deposit do not contend on one cache line.
//   The exchange only succeeds on an unfrozen word tagged with the current
//   slot, so a deposit is never lost to a concurrent slot rotation.
// - Withdrawals go through a single word packing `(frozen, tag, count)`: a
//   withdrawal loads it (`Acquire`), loads the committed balance and the
//   deposit stripes, and commits with a `compare_exchange` (`AcqRel`) of that
//   word. Racing withdrawals therefore serialize on that word and can never
//   both spend the same last token.
// - The slow path (under the mutex) first *freezes* the withdrawal word
//   (`fetch_or`, `AcqRel`), then the deposit stripes, commits their counts to
//   the committed balance, expires old deposits and withdrawals, and
//   publishes the new slot by storing the stripes and finally the withdrawal
//   word (`Release`). The committed balance only changes while the
//   withdrawal word is frozen, so a withdrawal whose `compare_exchange`
//   succeeds read a balance consistent with it; one that raced with the slow
//   path fails its exchange and retries. A thread that finds a word frozen
//   waits for the slow path on the mutex instead of spinning.
// - Reading a stripe that is being incremented concurrently can only
//   under-count deposits, which can deny a retry in a race but never grant
//   one too many.
//
// The model-checked test `tests/loom_budget.rs` explores these
// interleavings with `loom`.

/// A retry budget: original requests deposit `retry_ratio` of a token, each
/// retry withdraws one, deposits expire after `ttl`, and a floor of
/// `min_retries_per_sec * ttl` tokens allows a trickle of retries at low
/// traffic. See the [module documentation](super) for the rationale and the
/// exact semantics.
///
/// Every method takes `&self`; share one budget through an
/// [`Arc`](std::sync::Arc). Deposits and withdrawals are lock-free.
pub struct RetryBudget {
    config: RetryBudgetConfig,
    clock: SharedClock,
    /// [`Clock::now_coarse_nanos`] when the budget was built.
    epoch: u64,
    /// Slot width is `1 << shift` nanoseconds.
    shift: u32,
    ttl_nanos: u64,
    /// Slots a deposit lives: `floor(ttl / width)`.
    window_slots: u64,
    deposit_units: i64,
    reserve_units: i64,
    head: Padded<WithdrawHead>,
    shared: Padded<ReadMostly>,
    stripes: Box<[Padded<Stripe>]>,
    ring: Mutex<Ring>,
    name: InstanceName,
    metrics: BudgetMetrics,
}

impl RetryBudget {
    /// A budget on the system clock.
    pub fn new(config: RetryBudgetConfig) -> Result<Self, ConfigError> {
        Self::with_clock(config, SharedClock::system())
    }

    /// A budget built from a [`Named`] configuration (a config file's
    /// section with an optional `name` key), on `clock`.
    ///
    /// ```
    /// use resilience_core::Named;
    /// use resilience_core::budget::{RetryBudget, RetryBudgetConfig};
    /// use resilience_core::clock::SharedClock;
    ///
    /// let config: Named<RetryBudgetConfig> = serde_json::from_str(r#"{ "name": "payments" }"#)?;
    /// let budget = RetryBudget::from_named(config, SharedClock::system())?;
    /// assert_eq!(budget.name().as_str(), "payments");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_named(
        config: Named<RetryBudgetConfig>,
        clock: impl Clock,
    ) -> Result<Self, ConfigError> {
        let name = config.instance_name()?;
        Self::build(config.config, clock, name)
    }

    /// Names the budget: the `name` field of its tracing events and the
    /// `name` label of its metrics. Call it right after construction (it
    /// registers the metric handles again, under the new name).
    #[must_use]
    pub fn named(mut self, name: InstanceName) -> Self {
        self.metrics = BudgetMetrics::register(&name);
        self.name = name;
        self
    }

    /// The instance name (`""` when unnamed).
    pub fn name(&self) -> &InstanceName {
        &self.name
    }

    /// A budget on the given clock (a [`ManualClock`](crate::clock::ManualClock)
    /// in tests and simulations).
    pub fn with_clock(config: RetryBudgetConfig, clock: impl Clock) -> Result<Self, ConfigError> {
        Self::build(config, clock, InstanceName::unnamed())
    }

    /// A budget with its name (registered once).
    pub(crate) fn build(
        config: RetryBudgetConfig,
        clock: impl Clock,
        name: InstanceName,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let clock = clock.into_shared();
        let ttl_nanos = u64::try_from(config.ttl.as_nanos()).unwrap_or(u64::MAX);
        let ideal_width = (ttl_nanos / TARGET_SLOTS).max(1);
        let shift = ideal_width.ilog2();
        let window_slots = ttl_nanos >> shift;
        // Validated: ratio in 0..=1000, so this is at most 10^9.
        let deposit_units = (config.retry_ratio * SCALE as f64).round() as i64;
        let reserve =
            u128::from(config.min_retries_per_sec) * u128::from(ttl_nanos) * SCALE as u128
                / 1_000_000_000;
        let reserve_units = i64::try_from(reserve).unwrap_or(i64::MAX);
        let stripes = stripe::stripe_count();
        let epoch = clock.now_coarse_nanos();
        Ok(RetryBudget {
            config,
            clock,
            epoch,
            shift,
            ttl_nanos,
            window_slots,
            deposit_units,
            reserve_units,
            head: Padded(WithdrawHead {
                word: AtomicU64::new(pack(0, 0)),
                last_at: AtomicU64::new(0),
            }),
            shared: Padded(ReadMostly {
                base: AtomicI64::new(reserve_units),
                next_refund_at: AtomicU64::new(NEVER),
                last_log_at: AtomicU64::new(NEVER),
            }),
            stripes: (0..stripes)
                .map(|_| {
                    Padded(Stripe {
                        word: AtomicU64::new(pack(0, 0)),
                        denied: AtomicU64::new(0),
                    })
                })
                .collect(),
            ring: Mutex::new(Ring {
                slot: 0,
                base: i128::from(reserve_units),
                deposits: VecDeque::new(),
                withdrawals: VecDeque::new(),
                total_deposits: 0,
                total_granted: 0,
            }),
            metrics: BudgetMetrics::register(&name),
            name,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RetryBudgetConfig {
        &self.config
    }

    /// Records one original request: adds `retry_ratio` of a token for the
    /// next `ttl`. Call it for every first attempt, whatever its outcome.
    pub fn deposit(&self) {
        let now = self.now_nanos();
        let mut slot = now >> self.shift;
        let stripe = self.stripe();
        loop {
            let word = stripe.word.load(Ordering::Acquire);
            if word & FROZEN != 0 || !tag_matches(word, slot) || count(word) >= FLUSH_AT {
                slot = self.advance(now, slot, count(word) >= FLUSH_AT);
                continue;
            }
            // A compare-exchange rather than `fetch_add`: it can never land
            // on a word the slow path has frozen in the meantime. The stripe
            // is (nearly) private to this thread, so it rarely fails.
            if stripe
                .word
                .compare_exchange(word, word + 1, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                self.metrics.deposits.inc();
                return;
            }
        }
    }

    /// Records `n` original requests at once, as `n` calls to
    /// [`RetryBudget::deposit`] now would: for callers that report
    /// first attempts in batches (the Node bindings do).
    pub fn deposit_many(&self, n: u64) {
        let now = self.now_nanos();
        let mut slot = now >> self.shift;
        let stripe = self.stripe();
        let mut left = n;
        while left > 0 {
            let word = stripe.word.load(Ordering::Acquire);
            let pending = count(word);
            if word & FROZEN != 0 || !tag_matches(word, slot) || pending >= FLUSH_AT {
                slot = self.advance(now, slot, pending >= FLUSH_AT);
                continue;
            }
            // Never past the flush mark, so the 32-bit count cannot wrap.
            let add = left.min(FLUSH_AT - pending);
            // A compare-exchange, as in `deposit`.
            if stripe
                .word
                .compare_exchange(word, word + add, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                self.metrics.deposits.add(add);
                left -= add;
            }
        }
    }

    /// Asks for one retry: takes one token and returns `true` if the balance
    /// holds at least one, otherwise returns `false` (and counts a denial).
    pub fn try_withdraw(&self) -> bool {
        let now = self.now_nanos();
        let mut slot = now >> self.shift;
        'retry: loop {
            let head = self.head.0.word.load(Ordering::Acquire);
            let flush = count(head) >= FLUSH_AT;
            if head & FROZEN != 0
                || !tag_matches(head, slot)
                || flush
                || now >= self.shared.0.next_refund_at.load(Ordering::Acquire)
            {
                slot = self.advance(now, slot, flush);
                continue;
            }
            let base = self.shared.0.base.load(Ordering::Acquire);
            let mut deposits: u64 = 0;
            for stripe in &*self.stripes {
                let word = stripe.0.word.load(Ordering::Acquire);
                if word & FROZEN != 0 || !tag_matches(word, slot) {
                    // A rotation is under way (our exchange would fail):
                    // wait for it on the lock rather than spin.
                    slot = self.advance(now, slot, false);
                    continue 'retry;
                }
                deposits += count(word);
            }
            let balance = i128::from(base) + i128::from(self.deposit_units) * i128::from(deposits)
                - i128::from(SCALE) * i128::from(count(head));
            if balance < i128::from(SCALE) {
                self.denied(now, balance);
                return false;
            }
            // Publish the time before the exchange, so that the slow path
            // that commits this withdrawal sees it (see `Memory ordering`).
            if self.head.0.last_at.load(Ordering::Relaxed) < now {
                self.head.0.last_at.fetch_max(now, Ordering::Release);
            }
            if self
                .head
                .0
                .word
                .compare_exchange(head, head + 1, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                self.metrics.granted.inc();
                return true;
            }
        }
    }

    /// The current balance in tokens (may be fractional). A retry is granted
    /// while it is at least 1.
    pub fn balance(&self) -> f64 {
        let units = self.balance_units();
        units as f64 / SCALE as f64
    }

    /// How many retries would be granted right now (the integral part of a
    /// positive [balance](Self::balance)).
    pub fn available(&self) -> u64 {
        u64::try_from(self.balance_units() / i128::from(SCALE)).unwrap_or(0)
    }

    /// Deposits, granted and denied retries since creation.
    pub fn stats(&self) -> RetryBudgetStats {
        let ring = self.lock_ring();
        // Under the lock nothing is frozen: the words hold the uncommitted
        // counts of the current slot.
        let pending: u64 = self
            .stripes
            .iter()
            .map(|s| count(s.0.word.load(Ordering::Acquire)))
            .sum();
        let granted = count(self.head.0.word.load(Ordering::Acquire));
        RetryBudgetStats {
            deposits: ring.total_deposits + pending,
            granted: ring.total_granted + granted,
            denied: self
                .stripes
                .iter()
                .map(|s| s.0.denied.load(Ordering::Relaxed))
                .sum(),
        }
    }

    fn balance_units(&self) -> i128 {
        let now = self.now_nanos();
        self.advance(now, now >> self.shift, false);
        let ring = self.lock_ring();
        let pending: u64 = self
            .stripes
            .iter()
            .map(|s| count(s.0.word.load(Ordering::Acquire)))
            .sum();
        let withdrawn = count(self.head.0.word.load(Ordering::Acquire));
        ring.base + i128::from(self.deposit_units) * i128::from(pending)
            - i128::from(SCALE) * i128::from(withdrawn)
    }

    #[cold]
    fn denied(&self, now: u64, balance: i128) {
        self.stripe().denied.fetch_add(1, Ordering::Relaxed);
        self.metrics.denied.inc();
        // Field values are only computed when the event is enabled.
        tracing::trace!(
            name = %self.name,
            balance = balance as f64 / SCALE as f64,
            "retry denied by budget"
        );
        if !tracing::enabled!(tracing::Level::DEBUG) {
            return;
        }
        // Rate-limited: in an outage most retries are denied, so one event
        // per second summarizes them.
        let last = self.shared.0.last_log_at.load(Ordering::Relaxed);
        if (last == NEVER || now.saturating_sub(last) >= LOG_INTERVAL_NANOS)
            && self
                .shared
                .0
                .last_log_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let denied: u64 = self
                .stripes
                .iter()
                .map(|s| s.0.denied.load(Ordering::Relaxed))
                .sum();
            tracing::debug!(
                name = %self.name,
                balance = balance as f64 / SCALE as f64,
                retry_ratio = self.config.retry_ratio,
                min_retries_per_sec = self.config.min_retries_per_sec,
                denied_total = denied,
                "retry denied by budget (logged at most once per second)"
            );
        }
    }

    fn now_nanos(&self) -> u64 {
        self.clock.now_coarse_nanos().saturating_sub(self.epoch)
    }

    fn stripe(&self) -> &Stripe {
        stripe::pick(&self.stripes)
    }

    fn lock_ring(&self) -> crate::sync::MutexGuard<'_, Ring> {
        // The slow path cannot panic between freezing and unfreezing, and
        // every `Ring` update is complete before the guard drops.
        self.ring.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The slow path: moves to `slot` (if it is newer), commits the counts
    /// of the packed words (always if `flush`), expires old deposits and
    /// withdrawals, and returns the slot the words are now tagged with.
    #[cold]
    #[inline(never)]
    fn advance(&self, now: u64, slot: u64, flush: bool) -> u64 {
        let mut ring = self.lock_ring();
        if slot < ring.slot {
            // Our clock reading is older than another thread's.
            return ring.slot;
        }
        let refund_due = ring
            .withdrawals
            .front()
            .is_some_and(|&(last, _)| now >= last.saturating_add(self.ttl_nanos));
        if slot == ring.slot && !flush && !refund_due {
            return slot;
        }
        let ring = &mut *ring;
        // Freeze: the withdrawal word first, so that any withdrawal that
        // read the old balance fails its exchange.
        let withdrawn = count(self.head.0.word.fetch_or(FROZEN, Ordering::AcqRel));
        let mut deposited: u64 = 0;
        for stripe in &*self.stripes {
            deposited += count(stripe.0.word.fetch_or(FROZEN, Ordering::AcqRel));
        }
        // Commit the current slot's counts.
        if deposited > 0 {
            match ring.deposits.back_mut() {
                Some((s, c)) if *s == ring.slot => *c += deposited,
                _ => ring.deposits.push_back((ring.slot, deposited)),
            }
            ring.total_deposits += deposited;
            ring.base += i128::from(self.deposit_units) * i128::from(deposited);
        }
        if withdrawn > 0 {
            let last = self.head.0.last_at.load(Ordering::Acquire);
            match ring.withdrawals.back_mut() {
                // Merging into the same slot's entry only delays the older
                // withdrawals' expiry: conservative.
                Some((l, c)) if *l >> self.shift == last >> self.shift => {
                    *l = last;
                    *c += withdrawn;
                }
                _ => ring.withdrawals.push_back((last, withdrawn)),
            }
            ring.total_granted += withdrawn;
            ring.base -= i128::from(SCALE) * i128::from(withdrawn);
        }
        // Expire.
        while let Some(&(s, c)) = ring.deposits.front() {
            if s.saturating_add(self.window_slots) > slot {
                break;
            }
            ring.base -= i128::from(self.deposit_units) * i128::from(c);
            ring.deposits.pop_front();
        }
        while let Some(&(last, c)) = ring.withdrawals.front() {
            if now < last.saturating_add(self.ttl_nanos) {
                break;
            }
            ring.base += i128::from(SCALE) * i128::from(c);
            ring.withdrawals.pop_front();
        }
        if ring.deposits.is_empty() && ring.withdrawals.is_empty() {
            // Exactly the floor again (no rounding drift can accumulate).
            ring.base = i128::from(self.reserve_units);
        }
        ring.slot = slot;
        let next_refund = ring
            .withdrawals
            .front()
            .map_or(NEVER, |&(last, _)| last.saturating_add(self.ttl_nanos));
        let base =
            i64::try_from(ring.base).unwrap_or(if ring.base < 0 { i64::MIN } else { i64::MAX });
        self.shared.0.base.store(base, Ordering::Release);
        self.shared
            .0
            .next_refund_at
            .store(next_refund, Ordering::Release);
        // Publish: stripes first, the withdrawal word last.
        for stripe in &*self.stripes {
            stripe.0.word.store(pack(slot, 0), Ordering::Release);
        }
        self.head.0.word.store(pack(slot, 0), Ordering::Release);
        tracing::trace!(
            name = %self.name,
            slot,
            deposited,
            withdrawn,
            balance = ring.base as f64 / SCALE as f64,
            "retry budget window advanced"
        );
        slot
    }
}

impl fmt::Debug for RetryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryBudget")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("balance", &self.balance())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
