//! The micronode binary over real TCP: the transport's limits and errors, signals and amnesia,
//! configuration errors, the `compute`, `compare` and `mint-token` commands, and the golden
//! vectors (and comparisons) over HTTP. Every node binds 127.0.0.1:0; every wait is bounded.

mod support;

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{
    JSON, Node, Reply, Scratch, compute_over_http, gzip, mint_token, read_reply, read_vector, run_cli,
    vectors,
};

// ---- errors and limits of the transport -------------------------------------------------

/// RFC 9112, strictly: `Host` exactly once on HTTP/1.1, absolute-form targets accepted, `HEAD`
/// wherever `GET` is, one `Authorization`, and two gzip codings refused however they are sent.
#[test]
fn http_1_1_is_read_strictly() {
    let node = Node::start(&[]);
    let send = |raw: &str| node.raw(raw.as_bytes());
    send("GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n").assert_error(400, "bad_request");
    send("GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n")
        .assert_error(400, "bad_request");
    assert_eq!(send("GET /healthz HTTP/1.0\r\n\r\n").status, 200, "HTTP/1.0 needs no Host");
    let absolute =
        send("GET http://127.0.0.1/version HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    assert_eq!(absolute.status, 200);
    assert_eq!(absolute.json()["name"], "svc-rewarder");
    let two_auth = "GET /rewarder/epochs/e1 HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer x\r\nAuthorization: Bearer y\r\nConnection: close\r\n\r\n";
    send(two_auth).assert_error(400, "bad_request");
    // HEAD: the GET answer's head, Content-Length included, and no body.
    let get = node.call("GET", "/version", &[], None);
    let head = |path: &str| {
        let mut stream = TcpStream::connect(node.addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        stream
            .write_all(format!("HEAD {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").as_bytes())
            .unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).unwrap();
        String::from_utf8(raw).unwrap()
    };
    let text = head("/version");
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains(&format!("\r\nContent-Length: {}\r\n", get.body.len())), "{text}");
    assert!(text.ends_with("\r\n\r\n"), "a HEAD answer has no body: {text}");
    let text = head("/rewarder/inputs");
    assert!(text.starts_with("HTTP/1.1 405 "), "HEAD where GET is not: {text}");
    assert!(text.ends_with("\r\n\r\n"), "a HEAD answer has no body, even an error: {text}");
    let gz = gzip(b"{}");
    for headers in [
        vec![JSON, ("Content-Encoding", "gzip, gzip")],
        vec![JSON, ("Content-Encoding", "gzip"), ("Content-Encoding", "gzip")],
    ] {
        node.call("PUT", "/rewarder/policies", &headers, Some(&gz)).assert_error(415, "unsupported_encoding");
    }
}

