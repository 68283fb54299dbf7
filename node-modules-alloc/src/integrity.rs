//! Subresource Integrity (SRI) strings, as written in `package-lock.json` and npm's cache.
//!
//! A lockfile pins every tarball by an SRI string such as `sha512-<base64>` (or, for packages
//! published long ago, `sha1-<base64>`). The store keys its package index by these strings, so a
//! tarball is only ever accepted when its bytes hash to what the lockfile promised: a corrupted
//! download or a swapped tarball is an error, never a silently different `node_modules`.
//!
//! ```
//! use node_modules_alloc::integrity::Integrity;
//!
//! let tarball = b"not really a tarball";
//! let sri = Integrity::sha512_of(tarball);
//! assert!(sri.to_string().starts_with("sha512-"));
//! let parsed: Integrity = sri.to_string().parse()?;
//! assert!(parsed.matches(tarball));
//! assert!(!parsed.matches(b"something else"));
//! # Ok::<(), node_modules_alloc::integrity::IntegrityParseError>(())
//! ```

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};

/// A hash algorithm allowed in an SRI string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-1 (legacy npm packages only).
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512 (what npm writes today).
    Sha512,
}

impl Algorithm {
    /// The SRI prefix (`sha512`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha1 => "sha1",
            Self::Sha256 => "sha256",
            Self::Sha384 => "sha384",
            Self::Sha512 => "sha512",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        match name {
            "sha1" => Some(Self::Sha1),
            "sha256" => Some(Self::Sha256),
            "sha384" => Some(Self::Sha384),
            "sha512" => Some(Self::Sha512),
            _ => None,
        }
    }

    fn digest_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }

    /// Hashes `data` with this algorithm.
    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha1 => Sha1::digest(data).to_vec(),
            Self::Sha256 => Sha256::digest(data).to_vec(),
            Self::Sha384 => Sha384::digest(data).to_vec(),
            Self::Sha512 => Sha512::digest(data).to_vec(),
        }
    }
}

/// One `algorithm-base64digest` part of an SRI string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hash {
    /// The algorithm.
    pub algorithm: Algorithm,
    /// The raw digest bytes.
    pub digest: Vec<u8>,
}

impl Hash {
    /// The digest as lowercase hex (how npm's cache lays out content paths).
    pub fn hex(&self) -> String {
        hex::encode(&self.digest)
    }

    /// Whether `data` hashes to this digest.
    pub fn matches(&self, data: &[u8]) -> bool {
        self.algorithm.hash(data) == self.digest
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{}",
            self.algorithm.name(),
            STANDARD.encode(&self.digest)
        )
    }
}

/// A parsed SRI string: one or more hashes, strongest first.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Integrity {
    hashes: Vec<Hash>,
}

