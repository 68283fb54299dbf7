//! The workspace's one generational slab.
//!
//! A [`Slab`] stores values under small [`Key`]s and reuses the slots of
//! removed entries. Every key carries the *generation* of its slot at the
//! time it was issued; removing an entry bumps the slot's generation, so
//! copies of the old key go stale: [`Slab::get`], [`Slab::get_mut`] and
//! [`Slab::remove`] return `None` for them instead of reaching whatever
//! entry reuses the slot.
//!
//! A key converts to and from an exact JS number, `generation << 32 | index`
//! ([`Key::to_js_number`], [`Key::from_js_number`]), which is how the Node
//! bindings hand native objects to JavaScript without allocating a JS object.
//!
//! # Generations wrap at 2^21
//!
//! So that `generation << 32 | index` stays below 2^53 (the largest range of
//! integers a JS number represents exactly), generations count modulo 2^21
//! ([`GENERATIONS`]), for every user of the slab. A key goes stale as soon
//! as its entry is removed, and stays stale while its slot is reused, up to
//! 2^21 - 1 times; after exactly 2^21 removals from one slot, a key issued
//! that long ago matches the slot's generation again and would alias the
//! entry living there then. Holders of keys are expected to drop them far
//! sooner than that.
//!
//! # Capacity
//!
//! Indices are `u32`: at most 2^32 entries are live at once. Beyond that,
//! [`Slab::insert`] fails with [`SlabFull`].
//!
//! # Example
//!
//! ```
//! use breakwater_slab::{Key, Slab};
//!
//! let mut slab = Slab::new();
//! let a = slab.insert("a")?;
//! assert_eq!(slab.get(a), Some(&"a"));
//!
//! // Removing an entry makes every copy of its key stale, even once the
//! // slot is reused.
//! assert_eq!(slab.remove(a), Some("a"));
//! let b = slab.insert("b")?;
//! assert_eq!(slab.get(a), None);
//! assert_eq!(slab.get(b), Some(&"b"));
//! assert_eq!(slab.len(), 1);
//!
//! // Keys travel through JavaScript as exact numbers.
//! let number = b.to_js_number();
//! assert!(number < 2f64.powi(53));
//! assert_eq!(Key::from_js_number(number), Some(b));
//! assert_eq!(Key::from_js_number(0.5), None);
//! # Ok::<(), breakwater_slab::SlabFull>(())
//! ```

use std::fmt;

/// How many generations a slot counts through before wrapping: 2^21, so
/// that `generation << 32 | index` stays below 2^53.
pub const GENERATIONS: u32 = 1 << 21;

/// Generations are kept modulo [`GENERATIONS`].
const GENERATION_MASK: u32 = GENERATIONS - 1;

/// 2^32: the factor of the generation in a key's JS number.
const INDEX_RANGE: f64 = 4_294_967_296.0;

/// 2^53: every JS number key is below it.
const JS_EXACT_LIMIT: f64 = 9_007_199_254_740_992.0;

/// A reference to a slab entry: the slot's index plus the generation the
/// slot had when the key was issued.
///
/// Keys are cheap to copy and compare. A key of a removed entry is stale:
/// the slab rejects it (see the [crate docs](crate) for the 2^21 wrap).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    index: u32,
    generation: u32,
}

impl Key {
    /// The slot this key refers to.
    pub const fn index(self) -> u32 {
        self.index
    }

    /// The slot's generation when this key was issued (below
    /// [`GENERATIONS`]).
    pub const fn generation(self) -> u32 {
        self.generation
    }

    /// The key as an exact JS number: `generation * 2^32 + index`, an
    /// integer below 2^53.
    pub fn to_js_number(self) -> f64 {
        f64::from(self.generation) * INDEX_RANGE + f64::from(self.index)
    }

    /// The key a JS number encodes, or `None` if `number` cannot be a key:
    /// not finite, not an integer, negative, or 2^53 and above.
    pub fn from_js_number(number: f64) -> Option<Key> {
        if !(0.0..JS_EXACT_LIMIT).contains(&number) || number.fract() != 0.0 {
            return None;
        }
        let bits = number as u64;
        let index = u32::try_from(bits & 0xFFFF_FFFF).ok()?;
        let generation = u32::try_from(bits >> 32).ok()?;
        if generation > GENERATION_MASK {
            return None;
        }
        Some(Key { index, generation })
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}v{}", self.index, self.generation)
    }
}

/// [`Slab::insert`] failed: 2^32 entries are already live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the slab is full: 2^32 entries are live; remove some before inserting more")]
pub struct SlabFull;

#[derive(Debug)]
struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

/// Storage whose keys go stale when their entry is removed.
///
/// Freed slots are reused last-freed first.
#[derive(Debug)]
pub struct Slab<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Slab<T> {
    /// An empty slab (usable in `const` contexts, e.g. thread-locals).
    pub const fn new() -> Self {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }

    /// Stores `value` and returns its key, or [`SlabFull`] (dropping
    /// `value`) when 2^32 entries are live.
    pub fn insert(&mut self, value: T) -> Result<Key, SlabFull> {
        let index = if let Some(index) = self.free.pop() {
            index
        } else {
            let index = u32::try_from(self.slots.len()).map_err(|_| SlabFull)?;
            self.slots.push(Slot {
                generation: 0,
                value: None,
            });
            index
        };
        let slot = self.slots.get_mut(index as usize).ok_or(SlabFull)?;
        slot.value = Some(value);
        self.len += 1;
        Ok(Key {
            index,
            generation: slot.generation,
        })
    }

