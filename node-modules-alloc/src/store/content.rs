//! Content files: addressed by the sha512 of their bytes, published by rename, read-only,
//! with a separate executable variant; verification, repair and quarantine.

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha512};

use super::Store;
use crate::error::{Error, Result};
use crate::fsutil::{create_dirs, has_content_mtime, set_content_mtime, sync_dir, unique_name};

impl Store {
    /// Where the content with sha512 hex `digest` lives (`exec` selects the executable variant).
    pub fn file_path(&self, digest: &str, exec: bool) -> PathBuf {
        let (head, tail) = digest.split_at(digest.len().min(2));
        let name = if exec {
            format!("{tail}-exec")
        } else {
            tail.to_owned()
        };
        self.inner.root.join("files").join(head).join(name)
    }

    /// Publishes the temporary file `tmp` (already hashed to `digest`) under its content address,
    /// read-only and with the fixed [`CONTENT_MTIME`](super::CONTENT_MTIME). Idempotent: when the address already
    /// holds intact content (see [`Store::content_intact`]) the temporary file is dropped; a
    /// truncated or otherwise damaged file there (a power loss after a rename that was not
    /// synced) is replaced — it never wins over the fresh copy. With `sync_content`, the file and
    /// its directory are fsynced around the rename.
    pub(crate) fn publish_temp(&self, tmp: &Path, digest: &str, exec: bool) -> Result<()> {
        let target = self.file_path(digest, exec);
        let size = fs::metadata(tmp)
            .map_err(Error::io("cannot stat", tmp))?
            .len();
        if let Ok(existing) = fs::symlink_metadata(&target) {
            if self.content_intact(digest, exec, size) {
                let _ = fs::remove_file(tmp);
                return Ok(());
            }
            if existing.is_file() && existing.len() == size {
                // Metadata only (an older version's mtime, a chmod through a hardlink).
                tracing::debug!(
                    digest,
                    exec,
                    "republishing a store file with its published mode and mtime"
                );
            } else {
                tracing::warn!(
                    digest,
                    exec,
                    size,
                    found = existing.len(),
                    "store file at this content address is damaged (truncated by a crash?); replacing it"
                );
            }
        }
        let sync = self.inner.config.sync_content;
        if let Some(parent) = target.parent()
            && fs::symlink_metadata(parent).is_err()
        {
            create_dirs(parent)?;
            if sync {
                sync_dir(&self.dir("files"))?;
            }
        }
        let mode = if exec { 0o555 } else { 0o444 };
        fs::set_permissions(tmp, fs::Permissions::from_mode(mode))
            .map_err(Error::io("cannot set permissions of", tmp))?;
        set_content_mtime(tmp).map_err(Error::io("cannot set the mtime of", tmp))?;
        if sync {
            File::open(tmp)
                .and_then(|f| f.sync_all())
                .map_err(Error::io("cannot sync", tmp))?;
        }
        fs::rename(tmp, &target).map_err(Error::io("cannot publish", &target))?;
        match target.parent() {
            Some(parent) if sync => sync_dir(parent),
            _ => Ok(()),
        }
    }

    /// Whether the store holds the `exec` variant of `digest` as it was published: a regular
    /// file of `size` bytes, mode 0444 (0555), mtime [`CONTENT_MTIME`](super::CONTENT_MTIME). A cheap structural check
    /// (one `lstat`), not a re-hash: it catches what a crash leaves (a truncated file) and an
    /// in-place edit (which moves the mtime); [`Store::verify_file`] re-hashes.
    pub fn content_intact(&self, digest: &str, exec: bool, size: u64) -> bool {
        fs::symlink_metadata(self.file_path(digest, exec)).is_ok_and(|meta| {
            meta.is_file()
                && meta.len() == size
                && meta.permissions().mode() & 0o7777 == if exec { 0o555 } else { 0o444 }
                && has_content_mtime(&meta)
        })
    }

    /// A fresh path in `tmp/`.
    pub(crate) fn temp_path(&self) -> PathBuf {
        self.dir("tmp").join(unique_name("t"))
    }

    /// Stores `bytes` and returns their sha512 hex digest.
    pub fn put_bytes(&self, bytes: &[u8], exec: bool) -> Result<String> {
        let digest = hex::encode(Sha512::digest(bytes));
        if self.content_intact(&digest, exec, bytes.len() as u64) {
            return Ok(digest);
        }
        let tmp = self.temp_path();
        fs::write(&tmp, bytes).map_err(Error::io("cannot write", &tmp))?;
        self.publish_temp(&tmp, &digest, exec)?;
        Ok(digest)
    }

