//! The metrics of API.md §6 — their names and labels are a contract — as lock-free atomic
//! counters, gauges and fixed-bucket histograms, with a hand-written Prometheus text
//! exposition (0.0.4).
//!
//! Every label takes its values from a fixed set known here (route templates, status codes,
//! enums), so no request can grow the exposition. The service records what it sees itself;
//! the setters below are for what only the hosts know (their work queue, their load
//! shedding, and — later — the ledger client). Each metric's `# TYPE` line appears exactly
//! once, and unlabelled series and the enumerable label values are always present, at 0 until
//! something happens.
//!
//! The `process_*` series (Prometheus' client conventions: resident memory, CPU seconds, open
//! and maximum file descriptors, start time) are the host's: core reads no `/proc`. A host
//! that can measure its process passes a [`ProcessProbe`] to the service, whose samples are
//! appended to the exposition; without one they are absent.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use super::router::ROUTE_LABELS;
use super::{HotKnobs, Profile};

/// How a compute request ended (`reward_runs_total{status}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunStatus {
    /// A run computed, checked and stored.
    Ok,
    /// A stored run answered again (same run id).
    Cached,
    /// An invariant failed: nothing stored, nothing sent.
    InvariantViolation,
    /// Any other failure of the calculus.
    Error,
}

impl RunStatus {
    const ALL: [RunStatus; 4] =
        [RunStatus::Ok, RunStatus::Cached, RunStatus::InvariantViolation, RunStatus::Error];

    fn as_str(self) -> &'static str {
        match self {
            RunStatus::Ok => "ok",
            RunStatus::Cached => "cached",
            RunStatus::InvariantViolation => "invariant_violation",
            RunStatus::Error => "error",
        }
    }
}

/// Why a request was shed (`rejected_total{reason}`).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// The tenant's token bucket was empty (`429`; counted by the service).
    RateLimited,
    /// `MAX_INFLIGHT` computes were already running (`503`; counted by the service).
    Inflight,
    /// The host's work queue was full (`503`, `WORK_QUEUE_MAX`).
    QueueFull,
    /// The host's connection bound was reached.
    Connections,
    /// The host is shutting down.
    ShuttingDown,
    /// The ledger quarantine queue was full (`503`; counted by the service).
    QuarantineFull,
}

impl Rejection {
    /// Every reason, in exposition order.
    pub const ALL: [Rejection; 6] = [
        Rejection::RateLimited,
        Rejection::Inflight,
        Rejection::QueueFull,
        Rejection::Connections,
        Rejection::ShuttingDown,
        Rejection::QuarantineFull,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::RateLimited => "rate_limited",
            Rejection::Inflight => "inflight",
            Rejection::QueueFull => "queue_full",
            Rejection::Connections => "connections",
            Rejection::ShuttingDown => "shutting_down",
            Rejection::QuarantineFull => "quarantine_full",
        }
    }
}

/// What the ledger said of an intent (`ledger_intents_total{result}`, API.md §4).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntentResult {
    /// Accepted.
    Accepted,
    /// Seen before with the same payload (a retry: success).
    Dup,
    /// Same key, other payload (an invariant failure).
    Conflict,
    /// Failed after retries.
    Error,
    /// Put into the quarantine queue.
    Quarantined,
}

impl IntentResult {
    /// Every result, in exposition order.
    pub const ALL: [IntentResult; 5] = [
        IntentResult::Accepted,
        IntentResult::Dup,
        IntentResult::Conflict,
        IntentResult::Error,
        IntentResult::Quarantined,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            IntentResult::Accepted => "accepted",
            IntentResult::Dup => "dup",
            IntentResult::Conflict => "conflict",
            IntentResult::Error => "error",
            IntentResult::Quarantined => "quarantined",
        }
    }
}

/// What the host process measured of itself, for the `process_*` series.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessStats {
    /// `process_resident_memory_bytes`: resident set size.
    pub resident_memory_bytes: u64,
    /// `process_cpu_seconds_total`: user plus system CPU time.
    pub cpu_seconds: f64,
    /// `process_open_fds`: file descriptors open now.
    pub open_fds: u64,
    /// `process_max_fds`: the soft limit on open file descriptors.
    pub max_fds: u64,
    /// `process_start_time_seconds`: when the process started, in Unix seconds.
    pub start_time_seconds: f64,
}

