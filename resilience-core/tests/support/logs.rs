//! Captures `tracing` output of a test as text.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

/// A shared in-memory sink for a `tracing_subscriber::fmt` subscriber.
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

/// A DEBUG-level plain-text subscriber writing into a fresh buffer.
pub(crate) fn debug_subscriber() -> (LogBuffer, impl tracing::Subscriber + Send + Sync) {
    let buffer = LogBuffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    (buffer, subscriber)
}
