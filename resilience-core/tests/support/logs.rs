//! Captures the `tracing` output of a test as text.
//!
//! Why one global subscriber and not a scoped one per test: `tracing` caches
//! each callsite's interest process-wide. With `with_default`/`set_default`,
//! a thread that hits a callsite while no subscriber is visible to it can
//! register that callsite as "never enabled" while another test is installing
//! its scoped subscriber, and the event the test waits for is silently lost
//! (a flaky test). So a log-capturing test binary installs ONE global
//! subscriber, before its first event, that formats every event and routes it
//! to the capture of the thread that emitted it: callsites are only ever
//! registered against that subscriber, and parallel tests of the same binary
//! never see each other's lines.
//!
//! Every test of such a binary starts with [`capture`] (which installs the
//! global subscriber on first use) and emits the events it checks on its own
//! thread (a `#[test]` or a current-thread `#[tokio::test]`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, Once};

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// A shared in-memory sink for the formatted lines of one test.
#[derive(Clone, Default)]
pub(crate) struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    /// Everything written so far.
    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

thread_local! {
    /// The capture of the test running on this thread, with its most
    /// verbose level.
    static SINK: RefCell<Option<(LogBuffer, Level)>> = const { RefCell::new(None) };
}

/// Writes into the emitting thread's capture, or nowhere.
struct ThreadRouter;

/// The writer of one event: the emitting thread's buffer when it captures
/// at that level.
struct Routed(Option<LogBuffer>);

impl std::io::Write for Routed {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &mut self.0 {
            Some(buffer) => buffer.write(buf),
            None => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for ThreadRouter {
    type Writer = Routed;

    fn make_writer(&'a self) -> Routed {
        Routed(SINK.with_borrow(|sink| sink.as_ref().map(|(buffer, _)| buffer.clone())))
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Routed {
        Routed(SINK.with_borrow(|sink| {
            sink.as_ref()
                .filter(|(_, max)| meta.level() <= max)
                .map(|(buffer, _)| buffer.clone())
        }))
    }
}

/// Installs the binary's global subscriber (plain text, every level, no
/// ANSI colours) once.
fn install() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(Level::TRACE)
            .with_ansi(false)
            .with_writer(ThreadRouter)
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .expect("a log-capturing test binary installs no other global subscriber");
    });
}

/// Captures what this thread logs at `max_level` or more severe until the
/// guard is dropped.
#[must_use = "the capture stops when the guard is dropped"]
pub(crate) fn capture(max_level: Level) -> Capture {
    install();
    let buffer = LogBuffer::default();
    SINK.set(Some((buffer.clone(), max_level)));
    Capture {
        buffer,
        _this_thread: PhantomData,
    }
}

/// The capture of the current thread's `tracing` output; ends on drop.
/// Not `Send`: it must end on the thread it captures.
pub(crate) struct Capture {
    buffer: LogBuffer,
    _this_thread: PhantomData<*const ()>,
}

impl Capture {
    /// Everything captured so far, one formatted line per event.
    pub(crate) fn text(&self) -> String {
        self.buffer.text()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        SINK.set(None);
    }
}
