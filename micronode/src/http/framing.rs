//! HTTP/1.1 framing without I/O: a request head from bytes (through `httparse`, under the
//! head bound and the rules below), a chunked body decoded incrementally, and the head of an
//! answer. The connection state machine ([`super::conn`]) feeds it the bytes it read; the fuzz
//! target of the transport feeds it arbitrary ones.
//!
//! Stricter than `httparse` alone, because a lenient reading is how requests get smuggled past
//! a proxy in front of the node (RFC 9112 §11.2): a head must be ASCII with CRLF line ends (no
//! bare CR or LF), carry one `Content-Length` (a list of equal values counts as one) or
//! `Transfer-Encoding: chunked` alone (never both, never on HTTP/1.0), exactly one `Host` on
//! HTTP/1.1 (RFC 9112 §3.2) and at most one `Authorization`. The target is in origin form, or
//! in absolute form (`http://host/path`, RFC 9112 §3.2.2), which is reduced to its path. Every
//! refusal is `400 bad_request` with the request's correlation id when one was found, and the
//! connection is closed after it.

use rewarder_core::service::{JSON, Response};
use rewarder_core::{Code, Error};

use crate::wire::{self, CORR_ID_HEADER};

/// Headers one request may carry; more is `400`.
pub const HEADERS_MAX: usize = 100;
/// Longest chunk-size line (with extensions) read before the chunk is refused.
pub const CHUNK_LINE_BYTES_MAX: usize = 1024;

/// How the body of a request is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    None,
    /// `Content-Length: n` (n > 0).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A parsed, validated request head: what the node needs of it, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// The method token.
    pub method: String,
    /// The origin-form target (path and query).
    pub target: String,
    /// The client's `X-Corr-ID` when valid, else a fresh one.
    pub corr_id: String,
    /// `Authorization`.
    pub authorization: Option<String>,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// `Content-Encoding`, several headers joined with `, ` (so that two headers read as the
    /// list they are).
    pub content_encoding: Option<String>,
    /// How the body is delimited.
    pub framing: Framing,
    /// `Expect: 100-continue` with a body to come.
    pub expects_continue: bool,
    /// Whether the connection stays open after the answer.
    pub keep_alive: bool,
    /// An HTTP/1.1 request, whose answer may be sent with chunked framing (HTTP/1.0 has none).
    pub http_1_1: bool,
}

/// A refused head: the error and the correlation id to answer it with.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadError {
    /// The client's correlation id when one could be read, else a fresh one.
    pub corr_id: String,
    /// The `400` to answer.
    pub error: Error,
}

/// Finds the end of a head: the index just past its `CRLF CRLF`, searching from `from` (what an
/// earlier call already searched), so a head arriving byte by byte is scanned once.
pub fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    let start = from.saturating_sub(3);
    memchr_crlfcrlf(&buf[start..]).map(|p| start + p + 4)
}

fn memchr_crlfcrlf(bytes: &[u8]) -> Option<usize> {
    bytes.windows(4).position(|w| w == b"\r\n\r\n")
}