/// Measures the host's process when `/metrics` is rendered (the micronode reads
/// `/proc/self`). `None` leaves the `process_*` series out of that exposition.
pub trait ProcessProbe: Send + Sync {
    /// The process now.
    fn sample(&self) -> Option<ProcessStats>;
}

/// The size class of an epoch (`reward_compute_latency_seconds{scale}`), after the reference
/// scales of PERFORMANCE.md by actor count: `S` up to 1,000 actors, `M` up to 10,000, `L`
/// beyond.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scale {
    /// At most [`Scale::S_ACTORS_MAX`] actors.
    S,
    /// At most [`Scale::M_ACTORS_MAX`] actors.
    M,
    /// More.
    L,
}

impl Scale {
    const ALL: [Scale; 3] = [Scale::S, Scale::M, Scale::L];
    const S_ACTORS_MAX: usize = 1_000;
    const M_ACTORS_MAX: usize = 10_000;

    /// The class of an epoch of `actors` actors.
    pub(crate) fn of(actors: usize) -> Scale {
        if actors <= Scale::S_ACTORS_MAX {
            Scale::S
        } else if actors <= Scale::M_ACTORS_MAX {
            Scale::M
        } else {
            Scale::L
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Scale::S => "S",
            Scale::M => "M",
            Scale::L => "L",
        }
    }
}

/// HTTP statuses counted under their own `code` label; any other is counted as `other`.
const STATUSES: [u16; 21] =
    [200, 201, 202, 204, 400, 401, 403, 404, 405, 408, 409, 413, 414, 415, 422, 429, 431, 500, 501, 503, 504];
const STATUS_SLOTS: usize = STATUSES.len() + 1;
const HTTP_SLOTS: usize = ROUTE_LABELS.len() * STATUS_SLOTS;

/// Upper bounds of `reward_compute_latency_seconds` buckets: (label, nanoseconds).
const COMPUTE_BUCKETS: [(&str, u64); 14] = [
    ("0.0005", 500_000),
    ("0.001", 1_000_000),
    ("0.0025", 2_500_000),
    ("0.005", 5_000_000),
    ("0.01", 10_000_000),
    ("0.025", 25_000_000),
    ("0.05", 50_000_000),
    ("0.1", 100_000_000),
    ("0.25", 250_000_000),
    ("0.5", 500_000_000),
    ("1", 1_000_000_000),
    ("2.5", 2_500_000_000),
    ("5", 5_000_000_000),
    ("10", 10_000_000_000),
];

/// Upper bounds of `ledger_egress_latency_seconds` buckets: (label, nanoseconds).
const EGRESS_BUCKETS: [(&str, u64); 11] = [
    ("0.005", 5_000_000),
    ("0.01", 10_000_000),
    ("0.025", 25_000_000),
    ("0.05", 50_000_000),
    ("0.1", 100_000_000),
    ("0.25", 250_000_000),
    ("0.5", 500_000_000),
    ("1", 1_000_000_000),
    ("2.5", 2_500_000_000),
    ("5", 5_000_000_000),
    ("10", 10_000_000_000),
];

/// A histogram with fixed buckets; counts per bucket (not cumulative) plus `+Inf`.
struct Histogram {
    bounds: &'static [(&'static str, u64)],
    counts: Vec<AtomicU64>,
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [(&'static str, u64)]) -> Self {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    fn observe(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let i = self.bounds.iter().position(|(_, b)| nanos <= *b).unwrap_or(self.bounds.len());
        if let Some(c) = self.counts.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        header(out, name, help, "histogram");
        self.render_series(out, name, "");
    }

    /// The series without the header; `labels` (`key="value",`, comma last) precede `le`.
    fn render_series(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            cumulative += c.load(Ordering::Relaxed);
            let le = self.bounds.get(i).map_or("+Inf", |(label, _)| label);
            let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{le}\"}} {cumulative}");
        }
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let (open, close) = match labels.strip_suffix(',') {
            Some(inner) => (format!("{{{inner}"), "}"),
            None => (String::new(), ""),
        };
        let _ = writeln!(out, "{name}_sum{open}{close} {sum}");
        let _ = writeln!(out, "{name}_count{open}{close} {}", self.count.load(Ordering::Relaxed));
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, value: u64) {
    let _ = writeln!(out, "{name} {value}");
}