/// A client that sends its whole oversize body without waiting (no `Expect`) reads its 413
/// envelope, not a reset: the node answers from the head, then drains what still comes before
/// closing (a lingering close). Python's `http.client` and curl, 100 tries each.
#[test]
fn an_oversize_body_sent_in_full_still_reads_its_413() {
    let node = Node::start(&[("TENANT_RPS_MAX", "1000000")]);
    let scratch = Scratch::new("oversize");
    let body = scratch.path().join("body.json");
    std::fs::write(&body, vec![b' '; 2 << 20]).unwrap();
    const TRIES: usize = 100;
    let python = format!(
        r#"
import http.client, json, sys
body = open(sys.argv[1], "rb").read()
ok = 0
for _ in range({TRIES}):
    c = http.client.HTTPConnection("127.0.0.1", {port}, timeout=10)
    try:
        c.request("PUT", "/rewarder/policies", body=body, headers={{"Content-Type": "application/json"}})
        r = c.getresponse()
        envelope = json.loads(r.read())
        ok += r.status == 413 and envelope["error"]["code"] == "body_too_large"
    except Exception as e:
        print("failed:", repr(e), file=sys.stderr)
    finally:
        c.close()
print(ok)
"#,
        port = node.addr.port()
    );
    let out = std::process::Command::new("python3").arg("-c").arg(&python).arg(&body).output().unwrap();
    let read: usize = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0);
    assert_eq!(
        read,
        TRIES,
        "python read its 413 in {read} of {TRIES}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut curl_ok = 0;
    for _ in 0..TRIES {
        let out = std::process::Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "10",
                "-X",
                "PUT",
                "-H",
                "Expect:",
                "-H",
                "Content-Type: application/json",
            ])
            .arg("--data-binary")
            .arg(format!("@{}", body.display()))
            .args(["-w", "\n%{http_code}"])
            .arg(format!("{}/rewarder/policies", node.url()))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        if text.ends_with("\n413") && text.contains("\"body_too_large\"") {
            curl_ok += 1;
        } else {
            eprintln!("curl: {text} {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    assert_eq!(curl_ok, TRIES, "curl read its 413 in {curl_ok} of {TRIES}");
    assert_eq!(node.call("GET", "/healthz", &[], None).status, 200);
}

#[test]
fn unknown_route_is_a_json_404_with_a_generated_corr_id() {
    let node = Node::start(&[]);
    let reply = node.call("GET", "/no/such/route", &[], None);
    reply.assert_error(404, "not_found");
    let corr = reply.header("X-Corr-ID").unwrap();
    assert_eq!(corr.len(), 32, "a generated id is 32 hex chars: {corr}");
    assert!(corr.bytes().all(|b| b.is_ascii_hexdigit()));
    let again = node.call("GET", "/no/such/route", &[], None);
    assert_ne!(again.header("X-Corr-ID"), reply.header("X-Corr-ID"));
}

#[test]
fn corr_id_is_echoed_when_valid_and_replaced_when_not() {
    let node = Node::start(&[]);
    let ok = node.call("GET", "/healthz", &[("X-Corr-ID", "req-42:a.b_c")], None);
    assert_eq!(ok.status, 200);
    assert_eq!(ok.header("X-Corr-ID"), Some("req-42:a.b_c"));
    let long = "x".repeat(65);
    for bad in [long.as_str(), "has/slash", "semi;colon"] {
        let reply = node.call("GET", "/nowhere", &[("X-Corr-ID", bad)], None);
        reply.assert_error(404, "not_found");
        assert_ne!(reply.header("X-Corr-ID"), Some(bad));
    }
    // Errors raised by the transport itself carry the client's id too.
    let reply = node.call(
        "PUT",
        "/rewarder/policies",
        &[("X-Corr-ID", "mine"), ("Content-Type", "text/plain")],
        Some(b"{}"),
    );
    reply.assert_error(415, "unsupported_media_type");
    assert_eq!(reply.header("X-Corr-ID"), Some("mine"));
}

#[test]
fn oversize_body_is_refused_on_content_length_before_reading() {
    let node = Node::start(&[("REQ_BODY_MAX_BYTES", "1000"), ("INPUTS_MAX_BYTES", "5000")]);
    // Only the head is sent: the answer must come without the body.
    let head = b"PUT /rewarder/policies HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 1001\r\nX-Corr-ID: big\r\n\r\n";
    let reply = node.raw(head);
    reply.assert_error(413, "body_too_large");
    assert_eq!(reply.header("X-Corr-ID"), Some("big"));
    assert_eq!(reply.header("Connection"), Some("close"));
    // The inputs route has its own, larger cap.
    let body = vec![b' '; 1500];
    let reply = node.call("PUT", "/rewarder/inputs", &[JSON], Some(&body));
    assert_ne!(reply.status, 413, "{}", String::from_utf8_lossy(&reply.body));
    let reply = node.raw(
        b"PUT /rewarder/inputs HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 5001\r\n\r\n",
    );
    reply.assert_error(413, "body_too_large");
}

#[test]
fn oversize_chunked_body_is_counted_while_reading() {
    let node = Node::start(&[("REQ_BODY_MAX_BYTES", "1000")]);
    let mut request = b"PUT /rewarder/policies HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..3 {
        request.extend_from_slice(b"190\r\n");
        request.extend_from_slice(&[b' '; 0x190]);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    node.raw(&request).assert_error(413, "body_too_large");
    // Within the cap, a chunked body reaches the handler.
    let policy = read_vector("basic", "policy.json");
    let mut request = b"PUT /rewarder/policies HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    for part in policy.chunks(50) {
        request.extend_from_slice(format!("{:x};ext=1\r\n", part.len()).as_bytes());
        request.extend_from_slice(part);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\nX-Trailer: t\r\n\r\n");
    let reply = node.raw(&request);
    assert_eq!(reply.status, 201, "{}", String::from_utf8_lossy(&reply.body));
}

#[test]
fn gzip_bomb_is_refused_while_inflating_and_rss_stays_small() {
    // A large body cap, so the ratio cap is what stops the bomb.
    let node = Node::start(&[("REQ_BODY_MAX_BYTES", "536870912")]);
    // 100 MiB of zeros in ~100 KiB: 100 gzip members of 1 MiB each (RFC 1952 §2.2).
    let member = gzip(&vec![0u8; 1 << 20]);
    let bomb: Vec<u8> = member.iter().copied().cycle().take(member.len() * 100).collect();
    assert!(bomb.len() < 200 << 10, "bomb is {} bytes", bomb.len());
    let rss_before = node.peak_rss_kib();
    let reply =
        node.call("POST", "/rewarder/epochs/e1/compute", &[JSON, ("Content-Encoding", "gzip")], Some(&bomb));
    reply.assert_error(413, "decompression_limit");
    if let (Some(before), Some(after)) = (rss_before, node.peak_rss_kib()) {
        eprintln!("peak RSS before the bomb {before} KiB, after {after} KiB");
        assert!(after < before + 32 * 1024, "peak RSS grew from {before} KiB to {after} KiB");
        assert!(after < 96 * 1024, "peak RSS {after} KiB");
    }
    // The body cap binds too, whatever the ratio.
    let small = Node::start(&[("REQ_BODY_MAX_BYTES", "4096"), ("DECOMP_RATIO_MAX", "1000")]);
    let z = gzip(&vec![b' '; 4097]);
    small
        .call("PUT", "/rewarder/policies", &[JSON, ("Content-Encoding", "gzip")], Some(&z))
        .assert_error(413, "decompression_limit");
}

#[test]
fn gzip_bodies_are_inflated_and_invalid_gzip_is_a_bad_request() {
    let node = Node::start(&[]);
    let z = gzip(&read_vector("basic", "policy.json"));
    let reply = node.call("PUT", "/rewarder/policies", &[JSON, ("Content-Encoding", "gzip")], Some(&z));
    assert_eq!(reply.status, 201, "{}", String::from_utf8_lossy(&reply.body));
    node.call("PUT", "/rewarder/policies", &[JSON, ("Content-Encoding", "gzip")], Some(b"plain text"))
        .assert_error(400, "bad_request");
}

#[test]
fn wrong_content_type_is_415() {
    let node = Node::start(&[]);
    let policy = read_vector("basic", "policy.json");
    node.call("PUT", "/rewarder/policies", &[("Content-Type", "text/plain")], Some(&policy))
        .assert_error(415, "unsupported_media_type");
    node.call("PUT", "/rewarder/policies", &[], Some(&policy)).assert_error(415, "unsupported_media_type");
    let ok = node.call(
        "PUT",
        "/rewarder/policies",
        &[("Content-Type", "application/json; charset=utf-8")],
        Some(&policy),
    );
    assert_eq!(ok.status, 201);
}

#[test]
fn unsupported_encoding_is_415() {
    let node = Node::start(&[]);
    for encoding in ["br", "deflate", "gzip, gzip"] {
        node.call("PUT", "/rewarder/policies", &[JSON, ("Content-Encoding", encoding)], Some(b"{}"))
            .assert_error(415, "unsupported_encoding");
    }
}

#[test]
fn framing_problems_are_json_errors() {
    let node = Node::start(&[]);
    for head in [
        "POST /rewarder/epochs/e/compute HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n",
        "POST /rewarder/epochs/e/compute HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        "POST /rewarder/epochs/e/compute HTTP/1.1\r\nHost: t\r\nContent-Length: 5, 6\r\n\r\n",
        "POST /rewarder/epochs/e/compute HTTP/1.1\r\nHost: t\r\nContent-Length: five\r\n\r\n",
        "GET / HTTP/2.0\r\n\r\n",
        "GARBAGE\r\n\r\n",
        "GET /\u{e9} HTTP/1.1\r\nHost: t\r\n\r\n",
    ] {
        let reply = node.raw(head.as_bytes());
        reply.assert_error(400, "bad_request");
    }
    // A head larger than the bound.
    let huge = format!("GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n", "a".repeat(20_000));
    node.raw(huge.as_bytes()).assert_error(400, "bad_request");
    // A malformed chunk.
    let bad_chunk = b"PUT /rewarder/policies HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
    node.raw(bad_chunk).assert_error(400, "bad_request");
    // The node still serves.
    assert_eq!(node.call("GET", "/healthz", &[], None).status, 200);
}

#[test]
fn keep_alive_and_pipelined_requests_are_answered_in_order() {
    let node = Node::start(&[]);
    let mut stream = TcpStream::connect(node.addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let two =
        b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Corr-ID: one\r\n\r\nGET /nowhere HTTP/1.1\r\nHost: t\r\nX-Corr-ID: two\r\n\r\n";
    stream.write_all(two).unwrap();
    let mut replies = BufReader::new(&stream);
    let first = read_reply(&mut replies).unwrap();
    let second = read_reply(&mut replies).unwrap();
    assert_eq!((first.status, first.header("X-Corr-ID")), (200, Some("one")));
    assert_eq!((second.status, second.header("X-Corr-ID")), (404, Some("two")));
    assert_eq!(first.header("Connection"), None, "kept alive");
    // HTTP/1.0 without keep-alive is closed after its answer.
    (&stream).write_all(b"GET /healthz HTTP/1.0\r\n\r\n").unwrap();
    let third = read_reply(&mut replies).unwrap();
    assert_eq!(third.status, 200);
    let mut rest = Vec::new();
    assert_eq!(replies.read_to_end(&mut rest).unwrap(), 0, "closed after an HTTP/1.0 answer");
}

#[test]
fn expect_100_continue_is_honoured() {
    let node = Node::start(&[]);
    let policy = read_vector("basic", "policy.json");
    let mut stream = TcpStream::connect(node.addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "PUT /rewarder/policies HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        policy.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut interim = [0u8; 25];
    stream.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(&policy).unwrap();
    assert_eq!(read_reply(&mut BufReader::new(&stream)).unwrap().status, 201);
}

#[test]
fn slow_loris_connections_do_not_stop_other_clients() {
    let node = Node::start(&[]);
    let addr = node.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut loris = Vec::new();
    for i in 0..50 {
        let stop = Arc::clone(&stop);
        loris.push(thread::spawn(move || {
            let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) else { return };
            let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
            // Half trickle their head, half a declared body after a complete head.
            let prefix: &[u8] = if i % 2 == 0 {
                b"PUT /rewarder/policies HTTP/1.1\r\nHost: t\r\nX-Slow: "
            } else {
                b"PUT /rewarder/policies HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
            };
            if s.write_all(prefix).is_err() {
                return;
            }
            let until = Instant::now() + Duration::from_secs(8);
            while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                if s.write_all(b"a").is_err() {
                    return;
                }
                thread::sleep(Duration::from_secs(1));
            }
        }));
    }
    thread::sleep(Duration::from_millis(500));
    let mut answered = 0;
    let mut slowest = Duration::ZERO;
    while started.elapsed() < Duration::from_secs(6) {
        let t = Instant::now();
        let reply = node.call("GET", "/healthz", &[], None);
        assert_eq!(reply.status, 200);
        let policy = read_vector("basic", "policy.json");
        let reply = node.call("PUT", "/rewarder/policies", &[JSON], Some(&policy));
        assert!(matches!(reply.status, 200 | 201), "{}", reply.status);
        slowest = slowest.max(t.elapsed());
        answered += 1;
        thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    for t in loris {
        t.join().unwrap();
    }
    eprintln!("{answered} rounds answered beside 50 slow clients; slowest {slowest:?}");
    assert!(answered >= 10, "only {answered} rounds answered");
    assert!(slowest < Duration::from_secs(2), "slowest round took {slowest:?}");
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn connections_beyond_the_cap_get_503_overloaded() {
    let node = Node::start(&[("CONNECTIONS_MAX", "3")]);
    let held: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(node.addr).unwrap()).collect();
    thread::sleep(Duration::from_millis(300));
    let reply = node.call("GET", "/rewarder/epochs/e1", &[], None);
    reply.assert_error(503, "overloaded");
    assert!(reply.header("Retry-After").is_some());
    // A probe is still answered, from the reserve.
    assert_eq!(node.call("GET", "/healthz", &[], None).status, 200);
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reply = node.call("GET", "/rewarder/epochs/e1", &[], None);
        if reply.status == 404 {
            break;
        }
        assert!(Instant::now() < deadline, "the slots were not given back");
        thread::sleep(Duration::from_millis(50));
    }
}

// ---- process: signals, amnesia, configuration ---------------------------------------------

#[test]
fn sigterm_exits_0_and_leaves_no_file_behind() {
    let mut node = Node::start(&[]);
    let amnesia = node.amnesia_dir();
    assert!(amnesia.is_dir(), "{}", amnesia.display());
    let reply = node.call("PUT", "/rewarder/inputs", &[JSON], Some(&read_vector("basic", "inputs.json")));
    assert_eq!(reply.status, 201);
    assert!(
        std::fs::read_dir(&amnesia).unwrap().count() > 0,
        "the artifact is kept in the amnesia directory"
    );
    node.signal("TERM");
    let status = node.wait(Duration::from_secs(10)).expect("exits after SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", node.log());
    assert!(!amnesia.exists(), "the amnesia directory is removed");
    assert_eq!(node.home.entries(), Vec::<String>::new());
    assert_eq!(node.tmp.entries(), Vec::<String>::new());
    assert_eq!(node.cwd.entries(), Vec::<String>::new());
}

/// A root for `AMNESIA_DIR` of its own on tmpfs (mode 0700), removed when dropped.
struct ShmRoot(std::path::PathBuf);

impl ShmRoot {
    fn new(tag: &str) -> ShmRoot {
        use std::os::unix::fs::DirBuilderExt;
        let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let path = std::path::PathBuf::from(format!("/dev/shm/root-{tag}-{}-{n}", std::process::id()));
        std::fs::DirBuilder::new().mode(0o700).create(&path).unwrap();
        ShmRoot(path)
    }

    fn as_str(&self) -> &str {
        self.0.to_str().unwrap()
    }

    fn entries(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }
}

impl Drop for ShmRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `AMNESIA_DIR` names a root the node makes a private directory in; a root that could
/// redirect or expose tenant documents is refused at start with exit 2.
#[test]
fn amnesia_roots_that_could_redirect_or_expose_documents_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let root = ShmRoot::new("refused");
    let link = format!("{}-link", root.as_str());
    std::os::unix::fs::symlink(&root.0, &link).unwrap();
    let disk = env!("CARGO_TARGET_TMPDIR");
    for (root, why) in [(link.as_str(), "symlink"), (disk, "not tmpfs")] {
        let (status, log) = Node::try_start(&["serve"], &[("AMNESIA_DIR", root)]).err().expect("refused");
        assert_eq!(status.and_then(|s| s.code()), Some(2), "{log}");
        assert!(log.contains("AMNESIA_DIR") && log.contains(why), "{log}");
    }
    std::fs::remove_file(&link).unwrap();
    // On disk only when asked, and then with a warning.
    let node = Node::start(&[("AMNESIA_DIR", disk), ("AMNESIA_ALLOW_DISK", "true")]);
    assert!(node.log().contains("AMNESIA_ALLOW_DISK"), "{}", node.log());
    drop(node);
    // A good root: the node's own directory is 0700 and its files 0600.
    let node = Node::start(&[("AMNESIA_DIR", root.as_str())]);
    let dir = node.amnesia_dir();
    assert_eq!(dir.parent(), Some(root.0.as_path()));
    assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
    let reply = node.call("PUT", "/rewarder/inputs", &[JSON], Some(&read_vector("basic", "inputs.json")));
    assert_eq!(reply.status, 201);
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(files.len() >= 2, "the lock and the document: {files:?}");
    for file in files {
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600,
            "{}",
            file.display()
        );
    }
}