/// Parses the head `bytes` (ending in `CRLF CRLF`, as [`head_end`] found it).
pub fn parse_head(bytes: &[u8]) -> Result<RequestHead, HeadError> {
    let bad = |message: String| HeadError {
        corr_id: corr_id_in(bytes),
        error: Error::new(Code::BadRequest, message),
    };
    if !bytes.is_ascii() {
        return Err(bad("the request head is not ASCII".into()));
    }
    // httparse accepts bare LF line ends; a proxy in front may not agree where the head ends.
    let bare = bytes.iter().enumerate().any(|(i, &b)| match b {
        b'\n' => i == 0 || bytes[i - 1] != b'\r',
        b'\r' => bytes.get(i + 1) != Some(&b'\n'),
        _ => false,
    });
    if bare {
        return Err(bad("bare CR or LF in the request head (CRLF line ends only)".into()));
    }
    let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(bytes) {
        Ok(httparse::Status::Complete(n)) if n == bytes.len() => {}
        Ok(_) => return Err(bad("malformed request head".into())),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(bad(format!("more than {HEADERS_MAX} header lines")));
        }
        Err(httparse::Error::Version) => return Err(bad("unsupported protocol version".into())),
        Err(e) => return Err(bad(format!("malformed request head: {e}"))),
    }
    let (Some(method), Some(target), Some(version)) = (request.method, request.path, request.version) else {
        return Err(bad("malformed request line".into()));
    };
    let target = match origin_form(target) {
        Some(path) => path,
        None => return Err(bad("malformed request target (origin or absolute form expected)".into())),
    };
    let http_1_0 = version == 0;
    let mut hosts = 0;
    let mut corr_id = None;
    let mut authorization = None;
    let mut content_type = None;
    let mut content_encoding: Option<String> = None;
    let mut content_length: Option<u64> = None;
    let mut transfer_encoding: Option<String> = None;
    let mut connection = String::new();
    let mut expect: Option<&str> = None;
    for header in request.headers.iter() {
        // ASCII was checked above, so every value is a str.
        let value = std::str::from_utf8(header.value).unwrap_or_default().trim_matches([' ', '\t']);
        let name = header.name;
        if name.eq_ignore_ascii_case("content-length") {
            for item in value.split(',').map(str::trim) {
                let n: u64 = item
                    .parse()
                    .ok()
                    .filter(|_| !item.is_empty() && item.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| bad(format!("invalid Content-Length {value:?}")))?;
                if content_length.is_some_and(|c| c != n) {
                    return Err(bad("conflicting Content-Length headers".into()));
                }
                content_length = Some(n);
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            let te = transfer_encoding.get_or_insert_with(String::new);
            if !te.is_empty() {
                te.push(',');
            }
            te.push_str(value);
        } else if name.eq_ignore_ascii_case("connection") {
            connection.push(',');
            connection.push_str(&value.to_ascii_lowercase());
        } else if name.eq_ignore_ascii_case("host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case("expect") {
            expect = Some(value);
        } else if name.eq_ignore_ascii_case(CORR_ID_HEADER) {
            corr_id = Some(value);
        } else if name.eq_ignore_ascii_case("authorization") {
            if authorization.is_some() {
                return Err(bad("more than one Authorization header".into()));
            }
            authorization = Some(value.to_owned());
        } else if name.eq_ignore_ascii_case("content-type") {
            content_type = Some(value.to_owned());
        } else if name.eq_ignore_ascii_case("content-encoding") {
            match &mut content_encoding {
                Some(all) => {
                    all.push_str(", ");
                    all.push_str(value);
                }
                None => content_encoding = Some(value.to_owned()),
            }
        }
    }
    if hosts > 1 || (!http_1_0 && hosts == 0) {
        return Err(bad("an HTTP/1.1 request needs exactly one Host header".into()));
    }
    let framing = match (transfer_encoding, content_length) {
        (Some(_), Some(_)) => return Err(bad("both Transfer-Encoding and Content-Length".into())),
        (Some(te), None) => {
            let codings: Vec<&str> = te.split(',').map(str::trim).filter(|c| !c.is_empty()).collect();
            if http_1_0 || codings.len() != 1 || !codings[0].eq_ignore_ascii_case("chunked") {
                return Err(bad(format!("unsupported Transfer-Encoding {te:?} (only chunked)")));
            }
            Framing::Chunked
        }
        (None, Some(0) | None) => Framing::None,
        (None, Some(n)) => Framing::Length(n),
    };
    let expects_continue = match expect {
        None => false,
        Some(e) if e.eq_ignore_ascii_case("100-continue") => framing != Framing::None,
        Some(e) => return Err(bad(format!("unsupported expectation {e:?}"))),
    };
    let tokens = |t: &str| connection.split(',').any(|c| c.trim() == t);
    let keep_alive = if http_1_0 { tokens("keep-alive") } else { !tokens("close") };
    Ok(RequestHead {
        method: method.to_owned(),
        target: target.to_owned(),
        corr_id: wire::corr_id_or_fresh(corr_id),
        authorization,
        content_type,
        content_encoding,
        framing,
        expects_continue,
        keep_alive,
        http_1_1: !http_1_0,
    })
}

