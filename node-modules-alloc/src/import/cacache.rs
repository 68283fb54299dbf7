//! npm's cache (`_cacache`) as a source of tarballs.
//!
//! npm keeps every tarball it downloaded in a content-addressed cache: an index of buckets
//! (`index-v5/`) mapping keys to SRI integrities, and content under `content-v2/<algo>/<hex>`.
//! Importing from it needs no network. The integrity a bucket announces is only a claim: the
//! importer verifies the bytes against it and files the package only under hashes it computed
//! or verified (see [`crate::import`]).

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::Read;
use std::path::Path;

use sha1::{Digest, Sha1};

use super::ImportSource;
use crate::error::{Error, Result};
use crate::integrity::Integrity;

#[derive(serde::Deserialize)]
struct CacheEntry {
    key: String,
    integrity: Option<String>,
}

/// Reads npm's `_cacache/index-v5` buckets: lines `\n<sha1 hex of json>\t<json>`, last entry per
/// key wins, `integrity: null` deletes. Content lives under `content-v2/<algo>/<hex…>`.
pub(crate) fn discover_cacache(cacache: &Path) -> Result<Vec<ImportSource>> {
    let index = cacache.join("index-v5");
    let mut latest: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut stack = vec![index];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).map_err(Error::io("cannot read", &dir))? {
            let entry = entry.map_err(Error::io("cannot read", &dir))?;
            let p = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
                continue;
            }
            let text = fs::read_to_string(&p).map_err(Error::io("cannot read", &p))?;
            for line in text.lines().filter(|l| !l.is_empty()) {
                let Some((hash, json)) = line.split_once('\t') else {
                    continue;
                };
                if hex::encode(Sha1::digest(json.as_bytes())) != hash {
                    tracing::debug!(bucket = %p.display(), "skipping corrupt cache index line");
                    continue;
                }
                if let Ok(e) = serde_json::from_str::<CacheEntry>(json) {
                    latest.insert(e.key, e.integrity);
                }
            }
        }
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (key, integrity) in latest {
        let Some(integrity) = integrity else { continue };
        let parsed: Integrity = match integrity.parse() {
            Ok(parsed) => parsed,
            Err(e) => {
                // One bad line must not make the rest of the cache unimportable.
                tracing::warn!(key = %key, error = %e, "skipping npm cache entry with an invalid integrity");
                continue;
            }
        };
        let Some(hash) = parsed.strongest() else {
            continue;
        };
        let hex = hash.hex();
        let (a, rest) = hex.split_at(hex.len().min(2));
        let (b, c) = rest.split_at(rest.len().min(2));
        let content = cacache
            .join("content-v2")
            .join(hash.algorithm.name())
            .join(a)
            .join(b)
            .join(c);
        if !seen.insert(content.clone()) {
            continue;
        }
        // Only tarballs: npm also caches registry metadata (JSON) in the same store.
        let mut magic = [0u8; 2];
        let is_gzip = File::open(&content)
            .and_then(|mut f| f.read_exact(&mut magic))
            .is_ok()
            && magic == [0x1f, 0x8b];
        if !is_gzip {
            continue;
        }
        out.push(ImportSource {
            path: content,
            expected: Some(parsed),
            label: key,
        });
    }
    Ok(out)
}