/// A large upload is written to the amnesia directory beside its parse, before the node knows
/// whether it stores it: one the parse or the tenant's quota refuses leaves no file there, a
/// good one leaves its own, once.
#[test]
fn a_refused_large_upload_leaves_no_file_in_the_amnesia_directory() {
    let root = ShmRoot::new("refused-upload");
    let (inputs, _) = rewarder_gen::generate(rewarder_gen::Scale::M, "big-upload", 0);
    assert!(inputs.len() > 1 << 20, "large enough to be written beside its parse");
    let mut bad = inputs.clone();
    let last = bad.iter().rposition(|&b| b == b'}').unwrap();
    bad[last] = b'x';
    let files = |node: &Node| {
        let mut names: Vec<String> = std::fs::read_dir(node.amnesia_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|name| name != ".lock")
            .collect();
        names.sort();
        names
    };
    let tight = Node::start(&[("AMNESIA_DIR", root.as_str()), ("TENANT_STORE_MAX_BYTES", "1024")]);
    for _ in 0..2 {
        let refused = tight.call("PUT", "/rewarder/inputs", &[JSON], Some(&inputs));
        assert_eq!((refused.status, refused.code()), (413, "quota_exceeded".to_owned()));
    }
    assert_eq!(files(&tight), Vec::<String>::new());
    drop(tight);
    let node = Node::start(&[("AMNESIA_DIR", root.as_str())]);
    for _ in 0..2 {
        let refused = node.call("PUT", "/rewarder/inputs", &[JSON], Some(&bad));
        assert_eq!((refused.status, refused.code()), (400, "malformed_json".to_owned()));
    }
    assert_eq!(files(&node), Vec::<String>::new());
    let stored = node.call("PUT", "/rewarder/inputs", &[JSON], Some(&inputs));
    assert_eq!(stored.status, 201);
    let cid = stored.json()["inputs_cid"].as_str().unwrap().to_owned();
    assert_eq!(files(&node), vec![cid.clone()]);
    assert_eq!(std::fs::read(node.amnesia_dir().join(&cid)).unwrap(), inputs);
    let again = node.call("PUT", "/rewarder/inputs", &[JSON], Some(&inputs));
    assert_eq!((again.status, again.json()), (200, stored.json()));
    assert_eq!(files(&node), vec![cid]);
}