fn counters(n: usize) -> Vec<AtomicU64> {
    (0..n).map(|_| AtomicU64::new(0)).collect()
}

/// The node's metrics. Shared by reference (`Service::metrics`); every method is lock-free.
pub struct Metrics {
    version: &'static str,
    profile: Profile,
    /// One histogram per [`Scale`], in `Scale::ALL` order.
    compute_latency: Vec<Histogram>,
    runs: Vec<AtomicU64>,
    invariant_fail: AtomicU64,
    intents: Vec<AtomicU64>,
    egress_latency: Histogram,
    egress_errors: AtomicU64,
    ledger_degraded: AtomicBool,
    quarantine_depth: AtomicU64,
    queue_depth: AtomicU64,
    work_queue_max: AtomicU64,
    ledger_quarantine_only: AtomicBool,
    rejected: Vec<AtomicU64>,
    http: Vec<AtomicU64>,
    amnesia_spill: AtomicU64,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").field("profile", &self.profile).finish_non_exhaustive()
    }
}

impl Metrics {
    /// All at zero, for a node of `profile`.
    pub(crate) fn new(profile: Profile) -> Self {
        Metrics {
            version: env!("CARGO_PKG_VERSION"),
            profile,
            compute_latency: Scale::ALL.iter().map(|_| Histogram::new(&COMPUTE_BUCKETS)).collect(),
            runs: counters(RunStatus::ALL.len()),
            invariant_fail: AtomicU64::new(0),
            intents: counters(IntentResult::ALL.len()),
            egress_latency: Histogram::new(&EGRESS_BUCKETS),
            egress_errors: AtomicU64::new(0),
            ledger_degraded: AtomicBool::new(false),
            quarantine_depth: AtomicU64::new(0),
            queue_depth: AtomicU64::new(0),
            work_queue_max: AtomicU64::new(0),
            ledger_quarantine_only: AtomicBool::new(false),
            rejected: counters(Rejection::ALL.len()),
            http: counters(HTTP_SLOTS),
            amnesia_spill: AtomicU64::new(0),
        }
    }

    /// Sets `queue_depth`: requests waiting in the host's work queue.
    pub fn set_queue_depth(&self, depth: u64) {
        self.queue_depth.store(depth, Ordering::Relaxed);
    }

    /// Sets the gauges of the hot knobs in force (the service does at start and on every
    /// accepted reload): `work_queue_max`, so alerts can compare `queue_depth` with it, and
    /// `ledger_quarantine_only`, so a forgotten switch shows.
    pub(crate) fn set_hot(&self, knobs: &HotKnobs) {
        self.work_queue_max.store(u64::from(knobs.work_queue_max), Ordering::Relaxed);
        self.ledger_quarantine_only.store(knobs.ledger_quarantine_only, Ordering::Relaxed);
    }

    /// Whether the operator's quarantine-only switch is on (`/readyz` reports it too).
    pub(crate) fn ledger_quarantine_only(&self) -> bool {
        self.ledger_quarantine_only.load(Ordering::Relaxed)
    }

