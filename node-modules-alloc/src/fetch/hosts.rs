//! Per registry host: a `ConcurrencyLimit` on connections and a `CircuitBreaker`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use resilience_core::InstanceName;
use resilience_core::breaker::{BreakerConfig, CircuitBreaker};
use resilience_core::clock::SharedClock;
use resilience_core::limit::{ConcurrencyLimit, ConcurrencyLimitConfig};

use crate::error::Result;

/// The limit and breaker of one `scheme://host[:port]`.
#[derive(Debug)]
pub(crate) struct Host {
    pub(crate) limit: ConcurrencyLimit,
    pub(crate) breaker: CircuitBreaker,
}

/// Hosts met so far, created on first use (a lockfile names a handful).
#[derive(Debug)]
pub(crate) struct Hosts {
    limit: ConcurrencyLimitConfig,
    breaker: BreakerConfig,
    clock: SharedClock,
    known: Mutex<HashMap<String, Arc<Host>>>,
}

impl Hosts {
    pub(crate) fn new(
        limit: ConcurrencyLimitConfig,
        breaker: BreakerConfig,
        clock: SharedClock,
    ) -> Self {
        Self {
            limit,
            breaker,
            clock,
            known: Mutex::new(HashMap::new()),
        }
    }

    /// The limit and breaker of `key` (`scheme://host[:port]`); each is named after it.
    pub(crate) fn get(&self, key: &str) -> Result<Arc<Host>> {
        let mut hosts = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(host) = hosts.get(key) {
            return Ok(Arc::clone(host));
        }
        let mut limit = ConcurrencyLimit::with_clock(self.limit.clone(), self.clock.clone())
            .map_err(|e| e.nested("per_host"))?;
        let mut breaker = CircuitBreaker::with_clock(self.breaker.clone(), self.clock.clone())
            .map_err(|e| e.nested("breaker"))?;
        // The host is the name of both (a name is what their tracing events and metrics
        // carry); a host that is no valid instance name stays unnamed.
        if let Ok(name) = InstanceName::new(key) {
            limit = limit.named(name.clone());
            breaker = breaker.named(name);
        }
        let host = Arc::new(Host { limit, breaker });
        hosts.insert(key.to_owned(), Arc::clone(&host));
        Ok(host)
    }
}