/// A SIGKILLed node cannot remove its directory; the next node started on the same root does,
/// because nobody holds its lock any more, whatever its pid was. Run twice: as ordinary
/// processes, and as pid 1 each in a pid namespace of its own (as in containers), where a pid
/// tells nothing.
#[test]
fn a_killed_nodes_directory_is_removed_by_the_next_start() {
    let unshare = std::path::Path::new("/usr/bin/unshare");
    // As root a pid namespace is ours to make; otherwise inside a user namespace, where the
    // kernel allows one.
    let namespace_args =
        [&["--pid"][..], &["--user", "--map-root-user", "--pid"][..]].into_iter().find(|args| {
            unshare.exists()
                && std::process::Command::new(unshare)
                    .args(*args)
                    .args(["--fork", "true"])
                    .status()
                    .is_ok_and(|s| s.success())
        });
    if namespace_args.is_none() {
        // The lock never looks at a pid, so the plain run below proves the same rule; say why
        // the contained run is missing rather than pass it silently.
        eprintln!("no pid namespace can be made here (unshare refused): the pid-1 run is not done");
    }
    let runs: &[bool] = if namespace_args.is_some() { &[false, true] } else { &[false] };
    for &contained in runs {
        let root = ShmRoot::new(if contained { "pid1" } else { "plain" });
        let start = || {
            let env = [("AMNESIA_DIR", root.as_str())];
            if contained {
                let (home, tmp, cwd) = (Scratch::new("home"), Scratch::new("tmp"), Scratch::new("cwd"));
                let mut args = namespace_args.unwrap_or_default().to_vec();
                args.extend(["--fork", "--kill-child", support::BIN, "serve"]);
                let mut cmd = rewarder_testkit::node::node_command(
                    unshare.to_str().unwrap(),
                    &args,
                    &env,
                    home.path(),
                    tmp.path(),
                    cwd.path(),
                );
                Node::from_process(rewarder_testkit::node::Process::spawn(&mut cmd).unwrap(), home, tmp, cwd)
            } else {
                Node::start(&env)
            }
        };
        let mut first = start();
        let dead = first.amnesia_dir();
        if contained {
            let name = dead.file_name().unwrap().to_str().unwrap().to_owned();
            assert!(name.starts_with("rewarder-1-"), "pid 1 in its namespace: {name}");
        }
        let reply =
            first.call("PUT", "/rewarder/inputs", &[JSON], Some(&read_vector("basic", "inputs.json")));
        assert_eq!(reply.status, 201);
        // `unshare --kill-child` passes our SIGKILL on to the node asynchronously: the node (and
        // its lock) may outlive `unshare` by a moment, so wait for the node itself to be gone.
        let node_pid = if contained { child_pid(first.pid()) } else { first.pid() };
        first.kill();
        wait_gone(node_pid);
        assert!(dead.is_dir(), "SIGKILL leaves the directory (and a tenant document) behind");
        let second = start();
        let live = second.amnesia_dir();
        assert!(!dead.exists(), "the next start removed {}: {}", dead.display(), second.log());
        assert!(second.log().contains("swept the directory of a node that is gone"), "{}", second.log());
        assert_eq!(root.entries(), vec![live.file_name().unwrap().to_str().unwrap().to_owned()]);
        drop(second);
    }
}

/// The one child of process `pid` (`unshare --fork` has exactly one).
fn child_pid(pid: u32) -> u32 {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap();
    let mut pids = children.split_whitespace().map(|p| p.parse::<u32>().unwrap());
    let child = pids.next().unwrap_or_else(|| panic!("process {pid} has no child"));
    assert_eq!(pids.next(), None, "process {pid} has one child");
    child
}

