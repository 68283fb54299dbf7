//! Reading the tar stream: bounded decompression and our own handling of tar metadata.
//!
//! # Why not `tar::Archive::entries()`
//!
//! `tar` 0.4 folds GNU long names (`L`), long links (`K`) and PAX headers (`x`) into the next
//! entry by reading them into memory whole, whatever size their header announces, and the
//! bytes it skips (data of entries nobody reads, padding, what follows the end-of-archive
//! marker) are invisible to the caller. A few MB of gzip can thus make it allocate gigabytes.
//! Here the archive is read *raw* (`entries()?.raw(true)`) and:
//!
//! * every byte that leaves the gzip decoder goes through a [`CountingReader`] that fails past
//!   `max_total_bytes`, whatever reads it (headers, metadata, data, skipped data, trailing
//!   data), and that failure becomes [`Rejection::TotalTooLarge`] naming the entry being read;
//! * metadata entries are refused *before they are read* when their header announces more than
//!   `max_meta_entry_bytes` (1 MiB, node-tar's `maxMetaEntrySize`);
//! * a PAX `path`/`linkpath` or GNU long name/link names the next entry (PAX wins, as in
//!   POSIX; when both are present they must agree); a PAX `size` must equal the header's size
//!   (readers that honour one or the other would disagree on where the next header starts);
//!   two metadata entries of one kind for one entry, metadata describing no entry, and a
//!   global header setting `linkpath` or `size` are refused; a global `path` is ignored, as
//!   node-tar (npm's extractor) does;
//! * gzip members are all read (`MultiGzDecoder`, as Node's zlib does): nothing is silently
//!   cut after the first member;
//! * after the end-of-archive marker only zeros may follow (record padding); they are read
//!   and counted. Anything else is an error: another reader could find entries there.

use std::cell::Cell;
use std::fmt;
use std::io::{self, Read};
use std::rc::Rc;

use flate2::read::MultiGzDecoder;

use super::paths::display_name;
use crate::config::ImportLimits;
use crate::error::{Error, Rejection, Result};

/// Returned by [`CountingReader`] past its limit.
#[derive(Debug)]
struct LimitExceeded(u64);

impl fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "more than {} bytes decompressed", self.0)
    }
}

impl std::error::Error for LimitExceeded {}

/// Counts the bytes read through it and fails once more than `limit` have been read. It asks
/// the inner reader for at most one byte past the limit, so the decoder never produces more.
#[derive(Debug)]
struct CountingReader<R> {
    inner: R,
    count: Rc<Cell<u64>>,
    limit: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let used = self.count.get();
        if used > self.limit {
            return Err(io::Error::other(LimitExceeded(self.limit)));
        }
        let room = (self.limit - used).saturating_add(1);
        let want = usize::try_from(room).unwrap_or(usize::MAX).min(buf.len());
        let n = self.inner.read(buf.get_mut(..want).unwrap_or_default())?;
        let used = used.saturating_add(n as u64);
        self.count.set(used);
        if used > self.limit {
            return Err(io::Error::other(LimitExceeded(self.limit)));
        }
        Ok(n)
    }
}

/// One entry of the archive, with the names its metadata entries gave it.
pub(crate) struct StreamEntry<'a> {
    /// The path: PAX `path`, else GNU long name, else the header's name.
    pub(crate) path: Vec<u8>,
    /// The link target: PAX `linkpath`, else GNU long link, else the header's (empty if none).
    pub(crate) link: Vec<u8>,
    /// The header's type.
    pub(crate) kind: tar::EntryType,
    /// The header's size (a PAX `size` must agree with it).
    pub(crate) size: u64,
    /// The header's mode (0 when unreadable).
    pub(crate) mode: u32,
    /// The entry's data. What is left unread is read and discarded afterwards (counted, and
    /// a failure there names this entry).
    pub(crate) data: &'a mut dyn Read,
}

/// Maps an error of reading the stream while on `entry`.
pub(crate) fn read_error(label: &str, entry: &str, err: &io::Error) -> Error {
    if let Some(LimitExceeded(limit)) = err.get_ref().and_then(|e| e.downcast_ref()) {
        return Error::Rejected {
            tarball: label.to_owned(),
            entry: entry.to_owned(),
            reason: Rejection::TotalTooLarge { limit: *limit },
        };
    }
    Error::BadTarball {
        tarball: label.to_owned(),
        reason: format!("entry {entry:?}: {err}"),
    }
}

