#![doc = include_str!("../docs/adapters.md")]