/// Waits (at most 10 s) until process `pid` has exited: gone, or a zombie, whose descriptors
/// and locks are already released.
fn wait_gone(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return,
            // The state follows the parenthesised name, which may itself hold spaces.
            Ok(stat) if stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')) => return,
            Ok(_) => {}
        }
        assert!(Instant::now() < deadline, "process {pid} still runs 10 s after SIGKILL");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn sigterm_finishes_the_request_in_flight() {
    let root = ShmRoot::new("term");
    let mut node = Node::start(&[("AMNESIA_DIR", root.as_str())]);
    let dir = node.amnesia_dir();
    let policy = read_vector("basic", "policy.json");
    let mut stream = TcpStream::connect(node.addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "PUT /rewarder/policies HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        policy.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&policy[..10]).unwrap();
    thread::sleep(Duration::from_millis(200));
    node.signal("TERM");
    thread::sleep(Duration::from_millis(300));
    stream.write_all(&policy[10..]).unwrap();
    let reply = read_reply(&mut BufReader::new(&stream)).unwrap();
    assert_eq!(reply.status, 201);
    assert_eq!(reply.header("Connection"), Some("close"));
    let status = node.wait(Duration::from_secs(10)).expect("exits after SIGTERM");
    assert_eq!(status.code(), Some(0));
    assert!(!dir.exists());
}

#[test]
fn sighup_reloads_and_keeps_serving() {
    let node = Node::start(&[("TENANT_RPS_MAX", "7")]);
    node.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !node.log().contains("hot knobs reloaded") {
        assert!(Instant::now() < deadline, "no reload logged:\n{}", node.log());
        thread::sleep(Duration::from_millis(50));
    }
    assert!(node.log().contains("tenant_rps_max: 7"), "{}", node.log());
    assert_eq!(node.call("GET", "/healthz", &[], None).status, 200);
}

#[test]
fn a_bad_config_value_exits_2_naming_the_variable() {
    for (var, value) in
        [("MAX_INFLIGHT", "lots"), ("DECOMP_RATIO_MAX", "0"), ("LOG_FORMAT", "xml"), ("AUTH_KEYS", "k1:zz")]
    {
        let out = run_cli(&["serve"], &[("BIND_ADDR", "127.0.0.1:0"), (var, value)]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}={value}: {stderr}");
        assert!(stderr.contains(var), "{var}={value}: {stderr}");
    }
    let out = run_cli(&["serve"], &[("BIND_ADDR", "127.0.0.1:0"), ("SIGNING_KEY_FILE", "/nonexistent/key")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SIGNING_KEY_FILE"));
    // The micronode is amnesic: a durable queue is the macronode's, and nothing is written.
    let scratch = Scratch::new("state");
    let state = scratch.path().join("queue.db");
    let env = [
        ("BIND_ADDR", "127.0.0.1:0"),
        ("LEDGER_URL", "http://127.0.0.1:9"),
        ("STATE_PATH", state.to_str().unwrap()),
    ];
    let out = run_cli(&["serve"], &env);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("STATE_PATH") && stderr.contains("amnesic"), "{stderr}");
    assert!(!state.exists(), "nothing written");
}

#[test]
fn non_loopback_bind_without_auth_is_refused() {
    // Refused while validating the configuration: nothing is ever bound.
    let out = run_cli(&["serve"], &[("BIND_ADDR", "0.0.0.0:0")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("BIND_ADDR") && stderr.contains("AUTH_KEYS"), "{stderr}");
}

#[test]
fn signing_key_file_sets_the_public_key() {
    let scratch = Scratch::new("keys");
    let file = scratch.path().join("node.key");
    std::fs::write(&file, "# test key\n9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60\n")
        .unwrap();
    let node = Node::start(&[("SIGNING_KEY_FILE", file.to_str().unwrap())]);
    assert!(
        node.log().contains("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"),
        "{}",
        node.log()
    );
    let version = node.call("GET", "/version", &[], None).json();
    assert_eq!(
        version["public_keys"]["ed25519"],
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    );
}

// ---- observability: traces and process metrics ----------------------------------------------

/// The JSON lines of spans that closed under the request of `corr_id`: (span name, the line).
fn spans_of(log: &str, corr_id: &str) -> Vec<(String, Value)> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "close")
        .filter(|v| {
            let own = v["span"]["corr_id"] == corr_id;
            own || v["spans"].as_array().is_some_and(|s| s.iter().any(|p| p["corr_id"] == corr_id))
        })
        .map(|v| (v["span"]["name"].as_str().unwrap_or_default().to_owned(), v))
        .collect()
}

/// A compute with `X-Corr-ID: corr_id` over the documents of `dir`.
fn traced_compute(node: &Node, dir: &str, corr_id: &str) -> Reply {
    let inputs = node.call("PUT", "/rewarder/inputs", &[JSON], Some(&read_vector(dir, "inputs.json"))).json();
    let policy =
        node.call("PUT", "/rewarder/policies", &[JSON], Some(&read_vector(dir, "policy.json"))).json();
    let request = serde_json::json!({
        "inputs_cid": inputs["inputs_cid"], "policy_id": policy["policy_id"], "policy_hash": policy["policy_hash"],
    });
    let path = format!("/rewarder/epochs/{}/compute", inputs["epoch"].as_str().unwrap());
    node.call("POST", &path, &[JSON, ("X-Corr-ID", corr_id)], Some(request.to_string().as_bytes()))
}

#[test]
fn a_traced_compute_logs_its_phases_with_durations_under_its_corr_id() {
    let node = Node::start(&[("LOG_FORMAT", "json"), ("TRACE_SAMPLE", "1")]);
    let reply = traced_compute(&node, "gen-001", "trace-me-1");
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    node.wait_for_log("\"status\":200,\"name\":\"request\"", Duration::from_secs(5));
    let spans = spans_of(&node.log(), "trace-me-1");
    let names: Vec<&str> = spans.iter().map(|(n, _)| n.as_str()).collect();
    for phase in ["parse", "compute", "sign", "request"] {
        assert!(names.contains(&phase), "no {phase} span in {names:?}:\n{}", node.log());
    }
    for (name, line) in &spans {
        assert!(line["fields"]["time.busy"].is_string(), "{name} has no duration: {line}");
    }
    let (_, request) = spans.iter().find(|(n, _)| n == "request").unwrap();
    assert_eq!(request["span"]["route"], "/rewarder/epochs/{epoch}/compute");
}

#[test]
fn trace_sample_zero_traces_nothing_until_a_reload_raises_it() {
    let scratch = Scratch::new("hot");
    let file = scratch.path().join("hot.env");
    std::fs::write(&file, "TRACE_SAMPLE=0\n").unwrap();
    let node = Node::start(&[("LOG_FORMAT", "json"), ("HOT_KNOBS_FILE", file.to_str().unwrap())]);
    assert_eq!(traced_compute(&node, "basic", "quiet-1").status, 200);
    std::fs::write(&file, "TRACE_SAMPLE=1\n").unwrap();
    node.signal("HUP");
    node.wait_for_log("hot knobs reloaded", Duration::from_secs(5));
    assert_eq!(traced_compute(&node, "basic", "loud-1").status, 200);
    node.wait_for_log("\"status\":200,\"name\":\"request\"", Duration::from_secs(5));
    assert!(spans_of(&node.log(), "quiet-1").is_empty(), "{}", node.log());
    assert!(!spans_of(&node.log(), "loud-1").is_empty(), "{}", node.log());
}

#[test]
fn metrics_carry_the_process_series() {
    let node = Node::start(&[]);
    let text = String::from_utf8(node.call("GET", "/metrics", &[], None).body).unwrap();
    let value = |name: &str| -> f64 {
        let line =
            text.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("{name}"));
        line[name.len() + 1..].parse().unwrap()
    };
    assert!(value("process_resident_memory_bytes") > 1e6);
    assert!(value("process_open_fds") >= 3.0);
    assert!(value("process_max_fds") > value("process_open_fds"));
    assert!(value("process_cpu_seconds_total") >= 0.0);
    assert!(value("process_start_time_seconds") > 1.0e9);
    assert_eq!(text.matches("# TYPE process_cpu_seconds_total counter\n").count(), 1);
}

#[test]
fn demo_computes_an_epoch_over_http_and_serves_until_sigterm() {
    let mut node = Node::try_start(&["demo"], &[]).unwrap_or_else(|(s, log)| panic!("{s:?}: {log}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if node.call("GET", "/rewarder/epochs/demo", &[], None).status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the demo run never appeared:\n{}", node.log());
        thread::sleep(Duration::from_millis(100));
    }
    node.signal("INT");
    let status = node.wait(Duration::from_secs(10)).expect("exits after SIGINT");
    assert_eq!(status.code(), Some(0), "{}", node.log());
    let summary = node.stdout_after_exit();
    for needle in
        ["payees", "top payees", "residual", "manifest digest  b3:", "curl -s http://127.0.0.1:", "/metrics"]
    {
        assert!(summary.contains(needle), "{needle:?} missing from:\n{summary}");
    }
}

// ---- the compute command and the golden vectors ---------------------------------------------

fn golden_dirs() -> Vec<String> {
    let mut dirs: Vec<String> = std::fs::read_dir(vectors())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().join("expected.json").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    dirs
}

