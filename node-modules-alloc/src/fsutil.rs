//! Small filesystem helpers: unique names, atomic writes, directory syncs, tree removal.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A name unlikely to collide across processes and threads.
pub(crate) fn unique_name(prefix: &str) -> String {
    let mut rng = fastrand::Rng::new();
    let suffix: String = std::iter::repeat_with(|| rng.alphanumeric())
        .take(12)
        .collect();
    format!("{prefix}{}-{suffix}", std::process::id())
}

/// Writes `bytes` to `target` atomically: a temporary file in `tmp_dir` (same filesystem),
/// optionally fsynced, then renamed over `target`. Readers see the old or the new content,
/// never a prefix.
pub(crate) fn atomic_write(
    tmp_dir: &Path,
    target: &Path,
    bytes: &[u8],
    sync: bool,
    mode: u32,
) -> Result<()> {
    let tmp = tmp_dir.join(unique_name("w"));
    let result = (|| -> io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(bytes)?;
        if sync {
            file.sync_all()?;
        }
        fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))?;
        fs::rename(&tmp, target)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(Error::io("cannot write", target))?;
    if sync && let Some(parent) = target.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

/// fsyncs a directory so that a rename into it survives a power loss.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io("cannot sync directory", dir))
}

/// Removes a directory tree; a missing tree is not an error.
pub(crate) fn remove_tree(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("cannot remove", path)(e)),
    }
}

/// Creates a directory and its parents.
pub(crate) fn create_dirs(path: &Path) -> Result<()> {
    fs::create_dir_all(path).map_err(Error::io("cannot create directory", path))
}

/// Joins a validated, `/`-separated relative path onto `base`.
pub(crate) fn join_rel(base: &Path, rel: &str) -> PathBuf {
    let mut out = base.to_path_buf();
    for part in rel.split('/').filter(|p| !p.is_empty() && *p != ".") {
        out.push(part);
    }
    out
}

/// The mtime of every published content file (and every file of a tree): npm's fixed mtime of
/// packed files, 1985-10-26T08:15:00Z. Writing to a file moves its mtime, so a file whose mtime
/// differs was modified (or published by an older version): see [`crate::store`].
pub(crate) const CONTENT_MTIME_SECS: i64 = 499_162_500;

/// [`CONTENT_MTIME_SECS`] as access and modification time.
pub(crate) fn content_timestamps() -> rustix::fs::Timestamps {
    let time = rustix::fs::Timespec {
        tv_sec: CONTENT_MTIME_SECS,
        tv_nsec: 0,
    };
    rustix::fs::Timestamps {
        last_access: time,
        last_modification: time,
    }
}

/// Whether a file carries the published content mtime.
pub(crate) fn has_content_mtime(meta: &fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    meta.mtime() == CONTENT_MTIME_SECS && meta.mtime_nsec() == 0
}

/// Sets the published content mtime on `path` (not following a final symlink).
pub(crate) fn set_content_mtime(path: &Path) -> io::Result<()> {
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &content_timestamps(),
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(io::Error::from)
}

/// Opens a directory given by a trusted path (the store, an app's staging directory) as the
/// anchor of no-follow walks.
pub(crate) fn open_dir(path: &Path) -> io::Result<rustix::fd::OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io::Error::from)
}

/// The pid in a name made by [`unique_name`] (`{prefix}{pid}-{12 alphanumerics}`), if it has
/// that shape. Prefixes never end in a digit, so the pid is the run of digits before the last
/// `-`.
pub(crate) fn unique_name_pid(name: &str) -> Option<u32> {
    let (head, suffix) = name.rsplit_once('-')?;
    if suffix.len() != 12 || !suffix.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    let prefix = head.trim_end_matches(|c: char| c.is_ascii_digit());
    head.get(prefix.len()..)?.parse().ok()
}

/// Whether a process with this pid exists (`kill(pid, 0)`). When that cannot be told (pid 0,
/// or an unexpected error) the answer is "alive": callers use it to decide what is safe to
/// delete. A pid reused by an unrelated process also reads as alive.
pub(crate) fn process_alive(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return true;
    };
    !matches!(
        rustix::process::test_kill_process(pid),
        Err(rustix::io::Errno::SRCH)
    )
}

/// How long ago `meta` was last modified (zero for a modification time in the future).
pub(crate) fn age(meta: &fs::Metadata) -> std::time::Duration {
    meta.modified()
        .ok()
        .and_then(|m| std::time::SystemTime::now().duration_since(m).ok())
        .unwrap_or_default()
}

/// Sets the modification time of `path` to now (a "last used" stamp). Read-only files can be
/// stamped by their owner.
pub(crate) fn touch(path: &Path) -> io::Result<()> {
    File::open(path)?.set_modified(std::time::SystemTime::now())
}

/// Microseconds since the Unix epoch (wall clock: comparable across processes).
pub(crate) fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_carry_the_pid() {
        let name = unique_name("tpl-");
        assert_eq!(unique_name_pid(&name), Some(std::process::id()));
        assert_eq!(unique_name_pid(&unique_name("t")), Some(std::process::id()));
        assert_eq!(unique_name_pid("trash-42-abcdefghijkl"), Some(42));
        assert_eq!(unique_name_pid("trash-42-short"), None);
        assert_eq!(unique_name_pid("no-pid-abcdefghijkl"), None);
        assert_eq!(unique_name_pid("plain"), None);
    }

    #[test]
    fn this_process_is_alive_and_an_exited_child_is_not() {
        assert!(process_alive(std::process::id()));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!process_alive(pid));
        assert!(process_alive(0), "unknown counts as alive");
    }
}
