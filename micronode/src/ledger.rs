//! The one ledger client of every node (ARCHITECTURE.md rule 3): ureq 3 over rustls with the
//! `ring` provider, HTTP and HTTPS, behind the core's [`Ledger`] trait — plus the host's
//! [`Pacer`] (real sleeps, OS randomness) and the background drain thread of the quarantine
//! queue.
//!
//! The client does one attempt per call, bounded end to end (connect, TLS, request, answer
//! body) by `LEDGER_DEADLINE_MS`; it holds no protocol logic of its own: paths, bodies and the
//! strict reading of answers are `rewarder_core::service::ledger`'s, and retries, backoff,
//! batching, quarantine and brownout are the core's. It never follows redirects (a ledger
//! that moves is a configuration error, not something to chase with payouts).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rewarder_core::service::ledger::{
    ANSWER_MAX_BYTES, health_answer, intents_answer, intents_body, registration_answer, registration_body,
    registration_path,
};
use rewarder_core::service::{
    Intent, IntentOutcome, Ledger, LedgerError, LedgerErrorKind, Pacer, Registration, RunRegistration,
    Service,
};
use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};

/// The HTTP(S) ledger at `LEDGER_URL`.
pub struct HttpLedger {
    agent: ureq::Agent,
    /// `LEDGER_URL` without a trailing slash.
    base: String,
}

impl std::fmt::Debug for HttpLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpLedger").field("base", &self.base).finish_non_exhaustive()
    }
}

impl HttpLedger {
    /// A client of the ledger at `base_url` (`http://…` or `https://…`), each attempt bounded
    /// by `deadline`. HTTPS trusts the Mozilla roots, or only the PEM certificates of
    /// `ca_file` when given (`LEDGER_CA_FILE`, for a private ledger CA).
    pub fn new(base_url: &str, deadline: Duration, ca_file: Option<&Path>) -> Result<HttpLedger, String> {
        let roots = match ca_file {
            None => RootCerts::WebPki,
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
                let certs: Vec<Certificate<'static>> = ureq::tls::parse_pem(&pem)
                    .filter_map(|item| match item {
                        Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
                        Ok(_) => None,
                        Err(e) => Some(Err(e)),
                    })
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                if certs.is_empty() {
                    return Err(format!("{}: no certificate in the file", path.display()));
                }
                RootCerts::Specific(Arc::new(certs))
            }
        };
        // rustls with ring, pinned rather than left to a process-wide default (rule 3: no
        // aws-lc). The setter is in ureq's "unversioned" API; it only names rustls 0.23's
        // provider type, which this crate depends on directly.
        let ring = Arc::new(rustls::crypto::ring::default_provider());
        let tls = TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            .unversioned_rustls_crypto_provider(ring)
            .root_certs(roots)
            .build();
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(deadline))
            .http_status_as_error(false)
            .max_redirects(0)
            .tls_config(tls)
            .user_agent(concat!("svc-rewarder/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Ok(HttpLedger { agent, base: base_url.trim_end_matches('/').to_owned() })
    }

    /// The status and body of an answer, the body bounded by [`ANSWER_MAX_BYTES`].
    fn read(
        answer: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<(u16, Vec<u8>), LedgerError> {
        let mut answer = answer.map_err(transport_error)?;
        let status = answer.status().as_u16();
        let body =
            answer.body_mut().with_config().limit(ANSWER_MAX_BYTES).read_to_vec().map_err(transport_error)?;
        Ok((status, body))
    }
}

/// Maps a transport failure to the core's error kinds: timeouts and connection trouble are
/// retried; an oversize answer is garbage.
fn transport_error(e: ureq::Error) -> LedgerError {
    let kind = match &e {
        ureq::Error::Timeout(_) => LedgerErrorKind::Timeout,
        ureq::Error::Io(io)
            if matches!(io.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock) =>
        {
            LedgerErrorKind::Timeout
        }
        ureq::Error::BodyExceedsLimit(_) => LedgerErrorKind::Garbage,
        ureq::Error::BadUri(_) | ureq::Error::TooManyRedirects | ureq::Error::RedirectFailed => {
            LedgerErrorKind::Rejected
        }
        _ => LedgerErrorKind::Connection,
    };
    LedgerError::new(kind, e.to_string())
}

impl Ledger for HttpLedger {
    fn register_run(
        &self,
        tenant: &str,
        epoch: &str,
        run: &RunRegistration,
    ) -> Result<Registration, LedgerError> {
        let url = format!("{}{}", self.base, registration_path(tenant, epoch));
        let body = registration_body(run);
        let answer = self.agent.put(&url).header("Content-Type", "application/json").send(&body[..]);
        let (status, _) = HttpLedger::read(answer)?;
        registration_answer(status)
    }

    fn send_intents(&self, intents: &[Intent]) -> Result<Vec<IntentOutcome>, LedgerError> {
        let url = format!("{}/v1/intents", self.base);
        let body = intents_body(intents);
        let answer = self.agent.post(&url).header("Content-Type", "application/json").send(&body[..]);
        let (status, body) = HttpLedger::read(answer)?;
        intents_answer(intents, status, &body)
    }

    fn health(&self) -> Result<(), LedgerError> {
        let (status, _) = HttpLedger::read(self.agent.get(format!("{}/v1/health", self.base)).call())?;
        health_answer(status)
    }
}

/// Real pauses and OS randomness for the core's backoff.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemPacer;

impl Pacer for SystemPacer {
    fn pause(&self, duration: Duration) {
        std::thread::sleep(duration);
    }

    fn random_u64(&self) -> u64 {
        // Jitter only spreads retries; without OS randomness the clock's nanoseconds do.
        getrandom::u64().unwrap_or_else(|_| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos().into())
        })
    }
}

