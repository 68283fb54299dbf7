//! Metric handles of the instances (feature `metrics`), or zero-sized
//! no-ops without it.
//!
//! Every instance registers its handles once, at construction (and again
//! when renamed with `named`), with a `name` label holding its
//! [`InstanceName`]; the hot paths then call a pre-registered handle (no key
//! lookup, no lock). Without the `metrics` feature the handles below are
//! empty structs whose methods compile to nothing.

// Without the feature, the methods below have nothing to do with `self`.
#![cfg_attr(not(feature = "metrics"), allow(clippy::unused_self))]

use std::fmt;

use crate::name::InstanceName;

/// A counter handle.
#[derive(Clone)]
pub(crate) struct Counter {
    #[cfg(feature = "metrics")]
    handle: metrics::Counter,
}

/// A gauge handle.
#[derive(Clone)]
pub(crate) struct Gauge {
    #[cfg(feature = "metrics")]
    handle: metrics::Gauge,
}

#[cfg(feature = "metrics")]
fn labels(name: &InstanceName, extra: &[(&'static str, &'static str)]) -> Vec<metrics::Label> {
    let mut labels = Vec::with_capacity(extra.len() + 1);
    labels.push(metrics::Label::new("name", name.as_str().to_owned()));
    for &(key, value) in extra {
        labels.push(metrics::Label::from_static_parts(key, value));
    }
    labels
}

impl Counter {
    /// Registers `metric` with the current recorder (a no-op handle when
    /// none is installed), labelled `name` plus `extra`.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn register(
        metric: &'static str,
        name: &InstanceName,
        extra: &[(&'static str, &'static str)],
    ) -> Self {
        Counter {
            #[cfg(feature = "metrics")]
            handle: metrics::counter!(metric, labels(name, extra)),
        }
    }

    /// Adds one.
    #[inline]
    pub(crate) fn inc(&self) {
        #[cfg(feature = "metrics")]
        self.handle.increment(1);
    }

    /// Adds `n`.
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn add(&self, n: u64) {
        #[cfg(feature = "metrics")]
        self.handle.increment(n);
    }
}

impl Gauge {
    /// Registers `metric` with the current recorder, labelled `name` plus
    /// `extra`.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn register(
        metric: &'static str,
        name: &InstanceName,
        extra: &[(&'static str, &'static str)],
    ) -> Self {
        Gauge {
            #[cfg(feature = "metrics")]
            handle: metrics::gauge!(metric, labels(name, extra)),
        }
    }

    /// Sets the value.
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn set(&self, value: f64) {
        #[cfg(feature = "metrics")]
        self.handle.set(value);
    }

    /// Adds one.
    #[inline]
    pub(crate) fn inc(&self) {
        #[cfg(feature = "metrics")]
        self.handle.increment(1.0);
    }

    /// Subtracts one.
    #[inline]
    pub(crate) fn dec(&self) {
        #[cfg(feature = "metrics")]
        self.handle.decrement(1.0);
    }
}

impl fmt::Debug for Counter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Counter")
    }
}

impl fmt::Debug for Gauge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Gauge")
    }
}
