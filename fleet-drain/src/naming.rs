//! Names of the resilience-core instances a controller or rollout owns.
//!
//! They are built unrecorded and registered under their owner's name when it is named
//! (`<name>.events`, `<name>.fleet-calls`, `<name>.gate.pause-share`, `<name>.starts`), so no
//! nameless (`name=""`) copy of their series is left in the recorder.

use resilience_core::InstanceName;

/// Runs `f` with no metrics recorder in scope (feature `metrics`; otherwise just runs it).
pub(crate) fn unrecorded<T>(f: impl FnOnce() -> T) -> T {
    #[cfg(feature = "metrics")]
    return metrics::with_local_recorder(&metrics::NoopRecorder, f);
    #[cfg(not(feature = "metrics"))]
    f()
}

/// `<owner>.<part>`, or `None` when that is not a valid instance name (too long).
pub(crate) fn sub_name(owner: &InstanceName, part: &str) -> Option<InstanceName> {
    InstanceName::new(&format!("{owner}.{part}")).ok()
}
