//! Bytes in and out of one non-blocking socket, in the clear or through rustls' buffer API
//! (sans-I/O: the connection's TLS state is fed from and flushed to the socket here, so TLS
//! needs no thread of its own).

use std::io::{self, IoSlice, Read, Write};
use std::sync::Arc;

use mio::net::TcpStream;

/// Bytes read from a socket at once.
pub(crate) const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Bytes a connection without a buffer reads onto the stack first: an idle connection that is
/// woken without data (or with a small request) never allocates a full chunk.
const FIRST_READ_BYTES: usize = 4096;

/// What a read found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadState {
    /// The socket may deliver more later.
    Open,
    /// The peer closed its side (or TLS said `close_notify`).
    Eof,
}

/// The socket of one connection and, for TLS, its session.
pub(crate) enum WireIo {
    /// Plain HTTP.
    Plain(TcpStream),
    /// TLS over the socket.
    Tls(TcpStream, Box<rustls::ServerConnection>),
}

impl WireIo {
    /// A connection over `sock`: TLS when `tls` is set.
    pub(crate) fn new(sock: TcpStream, tls: Option<&Arc<rustls::ServerConfig>>) -> io::Result<WireIo> {
        match tls {
            None => Ok(WireIo::Plain(sock)),
            Some(config) => {
                let session = rustls::ServerConnection::new(Arc::clone(config)).map_err(io::Error::other)?;
                Ok(WireIo::Tls(sock, Box::new(session)))
            }
        }
    }

    /// The socket.
    pub(crate) fn socket(&mut self) -> &mut TcpStream {
        match self {
            WireIo::Plain(s) | WireIo::Tls(s, _) => s,
        }
    }

    /// Appends what can be read now to `buf`, until the socket would block or `buf` holds
    /// `want` bytes. `Err` is a broken connection (or a TLS protocol error).
    pub(crate) fn read_into(&mut self, buf: &mut Vec<u8>, want: usize) -> io::Result<ReadState> {
        match self {
            WireIo::Plain(sock) => {
                if buf.capacity() == 0 && want > 0 {
                    let mut first = [0u8; FIRST_READ_BYTES];
                    let room = want.min(FIRST_READ_BYTES);
                    loop {
                        match sock.read(&mut first[..room]) {
                            Ok(0) => return Ok(ReadState::Eof),
                            Ok(n) => {
                                buf.extend_from_slice(&first[..n]);
                                break;
                            }
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(ReadState::Open),
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) => return Err(e),
                        }
                    }
                }
                while buf.len() < want {
                    let old = buf.len();
                    let room = (want - old).clamp(1, READ_CHUNK_BYTES);
                    buf.resize(old + room, 0);
                    let read = sock.read(&mut buf[old..]);
                    buf.truncate(old + *read.as_ref().unwrap_or(&0));
                    match read {
                        Ok(0) => return Ok(ReadState::Eof),
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(ReadState::Open),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(ReadState::Open)
            }
            WireIo::Tls(sock, session) => {
                let mut eof = false;
                loop {
                    // Plaintext already decrypted first: it may be all that is needed.
                    while buf.len() < want {
                        let old = buf.len();
                        let room = (want - old).clamp(1, READ_CHUNK_BYTES);
                        buf.resize(old + room, 0);
                        let read = session.reader().read(&mut buf[old..]);
                        buf.truncate(old + *read.as_ref().unwrap_or(&0));
                        match read {
                            Ok(0) => return Ok(ReadState::Eof),
                            Ok(_) => {}
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            Err(e) => return Err(e),
                        }
                    }
                    if buf.len() >= want || eof {
                        return Ok(if eof { ReadState::Eof } else { ReadState::Open });
                    }
                    match session.read_tls(sock) {
                        Ok(0) => eof = true,
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            self.flush()?;
                            return Ok(ReadState::Open);
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    }
                    if let Err(e) = session.process_new_packets() {
                        // Tell the peer why before giving up (best effort).
                        let _ = session.write_tls(sock);
                        return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                    }
                    // Handshake records to answer.
                    Self::flush_tls(sock, session)?;
                }
            }
        }
    }

    /// Writes what it can of `parts` (plaintext), in one vectored write where possible; returns
    /// the bytes taken. 0 with nothing written means the socket is full: wait for writable.
    pub(crate) fn write_from(&mut self, parts: &[&[u8]]) -> io::Result<usize> {
        let slices: Vec<IoSlice<'_>> =
            parts.iter().filter(|p| !p.is_empty()).map(|p| IoSlice::new(p)).collect();
        if slices.is_empty() {
            return Ok(0);
        }
        match self {
            WireIo::Plain(sock) => loop {
                match sock.write_vectored(&slices) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(0),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            },
            WireIo::Tls(sock, session) => {
                // Encrypt only what the socket is taking: rustls buffers a bounded amount.
                Self::flush_tls(sock, session)?;
                if session.wants_write() {
                    return Ok(0);
                }
                let n = session.writer().write_vectored(&slices)?;
                Self::flush_tls(sock, session)?;
                Ok(n)
            }
        }
    }

    /// Flushes TLS records rustls holds; `Ok(true)` when nothing is left to send.
    pub(crate) fn flush(&mut self) -> io::Result<bool> {
        match self {
            WireIo::Plain(_) => Ok(true),
            WireIo::Tls(sock, session) => {
                Self::flush_tls(sock, session)?;
                Ok(!session.wants_write())
            }
        }
    }

    fn flush_tls(sock: &mut TcpStream, session: &mut rustls::ServerConnection) -> io::Result<()> {
        while session.wants_write() {
            match session.write_tls(sock) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Ends the sending side: TLS `close_notify`, then a TCP half-close, so the peer reads
    /// everything sent before it sees the end.
    pub(crate) fn shutdown_write(&mut self) {
        if let WireIo::Tls(sock, session) = self {
            session.send_close_notify();
            let _ = Self::flush_tls(sock, session);
        }
        let _ = self.socket().shutdown(std::net::Shutdown::Write);
    }
}
