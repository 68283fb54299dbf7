//! Placing one file, relative to open directory descriptors: `linkat` for a hardlink (never
//! following a symlink at the source), `O_CREAT | O_EXCL | O_NOFOLLOW` for the destination of a
//! clone or a copy. The link operations are injectable so that tests can simulate `EXDEV`,
//! `EPERM` or `EMLINK` without another filesystem.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;

use rustix::fd::{AsFd, BorrowedFd};
use rustix::fs::{AtFlags, Mode, OFlags, Timespec, Timestamps};

use super::Placed;
use crate::config::LinkMode;

/// A name inside an open directory (or a trusted path relative to `rustix::fs::CWD`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Endpoint<'a> {
    pub(crate) dir: BorrowedFd<'a>,
    pub(crate) name: &'a OsStr,
}

type HardlinkFn = dyn Fn(Endpoint<'_>, Endpoint<'_>) -> io::Result<()> + Sync;
type ReflinkFn = dyn Fn(&File, &File) -> io::Result<()> + Sync;

/// The link operations: `hardlink(src, dst)` and `reflink(dst_file, src_file)`.
pub(crate) struct Ops<'a> {
    pub(crate) hardlink: &'a HardlinkFn,
    pub(crate) reflink: &'a ReflinkFn,
}

impl std::fmt::Debug for Ops<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ops")
    }
}

/// The real operations: `linkat(2)` without `AT_SYMLINK_FOLLOW`, `ioctl(FICLONE)`.
pub(crate) const SYSTEM: Ops<'static> = Ops {
    hardlink: &|src, dst| {
        rustix::fs::linkat(src.dir, src.name, dst.dir, dst.name, AtFlags::empty())
            .map_err(io::Error::from)
    },
    reflink: &|dst, src| rustix::fs::ioctl_ficlone(dst, src).map_err(io::Error::from),
};

/// Whether a failed hardlink should fall back to reflink/copy.
pub(crate) fn hardlink_fallback(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(code) if code == rustix::io::Errno::XDEV.raw_os_error()
            || code == rustix::io::Errno::PERM.raw_os_error()
            || code == rustix::io::Errno::MLINK.raw_os_error()
            || code == rustix::io::Errno::NOTSUP.raw_os_error()
            || code == rustix::io::Errno::ACCESS.raw_os_error()
    )
}

/// Places `src` at `dst` (which must not exist). Returns how, and the destination file when it
/// has its own data (a clone or a copy), for the caller to fsync.
pub(crate) fn place(
    src: Endpoint<'_>,
    dst: Endpoint<'_>,
    mode: LinkMode,
    exec: bool,
    ops: &Ops<'_>,
) -> io::Result<(Placed, Option<File>)> {
    match mode {
        LinkMode::Hardlink => (ops.hardlink)(src, dst).map(|()| (Placed::Hardlink, None)),
        LinkMode::Reflink => clone_or_copy(src, dst, exec, ops, true, false),
        LinkMode::Copy => clone_or_copy(src, dst, exec, ops, false, true),
        LinkMode::Auto => match (ops.hardlink)(src, dst) {
            Ok(()) => Ok((Placed::Hardlink, None)),
            Err(e) if hardlink_fallback(&e) => {
                tracing::debug!(file = ?dst.name, error = %e, "hardlink failed; trying reflink, then copy");
                clone_or_copy(src, dst, exec, ops, true, true)
            }
            Err(e) => Err(e),
        },
    }
}

