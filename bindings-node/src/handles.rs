//! Numeric handles: how JS refers to native objects on the hot path.
//!
//! Permits handed to JS (breaker and limit permits) are numbers: keys into
//! a per-object [`Slots`] table, so acquiring one creates no JS object. A
//! key is a JS number (`generation << 32 | index`, below 2^53), so a stale
//! key (a slot reused after a release) is detected. Objects that other
//! exports look up (budgets shared with retry policies, limits for the
//! async `limitAcquire`) live in per-thread tables of the same kind.
//!
//! Each table is owned by the JS thread that created its entries (a napi
//! environment runs on one thread; worker threads get their own tables).
//! The JS wrapper keeps a [`Handle`] per native object: when the wrapper is
//! garbage-collected, the handle's finalizer removes the entry.

use std::cell::RefCell;
use std::fmt;
use std::thread::LocalKey;

use breakwater_slab::{Key, Slab};
use napi_derive::napi;

use crate::error::{BwError, BwResult};

/// A table of native objects keyed by JS numbers: the workspace's
/// generational [`Slab`], whose keys cross into JS as exact numbers
/// (`generation << 32 | index`, below 2^53; generations wrap at 2^21). A key
/// used after its entry was removed (and the slot reused) is rejected instead
/// of reaching another entry, as is any number that is not a key.
#[derive(Debug)]
pub struct Slots<T> {
    slab: Slab<T>,
}

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Slots<T> {
    /// An empty table.
    pub const fn new() -> Self {
        Slots { slab: Slab::new() }
    }

    /// Stores `value`; returns its key, or `None` if the table is full
    /// (2^32 entries).
    pub fn insert(&mut self, value: T) -> Option<f64> {
        self.slab.insert(value).ok().map(Key::to_js_number)
    }

    /// The entry under `key`, if it is still there.
    pub fn get(&self, key: f64) -> Option<&T> {
        self.slab.get(Key::from_js_number(key)?)
    }

    /// The entry under `key`, mutably.
    pub fn get_mut(&mut self, key: f64) -> Option<&mut T> {
        self.slab.get_mut(Key::from_js_number(key)?)
    }

    /// Removes and returns the entry under `key`; its key is dead from now
    /// on.
    pub fn remove(&mut self, key: f64) -> Option<T> {
        self.slab.remove(Key::from_js_number(key)?)
    }

    /// Entries stored.
    pub fn len(&self) -> usize {
        self.slab.len()
    }

    /// Whether no entry is stored.
    pub fn is_empty(&self) -> bool {
        self.slab.is_empty()
    }
}

/// A per-thread table of native objects of one kind.
pub type Table<T> = LocalKey<RefCell<Slots<T>>>;

/// Runs `body` on the entry `key` of `table`. A missing entry is a
/// `RangeError` naming `what` (the JS wrapper never passes a dead key;
/// someone calling the raw addon might).
pub fn with_entry<T: 'static, R>(
    table: &'static Table<T>,
    key: f64,
    what: &str,
    body: impl FnOnce(&mut T) -> BwResult<R>,
) -> BwResult<R> {
    table
        .try_with(|cell| {
            let mut slots = cell.try_borrow_mut().map_err(|_| busy(what))?;
            let entry = slots
                .get_mut(key)
                .ok_or_else(|| BwError::range(format!("unknown or released {what} handle")))?;
            body(entry)
        })
        .map_err(|_| busy(what))?
}

/// Stores `value` in `table`, returning its key.
pub fn insert<T: 'static>(table: &'static Table<T>, what: &str, value: T) -> BwResult<f64> {
    table
        .try_with(|cell| {
            let mut slots = cell.try_borrow_mut().map_err(|_| busy(what))?;
            slots
                .insert(value)
                .ok_or_else(|| BwError::range(format!("too many live {what} objects")))
        })
        .map_err(|_| busy(what))?
}

/// Removes the entry `key` from `table` and returns it. Never fails: a dead
/// key or a table being torn down yields `None`.
pub fn remove<T: 'static>(table: &'static Table<T>, key: f64) -> Option<T> {
    table
        .try_with(|cell| cell.try_borrow_mut().ok()?.remove(key))
        .ok()
        .flatten()
}

fn busy(what: &str) -> BwError {
    BwError::coded(
        crate::error::INTERNAL,
        format!("the {what} table is not accessible from this thread right now"),
    )
}

/// Owner of one table entry, held by the JS wrapper object. When the
/// wrapper is garbage-collected, the handle's finalizer removes the entry.
#[napi]
pub struct Handle {
    key: f64,
    release: fn(f64),
}

impl Handle {
    /// A handle that calls `release(key)` when it is finalized.
    pub fn new(key: f64, release: fn(f64)) -> Self {
        Handle { key, release }
    }
}

#[napi]
impl Handle {
    /// The key to pass to the addon's functions.
    #[napi(getter)]
    pub fn key(&self) -> f64 {
        self.key
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        (self.release)(self.key);
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The slab's own behaviour (staleness, generations, the JS-number
    // encoding) is tested in `breakwater-slab`; this checks the f64 wrapper.
    #[test]
    fn number_keys_reach_their_entries_and_stale_or_malformed_ones_do_not() {
        let mut slots = Slots::new();
        let old = slots.insert(1).unwrap();
        assert_eq!(old, 0.0, "the first key is slot 0, generation 0");
        assert_eq!(slots.get(old), Some(&1));
        assert_eq!(slots.remove(old), Some(1));
        let new = slots.insert(2).unwrap();
        assert_eq!(new, 2f64.powi(32), "slot 0 reused at generation 1");
        assert_eq!(slots.get(old), None);
        assert_eq!(slots.remove(old), None);
        *slots.get_mut(new).unwrap() += 1;
        assert_eq!(slots.get(new), Some(&3));
        assert_eq!(slots.len(), 1);
        for bad in [-1.0, 0.5, f64::NAN, f64::INFINITY, 2f64.powi(53)] {
            assert_eq!(slots.get(bad), None, "{bad}");
            assert_eq!(slots.get_mut(bad), None, "{bad}");
            assert_eq!(slots.remove(bad), None, "{bad}");
        }
        assert_eq!(slots.remove(new), Some(3));
        assert!(slots.is_empty());
    }
}
