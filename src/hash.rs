//! blake3 over streams: a writer and a reader that hash (and count) what
//! passes through them, for files whose hash is taken at birth (segments,
//! export cache entries) or checked as they are read.

use std::io::{self, Read, Write};

/// Hashes and counts what passes through it on the way to `W`.
pub struct HashingWriter<W> {
    inner: W,
    hasher: blake3::Hasher,
    written: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter { inner, hasher: blake3::Hasher::new(), written: 0 }
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The blake3 of everything written so far.
    pub fn hash(&self) -> [u8; 32] {
        *self.hasher.finalize().as_bytes()
    }

    /// The writer, the blake3 and the length of everything written.
    pub fn finish(self) -> (W, [u8; 32], u64) {
        let hash = self.hash();
        (self.inner, hash, self.written)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Hashes what is read through it, and remembers a read error.
pub struct HashingReader<R> {
    inner: R,
    hasher: blake3::Hasher,
    failed: bool,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader { inner, hasher: blake3::Hasher::new(), failed: false }
    }

    /// Whether a read failed (the source, not whoever consumed the bytes).
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// The blake3 of everything read.
    pub fn hash(&self) -> [u8; 32] {
        *self.hasher.finalize().as_bytes()
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf).inspect_err(|e| self.failed |= e.kind() != io::ErrorKind::Interrupted)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}