fn bad_meta(label: &str, entry: &str, kind: &'static str, reason: impl Into<String>) -> Error {
    Error::Rejected {
        tarball: label.to_owned(),
        entry: entry.to_owned(),
        reason: Rejection::BadMetadata {
            kind,
            reason: reason.into(),
        },
    }
}

/// Metadata read so far for the next entry.
#[derive(Default)]
struct Pending {
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    pax: Option<Pax>,
    /// The first metadata entry's name, for errors.
    first: Option<String>,
}

#[derive(Default)]
struct Pax {
    path: Option<Vec<u8>>,
    linkpath: Option<Vec<u8>>,
    size: Option<u64>,
}

const LONG_NAME: &str = "GNU long name";
const LONG_LINK: &str = "GNU long link";
const PAX_HEADER: &str = "PAX header";
const PAX_GLOBAL: &str = "PAX global header";

/// Parses PAX records (`"<len> <key>=<value>\n"`), linear in the body. Trailing NUL padding
/// is allowed.
fn parse_pax(body: &[u8]) -> Result<Pax, String> {
    let mut pax = Pax::default();
    let mut rest = body;
    while let Some(&first) = rest.first() {
        if first == 0 {
            if rest.iter().all(|b| *b == 0) {
                break;
            }
            return Err("NUL byte between records".to_owned());
        }
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || digits > 19 || rest.get(digits) != Some(&b' ') {
            return Err("record does not start with `<length> `".to_owned());
        }
        let len: usize = std::str::from_utf8(rest.get(..digits).unwrap_or_default())
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or("record length is not a number")?;
        let Some(record) = rest.get(..len).filter(|r| r.len() > digits + 1) else {
            return Err(format!("record length {len} runs past the header"));
        };
        let Some((b'\n', inner)) = record
            .get(digits + 1..)
            .and_then(|r| r.split_last())
            .map(|(last, inner)| (*last, inner))
        else {
            return Err("record does not end with a newline".to_owned());
        };
        let Some(eq) = inner.iter().position(|b| *b == b'=') else {
            return Err("record has no `=`".to_owned());
        };
        let key = inner.get(..eq).unwrap_or_default();
        let value = inner.get(eq + 1..).unwrap_or_default();
        match key {
            b"path" => pax.path = Some(value.to_vec()),
            b"linkpath" => pax.linkpath = Some(value.to_vec()),
            b"size" => {
                let size = std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or("`size` record is not a number")?;
                pax.size = Some(size);
            }
            _ => {}
        }
        rest = rest.get(len..).unwrap_or_default();
    }
    Ok(pax)
}

/// GNU long names and links end with a NUL (sometimes several): strip them. A NUL left inside
/// is refused later, when the name is normalized.
fn strip_trailing_nuls(mut body: Vec<u8>) -> Vec<u8> {
    while body.last() == Some(&0) {
        body.pop();
    }
    body
}

/// The name an entry ends up with: PAX over GNU over the header; PAX and GNU must agree.
fn choose(
    pax: Option<Vec<u8>>,
    gnu: Option<Vec<u8>>,
    header: impl FnOnce() -> Vec<u8>,
) -> std::result::Result<Vec<u8>, ()> {
    match (pax, gnu) {
        (Some(p), Some(g)) if p != g => Err(()),
        (Some(p), _) => Ok(p),
        (None, Some(g)) => Ok(g),
        (None, None) => Ok(header()),
    }
}

impl Pending {
    /// Takes in one metadata entry's body.
    fn absorb(
        &mut self,
        type_byte: u8,
        body: Vec<u8>,
        label: &str,
        name: &str,
        kind: &'static str,
    ) -> Result<()> {
        if type_byte != b'g' {
            // A global header describes the archive, not the next entry.
            self.first.get_or_insert_with(|| name.to_owned());
        }
        let dup = || bad_meta(label, name, kind, "two for one entry");
        match type_byte {
            b'L' => {
                if self.long_name.is_some() {
                    return Err(dup());
                }
                self.long_name = Some(strip_trailing_nuls(body));
            }
            b'K' => {
                if self.long_link.is_some() {
                    return Err(dup());
                }
                self.long_link = Some(strip_trailing_nuls(body));
            }
            b'x' => {
                if self.pax.is_some() {
                    return Err(dup());
                }
                let pax = parse_pax(&body).map_err(|r| bad_meta(label, name, kind, r))?;
                self.pax = Some(pax);
            }
            _ => global_header(&body, label, name)?,
        }
        Ok(())
    }

