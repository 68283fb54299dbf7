//! Property tests of the slab against a model (a map of live keys).

use std::collections::{HashMap, HashSet};

use breakwater_slab::{GENERATIONS, Key, Slab};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Insert(u32),
    /// Removes the n-th key ever issued (mod their count), live or not.
    Remove(usize),
    /// Reads (and bumps) the n-th key ever issued.
    Touch(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => any::<u32>().prop_map(Op::Insert),
        2 => any::<usize>().prop_map(Op::Remove),
        1 => any::<usize>().prop_map(Op::Touch),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Within fewer than 2^21 reuses of any slot (far more than these runs
    /// reach), a removed key is never handed out again, stale keys reach
    /// nothing, live keys reach their own value, and `len` counts the live
    /// entries.
    #[test]
    fn behaves_like_a_map_of_live_keys(ops in prop::collection::vec(op(), 1..400)) {
        let mut slab = Slab::new();
        let mut live: HashMap<Key, u32> = HashMap::new();
        let mut issued: Vec<Key> = Vec::new();
        let mut ever: HashSet<Key> = HashSet::new();
        for op in ops {
            match op {
                Op::Insert(value) => {
                    let key = slab.insert(value).unwrap();
                    prop_assert!(ever.insert(key), "key {key} handed out twice");
                    issued.push(key);
                    live.insert(key, value);
                }
                Op::Remove(n) if !issued.is_empty() => {
                    let key = issued[n % issued.len()];
                    prop_assert_eq!(slab.remove(key), live.remove(&key));
                }
                Op::Touch(n) if !issued.is_empty() => {
                    let key = issued[n % issued.len()];
                    match (slab.get_mut(key), live.get_mut(&key)) {
                        (Some(got), Some(want)) => {
                            prop_assert_eq!(*got, *want);
                            *got = got.wrapping_add(1);
                            *want = want.wrapping_add(1);
                        }
                        (None, None) => {}
                        (got, want) => prop_assert!(false, "{key}: slab {got:?}, model {want:?}"),
                    }
                }
                Op::Remove(_) | Op::Touch(_) => {}
            }
            prop_assert_eq!(slab.len(), live.len());
            prop_assert_eq!(slab.is_empty(), live.is_empty());
            for key in &issued {
                prop_assert_eq!(slab.get(*key), live.get(key));
                prop_assert_eq!(slab.contains(*key), live.contains_key(key));
            }
        }
    }

    /// Every key a slab issues is an exact integer JS number below 2^53
    /// that decodes back to the same key, however often its slot was reused.
    #[test]
    fn issued_keys_round_trip_through_js_numbers(
        slots in 1usize..8,
        churn in prop::collection::vec(any::<usize>(), 0..300),
    ) {
        let mut slab = Slab::new();
        let mut keys: Vec<Key> = (0..slots).map(|i| slab.insert(i).unwrap()).collect();
        for n in churn {
            let i = n % keys.len();
            let value = slab.remove(keys[i]).unwrap();
            keys[i] = slab.insert(value).unwrap();
            for key in &keys {
                let number = key.to_js_number();
                prop_assert!(number < 2f64.powi(53));
                prop_assert_eq!(number.fract(), 0.0);
                prop_assert_eq!(Key::from_js_number(number), Some(*key));
            }
        }
    }

    /// Every (index, generation) a key can have encodes below 2^53 and
    /// decodes back.
    #[test]
    fn every_key_shape_round_trips(index: u32, generation in 0..GENERATIONS) {
        let number = f64::from(generation) * 2f64.powi(32) + f64::from(index);
        let key = Key::from_js_number(number).unwrap();
        prop_assert_eq!(key.index(), index);
        prop_assert_eq!(key.generation(), generation);
        prop_assert_eq!(key.to_js_number(), number);
        prop_assert!(number < 2f64.powi(53));
    }

    /// A number decodes iff it is an integer in [0, 2^53), and then encodes
    /// back to itself.
    #[test]
    fn js_numbers_decode_only_when_exact(number in prop_oneof![
        any::<f64>(),
        (0u64..(1 << 53)).prop_map(|n| n as f64),
        (0u64..(1 << 53)).prop_map(|n| n as f64 + 0.5),
        ((1u64 << 53)..u64::MAX).prop_map(|n| n as f64),
    ]) {
        let valid = number.is_finite() && number >= 0.0 && number < 2f64.powi(53) && number.fract() == 0.0;
        match Key::from_js_number(number) {
            Some(key) => {
                prop_assert!(valid, "{number} decoded to {key}");
                prop_assert_eq!(key.to_js_number(), number);
            }
            None => prop_assert!(!valid, "{number} rejected"),
        }
    }
}