/// The path and query of a request target: an origin-form target as it is, `*`, or the path of
/// an absolute-form `http://authority/path?query` (`/` when it has none); `None` otherwise.
fn origin_form(target: &str) -> Option<&str> {
    if target.starts_with('/') || target == "*" {
        return Some(target);
    }
    let scheme_end = target.find("://")?;
    let scheme = &target[..scheme_end];
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return None;
    }
    let rest = &target[scheme_end + 3..];
    let path_at = rest.find(['/', '?']).unwrap_or(rest.len());
    if path_at == 0 || rest[..path_at].contains('@') {
        // No authority, or userinfo in it (RFC 9110 §4.2.4: not to be sent).
        return None;
    }
    match &rest[path_at..] {
        "" => Some("/"),
        path if path.starts_with('/') => Some(path),
        // `http://host?query`: the path is empty, so it is `/` with that query; refused for
        // simplicity rather than rewritten.
        _ => None,
    }
}

/// The client's correlation id in a head that may not parse, else a fresh one: even a refused
/// head gets its own id echoed.
pub fn corr_id_in(partial: &[u8]) -> String {
    let found = partial.split(|&b| b == b'\n').skip(1).find_map(|line| {
        let colon = line.iter().position(|&b| b == b':')?;
        let name = &line[..colon];
        name.eq_ignore_ascii_case(CORR_ID_HEADER.as_bytes())
            .then(|| std::str::from_utf8(&line[colon + 1..]).ok())
            .flatten()
    });
    wire::corr_id_or_fresh(found)
}

/// Why a chunked body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkError {
    /// Malformed framing (`400`), with what was wrong.
    Malformed(&'static str),
    /// The decoded body would exceed its cap (`413`).
    TooLarge,
}

/// An incremental decoder of a chunked body (RFC 9112 §7.1): feed it what arrived, it appends
/// the data to the body and says how much it consumed. Trailers are read and dropped, bounded
/// like a head.
#[derive(Debug, Clone)]
pub struct Chunked {
    state: ChunkState,
    body_max: usize,
    trailer_bytes: usize,
    trailer_bytes_max: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk's data, this many bytes left.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// Expecting trailer lines or the final empty line.
    Trailers,
    /// The body is complete.
    Done,
}

impl Chunked {
    /// A decoder for a body of at most `body_max` bytes with at most `trailer_bytes_max` bytes of
    /// trailers.
    pub fn new(body_max: usize, trailer_bytes_max: usize) -> Chunked {
        Chunked { state: ChunkState::Size, body_max, trailer_bytes: 0, trailer_bytes_max }
    }