    /// Makes sure the `exec` variant of `digest` exists, creating it from the other variant
    /// (re-hashed on the way, so corrupt content is never propagated).
    ///
    /// An existing variant is kept unless it is visibly damaged (its size differs from the
    /// other variant, which carries the published mtime); callers re-hash it before linking it.
    pub fn ensure_variant(&self, digest: &str, exec: bool) -> Result<()> {
        let other = self.file_path(digest, !exec);
        if let Ok(meta) = fs::symlink_metadata(self.file_path(digest, exec)) {
            let damaged = fs::symlink_metadata(&other)
                .is_ok_and(|o| o.is_file() && has_content_mtime(&o) && o.len() != meta.len());
            if meta.is_file() && !damaged {
                return Ok(());
            }
        }
        let bytes = fs::read(&other).map_err(Error::io("cannot read", &other))?;
        if hex::encode(Sha512::digest(&bytes)) != digest {
            self.quarantine(digest, !exec)?;
            return Err(Error::CorruptStore {
                digest: digest.to_owned(),
                integrity: "(executable variant)".to_owned(),
            });
        }
        let tmp = self.temp_path();
        fs::write(&tmp, &bytes).map_err(Error::io("cannot write", &tmp))?;
        self.publish_temp(&tmp, digest, exec)
    }

    /// Re-hashes one store file; `Ok(false)` when it is missing or its content does not match.
    pub fn verify_file(&self, digest: &str, exec: bool) -> Result<bool> {
        let path = self.file_path(digest, exec);
        match hash_file(&path) {
            Ok(actual) => Ok(actual == digest),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io("cannot read", path)(e)),
        }
    }

    /// Restores the mode of a store file (0444, or 0555 for the executable variant) if someone
    /// changed it through a hardlink (`chmod` on a linked file changes the shared inode), and its
    /// mtime ([`Store::restore_metadata`]). Call it only on content that was just re-hashed.
    pub fn restore_mode(&self, digest: &str, exec: bool) -> Result<bool> {
        self.restore_metadata(digest, exec)
    }

    /// Restores the published metadata of a store file — mode 0444 (0555) and mtime
    /// [`CONTENT_MTIME`](super::CONTENT_MTIME) — after someone changed it through a hardlink, or after an older
    /// version published it with an arbitrary mtime. Returns whether anything changed. Call it
    /// only on content that was just re-hashed: the mtime is what later cheap checks trust.
    pub fn restore_metadata(&self, digest: &str, exec: bool) -> Result<bool> {
        let path = self.file_path(digest, exec);
        let meta = fs::symlink_metadata(&path).map_err(Error::io("cannot stat", &path))?;
        let expected = if exec { 0o555 } else { 0o444 };
        let mode = meta.permissions().mode() & 0o7777;
        let mut changed = false;
        if mode != expected {
            tracing::warn!(
                digest,
                exec,
                mode = format_args!("{mode:o}"),
                "store file mode was changed through a hardlink; restoring it"
            );
            fs::set_permissions(&path, fs::Permissions::from_mode(expected))
                .map_err(Error::io("cannot set permissions of", &path))?;
            changed = true;
        }
        if !has_content_mtime(&meta) {
            tracing::debug!(
                digest,
                exec,
                "store file mtime differs from the published one; restoring it"
            );
            set_content_mtime(&path).map_err(Error::io("cannot set the mtime of", &path))?;
            changed = true;
        }
        Ok(changed)
    }

    /// Re-hashes a store file and, when its content still matches, restores its published
    /// metadata. `Ok(false)` when it is missing or its content no longer matches (the caller
    /// quarantines it).
    pub fn revalidate(&self, digest: &str, exec: bool) -> Result<bool> {
        if !self.verify_file(digest, exec)? {
            return Ok(false);
        }
        self.restore_metadata(digest, exec)?;
        Ok(true)
    }

    /// Moves a store file to `quarantine/` so that it is never linked again.
    pub fn quarantine(&self, digest: &str, exec: bool) -> Result<()> {
        let path = self.file_path(digest, exec);
        let suffix = if exec { "-exec" } else { "" };
        let target = self
            .dir("quarantine")
            .join(unique_name(&format!("{digest}{suffix}.")));
        match fs::rename(&path, &target) {
            Ok(()) => {
                tracing::warn!(digest, exec, quarantine = %target.display(), "quarantined corrupt store file");
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("cannot quarantine", path)(e)),
        }
    }

    /// Every content file in the store as `(digest, exec)`.
    pub fn content_files(&self) -> Result<Vec<(String, bool)>> {
        let files = self.dir("files");
        let mut out = Vec::new();
        for head in fs::read_dir(&files).map_err(Error::io("cannot read", &files))? {
            let head = head.map_err(Error::io("cannot read", &files))?;
            let head_name = head.file_name().to_string_lossy().into_owned();
            let head_path = head.path();
            for file in fs::read_dir(&head_path).map_err(Error::io("cannot read", &head_path))? {
                let file = file.map_err(Error::io("cannot read", &head_path))?;
                let name = file.file_name().to_string_lossy().into_owned();
                let (tail, exec) = match name.strip_suffix("-exec") {
                    Some(t) => (t.to_owned(), true),
                    None => (name, false),
                };
                out.push((format!("{head_name}{tail}"), exec));
            }
        }
        out.sort();
        Ok(out)
    }
}

/// sha512 hex of a file's content, streamed.
pub(crate) fn hash_file(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha512::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(buf.get(..n).unwrap_or_default());
    }
    Ok(hex::encode(hasher.finalize()))
}