fn cli_compute(dir: &str, tenant: &str) -> (Option<i32>, Value, String) {
    let path = vectors().join(dir);
    let (inputs, policy) = (path.join("inputs.json"), path.join("policy.json"));
    let out = run_cli(
        &[
            "compute",
            "--inputs",
            inputs.to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
            "--tenant",
            tenant,
        ],
        &[],
    );
    let stdout = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code(), stdout, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn compute_cli_matches_every_golden_vector() {
    let dirs = golden_dirs();
    assert!(dirs.contains(&"basic".to_owned()), "{dirs:?}");
    for dir in &dirs {
        let expected: Value = serde_json::from_slice(&read_vector(dir, "expected.json")).unwrap();
        for tenant in ["default", "tenant-b"] {
            let (code, out, stderr) = cli_compute(dir, tenant);
            assert_eq!(code, Some(0), "{dir}/{tenant}: {stderr}");
            assert_eq!(out["manifest"], expected[tenant]["manifest"], "{dir}/{tenant}");
            assert_eq!(out["manifest_digest"], expected[tenant]["manifest_digest"], "{dir}/{tenant}");
        }
        let (_, out, _) = cli_compute(dir, "default");
        assert_eq!(out["allocations"], expected["allocations"], "{dir}");
    }
}

#[test]
fn compute_cli_refuses_invalid_documents_with_exit_1_and_the_envelope() {
    let scratch = Scratch::new("invalid");
    let cases: Vec<Value> =
        serde_json::from_slice(&std::fs::read(vectors().join("invalid.json")).unwrap()).unwrap();
    let basic = vectors().join("basic");
    for (i, case) in cases.iter().enumerate() {
        let file = scratch.path().join(format!("{i}.json"));
        std::fs::write(&file, case["raw"].as_str().unwrap()).unwrap();
        let (inputs, policy) = match case["doc"].as_str().unwrap() {
            "inputs" => (file.clone(), basic.join("policy.json")),
            _ => (basic.join("inputs.json"), file.clone()),
        };
        let out = run_cli(
            &["compute", "--inputs", inputs.to_str().unwrap(), "--policy", policy.to_str().unwrap()],
            &[],
        );
        assert_eq!(out.status.code(), Some(1), "case {i}");
        let envelope: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(envelope["error"]["code"], case["code"], "case {i}: {envelope}");
    }
}

#[test]
fn compute_cli_bad_flags_exit_2() {
    let basic = vectors().join("basic");
    let inputs = basic.join("inputs.json");
    let policy = basic.join("policy.json");
    for args in [
        vec!["compute"],
        vec!["compute", "--inputs", inputs.to_str().unwrap()],
        vec!["compute", "--inputs", "/nonexistent", "--policy", policy.to_str().unwrap()],
        vec![
            "compute",
            "--inputs",
            inputs.to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
            "--tenant",
            "bad tenant",
        ],
        vec!["compute", "--bogus"],
        vec!["no-such-command"],
    ] {
        let out = run_cli(&args, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn golden_vectors_over_http_equal_the_cli() {
    let node = Node::start(&[]);
    for dir in ["basic", "ties", "waterfill", "empty", "gen-001"] {
        let reply = compute_over_http(&node, dir, None);
        assert_eq!(reply.status, 200, "{dir}: {}", String::from_utf8_lossy(&reply.body));
        let http = reply.json();
        let (code, cli, _) = cli_compute(dir, "default");
        assert_eq!(code, Some(0));
        assert_eq!(http["manifest"], cli["manifest"], "{dir}");
        assert_eq!(http["manifest_digest"], cli["manifest_digest"], "{dir}");
        assert_eq!(http["allocations"], cli["allocations"], "{dir}");
    }
}

/// A new run's full answer leaves while its rows are rendered: chunked, one chunk for what
/// comes before the rows, one per rendered piece of them, one for the rest. Its bytes are those
/// every later answer of the run gives with a `Content-Length`; HTTP/1.0 and answers without
/// rows are never chunked.
#[test]
fn a_new_runs_full_answer_is_streamed_and_equals_every_later_answer() {
    let node = Node::start(&[]);
    let (inputs, policy) = rewarder_gen::generate(rewarder_gen::Scale::M, "streamed", 7);
    let stored = node.call("PUT", "/rewarder/inputs", &[JSON], Some(&inputs)).json();
    let policy: Value = serde_json::from_slice(&policy).unwrap();
    let exchange = |request: String| {
        let mut stream = TcpStream::connect(node.addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).unwrap();
        raw
    };
    let compute = |policy_id: &str, http: &str, query: &str| {
        let mut doc = policy.clone();
        doc["policy_id"] = policy_id.into();
        let put = node.call("PUT", "/rewarder/policies", &[JSON], Some(doc.to_string().as_bytes())).json();
        let body = serde_json::json!({
            "inputs_cid": stored["inputs_cid"], "policy_id": put["policy_id"],
            "policy_hash": put["policy_hash"], "dry_run": true,
        })
        .to_string();
        let request = format!(
            "POST /rewarder/epochs/streamed/compute{query} {http}\r\nHost: t\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        exchange(request)
    };
    let split = |raw: &[u8]| {
        let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        (String::from_utf8(raw[..end].to_vec()).unwrap(), raw[end..].to_vec())
    };

    let (head, framed) = split(&compute("streamed-1", "HTTP/1.1", ""));
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("\r\nTransfer-Encoding: chunked\r\n"), "{head}");
    assert!(!head.contains("Content-Length"), "{head}");
    // The chunks, read strictly by hand.
    let (mut chunks, mut rest) = (Vec::new(), &framed[..]);
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).unwrap(), 16).unwrap();
        let data = &rest[line_end + 2..line_end + 2 + size];
        assert_eq!(&rest[line_end + 2 + size..line_end + 4 + size], b"\r\n");
        rest = &rest[line_end + 4 + size..];
        if size == 0 {
            break;
        }
        chunks.push(data.to_vec());
    }
    assert!(rest.is_empty(), "nothing after the last chunk");
    // M has under 10,000 payees: rendered as 4,096 rows, then the others.
    assert_eq!(chunks.len(), 4, "before the rows, two pieces of rows, after the rows");
    assert!(chunks[0].ends_with(b"\"allocations\":"), "{}", String::from_utf8_lossy(&chunks[0]));
    assert!(
        chunks[1].starts_with(b"[{") && chunks[2].ends_with(b"}]") && chunks[3].starts_with(b",\"ledger\":")
    );
    let rows = |chunk: &[u8]| chunk.split(|b| *b == b'{').count() - 1;
    assert_eq!(rows(&chunks[1]), 4096);
    let streamed = chunks.concat();
    let answer: Value = serde_json::from_slice(&streamed).unwrap();
    let payees = answer["manifest"]["payees"].as_u64().unwrap();
    assert!((4097..=10_000).contains(&payees), "{payees} payees");
    assert_eq!(answer["allocations"].as_array().unwrap().len() as u64, payees);
    assert_eq!(answer["ledger"]["status"], "dry_run");

    // The same run again, and the epoch's latest run: whole, with a length, the same bytes.
    let latest =
        exchange("GET /rewarder/epochs/streamed HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".into());
    for raw in [compute("streamed-1", "HTTP/1.1", ""), latest] {
        let (head, body) = split(&raw);
        assert!(head.contains(&format!("\r\nContent-Length: {}\r\n", streamed.len())), "{head}");
        assert_eq!(body, streamed);
    }
    // A new run asked over HTTP/1.0, or without its rows, is answered whole.
    for (policy_id, http, query) in
        [("streamed-2", "HTTP/1.0", ""), ("streamed-3", "HTTP/1.1", "?allocations=false")]
    {
        let (head, body) = split(&compute(policy_id, http, query));
        assert!(head.contains(&format!("\r\nContent-Length: {}\r\n", body.len())), "{head}");
        let answer: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(answer["manifest"]["policy_id"], policy_id);
        assert_eq!(answer.get("allocations").is_some(), query.is_empty());
    }
}

/// With post-quantum signatures the rows are rendered while the run is signed on the second
/// thread: pieces rendered before the signature wait for it. Chunked or whole, a new run's
/// answer is the bytes every later answer gives.
#[test]
fn a_pq_signed_new_run_answers_the_bytes_of_its_later_answers() {
    let node = Node::start(&[("REQUIRE_PQ_ON", "true")]);
    let (inputs, policy) = rewarder_gen::generate(rewarder_gen::Scale::M, "pq-streamed", 9);
    let cid = node.call("PUT", "/rewarder/inputs", &[JSON], Some(&inputs)).json()["inputs_cid"].clone();
    for i in 0..3 {
        let mut doc: Value = serde_json::from_slice(&policy).unwrap();
        doc["policy_id"] = format!("pq-{i}").into();
        let put = node.call("PUT", "/rewarder/policies", &[JSON], Some(doc.to_string().as_bytes())).json();
        let request = serde_json::json!({
            "inputs_cid": cid, "policy_id": put["policy_id"], "policy_hash": put["policy_hash"], "dry_run": true,
        });
        let first = node.call(
            "POST",
            "/rewarder/epochs/pq-streamed/compute",
            &[JSON],
            Some(request.to_string().as_bytes()),
        );
        assert_eq!(
            first.status,
            200,
            "{}",
            String::from_utf8_lossy(&first.body[..first.body.len().min(300)])
        );
        let answer = first.json();
        assert!(answer["signatures"]["ml_dsa_65"]["signature"].is_string());
        assert_eq!(
            answer["allocations"].as_array().unwrap().len() as u64,
            answer["manifest"]["payees"].as_u64().unwrap()
        );
        let latest = node.call("GET", "/rewarder/epochs/pq-streamed", &[], None);
        assert!(latest.header("Transfer-Encoding").is_none());
        assert_eq!(latest.body, first.body, "run {i}");
    }
}

#[test]
fn golden_vector_over_http_with_a_gzip_upload() {
    let node = Node::start(&[]);
    let inputs = gzip(&read_vector("gen-002", "inputs.json"));
    let reply = node.call("PUT", "/rewarder/inputs", &[JSON, ("Content-Encoding", "gzip")], Some(&inputs));
    assert_eq!(reply.status, 201, "{}", String::from_utf8_lossy(&reply.body));
    let expected: Value = serde_json::from_slice(&read_vector("gen-002", "expected.json")).unwrap();
    assert_eq!(reply.json()["inputs_cid"], expected["default"]["manifest"]["inputs_cid"]);
}

// ---- authentication with mint-token ----------------------------------------------------------

const KEY_1: &str = "6b31000000000000000000000000000000000000000000000000000000000001";
const KEY_2: &str = "6b32000000000000000000000000000000000000000000000000000000000002";

// ---- the compare command and route (API.md §1.3) -------------------------------------------

/// `testing/compare/<case>/<file>`, beside the golden vectors.
fn comparison_file(case: &str, file: &str) -> std::path::PathBuf {
    vectors().join("../compare").join(case).join(file)
}

fn cli_compare(case: &str, extra: &[&str]) -> std::process::Output {
    let (inputs, a, b) = (
        vectors().join(case).join("inputs.json"),
        vectors().join(case).join("policy.json"),
        comparison_file(case, "policy-b.json"),
    );
    let mut args = vec![
        "compare",
        "--inputs",
        inputs.to_str().unwrap(),
        "--policy",
        a.to_str().unwrap(),
        "--policy",
        b.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run_cli(&args, &[])
}

#[test]
fn compare_cli_prints_the_golden_comparisons_and_writes_the_report() {
    let scratch = Scratch::new("compare-cli");
    for case in ["waterfill", "ties"] {
        let html = scratch.path().join(format!("{case}.html"));
        let out = cli_compare(case, &["--html", html.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{case}: {}", String::from_utf8_lossy(&out.stderr));
        let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
        let expected: Value =
            serde_json::from_slice(&std::fs::read(comparison_file(case, "expected.json")).unwrap()).unwrap();
        assert_eq!(printed, expected, "{case}");
        let page = std::fs::read_to_string(&html).unwrap();
        assert!(page.contains(expected["b"]["manifest_digest"].as_str().unwrap()), "{case}");
    }
    let out = cli_compare("waterfill", &["--top", "1"]);
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["movers"].as_array().map(Vec::len), Some(1));
}

#[test]
fn compare_cli_sweeps_a_weight_one_line_per_point() {
    let dir = vectors().join("waterfill");
    let out = run_cli(
        &[
            "compare",
            "--inputs",
            dir.join("inputs.json").to_str().unwrap(),
            "--policy",
            dir.join("policy.json").to_str().unwrap(),
            "--sweep",
            "weight.k=1..5:2",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let points: Vec<&str> = lines.iter().map(|l| l["point"].as_str().unwrap()).collect();
    assert_eq!(points, ["weight.k=1", "weight.k=3", "weight.k=5"]);
    // Weight 3 is the base policy's own: same payouts, nobody moves. (A single kind's weight
    // scales every score alike, so no point moves anybody.)
    assert_eq!(lines[1]["movers"], 0);
    assert_eq!(lines[1]["gini"], "0.296025");
    assert_eq!(lines[1]["payout_max_minor"], "300000");
    assert!(String::from_utf8_lossy(&out.stderr).contains("3 points in"));
}

#[test]
fn compare_cli_refusals_and_usage_errors() {
    // A refused document: exit 1 with the envelope, as compute.
    let bad = Scratch::new("compare-bad");
    let broken = bad.path().join("policy.json");
    std::fs::write(&broken, b"{").unwrap();
    let inputs = vectors().join("ties").join("inputs.json");
    let a = vectors().join("ties").join("policy.json");
    let out = run_cli(
        &[
            "compare",
            "--inputs",
            inputs.to_str().unwrap(),
            "--policy",
            a.to_str().unwrap(),
            "--policy",
            broken.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let envelope: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(envelope["error"]["code"], "malformed_json");

    let (i, p) = (inputs.to_str().unwrap(), a.to_str().unwrap());
    for args in [
        vec!["compare", "--inputs", i, "--policy", p],
        vec!["compare", "--inputs", i, "--policy", p, "--policy", p, "--policy", p],
        vec!["compare", "--inputs", i, "--policy", p, "--policy", p, "--top", "10001"],
        vec!["compare", "--inputs", i, "--policy", p, "--policy", p, "--sweep", "weight.k=0..1:1"],
        vec!["compare", "--inputs", i, "--policy", p, "--sweep", "weight.k=0..1"],
        vec!["compare", "--inputs", i, "--policy", p, "--sweep", "weight.k=0..1:1", "--html", "/tmp/x.html"],
        vec!["compare", "--inputs", i, "--policy", p, "--policy", p, "--tenant", "bad tenant"],
        vec!["compare", "--inputs", i, "--policy", p, "--policy", p, "--html", "/nonexistent/dir/r.html"],
    ] {
        let out = run_cli(&args, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn compare_over_http_equals_the_cli_and_serves_the_report_as_html() {
    let node = Node::start(&[]);
    let upload = |path: &str, file: std::path::PathBuf| {
        let reply = node.call("PUT", path, &[JSON], Some(&std::fs::read(file).unwrap()));
        assert!(matches!(reply.status, 200 | 201), "{}", String::from_utf8_lossy(&reply.body));
        reply.json()
    };
    let inputs = upload("/rewarder/inputs", vectors().join("waterfill").join("inputs.json"));
    let a = upload("/rewarder/policies", vectors().join("waterfill").join("policy.json"));
    let b = upload("/rewarder/policies", comparison_file("waterfill", "policy-b.json"));
    let body = serde_json::json!({
        "inputs_cid": inputs["inputs_cid"],
        "policy_a": {"policy_id": a["policy_id"], "policy_hash": a["policy_hash"]},
        "policy_b": {"policy_id": b["policy_id"], "policy_hash": b["policy_hash"]},
    })
    .to_string();
    let reply = node.call("POST", "/rewarder/epochs/waterfill/compare", &[JSON], Some(body.as_bytes()));
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    let cli: Value = serde_json::from_slice(&cli_compare("waterfill", &[]).stdout).unwrap();
    assert_eq!(reply.json(), cli);

    let report =
        node.call("POST", "/rewarder/epochs/waterfill/compare?format=html", &[JSON], Some(body.as_bytes()));
    assert_eq!(report.status, 200);
    assert_eq!(report.header("Content-Type"), Some("text/html; charset=utf-8"));
    assert!(String::from_utf8_lossy(&report.body).contains("Content-Security-Policy"));

    let unknown = body.replace(b["policy_hash"].as_str().unwrap(), "b3:00");
    let reply = node.call("POST", "/rewarder/epochs/waterfill/compare", &[JSON], Some(unknown.as_bytes()));
    reply.assert_error(404, "unknown_policy");
}

#[test]
fn tokens_from_mint_token_authenticate_and_scope_requests() {
    let keys = format!("k1:{KEY_1},k2:{KEY_2}");
    let node = Node::start(&[("AUTH_KEYS", keys.as_str())]);
    let compute = mint_token(
        &keys,
        &["--kid", "k1", "--tenant", "tenant-b", "--scope", "compute read", "--ttl", "600"],
    );
    assert_eq!(compute.split('.').count(), 3, "a JWT: {compute}");

    // Golden vector as tenant-b, through a rotated-in key too.
    let reply = compute_over_http(&node, "basic", Some(&compute));
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    let expected: Value = serde_json::from_slice(&read_vector("basic", "expected.json")).unwrap();
    assert_eq!(reply.json()["manifest"], expected["tenant-b"]["manifest"]);
    assert_eq!(reply.json()["manifest_digest"], expected["tenant-b"]["manifest_digest"]);

    let policy = read_vector("basic", "policy.json");
    // No token, a forged one, the wrong scope.
    node.call("PUT", "/rewarder/policies", &[JSON], Some(&policy)).assert_error(401, "unauthenticated");
    let forged = format!("{}x", &compute[..compute.len() - 1]);
    let bearer = format!("Bearer {forged}");
    node.call("PUT", "/rewarder/policies", &[JSON, ("Authorization", &bearer)], Some(&policy))
        .assert_error(401, "unauthenticated");
    let read_only = mint_token(&keys, &["--kid", "k2", "--tenant", "tenant-b", "--scope", "read"]);
    let bearer = format!("Bearer {read_only}");
    node.call("PUT", "/rewarder/policies", &[JSON, ("Authorization", &bearer)], Some(&policy))
        .assert_error(403, "forbidden");
    // Open endpoints need no token.
    assert_eq!(node.call("GET", "/healthz", &[], None).status, 200);
}

#[test]
fn mint_token_refuses_bad_usage_with_exit_2() {
    let keys = format!("k1:{KEY_1}");
    for (args, env) in [
        (vec!["mint-token", "--kid", "nope", "--tenant", "t"], keys.as_str()),
        (vec!["mint-token", "--kid", "k1", "--tenant", "bad tenant"], keys.as_str()),
        (vec!["mint-token", "--kid", "k1", "--tenant", "t", "--scope", "root"], keys.as_str()),
        (vec!["mint-token", "--kid", "k1", "--tenant", "t", "--ttl", "0"], keys.as_str()),
        (vec!["mint-token", "--kid", "k1", "--tenant", "t"], ""),
    ] {
        let out = run_cli(&args, &[("AUTH_KEYS", env)]);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

// ---- TLS -----------------------------------------------------------------------------------

/// A self-signed certificate for localhost/127.0.0.1 made by `openssl`: (cert, key) paths.
fn self_signed(scratch: &Scratch) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (scratch.path().join("cert.pem"), scratch.path().join("key.pem"));
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
        ])
        .args(["-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE", "-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl is needed for the TLS test");
    assert!(status.success());
    (cert, key)
}

#[test]
fn tls_serves_https_and_a_stalled_handshake_blocks_nobody() {
    let scratch = Scratch::new("tls");
    let (cert, key) = self_signed(&scratch);
    let node =
        Node::start(&[("TLS_CERT_FILE", cert.to_str().unwrap()), ("TLS_KEY_FILE", key.to_str().unwrap())]);
    assert!(node.log().contains("listening on https://"), "{}", node.log());
    // Clients that connect and never start the handshake.
    let stalled: Vec<TcpStream> = (0..5).map(|_| TcpStream::connect(node.addr).unwrap()).collect();
    let root = ureq::tls::Certificate::from_pem(&std::fs::read(&cert).unwrap()).unwrap().to_owned();
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::Specific(Arc::new(vec![root])))
        .provider(ureq::tls::TlsProvider::Rustls)
        .build();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let url = format!("https://localhost:{}", node.addr.port());
    let reply = agent.get(format!("{url}/healthz")).call().unwrap();
    assert_eq!(reply.status().as_u16(), 200);
    assert!(reply.headers().get("X-Corr-ID").is_some());
    let mut reply = agent.get(format!("{url}/nowhere")).header("X-Corr-ID", "tls-1").call().unwrap();
    assert_eq!(reply.status().as_u16(), 404);
    let body: Value = serde_json::from_slice(&reply.body_mut().read_to_vec().unwrap()).unwrap();
    assert_eq!(body["error"]["corr_id"], "tls-1");
    let version: Value = serde_json::from_slice(
        &agent.get(format!("{url}/version")).call().unwrap().body_mut().read_to_vec().unwrap(),
    )
    .unwrap();
    assert!(version["features"].as_array().unwrap().contains(&Value::from("tls")), "{version}");
    drop(stalled);
    // A bad certificate file is a configuration error.
    let out = run_cli(
        &["serve"],
        &[
            ("BIND_ADDR", "127.0.0.1:0"),
            ("TLS_CERT_FILE", key.to_str().unwrap()),
            ("TLS_KEY_FILE", key.to_str().unwrap()),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}
