//! The latency of computes over one kept-alive HTTP connection, measured by a client that reads
//! each answer with large reads: the HTTP side of `testing/performance/transport.py latency`,
//! beside wrk.
//!
//! Why a client of our own: wrk reads 8 KiB at a time (about 100 reads for a full M answer of
//! 0.8 MB, 480 at L), and with a Lua `response` hook it copies every body into Lua as well, so
//! its latency carries client costs that grow with the answer. This client sends the same
//! requests wrk does (the compute bodies of a file, one per line, cycled) and reads into one
//! buffer grown to the answer's length (`Content-Length`, or chunk by chunk for an answer sent
//! while it is made), so what it times is the server and the kernel's loopback copy.
//!
//! Usage: `http_latency PORT PATH BODIES_FILE SECONDS` (release build). Prints one JSON line
//! ([`rewarder_benches::latency_json`]). Exits non-zero on any answer but 200.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A head longer than this is not an answer of ours.
const HEAD_MAX: usize = 16 * 1024;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [port, path, bodies_file, seconds] = &args[..] else {
        eprintln!("usage: http_latency PORT PATH BODIES_FILE SECONDS");
        std::process::exit(2);
    };
    let bodies: Vec<String> = std::fs::read_to_string(bodies_file)
        .expect("bodies file")
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    assert!(!bodies.is_empty(), "{bodies_file} holds no bodies");
    let run_for = Duration::from_secs_f64(seconds.parse().expect("SECONDS, a number"));
    let mut stream = TcpStream::connect(("127.0.0.1", port.parse::<u16>().expect("PORT"))).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let mut answer = Vec::new();
    let mut times = Vec::new();
    let started = Instant::now();
    for body in bodies.iter().cycle() {
        if started.elapsed() >= run_for {
            break;
        }
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let sent = Instant::now();
        stream.write_all(request.as_bytes()).expect("send");
        let (status, len) = read_answer(&mut stream, &mut answer);
        times.push(sent.elapsed().as_secs_f64() * 1e3);
        if status != 200 {
            eprintln!("answer {status}: {}", String::from_utf8_lossy(&answer[..len.min(400)]));
            std::process::exit(1);
        }
    }
    println!("{}", rewarder_benches::latency_json(&times));
}

/// Reads one answer (head, then a `Content-Length` or chunked body) into the front of `buf`,
/// which keeps its size between answers (so it is zeroed once, not per answer); returns the
/// status and the answer's length.
fn read_answer(stream: &mut TcpStream, buf: &mut Vec<u8>) -> (u16, usize) {
    let mut filled = 0;
    let (status, body_at, body_len) = loop {
        filled += read_more(stream, buf, filled, filled + 64 * 1024);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut head = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(at) = head.parse(&buf[..filled]).expect("an HTTP answer") {
            let header =
                |name: &str| head.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value);
            let len = match header("content-length") {
                Some(v) => std::str::from_utf8(v).ok().and_then(|v| v.parse::<usize>().ok()),
                None => header("transfer-encoding").filter(|v| v.eq_ignore_ascii_case(b"chunked")).map(|_| 0),
            };
            let len = len.expect("Content-Length or chunked framing");
            let chunked = header("content-length").is_none();
            break (head.code.expect("status"), at, if chunked { None } else { Some(len) });
        }
        assert!(filled < HEAD_MAX, "no head within {HEAD_MAX} bytes");
    };
    let end = match body_len {
        Some(len) => body_at + len,
        None => chunked_end(stream, buf, &mut filled, body_at),
    };
    while filled < end {
        filled += read_more(stream, buf, filled, end);
    }
    (status, end)
}

/// Where the chunked body that starts at `at` ends, reading as far as its last chunk's size line.
fn chunked_end(stream: &mut TcpStream, buf: &mut Vec<u8>, filled: &mut usize, mut at: usize) -> usize {
    loop {
        if at <= *filled
            && let httparse::Status::Complete((line, size)) =
                httparse::parse_chunk_size(&buf[at..*filled]).expect("a chunk size line")
        {
            let size = usize::try_from(size).expect("a chunk size");
            // The data, then its CRLF (after the last chunk, the CRLF that ends the body).
            at += line + size + 2;
            if size == 0 {
                return at;
            }
            continue;
        }
        // Large reads: a whole chunk (up to ~650 KB) when the socket holds it.
        let want = (*filled + 64 * 1024).max(at + 64 * 1024);
        *filled += read_more(stream, buf, *filled, want);
    }
}

/// Reads into `buf[filled..want]` (growing `buf` to `want`); returns the bytes read.
fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>, filled: usize, want: usize) -> usize {
    if buf.len() < want {
        buf.resize(want, 0);
    }
    let n = stream.read(&mut buf[filled..want]).expect("read");
    assert!(n > 0, "the server closed the connection mid-answer");
    n
}
