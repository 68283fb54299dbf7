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

    /// The hashes, strongest algorithm first.
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// The strongest hash.
    pub fn strongest(&self) -> Option<&Hash> {
        self.hashes.first()
    }

    /// Whether `data` matches: it must match the strongest hash given (as browsers and npm's
    /// `ssri` do), so a weak sha1 collision cannot override a sha512.
    pub fn matches(&self, data: &[u8]) -> bool {
        self.strongest().is_some_and(|h| h.matches(data))
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

    #[test]
    fn rejects_garbage_wrong_length_and_unknown_only() {
        assert!("nonsense".parse::<Integrity>().is_err());
        assert!("sha512-AAAA".parse::<Integrity>().is_err());
        assert!("md5-AAAAAAAAAAAAAAAAAAAAAA==".parse::<Integrity>().is_err());
        assert!("sha512-!!!".parse::<Integrity>().is_err());
        assert!("".parse::<Integrity>().is_err());
    }
}