    /// Whether the final chunk and the trailers have been read.
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Decodes what it can of `input` into `body`; returns the bytes consumed. Stops at the end
    /// of the body: what follows belongs to the next request.
    pub fn feed(&mut self, input: &[u8], body: &mut Vec<u8>) -> Result<usize, ChunkError> {
        let mut at = 0;
        loop {
            let rest = &input[at..];
            match self.state {
                ChunkState::Done => return Ok(at),
                // Only the line's first bytes (the bound, CRLF included) are ever looked at, so the
                // verdict — a bad byte, or no line end within the bound — is the same however the
                // bytes arrive.
                ChunkState::Size => {
                    match httparse::parse_chunk_size(&rest[..rest.len().min(CHUNK_LINE_BYTES_MAX + 2)]) {
                        Ok(httparse::Status::Complete((n, size))) => {
                            at += n;
                            self.state =
                                if size == 0 { ChunkState::Trailers } else { ChunkState::Data(size) };
                            if size > (self.body_max - body.len()) as u64 {
                                return Err(ChunkError::TooLarge);
                            }
                        }
                        Ok(httparse::Status::Partial) if rest.len() >= CHUNK_LINE_BYTES_MAX + 2 => {
                            return Err(ChunkError::Malformed("chunk size line too long"));
                        }
                        Ok(httparse::Status::Partial) => return Ok(at),
                        Err(_) => return Err(ChunkError::Malformed("invalid chunk size")),
                    }
                }
                ChunkState::Data(left) => {
                    if rest.is_empty() {
                        return Ok(at);
                    }
                    let take = rest.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    body.extend_from_slice(&rest[..take]);
                    at += take;
                    let left = left - take as u64;
                    self.state = if left == 0 { ChunkState::DataEnd } else { ChunkState::Data(left) };
                }
                ChunkState::DataEnd => {
                    if rest.len() < 2 {
                        return Ok(at);
                    }
                    if &rest[..2] != b"\r\n" {
                        return Err(ChunkError::Malformed("chunk not followed by CRLF"));
                    }
                    at += 2;
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailers => {
                    let Some(end) = rest.windows(2).position(|w| w == b"\r\n") else {
                        if self.trailer_bytes + rest.len() > self.trailer_bytes_max {
                            return Err(ChunkError::Malformed("trailers too long"));
                        }
                        return Ok(at);
                    };
                    at += end + 2;
                    self.trailer_bytes += end + 2;
                    if self.trailer_bytes > self.trailer_bytes_max {
                        return Err(ChunkError::Malformed("trailers too long"));
                    }
                    if end == 0 {
                        self.state = ChunkState::Done;
                    }
                }
            }
        }
    }
}

/// The head of an answer: status line, `Content-Type`, `Content-Length`, `X-Corr-ID`,
/// `Retry-After` when set, and `Connection: close` when the connection ends after it.
pub fn response_head(response: &Response, corr_id: &str, close: bool) -> Vec<u8> {
    let length = format!("Content-Length: {}", response.body_len());
    head(response.status, response.content_type, &length, response.retry_after_s, corr_id, close)
}

/// The head of a JSON answer sent while it is made (a new run's full compute answer, see
/// `rewarder_core::service::Stream`): `Transfer-Encoding: chunked` instead of a length.
pub fn streamed_head(status: u16, corr_id: &str, close: bool) -> Vec<u8> {
    head(status, JSON, "Transfer-Encoding: chunked", None, corr_id, close)
}

fn head(
    status: u16,
    content_type: &str,
    framing: &str,
    retry_after_s: Option<u32>,
    corr_id: &str,
    close: bool,
) -> Vec<u8> {
    use std::io::Write as _;
    let mut head = Vec::with_capacity(160);
    // Writing to a Vec cannot fail.
    let _ = write!(
        head,
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\n{framing}\r\n{CORR_ID_HEADER}: {corr_id}\r\n",
        wire::reason(status),
    );
    if let Some(s) = retry_after_s {
        let _ = write!(head, "Retry-After: {s}\r\n");
    }
    if close {
        head.extend_from_slice(b"Connection: close\r\n");
    }
    head.extend_from_slice(b"\r\n");
    head
}

/// The line that opens a chunk of `len` bytes (chunked framing, RFC 9112 §7.1).
pub fn chunk_line(len: usize) -> Vec<u8> {
    format!("{len:x}\r\n").into_bytes()
}

/// What ends a chunk's data.
pub const CHUNK_END: &[u8] = b"\r\n";
/// The last chunk of a chunked body, without trailers.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Result<RequestHead, HeadError> {
        let bytes = text.as_bytes();
        let end = head_end(bytes, 0).expect("a complete head");
        parse_head(&bytes[..end])
    }

    /// `text` with a `Host` header when it is HTTP/1.1 and has none.
    fn head(text: &str) -> Result<RequestHead, HeadError> {
        match text.split_once("\r\n") {
            Some((line, rest)) if line.ends_with("HTTP/1.1") && !rest.starts_with("Host:") => {
                raw(&format!("{line}\r\nHost: t\r\n{rest}"))
            }
            _ => raw(text),
        }
    }

    fn refused_raw(text: &str) -> String {
        let e = raw(text).expect_err(text);
        assert_eq!(e.error.code(), Code::BadRequest, "{text}");
        e.error.message().to_owned()
    }

    fn refused(text: &str) -> String {
        let e = head(text).expect_err(text);
        assert_eq!(e.error.code(), Code::BadRequest, "{text}");
        e.error.message().to_owned()
    }

    #[test]
    fn parses_a_plain_request() {
        let h = head(
            "PUT /rewarder/inputs?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\nX-Corr-ID: abc\r\n\
             Authorization: Bearer t\r\nContent-Type: application/json\r\n\r\n",
        )
        .unwrap();
        assert_eq!((h.method.as_str(), h.target.as_str()), ("PUT", "/rewarder/inputs?x=1"));
        assert_eq!(h.framing, Framing::Length(12));
        assert_eq!(h.corr_id, "abc");
        assert_eq!(h.authorization.as_deref(), Some("Bearer t"));
        assert_eq!(h.content_type.as_deref(), Some("application/json"));
        assert!(h.keep_alive && !h.expects_continue);
    }

    #[test]
    fn framing_problems_are_bad_requests_with_the_corr_id() {
        let e = head("POST / HTTP/1.1\r\nX-Corr-ID: mine\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
            .unwrap_err();
        assert_eq!(e.corr_id, "mine");
        assert!(
            refused("POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n")
                .contains("both")
        );
        assert!(
            refused("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").contains("only chunked")
        );
        assert!(refused("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n").contains("only chunked"));
        assert!(refused("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n").contains("Content-Length"));
        assert!(refused("POST / HTTP/1.1\r\nContent-Length: 0\nX: y\r\n\r\n").contains("bare"));
        assert!(refused("GET ftp://x/ HTTP/1.1\r\nHost: x\r\n\r\n").contains("absolute form"));
        assert!(refused("GET http://u@x/ HTTP/1.1\r\nHost: x\r\n\r\n").contains("absolute form"));
        assert!(refused_raw("GET / HTTP/1.1\r\n\r\n").contains("Host"));
        assert!(refused_raw("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").contains("Host"));
        assert!(raw("GET / HTTP/1.0\r\n\r\n").is_ok(), "HTTP/1.0 needs no Host");
        assert!(refused("GET / HTTP/2.0\r\n\r\n").contains("version"));
        assert!(refused("GET /\u{e9} HTTP/1.1\r\n\r\n").contains("ASCII"));
        assert!(
            refused("GET / HTTP/1.1\r\nAuthorization: a\r\nAuthorization: b\r\n\r\n")
                .contains("Authorization")
        );
        assert!(refused("GET / HTTP/1.1\r\nExpect: magic\r\n\r\n").contains("expectation"));
        let many: String = (0..=HEADERS_MAX).map(|i| format!("X-{i}: v\r\n")).collect();
        assert!(refused(&format!("GET / HTTP/1.1\r\n{many}\r\n")).contains("header lines"));
        // Equal values in a list are one length.
        assert_eq!(
            head("POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n").unwrap().framing,
            Framing::Length(5)
        );
    }

    #[test]
    fn absolute_form_targets_are_reduced_to_their_path() {
        let target = |t: &str| head(&format!("GET {t} HTTP/1.1\r\n\r\n")).unwrap().target;
        assert_eq!(target("http://x/healthz?a=1"), "/healthz?a=1");
        assert_eq!(target("HTTPS://node.example:8443/rewarder/inputs"), "/rewarder/inputs");
        assert_eq!(target("http://x"), "/");
        assert_eq!(target("/plain"), "/plain");
    }

    #[test]
    fn keep_alive_follows_version_and_connection() {
        assert!(head("GET / HTTP/1.1\r\n\r\n").unwrap().keep_alive);
        assert!(!head("GET / HTTP/1.1\r\nConnection: Close\r\n\r\n").unwrap().keep_alive);
        assert!(!head("GET / HTTP/1.0\r\n\r\n").unwrap().keep_alive);
        assert!(head("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").unwrap().keep_alive);
    }

    #[test]
    fn content_encodings_of_several_headers_read_as_one_list() {
        let h = head("POST / HTTP/1.1\r\nContent-Encoding: gzip\r\nContent-Encoding: gzip\r\n\r\n").unwrap();
        assert_eq!(h.content_encoding.as_deref(), Some("gzip, gzip"));
    }

    #[test]
    fn chunked_and_continue_are_recognised() {
        let h =
            head("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n").unwrap();
        assert_eq!(h.framing, Framing::Chunked);
        assert!(h.expects_continue);
        assert!(!head("POST / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n").unwrap().expects_continue);
    }

    #[test]
    fn head_end_is_found_across_reads() {
        let text = b"GET / HTTP/1.1\r\nA: b\r\n\r\nnext";
        for split in 0..text.len() {
            let first = head_end(&text[..split], 0);
            let whole = first.or_else(|| head_end(text, split));
            assert_eq!(whole, Some(text.len() - 4), "split at {split}");
        }
    }

    fn decode_in_pieces(input: &[u8], piece: usize, max: usize) -> Result<(Vec<u8>, usize), ChunkError> {
        let mut d = Chunked::new(max, 1024);
        let mut body = Vec::new();
        let mut buffered: Vec<u8> = Vec::new();
        let mut consumed_total = 0;
        for part in input.chunks(piece) {
            buffered.extend_from_slice(part);
            let used = d.feed(&buffered, &mut body)?;
            buffered.drain(..used);
            consumed_total += used;
            if d.is_done() {
                break;
            }
        }
        assert!(d.is_done(), "not done after all input");
        Ok((body, consumed_total))
    }

    #[test]
    fn chunked_bodies_decode_whatever_the_read_sizes() {
        let input = b"5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-T: 1\r\n\r\nGET /next";
        for piece in 1..input.len() {
            let (body, used) = decode_in_pieces(input, piece, 100).unwrap();
            assert_eq!(body, b"hello world", "piece {piece}");
            assert_eq!(used, input.len() - b"GET /next".len(), "piece {piece}");
        }
    }

    #[test]
    fn chunked_refusals() {
        let run = |input: &[u8], max: usize| {
            let mut d = Chunked::new(max, 64);
            d.feed(input, &mut Vec::new())
        };
        assert_eq!(run(b"6\r\nhello!\r\n0\r\n\r\n", 5), Err(ChunkError::TooLarge));
        assert!(run(b"6\r\nhello!\r\n0\r\n\r\n", 6).is_ok());
        assert_eq!(run(b"ffffffffffffffffff\r\n", 5), Err(ChunkError::Malformed("invalid chunk size")));
        assert_eq!(run(b"0x0\r\n\r\n", 5), Err(ChunkError::Malformed("invalid chunk size")));
        assert_eq!(run(b"1\r\nab\r\n", 5), Err(ChunkError::Malformed("chunk not followed by CRLF")));
        assert_eq!(run(&[b'1'; 2000], 5), Err(ChunkError::Malformed("invalid chunk size")));
        let long_trailer = [b"0\r\n".as_slice(), &[b'x'; 100]].concat();
        assert_eq!(run(&long_trailer, 5), Err(ChunkError::Malformed("trailers too long")));
    }

    #[test]
    fn answer_heads_carry_length_corr_id_retry_after_and_close() {
        let r = wire::error_response(Code::Overloaded, "busy", "c1");
        let text = String::from_utf8(response_head(&r, "c1", true)).unwrap();
        assert!(text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{text}");
        assert!(text.contains(&format!("\r\nContent-Length: {}\r\n", r.body.len())));
        assert!(text.contains("\r\nX-Corr-ID: c1\r\n"));
        assert!(text.contains("\r\nRetry-After: 1\r\n"));
        assert!(text.ends_with("\r\nConnection: close\r\n\r\n"));
    }
}