    /// The path and link target of the entry these metadata describe (clearing them).
    fn resolve<R: Read>(
        &mut self,
        entry: &tar::Entry<'_, R>,
        label: &str,
        header_name: &str,
    ) -> Result<(Vec<u8>, Vec<u8>)> {
        let Self {
            long_name,
            long_link,
            pax,
            first,
        } = std::mem::take(self);
        let pax = pax.unwrap_or_default();
        let meta_name = first.unwrap_or_else(|| header_name.to_owned());
        let differ = |what: &str| bad_meta(label, &meta_name, PAX_HEADER, what);
        let path = choose(pax.path, long_name, || entry.path_bytes().into_owned())
            .map_err(|()| differ("PAX path and GNU long name differ"))?;
        let link = choose(pax.linkpath, long_link, || {
            entry
                .link_name_bytes()
                .map(std::borrow::Cow::into_owned)
                .unwrap_or_default()
        })
        .map_err(|()| differ("PAX linkpath and GNU long link differ"))?;
        let size = entry.size();
        if let Some(pax_size) = pax.size
            && pax_size != size
        {
            return Err(differ(&format!(
                "PAX size {pax_size} differs from the header's size {size} (readers would disagree on where the next entry starts)"
            )));
        }
        Ok((path, link))
    }
}

/// Reads every entry of the gzip-compressed tarball `bytes`, handing each one that is not
/// metadata to `on_entry`.
pub(crate) fn for_each_entry<F>(
    bytes: &[u8],
    label: &str,
    limits: &ImportLimits,
    mut on_entry: F,
) -> Result<()>
where
    F: FnMut(&mut StreamEntry<'_>) -> Result<()>,
{
    let reader = CountingReader {
        inner: MultiGzDecoder::new(bytes),
        count: Rc::new(Cell::new(0)),
        limit: limits.max_total_bytes,
    };
    let mut archive = tar::Archive::new(reader);
    let mut last = String::from("(start of archive)");
    {
        let entries = archive
            .entries()
            .map_err(|e| read_error(label, &last, &e))?
            .raw(true);
        let mut pending = Pending::default();
        for entry in entries {
            let mut entry = entry.map_err(|e| header_error(label, &last, &e))?;
            let kind = entry.header().entry_type();
            let header_name = display_name(&entry.path_bytes());
            let meta_kind = match kind.as_byte() {
                b'L' => Some(LONG_NAME),
                b'K' => Some(LONG_LINK),
                b'x' => Some(PAX_HEADER),
                b'g' => Some(PAX_GLOBAL),
                _ => None,
            };
            if let Some(meta_kind) = meta_kind {
                let body = read_meta(&mut entry, label, &header_name, meta_kind, limits)?;
                pending.absorb(kind.as_byte(), body, label, &header_name, meta_kind)?;
                last = header_name;
                continue;
            }
            let (path, link) = pending.resolve(&entry, label, &header_name)?;
            last = display_name(&path);
            let size = entry.size();
            let mode = entry.header().mode().unwrap_or(0);
            on_entry(&mut StreamEntry {
                path,
                link,
                kind,
                size,
                mode,
                data: &mut entry,
            })?;
            io::copy(&mut entry, &mut io::sink()).map_err(|e| read_error(label, &last, &e))?;
        }
        if let Some(first) = pending.first {
            return Err(bad_meta(
                label,
                &first,
                "metadata entry",
                "describes no entry (the archive ends after it)",
            ));
        }
    }
    check_trailing(archive.into_inner(), label)
}

/// An error while reading the header that follows `last`.
fn header_error(label: &str, last: &str, err: &io::Error) -> Error {
    let entry = format!("(header after {last})");
    match read_error(label, &entry, err) {
        Error::BadTarball { tarball, .. } => Error::BadTarball {
            tarball,
            reason: format!("unreadable archive after entry {last:?}: {err}"),
        },
        other => other,
    }
}

/// Reads a metadata entry whose header passed the size limit.
fn read_meta<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    label: &str,
    name: &str,
    kind: &'static str,
    limits: &ImportLimits,
) -> Result<Vec<u8>> {
    let size = entry.size();
    if size > limits.max_meta_entry_bytes {
        return Err(Error::Rejected {
            tarball: label.to_owned(),
            entry: name.to_owned(),
            reason: Rejection::MetadataTooLarge {
                kind,
                size,
                limit: limits.max_meta_entry_bytes,
            },
        });
    }
    let mut body = Vec::with_capacity(usize::try_from(size).unwrap_or_default());
    entry
        .take(size)
        .read_to_end(&mut body)
        .map_err(|e| read_error(label, name, &e))?;
    if body.len() as u64 != size {
        return Err(Error::BadTarball {
            tarball: label.to_owned(),
            reason: format!("entry {name:?}: archive ends inside the {kind}"),
        });
    }
    Ok(body)
}