/// Why an SRI string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid integrity {value:?}: {reason}")]
pub struct IntegrityParseError {
    /// The offending string.
    pub value: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl Integrity {
    /// The `sha512` integrity of `data`.
    pub fn sha512_of(data: &[u8]) -> Self {
        Self {
            hashes: vec![Hash {
                algorithm: Algorithm::Sha512,
                digest: Algorithm::Sha512.hash(data),
            }],
        }
    }

    /// The `sha512` and `sha1` integrities of `data` (the two forms lockfiles use).
    pub fn all_of(data: &[u8]) -> Self {
        Self {
            hashes: vec![
                Hash {
                    algorithm: Algorithm::Sha512,
                    digest: Algorithm::Sha512.hash(data),
                },
                Hash {
                    algorithm: Algorithm::Sha1,
                    digest: Algorithm::Sha1.hash(data),
                },
            ],
        }
    }

    /// An integrity made of `hashes` (sorted strongest first, duplicates removed); `None` when
    /// there are none.
    pub fn from_hashes(hashes: impl IntoIterator<Item = Hash>) -> Option<Self> {
        let mut hashes: Vec<Hash> = hashes.into_iter().collect();
        if hashes.is_empty() {
            return None;
        }
        hashes.sort_by_key(|h| std::cmp::Reverse(h.algorithm));
        let mut seen = Vec::with_capacity(hashes.len());
        hashes.retain(|h| {
            let new = !seen.contains(h);
            if new {
                seen.push(h.clone());
            }
            new
        });
        Some(Self { hashes })
    }

    /// The hashes, strongest algorithm first.
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// The strongest hash.
    pub fn strongest(&self) -> Option<&Hash> {
        self.hashes.first()
    }

    /// The strongest algorithm present.
    pub fn strongest_algorithm(&self) -> Option<Algorithm> {
        self.strongest().map(|h| h.algorithm)
    }

    /// Whether `data` matches, by npm's `ssri` rule (see [`Integrity::matching`]): a hash of the
    /// strongest algorithm present must match, so a weak sha1 collision cannot override a
    /// sha512.
    pub fn matches(&self, data: &[u8]) -> bool {
        self.matching_with(&mut Digests::new(data)).is_some()
    }

    /// The hash `data` matches, by npm's `ssri` rule, or `None`.
    ///
    /// `ssri` (npm/ssri `lib/index.js`): `checkData` takes `sri.pickAlgorithm()`, the strongest
    /// algorithm present (sha512 > sha384 > sha256 > sha1), hashes the data with it alone, and
    /// `Integrity.match` accepts when *any* hash of that algorithm has the same digest
    /// (`this[algo].find(hash => other[algo].find(otherhash => hash.digest ===
    /// otherhash.digest))`). Several hashes of the strongest algorithm are alternatives (the
    /// W3C SRI rule); hashes of weaker algorithms are never consulted, so they are never
    /// verified by a match either: see [`Integrity::verified_hashes`].
    pub fn matching(&self, data: &[u8]) -> Option<&Hash> {
        self.matching_with(&mut Digests::new(data))
    }

    pub(crate) fn matching_with(&self, digests: &mut Digests<'_>) -> Option<&Hash> {
        let algorithm = self.strongest_algorithm()?;
        let digest = digests.get(algorithm);
        self.hashes
            .iter()
            .filter(|h| h.algorithm == algorithm)
            .find(|h| h.digest == digest)
    }

    /// Every hash of this integrity that `data` really hashes to, whatever its algorithm (each
    /// algorithm computed once). Only these may be used to find the data again.
    pub fn verified_hashes(&self, data: &[u8]) -> Vec<Hash> {
        self.verified_hashes_with(&mut Digests::new(data))
    }

    pub(crate) fn verified_hashes_with(&self, digests: &mut Digests<'_>) -> Vec<Hash> {
        self.hashes
            .iter()
            .filter(|h| digests.get(h.algorithm) == h.digest.as_slice())
            .cloned()
            .collect()
    }
}

/// The digests of one piece of data, each algorithm computed at most once (a tarball is hashed
/// for its own sha512 and sha1 and checked against a caller's integrity: no need to hash it
/// four times).
#[derive(Debug)]
pub(crate) struct Digests<'a> {
    data: &'a [u8],
    done: Vec<(Algorithm, Vec<u8>)>,
}

impl<'a> Digests<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            done: Vec::new(),
        }
    }

    /// The digest of the data with `algorithm`.
    pub(crate) fn get(&mut self, algorithm: Algorithm) -> &[u8] {
        let index = if let Some(i) = self.done.iter().position(|(a, _)| *a == algorithm) {
            i
        } else {
            self.done.push((algorithm, algorithm.hash(self.data)));
            self.done.len() - 1
        };
        self.done.get(index).map_or(&[], |(_, d)| d.as_slice())
    }

    /// The hash of the data with `algorithm`.
    pub(crate) fn hash(&mut self, algorithm: Algorithm) -> Hash {
        Hash {
            algorithm,
            digest: self.get(algorithm).to_vec(),
        }
    }
}

impl fmt::Display for Integrity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, hash) in self.hashes.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{hash}")?;
        }
        Ok(())
    }
}

