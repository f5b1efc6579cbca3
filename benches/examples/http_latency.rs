//! The latency of computes over one kept-alive HTTP connection, measured by a client that reads
//! each answer with large reads: the HTTP side of `testing/performance/transport.py latency`,
//! beside wrk.
//!
//! Why a client of our own: wrk reads 8 KiB at a time (about 100 reads for a full M answer of
//! 0.8 MB, 480 at L), and with a Lua `response` hook it copies every body into Lua as well, so
//! its latency carries client costs that grow with the answer. This client sends the same
//! requests wrk does (the compute bodies of a file, one per line, cycled) and reads into one
//! buffer grown to the answer's `Content-Length`, so what it times is the server and the
//! kernel's loopback copy.
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

/// Reads one answer (head and `Content-Length` body) into the front of `buf`, which keeps its
/// size between answers (so it is zeroed once, not per answer); returns the status and the
/// answer's length.
fn read_answer(stream: &mut TcpStream, buf: &mut Vec<u8>) -> (u16, usize) {
    let mut filled = 0;
    let (status, body_at, body_len) = loop {
        if buf.len() < filled + 64 * 1024 {
            buf.resize(filled + 64 * 1024, 0);
        }
        let n = stream.read(&mut buf[filled..]).expect("read");
        assert!(n > 0, "the server closed the connection");
        filled += n;
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut head = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(at) = head.parse(&buf[..filled]).expect("an HTTP answer") {
            let len = head
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok()?.parse::<usize>().ok())
                .expect("Content-Length");
            break (head.code.expect("status"), at, len);
        }
        assert!(filled < HEAD_MAX, "no head within {HEAD_MAX} bytes");
    };
    let end = body_at + body_len;
    if buf.len() < end {
        buf.resize(end, 0);
    }
    while filled < end {
        let n = stream.read(&mut buf[filled..end]).expect("read");
        assert!(n > 0, "the server closed the connection mid-answer");
        filled += n;
    }
    (status, end)
}