/// A PAX global header: `path` is ignored (as node-tar does), `linkpath` and `size` refused.
fn global_header(body: &[u8], label: &str, name: &str) -> Result<()> {
    let pax = parse_pax(body).map_err(|r| bad_meta(label, name, PAX_GLOBAL, r))?;
    if pax.linkpath.is_some() || pax.size.is_some() {
        return Err(bad_meta(
            label,
            name,
            PAX_GLOBAL,
            "a global `linkpath` or `size` would apply to every later entry in some readers and be ignored by others",
        ));
    }
    if let Some(path) = pax.path {
        tracing::debug!(tarball = label, entry = name, path = %display_name(&path), "ignoring the `path` of a PAX global header, as npm does");
    }
    Ok(())
}

/// Reads what follows the end-of-archive marker: zeros only (counted), else an error.
fn check_trailing<R: Read>(mut rest: R, label: &str) -> Result<()> {
    const WHERE: &str = "(after the end of the archive)";
    let mut buf = vec![0u8; 64 * 1024];
    let mut seen: u64 = 0;
    loop {
        let n = rest
            .read(&mut buf)
            .map_err(|e| trailing_error(label, WHERE, &e))?;
        if n == 0 {
            return Ok(());
        }
        let chunk = buf.get(..n).unwrap_or_default();
        if let Some(pos) = chunk.iter().position(|b| *b != 0) {
            return Err(Error::BadTarball {
                tarball: label.to_owned(),
                reason: format!(
                    "data after the end-of-archive marker (non-zero byte {} bytes after it)",
                    seen + pos as u64
                ),
            });
        }
        seen += n as u64;
    }
}

fn trailing_error(label: &str, entry: &str, err: &io::Error) -> Error {
    match read_error(label, entry, err) {
        Error::BadTarball { tarball, .. } => Error::BadTarball {
            tarball,
            reason: format!("unreadable data after the end-of-archive marker: {err}"),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pax_records_and_refuses_malformed_ones() {
        let pax = parse_pax(b"13 path=abcd\n19 linkpath=target\n9 size=5\n\0\0\0").unwrap();
        assert_eq!(pax.path.as_deref(), Some(&b"abcd"[..]));
        assert_eq!(pax.linkpath.as_deref(), Some(&b"target"[..]));
        assert_eq!(pax.size, Some(5));
        assert!(parse_pax(b"").unwrap().path.is_none());
        for bad in [
            &b"x path=a\n"[..],
            b"99 path=a\n",
            b"9 path=ab\0",
            b"7 pathx\n",
            b"9 size=x\n",
            b"3 \n",
            b"99999999999999999999 path=a\n",
            b"9 path=a\n\0x",
        ] {
            assert!(
                parse_pax(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn counting_reader_stops_one_byte_past_the_limit() {
        let count = Rc::new(Cell::new(0));
        let mut reader = CountingReader {
            inner: io::repeat(7),
            count: count.clone(),
            limit: 10,
        };
        let mut buf = [0u8; 64];
        assert_eq!(reader.read(&mut buf[..4]).unwrap(), 4);
        let err = reader.read(&mut buf).unwrap_err();
        assert!(err.to_string().contains("more than 10 bytes"), "{err}");
        assert_eq!(count.get(), 11);
        assert!(reader.read(&mut buf).is_err());
    }
}