/// Creates `dst` exclusively (never through a symlink), fills it from `src` by a clone (if
/// `reflink`) or a copy (if `copy`, also as the clone's fallback), gives it mode 0444/0555 and
/// the source's mtime.
fn clone_or_copy(
    src: Endpoint<'_>,
    dst: Endpoint<'_>,
    exec: bool,
    ops: &Ops<'_>,
    reflink: bool,
    copy: bool,
) -> io::Result<(Placed, Option<File>)> {
    let source = File::from(rustix::fs::openat(
        src.dir,
        src.name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?);
    let meta = source.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "source is not a regular file",
        ));
    }
    let perms = Mode::from_raw_mode(if exec { 0o555 } else { 0o444 });
    let target = File::from(rustix::fs::openat(
        dst.dir,
        dst.name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        perms,
    )?);
    let filled = (|| -> io::Result<Placed> {
        let cloned = reflink.then(|| (ops.reflink)(&target, &source));
        let placed = match cloned {
            Some(Ok(())) => Placed::Reflink,
            Some(Err(e)) if !copy => return Err(e),
            _ => {
                io::copy(&mut &source, &mut &target)?;
                Placed::Copy
            }
        };
        rustix::fs::fchmod(target.as_fd(), perms)?;
        let mtime = Timespec {
            tv_sec: meta.mtime(),
            tv_nsec: meta.mtime_nsec(),
        };
        rustix::fs::futimens(
            target.as_fd(),
            &Timestamps {
                last_access: mtime,
                last_modification: mtime,
            },
        )?;
        Ok(placed)
    })();
    match filled {
        Ok(placed) => Ok((placed, Some(target))),
        Err(e) => {
            drop(target);
            let _ = rustix::fs::unlinkat(dst.dir, dst.name, AtFlags::empty());
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use rustix::fd::OwnedFd;

    use super::*;
    use crate::fsutil::open_dir;

    fn errno(e: rustix::io::Errno) -> io::Error {
        io::Error::from_raw_os_error(e.raw_os_error())
    }

    fn at<'a>(dir: &'a OwnedFd, name: &'a str) -> Endpoint<'a> {
        Endpoint {
            dir: dir.as_fd(),
            name: OsStr::new(name),
        }
    }

    #[test]
    fn auto_falls_back_to_copy_on_exdev_eperm_and_emlink() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("src"), b"content").unwrap();
        let fd = open_dir(dir.path()).unwrap();
        for (i, e) in [
            rustix::io::Errno::XDEV,
            rustix::io::Errno::PERM,
            rustix::io::Errno::MLINK,
        ]
        .into_iter()
        .enumerate()
        {
            let name = format!("dst{i}");
            let ops = Ops {
                hardlink: &move |_, _| Err(errno(e)),
                reflink: &|_, _| Err(errno(rustix::io::Errno::OPNOTSUPP)),
            };
            let (placed, _) =
                place(at(&fd, "src"), at(&fd, &name), LinkMode::Auto, true, &ops).unwrap();
            assert_eq!(placed, Placed::Copy);
            let dst = dir.path().join(&name);
            assert_eq!(fs::read(&dst).unwrap(), b"content");
            assert_eq!(fs::metadata(&dst).unwrap().mode() & 0o777, 0o555);
        }
    }

    #[test]
    fn auto_prefers_reflink_when_hardlink_fails() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("src"), b"content").unwrap();
        let fd = open_dir(dir.path()).unwrap();
        let ops = Ops {
            hardlink: &|_, _| Err(errno(rustix::io::Errno::XDEV)),
            reflink: &|dst, src| io::copy(&mut &*src, &mut &*dst).map(|_| ()),
        };
        let (placed, _) =
            place(at(&fd, "src"), at(&fd, "dst"), LinkMode::Auto, false, &ops).unwrap();
        assert_eq!(placed, Placed::Reflink);
        assert_eq!(fs::read(dir.path().join("dst")).unwrap(), b"content");
    }

    #[test]
    fn strict_hardlink_mode_does_not_fall_back() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("src"), b"content").unwrap();
        let fd = open_dir(dir.path()).unwrap();
        let ops = Ops {
            hardlink: &|_, _| Err(errno(rustix::io::Errno::XDEV)),
            reflink: &|_, _| Ok(()),
        };
        let err = place(
            at(&fd, "src"),
            at(&fd, "d"),
            LinkMode::Hardlink,
            false,
            &ops,
        )
        .unwrap_err();
        assert_eq!(
            err.raw_os_error(),
            Some(rustix::io::Errno::XDEV.raw_os_error())
        );
    }

    #[test]
    fn strict_reflink_mode_fails_cleanly_without_a_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("src"), b"content").unwrap();
        let fd = open_dir(dir.path()).unwrap();
        let ops = Ops {
            hardlink: &|_, _| Ok(()),
            reflink: &|_, _| Err(errno(rustix::io::Errno::OPNOTSUPP)),
        };
        assert!(place(at(&fd, "src"), at(&fd, "d"), LinkMode::Reflink, false, &ops).is_err());
        assert!(!dir.path().join("d").exists());
    }

    #[test]
    fn other_errors_are_not_masked() {
        let dir = tempfile::tempdir().unwrap();
        let fd = open_dir(dir.path()).unwrap();
        let err = place(
            at(&fd, "missing"),
            at(&fd, "d"),
            LinkMode::Auto,
            false,
            &SYSTEM,
        )
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn never_writes_through_a_symlink_at_the_destination() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("src"), b"content").unwrap();
        fs::write(dir.path().join("victim"), b"victim").unwrap();
        std::os::unix::fs::symlink("victim", dir.path().join("dst")).unwrap();
        let fd = open_dir(dir.path()).unwrap();
        for mode in [
            LinkMode::Auto,
            LinkMode::Hardlink,
            LinkMode::Reflink,
            LinkMode::Copy,
        ] {
            assert!(
                place(at(&fd, "src"), at(&fd, "dst"), mode, false, &SYSTEM).is_err(),
                "{mode}"
            );
            assert_eq!(fs::read(dir.path().join("victim")).unwrap(), b"victim");
        }
    }

    #[test]
    fn copies_keep_the_source_mtime_and_get_exact_modes() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::write(&src, b"content").unwrap();
        fs::set_permissions(&src, fs::Permissions::from_mode(0o640)).unwrap();
        crate::fsutil::set_content_mtime(&src).unwrap();
        let fd = open_dir(dir.path()).unwrap();
        place(
            at(&fd, "src"),
            at(&fd, "dst"),
            LinkMode::Copy,
            false,
            &SYSTEM,
        )
        .unwrap();
        let meta = fs::metadata(dir.path().join("dst")).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o444);
        assert!(crate::fsutil::has_content_mtime(&meta));
    }
}
