//! Walking a tree one component at a time from an open root, never following a symlink.
//!
//! A manifest is sorted by path, and all paths below one directory are contiguous in that
//! order, so a stack of open directory descriptors along the current path opens (and, when
//! laying out, creates) every directory exactly once: moving to the next entry closes the
//! directories it leaves and opens the ones it enters, each with `openat(parent, name,
//! O_DIRECTORY | O_NOFOLLOW)`. A symlink (or a file) where a directory is expected fails with
//! `ELOOP` (`ENOTDIR`) instead of being followed.

use std::io;

use rustix::fd::OwnedFd;
use rustix::fs::{Mode, OFlags};

/// Where a walk failed: the directory (relative to the root) and why.
#[derive(Debug)]
pub(crate) struct WalkError {
    pub(crate) dir: String,
    pub(crate) source: io::Error,
}

impl std::fmt::Display for WalkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "directory {:?}: {}", self.dir, self.source)
    }
}

/// A stack of open directories from a root.
#[derive(Debug)]
pub(crate) struct DirWalker {
    root: OwnedFd,
    stack: Vec<(String, OwnedFd)>,
    create: bool,
}

impl DirWalker {
    /// A walker from `root`; with `create`, missing directories are created (mode 0777 minus the
    /// umask, like `mkdir -p`).
    pub(crate) fn new(root: OwnedFd, create: bool) -> Self {
        Self {
            root,
            stack: Vec::new(),
            create,
        }
    }

    fn path_of(&self, depth: usize) -> String {
        self.stack
            .iter()
            .take(depth)
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>()
            .join("/")
    }

    /// Opens the directory `components` (relative to the root), leaving the directories of the
    /// previous call that are not on the way. Every directory left is handed to `closed` with
    /// its path relative to the root.
    pub(crate) fn enter(
        &mut self,
        components: &[&str],
        closed: &mut dyn FnMut(String, OwnedFd),
    ) -> Result<&OwnedFd, WalkError> {
        let common = self
            .stack
            .iter()
            .zip(components)
            .take_while(|((have, _), want)| have == *want)
            .count();
        self.leave(common, closed);
        for component in components.iter().skip(common) {
            let parent = self.stack.last().map_or(&self.root, |(_, fd)| fd);
            let fail = |source: io::Error| WalkError {
                dir: {
                    let mut path = self.path_of(self.stack.len());
                    if !path.is_empty() {
                        path.push('/');
                    }
                    path.push_str(component);
                    path
                },
                source,
            };
            if component.is_empty() || *component == "." || *component == ".." {
                return Err(fail(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "not a plain path component",
                )));
            }
            if self.create {
                match rustix::fs::mkdirat(parent, *component, Mode::from_raw_mode(0o777)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(fail(e.into())),
                }
            }
            let fd = rustix::fs::openat(
                parent,
                *component,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| fail(e.into()))?;
            self.stack.push(((*component).to_owned(), fd));
        }
        Ok(self.stack.last().map_or(&self.root, |(_, fd)| fd))
    }

    /// Closes the open directories below depth `depth`, deepest first.
    fn leave(&mut self, depth: usize, closed: &mut dyn FnMut(String, OwnedFd)) {
        while self.stack.len() > depth {
            let path = self.path_of(self.stack.len());
            if let Some((_, fd)) = self.stack.pop() {
                closed(path, fd);
            }
        }
    }

    /// Closes every open directory below the root and returns the root.
    pub(crate) fn finish(mut self, closed: &mut dyn FnMut(String, OwnedFd)) -> OwnedFd {
        self.leave(0, closed);
        self.root
    }
}

/// Splits a validated relative path into its parent components and its last component.
pub(crate) fn split(path: &str) -> (Vec<&str>, &str) {
    let mut components: Vec<&str> = path.split('/').collect();
    let name = components.pop().unwrap_or_default();
    (components, name)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::fsutil::open_dir;

    #[test]
    fn opens_each_directory_once_along_sorted_paths() {
        let dir = tempfile::tempdir().unwrap();
        let mut walker = DirWalker::new(open_dir(dir.path()).unwrap(), true);
        let mut closed = Vec::new();
        let mut sink = |path: String, _fd: OwnedFd| closed.push(path);
        for path in ["a/b/c/f", "a/b/g", "a/b/x/y/h", "a/z", "b/f"] {
            let (parent, _) = split(path);
            walker.enter(&parent, &mut sink).unwrap();
        }
        drop(walker.finish(&mut sink));
        assert_eq!(
            closed,
            ["a/b/c", "a/b/x/y", "a/b/x", "a/b", "a", "b"].map(String::from)
        );
        assert!(dir.path().join("a/b/x/y").is_dir());
    }

    #[test]
    fn never_follows_a_symlinked_directory() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("a")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("a/link")).unwrap();
        for create in [true, false] {
            let mut walker = DirWalker::new(open_dir(dir.path()).unwrap(), create);
            let err = walker
                .enter(&["a", "link", "sub"], &mut |_, _| {})
                .unwrap_err();
            assert_eq!(err.dir, "a/link");
            // O_DIRECTORY | O_NOFOLLOW on a symlink: ENOTDIR (ELOOP without O_DIRECTORY).
            assert_eq!(
                err.source.raw_os_error(),
                Some(rustix::io::Errno::NOTDIR.raw_os_error())
            );
        }
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
    }

    #[test]
    fn refuses_parent_components() {
        let dir = tempfile::tempdir().unwrap();
        let mut walker = DirWalker::new(open_dir(dir.path()).unwrap(), true);
        assert!(walker.enter(&["a", ".."], &mut |_, _| {}).is_err());
        assert!(walker.enter(&[".."], &mut |_, _| {}).is_err());
    }
}
