//! Synchronization primitives, swapped for `loom`'s model-checked versions
//! when built with `RUSTFLAGS="--cfg breakwater_loom"` (see `tests/loom_*.rs`).
//!
//! Lock-free code in this crate imports its atomics from here, never from
//! `std::sync` directly, so that loom can explore every interleaving of it.
#![allow(unused_imports)]

#[cfg(breakwater_loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicUsize};
#[cfg(breakwater_loom)]
pub(crate) use loom::sync::{Arc, Mutex, MutexGuard};

#[cfg(not(breakwater_loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicUsize};
#[cfg(not(breakwater_loom))]
pub(crate) use std::sync::{Arc, Mutex, MutexGuard};