/// How often the drain thread wakes when it has nothing to do (or in brownout: one health
/// probe per tick).
pub const DRAIN_TICK: Duration = Duration::from_millis(250);

/// The background egress thread: calls [`Service::drain_quarantine`] every [`DRAIN_TICK`]
/// (at once again while it makes progress), logs what it did, and stops when asked.
pub struct DrainThread {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl DrainThread {
    /// Starts the thread; each call re-sends at most `budget` intents.
    pub fn spawn(service: Arc<Service>, budget: usize) -> std::io::Result<DrainThread> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("ledger-drain".into())
            .spawn(move || drain_loop(&service, budget, &flag))?;
        Ok(DrainThread { stop, handle: Some(handle) })
    }

    /// Asks the thread to stop and waits for it (at most one ledger attempt).
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

impl Drop for DrainThread {
    fn drop(&mut self) {
        self.stop();
    }
}

fn drain_loop(service: &Service, budget: usize, stop: &AtomicBool) {
    let mut degraded = false;
    let mut last_error: Option<String> = None;
    while !stop.load(Ordering::Acquire) {
        let started = Instant::now();
        let report = service.drain_quarantine(budget);
        if report.degraded != degraded {
            degraded = report.degraded;
            if degraded {
                tracing::warn!(
                    queue_depth = report.queue_depth,
                    "ledger brownout: quarantine-only, probing health"
                );
            } else {
                tracing::info!(queue_depth = report.queue_depth, "ledger healthy again: draining");
            }
        }
        if report.progressed() {
            tracing::info!(
                accepted = report.accepted,
                dup = report.dup,
                conflicts = report.conflicts,
                emitted_runs = report.emitted_runs,
                lost_runs = report.lost_runs,
                queue_depth = report.queue_depth,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "quarantine drained"
            );
        }
        if report.conflicts > 0 {
            tracing::error!(conflicts = report.conflicts, "ledger answered conflict: invariant failure");
        }
        if report.error != last_error {
            if let Some(error) = &report.error {
                tracing::warn!(%error, queue_depth = report.queue_depth, "ledger egress failed; will retry");
            }
            last_error = report.error.clone();
        }
        if report.progressed() && report.queued_runs > 0 && !report.degraded && report.error.is_none() {
            continue;
        }
        let until = Instant::now() + DRAIN_TICK;
        while !stop.load(Ordering::Acquire) && Instant::now() < until {
            std::thread::sleep(
                Duration::from_millis(25).min(until.saturating_duration_since(Instant::now())),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    use super::*;

    /// A one-connection-per-answer HTTP server answering `answers` in order; returns its URL
    /// and the requests it saw (request line + body).
    fn serve(answers: Vec<(u16, &'static str)>) -> (String, std::thread::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for (status, body) in answers {
                let (stream, _) = listener.accept().unwrap();
                stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut reader = BufReader::new(stream);
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let mut length = 0;
                loop {
                    let mut h = String::new();
                    reader.read_line(&mut h).unwrap();
                    if h.trim().is_empty() {
                        break;
                    }
                    if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                }
                let mut body_in = vec![0; length];
                reader.read_exact(&mut body_in).unwrap();
                seen.push(format!("{} {}", line.trim(), String::from_utf8_lossy(&body_in)));
                let mut stream = reader.into_inner();
                let head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                stream.write_all(head.as_bytes()).unwrap();
                stream.write_all(body.as_bytes()).unwrap();
            }
            seen
        });
        (url, handle)
    }

    fn intent(key: &str) -> Intent {
        Intent {
            idempotency_key: key.into(),
            tenant: "t".into(),
            epoch: "e".into(),
            actor: "a".into(),
            amount_minor: "5".into(),
            run_id: "b3:r".into(),
            manifest_digest: "b3:d".into(),
        }
    }

    #[test]
    fn speaks_the_protocol_and_refuses_garbage() {
        let (url, server) = serve(vec![
            (201, ""),
            (409, ""),
            (200, r#"{"results":[{"idempotency_key":"k1","result":"accepted"}]}"#),
            (200, "<html>oops</html>"),
            (200, r#"{"results":[]}"#),
            (503, ""),
            (200, r#"{"status":"ok"}"#),
        ]);
        let ledger = HttpLedger::new(&format!("{url}/"), Duration::from_secs(5), None).unwrap();
        let reg = RunRegistration {
            run_id: "b3:r".into(),
            manifest_digest: "b3:d".into(),
            payout_total_minor: "5".into(),
            payees: 1,
        };
        assert_eq!(ledger.register_run("t", "e", &reg), Ok(Registration::Created));
        assert_eq!(ledger.register_run("t", "e", &reg), Ok(Registration::Conflict));
        let sent = [intent("k1")];
        assert_eq!(ledger.send_intents(&sent).unwrap().len(), 1);
        assert_eq!(ledger.send_intents(&sent).unwrap_err().kind(), LedgerErrorKind::Garbage);
        assert_eq!(ledger.send_intents(&sent).unwrap_err().kind(), LedgerErrorKind::Garbage);
        assert_eq!(ledger.send_intents(&sent).unwrap_err().kind(), LedgerErrorKind::Server);
        assert!(ledger.health().is_ok());
        let seen = server.join().unwrap();
        assert!(seen[0].starts_with("PUT /v1/runs/t/e HTTP/1.1 {\"run_id\":\"b3:r\""), "{}", seen[0]);
        assert!(seen[2].starts_with("POST /v1/intents HTTP/1.1 {\"intents\":[{\"idempotency_key\":\"k1\""));
        assert!(seen[6].starts_with("GET /v1/health HTTP/1.1"));
    }

    #[test]
    fn timeouts_and_refused_connections_are_retryable() {
        // Accepts and never answers: the per-attempt deadline ends the call.
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", silent.local_addr().unwrap());
        let ledger = HttpLedger::new(&url, Duration::from_millis(200), None).unwrap();
        let started = Instant::now();
        let e = ledger.health().unwrap_err();
        assert_eq!(e.kind(), LedgerErrorKind::Timeout, "{e}");
        assert!(started.elapsed() < Duration::from_secs(3));
        drop(silent);
        let closed = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let ledger = HttpLedger::new(&url, Duration::from_millis(500), None).unwrap();
        let e = ledger.health().unwrap_err();
        assert!(e.retryable() && e.kind() == LedgerErrorKind::Connection, "{e}");
    }

    #[test]
    fn a_missing_ca_file_is_refused() {
        assert!(
            HttpLedger::new(
                "https://127.0.0.1:1",
                Duration::from_secs(1),
                Some(Path::new("/nonexistent.pem"))
            )
            .is_err()
        );
    }
}