    /// The live entry behind `key`, or `None` if it was removed since.
    pub fn get(&self, key: Key) -> Option<&T> {
        self.slots
            .get(key.index as usize)
            .filter(|slot| slot.generation == key.generation)
            .and_then(|slot| slot.value.as_ref())
    }

    /// Mutable access to the live entry behind `key`.
    pub fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        self.slots
            .get_mut(key.index as usize)
            .filter(|slot| slot.generation == key.generation)
            .and_then(|slot| slot.value.as_mut())
    }

    /// Whether `key` refers to a live entry.
    pub fn contains(&self, key: Key) -> bool {
        self.get(key).is_some()
    }

    /// Removes the entry behind `key` and returns it; every copy of `key`
    /// goes stale. A stale key yields `None` and changes nothing.
    pub fn remove(&mut self, key: Key) -> Option<T> {
        let slot = self
            .slots
            .get_mut(key.index as usize)
            .filter(|slot| slot.generation == key.generation)?;
        let value = slot.value.take()?;
        slot.generation = slot.generation.wrapping_add(1) & GENERATION_MASK;
        self.free.push(key.index);
        self.len -= 1;
        Some(value)
    }

    /// Number of live entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no entry is live.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // From the replay's slab.
    #[test]
    fn removed_keys_go_stale_even_when_the_slot_is_reused() {
        let mut slab = Slab::default();
        let a = slab.insert("a").unwrap();
        assert_eq!(slab.remove(a), Some("a"));
        let b = slab.insert("b").unwrap();
        assert_eq!(slab.get(a), None);
        assert_eq!(slab.get(b), Some(&"b"));
        assert_eq!(slab.remove(a), None);
        assert_eq!(slab.len(), 1);
    }

    // From the bindings' `Slots`.
    #[test]
    fn keys_find_their_entries_until_removed() {
        let mut slab = Slab::new();
        let a = slab.insert("a").unwrap();
        let b = slab.insert("b").unwrap();
        assert_eq!(slab.get(a), Some(&"a"));
        assert!(slab.contains(a));
        assert_eq!(slab.remove(a), Some("a"));
        assert_eq!(slab.get(a), None);
        assert!(!slab.contains(a));
        assert_eq!(slab.remove(a), None, "a second remove is a no-op");
        assert_eq!(slab.len(), 1);
        assert_eq!(slab.get(b), Some(&"b"));
    }

    #[test]
    fn a_reused_slot_rejects_the_stale_key() {
        let mut slab = Slab::new();
        let old = slab.insert(1).unwrap();
        slab.remove(old);
        let new = slab.insert(2).unwrap();
        assert_eq!(new.index(), old.index(), "the slot is reused");
        assert_ne!(old, new);
        assert_ne!(old.to_js_number(), new.to_js_number());
        assert_eq!(slab.get(old), None);
        assert_eq!(slab.get_mut(old), None);
        assert_eq!(slab.get(new), Some(&2));
    }

    #[test]
    fn malformed_js_numbers_are_rejected() {
        let mut slab = Slab::new();
        slab.insert(1).unwrap();
        for bad in [
            -1.0,
            -0.5,
            0.5,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            2f64.powi(53),
            2f64.powi(60),
        ] {
            assert_eq!(Key::from_js_number(bad), None, "{bad}");
        }
        assert_eq!(Key::from_js_number(-0.0).map(Key::index), Some(0));
    }

    #[test]
    fn keys_stay_exact_js_numbers_across_generations() {
        let mut slab = Slab::new();
        let mut key = slab.insert(0u8).unwrap();
        for _ in 0..5000 {
            slab.remove(key);
            key = slab.insert(0u8).unwrap();
            let number = key.to_js_number();
            assert!(number < 2f64.powi(53));
            assert_eq!(slab.get(Key::from_js_number(number).unwrap()), Some(&0));
        }
        let last = Key {
            index: 7,
            generation: GENERATION_MASK,
        };
        assert_eq!(
            last.to_js_number(),
            f64::from(GENERATION_MASK) * 2f64.powi(32) + 7.0
        );
        assert_eq!(Key::from_js_number(last.to_js_number()), Some(last));
        assert!(last.to_js_number() < 2f64.powi(53));
    }

    #[test]
    fn generations_wrap_at_2_pow_21_reuses_of_one_slot() {
        let mut slab = Slab::new();
        let first = slab.insert(0u32).unwrap();
        let mut key = first;
        for reuse in 1..GENERATIONS {
            slab.remove(key);
            key = slab.insert(reuse).unwrap();
            assert_eq!(key.generation(), reuse);
        }
        assert_eq!(slab.get(first), None, "stale for 2^21 - 1 reuses");
        slab.remove(key);
        let wrapped = slab.insert(u32::MAX).unwrap();
        assert_eq!(wrapped, first, "the documented alias after 2^21 reuses");
        assert_eq!(wrapped.generation(), 0);
    }

    #[test]
    fn freed_slots_are_reused_last_freed_first() {
        let mut slab = Slab::new();
        let keys: Vec<Key> = (0..3).map(|i| slab.insert(i).unwrap()).collect();
        slab.remove(keys[0]);
        slab.remove(keys[2]);
        assert_eq!(slab.insert(9).unwrap().index(), 2);
        assert_eq!(slab.insert(9).unwrap().index(), 0);
        assert_eq!(slab.insert(9).unwrap().index(), 3);
    }

    #[test]
    fn the_full_error_says_what_to_do() {
        assert!(SlabFull.to_string().contains("remove some"));
    }
}
