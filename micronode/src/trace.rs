//! Traces that follow a request: the compute thread opens a `request` span (with the
//! correlation id and the route) around the body phase, and core opens its phases under it —
//! `parse`, `compute`, `sign`, `egress` with one `egress_batch` per ledger request. The
//! subscriber ([`crate::node::init_logging`]) logs each span when it closes, with its
//! duration (`time.busy`, `time.idle`) and, under `LOG_FORMAT=json`, the list of the spans
//! it sits in, so every line of one request carries its `corr_id`.
//!
//! Only a share of requests is traced: `TRACE_SAMPLE` (a fraction from 0 to 1, default
//! [`TRACE_SAMPLE_DEFAULT_PPM`] in millionths), hot like the admission knobs (SIGHUP,
//! `POST /rewarder/admin/reload`, `HOT_KNOBS_FILE`). The choice is a hash of the correlation
//! id, not a coin: a client that sends its own `X-Corr-ID` is traced on every node it reaches
//! or on none, and a retry keeps the choice. An untraced request opens no span at all, so
//! core's phases open none either.
//!
//! The sampling share is one per process (the `tracing` subscriber is too): nodes started in
//! the same process (tests) share it.

use std::sync::atomic::{AtomicU32, Ordering};

/// Millionths: `TRACE_SAMPLE=1` is all of them.
pub const TRACE_SAMPLE_ONE_PPM: u32 = 1_000_000;
/// The default `TRACE_SAMPLE`: 1 % of requests.
pub const TRACE_SAMPLE_DEFAULT_PPM: u32 = 10_000;

static SAMPLE_PPM: AtomicU32 = AtomicU32::new(TRACE_SAMPLE_DEFAULT_PPM);

/// Sets the share of requests traced, in millionths (at most [`TRACE_SAMPLE_ONE_PPM`]).
pub fn set_sample_ppm(ppm: u32) {
    SAMPLE_PPM.store(ppm.min(TRACE_SAMPLE_ONE_PPM), Ordering::Relaxed);
}

/// The share of requests traced now, in millionths.
pub fn sample_ppm() -> u32 {
    SAMPLE_PPM.load(Ordering::Relaxed)
}

/// Whether the request of `corr_id` is traced at `ppm` millionths: FNV-1a of the id, so the
/// same id gets the same answer on every node.
pub fn sampled_at(corr_id: &str, ppm: u32) -> bool {
    if ppm >= TRACE_SAMPLE_ONE_PPM {
        return true;
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in corr_id.bytes() {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash % u64::from(TRACE_SAMPLE_ONE_PPM) < u64::from(ppm)
}

/// The span of one request's body phase: `request{corr_id, route, status}` when the request
/// is sampled (record `status` once answered), else a disabled span.
pub fn request_span(corr_id: &str, route: &'static str) -> tracing::Span {
    if sampled_at(corr_id, sample_ppm()) {
        tracing::info_span!("request", corr_id, route, status = tracing::field::Empty)
    } else {
        tracing::Span::none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_share_sampled_follows_the_knob() {
        let ids: Vec<String> = (0..20_000).map(|i| format!("{i:032x}")).collect();
        let share = |ppm| ids.iter().filter(|id| sampled_at(id, ppm)).count();
        assert_eq!(share(0), 0);
        assert_eq!(share(TRACE_SAMPLE_ONE_PPM), ids.len());
        let tenth = share(100_000);
        assert!((1_600..=2_400).contains(&tenth), "{tenth} of 20000 at 10%");
    }

    #[test]
    fn the_same_id_gets_the_same_answer() {
        for id in ["a", "client-chosen:42", "0123456789abcdef0123456789abcdef"] {
            assert_eq!(sampled_at(id, 500_000), sampled_at(id, 500_000));
        }
    }
}