impl FromStr for Integrity {
    type Err = IntegrityParseError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let err = |reason| IntegrityParseError {
            value: value.to_owned(),
            reason,
        };
        let mut hashes = Vec::new();
        for part in value.split_ascii_whitespace() {
            // Options (`sha512-xxx?opt`) are allowed by the SRI grammar and ignored.
            let part = part.split('?').next().unwrap_or(part);
            let Some((algo, b64)) = part.split_once('-') else {
                return Err(err("expected `<algorithm>-<base64 digest>`"));
            };
            let Some(algorithm) = Algorithm::from_name(algo) else {
                // Unknown algorithms are skipped, as the SRI spec requires.
                continue;
            };
            let digest = STANDARD
                .decode(b64)
                .map_err(|_| err("digest is not valid base64"))?;
            if digest.len() != algorithm.digest_len() {
                return Err(err("digest has the wrong length for its algorithm"));
            }
            hashes.push(Hash { algorithm, digest });
        }
        if hashes.is_empty() {
            return Err(err("no sha1/sha256/sha384/sha512 hash"));
        }
        hashes.sort_by_key(|h| std::cmp::Reverse(h.algorithm));
        hashes.dedup();
        Ok(Self { hashes })
    }
}

/// Lowercase hex sha512 of `data` (the store's content address).
pub fn sha512_hex(data: &[u8]) -> String {
    hex::encode(Sha512::digest(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sha512_and_sha1_and_prefers_sha512() {
        let data = b"hello";
        let both = Integrity::all_of(data).to_string();
        let parsed: Integrity = both.parse().unwrap();
        assert_eq!(parsed.strongest().unwrap().algorithm, Algorithm::Sha512);
        assert!(parsed.matches(data));
        let sha1_only: Integrity = format!("sha1-{}", STANDARD.encode(Sha1::digest(data)))
            .parse()
            .unwrap();
        assert!(sha1_only.matches(data));
        assert!(!sha1_only.matches(b"other"));
    }

    fn sri(algorithm: Algorithm, data: &[u8]) -> String {
        Hash {
            algorithm,
            digest: algorithm.hash(data),
        }
        .to_string()
    }

    #[test]
    fn any_hash_of_the_strongest_algorithm_matches_as_in_ssri() {
        let data = b"tarball";
        let two_sha512: Integrity = format!(
            "{} {}",
            sri(Algorithm::Sha512, b"other"),
            sri(Algorithm::Sha512, data)
        )
        .parse()
        .unwrap();
        assert_eq!(
            two_sha512.matching(data).unwrap().to_string(),
            sri(Algorithm::Sha512, data)
        );
        // The weaker sha1 is never consulted: a right sha1 does not save a wrong sha512...
        let wrong_strong: Integrity = format!(
            "{} {}",
            sri(Algorithm::Sha512, b"other"),
            sri(Algorithm::Sha1, data)
        )
        .parse()
        .unwrap();
        assert!(!wrong_strong.matches(data));
        // ...and a wrong sha1 does not spoil a right sha512, but it is not verified either.
        let wrong_weak: Integrity = format!(
            "{} {}",
            sri(Algorithm::Sha512, data),
            sri(Algorithm::Sha1, b"other")
        )
        .parse()
        .unwrap();
        assert!(wrong_weak.matches(data));
        let verified: Vec<String> = wrong_weak
            .verified_hashes(data)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(verified, vec![sri(Algorithm::Sha512, data)]);
    }

    #[test]
    fn from_hashes_sorts_and_deduplicates() {
        let data = b"x";
        let sha1 = Hash {
            algorithm: Algorithm::Sha1,
            digest: Algorithm::Sha1.hash(data),
        };
        let sha256 = Hash {
            algorithm: Algorithm::Sha256,
            digest: Algorithm::Sha256.hash(data),
        };
        let integrity =
            Integrity::from_hashes([sha1.clone(), sha256.clone(), sha1.clone()]).unwrap();
        assert_eq!(integrity.hashes(), &[sha256, sha1][..]);
        assert!(Integrity::from_hashes([]).is_none());
    }

    #[test]
    fn rejects_garbage_wrong_length_and_unknown_only() {
        assert!("nonsense".parse::<Integrity>().is_err());
        assert!("sha512-AAAA".parse::<Integrity>().is_err());
        assert!("md5-AAAAAAAAAAAAAAAAAAAAAA==".parse::<Integrity>().is_err());
        assert!("sha512-!!!".parse::<Integrity>().is_err());
        assert!("".parse::<Integrity>().is_err());
    }
}
