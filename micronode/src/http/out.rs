//! The bytes a connection owes its client, in order: answer heads, bodies, the pieces of a
//! run's rows shared with the store, and the framing of a streamed answer. Written with
//! vectored writes, from wherever each piece is kept.

use std::collections::VecDeque;
use std::sync::Arc;

use rewarder_core::service::Shared;

use super::framing::{self, CHUNK_END, LAST_CHUNK};
use super::wire_io::WireIo;

/// Pieces handed to one vectored write at most.
const WRITE_PIECES_MAX: usize = 16;

enum Piece {
    Owned(Vec<u8>),
    Shared(Arc<Vec<u8>>),
    Static(&'static [u8]),
}

impl Piece {
    fn bytes(&self) -> &[u8] {
        match self {
            Piece::Owned(v) => v,
            Piece::Shared(v) => v,
            Piece::Static(s) => s,
        }
    }
}

/// The queue of bytes to write.
#[derive(Default)]
pub(crate) struct Out {
    pieces: VecDeque<Piece>,
    /// Bytes of the first piece already written.
    at: usize,
}

impl Out {
    /// Queues `bytes`.
    pub(crate) fn push(&mut self, bytes: Vec<u8>) {
        if !bytes.is_empty() {
            self.pieces.push_back(Piece::Owned(bytes));
        }
    }

    /// Queues a whole answer: its head, then its body with the shared rows in their place.
    pub(crate) fn push_answer(&mut self, head: Vec<u8>, mut body: Vec<u8>, shared: Option<Shared>) {
        self.push(head);
        match shared {
            None => self.push(body),
            Some(Shared { at, rows }) => {
                let after = body.split_off(at);
                self.push(body);
                for piece in rows.pieces() {
                    self.pieces.push_back(Piece::Shared(Arc::clone(piece)));
                }
                self.push(after);
            }
        }
    }

    /// Queues one chunk of a chunked body (an empty one would end the body: skipped).
    pub(crate) fn push_chunk(&mut self, data: Vec<u8>) {
        if !data.is_empty() {
            self.push(framing::chunk_line(data.len()));
            self.push(data);
            self.pieces.push_back(Piece::Static(CHUNK_END));
        }
    }

    /// Queues one chunk of shared bytes.
    pub(crate) fn push_shared_chunk(&mut self, data: Arc<Vec<u8>>) {
        if !data.is_empty() {
            self.push(framing::chunk_line(data.len()));
            self.pieces.push_back(Piece::Shared(data));
            self.pieces.push_back(Piece::Static(CHUNK_END));
        }
    }

    /// Queues the end of a chunked body.
    pub(crate) fn push_last_chunk(&mut self) {
        self.pieces.push_back(Piece::Static(LAST_CHUNK));
    }

    /// Whether bytes wait.
    pub(crate) fn pending(&self) -> bool {
        !self.pieces.is_empty()
    }

    /// The next pieces to write, from the first unwritten byte.
    fn next(&self) -> ([&[u8]; WRITE_PIECES_MAX], usize) {
        let mut parts: [&[u8]; WRITE_PIECES_MAX] = [&[]; WRITE_PIECES_MAX];
        let mut n = 0;
        for piece in self.pieces.iter().take(WRITE_PIECES_MAX) {
            parts[n] = piece.bytes();
            n += 1;
        }
        if n > 0 {
            parts[0] = &parts[0][self.at..];
        }
        (parts, n)
    }

    /// Drops `n` written bytes from the front.
    fn advance(&mut self, mut n: usize) {
        while let Some(first) = self.pieces.front() {
            let left = first.bytes().len() - self.at;
            if n < left {
                self.at += n;
                return;
            }
            n -= left;
            self.at = 0;
            self.pieces.pop_front();
        }
    }

    /// Writes what the socket takes; `Ok(true)` once everything, TLS records included, is
    /// with the kernel.
    pub(crate) fn write(&mut self, io: &mut WireIo) -> std::io::Result<bool> {
        while self.pending() {
            let (parts, n) = self.next();
            let written = io.write_from(&parts[..n])?;
            if written == 0 {
                return Ok(false);
            }
            self.advance(written);
        }
        // Let a long answer's queue go.
        self.pieces = VecDeque::new();
        io.flush()
    }
}

#[cfg(test)]
mod tests {
    use rewarder_core::result::Rows;

    use super::*;

    /// Everything queued, written in steps of `step` bytes.
    fn written(mut out: Out, step: usize) -> Vec<u8> {
        let mut all = Vec::new();
        while out.pending() {
            let (parts, n) = out.next();
            let bytes: Vec<u8> = parts[..n].concat();
            let take = step.min(bytes.len());
            all.extend_from_slice(&bytes[..take]);
            out.advance(take);
        }
        all
    }

    #[test]
    fn an_answer_with_shared_rows_is_written_in_order_at_any_step() {
        let rows = Arc::new(rows_of(&[b"[1,", b"2,", b"3]"]));
        let queue = || {
            let mut out = Out::default();
            out.push_answer(
                b"HEAD|".to_vec(),
                b"{\"a\":,\"b\":1}".to_vec(),
                Some(Shared { at: 5, rows: Arc::clone(&rows) }),
            );
            out.push(b"|next".to_vec());
            out
        };
        for step in 1..=30 {
            assert_eq!(written(queue(), step), b"HEAD|{\"a\":[1,2,3],\"b\":1}|next", "step {step}");
        }
    }

    #[test]
    fn chunks_are_framed_and_empty_ones_skipped() {
        let mut out = Out::default();
        out.push_chunk(b"{\"a\":".to_vec());
        out.push_chunk(Vec::new());
        out.push_shared_chunk(Arc::new(vec![b'x'; 17]));
        out.push_last_chunk();
        let expected = format!("5\r\n{{\"a\":\r\n11\r\n{}\r\n0\r\n\r\n", "x".repeat(17));
        assert_eq!(written(out, 3), expected.as_bytes());
    }

    fn rows_of(pieces: &[&[u8]]) -> Rows {
        pieces.iter().map(|p| Arc::new(p.to_vec())).collect()
    }
}