    /// Counts one shed request under `rejected_total{reason}`.
    pub fn reject(&self, reason: Rejection) {
        let i = Rejection::ALL.iter().position(|r| *r == reason).unwrap_or(0);
        self.rejected[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts `n` intents under `ledger_intents_total{result}`.
    pub fn ledger_intents(&self, result: IntentResult, n: u64) {
        let i = IntentResult::ALL.iter().position(|r| *r == result).unwrap_or(0);
        self.intents[i].fetch_add(n, Ordering::Relaxed);
    }

    /// Observes one ledger request's latency (`ledger_egress_latency_seconds`).
    pub fn observe_ledger_egress(&self, elapsed: Duration) {
        self.egress_latency.observe(elapsed);
    }

    /// Counts one failed ledger attempt (`ledger_egress_errors_total`).
    pub fn ledger_egress_error(&self) {
        self.egress_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Sets `ledger_degraded` (brownout, API.md §4); `/readyz` reports it too.
    pub fn set_ledger_degraded(&self, degraded: bool) {
        self.ledger_degraded.store(degraded, Ordering::Relaxed);
    }

    /// Whether the ledger is marked degraded.
    pub fn ledger_degraded(&self) -> bool {
        self.ledger_degraded.load(Ordering::Relaxed)
    }

    /// Sets `quarantine_queue_depth`: intents waiting to be re-sent.
    pub fn set_quarantine_queue_depth(&self, depth: u64) {
        self.quarantine_depth.store(depth, Ordering::Relaxed);
    }

    /// Counts one artifact the host could not keep beside memory (`amnesia_spill_total`).
    pub fn amnesia_spill(&self) {
        self.amnesia_spill.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one response under `http_requests_total{route,code}`; `route` must be one of
    /// the route labels (anything else is counted as `unmatched`).
    pub(crate) fn http(&self, route: &str, status: u16) {
        let r = ROUTE_LABELS.iter().position(|l| *l == route).unwrap_or(ROUTE_LABELS.len() - 1);
        let s = STATUSES.iter().position(|c| *c == status).unwrap_or(STATUSES.len());
        if let Some(c) = self.http.get(r * STATUS_SLOTS + s) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts one compute request's outcome (`reward_runs_total{status}`).
    pub(crate) fn run(&self, status: RunStatus) {
        let i = RunStatus::ALL.iter().position(|r| *r == status).unwrap_or(0);
        self.runs[i].fetch_add(1, Ordering::Relaxed);
        if status == RunStatus::InvariantViolation {
            self.invariant_fail.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a ledger `conflict` answer (same key, other payload after registration) as an
    /// invariant failure (`reward_invariant_fail_total`).
    pub(crate) fn ledger_conflict(&self) {
        self.invariant_fail.fetch_add(1, Ordering::Relaxed);
    }

    /// Observes one computed run's latency (`reward_compute_latency_seconds{scale}`).
    pub(crate) fn observe_compute(&self, scale: Scale, elapsed: Duration) {
        let i = Scale::ALL.iter().position(|s| *s == scale).unwrap_or(0);
        self.compute_latency[i].observe(elapsed);
    }

    /// The Prometheus text exposition; `inflight` is the in-flight gauge's current value,
    /// `ready` whether `/readyz` answers 200, `process` what the host measured of its process
    /// (appended when present).
    pub(crate) fn render(&self, inflight: u32, ready: bool, process: Option<&ProcessStats>) -> String {
        let mut out = String::with_capacity(8192);
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);

        let name = "reward_compute_latency_seconds";
        header(&mut out, name, "Time to compute and commit a run, by epoch scale.", "histogram");
        for (scale, histogram) in Scale::ALL.iter().zip(&self.compute_latency) {
            histogram.render_series(&mut out, name, &format!("scale=\"{}\",", scale.as_str()));
        }
        header(&mut out, "reward_runs_total", "Compute requests by outcome.", "counter");
        for (s, c) in RunStatus::ALL.iter().zip(&self.runs) {
            let _ = writeln!(out, "reward_runs_total{{status=\"{}\"}} {}", s.as_str(), load(c));
        }
        header(&mut out, "reward_invariant_fail_total", "Runs refused by an invariant check.", "counter");
        sample(&mut out, "reward_invariant_fail_total", load(&self.invariant_fail));
        header(&mut out, "ledger_intents_total", "Payout intents by ledger result.", "counter");
        for (r, c) in IntentResult::ALL.iter().zip(&self.intents) {
            let _ = writeln!(out, "ledger_intents_total{{result=\"{}\"}} {}", r.as_str(), load(c));
        }
        self.egress_latency.render(&mut out, "ledger_egress_latency_seconds", "Latency of ledger requests.");
        header(&mut out, "ledger_egress_errors_total", "Failed ledger attempts.", "counter");
        sample(&mut out, "ledger_egress_errors_total", load(&self.egress_errors));
        header(&mut out, "ledger_degraded", "1 while the ledger is in brownout (quarantine-only).", "gauge");
        sample(&mut out, "ledger_degraded", u64::from(self.ledger_degraded()));
        header(
            &mut out,
            "ledger_quarantine_only",
            "1 while the operator's switch holds every intent in the queue (LEDGER_QUARANTINE_ONLY).",
            "gauge",
        );
        sample(&mut out, "ledger_quarantine_only", u64::from(self.ledger_quarantine_only()));
        header(&mut out, "quarantine_queue_depth", "Intents waiting to be re-sent.", "gauge");
        sample(&mut out, "quarantine_queue_depth", load(&self.quarantine_depth));
        header(&mut out, "queue_depth", "Requests waiting in the work queue.", "gauge");
        sample(&mut out, "queue_depth", load(&self.queue_depth));
        header(&mut out, "work_queue_max", "The work queue bound in force (WORK_QUEUE_MAX).", "gauge");
        sample(&mut out, "work_queue_max", load(&self.work_queue_max));
        header(&mut out, "ready", "1 while /readyz answers 200, else 0.", "gauge");
        sample(&mut out, "ready", u64::from(ready));
        header(&mut out, "inflight", "Computes in flight.", "gauge");
        sample(&mut out, "inflight", u64::from(inflight));
        header(&mut out, "rejected_total", "Requests shed, by reason.", "counter");
        for (r, c) in Rejection::ALL.iter().zip(&self.rejected) {
            let _ = writeln!(out, "rejected_total{{reason=\"{}\"}} {}", r.as_str(), load(c));
        }
        header(&mut out, "http_requests_total", "HTTP responses by route template and status.", "counter");
        for (i, c) in self.http.iter().enumerate() {
            let n = load(c);
            if n == 0 {
                continue;
            }
            let route = ROUTE_LABELS[i / STATUS_SLOTS];
            let _ = match STATUSES.get(i % STATUS_SLOTS) {
                Some(code) => writeln!(out, "http_requests_total{{route=\"{route}\",code=\"{code}\"}} {n}"),
                None => writeln!(out, "http_requests_total{{route=\"{route}\",code=\"other\"}} {n}"),
            };
        }
        header(
            &mut out,
            "amnesia_spill_total",
            "Artifacts kept in memory because the host could not keep them.",
            "counter",
        );
        sample(&mut out, "amnesia_spill_total", load(&self.amnesia_spill));
        header(&mut out, "build_info", "Build and profile of this node.", "gauge");
        let _ = writeln!(
            out,
            "build_info{{version=\"{}\",profile=\"{}\"}} 1",
            self.version,
            self.profile.as_str()
        );
        if let Some(p) = process {
            render_process(&mut out, p);
        }
        out
    }
}

/// The `process_*` series, named and typed as Prometheus' client libraries do.
fn render_process(out: &mut String, p: &ProcessStats) {
    header(out, "process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", "counter");
    let _ = writeln!(out, "process_cpu_seconds_total {}", p.cpu_seconds);
    header(out, "process_resident_memory_bytes", "Resident memory size in bytes.", "gauge");
    sample(out, "process_resident_memory_bytes", p.resident_memory_bytes);
    header(out, "process_open_fds", "Number of open file descriptors.", "gauge");
    sample(out, "process_open_fds", p.open_fds);
    header(out, "process_max_fds", "Maximum number of open file descriptors.", "gauge");
    sample(out, "process_max_fds", p.max_fds);
    header(
        out,
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
        "gauge",
    );
    let _ = writeln!(out, "process_start_time_seconds {}", p.start_time_seconds);
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: [&str; 17] = [
        "reward_compute_latency_seconds",
        "reward_runs_total",
        "reward_invariant_fail_total",
        "ledger_intents_total",
        "ledger_egress_latency_seconds",
        "ledger_egress_errors_total",
        "ledger_degraded",
        "ledger_quarantine_only",
        "quarantine_queue_depth",
        "queue_depth",
        "work_queue_max",
        "ready",
        "inflight",
        "rejected_total",
        "http_requests_total",
        "amnesia_spill_total",
        "build_info",
    ];

    #[test]
    fn every_contract_name_has_exactly_one_type_line() {
        let text = Metrics::new(Profile::Micronode).render(0, true, None);
        for name in NAMES {
            let n = text.lines().filter(|l| l.starts_with(&format!("# TYPE {name} "))).count();
            assert_eq!(n, 1, "{name}");
        }
        assert_eq!(text.lines().filter(|l| l.starts_with("# TYPE ")).count(), NAMES.len());
        assert!(text.contains("build_info{version=\""));
        assert!(text.contains("profile=\"micronode\"} 1"));
        assert!(!text.contains("process_"), "no probe, no process series");
    }

    #[test]
    fn process_series_follow_the_prometheus_conventions() {
        let stats = ProcessStats {
            resident_memory_bytes: 5 << 20,
            cpu_seconds: 1.25,
            open_fds: 12,
            max_fds: 1024,
            start_time_seconds: 1_800_000_000.5,
        };
        let text = Metrics::new(Profile::Macronode).render(0, true, Some(&stats));
        for (name, kind) in [
            ("process_cpu_seconds_total", "counter"),
            ("process_resident_memory_bytes", "gauge"),
            ("process_open_fds", "gauge"),
            ("process_max_fds", "gauge"),
            ("process_start_time_seconds", "gauge"),
        ] {
            assert_eq!(text.matches(&format!("# TYPE {name} {kind}\n")).count(), 1, "{name}");
        }
        assert!(text.contains("process_cpu_seconds_total 1.25\n"));
        assert!(text.contains("process_resident_memory_bytes 5242880\n"));
        assert!(text.contains("process_open_fds 12\n"));
        assert!(text.contains("process_max_fds 1024\n"));
        assert!(text.contains("process_start_time_seconds 1800000000.5\n"));
    }

    #[test]
    fn histograms_are_cumulative_with_sum_and_count() {
        let m = Metrics::new(Profile::Macronode);
        m.observe_compute(Scale::M, Duration::from_micros(300));
        m.observe_compute(Scale::M, Duration::from_millis(3));
        m.observe_compute(Scale::M, Duration::from_secs(60));
        m.observe_compute(Scale::L, Duration::from_millis(3));
        let text = m.render(0, true, None);
        let h = "reward_compute_latency_seconds";
        assert!(text.contains(&format!("{h}_bucket{{scale=\"M\",le=\"0.0005\"}} 1\n")));
        assert!(text.contains(&format!("{h}_bucket{{scale=\"M\",le=\"0.005\"}} 2\n")));
        assert!(text.contains(&format!("{h}_bucket{{scale=\"M\",le=\"10\"}} 2\n")));
        assert!(text.contains(&format!("{h}_bucket{{scale=\"M\",le=\"+Inf\"}} 3\n")));
        assert!(text.contains(&format!("{h}_count{{scale=\"M\"}} 3\n")));
        assert!(text.contains(&format!("{h}_sum{{scale=\"M\"}} 60.0033\n")));
        assert!(text.contains(&format!("{h}_count{{scale=\"L\"}} 1\n")));
        assert!(text.contains(&format!("{h}_count{{scale=\"S\"}} 0\n")), "every scale is always present");
        assert!(text.contains("ledger_egress_latency_seconds_count 0\n"));
        assert_eq!((Scale::of(0), Scale::of(1_000), Scale::of(1_001)), (Scale::S, Scale::S, Scale::M));
        assert_eq!((Scale::of(10_000), Scale::of(10_001)), (Scale::M, Scale::L));
    }

    #[test]
    fn labels_stay_within_their_sets() {
        let m = Metrics::new(Profile::Embedded);
        m.http("/rewarder/epochs/{epoch}/compute", 200);
        m.http("/raw/path/acct:alice", 404);
        m.http("/healthz", 299);
        m.reject(Rejection::QueueFull);
        m.ledger_intents(IntentResult::Dup, 3);
        m.run(RunStatus::InvariantViolation);
        m.set_ledger_degraded(true);
        m.set_queue_depth(7);
        m.set_hot(&HotKnobs::default());
        m.amnesia_spill();
        let text = m.render(2, false, None);
        assert!(
            text.contains("http_requests_total{route=\"/rewarder/epochs/{epoch}/compute\",code=\"200\"} 1\n")
        );
        assert!(text.contains("http_requests_total{route=\"unmatched\",code=\"404\"} 1\n"));
        assert!(text.contains("http_requests_total{route=\"/healthz\",code=\"other\"} 1\n"));
        assert!(!text.contains("acct:alice"));
        assert!(text.contains("rejected_total{reason=\"queue_full\"} 1\n"));
        assert!(text.contains("ledger_intents_total{result=\"dup\"} 3\n"));
        assert!(text.contains("reward_runs_total{status=\"invariant_violation\"} 1\n"));
        assert!(text.contains("reward_invariant_fail_total 1\n"));
        assert!(text.contains("ledger_degraded 1\n"));
        assert!(text.contains("queue_depth 7\n"));
        assert!(text.contains("work_queue_max 4096\n"));
        assert!(text.contains("inflight 2\n"));
        assert!(text.contains("\nready 0\n"));
        assert!(text.contains("amnesia_spill_total 1\n"));
    }
}
