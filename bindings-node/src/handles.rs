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

use napi_derive::napi;

use crate::error::{BwError, BwResult};

/// Generations wrap at 2^21, so `generation << 32 | index` stays an exact
/// JS number (< 2^53).
const GENERATION_MASK: u32 = (1 << 21) - 1;

/// A slab whose keys carry a generation, so that a key used after its entry
/// was removed (and the slot reused) is rejected instead of reaching another
/// entry.
#[derive(Debug)]
pub struct Slots<T> {
    entries: Vec<Entry<T>>,
    free: Vec<u32>,
    len: usize,
}

#[derive(Debug)]
struct Entry<T> {
    generation: u32,
    value: Option<T>,
}

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Slots {
            entries: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Slots<T> {
    /// An empty table.
    pub const fn new() -> Self {
        Slots {
            entries: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }

    /// Stores `value`; returns its key, or `None` if the table is full
    /// (2^32 entries).
    pub fn insert(&mut self, value: T) -> Option<f64> {
        let index = if let Some(index) = self.free.pop() {
            index
        } else {
            let index = u32::try_from(self.entries.len()).ok()?;
            self.entries.push(Entry {
                generation: 0,
                value: None,
            });
            index
        };
        let entry = self.entries.get_mut(index as usize)?;
        entry.value = Some(value);
        self.len += 1;
        Some(encode(index, entry.generation))
    }

    /// The entry under `key`, if it is still there.
    pub fn get(&self, key: f64) -> Option<&T> {
        let (index, generation) = decode(key)?;
        let entry = self.entries.get(index as usize)?;
        if entry.generation != generation {
            return None;
        }
        entry.value.as_ref()
    }

    /// The entry under `key`, mutably.
    pub fn get_mut(&mut self, key: f64) -> Option<&mut T> {
        let (index, generation) = decode(key)?;
        let entry = self.entries.get_mut(index as usize)?;
        if entry.generation != generation {
            return None;
        }
        entry.value.as_mut()
    }

    /// Removes and returns the entry under `key`; its key is dead from now
    /// on.
    pub fn remove(&mut self, key: f64) -> Option<T> {
        let (index, generation) = decode(key)?;
        let entry = self.entries.get_mut(index as usize)?;
        if entry.generation != generation {
            return None;
        }
        let value = entry.value.take()?;
        entry.generation = entry.generation.wrapping_add(1) & GENERATION_MASK;
        self.free.push(index);
        self.len -= 1;
        Some(value)
    }

    /// Entries stored.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no entry is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

fn encode(index: u32, generation: u32) -> f64 {
    f64::from(generation) * 4_294_967_296.0 + f64::from(index)
}

fn decode(key: f64) -> Option<(u32, u32)> {
    if !(0.0..9_007_199_254_740_992.0).contains(&key) || key.fract() != 0.0 {
        return None;
    }
    let bits = key as u64;
    let index = (bits & 0xFFFF_FFFF) as u32;
    let generation = u32::try_from(bits >> 32).ok()?;
    Some((index, generation))
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

    #[test]
    fn keys_find_their_entries_until_removed() {
        let mut slots = Slots::new();
        let a = slots.insert("a").unwrap();
        let b = slots.insert("b").unwrap();
        assert_eq!(slots.get(a), Some(&"a"));
        assert_eq!(slots.remove(a), Some("a"));
        assert_eq!(slots.get(a), None);
        assert_eq!(slots.remove(a), None, "a second remove is a no-op");
        assert_eq!(slots.len(), 1);
        assert_eq!(slots.get(b), Some(&"b"));
    }

    #[test]
    fn a_reused_slot_rejects_the_stale_key() {
        let mut slots = Slots::new();
        let old = slots.insert(1).unwrap();
        slots.remove(old);
        let new = slots.insert(2).unwrap();
        assert_ne!(old, new);
        assert_eq!(slots.get(old), None);
        assert_eq!(slots.get(new), Some(&2));
    }

    #[test]
    fn malformed_keys_are_rejected() {
        let mut slots = Slots::new();
        slots.insert(1).unwrap();
        for bad in [-1.0, 0.5, f64::NAN, f64::INFINITY, 2f64.powi(53)] {
            assert_eq!(slots.get(bad), None, "{bad}");
        }
    }

    #[test]
    fn keys_stay_exact_js_numbers_across_generations() {
        let mut slots = Slots::new();
        let mut key = slots.insert(0u8).unwrap();
        for _ in 0..5000 {
            slots.remove(key);
            key = slots.insert(0u8).unwrap();
            assert!(key < 2f64.powi(53));
            assert_eq!(slots.get(key), Some(&0));
        }
        assert_eq!(
            encode(7, GENERATION_MASK),
            f64::from(GENERATION_MASK) * 2f64.powi(32) + 7.0
        );
        assert_eq!(
            decode(encode(7, GENERATION_MASK)),
            Some((7, GENERATION_MASK))
        );
    }
}
